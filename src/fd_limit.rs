//! File descriptors: the process's open-file limit, and how many client connections it leaves room for.
//!
//! Why: every client connection costs a descriptor, and so do sled's files, the blob files a durable sync
//! opens, the connections to the other members and the runtime's own. Under systemd's default soft limit
//! (1,024) a thousand long-polling SDK clients used to take them all; the next log flush then failed with
//! `EMFILE` and the Raft core stopped. So, as Go's runtime does for the original server, the binary raises
//! its soft limit to the hard limit at start ([`raise_soft_limit`]), and the node serves at most
//! [`connection_cap`] clients: the limit minus [`RESERVED_FDS`] for everything that must never starve.
//!
//! Invariant: storage, Raft and the peers always have [`RESERVED_FDS`] descriptors no client can take;
//! clients over the cap get the -503 envelope (`node::server`).

use std::io;

/// Descriptors kept for everything but client connections: sled's files and the durable syncs' blob
/// files, connections to up to a dozen peers (replication, forwarded writes, renews and read indexes,
/// each pooled), the -503 answers to over-limit clients (`node::server::MAX_REJECTING`), logs, the
/// listener and the runtime (epoll, timers, the blocking pool's pipes).
pub const RESERVED_FDS: u64 = 256;

/// Fewest client connections a node accepts to start with; below that the limit is a mistake.
pub const MIN_CLIENT_CONNECTIONS: u64 = 16;

/// The open-file limit before and after [`raise_soft_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit the process was started with.
    pub was: u64,
    /// The soft limit now (the hard limit, if raising worked).
    pub now: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (a process may always do that).
pub fn raise_soft_limit() -> io::Result<OpenFileLimit> {
    let (was, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let now = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(OpenFileLimit { was, now, hard })
}

/// The soft open-file limit of this process now.
pub fn current_soft_limit() -> io::Result<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft)
}

/// Client connections a node may serve with `max_connections` requested and an open-file limit of
/// `limit`: `min(max_connections, limit - RESERVED_FDS)`; `Err` naming the figures when that leaves fewer
/// than [`MIN_CLIENT_CONNECTIONS`].
pub fn connection_cap(max_connections: usize, limit: u64) -> Result<usize, String> {
    let room = limit.saturating_sub(RESERVED_FDS);
    if room < MIN_CLIENT_CONNECTIONS {
        return Err(format!(
            "the open-file limit is {limit}, which leaves no room for clients: a node keeps {RESERVED_FDS} \
             descriptors for storage, Raft and peers and needs at least {MIN_CLIENT_CONNECTIONS} more; raise \
             it (ulimit -n, or LimitNOFILE= in a systemd unit)"
        ));
    }
    Ok(max_connections.min(usize::try_from(room).unwrap_or(usize::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_limit_minus_the_reserve_or_the_flag_if_lower() {
        assert_eq!(connection_cap(25_000, 1024), Ok(1024 - 256));
        assert_eq!(connection_cap(100, 1024), Ok(100));
        assert_eq!(connection_cap(25_000, 1 << 20), Ok(25_000));
        assert_eq!(connection_cap(25_000, 256 + 16), Ok(16));
    }

    #[test]
    fn a_limit_below_the_reserve_is_refused_with_the_figures() {
        let err = connection_cap(25_000, 200).expect_err("too low");
        assert!(err.contains("200") && err.contains("256") && err.contains("ulimit"), "{err}");
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let limit = raise_soft_limit().expect("getrlimit works on Linux");
        assert!(limit.now >= limit.was && limit.now <= limit.hard, "{limit:?}");
        assert_eq!(current_soft_limit().expect("soft limit"), limit.now);
    }
}
