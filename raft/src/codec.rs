//! Encoding of the Raft RPC bodies: bincode 2 through serde, the same configuration on both ends.
//!
//! Invariants:
//! - A body holds exactly one value. Trailing bytes are an error, so a body that two writers interleaved, or that
//!   was cut and padded, is never half-accepted.
//! - Decoding never claims more than [`MAX_MESSAGE_BYTES`]: the input is checked first, and bincode's own limit
//!   bounds what its length prefixes may allocate, so a forged length cannot make a node allocate gigabytes.
//! - Encoding refuses values larger than the limit, so a sender learns locally that the peer would refuse them.
//!
//! The limit is the largest snapshot the cluster can move; Raft messages other than snapshots are far smaller.

use bincode::config::{Config, Configuration};
use serde::{de::DeserializeOwned, Serialize};

/// Largest encoded RPC body, in bytes, either end accepts (64 MiB): it bounds the registry snapshot.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why a body could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// serde/bincode could not encode the value.
    #[error("cannot encode message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type (or claim more than the limit).
    #[error("cannot decode message: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The body is larger than the limit.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the body.
        len: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// A complete value was decoded but bytes were left over.
    #[error("{extra} unexpected bytes after the message")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
}

/// bincode's standard configuration (little endian, varint integers) with the decode limit.
fn config() -> impl Config {
    let standard: Configuration = bincode::config::standard();
    standard.with_limit::<MAX_MESSAGE_BYTES>()
}

/// Encodes `value` as one RPC body.
///
/// # Errors
/// [`CodecError::Encode`] if serde fails, [`CodecError::TooLarge`] if the result exceeds [`MAX_MESSAGE_BYTES`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, config())?;
    check_len(bytes.len())?;
    Ok(bytes)
}

/// Decodes one RPC body that must contain exactly one `T`.
///
/// # Errors
/// [`CodecError::TooLarge`] before reading anything if `bytes` exceeds the limit, [`CodecError::Decode`] for
/// malformed input, [`CodecError::TrailingBytes`] if the value does not end the body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    check_len(bytes.len())?;
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())?;
    match bytes.len().saturating_sub(read) {
        0 => Ok(value),
        extra => Err(CodecError::TrailingBytes { extra }),
    }
}

fn check_len(len: usize) -> Result<(), CodecError> {
    if len > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge { len, limit: MAX_MESSAGE_BYTES });
    }
    Ok(())
}
