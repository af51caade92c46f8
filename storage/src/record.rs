//! The durable record `<dir>/DURABLE`: a small checksummed file, outside sled, that says what the log
//! store has made durable (the last log id, the last purged log id and the vote), so that opening a data
//! dir can tell a sled log that lost acknowledged state from one that did not.
//!
//! Why: sled 0.34 recovers its log up to the first message whose checksum fails and takes everything
//! after it for a torn tail (and zeroes it). That is right for a write torn by a crash, which nobody
//! acknowledged, but damage inside the acknowledged part of the log makes sled silently drop
//! acknowledged entries and votes, and a Raft node that forgets them breaks the cluster's safety. The
//! record lives outside sled because sled's recovery would roll a record kept inside it back together
//! with the entries it lost.
//!
//! # On-disk format (part of the data dir's format)
//! ```text
//! DURABLE       4608 bytes: slot 0 at offset 0, slot 1 at offset 4096, zeros between
//! slot          512 bytes, little-endian:
//!   0..8          magic b"DSCDUR01"
//!   8..16         seq: u64, counts the writes; a slot holds the writes of its parity (seq % 2)
//!   16..18        payload length: u16, at most 490
//!   18..18+len    payload: codec::encode of Claim { last_log_id, last_purged, vote } (schema byte + bincode)
//!   ..508         zeros
//!   508..512      crc32 (crc32fast, as sled uses) of bytes 0..508
//! ```
//! A slot is valid if its magic, length, crc and payload all check out; the valid slot with the highest
//! seq is the record. The slots sit in different 4 KiB blocks so a torn block write can damage at most
//! one of them, and writes alternate between them, so a write torn by a crash leaves the previous
//! record readable. A file whose two slots are both invalid is damage, and the data dir is refused.
//!
//! # Invariants
//! - The record never claims more than sled holds durably. A claim is raised (a later last log id, a
//!   later purge, a newer vote) only after the sled flush + `fdatasync` that made it durable, and the
//!   claim written is the one taken *before* that sync began ([`DurableRecord::before_sync`]).
//! - The record is a lower bound, so lowering it is always safe. `truncate` is the one operation that
//!   moves the last log id backwards: it lowers the record durably (write + `fdatasync`) *before* it
//!   removes entries from sled, so no crash between the two leaves a record claiming removed entries.
//! - Durability of the record itself. A raise is a plain `pwrite` without its own `fsync`: it survives
//!   any crash of the process (kill -9, panic, OOM kill) because it sits in the kernel's page cache,
//!   which is what this record is for. After a power loss or a kernel crash the file may hold an older
//!   claim than the last one written; every older claim was true when it was written and sled's durable
//!   log only shrinks through `truncate`, whose lowering is `fdatasync`ed, so an older claim is still
//!   true: a power loss can never make a healthy dir refused, it only leaves the last acknowledgements
//!   (those since the kernel last wrote the file back, normally at most 30 s) unchecked. The
//!   alternative, an `fdatasync` of the record on every append, puts a second device flush in series
//!   with every acknowledged write: measured (`append_latency`, release, 4 interleaved runs on the
//!   2-core development VM), median durable append 0.30 ms without the record, 0.32 ms with the
//!   `pwrite`, 0.47 ms with `pwrite` + `fdatasync`. It would only add detection of losses in the last
//!   moments before a power cut, which needs a device that loses data it reported flushed, and such a
//!   device could lose the record's flush just the same.
//! - "The log reaches the record" ([`check`]): sled's last purged id is at or above the recorded one;
//!   max(last entry, last purged) is at or above the recorded last log id, and the entry at that index,
//!   if still present above the purged prefix, is the recorded one (same term and leader); the vote in
//!   sled is at or above the recorded vote.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use openraft::{LogId, NodeId, Vote};
use serde::{Deserialize, Serialize};

use crate::codec;

/// Name of the record file inside the data dir.
pub(crate) const RECORD_FILE: &str = "DURABLE";

