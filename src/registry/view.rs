//! Read-side answers (fetch, fetchs, fetch/all, polls) built from the applied state.
//!
//! Invariants:
//! - The structs here serialize to the exact wire JSON of spec §3.2: `{"instances":{zone:[..]},
//!   "latest_timestamp":n}`; there is never a `scheduler` key.
//! - Polls never answer an app with an empty instance list (spec §5.1 hazard: the Go client ignores it
//!   without advancing its cursor and busy-loops), and never with `latest_timestamp` 0 (cursors are ≥ 1
//!   by construction, see `store`).
//! - `infra.discovery` is answered from the cluster membership in every env ([`View`]), not from the
//!   registry, so clients find the servers whatever env they use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::infra::{Membership, INFRA_APPID};
use super::model::Instance;
use super::store::Registry;

/// Status bitmask for fetch: up instances.
pub const MASK_UP: u32 = 1;
/// Status bitmask for fetch: waiting instances.
#[cfg(test)]
pub const MASK_WAITING: u32 = 2;
/// Status bitmask for fetch: every instance.
#[cfg(test)]
pub const MASK_ALL: u32 = MASK_UP | MASK_WAITING;

/// One app's answer to fetch or poll (spec §3.2), exactly the wire shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Zone → instances of that zone, in hostname order. A zone whose instances were all filtered out
    /// appears with `[]` (fetch).
    pub instances: BTreeMap<String, Vec<Instance>>,
    /// The app's polling cursor.
    pub latest_timestamp: i64,
}

impl InstanceInfo {
    /// True when no zone holds an instance.
    pub fn is_empty(&self) -> bool {
        self.instances.values().all(Vec::is_empty)
    }
}

/// The polling verdict for one requested app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollDecision {
    /// (env, appid) does not exist, or the zone filter names an absent zone: listed under `"-404"`.
    Unknown,
    /// Nothing newer than the client's cursor, or nothing up to show: keep waiting.
    NotModified,
    /// The client is behind: answer now with the up instances.
    Changed(InstanceInfo),
}

/// Result of a polls request evaluated once (spec §2.9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollsAnswer {
    /// appid → info, only for the apps that changed. Empty means "wait".
    pub changed: BTreeMap<String, InstanceInfo>,
    /// Requested appids that are unknown, in request order, without duplicates.
    pub unknown: Vec<String>,
}

/// Picks zones and statuses out of an app. `zones` yields (zone, instances of that zone).
/// `None` when a zone filter names a zone the app does not have.
fn select<'a, Z, I>(zones: Z, latest_timestamp: i64, zone: Option<&str>, mask: u32) -> Option<InstanceInfo>
where
    Z: IntoIterator<Item = (&'a String, I)>,
    I: IntoIterator<Item = &'a Instance>,
{
    let zone = zone.filter(|z| !z.is_empty());
    let mut instances = BTreeMap::new();
    for (name, list) in zones {
        if zone.is_some_and(|z| z != name) {
            continue;
        }
        let kept = list.into_iter().filter(|inst| inst.status & mask != 0).cloned().collect();
        instances.insert(name.clone(), kept);
    }
    if zone.is_some() && instances.is_empty() {
        return None;
    }
    Some(InstanceInfo { instances, latest_timestamp })
}

/// Poll verdict from the app's cursor and a way to build its (zone-filtered, all-status) info.
fn decide(cursor: Option<i64>, client_cursor: i64, info: impl FnOnce() -> Option<InstanceInfo>) -> PollDecision {
    let Some(cursor) = cursor else { return PollDecision::Unknown };
    match info() {
        None => PollDecision::Unknown,
        Some(_) if cursor <= client_cursor => PollDecision::NotModified,
        Some(info) if info.is_empty() => PollDecision::NotModified,
        Some(info) => PollDecision::Changed(info),
    }
}

impl Registry {
    /// Spec §2.5: the app's instances whose status matches `status_mask` (1 up, 2 waiting, 3 both),
    /// grouped by zone; `zone` (`None` or `""` = all) restricts to one zone. `None` = -404: unknown app, or
    /// the zone is given and absent.
    pub fn fetch(&self, env: &str, appid: &str, zone: Option<&str>, status_mask: u32) -> Option<InstanceInfo> {
        let app = self.app(env, appid)?;
        let zones = app.zones.iter().map(|(name, hosts)| (name, hosts.values().map(|s| &s.instance)));
        select(zones, app.latest_timestamp, zone, status_mask)
    }

    /// Spec §2.7: every instance of every env and zone, flattened under its appid, unfiltered.
    pub fn fetch_all(&self) -> BTreeMap<String, Vec<Instance>> {
        let mut all: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for (key, app) in self.apps() {
            all.entry(key.appid.clone()).or_default().extend(app.instances().map(|s| s.instance.clone()));
        }
        all
    }

    /// Spec §2.9/§4.6 for one app: up instances only; an app with no up instance is `NotModified`.
    pub fn poll(&self, env: &str, appid: &str, client_cursor: i64, zone: Option<&str>) -> PollDecision {
        decide(self.cursor(env, appid), client_cursor, || self.fetch(env, appid, zone, MASK_UP))
    }
}

/// The read side as clients see it: the registry, plus `infra.discovery` synthesized from the membership.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The applied state.
    pub registry: &'a Registry,
    /// The current cluster membership.
    pub membership: &'a Membership,
}

