//! [`ClientError`]: why a call of the client failed.

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// No server could be reached or none answered in time (`server` is the last one tried).
    #[error("cannot reach {server}: {reason}")]
    Transport {
        /// The server.
        server: String,
        /// What went wrong.
        reason: String,
        /// False when no connection could be made, so nothing reached the server (the call certainly had
        /// no effect); true when the request may have been delivered (a timeout, a connection lost after
        /// sending): a write may have taken effect.
        sent: bool,
    },
    /// The server answered a business error code (bilibili envelope).
    #[error("{server} answered code {code}: {message}")]
    Code {
        /// The server.
        server: String,
        /// The code (-400, -404, -500...).
        code: i64,
        /// The envelope's message.
        message: String,
    },
    /// The server refused an operator request (HTTP status and its explanation).
    #[error("{server} refused: HTTP {status}: {message}")]
    Refused {
        /// The server.
        server: String,
        /// The HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The answer was not the expected JSON.
    #[error("bad answer from {server}: HTTP {status}: {reason}")]
    BadAnswer {
        /// The server.
        server: String,
        /// The HTTP status of the answer.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// The business code, if the server answered one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ClientError::Code { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for -404: the server does not know the instance or app (a renewing client registers again).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(-404)
    }

    /// True when the failure was reaching the server (another node may answer).
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Transport { .. })
    }

    /// True when the call certainly did not reach the server: no connection could be made.
    pub fn never_sent(&self) -> bool {
        matches!(self, ClientError::Transport { sent: false, .. })
    }

    /// The HTTP status of an answer that was not a business envelope (a refusal or a malformed answer).
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } | ClientError::BadAnswer { status, .. } => Some(*status),
            _ => None,
        }
    }
}