const MAGIC: [u8; 8] = *b"DSCDUR01";
const SLOT_LEN: usize = 512;
/// Offset of slot 1: its own 4 KiB block.
const SLOT_STRIDE: u64 = 4096;
const FILE_LEN: u64 = SLOT_STRIDE + SLOT_LEN as u64;
const HEADER_LEN: usize = 8 + 8 + 2;
const CRC_AT: usize = SLOT_LEN - 4;
/// Largest encoded claim a slot holds: plenty for numeric node ids (a claim of u64 ids is under 40 bytes).
const MAX_PAYLOAD: usize = CRC_AT - HEADER_LEN;

/// What the record says is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Claim<NID: NodeId> {
    /// The last log entry made durable (appended, or what a truncate left), if any.
    pub(crate) last_log_id: Option<LogId<NID>>,
    /// The last purge made durable.
    pub(crate) last_purged: Option<LogId<NID>>,
    /// The last vote made durable.
    pub(crate) vote: Option<Vote<NID>>,
}

impl<NID: NodeId> Default for Claim<NID> {
    fn default() -> Self {
        Self { last_log_id: None, last_purged: None, vote: None }
    }
}

impl<NID: NodeId> fmt::Display for Claim<NID> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "last log id {}, last purged {}, vote {}",
            show(&self.last_log_id),
            show(&self.last_purged),
            show(&self.vote)
        )
    }
}

fn show<T: fmt::Display>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "none".to_string(), T::to_string)
}

/// What the sled log holds, as far as [`check`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held<NID: NodeId> {
    /// The last entry above the purged prefix.
    pub(crate) last_entry: Option<LogId<NID>>,
    pub(crate) last_purged: Option<LogId<NID>>,
    pub(crate) vote: Option<Vote<NID>>,
    /// The entry at the recorded last log id's index, if present above the purged prefix.
    pub(crate) at_recorded: Option<LogId<NID>>,
}

impl<NID: NodeId> fmt::Display for Held<NID> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "last entry {}, last purged {}, vote {}",
            show(&self.last_entry),
            show(&self.last_purged),
            show(&self.vote)
        )
    }
}

/// Check that the log `held` reaches the `claim` (see the module docs); `Err` says what is missing.
pub(crate) fn check<NID: NodeId>(claim: &Claim<NID>, held: &Held<NID>) -> Result<(), String> {
    let index = |id: &Option<LogId<NID>>| id.as_ref().map(|id| id.index);
    if let Some(purged) = &claim.last_purged {
        if index(&held.last_purged) < Some(purged.index) {
            return Err(format!(
                "the log was purged up to {purged}, but the log's last purged id is {}",
                show(&held.last_purged)
            ));
        }
    }
    if let Some(last) = &claim.last_log_id {
        let reach = index(&held.last_entry).max(index(&held.last_purged));
        if reach < Some(last.index) {
            return Err(format!("log entry {last} was made durable, but the log ends at index {}", show(&reach)));
        }
        if let Some(found) = held.at_recorded.as_ref().filter(|found| *found != last) {
            return Err(format!(
                "log entry {last} was made durable, but the log holds {found} at index {}",
                last.index
            ));
        }
    }
    if let Some(vote) = &claim.vote {
        let kept = held.vote.as_ref().and_then(|held| held.partial_cmp(vote)).is_some_and(|o| o.is_ge());
        if !kept {
            return Err(format!("vote {vote} was made durable, but the stored vote is {}", show(&held.vote)));
        }
    }
    Ok(())
}

/// What [`read`] found in a data dir.
#[derive(Debug)]
pub(crate) enum Loaded<NID: NodeId> {
    /// No record file (a data dir written before the record existed, or a crash while creating one).
    Missing,
    /// The valid slot with the highest seq.
    Valid { seq: u64, claim: Claim<NID> },
    /// The file is there but neither slot is valid.
    Unreadable { why: String },
}

