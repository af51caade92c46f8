//! Typed, validated arguments per endpoint, parsed from [`Params`] (the `model/param.go` structs of the
//! original, with the fixes of DESIGN.md "Things deliberately fixed").
//!
//! Invariants:
//! - A value of any `Arg*` type is valid: required fields present, identifiers within limits, statuses in
//!   range, timestamps `>= 0`, parallel lists of equal length. Handlers never re-check.
//! - Parsing is total: any input yields a value or a -400 [`ApiError`] naming the parameter.
//! - Unknown parameters are ignored (SDKs send `treeid`, `color`, `weight`, `sign`...).

use std::collections::BTreeMap;

use super::error::ApiError;
use super::params::Params;
use super::validate::{self as v, Field, MAX_APPIDS, MAX_SET_HOSTNAMES, MAX_VERSION_LEN};
use crate::registry::command::{RegisterArgs, SetArgs};
use crate::registry::model::{InstanceKey, STATUS_UP, STATUS_WAITING};

/// Parsing from request parameters; used by the [`Bind`](super::extract::Bind) extractor.
pub(crate) trait FromParams: Sized {
    /// Parse and validate; -400 on any failure.
    fn from_params(p: &Params) -> Result<Self, ApiError>;
}

/// `POST /discovery/register` (spec §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgRegister {
    /// The command to propose.
    pub args: RegisterArgs,
    /// `replication`: the request claims to come from a peer.
    pub replication: bool,
}

/// `POST /discovery/renew` (spec §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgRenew {
    /// The instance.
    pub key: InstanceKey,
    /// `replication`: the request claims to come from a peer.
    pub replication: bool,
    /// `dirty_timestamp` (0 when absent); only meaningful with `replication`.
    pub dirty_timestamp: i64,
}

/// `POST /discovery/cancel` (spec §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgCancel {
    /// The instance.
    pub key: InstanceKey,
    /// `replication`: the request claims to come from a peer.
    pub replication: bool,
    /// `latest_timestamp`: cursor candidate (0 when absent).
    pub latest_timestamp: i64,
}

/// `POST /discovery/set` (spec §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgSet {
    /// The command to propose.
    pub args: SetArgs,
    /// `region` (only informational).
    pub region: String,
    /// `replication`: the request claims to come from a peer.
    pub replication: bool,
}

/// `GET /discovery/fetch` (spec §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgFetch {
    /// The first `appid`.
    pub appid: String,
    /// Deploy env.
    pub env: String,
    /// Only this zone; `None` = all zones.
    pub zone: Option<String>,
    /// Status bitmask: 1 up, 2 waiting, 3 both.
    pub status: u32,
    /// `consistent`: answer linearizably.
    pub consistent: bool,
}

/// `GET /discovery/fetchs` (spec §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgFetchs {
    /// The appids, in request order, 1..=[`MAX_APPIDS`].
    pub appids: Vec<String>,
    /// Deploy env.
    pub env: String,
    /// Only this zone; `None` = all zones.
    pub zone: Option<String>,
    /// Status bitmask: 1 up, 2 waiting, 3 both.
    pub status: u32,
    /// `consistent`: answer linearizably.
    pub consistent: bool,
}

/// One watched app of a poll: the appid and the client's cursor for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppCursor {
    /// The app.
    pub appid: String,
    /// The client's `latest_timestamp` (0 = never seen).
    pub latest_timestamp: i64,
}

/// `GET /discovery/polls` (spec §2.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgPolls {
    /// Deploy env.
    pub env: String,
    /// The poller's identity (logging only: waiters are per request here).
    pub hostname: String,
    /// Only this zone; `None` = all zones.
    pub zone: Option<String>,
    /// The watched apps, in request order, 1..=[`MAX_APPIDS`].
    pub apps: Vec<AppCursor>,
}

/// `GET /discovery/poll` (spec §2.8): like polls, but only the first appid counts and a
/// `latest_timestamp` count mismatch is tolerated (the cursor is then 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgPoll {
    /// Deploy env.
    pub env: String,
    /// The poller's identity.
    pub hostname: String,
    /// Only this zone; `None` = all zones.
    pub zone: Option<String>,
    /// The first appid and its cursor.
    pub app: AppCursor,
}

