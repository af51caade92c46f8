// The discovery console: a single page over the node's JSON routes (/ui/api/*, see the README).
//
// Rules of this file:
// - Text from the registry (every instance field is client-controlled) enters the DOM only through
//   `textContent` or attribute setters in `el()`; no setter that parses markup is used anywhere.
// - Views re-render their data every REFRESH_MS, never their inputs: typing in the search box is not lost.
// - The cluster token, once entered, is kept in sessionStorage (this tab only) and sent as x-discovery-token.
"use strict";

const REFRESH_MS = 5000;
const PAGE_SIZE = 50;
const TOKEN_KEY = "discovery.token";

// ---- small helpers ----------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// A table with a header row: a column title is a string, or [title, class] ("num": right-aligned figures).
function table(id, head, rows) {
  const th = (h) => (Array.isArray(h) ? el("th", { class: h[1] }, h[0]) : el("th", {}, h));
  return el("table", { id }, el("thead", {}, el("tr", {}, head.map(th))), el("tbody", {}, rows));
}

// A definition list of [term, description] or [term, description, attributes of the description].
function facts(pairs) {
  return el("dl", {}, pairs.flatMap(([term, description, attrs]) => [el("dt", {}, term), el("dd", attrs || {}, description)]));
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["x-discovery-token"] = token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function ago(ms) {
  if (ms === null || ms === undefined || ms < 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d`;
}

function sinceUnix(unixMs, nowMs) {
  return unixMs > 0 ? ago(nowMs - unixMs) + " ago" : "-";
}

function bytes(n) {
  if (n === null || n === undefined) return "unknown";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function num(n) {
  return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
}

function toast(message, bad) {
  const item = el("div", { class: bad ? "bad" : "" }, message);
  document.getElementById("toast").append(item);
  setTimeout(() => item.remove(), 6000);
}

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

function hashQuery() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function appHref(env, appid) {
  return "#/app?" + new URLSearchParams({ env, appid }).toString();
}

// ---- session: may this page act? --------------------------------------------------------------------

const session = { canAct: false, tokenRequired: false };

async function loadSession() {
  const s = await api("/ui/api/session");
  session.canAct = s.can_act;
  session.tokenRequired = s.token_required;
  document.getElementById("node").textContent = `node ${s.node} · ${s.addr} · zone ${s.zone}`;
  document.getElementById("session-note").textContent = s.note;
  document.getElementById("session").classList.toggle("readonly", !s.can_act);
  document.getElementById("token-form").hidden = !s.token_required || s.can_act;
  document.getElementById("forget-token").hidden = !token();
}

document.getElementById("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
  document.getElementById("token").value = "";
  await loadSession();
  if (!session.canAct) toast("That token is not the cluster token.", true);
  render();
});

document.getElementById("forget-token").addEventListener("click", async () => {
  sessionStorage.removeItem(TOKEN_KEY);
  await loadSession();
  render();
});

// ---- views ------------------------------------------------------------------------------------------

const main = document.getElementById("main");
let current = null; // { name, refresh() }

function setView(name, build) {
  for (const id of ["apps", "cluster", "charts"]) {
    const link = document.getElementById(`nav-${id}`);
    if (id === name || (name === "app" && id === "apps")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  current = build();
}

// Apps: search and filters (built once per visit), then the table (rebuilt on every refresh).
function appsView() {
  const { params } = hashQuery();
  const state = {
    q: params.get("q") || "",
    env: params.get("env") || "",
    zone: params.get("zone") || "",
    status: params.get("status") || "",
    offset: Number(params.get("offset") || 0),
  };
  const search = el("input", { type: "search", id: "search", value: state.q, placeholder: "appid contains…", "aria-label": "Search apps by appid" });
  const envSelect = el("select", { id: "filter-env", "aria-label": "Env" }, el("option", { value: "" }, "all envs"));
  const zoneSelect = el("select", { id: "filter-zone", "aria-label": "Zone" }, el("option", { value: "" }, "all zones"));
  const statusSelect = el(
    "select",
    { id: "filter-status", "aria-label": "Status" },
    el("option", { value: "" }, "any status"),
    el("option", { value: "up" }, "with an up instance"),
    el("option", { value: "waiting" }, "with a waiting instance"),
    el("option", { value: "none_up" }, "with no up instance"),
  );
  statusSelect.value = state.status;
  const summary = el("p", { id: "apps-summary", class: "muted" });
  const listing = el("div", { id: "apps-table" });
  const pager = el("div", { class: "pager" });
  main.append(
    el("h2", {}, "Apps"),
    el(
      "form",
      { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
      el("label", {}, "Search", search),
      el("label", {}, "Env", envSelect),
      el("label", {}, "Zone", zoneSelect),
      el("label", {}, "Status", statusSelect),
    ),
    summary,
    listing,
    pager,
  );
  let timer = null;
  const changed = () => {
    state.q = search.value;
    state.env = envSelect.value;
    state.zone = zoneSelect.value;
    state.status = statusSelect.value;
    state.offset = 0;
    const query = new URLSearchParams(Object.entries(state).filter(([, v]) => v !== "" && v !== 0));
    history.replaceState(null, "", "#/" + (query.toString() ? "?" + query : ""));
    refresh();
  };
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(changed, 200);
  });
  for (const select of [envSelect, zoneSelect, statusSelect]) select.addEventListener("change", changed);

  const fillOptions = (select, values, chosen) => {
    const have = [...select.options].map((o) => o.value);
    const want = ["", ...values];
    if (chosen && !want.includes(chosen)) want.push(chosen);
    if (have.join("\n") !== want.join("\n")) {
      select.replaceChildren(select.options[0], ...want.slice(1).map((v) => el("option", { value: v }, v)));
    }
    select.value = chosen;
  };

  async function refresh() {
    const query = new URLSearchParams({ q: state.q, env: state.env, zone: state.zone, status: state.status, offset: state.offset, limit: PAGE_SIZE });
    const page = await api("/ui/api/apps?" + query);
    fillOptions(envSelect, page.envs, state.env);
    fillOptions(zoneSelect, page.zones, state.zone);
    const first = page.total === 0 ? 0 : page.offset + 1;
    const last = page.offset + page.apps.length;
    summary.textContent = `${num(page.total)} apps match (${first}–${last} shown) · ${num(page.instances)} instances registered`;
    if (page.apps.length === 0) {
      listing.replaceChildren(el("p", { id: "no-apps" }, page.instances === 0 ? "No instance is registered yet." : "No app matches."));
    } else {
      listing.replaceChildren(
        table(
          "apps",
          ["App", "Env", ["Up", "num"], ["Waiting", "num"], "By zone (up / waiting)"],
          page.apps.map((a) =>
            el(
              "tr",
              { data: { env: a.env, appid: a.appid } },
              el("td", {}, el("a", { href: appHref(a.env, a.appid), class: "app-link" }, a.appid)),
              el("td", {}, a.env),
              el("td", { class: "num up-count" }, num(a.up)),
              el("td", { class: a.waiting > 0 ? "num warn waiting-count" : "num waiting-count" }, num(a.waiting)),
              el("td", {}, a.zones.map((z) => el("span", { class: "zone" }, `${z.zone} ${z.up} / ${z.waiting}  `))),
            ),
          ),
        ),
      );
    }
    const go = (offset) => {
      state.offset = Math.max(0, offset);
      refresh();
    };
    pager.replaceChildren(
      el("button", { type: "button", id: "prev-page", disabled: page.offset === 0, onclick: () => go(page.offset - PAGE_SIZE) }, "← Previous"),
      el("button", { type: "button", id: "next-page", disabled: last >= page.total, onclick: () => go(page.offset + PAGE_SIZE) }, "Next →"),
    );
  }
  if (!state.q) search.focus();
  return { name: "apps", refresh };
}

// One app: instances with lease figures, actions, recent changes.
function appView() {
  const { params } = hashQuery();
  const env = params.get("env") || "";
  const appid = params.get("appid") || "";
  const heading = el("h2", { id: "app-title" }, `${appid} `, el("span", { class: "muted" }, `env ${env}`));
  const leaseNote = el("p", { id: "lease-note", class: "muted" });
  const instances = el("div", { id: "instances-table" });
  const changes = el("div", { id: "changes-table" });
  main.append(el("p", {}, el("a", { href: "#/" }, "← All apps")), heading, leaseNote, instances, el("h3", {}, "Recent changes"), changes);

  async function act(action, i) {
    const words = { waiting: "Drain (set waiting)", up: "Set up", cancel: "Cancel (remove)" }[action];
    const ok = await confirmAction(`${words} ${i.hostname} in zone ${i.zone} of ${appid} (env ${env})? Clients will see it on their next poll.`);
    if (!ok) return;
    try {
      const done = await api("/ui/api/action", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ action, env, appid, zone: i.zone, hostname: i.hostname }),
      });
      toast(done.message);
    } catch (error) {
      toast(error.message, true);
    }
    refresh();
  }

  async function refresh() {
    const view = await api("/ui/api/app?" + new URLSearchParams({ env, appid }));
    leaseNote.textContent = view.leases.leader !== null
      ? `Lease figures from the leader (node ${view.leases.leader}).`
      : `Lease figures unavailable: ${view.leases.note}`;
    if (!view.exists) {
      instances.replaceChildren(el("p", { id: "no-instances" }, "No instance of this app is registered in this env."));
    } else {
      const head = ["Zone", "Hostname", "Status", "Addresses", "Version", "Metadata", "Registered", "Last renew", "Lease left", "Actions"];
      instances.replaceChildren(table("instances", head, view.instances.map((i) => instanceRow(i, view.now_ms, act))));
    }
    if (view.changes.length === 0) {
      changes.replaceChildren(el("p", { class: "muted" }, "None seen by this node since it started."));
    } else {
      changes.replaceChildren(
        table(
          "changes",
          ["When", "Change", "Zone", "Hostname", "Detail", "Accepted by"],
          view.changes.map((c) =>
            el(
              "tr",
              { data: { kind: c.kind } },
              el("td", { title: new Date(c.at_ms).toISOString() }, sinceUnix(c.at_ms, view.now_ms)),
              el("td", {}, c.kind + (c.repeats > 1 ? ` ×${c.repeats}` : "")),
              el("td", {}, c.zone),
              el("td", {}, c.hostname),
              el("td", {}, c.detail),
              el("td", {}, `leader node ${c.node}`),
            ),
          ),
        ),
      );
    }
  }
  return { name: "app", refresh };
}

function instanceRow(i, nowMs, act) {
  const lease = i.lease;
  const leaseCell = lease
    ? el(
        "td",
        { class: lease.remaining_ms < 0 ? "bad lease-left" : "lease-left", data: { remainingMs: lease.remaining_ms } },
        el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width:${Math.max(0, Math.min(100, lease.remaining_ms / 900))}%` })),
        lease.remaining_ms < 0 ? `overdue ${ago(-lease.remaining_ms)}` : ago(lease.remaining_ms),
      )
    : el("td", { class: "muted lease-left" }, "unknown");
  const up = i.status === "up";
  const canAct = session.canAct;
  const why = canAct ? undefined : "Read-only: enter the cluster token";
  return el(
    "tr",
    { data: { hostname: i.hostname, zone: i.zone, status: i.status } },
    el("td", {}, i.zone),
    el("td", {}, i.hostname),
    el("td", {}, el("span", { class: up ? "badge ok status" : "badge warn status" }, i.status)),
    el("td", {}, i.addrs.map((a) => el("div", {}, el("code", {}, a)))),
    el("td", {}, i.version),
    el("td", { class: "meta" }, Object.entries(i.metadata).map(([k, v]) => el("span", {}, `${k}=${v}`))),
    el("td", { title: new Date(i.registered_ms).toISOString() }, sinceUnix(i.registered_ms, nowMs)),
    el("td", { class: "renewed" }, lease ? ago(lease.renewed_ago_ms) + " ago" : "unknown"),
    leaseCell,
    el(
      "td",
      {},
      el("button", { type: "button", class: "act-status", disabled: !canAct, title: why, onclick: () => act(up ? "waiting" : "up", i) }, up ? "Drain" : "Set up"),
      " ",
      el("button", { type: "button", class: "danger act-cancel", disabled: !canAct, title: why, onclick: () => act("cancel", i) }, "Cancel"),
    ),
  );
}

