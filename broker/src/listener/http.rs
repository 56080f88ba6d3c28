//! The HTTP side of the WebSocket port: the upgrade to MQTT over WebSocket, the
//! Prometheus `/metrics` endpoint, and the static files of the demo page.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::connection::transport::Transport;
use crate::connection::{self, Shared};

/// Bytes a WebSocket connection reads at a time, and keeps allocated while idle. Measured
/// (`tabmq-bench run --scenario idle` and `fan-in --payload`): 4 KiB cost 14 KiB per idle
/// connection, 2 KiB 12 KiB; small messages run at the same rate either way (frames
/// already received are joined regardless), 64 KiB messages take 15 % more CPU.
const WEBSOCKET_READ_BUFFER: usize = 2 * 1024;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long an idle HTTP connection may take to send a request.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// WebSocket subprotocols for MQTT, in order of preference.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// A parsed request head.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    keep_alive: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    }
}

/// Serves HTTP requests on `stream` until it closes or upgrades to WebSocket.
pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, peer: std::net::SocketAddr) {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buffer)).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
        };
        let Some(request) = parse(&buffer[..head]) else {
            let _ = respond(&mut stream, 400, "text/plain", b"bad request\n", false).await;
            return;
        };
        let leftover = buffer.split_off(head);
        buffer.clear();
        let is_upgrade = request.header_has_token("connection", "upgrade")
            && request.header_has_token("upgrade", "websocket");
        if is_upgrade && request.path == shared.config.listeners.ws_path {
            upgrade(shared, stream, request, leftover, peer).await;
            return;
        }
        buffer = leftover;
        let keep_alive = request.keep_alive;
        let sent = match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/metrics") => {
                let body = shared.metrics.prometheus();
                respond(
                    &mut stream,
                    200,
                    "text/plain; version=0.0.4",
                    body.as_bytes(),
                    keep_alive,
                )
                .await
            }
            ("GET" | "HEAD", path) => serve_file(&shared, &mut stream, path, keep_alive).await,
            _ => {
                respond(
                    &mut stream,
                    405,
                    "text/plain",
                    b"method not allowed\n",
                    keep_alive,
                )
                .await
            }
        };
        if sent.is_err() || !keep_alive {
            return;
        }
    }
}

/// Reads until the end of a request head; returns its length, `None` at EOF.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            return Ok(Some(end + 4));
        }
        if buffer.len() > MAX_HEAD {
            return Ok(None);
        }
        let mut chunk = [0u8; 2048];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn parse(head: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let version = request.version?;
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let mut parsed = Request {
        method: request.method?.to_owned(),
        path: request.path?.split('?').next().unwrap_or("/").to_owned(),
        headers,
        keep_alive: version == 1,
    };
    if parsed.header_has_token("connection", "close") {
        parsed.keep_alive = false;
    }
    Some(parsed)
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: {connection}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` for a URL path; `None` if the path tries to leave `root`.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = url_path.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let relative = Path::new(&relative);
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(relative))
}

async fn serve_file(
    shared: &Shared,
    stream: &mut TcpStream,
    url_path: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let root = &shared.config.listeners.www;
    let file = (!root.is_empty())
        .then(|| resolve(Path::new(root), url_path))
        .flatten();
    let Some(file) = file else {
        return respond(stream, 404, "text/plain", b"not found\n", keep_alive).await;
    };
    match tokio::fs::read(&file).await {
        Ok(body) => respond(stream, 200, content_type(&file), &body, keep_alive).await,
        Err(_) => respond(stream, 404, "text/plain", b"not found\n", keep_alive).await,
    }
}

/// Completes the WebSocket handshake and runs the MQTT connection on it.
async fn upgrade(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    request: Request,
    leftover: Vec<u8>,
    peer: std::net::SocketAddr,
) {
    if super::at_capacity(&shared) {
        let _ = respond(&mut stream, 503, "text/plain", b"too many connections\n", false).await;
        return;
    }
    let Some(key) = request.header("sec-websocket-key") else {
        let _ = respond(
            &mut stream,
            400,
            "text/plain",
            b"missing Sec-WebSocket-Key\n",
            false,
        )
        .await;
        return;
    };
    if request.header("sec-websocket-version") != Some("13") {
        let _ = respond(
            &mut stream,
            400,
            "text/plain",
            b"unsupported WebSocket version\n",
            false,
        )
        .await;
        return;
    }
    let offered: Vec<&str> = request
        .header("sec-websocket-protocol")
        .map(|value| value.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let protocol = SUBPROTOCOLS.into_iter().find(|p| offered.contains(p));
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(protocol) = protocol {
        response.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    response.push_str("\r\n");
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let limit = shared.config.limits.max_packet_size as usize;
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = WEBSOCKET_READ_BUFFER;
    config.write_buffer_size = 0;
    config.max_message_size = Some(limit);
    config.max_frame_size = Some(limit);
    let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await;
    connection::run(shared, Transport::websocket(ws), peer).await;
}
