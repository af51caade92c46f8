//! The plain status page, for browsers without JavaScript (the console links to it from `<noscript>`):
//! `GET /ui/plain` (members, leader, apps per env, self-preservation) and `GET /ui/app?env=&appid=` (one
//! app's instances). Server-rendered HTML, refreshed by the browser.
//!
//! Everything shown is read from this node's state; other members' applied index and health come from
//! their `/admin/status`, asked with a short timeout so a dead member shows as unreachable instead of
//! stalling the page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::html::{self, escape, page};
use super::members::{member_rows, MemberRow};
use crate::registry::model::{Instance, STATUS_UP};
use crate::service::Service;

/// Routes of the plain status page.
pub(crate) fn routes() -> Router<Service> {
    Router::new().route("/ui/plain", get(index)).route("/ui/app", get(app_page))
}

/// Instance counts of one app.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    up: usize,
    total: usize,
}

async fn index(State(state): State<Service>) -> Html<String> {
    let members = member_rows(&state).await;
    let apps = app_counts(&state);
    let mut body = String::new();
    render_members(&mut body, &members);
    render_guard(&mut body, &state);
    render_apps(&mut body, &apps);
    Html(page("discovery", &body))
}

fn app_counts(state: &Service) -> BTreeMap<String, BTreeMap<String, Counts>> {
    state.read_registry(|registry| {
        let mut by_env: BTreeMap<String, BTreeMap<String, Counts>> = BTreeMap::new();
        for (key, app) in registry.apps() {
            let counts = by_env.entry(key.env.clone()).or_default().entry(key.appid.clone()).or_default();
            for stored in app.instances() {
                counts.total += 1;
                counts.up += usize::from(stored.instance.status == STATUS_UP);
            }
        }
        by_env
    })
}

fn render_members(out: &mut String, members: &[MemberRow]) {
    let leader = members.iter().find(|m| m.role == "Leader").map_or("none".to_string(), |m| m.addr.clone());
    let _ = write!(out, "<h2>Cluster</h2><p>Leader: <b id=\"leader\">{}</b></p>", escape(&leader));
    out.push_str("<table id=\"members\"><tr><th>id</th><th>address</th><th>zone</th><th>role</th><th>applied</th><th>health</th></tr>");
    for m in members {
        let applied = m.applied.map_or("-".to_string(), |a| a.to_string());
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            m.id,
            escape(&m.addr),
            escape(&m.zone),
            escape(&m.role),
            applied,
            if m.healthy { "ok" } else { "bad" },
            escape(&m.health),
        );
    }
    out.push_str("</table>");
}

fn render_guard(out: &mut String, state: &Service) {
    out.push_str("<h2>Self-preservation</h2>");
    let status = state.lease_status();
    match status.guard {
        None => out.push_str("<p id=\"guard\">Decided by the leader (this node does not run the lessor).</p>"),
        Some(g) => {
            let last = g.renews_last_min.map_or("no full minute yet".to_string(), |n| n.to_string());
            let _ = write!(
                out,
                "<p id=\"guard\">{} &middot; leases {} &middot; expected renews/min {} (threshold {}) &middot; renews last minute {} &middot; evicted this minute {} of at most {}</p>",
                if g.protected { "<b class=\"bad\">ON: evictions paused</b>" } else { "<span class=\"ok\">off</span>" },
                status.leases,
                g.expected_per_min,
                g.threshold,
                last,
                g.evicted_this_min,
                g.evict_cap,
            );
        }
    }
}

fn render_apps(out: &mut String, apps: &BTreeMap<String, BTreeMap<String, Counts>>) {
    out.push_str("<h2>Apps</h2>");
    if apps.is_empty() {
        out.push_str("<p>No instance is registered.</p>");
    }
    for (env, list) in apps {
        let _ = write!(
            out,
            "<h3>env {}</h3><table class=\"apps\"><tr><th>appid</th><th>up</th><th>instances</th></tr>",
            escape(env)
        );
        for (appid, counts) in list {
            let _ = write!(
                out,
                "<tr><td><a href=\"/ui/app?env={}&amp;appid={}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                html::url_encode(env),
                html::url_encode(appid),
                escape(appid),
                counts.up,
                counts.total,
            );
        }
        out.push_str("</table>");
    }
}

/// Query of the app page.
#[derive(Debug, Deserialize)]
struct AppQuery {
    env: Option<String>,
    appid: Option<String>,
}

async fn app_page(State(state): State<Service>, Query(query): Query<AppQuery>) -> Html<String> {
    let (env, appid) = (query.env.unwrap_or_default(), query.appid.unwrap_or_default());
    let (cursor, instances): (Option<i64>, Vec<Instance>) =
        state.read_registry(|registry| match registry.app(&env, &appid) {
            Some(app) => (Some(app.latest_timestamp), app.instances().map(|s| s.instance.clone()).collect()),
            None => (None, Vec::new()),
        });
    let mut body =
        format!("<p><a href=\"/ui/plain\">&larr; all apps</a></p><h2>{} in env {}</h2>", escape(&appid), escape(&env));
    match cursor {
        None => body.push_str("<p>No such app in this env.</p>"),
        Some(cursor) => {
            let _ = write!(body, "<p>latest_timestamp {cursor}</p>");
            body.push_str("<table id=\"instances\"><tr><th>zone</th><th>hostname</th><th>status</th><th>addrs</th><th>version</th><th>metadata</th></tr>");
            for i in &instances {
                let metadata =
                    i.metadata.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()).unwrap_or_default();
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&i.zone),
                    escape(&i.hostname),
                    if i.status == STATUS_UP { "up" } else { "waiting" },
                    escape(&i.addrs.as_ref().map(|a| a.to_vec().join(" ")).unwrap_or_default()),
                    escape(&i.version),
                    escape(&metadata),
                );
            }
            body.push_str("</table>");
        }
    }
    Html(page(&format!("{appid} - discovery"), &body))
}
