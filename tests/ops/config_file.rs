//! `--config FILE` on the real binary: flags > environment > file > defaults, and a bad file stops the
//! start with the key named.

use std::time::Duration;

use crate::proc::Proc;
use crate::support::run_to_exit;

async fn zone_of(args: &[&str], env: &[(&str, &str)]) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("discovery.toml");
    std::fs::write(&file, "zone = \"filezone\"\nregion = \"fileregion\"\n[log]\nstdout = true\n").expect("write");
    let file = file.to_string_lossy().to_string();
    let mut all = vec!["--config", file.as_str()];
    all.extend_from_slice(args);
    let mut node = Proc::spawn(&tmp.path().join("data"), &all, env);
    node.wait_healthy(Duration::from_secs(20)).await;
    let status = node.client().status_json_of(&node.addr).await.expect("status");
    if args.is_empty() && env.is_empty() {
        let log = node.log_text();
        assert!(log.contains("ignored") && log.contains("log"), "the ignored original key is reported: {log}");
    }
    status["zone"].as_str().expect("zone").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_environment_beat_file() {
    assert_eq!(zone_of(&[], &[]).await, "filezone");
    assert_eq!(zone_of(&[], &[("DISCOVERY_ZONE", "envzone")]).await, "envzone");
    assert_eq!(zone_of(&["--zone", "flagzone"], &[("DISCOVERY_ZONE", "envzone")]).await, "flagzone");
}

#[test]
fn a_bad_file_stops_the_start_naming_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("discovery.toml");
    let data = tmp.path().join("data").to_string_lossy().to_string();
    for (text, key) in
        [("zone = \"z\"\nleese = \"90s\"\n", "leese"), ("evict_interval = \"often\"\n", "evict_interval")]
    {
        std::fs::write(&file, text).expect("write");
        let path = file.to_string_lossy().to_string();
        let (status, stderr) = run_to_exit(&["--config", &path, "--data-dir", &data], Duration::from_secs(20));
        assert!(!status.success());
        assert!(stderr.contains(key) && stderr.contains(&path), "{stderr}");
    }
}
