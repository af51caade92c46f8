//! Write batching: concurrent register / cancel / set calls share Raft entries (one `client_write` per
//! batch), and each caller gets the outcome of its own command.

use futures::future::join_all;

use crate::support::{exclusive, Inst, TestNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_and_each_caller_gets_its_own_outcome() {
    let _gate = exclusive().await;
    let node = TestNode::start().await;
    node.wait_active_leader().await;
    let live: Vec<Inst> = (0..100).map(|i| Inst::new("dev", "batch.svc", &format!("live-{i}"))).collect();
    for inst in live.iter().take(10) {
        node.register(inst).await;
    }
    let before = node.last_log_index().expect("an initialized log");

    // 100 registers and 50 cancels of unknown instances (-404), all at once.
    let node = &node;
    let registers = live.iter().map(|inst| async move { node.post("/discovery/register", &inst.form()).await });
    let ghosts: Vec<Inst> = (0..50).map(|i| Inst::new("dev", "batch.svc", &format!("ghost-{i}"))).collect();
    let ghost_cancels = ghosts.iter().map(|inst| async move { node.post("/discovery/cancel", &inst.key_form()).await });
    let (registered, cancelled) = tokio::join!(join_all(registers), join_all(ghost_cancels));

    assert!(registered.iter().all(|r| r.code() == 0), "every register answered 0");
    assert!(cancelled.iter().all(|r| r.code() == -404), "every cancel of an unknown instance answered -404");
    let used = node.last_log_index().expect("log") - before;
    eprintln!("150 concurrent writes used {used} Raft entries");
    assert!(used < 150, "concurrent writes must share entries, used {used} for 150 writes");
    assert!(used >= 1);

    let mut hosts = node.hostnames("dev", "batch.svc").await;
    hosts.sort();
    let mut expected: Vec<String> = live.iter().map(|i| i.hostname.clone()).collect();
    expected.sort();
    assert_eq!(hosts, expected, "every acknowledged register is applied, no ghost appears");
}
