//! A byte pipe to a broker: MQTT over WebSocket (one or more packets per binary frame)
//! or over plain TCP.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, client_async};

use crate::error::BenchError;
use crate::framing::split_packets;

/// How peers reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// MQTT over WebSocket (subprotocol `mqtt`), path `/mqtt`.
    Ws,
    /// MQTT over TCP.
    Tcp,
}

/// An open connection.
pub enum Pipe {
    /// WebSocket.
    Ws(Box<WebSocketStream<TcpStream>>),
    /// TCP, with its read buffer.
    Tcp(TcpStream, Vec<u8>),
}

impl Pipe {
    /// Connects to `addr` (`host:port`).
    pub async fn open(transport: Transport, addr: &str) -> Result<Self, BenchError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        match transport {
            Transport::Tcp => Ok(Self::Tcp(tcp, vec![0; 64 * 1024])),
            Transport::Ws => {
                let mut request = format!("ws://{addr}/mqtt").into_client_request()?;
                request.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    "mqtt".parse().expect("a valid header value"),
                );
                let (ws, _) = client_async(request, tcp).await?;
                Ok(Self::Ws(Box::new(ws)))
            }
        }
    }

    /// Writes MQTT packets: over WebSocket one frame per packet, as browser clients do
    /// (MQTT.js, Paho, tabmq's wasm client), flushed together.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), BenchError> {
        match self {
            Self::Ws(ws) => {
                for packet in split_packets(&bytes) {
                    ws.feed(Message::Binary(packet.to_vec().into())).await?;
                }
                ws.flush().await?;
            }
            Self::Tcp(tcp, _) => tcp.write_all(&bytes).await?,
        }
        Ok(())
    }

    /// The next bytes received; `None` once the broker closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, BenchError> {
        match self {
            Self::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes.into())),
                    Some(Ok(Message::Close(_))) | None => return Ok(None),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                }
            },
            Self::Tcp(tcp, buffer) => {
                let read = tcp.read(buffer).await?;
                Ok((read > 0).then(|| buffer[..read].to_vec()))
            }
        }
    }
}