/// Read the record of `dir`, without writing anything.
pub(crate) fn read<NID: NodeId>(dir: &Path) -> io::Result<Loaded<NID>> {
    let file = match File::open(dir.join(RECORD_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(e),
    };
    let mut best: Option<(u64, Claim<NID>)> = None;
    let mut why = Vec::new();
    for slot in 0..2u64 {
        let mut bytes = [0u8; SLOT_LEN];
        let decoded = match file.read_exact_at(&mut bytes, slot * SLOT_STRIDE) {
            Ok(()) => decode_slot::<NID>(&bytes),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err("the file ends before it".to_string()),
            Err(e) => return Err(e),
        };
        match decoded {
            Ok((seq, claim)) if best.as_ref().is_none_or(|(best, _)| seq > *best) => best = Some((seq, claim)),
            Ok(_) => {}
            Err(reason) => why.push(format!("slot {slot}: {reason}")),
        }
    }
    Ok(match best {
        Some((seq, claim)) => Loaded::Valid { seq, claim },
        None => Loaded::Unreadable { why: why.join("; ") },
    })
}

/// Durably create the record of `dir` holding `claim` in both slots: a temporary file, fsynced, renamed
/// into place, then the dir fsynced. Returns the seq of the newer slot.
pub(crate) fn create<NID: NodeId>(dir: &Path, claim: &Claim<NID>) -> io::Result<u64> {
    let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
    let mut contents = vec![0u8; FILE_LEN as usize];
    for seq in 0..2u64 {
        let at = slot_offset(seq) as usize;
        contents[at..at + SLOT_LEN].copy_from_slice(&encode_slot(seq, claim)?);
    }
    let mut file = File::create(&tmp)?;
    file.write_all(&contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(RECORD_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(1)
}

fn slot_offset(seq: u64) -> u64 {
    (seq % 2) * SLOT_STRIDE
}

fn encode_slot<NID: NodeId>(seq: u64, claim: &Claim<NID>) -> io::Result<[u8; SLOT_LEN]> {
    let payload = codec::encode("durable record", claim).map_err(io::Error::other)?;
    if payload.len() > MAX_PAYLOAD {
        let too_big = format!("durable record: {} bytes encoded, a slot holds {MAX_PAYLOAD}", payload.len());
        return Err(io::Error::other(too_big));
    }
    let mut bytes = [0u8; SLOT_LEN];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..16].copy_from_slice(&seq.to_le_bytes());
    bytes[16..18].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    bytes[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(&payload);
    let crc = crc32fast::hash(&bytes[..CRC_AT]);
    bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

fn decode_slot<NID: NodeId>(bytes: &[u8; SLOT_LEN]) -> Result<(u64, Claim<NID>), String> {
    let word = |range: std::ops::Range<usize>| bytes[range].iter().rev().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    if bytes[..8] != MAGIC {
        return Err("no record magic".to_string());
    }
    if word(CRC_AT..SLOT_LEN) != u64::from(crc32fast::hash(&bytes[..CRC_AT])) {
        return Err("checksum mismatch".to_string());
    }
    let len = word(16..18) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!("payload length {len} exceeds {MAX_PAYLOAD}"));
    }
    let claim = codec::decode("durable record", &bytes[HEADER_LEN..HEADER_LEN + len]).map_err(|e| e.to_string())?;
    Ok((word(8..16), claim))
}

/// The open record of one data dir, shared by the log store's clones.
#[derive(Debug)]
pub(crate) struct DurableRecord<NID: NodeId> {
    path: PathBuf,
    inner: Mutex<Inner<NID>>,
}

#[derive(Debug)]
struct Inner<NID: NodeId> {
    file: File,
    /// What sled holds now: written, not necessarily durable yet. `version` counts its changes.
    pending: Claim<NID>,
    version: u64,
    /// The claim in the file, the seq of its slot, and the `version` it was taken at.
    recorded: Claim<NID>,
    seq: u64,
    recorded_version: u64,
}

/// The pending claim at one moment, to be recorded once a sync that began after it has succeeded.
#[derive(Debug)]
pub(crate) struct Ticket<NID: NodeId> {
    version: u64,
    claim: Claim<NID>,
}

impl<NID: NodeId> DurableRecord<NID> {
    /// Open the record of `dir`, whose newest slot (`seq`) holds `claim`, for writing.
    pub(crate) fn open(dir: &Path, seq: u64, claim: Claim<NID>) -> io::Result<Self> {
        let path = dir.join(RECORD_FILE);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let inner = Inner { file, pending: claim.clone(), version: 0, recorded: claim, seq, recorded_version: 0 };
        Ok(Self { path, inner: Mutex::new(inner) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<NID>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Note a write to sled (not yet durable). Call after the sled write, never before.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Claim<NID>)) {
        let mut inner = self.lock();
        change(&mut inner.pending);
        inner.version += 1;
    }

    /// Take the pending claim; call right before a sync, then pass it to [`DurableRecord::after_sync`].
    pub(crate) fn before_sync(&self) -> Ticket<NID> {
        let inner = self.lock();
        Ticket { version: inner.version, claim: inner.pending.clone() }
    }

    /// Record `ticket`'s claim, now durable, unless a newer one is already recorded. A `pwrite`, no fsync
    /// (see the module docs). Blocking, but only microseconds.
    pub(crate) fn after_sync(&self, ticket: Ticket<NID>) -> io::Result<()> {
        let mut inner = self.lock();
        if ticket.version <= inner.recorded_version || ticket.claim == inner.recorded {
            return Ok(());
        }
        inner.write(ticket.claim, false)?;
        inner.recorded_version = ticket.version;
        Ok(())
    }

    /// Before a truncate removes the entries from index `since` on: make the record (and the pending claim)
    /// say `new_last` (the entry before `since`, or none) if they claimed a removed entry. Durable
    /// (`fdatasync`) when it writes. Blocking.
    pub(crate) fn lower_last_log_id(&self, since: u64, new_last: Option<LogId<NID>>) -> io::Result<()> {
        let mut inner = self.lock();
        let claims_removed = |claim: &Claim<NID>| claim.last_log_id.as_ref().is_some_and(|last| last.index >= since);
        if claims_removed(&inner.pending) {
            inner.pending.last_log_id = new_last.clone();
            inner.version += 1;
        }
        if claims_removed(&inner.recorded) {
            let mut lowered = inner.recorded.clone();
            lowered.last_log_id = new_last;
            inner.write(lowered, true)?;
        }
        // Tickets taken before the truncate may claim removed entries: never record them.
        inner.recorded_version = inner.version;
        Ok(())
    }

    /// The record file's path (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl<NID: NodeId> Inner<NID> {
    fn write(&mut self, claim: Claim<NID>, sync: bool) -> io::Result<()> {
        let seq = self.seq + 1;
        self.file.write_all_at(&encode_slot(seq, &claim)?, slot_offset(seq))?;
        if sync {
            self.file.sync_data()?;
        }
        self.seq = seq;
        self.recorded = claim;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn claim(last: Option<LogId<u64>>, purged: Option<LogId<u64>>, vote: Option<Vote<u64>>) -> Claim<u64> {
        Claim { last_log_id: last, last_purged: purged, vote }
    }

    fn held(last: Option<LogId<u64>>, purged: Option<LogId<u64>>, vote: Option<Vote<u64>>) -> Held<u64> {
        let at_recorded = last;
        Held { last_entry: last, last_purged: purged, vote, at_recorded }
    }

    fn claim_with_vote(vote: Vote<u64>) -> Claim<u64> {
        claim(Some(id(2, 10)), Some(id(1, 4)), Some(vote))
    }

    #[test]
    fn a_log_that_reaches_the_claim_passes() {
        let claim = claim(Some(id(2, 10)), Some(id(1, 4)), Some(Vote::new(2, 1)));
        assert_eq!(check(&claim, &held(Some(id(2, 10)), Some(id(1, 4)), Some(Vote::new(2, 1)))), Ok(()));
        // Further along: more entries, a later purge, a newer vote.
        let mut later = held(Some(id(3, 20)), Some(id(2, 8)), Some(Vote::new_committed(3, 2)));
        later.at_recorded = Some(id(2, 10));
        assert_eq!(check(&claim, &later), Ok(()));
        // Purged past the claim (snapshot installed): no entry left, the purge reaches it.
        let mut purged = held(None, Some(id(3, 30)), Some(Vote::new(3, 2)));
        purged.at_recorded = None;
        assert_eq!(check(&claim, &purged), Ok(()));
        assert_eq!(check(&Claim::default(), &held(None, None, None)), Ok(()));
    }

    #[test]
    fn a_log_short_of_the_claim_fails_saying_what_is_missing() {
        let claim = claim(Some(id(2, 10)), Some(id(1, 4)), Some(Vote::new(2, 1)));
        let short = check(&claim, &held(Some(id(2, 7)), Some(id(1, 4)), Some(Vote::new(2, 1)))).unwrap_err();
        assert!(short.contains("log entry T2-N1-10") && short.contains("ends at index 7"), "{short}");
        let mut other_term = held(Some(id(3, 12)), Some(id(1, 4)), Some(Vote::new(3, 1)));
        other_term.at_recorded = Some(id(3, 10));
        let err = check(&claim, &other_term).unwrap_err();
        assert!(err.contains("holds T3-N1-10"), "{err}");
        let err = check(&claim, &held(Some(id(2, 10)), None, Some(Vote::new(2, 1)))).unwrap_err();
        assert!(err.contains("purged up to T1-N1-4"), "{err}");
        let err = check(&claim, &held(Some(id(2, 10)), Some(id(1, 4)), Some(Vote::new(1, 1)))).unwrap_err();
        assert!(err.contains("vote") && err.contains("T1-N1"), "{err}");
        let err = check(&claim, &held(Some(id(2, 10)), Some(id(1, 4)), None)).unwrap_err();
        assert!(err.contains("stored vote is none"), "{err}");
        // Same term, a lower candidate: below the recorded vote in openraft's order.
        let low = claim_with_vote(Vote::new(2, 3));
        let err = check(&low, &held(Some(id(2, 10)), Some(id(1, 4)), Some(Vote::new(2, 1)))).unwrap_err();
        assert!(err.contains("T2-N3"), "{err}");
    }

    #[test]
    fn slots_round_trip_and_reject_damage() {
        let claim = claim(Some(id(2, 10)), None, Some(Vote::new_committed(2, 1)));
        let bytes = encode_slot(7, &claim).unwrap();
        assert_eq!(decode_slot::<u64>(&bytes).unwrap(), (7, claim.clone()));
        for at in [0, 9, 17, HEADER_LEN + 1, 300, CRC_AT + 1] {
            let mut damaged = bytes;
            damaged[at] ^= 0x40;
            assert!(decode_slot::<u64>(&damaged).is_err(), "a flipped bit at {at} went unnoticed");
        }
        assert!(decode_slot::<u64>(&[0; SLOT_LEN]).is_err());
    }

    #[test]
    fn writes_alternate_and_the_newest_valid_slot_counts() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(Some(id(1, 1)), None, None);
        let seq = create(dir.path(), &first).unwrap();
        let record = DurableRecord::open(dir.path(), seq, first.clone()).unwrap();
        let second = claim(Some(id(1, 2)), None, None);
        record.update(|c| *c = second.clone());
        let ticket = record.before_sync();
        record.after_sync(ticket).unwrap();
        assert!(matches!(read::<u64>(dir.path()).unwrap(), Loaded::Valid { seq: 2, claim } if claim == second));
        // Tear the newest slot (seq 2 lives in slot 0): the previous record is still there.
        let file = OpenOptions::new().write(true).open(dir.path().join(RECORD_FILE)).unwrap();
        file.write_all_at(&[0xAB; 100], 50).unwrap();
        assert!(matches!(read::<u64>(dir.path()).unwrap(), Loaded::Valid { seq: 1, claim } if claim == first));
        file.write_all_at(&[0xAB; 100], SLOT_STRIDE + 50).unwrap();
        assert!(matches!(read::<u64>(dir.path()).unwrap(), Loaded::Unreadable { .. }));
    }

    #[test]
    fn a_stale_ticket_never_overwrites_a_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let seq = create(dir.path(), &Claim::<u64>::default()).unwrap();
        let record = DurableRecord::open(dir.path(), seq, Claim::default()).unwrap();
        record.update(|c| c.last_log_id = Some(id(1, 9)));
        // A sync began before the truncate (entries 5..=9 removed) and ends after it.
        let stale = record.before_sync();
        record.lower_last_log_id(5, Some(id(1, 4))).unwrap();
        record.after_sync(stale).unwrap();
        let Loaded::Valid { claim, .. } = read::<u64>(dir.path()).unwrap() else { panic!("no valid record") };
        assert_eq!(claim.last_log_id, None, "the removed entries were never recorded");
        record.update(|c| c.last_log_id = Some(id(2, 5)));
        record.after_sync(record.before_sync()).unwrap();
        let Loaded::Valid { claim, .. } = read::<u64>(dir.path()).unwrap() else { panic!("no valid record") };
        assert_eq!(claim.last_log_id, Some(id(2, 5)));
    }
}
