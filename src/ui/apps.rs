//! `GET /ui/api/apps`: every env's apps, filtered (`q` in the appid, `env`, `zone`, `status`) and paged
//! (`offset`, `limit`), with up and waiting counts per zone.
//!
//! Invariants:
//! - Sorted by (env, appid), the registry's own order, so pages are stable while nothing changes.
//! - One pass over the apps (O(instances) for the counts); the registry is a copy-on-write map, so the pass
//!   runs on an O(1) clone and apply is never held up by a console.
//! - `limit` is at most [`MAX_LIMIT`]: 10,000 apps are read a page at a time.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ConsoleError;
use crate::registry::model::STATUS_UP;
use crate::registry::store::{AppEntry, Hosts, Registry};
use crate::service::Service;

/// Apps per page unless asked otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// Most apps per page.
pub(crate) const MAX_LIMIT: usize = 500;

/// The query of the apps list.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AppsQuery {
    /// Case-insensitive part of the appid.
    #[serde(default)]
    pub q: String,
    /// Only this env (empty: all).
    #[serde(default)]
    pub env: String,
    /// Only apps with instances in this zone (empty: all).
    #[serde(default)]
    pub zone: String,
    /// `up`: apps with an up instance; `waiting`: with a waiting one; `none_up`: with no up instance.
    #[serde(default)]
    pub status: String,
    /// Apps to skip.
    #[serde(default)]
    pub offset: usize,
    /// Apps to return (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub limit: Option<usize>,
}

/// Up and waiting instances of one zone of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ZoneCounts {
    /// The zone.
    pub zone: String,
    /// Instances with status up.
    pub up: usize,
    /// Instances with any other status (waiting).
    pub waiting: usize,
}

