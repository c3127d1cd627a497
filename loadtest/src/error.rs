//! The one error type of the crate.

use thiserror::Error;

/// Why a simulated agent request (or its set-up) failed.
///
/// The variants follow the way osquery classifies a failed exchange (reference §3.5, §5.2, §10.3),
/// so a caller can tell "the server said the node key is invalid" from "the server was unreachable".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AgentError {
    /// Connect, TLS, timeout or I/O failure, or a response body above osquery's 8 MiB limit.
    #[error("request error: {0}")]
    Transport(String),
    /// The response body is not empty and not parseable JSON.
    #[error("response is not valid JSON: {0}")]
    InvalidJson(String),
    /// The response carried `"node_invalid": true`; the cached node key has been deleted.
    /// Holds the response's `error` member when there is one.
    #[error("request failed: invalid node key{}", .0.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    NodeInvalid(Option<String>),
    /// The response carried an `error` member (any JSON type, rendered as text).
    #[error("request failed: {0}")]
    Server(String),
    /// The enroll response did not contain a usable node key.
    #[error("enrollment failed: {0}")]
    Enroll(String),
    /// The response parsed but does not have the shape the endpoint requires
    /// (config not an object, carve start without `session_id`, …).
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// The agent could not be built (bad URL, bad CA bundle, …).
    #[error("agent set-up failed: {0}")]
    Setup(String),
}

impl AgentError {
    /// True for `NodeInvalid`.
    pub fn is_node_invalid(&self) -> bool {
        matches!(self, AgentError::NodeInvalid(_))
    }
}
