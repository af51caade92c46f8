//! Leftovers of an interrupted sled snapshot write, which sled 0.34.7 cannot get past by itself.
//!
//! sled writes a snapshot of its page table while it opens a data dir (when recovery advanced its stable
//! log position): to `snap.<LSN, 16 hex digits>.generating`, then `fsync`, then it renames the file to
//! `snap.<LSN>`. On open it reads the lexicographically last `snap.*` file, `.generating` ones included
//! (they sort after the completed file of the same LSN), and fails with "corrupt" if the file's trailer
//! (8-byte little-endian length, then the 4-byte little-endian crc32 of the body) does not match. So a
//! kill, a crash or a full disk while sled writes that file leaves an empty or partial `.generating`
//! file that fails every later open, even once space is freed.
//!
//! Invariants:
//! - Before sled opens a data dir, every `snap.*.generating` file that is empty or whose trailer crc does
//!   not match is removed, and the removal logged with its path. That is safe: nothing refers to the
//!   file, and without it the dir is exactly what it was before sled began writing it (sled takes the
//!   previous snapshot, or none, and replays its log from there, as after any crash).
//! - A complete `.generating` file (fsynced, the crash came before the rename) is kept: sled reads it.
//!   Removing broken ones also matters because sled creates the `.generating` file without truncating
//!   it: writing over a longer broken file of the same name would keep its stale trailer.
//! - A partial `snap.<LSN>` without the suffix cannot come from sled (it renames only after the fsync,
//!   and a power loss keeps the old or the new name, both over complete content). One would be outside
//!   damage; sled refuses it as corrupt, and that refusal (naming the data dir) is right, so it is left.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Length of sled's snapshot trailer: the body's length (u64) and crc32 (u32).
const TRAILER_LEN: usize = 12;

/// Remove the broken `snap.*.generating` files of `dir` (see the module docs) and return their paths.
pub(crate) fn remove_broken_snapshots(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        let path = entry.path();
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        if is_complete(&bytes) {
            continue;
        }
        std::fs::remove_file(&path)?;
        tracing::warn!(
            path = %path.display(),
            bytes = bytes.len(),
            "removed a sled snapshot file left incomplete by a crash or a full disk; sled recovers without it"
        );
        removed.push(path);
    }
    Ok(removed)
}

/// Whether `bytes` are a snapshot file sled can read: a body, then its trailer with a matching crc.
fn is_complete(bytes: &[u8]) -> bool {
    let Some(body_len) = bytes.len().checked_sub(TRAILER_LEN).filter(|&n| n > 0) else { return false };
    let (body, trailer) = bytes.split_at(body_len);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&trailer[8..]);
    crc32fast::hash(body) == u32::from_le_bytes(crc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn snapshot_file(body: &[u8]) -> Vec<u8> {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        bytes
    }

    #[test]
    fn only_complete_files_pass() {
        let complete = snapshot_file(b"some page table");
        assert!(is_complete(&complete));
        assert!(!is_complete(&[]));
        assert!(!is_complete(&[0; TRAILER_LEN]), "sled refuses a file of 12 bytes or less");
        assert!(!is_complete(&complete[..complete.len() - 1]));
        assert!(!is_complete(&vec![0; 4096]), "a file extended but never written");
    }

    #[test]
    fn broken_generating_files_go_and_everything_else_stays() {
        let dir = tempfile::tempdir().unwrap();
        let good = snapshot_file(b"page table");
        let files: [(&str, &[u8]); 5] = [
            ("snap.0000000000000100", &good[..5]), // not ours to judge: sled's own refusal is right
            ("snap.0000000000000200.generating", &good),
            ("snap.0000000000000300.generating", b""),
            ("snap.0000000000000400.generating", &good[..good.len() - 3]),
            ("db", b""),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let mut removed = remove_broken_snapshots(dir.path()).unwrap();
        removed.sort();
        let names: Vec<_> = removed.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["snap.0000000000000300.generating", "snap.0000000000000400.generating"]);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["db", "snap.0000000000000100", "snap.0000000000000200.generating"]);
    }
}
