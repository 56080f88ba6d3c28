//! The HTTP side of the WebSocket port: the upgrade to MQTT over WebSocket, the
//! Prometheus `/metrics` endpoint, and the static files of the demo page.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::connection::stream::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use tracing::info;

use crate::connection::Shared;
use crate::connection::transport::Transport;
use crate::limits::AddressSlot;
use crate::metrics::Metrics;

/// Largest request head accepted (beyond: 431).
const MAX_HEAD: usize = 16 * 1024;
/// How long a refused request's remaining bytes are read and dropped before closing.
const LINGER: Duration = Duration::from_secs(2);
/// Most header fields in a request (beyond: 431).
const MAX_HEADERS: usize = 64;
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
/// A client that upgraded to WebSocket: the connection to run.
pub struct Upgraded {
    /// The WebSocket transport, handshake done.
    pub transport: Transport,
    /// The client (behind a trusted proxy: the one it names).
    pub peer: std::net::SocketAddr,
    /// The client's place among its address's connections, when a proxy carries it.
    pub slot: Option<AddressSlot>,
}

/// `trusted`: `peer` is a trusted proxy, whose `X-Forwarded-For` names the client.
/// Returns the WebSocket connection if the client upgraded to one, for the caller to run:
/// nothing of the HTTP exchange stays with it.
pub async fn serve(
    shared: &Shared,
    mut stream: Stream,
    peer: std::net::SocketAddr,
    trusted: bool,
) -> Option<Upgraded> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut buffer)).await {
            Ok(Ok(Head::Complete(head))) => head,
            Ok(Ok(Head::TooLarge)) => {
                refuse(stream, 431, b"request header fields too large\n").await;
                return None;
            }
            Ok(Ok(Head::Closed)) | Ok(Err(_)) | Err(_) => return None,
        };
        let request = match parse(&buffer[..head]) {
            Ok(request) => request,
            Err(status) => {
                refuse(stream, status, b"bad request\n").await;
                return None;
            }
        };
        let peer = match request.header("x-forwarded-for") {
            Some(forwarded) if trusted => shared
                .proxies
                .forwarded_client(forwarded)
                .map_or(peer, |client| std::net::SocketAddr::new(client, 0)),
            _ => peer,
        };
        let leftover = buffer.split_off(head);
        buffer.clear();
        let is_upgrade = request.header_has_token("connection", "upgrade")
            && request.header_has_token("upgrade", "websocket");
        if is_upgrade && request.path == shared.config.listeners.ws_path {
            // Counted against the client a proxy carries; others were counted at accept.
            let slot = if trusted {
                let Some(slot) = super::admit(shared, peer) else {
                    refuse(stream, 429, b"too many connections from this address\n").await;
                    return None;
                };
                Some(slot)
            } else {
                None
            };
            let stream = Box::pin(handshake(shared, stream, request, peer)).await?;
            let transport = Transport::websocket(stream, leftover, shared.config.limits.max_packet_size);
            return Some(Upgraded {
                transport,
                peer,
                slot,
            });
        }
        buffer = leftover;
        let keep_alive = request.keep_alive;
        let sent = match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/metrics") => match metrics_access(shared, &request, peer) {
                Ok(()) => {
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
                Err(status) => {
                    respond(
                        &mut stream,
                        status,
                        "text/plain",
                        b"metrics not available\n",
                        keep_alive,
                    )
                    .await
                }
            },
            ("GET", "/ready") => {
                // For load balancers: 503 while storage fails, so that clients needing
                // persistent sessions go to another node.
                let (status, body): (u16, &[u8]) = match shared.store.health().is_failing() {
                    false => (200, b"ready\n"),
                    true => (503, b"storage failing\n"),
                };
                respond(&mut stream, status, "text/plain", body, keep_alive).await
            }
            ("GET" | "HEAD", path) => serve_file(shared, &mut stream, path, keep_alive).await,
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
            return None;
        }
    }
}

/// How reading a request head ended.
enum Head {
    /// A whole head of this length.
    Complete(usize),
    /// Over `MAX_HEAD` without its end.
    TooLarge,
    /// The peer closed the connection.
    Closed,
}

