//! The HTTP side against hostile pages and requests: WebSocket upgrades from pages of
//! other origins, `/metrics` behind a token, dotfiles and symbolic links out of `--www`,
//! oversized request heads.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use support::broker::Broker;

/// Sends `head` (plus the final blank line) and returns the whole response, or what
/// arrived before the broker closed the connection.
fn exchange(address: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "{head}\r\n").expect("send");
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    // An upgraded connection stays open: the status line and headers are enough.
    while let Ok(read) = stream.read(&mut chunk) {
        if read == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..read]);
        if response.starts_with(b"HTTP/1.1 101") && response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

fn upgrade(broker: &Broker, origin: Option<&str>) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let response = exchange(
        broker.ws,
        &format!(
            "GET /mqtt HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n{origin}",
            broker.ws
        ),
    );
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn by_default_only_the_own_page_and_loopback_pages_open_the_websocket() {
    let broker = Broker::start("");
    let own = format!("http://{}", broker.ws);
    assert!(
        upgrade(&broker, Some(&own)).starts_with("HTTP/1.1 101"),
        "the page the broker serves"
    );
    assert!(upgrade(&broker, Some("http://localhost:5173")).starts_with("HTTP/1.1 101"));
    assert!(
        upgrade(&broker, None).starts_with("HTTP/1.1 101"),
        "not a browser page"
    );
    assert_eq!(
        upgrade(&broker, Some("https://evil.example")),
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(upgrade(&broker, Some("null")), "HTTP/1.1 403 Forbidden");
    assert_eq!(broker.metric("origin_refusals_total"), 2);
}

#[test]
fn a_list_of_origins_replaces_the_default_and_a_star_allows_any() {
    let broker = Broker::start("[listeners]\nallowed_origins = [\"https://app.example.com\"]\n");
    assert!(upgrade(&broker, Some("https://app.example.com")).starts_with("HTTP/1.1 101"));
    assert_eq!(
        upgrade(&broker, Some("http://localhost:5173")),
        "HTTP/1.1 403 Forbidden"
    );
    let open = Broker::start("[listeners]\nallowed_origins = [\"*\"]\n");
    assert!(upgrade(&open, Some("https://evil.example")).starts_with("HTTP/1.1 101"));
    assert!(
        open.log().contains("allowed_origins"),
        "a star is logged as a warning"
    );
}

#[test]
fn metrics_need_the_token_when_one_is_set() {
    let broker = Broker::start("[listeners]\nmetrics_token = \"s3cret-token\"\n");
    let get = |authorization: &str| {
        exchange(
            broker.ws,
            &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{authorization}"),
        )
    };
    assert!(get("").starts_with("HTTP/1.1 401"), "loopback too");
    assert!(get("Authorization: Bearer wrong\r\n").starts_with("HTTP/1.1 401"));
    let answer = get("Authorization: Bearer s3cret-token\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("tabmq_connections"));
}

#[test]
fn dotfiles_and_links_out_of_the_www_directory_are_not_served() {
    let dir = std::env::temp_dir().join(format!("tabmq-www-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let www = dir.join("www");
    std::fs::create_dir_all(www.join(".git")).expect("www");
    std::fs::write(www.join("index.html"), "<h1>demo</h1>").expect("index");
    std::fs::write(www.join(".env"), "SECRET=1").expect(".env");
    std::fs::write(www.join(".git/config"), "[core]").expect(".git");
    let outside = dir.join("outside.txt");
    std::fs::write(&outside, "private").expect("outside");
    std::os::unix::fs::symlink(&outside, www.join("escape.txt")).expect("symlink");
    std::os::unix::fs::symlink(www.join("index.html"), www.join("inside.html")).expect("symlink");
    let served = Broker::start_serving("", &www.to_string_lossy());
    let get = |path: &str| {
        exchange(
            served.ws,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"),
        )
    };
    assert!(get("/").contains("<h1>demo</h1>"));
    assert!(
        get("/inside.html").contains("<h1>demo</h1>"),
        "a link that stays inside is fine"
    );
    for path in [
        "/.env",
        "/.git/config",
        "/escape.txt",
        "/../outside.txt",
        "/%2e%2e/outside.txt",
    ] {
        let answer = get(path);
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(!answer.contains("SECRET") && !answer.contains("private"));
    }
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oversized_request_heads_get_431() {
    let broker = Broker::start("");
    let many: String = (0..70).map(|n| format!("X-Filler-{n}: y\r\n")).collect();
    let answer = exchange(broker.ws, &format!("GET / HTTP/1.1\r\nHost: x\r\n{many}"));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let long = format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n", "c".repeat(20_000));
    let answer = exchange(broker.ws, &long);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}
