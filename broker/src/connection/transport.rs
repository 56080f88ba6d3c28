//! The two transports a connection can run on, behind one small interface.
//!
//! MQTT over WebSocket carries MQTT bytes in binary frames; frame boundaries mean
//! nothing to MQTT, so both transports hand plain bytes to the connection's state
//! machine. Both read into one scratch buffer per thread and hand the bytes on within
//! the same poll: an idle connection holds no read buffer, and every frame or packet a
//! read brought in is handled in one round of the connection.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::stream::Stream;
use super::websocket::{self, FrameDecoder, FrameError};

/// The WebSocket close code telling a client its session was taken over by another
/// connection with the same client id (MQTT 3.1.1 has no server DISCONNECT).
pub const CLOSE_SESSION_TAKEN_OVER: u16 = 4000;

/// How long a closing connection keeps reading what its client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The most one read takes from a socket.
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// Where every connection on this thread reads; borrowed only within one poll.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// Reads `stream` until its end (or an error), dropping what arrives.
async fn drain(stream: &mut Stream) {
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            loop {
                let mut buffer = ReadBuf::new(scratch);
                match ready!(Pin::new(&mut *stream).poll_read(cx, &mut buffer)) {
                    Ok(()) if !buffer.filled().is_empty() => continue,
                    _ => return Poll::Ready(()),
                }
            }
        })
    })
    .await;
}

/// A transport failure.
#[derive(Debug, Error)]
pub enum TransportError {
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke the WebSocket protocol.
    #[error("websocket error: {0}")]
    WebSocket(#[from] FrameError),
}

impl TransportError {
    /// The WebSocket close code that reports this error to the peer.
    pub fn close_code(&self) -> u16 {
        match self {
            TransportError::WebSocket(error) => error.close_code(),
            TransportError::Io(_) => 1011,
        }
    }
}

/// A connection's byte pipe.
pub enum Transport {
    /// Plain TCP (or TLS).
    Tcp(Stream),
    /// WebSocket over TCP (or TLS), after the handshake, and bytes the client sent right
    /// behind its handshake, read with it (decoded before anything else is read).
    WebSocket(Stream, FrameDecoder, Vec<u8>),
}

impl Transport {
    /// A WebSocket transport on a stream whose handshake is done, taking messages of at
    /// most `max_message` bytes; `leftover` holds bytes read with the handshake.
    pub fn websocket(stream: Stream, leftover: Vec<u8>, max_message: u32) -> Self {
        Transport::WebSocket(stream, FrameDecoder::new(u64::from(max_message)), leftover)
    }

    /// Reads what the socket has and hands the bytes to `deliver`; `false` once the peer
    /// has closed (after the bytes that came before its close). Cancel-safe.
    pub async fn recv(&mut self, deliver: &mut impl FnMut(&[u8])) -> Result<bool, TransportError> {
        std::future::poll_fn(|cx| self.poll_recv(cx, deliver)).await
    }

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        deliver: &mut impl FnMut(&[u8]),
    ) -> Poll<Result<bool, TransportError>> {
        let (stream, decoder) = match self {
            Transport::Tcp(stream) => (stream, None),
            Transport::WebSocket(_, decoder, leftover) if !leftover.is_empty() => {
                let mut leftover = std::mem::take(leftover);
                decoder.decode(&mut leftover, deliver)?;
                return Poll::Ready(Ok(true));
            }
            Transport::WebSocket(stream, decoder, _) => (stream, Some(decoder)),
        };
        if decoder.as_ref().is_some_and(|decoder| decoder.closed().is_some()) {
            return Poll::Ready(Ok(false));
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let mut buffer = ReadBuf::new(scratch);
            ready!(Pin::new(stream).poll_read(cx, &mut buffer))?;
            let read = buffer.filled().len();
            if read == 0 {
                return Poll::Ready(Ok(false));
            }
            match decoder {
                None => deliver(&scratch[..read]),
                Some(decoder) => decoder.decode(&mut scratch[..read], deliver)?,
            }
            Poll::Ready(Ok(true))
        })
    }

    /// Whether the transport has frames of its own to send (WebSocket pongs, a close echo).
    pub fn has_replies(&self) -> bool {
        matches!(self, Transport::WebSocket(_, decoder, _) if decoder.has_replies())
    }

    /// Writes `bytes` (nothing if empty), after the transport's own replies.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        match self {
            Transport::Tcp(stream) => Ok(stream.write_all(&bytes).await?),
            Transport::WebSocket(stream, decoder, _) => {
                let mut out = decoder.take_replies();
                if !bytes.is_empty() {
                    out.reserve(bytes.len() + 10);
                    websocket::encode_binary(&mut out, &bytes);
                }
                Ok(stream.write_all(&out).await?)
            }
        }
    }

    /// Closes the transport; WebSocket peers get `code` and `reason` in the close frame
    /// (or the echo of their own close). Then reads and drops what the client still sends
    /// until it closes too, for at most [`LINGER`]: bytes left unread at close make the
    /// kernel reset the connection, which can destroy the last packets sent to the client
    /// (a DISCONNECT saying why) before it reads them.
    pub async fn close(&mut self, code: u16, reason: &'static str) {
        let stream = match self {
            Transport::Tcp(stream) => stream,
            Transport::WebSocket(stream, decoder, _) => {
                let mut out = decoder.take_replies();
                if decoder.closed().is_none() {
                    websocket::encode_close(&mut out, code, reason);
                }
                let _ = stream.write_all(&out).await;
                stream
            }
        };
        let _ = stream.shutdown().await;
        let _ = tokio::time::timeout(LINGER, drain(stream)).await;
    }
}
