//! The two transports a connection can run on, behind one small interface.
//!
//! MQTT over WebSocket carries MQTT bytes in binary frames; frame boundaries mean
//! nothing to MQTT, so both transports yield plain byte chunks to the same
//! connection task.

use super::stream::Stream;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The WebSocket close code telling a client its session was taken over by another
/// connection with the same client id (MQTT 3.1.1 has no server DISCONNECT).
pub const CLOSE_SESSION_TAKEN_OVER: u16 = 4000;

/// Most bytes of already-received WebSocket frames joined into one chunk.
const MAX_JOINED_BYTES: usize = 64 * 1024;

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

/// What [`Transport::recv`] returns.
type Received = Result<Option<Bytes>, TransportError>;

/// A connection's byte pipe.
pub enum Transport {
    /// Plain TCP.
    Tcp(Stream, Box<[u8]>),
    /// WebSocket over TCP, and the end of the stream (close or error) met while joining
    /// frames, to report after the bytes that came before it.
    WebSocket(Box<WebSocketStream<Stream>>, Option<Received>),
}

/// One item of the WebSocket stream, as the connection sees it.
enum Frame {
    Data(Bytes),
    /// Ping and pong, which tungstenite answers itself.
    Skip,
    End(Received),
}

impl Frame {
    fn of(item: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Self {
        match item {
            None | Some(Ok(Message::Close(_))) => Frame::End(Ok(None)),
            Some(Ok(Message::Binary(data))) => Frame::Data(data),
            Some(Ok(Message::Text(_))) => Frame::End(Err(TransportError::TextFrame)),
            Some(Ok(_)) => Frame::Skip,
            Some(Err(error)) => Frame::End(Err(error.into())),
        }
    }
}

impl Transport {
    /// A TCP transport with a read buffer of `buffer_size` bytes.
    pub fn tcp(stream: Stream, buffer_size: usize) -> Self {
        Transport::Tcp(stream, vec![0; buffer_size].into_boxed_slice())
    }

    /// A WebSocket transport.
    pub fn websocket(stream: WebSocketStream<Stream>) -> Self {
        Transport::WebSocket(Box::new(stream), None)
    }

    /// The next chunk of bytes, or `None` once the peer closed. Cancel-safe.
    ///
    /// A WebSocket chunk joins the frames already received (up to 64 KiB), so that one
    /// round of the connection handles them all, as it does the packets of one TCP read:
    /// one batch for the router and one write for their acknowledgements, where one
    /// frame per round cost a round, a router wake-up and a socket write per packet.
    pub async fn recv(&mut self) -> Received {
        match self {
            Transport::Tcp(stream, buffer) => {
                let read = stream.read(buffer).await?;
                Ok((read > 0).then(|| Bytes::copy_from_slice(&buffer[..read])))
            }
            Transport::WebSocket(ws, end) => {
                if let Some(end) = end.take() {
                    return end;
                }
                let first = loop {
                    match Frame::of(ws.next().await) {
                        Frame::Data(data) => break data,
                        Frame::Skip => continue,
                        Frame::End(received) => return received,
                    }
                };
                let mut joined: Option<BytesMut> = None;
                while joined.as_ref().map_or(first.len(), BytesMut::len) < MAX_JOINED_BYTES {
                    // Only what is ready now: a frame still on its way is read next round.
                    let Some(item) = ws.next().now_or_never() else {
                        break;
                    };
                    match Frame::of(item) {
                        Frame::Data(data) => joined
                            .get_or_insert_with(|| BytesMut::from(&first[..]))
                            .extend_from_slice(&data),
                        Frame::Skip => {}
                        Frame::End(received) => {
                            *end = Some(received);
                            break;
                        }
                    }
                }
                Ok(Some(joined.map_or(first, BytesMut::freeze)))
            }
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        match self {
            Transport::Tcp(stream, _) => Ok(stream.write_all(&bytes).await?),
            Transport::WebSocket(ws, _) => Ok(ws.send(Message::Binary(bytes.into())).await?),
        }
    }

    /// Closes the transport; WebSocket peers get `code` and `reason` in the close frame.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        match self {
            Transport::Tcp(stream, _) => {
                let _ = stream.shutdown().await;
            }
            Transport::WebSocket(ws, _) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
            }
        }
    }
}
