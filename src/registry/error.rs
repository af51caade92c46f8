//! Domain errors. They know nothing about HTTP; the API maps them to bilibili codes in one place.

use thiserror::Error;

use super::command::Outcome;

/// Why a registry command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The instance, app or zone does not exist (-404).
    #[error("not found")]
    NotFound,
    /// The command was refused as a whole and nothing changed (-400).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Outcome {
    /// `Ok(None)` for [`Outcome::Ok`], `Ok(Some(n))` for [`Outcome::Evicted`], otherwise the error.
    pub fn into_result(self) -> Result<Option<u32>, RegistryError> {
        match self {
            Outcome::Ok => Ok(None),
            Outcome::Evicted(n) => Ok(Some(n)),
            Outcome::NotFound => Err(RegistryError::NotFound),
            Outcome::Invalid(reason) => Err(RegistryError::Invalid(reason)),
        }
    }
}