/// Reads until the end of a request head.
async fn read_head(stream: &mut Stream, buffer: &mut Vec<u8>) -> std::io::Result<Head> {
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            return Ok(if end + 4 > MAX_HEAD {
                Head::TooLarge
            } else {
                Head::Complete(end + 4)
            });
        }
        if buffer.len() > MAX_HEAD {
            return Ok(Head::TooLarge);
        }
        // Straight into the buffer: a chunk array here would sit in every connection's future.
        buffer.reserve(2048);
        if stream.read_buf(buffer).await? == 0 {
            return Ok(Head::Closed);
        }
    }
}

/// The request in `head`, or the status that refuses it: 431 for more than
/// `MAX_HEADERS` header fields, 400 for anything malformed.
fn parse(head: &[u8]) -> Result<Request, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        _ => return Err(400),
    }
    let version = request.version.ok_or(400u16)?;
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let mut parsed = Request {
        method: request.method.ok_or(400u16)?.to_owned(),
        path: request
            .path
            .ok_or(400u16)?
            .split('?')
            .next()
            .unwrap_or("/")
            .to_owned(),
        headers,
        keep_alive: version == 1,
    };
    if parsed.header_has_token("connection", "close") {
        parsed.keep_alive = false;
    }
    Ok(parsed)
}

/// Whether this request may read `/metrics`: with `listeners.metrics_token` set, only with
/// `Authorization: Bearer <token>` (401 otherwise, loopback included); without it, only
/// from loopback (403 otherwise).
fn metrics_access(shared: &Shared, request: &Request, peer: std::net::SocketAddr) -> Result<(), u16> {
    let token = &shared.config.listeners.metrics_token;
    if token.is_empty() {
        return if peer.ip().is_loopback() { Ok(()) } else { Err(403) };
    }
    let presented = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(401)
    }
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

async fn respond(
    stream: &mut Stream,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
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

/// Answers `status` and closes without a reset: the client may still be sending the
/// request the answer refuses, and unread bytes at close would make the kernel send a
/// reset that can destroy the answer before the client reads it. So the write side
/// is shut first, and what still arrives is read and dropped, for a bounded time.
async fn refuse(mut stream: Stream, status: u16, body: &[u8]) {
    if respond(&mut stream, status, "text/plain", body, false)
        .await
        .is_err()
    {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
    })
    .await;
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

/// The file under `root` for a URL path; `None` if the path tries to leave `root` or
/// names a dotfile (`.env`, `.git/`).
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = url_path.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let relative = Path::new(&relative);
    let hidden = |c: &Component<'_>| c.as_os_str().to_string_lossy().starts_with('.');
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)) || hidden(&c))
    {
        return None;
    }
    Some(root.join(relative))
}

/// `file` if, with every symbolic link followed, it still lies under `root`.
async fn contained(root: &Path, file: PathBuf) -> Option<PathBuf> {
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let real = tokio::fs::canonicalize(&file).await.ok()?;
    real.starts_with(&root).then_some(real)
}

async fn serve_file(
    shared: &Shared,
    stream: &mut Stream,
    url_path: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let root = &shared.config.listeners.www;
    let file = (!root.is_empty())
        .then(|| resolve(Path::new(root), url_path))
        .flatten();
    let file = match file {
        Some(file) => contained(Path::new(root), file).await,
        None => None,
    };
    let Some(file) = file else {
        return respond(stream, 404, "text/plain", b"not found\n", keep_alive).await;
    };
    match tokio::fs::read(&file).await {
        Ok(body) => respond(stream, 200, content_type(&file), &body, keep_alive).await,
        Err(_) => respond(stream, 404, "text/plain", b"not found\n", keep_alive).await,
    }
}

/// Answers the upgrade request: the stream, switched to WebSocket, or `None` if refused.
async fn handshake(
    shared: &Shared,
    mut stream: Stream,
    request: Request,
    peer: std::net::SocketAddr,
) -> Option<Stream> {
    if super::at_capacity(shared) {
        let _ = respond(&mut stream, 503, "text/plain", b"too many connections\n", false).await;
        return None;
    }
    if let Some(origin) = request.header("origin")
        && !super::origin::allowed(
            &shared.config.listeners.allowed_origins,
            origin,
            request.header("host"),
        )
    {
        info!(%peer, origin, "WebSocket upgrade refused: origin not allowed (listeners.allowed_origins)");
        Metrics::inc(&shared.metrics.origin_refusals_total);
        let _ = respond(&mut stream, 403, "text/plain", b"origin not allowed\n", false).await;
        return None;
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
        return None;
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
        return None;
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
    stream.write_all(response.as_bytes()).await.ok()?;
    Some(stream)
}