const fn f(arg: &'static str, go: &'static str, param: &'static str) -> Field {
    Field::new(arg, go, param)
}

/// The instance key fields, required in register, renew and cancel.
fn instance_key(p: &Params, arg: &'static str) -> Result<InstanceKey, ApiError> {
    Ok(InstanceKey {
        zone: v::required_identifier(p, f(arg, "Zone", "zone"))?,
        env: v::required_identifier(p, f(arg, "Env", "env"))?,
        appid: v::required_identifier(p, f(arg, "AppID", "appid"))?,
        hostname: v::required_identifier(p, f(arg, "Hostname", "hostname"))?,
    })
}

fn optional_zone(p: &Params, arg: &'static str) -> Result<Option<String>, ApiError> {
    let zone = v::optional_identifier(p, f(arg, "Zone", "zone"))?;
    Ok((!zone.is_empty()).then_some(zone))
}

/// An instance status: 1 (up) or 2 (waiting); 0 is "missing".
fn instance_status(field: Field, status: i64) -> Result<u32, ApiError> {
    match status {
        0 => Err(field.required()),
        1 => Ok(STATUS_UP),
        2 => Ok(STATUS_WAITING),
        other => Err(field.invalid(format_args!("must be 1 (up) or 2 (waiting), got {other}"))),
    }
}

/// A status filter: bitmask 1..=3; 0 is "missing".
fn status_mask(p: &Params, field: Field) -> Result<u32, ApiError> {
    match p.u32(field.param)? {
        0 => Err(field.required()),
        mask @ 1..=3 => Ok(mask),
        other => Err(field.invalid(format_args!("must be 1 (up), 2 (waiting) or 3 (both), got {other}"))),
    }
}

impl FromParams for ArgRegister {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        const A: &str = "ArgRegister";
        let key = instance_key(p, A)?;
        let status = instance_status(f(A, "Status", "status"), i64::from(p.u32("status")?))?;
        let addrs = v::addrs(p, f(A, "Addrs", "addrs"))?;
        let region = v::optional_identifier(p, f(A, "Region", "region"))?;
        let version = v::text(p, f(A, "Version", "version"), MAX_VERSION_LEN)?;
        let metadata = v::metadata(f(A, "Metadata", "metadata"), p.str("metadata"))?;
        let dirty_timestamp = v::timestamp(p, f(A, "DirtyTimestamp", "dirty_timestamp"))?;
        // Parsed only so that garbage is -400 as in the original; the value has no effect.
        v::timestamp(p, f(A, "LatestTimestamp", "latest_timestamp"))?;
        let args = RegisterArgs { region, key, addrs, version, metadata, status, dirty_timestamp };
        Ok(ArgRegister { args, replication: p.bool("replication") })
    }
}

impl From<ArgRegister> for RegisterArgs {
    fn from(arg: ArgRegister) -> Self {
        arg.args
    }
}

impl FromParams for ArgRenew {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        const A: &str = "ArgRenew";
        Ok(ArgRenew {
            key: instance_key(p, A)?,
            replication: p.bool("replication"),
            dirty_timestamp: v::timestamp(p, f(A, "DirtyTimestamp", "dirty_timestamp"))?,
        })
    }
}

impl FromParams for ArgCancel {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        const A: &str = "ArgCancel";
        Ok(ArgCancel {
            key: instance_key(p, A)?,
            replication: p.bool("replication"),
            latest_timestamp: v::timestamp(p, f(A, "LatestTimestamp", "latest_timestamp"))?,
        })
    }
}

impl FromParams for ArgSet {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        const A: &str = "ArgSet";
        let zone = v::required_identifier(p, f(A, "Zone", "zone"))?;
        let env = v::required_identifier(p, f(A, "Env", "env"))?;
        let appid = v::required_identifier(p, f(A, "AppID", "appid"))?;
        let hostnames = v::identifiers(p, f(A, "Hostname", "hostname"), MAX_SET_HOSTNAMES)?;
        let status_field = f(A, "Status", "status");
        let statuses = parallel(p.i64s("status")?, hostnames.len(), status_field)?
            .into_iter()
            .map(|s| instance_status(status_field, s))
            .collect::<Result<Vec<_>, _>>()?;
        let metadata_field = f(A, "Metadata", "metadata");
        let metadata = parallel(p.values("metadata"), hostnames.len(), metadata_field)?
            .into_iter()
            .map(|raw| v::metadata(metadata_field, raw).map(Option::unwrap_or_default))
            .collect::<Result<Vec<BTreeMap<_, _>>, _>>()?;
        let set_timestamp = v::timestamp(p, f(A, "SetTimestamp", "set_timestamp"))?;
        let args = SetArgs { env, appid, zone, hostnames, statuses, metadata, set_timestamp };
        let region = v::optional_identifier(p, f(A, "Region", "region"))?;
        Ok(ArgSet { args, region, replication: p.bool("replication") })
    }
}

