//! Production limits on the real binary: a low open-file limit, a small disk, a full disk. Faults are
//! real: `ulimit` on the process, a tmpfs of a few MiB filled by the test (root only; skipped with a
//! message otherwise).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use discovery::client::{Client, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proc::{hosts, register, registration, Proc};

/// The code of registering `host`: 0 when acknowledged, the refusal's code, or none when the node did
/// not answer.
async fn register_code(client: &Client, host: &str) -> Option<i64> {
    match client.register(&registration(host)).await {
        Ok(()) => Some(0),
        Err(err) => err.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_open_file_limit_caps_clients_and_never_starves_storage() {
    // This test process holds ~700 sockets itself.
    discovery::fd_limit::raise_soft_limit().expect("raise the test's own limit");
    if discovery::fd_limit::current_soft_limit().expect("limit") < 1000 {
        eprintln!("skipped: this test needs an open-file limit of 1000 for itself");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = ["--lease", "1s", "--protect-threshold", "0", "--evict-interval", "200ms", "--read-timeout", "60s"];
    let mut node = Proc::spawn_with_nofile(512, 512, &tmp.path().join("data"), &args, &[("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let log = node.wait_log("serving fewer connections", Duration::from_secs(5)).await;
    assert!(log.contains("connections=256") && log.contains("open_file_limit=512"), "{log}");

    // One keep-alive connection opened before the flood (the client's calls are sequential, so its pool
    // holds one): the test's window into the node.
    let client = node.client();
    register(&client, "victim").await;

    // Fill the cap with idle connections, then more: the first 256 are held, over-cap clients that send a
    // request get the -503 envelope, the rest are closed.
    let mut held = Vec::new();
    for _ in 0..255 {
        held.push(TcpStream::connect(&node.addr).await.expect("connect"));
    }
    for _ in 0..5 {
        let mut over = TcpStream::connect(&node.addr).await.expect("connect");
        over.write_all(b"GET /discovery/nodes HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.contains("\"code\":-503"), "an over-cap client gets the -503 envelope: {answer}");
    }
    let mut over = TcpStream::connect(&node.addr).await.expect("connect");
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "a saturated node's health check is not 200: {answer}");
    for _ in 0..400 {
        match TcpStream::connect(&node.addr).await {
            Ok(stream) => held.push(stream),
            Err(err) => panic!("connect: {err}"),
        }
    }

    // The victim's lease expires: the eviction is a durable log write, which needs descriptors.
    let started = Instant::now();
    while hosts(&client).await.expect("fetch").contains(&"victim".to_string()) {
        assert!(started.elapsed() < Duration::from_secs(20), "the eviction never happened:\n{}", node.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("victim evicted {:?} after the flood", started.elapsed());
    assert_eq!(client.health_of(&node.addr).await, Ok(()), "{}", node.log_text());
    assert_eq!(register_code(&client, "after").await, Some(0), "{}", node.log_text());
    assert!(!node.log_text().contains("Too many open files"), "{}", node.log_text());
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Proc::spawn_with_nofile(300, 4096, &tmp.path().join("data"), &[], &[("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let log = node.wait_log("raised the open-file limit", Duration::from_secs(5)).await;
    assert!(log.contains("was=300") && log.contains("now=4096"), "{log}");
    assert!(log.contains("connections=3840"), "the cap follows the raised limit: {log}");
}

/// A tmpfs of `mib` MiB mounted on a temp dir for the test's life (root only).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> Option<SmallDisk> {
        if !Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n") {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            eprintln!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        fs2::available_space(self.path()).expect("statvfs")
    }

    /// Fill the disk until `leave` bytes are free (or it is full), with a file that `unfill` removes.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while self.free() > leave {
            let want = usize::try_from((self.free() - leave).min(block.len() as u64)).unwrap_or(block.len());
            if file.write_all(&block[..want]).is_err() {
                break;
            }
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filling_disk_refuses_writes_and_writes_resume_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount(48) else { return };
    let data = disk.path().join("data");
    let mut node = Proc::spawn(&data, &["--min-free-space", "16MiB"], &[("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let client = node.client();
    register(&client, "before").await;

    let filler = disk.fill(8 << 20);
    let started = Instant::now();
    let message = loop {
        match client.register(&registration("during")).await {
            Err(ClientError::Code { code: -500, message, .. }) => break message,
            answer => assert!(started.elapsed() < Duration::from_secs(5), "writes were never refused: {answer:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(message.contains(&data.display().to_string()) && message.contains("16.0 MiB"), "{message}");
    let health = client.health_of(&node.addr).await.expect_err("a node refusing writes is not healthy");
    assert_eq!(health.http_status(), Some(503), "{health}");

    std::fs::remove_file(filler).expect("free the space");
    let freed = Instant::now();
    while register_code(&client, "after").await != Some(0) {
        assert!(freed.elapsed() < Duration::from_secs(5), "writes never resumed:\n{}", node.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hosts = hosts(&client).await.expect("fetch");
    assert!(hosts.contains(&"before".to_string()) && hosts.contains(&"after".to_string()), "{hosts:?}");
    let log = node.log_text();
    assert!(log.contains("disk space low") && log.contains("writes resume"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_in_storage_is_fatal_and_the_next_start_works_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount(32) else { return };
    let data = disk.path().join("data");
    // The guard off: the disk really fills under storage.
    let mut node = Proc::spawn(&data, &["--min-free-space", "0"], &[("RUST_LOG", "info")]);
    node.wait_healthy(Duration::from_secs(20)).await;
    let client = node.client();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let host = format!("h{i:03}");
        assert_eq!(register_code(&client, &host).await, Some(0));
        acknowledged.push(host);
    }
    let filler = disk.fill(0);
    // Writes now fail in storage; the node must exit non-zero, saying why.
    for i in 20..2000 {
        let host = format!("h{i:03}");
        if register_code(&client, &host).await == Some(0) {
            acknowledged.push(host);
        }
        if node.wait_exit(Duration::from_millis(1)).await.is_some() {
            break;
        }
    }
    let status =
        node.wait_exit(Duration::from_secs(15)).await.unwrap_or_else(|| panic!("still running:\n{}", node.log_text()));
    assert!(!status.success(), "exit status {status}");
    let log = node.log_text();
    assert!(log.contains("Raft core stopped") && log.contains("No space left"), "{log}");

    std::fs::remove_file(filler).expect("free the space");
    let mut again = Proc::spawn_at(&node.addr, &data, &["--min-free-space", "0"], &[]);
    again.wait_healthy(Duration::from_secs(20)).await;
    acknowledged.sort();
    let hosts = hosts(&again.client()).await.expect("fetch");
    for host in &acknowledged {
        assert!(hosts.contains(host), "acknowledged {host} lost after the restart; have {hosts:?}");
    }
}