impl<'a> View<'a> {
    /// Combines the applied state and the membership.
    pub fn new(registry: &'a Registry, membership: &'a Membership) -> Self {
        Self { registry, membership }
    }

    /// [`Registry::fetch`], with `infra.discovery` answered from the membership in any env.
    pub fn fetch(&self, env: &str, appid: &str, zone: Option<&str>, status_mask: u32) -> Option<InstanceInfo> {
        if appid != INFRA_APPID {
            return self.registry.fetch(env, appid, zone, status_mask);
        }
        let info = self.membership.instance_info(env);
        let zones = info.instances.iter().map(|(name, list)| (name, list.iter()));
        select(zones, info.latest_timestamp, zone, status_mask)
    }

    /// Spec §2.6: fetch for several appids; unknown ones are silently left out.
    pub fn fetchs(
        &self,
        env: &str,
        appids: &[String],
        zone: Option<&str>,
        mask: u32,
    ) -> BTreeMap<String, InstanceInfo> {
        appids.iter().filter_map(|appid| Some((appid.clone(), self.fetch(env, appid, zone, mask)?))).collect()
    }

    /// [`Registry::poll`], with `infra.discovery` answered from the membership in any env.
    pub fn poll(&self, env: &str, appid: &str, client_cursor: i64, zone: Option<&str>) -> PollDecision {
        if appid != INFRA_APPID {
            return self.registry.poll(env, appid, client_cursor, zone);
        }
        let cursor = Some(self.membership.cursor());
        decide(cursor, client_cursor, || self.fetch(env, appid, zone, MASK_UP))
    }

