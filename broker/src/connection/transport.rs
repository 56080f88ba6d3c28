//! The two transports a connection can run on, behind one small interface.
//!
//! MQTT over WebSocket carries MQTT bytes in binary frames; frame boundaries mean
//! nothing to MQTT, so both transports yield plain byte chunks to the same
//! connection task.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The WebSocket close code telling a client its session was taken over by another
/// connection with the same client id (MQTT 3.1.1 has no server DISCONNECT).
pub const CLOSE_SESSION_TAKEN_OVER: u16 = 4000;

/// A transport failure.
#[derive(Debug, Error)]
pub enum TransportError {
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket layer failed (bad frame, oversized message, ...).
    #[error("websocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A text frame: MQTT over WebSocket uses binary frames only.
    #[error("text frame received; MQTT needs binary frames")]
    TextFrame,
}

impl TransportError {
    /// The WebSocket close code that reports this error to the peer.
    pub fn close_code(&self) -> u16 {
        use tokio_tungstenite::tungstenite::Error;
        match self {
            TransportError::TextFrame => 1003,
            TransportError::WebSocket(Error::Capacity(_)) => 1009,
            TransportError::WebSocket(_) => 1002,
            TransportError::Io(_) => 1011,
        }
    }
}

/// A connection's byte pipe.
pub enum Transport {
    /// Plain TCP.
    Tcp(TcpStream, Box<[u8]>),
    /// WebSocket over TCP.
    WebSocket(Box<WebSocketStream<TcpStream>>),
}

impl Transport {
    /// A TCP transport with a read buffer of `buffer_size` bytes.
    pub fn tcp(stream: TcpStream, buffer_size: usize) -> Self {
        Transport::Tcp(stream, vec![0; buffer_size].into_boxed_slice())
    }

    /// The next chunk of bytes, or `None` once the peer closed. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self {
            Transport::Tcp(stream, buffer) => {
                let read = stream.read(buffer).await?;
                Ok((read > 0).then(|| Bytes::copy_from_slice(&buffer[..read])))
            }
            Transport::WebSocket(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Binary(data))) => return Ok(Some(data)),
                    Some(Ok(Message::Text(_))) => return Err(TransportError::TextFrame),
                    Some(Ok(_)) => continue, // ping and pong are answered by tungstenite
                    Some(Err(error)) => return Err(error.into()),
                }
            },
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        match self {
            Transport::Tcp(stream, _) => Ok(stream.write_all(&bytes).await?),
            Transport::WebSocket(ws) => Ok(ws.send(Message::Binary(bytes.into())).await?),
        }
    }

    /// Closes the transport; WebSocket peers get `code` and `reason` in the close frame.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        match self {
            Transport::Tcp(stream, _) => {
                let _ = stream.shutdown().await;
            }
            Transport::WebSocket(ws) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
            }
        }
    }
}