// A member's role as the leader's membership has it, against the Raft state it reports itself.
function agrees(role, reported) {
  const expected = { leader: ["Leader"], voter: ["Follower", "Candidate"], learner: ["Learner"] }[role] || [];
  return expected.includes(reported);
}

// The cluster: members, self-preservation, storage, leader changes.
function clusterView() {
  const body = el("div", { id: "cluster" });
  main.append(el("h2", {}, "Cluster"), body);

  async function refresh() {
    const c = await api("/ui/api/cluster");
    const node = c.node;
    const members = table(
      "members",
      ["Id", "Address", "Zone", "Role", "Serving", ["Applied", "num"], ["Lag", "num"], "Health"],
      c.members.map((m) =>
        el(
          "tr",
          { data: { id: m.id, role: m.role } },
          el("td", {}, m.id),
          el("td", {}, m.addr),
          el("td", {}, m.zone),
          el("td", { class: "role" }, m.role + (agrees(m.role, m.reported_role) ? "" : ` (says ${m.reported_role})`)),
          el("td", {}, m.serving ? "yes" : "no"),
          el("td", { class: "num" }, num(m.applied)),
          el("td", { class: "num" }, m.lag_entries === null ? "-" : `${num(m.lag_entries)} entries · ${num(m.lag_ms)} ms`),
          el("td", { class: m.healthy ? "ok health" : "bad health" }, m.health),
        ),
      ),
    );
    const g = c.guard.status && c.guard.status.guard;
    const guardCard = el(
      "div",
      { class: "card", id: "guard" },
      el("h3", {}, "Self-preservation"),
      g
        ? facts([
            ["State", g.protected ? "ON: evictions paused" : "off", { class: g.protected ? "bad" : "ok" }],
            ["Leases", num(c.guard.status.leases)],
            ["Renews expected / min", num(g.expected_per_min)],
            ["Threshold / min", num(g.threshold)],
            ["Renews last minute", g.renews_last_min === null ? "no full minute yet" : num(g.renews_last_min)],
            ["Renews this minute", num(g.renews_this_min)],
            ["Evicted this minute", `${num(g.evicted_this_min)} of at most ${num(g.evict_cap)}`],
            ["Reported by", `leader node ${c.guard.from}`],
          ])
        : el("p", { class: "muted" }, `Unavailable: ${c.guard.note || "the leader's lessor is not active yet"}`),
    );
    const s = c.storage;
    const storageCard = el(
      "div",
      { class: "card", id: "storage" },
      el("h3", {}, `Storage of node ${node.id}`),
      facts([
        ["Data dir", el("code", {}, s.data_dir)],
        ["Size", bytes(s.data_dir_bytes)],
        ["Free space", `${bytes(s.free_bytes)} (minimum ${bytes(s.min_free_bytes)})${s.low_space ? ": writes refused" : ""}`, { class: s.low_space ? "bad" : "" }],
        ["Last snapshot", s.snapshot ? `index ${num(s.snapshot.index)} · ${bytes(s.snapshot.bytes)} · ${ago(s.snapshot.age_ms)} ago` : "none yet"],
      ]),
    );
    const nodeCard = el(
      "div",
      { class: "card", id: "this-node" },
      el("h3", {}, `This node (${node.id})`),
      facts([
        ["Role", node.role],
        ["Leader", node.leader === null ? "none known" : `node ${node.leader}`, { id: "leader" }],
        ["Term", num(node.term)],
        ["Applied", num(node.last_applied)],
        ["Health", node.problem || "serving", { class: node.problem ? "bad" : "ok" }],
      ]),
    );
    const changes = c.leader_changes.length
      ? table(
          "leader-changes",
          ["When", "Term", "Leader"],
          c.leader_changes.map((l) => el("tr", {}, el("td", { title: new Date(l.at_ms).toISOString() }, sinceUnix(l.at_ms, c.now_ms)), el("td", {}, l.term), el("td", {}, `node ${l.leader}`))),
        )
      : el("p", { class: "muted" }, "None seen by this node since it started.");
    body.replaceChildren(
      el("h3", {}, "Members"),
      members,
      el("div", { class: "cards" }, nodeCard, guardCard, storageCard),
      el("h3", {}, "Leader changes seen by this node"),
      changes,
    );
  }
  return { name: "cluster", refresh };
}

