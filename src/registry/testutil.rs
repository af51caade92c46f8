//! Builders shared by the registry's unit tests.

use std::collections::BTreeMap;

use super::command::{Batch, Command, RegisterArgs, SetArgs};
use super::model::{InstanceKey, STATUS_UP};
use super::store::Registry;

/// The key (env, appid, zone, hostname).
pub(crate) fn key(env: &str, appid: &str, zone: &str, hostname: &str) -> InstanceKey {
    InstanceKey { env: env.into(), appid: appid.into(), zone: zone.into(), hostname: hostname.into() }
}

/// A valid register of `key`, status up, one address derived from the hostname.
pub(crate) fn register_args(key: &InstanceKey) -> RegisterArgs {
    RegisterArgs {
        region: "sh".into(),
        key: key.clone(),
        addrs: vec![format!("grpc://{}:9000", key.hostname)],
        version: "v1".into(),
        metadata: None,
        status: STATUS_UP,
        dirty_timestamp: 0,
    }
}

/// `Command::Register` of [`register_args`].
pub(crate) fn register(key: &InstanceKey) -> Command {
    Command::Register(register_args(key))
}

/// `Command::Register` with a status.
pub(crate) fn register_with_status(key: &InstanceKey, status: u32) -> Command {
    Command::Register(RegisterArgs { status, ..register_args(key) })
}

/// A set of (env, appid, zone) with nothing to change yet.
pub(crate) fn set_args(env: &str, appid: &str, zone: &str, hostnames: &[&str]) -> SetArgs {
    SetArgs {
        env: env.into(),
        appid: appid.into(),
        zone: zone.into(),
        hostnames: hostnames.iter().map(|h| (*h).to_owned()).collect(),
        statuses: Vec::new(),
        metadata: Vec::new(),
        set_timestamp: 0,
    }
}

/// A string map from pairs.
pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A batch stamped `stamp`.
pub(crate) fn batch(stamp: i64, commands: Vec<Command>) -> Batch {
    Batch { stamp_ns: stamp, commands: commands.into() }
}

/// A registry with the given instances registered one per entry, at indexes 1.. and stamps 1000, 2000, …
pub(crate) fn registry_with(keys: &[InstanceKey]) -> Registry {
    let mut reg = Registry::new();
    for (i, k) in keys.iter().enumerate() {
        let n = i as i64 + 1;
        reg.apply(n as u64, &batch(n * 1000, vec![register(k)]));
    }
    reg
}