/// One app of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AppRow {
    /// Env.
    pub env: String,
    /// Appid.
    pub appid: String,
    /// Up instances in all zones.
    pub up: usize,
    /// Waiting instances in all zones.
    pub waiting: usize,
    /// Per zone, by zone name.
    pub zones: Vec<ZoneCounts>,
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AppsPage {
    /// Apps matching the filters (all pages).
    pub total: usize,
    /// Offset of this page.
    pub offset: usize,
    /// Page size used.
    pub limit: usize,
    /// The page.
    pub apps: Vec<AppRow>,
    /// Every env with apps (for the filter).
    pub envs: Vec<String>,
    /// Every zone with instances (for the filter).
    pub zones: Vec<String>,
    /// Instances in the registry.
    pub instances: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFilter {
    Any,
    Up,
    Waiting,
    NoneUp,
}

fn status_filter(text: &str) -> Result<StatusFilter, ConsoleError> {
    match text {
        "" | "any" => Ok(StatusFilter::Any),
        "up" => Ok(StatusFilter::Up),
        "waiting" => Ok(StatusFilter::Waiting),
        "none_up" => Ok(StatusFilter::NoneUp),
        other => Err(ConsoleError::bad_request(format!(
            "invalid status filter {other:?}: use up, waiting, none_up or leave it empty"
        ))),
    }
}

fn row(env: &str, appid: &str, app: &AppEntry) -> AppRow {
    let zones: Vec<ZoneCounts> = app
        .zones
        .iter()
        .map(|(zone, hosts)| {
            let up = hosts.values().filter(|s| s.instance.status == STATUS_UP).count();
            ZoneCounts { zone: zone.clone(), up, waiting: hosts.len() - up }
        })
        .collect();
    AppRow {
        env: env.to_string(),
        appid: appid.to_string(),
        up: zones.iter().map(|z| z.up).sum(),
        waiting: zones.iter().map(|z| z.waiting).sum(),
        zones,
    }
}

/// The page `query` asks for.
pub(crate) fn list_apps(registry: &Registry, query: &AppsQuery) -> Result<AppsPage, ConsoleError> {
    let status = status_filter(&query.status)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let needle = query.q.trim().to_lowercase();
    let mut envs = BTreeSet::new();
    let mut zones = BTreeSet::new();
    let mut total = 0;
    let mut instances = 0;
    let mut apps = Vec::new();
    for (key, app) in registry.apps() {
        envs.insert(key.env.as_str());
        zones.extend(app.zones.keys().map(String::as_str));
        instances += app.zones.values().map(Hosts::len).sum::<usize>();
        if (!query.env.is_empty() && key.env != query.env)
            || (!needle.is_empty() && !key.appid.to_lowercase().contains(&needle))
            || (!query.zone.is_empty() && !app.zones.contains_key(&query.zone))
        {
            continue;
        }
        let matches = |row: &AppRow| match status {
            StatusFilter::Any => true,
            StatusFilter::Up => row.up > 0,
            StatusFilter::Waiting => row.waiting > 0,
            StatusFilter::NoneUp => row.up == 0,
        };
        // Counting is only needed for a status filter or an app on this page.
        let in_page = total >= query.offset && apps.len() < limit;
        if status == StatusFilter::Any && !in_page {
            total += 1;
            continue;
        }
        let row = row(&key.env, &key.appid, app);
        if !matches(&row) {
            continue;
        }
        if in_page {
            apps.push(row);
        }
        total += 1;
    }
    Ok(AppsPage {
        total,
        offset: query.offset,
        limit,
        apps,
        envs: envs.into_iter().map(str::to_string).collect(),
        zones: zones.into_iter().map(str::to_string).collect(),
        instances,
    })
}

/// The handler.
pub(crate) async fn apps(
    State(state): State<Service>,
    Query(query): Query<AppsQuery>,
) -> Result<Json<AppsPage>, ConsoleError> {
    // A copy (apps are shared, so this is one reference count per app): the lock is not held while listing.
    let registry = state.read_registry(Registry::clone);
    list_apps(&registry, &query).map(Json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::command::Batch;
    use crate::registry::testutil::{key, register, register_with_status};

    fn registry() -> Registry {
        let mut registry = Registry::new();
        let commands = vec![
            register(&key("dev", "demo.svc", "sh001", "a")),
            register_with_status(&key("dev", "demo.svc", "sh002", "b"), 2),
            register(&key("dev", "goim.comet", "sh001", "c")),
            register_with_status(&key("prod", "Main.Account", "sh002", "d"), 2),
        ];
        for (i, command) in commands.into_iter().enumerate() {
            registry.apply(i as u64 + 1, &Batch { stamp_ns: 1_000 * (i as i64 + 1), commands: vec![command].into() });
        }
        registry
    }

    fn names(page: &AppsPage) -> Vec<String> {
        page.apps.iter().map(|a| format!("{}/{}", a.env, a.appid)).collect()
    }

    #[test]
    fn counts_per_zone_and_filter_lists() {
        let page = list_apps(&registry(), &AppsQuery::default()).unwrap();
        assert_eq!(names(&page), ["dev/demo.svc", "dev/goim.comet", "prod/Main.Account"]);
        assert_eq!((page.total, page.instances), (3, 4));
        assert_eq!(page.envs, ["dev", "prod"]);
        assert_eq!(page.zones, ["sh001", "sh002"]);
        let demo = &page.apps[0];
        assert_eq!((demo.up, demo.waiting), (1, 1));
        assert_eq!(
            demo.zones,
            [
                ZoneCounts { zone: "sh001".into(), up: 1, waiting: 0 },
                ZoneCounts { zone: "sh002".into(), up: 0, waiting: 1 }
            ]
        );
    }

    #[test]
    fn filters_combine() {
        let r = registry();
        let q = |q: &str, env: &str, zone: &str, status: &str| AppsQuery {
            q: q.into(),
            env: env.into(),
            zone: zone.into(),
            status: status.into(),
            ..AppsQuery::default()
        };
        assert_eq!(names(&list_apps(&r, &q("ACCOUNT", "", "", "")).unwrap()), ["prod/Main.Account"]);
        assert_eq!(names(&list_apps(&r, &q("", "dev", "sh002", "")).unwrap()), ["dev/demo.svc"]);
        assert_eq!(names(&list_apps(&r, &q("", "", "", "waiting")).unwrap()), ["dev/demo.svc", "prod/Main.Account"]);
        assert_eq!(names(&list_apps(&r, &q("", "", "", "none_up")).unwrap()), ["prod/Main.Account"]);
        assert_eq!(names(&list_apps(&r, &q("o", "dev", "", "up")).unwrap()), ["dev/demo.svc", "dev/goim.comet"]);
        assert_eq!(list_apps(&r, &q("nothing", "", "", "")).unwrap().total, 0);
        let bad = list_apps(&r, &q("", "", "", "healthy")).unwrap_err();
        assert!(bad.to_string().contains("\"healthy\""), "{bad}");
    }

    #[test]
    fn pages_are_bounded_and_count_every_match() {
        let mut registry = Registry::new();
        for i in 0..1_200u64 {
            let command = register(&key("dev", &format!("app-{i:04}"), "z", "h"));
            registry.apply(i + 1, &Batch { stamp_ns: 1_000 + i as i64, commands: vec![command].into() });
        }
        let page =
            list_apps(&registry, &AppsQuery { offset: 1_000, limit: Some(10_000), ..AppsQuery::default() }).unwrap();
        assert_eq!((page.total, page.limit, page.apps.len()), (1_200, MAX_LIMIT, 200));
        assert_eq!(page.apps[0].appid, "app-1000");
        let waiting = AppsQuery { status: "up".into(), offset: 5, limit: Some(3), ..AppsQuery::default() };
        let page = list_apps(&registry, &waiting).unwrap();
        assert_eq!(
            (page.total, names(&page)),
            (1_200, vec!["dev/app-0005".into(), "dev/app-0006".into(), "dev/app-0007".into()])
        );
    }
}
