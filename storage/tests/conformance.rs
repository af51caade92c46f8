//! openraft's own storage conformance suite against the sled stores, each case in a fresh data dir.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{KvApp, LogStore, Sm, TestConfig};
use discovery_storage::open_storage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use tempfile::TempDir;

struct FreshDir;

impl StoreBuilder<TestConfig, LogStore, Sm, TempDir> for FreshDir {
    async fn build(&self) -> Result<(TempDir, LogStore, Sm), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open_storage::<TestConfig, _>(dir.path(), 1, Arc::new(KvApp::default()))
            .map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(FreshDir).unwrap();
}
