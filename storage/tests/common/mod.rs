//! Shared by the integration tests: a small type config, a key-value `Application`, entry builders.

#![allow(dead_code)] // each test binary uses a different part of this module
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor; // used by declare_raft_types! for the default SnapshotData
use std::path::Path;
use std::sync::{Arc, Mutex};

use discovery_storage::{open_storage, Application, SledLogStore, StateMachineStore};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The type config of these tests: key-value commands, node ids are u64, nodes are `BasicNode`.
    pub TestConfig:
        D = TestCmd,
        R = TestResp,
);

/// A replicated command: set a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCmd {
    pub key: String,
    pub value: String,
}

/// What apply answers: the key's previous value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResp {
    pub previous: Option<String>,
}

pub type LogStore = SledLogStore<TestConfig>;
pub type Sm = StateMachineStore<TestConfig, KvApp>;

/// A key-value map driven by the log; records the size of every `apply` batch.
#[derive(Debug, Default)]
pub struct KvApp {
    kv: Mutex<BTreeMap<String, String>>,
    batches: Mutex<Vec<usize>>,
}

impl KvApp {
    pub fn kv(&self) -> BTreeMap<String, String> {
        self.kv.lock().unwrap().clone()
    }

    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }
}

impl Application<TestConfig> for KvApp {
    fn apply(&self, entries: Vec<(LogId<u64>, TestCmd)>) -> Vec<TestResp> {
        self.batches.lock().unwrap().push(entries.len());
        let mut kv = self.kv.lock().unwrap();
        entries.into_iter().map(|(_, cmd)| TestResp { previous: kv.insert(cmd.key, cmd.value) }).collect()
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&*self.kv.lock().unwrap()).map_err(|e| e.to_string())
    }

    fn restore(&self, data: &[u8]) -> Result<(), String> {
        *self.kv.lock().unwrap() = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Open `dir` as node 1 with a fresh application.
pub fn open(dir: &Path) -> (LogStore, Sm, Arc<KvApp>) {
    let app = Arc::new(KvApp::default());
    let (log, sm) = open_storage::<TestConfig, _>(dir, 1, Arc::clone(&app)).unwrap();
    (log, sm, app)
}

pub fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

pub fn normal(term: u64, index: u64, key: &str, value: &str) -> Entry<TestConfig> {
    let cmd = TestCmd { key: key.to_string(), value: value.to_string() };
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(cmd) }
}

pub fn blank(term: u64, index: u64) -> Entry<TestConfig> {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }
}

pub fn membership(term: u64, index: u64, voters: &[u64]) -> Entry<TestConfig> {
    let voters: BTreeSet<u64> = voters.iter().copied().collect();
    Entry { log_id: log_id(term, index), payload: EntryPayload::Membership(Membership::new(vec![voters], None)) }
}