impl From<ArgSet> for SetArgs {
    fn from(arg: ArgSet) -> Self {
        arg.args
    }
}

/// A list that must be empty or have exactly one entry per hostname.
fn parallel<T>(values: Vec<T>, hostnames: usize, field: Field) -> Result<Vec<T>, ApiError> {
    if values.is_empty() || values.len() == hostnames {
        return Ok(values);
    }
    Err(field.invalid(format_args!(
        "{} values for {hostnames} hostname values: give none, or exactly one per hostname",
        values.len()
    )))
}

impl FromParams for ArgFetch {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        const A: &str = "ArgFetch";
        Ok(ArgFetch {
            appid: v::required_identifier(p, f(A, "AppID", "appid"))?,
            env: v::required_identifier(p, f(A, "Env", "env"))?,
            zone: optional_zone(p, A)?,
            status: status_mask(p, f(A, "Status", "status"))?,
            consistent: p.bool("consistent"),
        })
    }
}

impl FromParams for ArgFetchs {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        const A: &str = "ArgFetchs";
        Ok(ArgFetchs {
            appids: v::identifiers(p, f(A, "AppID", "appid"), MAX_APPIDS)?,
            env: v::required_identifier(p, f(A, "Env", "env"))?,
            zone: optional_zone(p, A)?,
            status: status_mask(p, f(A, "Status", "status"))?,
            consistent: p.bool("consistent"),
        })
    }
}

/// The fields polls and poll share; `cursors` as sent (not yet paired with the appids).
struct PollCommon {
    env: String,
    hostname: String,
    zone: Option<String>,
    appids: Vec<String>,
    cursors: Vec<i64>,
}

fn poll_common(p: &Params) -> Result<PollCommon, ApiError> {
    const A: &str = "ArgPolls";
    let cursor_field = f(A, "LatestTimestamp", "latest_timestamp");
    Ok(PollCommon {
        env: v::required_identifier(p, f(A, "Env", "env"))?,
        hostname: v::required_identifier(p, f(A, "Hostname", "hostname"))?,
        zone: optional_zone(p, A)?,
        appids: v::identifiers(p, f(A, "AppID", "appid"), MAX_APPIDS)?,
        cursors: p
            .i64s(cursor_field.param)?
            .into_iter()
            .map(|t| v::non_negative(cursor_field, t))
            .collect::<Result<_, _>>()?,
    })
}

impl FromParams for ArgPolls {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        let c = poll_common(p)?;
        if c.cursors.len() != c.appids.len() {
            return Err(Field::new("ArgPolls", "LatestTimestamp", "latest_timestamp").invalid(format_args!(
                "{} values for {} appid values: give exactly one per appid, in the same order",
                c.cursors.len(),
                c.appids.len()
            )));
        }
        let apps = c
            .appids
            .into_iter()
            .zip(c.cursors)
            .map(|(appid, latest_timestamp)| AppCursor { appid, latest_timestamp })
            .collect();
        Ok(ArgPolls { env: c.env, hostname: c.hostname, zone: c.zone, apps })
    }
}

impl FromParams for ArgPoll {
    fn from_params(p: &Params) -> Result<Self, ApiError> {
        let c = poll_common(p)?;
        let latest_timestamp = if c.cursors.len() == c.appids.len() { c.cursors.first().copied() } else { None };
        let appid = c.appids.into_iter().next().ok_or_else(|| Field::new("ArgPolls", "AppID", "appid").required())?;
        let app = AppCursor { appid, latest_timestamp: latest_timestamp.unwrap_or(0) };
        Ok(ArgPoll { env: c.env, hostname: c.hostname, zone: c.zone, app })
    }
}

#[cfg(test)]
mod tests;