    /// Spec §2.9: evaluates every (appid, client cursor) once. An empty `changed` means the caller waits
    /// for a change of one of the apps and evaluates again.
    pub fn polls(&self, env: &str, apps: &[(String, i64)], zone: Option<&str>) -> PollsAnswer {
        let mut answer = PollsAnswer::default();
        for (appid, client_cursor) in apps {
            match self.poll(env, appid, *client_cursor, zone) {
                PollDecision::Changed(info) => {
                    answer.changed.insert(appid.clone(), info);
                }
                PollDecision::Unknown if !answer.unknown.contains(appid) => answer.unknown.push(appid.clone()),
                PollDecision::Unknown | PollDecision::NotModified => {}
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::command::{Command, RegisterArgs};
    use crate::registry::infra::Member;
    use crate::registry::testutil::*;

    const T: i64 = 1_700_000_000_123_456_789;

    /// demo in dev: z1 {a up, b waiting}, z2 {c waiting}; demo in prod: z1 {d up}.
    fn sample() -> Registry {
        let mut reg = Registry::new();
        let cmds = vec![
            register(&key("dev", "demo", "z1", "a")),
            register_with_status(&key("dev", "demo", "z1", "b"), 2),
            register_with_status(&key("dev", "demo", "z2", "c"), 2),
            register(&key("prod", "demo", "z1", "d")),
        ];
        reg.apply(1, &batch(T, cmds));
        reg
    }

    fn hostnames(info: &InstanceInfo) -> Vec<(String, Vec<String>)> {
        let zones = info.instances.iter();
        zones.map(|(z, l)| (z.clone(), l.iter().map(|i| i.hostname.to_string()).collect())).collect()
    }

    fn zones(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        pairs.iter().map(|(z, hs)| ((*z).to_owned(), hs.iter().map(|h| (*h).to_owned()).collect())).collect()
    }

    #[test]
    fn golden_instance_json_follows_the_wire_field_order() {
        let k = key("dev", "demo.svc", "sh001", "host-a");
        let mut reg = Registry::new();
        let args = RegisterArgs {
            addrs: vec!["grpc://10.0.0.5:9000".into(), "http://10.0.0.5:8000".into()],
            metadata: Some(map(&[("weight", "10")])),
            ..register_args(&k)
        };
        reg.apply(1, &batch(T, vec![Command::Register(args)]));
        let json = serde_json::to_string(&reg.get(&k).expect("registered").instance).expect("json");
        let expected = concat!(
            r#"{"region":"sh","zone":"sh001","env":"dev","appid":"demo.svc","hostname":"host-a","#,
            r#""addrs":["grpc://10.0.0.5:9000","http://10.0.0.5:8000"],"version":"v1","metadata":{"weight":"10"},"#,
            r#""status":1,"reg_timestamp":1700000000123456789,"up_timestamp":1700000000123456789,"#,
            r#""renew_timestamp":1700000000123456789,"dirty_timestamp":1700000000123456789,"#,
            r#""latest_timestamp":1700000000123456789}"#
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn golden_instance_info_json_has_no_scheduler() {
        let k = key("dev", "demo", "z1", "a");
        let reg = registry_with(std::slice::from_ref(&k));
        let info = reg.fetch("dev", "demo", None, MASK_ALL).expect("known");
        let json = serde_json::to_string(&info).expect("json");
        let expected = concat!(
            r#"{"instances":{"z1":[{"region":"sh","zone":"z1","env":"dev","appid":"demo","hostname":"a","#,
            r#""addrs":["grpc://a:9000"],"version":"v1","metadata":null,"status":1,"reg_timestamp":1000,"#,
            r#""up_timestamp":1000,"renew_timestamp":1000,"dirty_timestamp":1000,"latest_timestamp":1000}]},"#,
            r#""latest_timestamp":1000}"#
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn fetch_filters_by_status_mask_and_zone() {
        let reg = sample();
        let up = reg.fetch("dev", "demo", None, MASK_UP).expect("known");
        assert_eq!(hostnames(&up), zones(&[("z1", &["a"]), ("z2", &[])]), "filtered zone still appears");
        let waiting = reg.fetch("dev", "demo", None, MASK_WAITING).expect("known");
        assert_eq!(hostnames(&waiting), zones(&[("z1", &["b"]), ("z2", &["c"])]));
        let all = reg.fetch("dev", "demo", Some("z1"), MASK_ALL).expect("known");
        assert_eq!(hostnames(&all), zones(&[("z1", &["a", "b"])]));
        assert_eq!(all.latest_timestamp, reg.cursor("dev", "demo").expect("cursor"));
        let everything = reg.fetch("dev", "demo", Some(""), MASK_ALL).expect("empty zone = all");
        assert_eq!(everything.instances.len(), 2);
        assert_eq!(reg.fetch("dev", "demo", Some("z9"), MASK_ALL), None, "absent zone");
        assert_eq!(reg.fetch("dev", "nope", None, MASK_ALL), None, "unknown app");
        assert_eq!(reg.fetch("uat", "demo", None, MASK_ALL), None, "env is part of the identity");
    }

    #[test]
    fn fetch_all_flattens_envs_and_zones_under_the_appid() {
        let all = sample().fetch_all();
        let names: Vec<_> = all["demo"].iter().map(|i| (&*i.env, &*i.hostname)).collect();
        assert_eq!(names, vec![("dev", "a"), ("dev", "b"), ("dev", "c"), ("prod", "d")]);
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn poll_decisions() {
        let reg = sample();
        let cursor = reg.cursor("dev", "demo").expect("cursor");
        assert_eq!(reg.poll("dev", "nope", 0, None), PollDecision::Unknown);
        assert_eq!(reg.poll("dev", "demo", 0, Some("z9")), PollDecision::Unknown);
        assert_eq!(reg.poll("dev", "demo", cursor, None), PollDecision::NotModified);
        assert_eq!(reg.poll("dev", "demo", cursor + 5, None), PollDecision::NotModified);
        let PollDecision::Changed(info) = reg.poll("dev", "demo", cursor - 1, None) else {
            panic!("client behind: changed");
        };
        assert_eq!(hostnames(&info), zones(&[("z1", &["a"]), ("z2", &[])]), "up instances only");
        assert_eq!(info.latest_timestamp, cursor);
    }

    #[test]
    fn an_app_without_up_instances_is_not_modified() {
        let reg = sample();
        // z2 holds only a waiting instance: answering would hand the client an empty list.
        assert_eq!(reg.poll("dev", "demo", 0, Some("z2")), PollDecision::NotModified);
        let mut only_waiting = Registry::new();
        only_waiting.apply(1, &batch(T, vec![register_with_status(&key("dev", "w", "z1", "a"), 2)]));
        assert_eq!(only_waiting.poll("dev", "w", 0, None), PollDecision::NotModified);
    }

    #[test]
    fn polls_collects_changed_and_unknown_apps() {
        let reg = sample();
        let membership = Membership::new(Vec::new(), 0);
        let view = View::new(&reg, &membership);
        let cursor = reg.cursor("dev", "demo").expect("cursor");
        let req = |c: i64| vec![("demo".to_owned(), c), ("ghost".to_owned(), 0), ("ghost".to_owned(), 0)];
        let answer = view.polls("dev", &req(0), None);
        assert_eq!(answer.changed.keys().collect::<Vec<_>>(), vec!["demo"]);
        assert!(answer.changed.values().all(|info| info.latest_timestamp != 0 && !info.is_empty()));
        assert_eq!(answer.unknown, vec!["ghost".to_owned()]);
        let waiting = view.polls("dev", &req(cursor), None);
        assert!(waiting.changed.is_empty(), "nothing newer: wait");
        assert_eq!(waiting.unknown, vec!["ghost".to_owned()]);
    }

    #[test]
    fn fetchs_omits_unknown_apps() {
        let reg = sample();
        let membership = Membership::default();
        let view = View::new(&reg, &membership);
        let got = view.fetchs("dev", &["demo".into(), "ghost".into()], None, MASK_ALL);
        assert_eq!(got.keys().collect::<Vec<_>>(), vec!["demo"]);
    }

    #[test]
    fn infra_discovery_is_answered_from_the_membership_in_any_env() {
        let reg = sample();
        let members = vec![
            Member { id: 2, addr: "10.0.0.2:7171".into(), zone: "z1".into(), region: "sh".into() },
            Member { id: 1, addr: "10.0.0.1:7171".into(), zone: "z1".into(), region: "sh".into() },
            Member { id: 3, addr: "10.0.0.3:7171".into(), zone: "z2".into(), region: "sh".into() },
        ];
        let membership = Membership::new(members, 7);
        let view = View::new(&reg, &membership);
        for env in ["dev", "some-env-nobody-registered"] {
            let PollDecision::Changed(info) = view.poll(env, INFRA_APPID, 0, None) else {
                panic!("infra.discovery visible in {env}");
            };
            assert_eq!(info.latest_timestamp, 7);
            let addrs: Vec<_> = info.instances["z1"].iter().map(|i| i.addrs.as_ref().map(|a| a.to_vec())).collect();
            assert_eq!(
                addrs,
                vec![Some(vec!["http://10.0.0.1:7171".into()]), Some(vec!["http://10.0.0.2:7171".into()])]
            );
            assert!(info.instances.values().flatten().all(|i| i.status == 1 && &*i.env == env));
        }
        assert_eq!(view.poll("dev", INFRA_APPID, 7, None), PollDecision::NotModified);
        let z2 = view.fetch("dev", INFRA_APPID, Some("z2"), MASK_UP).expect("zone z2");
        assert_eq!(hostnames(&z2), zones(&[("z2", &["10.0.0.3:7171"])]));
        assert_eq!(view.poll("dev", INFRA_APPID, 0, Some("z9")), PollDecision::Unknown);
        // Registry apps still come from the registry.
        assert_eq!(view.fetch("dev", "demo", None, MASK_ALL), reg.fetch("dev", "demo", None, MASK_ALL));
    }
}
