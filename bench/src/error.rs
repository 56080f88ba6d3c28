//! What can stop a benchmark run.

use thiserror::Error;

/// A failed benchmark run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A socket operation failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket handshake or a frame failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The broker closed a connection the scenario needed.
    #[error("the broker closed a connection ({0})")]
    Closed(String),
    /// The broker refused or broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Nothing arrived for too long: the broker stalled or dropped messages.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A broker process could not be started or measured.
    #[error("broker process: {0}")]
    Process(String),
}
