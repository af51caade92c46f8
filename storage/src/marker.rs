//! A marker file, outside sled, that says "this data dir has been initialized".
//!
//! Why: sled 0.34 opens a data file it cannot parse at all (every segment invalid, and no `snap.*`
//! file to contradict it) as an *empty* database. Without a witness outside sled, a destroyed data
//! file would look like a brand-new dir and the node would silently start over, forgetting its votes
//! and log. With the marker, "marker present but sled holds no node id" is reported as corruption.
//!
//! Invariant: the marker is written only after the node id and schema version are durable in sled,
//! so its presence always means sled should have them. A crash before the marker is written leaves
//! an initialized sled without a marker, which the next open repairs by writing it.
//! The content (node id, schema version) is for people reading the dir; only the file's presence is
//! checked.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Name of the marker file inside the data dir.
pub(crate) const MARKER_FILE: &str = "DISCOVERY_STORAGE";

/// Whether `dir` holds the marker.
pub(crate) fn exists(dir: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(dir.join(MARKER_FILE)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Durably create the marker: write a temporary file, fsync it, rename it into place, fsync the dir.
pub(crate) fn write(dir: &Path, node_id: &dyn Display, schema_version: u8) -> io::Result<()> {
    let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    writeln!(file, "discovery-storage data dir\nnode_id = {node_id}\nschema_version = {schema_version}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(MARKER_FILE))?;
    File::open(dir)?.sync_all()
}