// Charts: this node's last hour, drawn as inline SVG.
const SERIES = [
  ["registers_per_s", "Registers / s (cluster, applied)"],
  ["renews_per_s", "Renews / s (answered by this node)"],
  ["evictions_per_min", "Evictions / min"],
  ["instances", "Instances"],
  ["waiters", "Long-poll waiters"],
  ["write_mean_ms", "Write latency, mean ms (this node)"],
  ["write_max_ms", "Write latency, max ms (this node)"],
];

function chart(samples, key, title, everyS) {
  const width = 600;
  const height = 140;
  const pad = 28;
  const values = samples.map((s) => s[key]);
  const max = Math.max(1e-9, ...values);
  const last = values.length ? values[values.length - 1] : 0;
  const points = values.map((v, i) => {
    const x = pad + (values.length === 1 ? 0 : (i / (values.length - 1)) * (width - pad - 6));
    const y = height - 16 - (v / max) * (height - 30);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const round = (v) => (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10);
  return el(
    "figure",
    { class: "chart", data: { series: key } },
    el("figcaption", {}, `${title}: now ${round(last)}, max ${round(values.length ? max : 0)}`),
    svg(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title} over the last ${Math.round((samples.length * everyS) / 60)} minutes` },
      svg("text", { x: 2, y: 12, class: "axis" }, round(values.length ? max : 0)),
      svg("text", { x: 2, y: height - 18, class: "axis" }, "0"),
      svg("text", { x: pad, y: height - 3, class: "axis" }, `${Math.round(((samples.length - 1) * everyS) / 60)} min ago`),
      svg("text", { x: width - 30, y: height - 3, class: "axis" }, "now"),
      svg("polyline", { points: points.join(" ") }),
    ),
  );
}

function chartsView() {
  const body = el("div", { id: "charts" });
  main.append(el("h2", {}, "Charts"), body);
  async function refresh() {
    const c = await api("/ui/api/charts");
    const note = el("p", { class: "muted" }, `Node ${c.node}, one sample every ${c.every_s} s, the last hour kept in memory (${c.samples.length} samples so far).`);
    if (c.samples.length < 2) {
      body.replaceChildren(note, el("p", {}, "Not enough samples yet: the first points appear within a minute of start."));
      return;
    }
    body.replaceChildren(note, el("div", { class: "charts" }, SERIES.map(([key, title]) => chart(c.samples, key, title, c.every_s))));
  }
  return { name: "charts", refresh };
}

// ---- routing and refresh ----------------------------------------------------------------------------

async function render() {
  if (!current) return;
  try {
    await current.refresh();
    document.body.dataset.loaded = current.name;
  } catch (error) {
    toast(`Could not load: ${error.message}`, true);
  }
}

function route() {
  const { path } = hashQuery();
  if (path === "/app") setView("app", appView);
  else if (path === "/cluster") setView("cluster", clusterView);
  else if (path === "/charts") setView("charts", chartsView);
  else setView("apps", appsView);
  delete document.body.dataset.loaded;
  render();
}

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    const search = document.getElementById("search");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  }
});

window.addEventListener("hashchange", route);
loadSession().then(route, (error) => {
  toast(`Could not reach this node: ${error.message}`, true);
  route();
});
setInterval(() => {
  if (!document.getElementById("confirm").open) render();
}, REFRESH_MS);
