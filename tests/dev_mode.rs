//! Dev mode end to end: the real binary with no cluster flags, killed with SIGKILL and restarted on the
//! same data dir, comes back as leader with every acknowledged write; and start-up refuses bad input
//! with a clear message.

mod support;

use std::time::Duration;

use discovery::client::{Client, ClientError, InstanceKey, Registration};
use support::{run_to_exit, NodeProc};

async fn register(node: &NodeProc, host: usize) -> Result<(), ClientError> {
    let key = InstanceKey::new("dev", "demo.svc", "sh001", &format!("host-{host}"));
    Client::new(&node.addr).register(&Registration::new(key, [format!("grpc://10.0.0.{host}:9000")])).await
}

async fn fetch_hosts(node: &NodeProc) -> Vec<String> {
    let info = Client::new(&node.addr).fetch("dev", "demo.svc", None, 3).await.expect("fetch");
    let mut hosts: Vec<String> =
        info.instances.get("sh001").expect("zone sh001").iter().map(|i| i.hostname.clone()).collect();
    hosts.sort();
    hosts
}

async fn role(node: &NodeProc) -> String {
    Client::new(&node.addr).status_of(&node.addr).await.expect("status").role
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_survives_kill9_and_restarts_as_leader() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut node = NodeProc::start(&data, &[]).await;
    assert_eq!(role(&node).await, "Leader");

    let mut expected = Vec::new();
    let mut restart_times = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            let host = round * 10 + i;
            register(&node, host).await.unwrap_or_else(|e| panic!("register: {e}"));
            expected.push(format!("host-{host}"));
        }
        node.kill9();
        node.respawn();
        let took = node.wait_healthy(Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
        restart_times.push(took);
        assert_eq!(role(&node).await, "Leader");
        expected.sort();
        assert_eq!(fetch_hosts(&node).await, expected, "every acknowledged register survives kill -9");
    }
    restart_times.sort();
    let median = restart_times[restart_times.len() / 2];
    eprintln!("restart to serving after kill -9: {restart_times:?} (median {median:?})");
    assert!(median <= Duration::from_secs(2), "restart to serving took {median:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_data_dir_of_another_node_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut node = NodeProc::start(&data, &["--id", "1"]).await;
    node.kill9();
    let addr = format!("127.0.0.1:{}", support::free_port());
    let data_arg = data.to_string_lossy().to_string();
    let (status, stderr) =
        run_to_exit(&["--addr", &addr, "--data-dir", &data_arg, "--id", "2"], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains(&data_arg), "message names the dir: {stderr}");
    assert!(stderr.contains('1') && stderr.contains('2'), "message names both ids: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_data_dir_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let _running = NodeProc::start(&data, &[]).await;
    let addr = format!("127.0.0.1:{}", support::free_port());
    let data_arg = data.to_string_lossy().to_string();
    let (status, stderr) = run_to_exit(&["--addr", &addr, "--data-dir", &data_arg], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("in use"), "clear in-use message: {stderr}");
    assert!(stderr.contains(&data_arg), "message names the dir: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_corrupt_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("db"), vec![0xAB; 4096]).expect("garbage db");
    std::fs::write(data.join("conf"), b"not a sled config at all").expect("garbage conf");
    let addr = format!("127.0.0.1:{}", support::free_port());
    let data_arg = data.to_string_lossy().to_string();
    let (status, stderr) = run_to_exit(&["--addr", &addr, "--data-dir", &data_arg], Duration::from_secs(20));
    assert!(!status.success(), "must refuse a corrupt dir: {stderr}");
    assert!(stderr.contains(&data_arg), "message names the dir: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic trace: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_names_the_address() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = blocker.local_addr().expect("addr").to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_arg = tmp.path().join("data").to_string_lossy().to_string();
    let (status, stderr) = run_to_exit(&["--addr", &addr, "--data-dir", &data_arg], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains(&addr) && stderr.contains("cannot listen"), "names the address: {stderr}");
}

#[test]
fn bad_flags_are_rejected_with_the_flag_named() {
    let (status, stderr) = run_to_exit(&["--lease", "soon"], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("--lease"), "{stderr}");
    let (status, stderr) = run_to_exit(&["--addr", "0.0.0.0:7171"], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("--cluster-token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_data_dir_of_this_id_at_another_address() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut node = NodeProc::start(&data, &[]).await;
    let old_addr = node.addr.clone();
    node.kill9();
    let data_arg = data.to_string_lossy().to_string();

    // Same id, another address: the other members would never find it.
    let moved = format!("127.0.0.1:{}", support::free_port());
    let (status, stderr) = run_to_exit(&["--addr", &moved, "--data-dir", &data_arg], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains(&data_arg) && stderr.contains(&old_addr), "names the dir and the address: {stderr}");
    assert!(stderr.contains("another cluster"), "clear message: {stderr}");
}
