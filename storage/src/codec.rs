//! The byte format of every value this crate stores.
//!
//! Invariants:
//! - A stored value is `[SCHEMA_VERSION] ++ bincode(value)` (bincode 2, serde API, standard config).
//!   The version byte lets a later build recognise, and refuse or migrate, values it did not write.
//! - Decoding never panics on bad bytes: an empty value, an unknown version, bincode that does not
//!   decode, or bytes left over after the value all return a [`CodecError`] that names what was being
//!   read ("log entry 17", "vote", "snapshot meta"), so a corrupt data dir is diagnosable.
//! - Decoding is bounded by [`MAX_VALUE_BYTES`]: a corrupt length prefix cannot make us allocate more.
//!
//! Keys are not encoded here: they are fixed byte strings or big-endian integers (see `layout`).

use std::fmt::Display;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the stored format, written as the first byte of every value.
pub const SCHEMA_VERSION: u8 = 1;

/// Largest value (in decoded bytes) this build will read or write. Large enough for any snapshot we
/// expect (the registry is far smaller), small enough that a corrupt length cannot exhaust memory.
pub const MAX_VALUE_BYTES: usize = 1 << 30;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_VALUE_BYTES>>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_VALUE_BYTES>()
}

/// A stored value could not be encoded or decoded. The first field of each variant names the value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value had no bytes at all, not even the version byte.
    #[error("{what}: empty value (expected a schema version byte)")]
    Empty {
        /// What was being read.
        what: String,
    },
    /// The version byte is not one this build can read.
    #[error("{what}: unknown schema version {found} (this build reads version {SCHEMA_VERSION})")]
    UnknownVersion {
        /// What was being read.
        what: String,
        /// The version byte found.
        found: u8,
    },
    /// The bytes after the version byte are not a valid encoding.
    #[error("{what}: corrupt value: {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// bincode's reason.
        source: bincode::error::DecodeError,
    },
    /// The value decoded but did not use all the bytes: the stored value is not what we wrote.
    #[error("{what}: corrupt value: {trailing} unexpected trailing bytes")]
    TrailingBytes {
        /// What was being read.
        what: String,
        /// How many bytes were left over.
        trailing: usize,
    },
    /// The value could not be encoded (for example it exceeds [`MAX_VALUE_BYTES`]).
    #[error("{what}: cannot encode: {source}")]
    Encode {
        /// What was being written.
        what: String,
        /// bincode's reason.
        source: bincode::error::EncodeError,
    },
}

/// Encode `value` as `[SCHEMA_VERSION] ++ bincode(value)`.
pub fn encode<T: Serialize + ?Sized>(what: impl Display, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![SCHEMA_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|source| CodecError::Encode { what: what.to_string(), source })?;
    Ok(out)
}

/// Decode a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: impl Display, bytes: &[u8]) -> Result<T, CodecError> {
    let body = strip_version(&what, bytes)?;
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|source| CodecError::Decode { what: what.to_string(), source })?;
    check_fully_used(&what, body.len(), used)?;
    Ok(value)
}

/// Encode an opaque byte string (snapshot data). Same format as [`encode`] of a `Vec<u8>`, but
/// copies the bytes in one go instead of one serde call per byte.
pub fn encode_bytes(what: impl Display, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(data.len() + 10);
    out.push(SCHEMA_VERSION);
    bincode::encode_into_std_write(data, &mut out, config())
        .map_err(|source| CodecError::Encode { what: what.to_string(), source })?;
    Ok(out)
}

/// Decode a byte string written by [`encode_bytes`].
pub fn decode_bytes(what: impl Display, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let body = strip_version(&what, bytes)?;
    let (value, used): (Vec<u8>, usize) = bincode::decode_from_slice(body, config())
        .map_err(|source| CodecError::Decode { what: what.to_string(), source })?;
    check_fully_used(&what, body.len(), used)?;
    Ok(value)
}

fn strip_version<'a>(what: &impl Display, bytes: &'a [u8]) -> Result<&'a [u8], CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty { what: what.to_string() }),
        Some((&SCHEMA_VERSION, body)) => Ok(body),
        Some((&found, _)) => Err(CodecError::UnknownVersion { what: what.to_string(), found }),
    }
}

fn check_fully_used(what: &impl Display, len: usize, used: usize) -> Result<(), CodecError> {
    if used == len {
        Ok(())
    } else {
        Err(CodecError::TrailingBytes { what: what.to_string(), trailing: len.saturating_sub(used) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_starts_with_the_version_byte() {
        let bytes = encode("thing", &(7u64, "x".to_string())).unwrap();
        assert_eq!(bytes[0], SCHEMA_VERSION);
        let back: (u64, String) = decode("thing", &bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));
    }

    #[test]
    fn bytes_round_trip_and_match_the_serde_format() {
        let data = vec![1u8, 2, 3, 250];
        let fast = encode_bytes("snapshot data", &data).unwrap();
        assert_eq!(fast, encode("snapshot data", &data).unwrap());
        assert_eq!(decode_bytes("snapshot data", &fast).unwrap(), data);
    }

    #[test]
    fn unknown_version_names_the_value() {
        let mut bytes = encode("vote", &1u64).unwrap();
        bytes[0] = 9;
        let err = decode::<u64>("vote", &bytes).unwrap_err();
        assert!(matches!(err, CodecError::UnknownVersion { found: 9, .. }));
        assert_eq!(err.to_string(), "vote: unknown schema version 9 (this build reads version 1)");
    }

    #[test]
    fn empty_truncated_and_trailing_bytes_are_errors() {
        assert!(matches!(decode::<u64>("log entry 3", &[]), Err(CodecError::Empty { .. })));
        let bytes = encode("x", &"hello".to_string()).unwrap();
        let err = decode::<String>("log entry 17", &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.to_string().starts_with("log entry 17: corrupt value"), "{err}");
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(decode::<String>("x", &long), Err(CodecError::TrailingBytes { trailing: 1, .. })));
    }

    #[test]
    fn a_huge_corrupt_length_is_an_error_not_an_allocation() {
        // Version byte, then a varint length of u64::MAX (0xFF marker + 8 bytes).
        let mut bytes = vec![SCHEMA_VERSION, 0xFF];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode_bytes("snapshot data", &bytes), Err(CodecError::Decode { .. })));
        assert!(matches!(decode::<String>("node id", &bytes), Err(CodecError::Decode { .. })));
    }
}
