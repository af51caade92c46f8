//! A damaged data file, end to end with the real binary: acknowledged registers, kill -9, bytes near
//! the end of sled's data file overwritten, restart. sled alone would start healthy with most of the
//! acknowledged instances gone; the node must refuse to start, naming the data dir and saying how to
//! recover. (Had the damage cost nothing, the only other acceptable outcome is a healthy node with every
//! instance: never a healthy node with instances missing.)

use std::path::Path;
use std::time::Duration;

use crate::proc::{hosts, register, Proc};

const INSTANCES: usize = 300;
const DAMAGE_BYTES: usize = 200;

/// Overwrite the last `DAMAGE_BYTES` bytes sled wrote to `<data>/db` (its file ends in zeros it has not
/// written): the last acknowledged writes' messages, as the probe's damage "near the end" hit them.
fn damage_tail(data: &Path) {
    let path = data.join("db");
    let mut bytes = std::fs::read(&path).expect("read db");
    let end = bytes.iter().rposition(|&b| b != 0).expect("db has data") + 1;
    bytes[end - DAMAGE_BYTES..end].fill(0xAB);
    std::fs::write(&path, bytes).expect("write db");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_file_stops_the_node_with_a_way_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    {
        let mut node = Proc::spawn(&data, &[], &[]);
        node.wait_healthy(Duration::from_secs(20)).await;
        let client = node.client();
        for i in 0..INSTANCES {
            register(&client, &format!("h{i:03}")).await;
        }
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(10)).await.expect("killed node exits");
    }
    damage_tail(&data);

    let log_before = std::fs::metadata(data.with_extension("log")).map_or(0, |m| m.len() as usize);
    let mut node = Proc::spawn(&data, &[], &[]);
    let exited = node.wait_exit(Duration::from_secs(20)).await;
    let log = node.log_text();
    let stderr = log.get(log_before..).unwrap_or(&log);
    match exited {
        Some(status) => {
            assert!(!status.success(), "refused, yet exit code 0:\n{stderr}");
            let dir = format!("data dir {}", data.display());
            assert!(stderr.contains(&dir), "the message does not name the data dir:\n{stderr}");
            assert!(stderr.contains("lost acknowledged Raft state"), "not the lost-state refusal:\n{stderr}");
            for way_out in ["cluster remove", "cluster add", "fresh data dir"] {
                assert!(stderr.contains(way_out), "no {way_out:?} in the message:\n{stderr}");
            }
        }
        None => {
            // Still running: only acceptable if the damage cost nothing.
            node.wait_healthy(Duration::from_secs(20)).await;
            let count = hosts(&node.client()).await.expect("fetch").len();
            assert_eq!(count, INSTANCES, "healthy with acknowledged instances missing:\n{stderr}");
        }
    }
}
