//! The cost of security, side by side in one run against the same tabmq binary:
//!
//! - a connection storm (every client connects at once and waits for CONNACK) without
//!   credentials, with a password file (an argon2id check per connection, on at most one
//!   thread per core) and with JWTs (an HS256 signature check per connection);
//! - QoS 1 publishing (one publisher, 50 awaiting PUBACK) without an ACL and with a
//!   100-rule ACL, which every PUBLISH is checked against.
//!
//! Setups alternate within each repetition; medians are reported.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tabmq_protocol::QoS;
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::flow::SessionFlows;

use crate::connections::all_at_once;
use crate::error::BenchError;
use crate::peer::{Peer, config};
use crate::target::{Programs, Running, Target};
use crate::transport::Transport;

const SECRET: &str = "tabmq-bench-secret-of-at-least-32-bytes";
const PASSWORD: &str = "bench-password";
const WINDOW: usize = 50;

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    Anonymous,
    Password,
    Jwt,
}

impl Login {
    fn name(self) -> &'static str {
        match self {
            Login::Anonymous => "no credentials",
            Login::Password => "password file (argon2id)",
            Login::Jwt => "JWT (HS256)",
        }
    }
}

fn token() -> Result<String, BenchError> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let claims = serde_json::json!({ "sub": "bench", "exp": exp });
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())
        .map_err(|e| BenchError::Protocol(format!("cannot make a token: {e}")))?;
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)
        .map_err(|e| BenchError::Protocol(format!("cannot make a token: {e}")))
}

/// The config sections of `login`, with the files they name written into `dir`.
fn auth_config(login: Login, programs: &Programs, dir: &Path) -> Result<String, BenchError> {
    Ok(match login {
        Login::Anonymous => String::new(),
        Login::Password => {
            let file = dir.join("passwords");
            let mut passwd = std::process::Command::new(&programs.tabmq)
                .arg("passwd")
                .arg(&file)
                .arg("bench")
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            if let Some(stdin) = passwd.stdin.as_mut() {
                use std::io::Write;
                writeln!(stdin, "{PASSWORD}")?;
            }
            if !passwd.wait()?.success() {
                return Err(BenchError::Process("tabmq passwd failed".into()));
            }
            format!("[auth]\npassword_file = \"{}\"\n", file.display())
        }
        Login::Jwt => format!("[auth.jwt]\nsecret = \"{SECRET}\"\n"),
    })
}

/// An ACL of `rules` rules for anonymous clients, the last one granting `bench/#`.
fn acl_config(rules: usize, dir: &Path) -> Result<String, BenchError> {
    let file = dir.join("acl");
    let mut text: String = (1..rules)
        .map(|n| format!("topic readwrite other/{n}/#\n"))
        .collect();
    text.push_str("topic readwrite bench/#\n");
    std::fs::write(&file, text)?;
    Ok(format!("[authz]\nacl_file = \"{}\"\n", file.display()))
}

/// Every client connects at once; the time until the last CONNACK, and each one's.
async fn storm(addr: &str, clients: u64, login: Login) -> Result<(Duration, Histogram<u64>), BenchError> {
    let (addr, token) = (addr.to_owned(), token()?);
    all_at_once(clients, move |index| {
        let mut settings = config(&format!("bench-login-{index}"), false);
        match login {
            Login::Anonymous => {}
            Login::Password => {
                settings.username = Some("bench".into());
                settings.password = Some(PASSWORD.as_bytes().to_vec().into());
            }
            Login::Jwt => settings.password = Some(token.clone().into_bytes().into()),
        }
        let addr = addr.clone();
        Box::pin(async move { Peer::connect(Transport::Ws, &addr, settings, SessionFlows::default()).await })
    })
    .await
}

/// One publisher sends `messages` QoS 1 messages, `WINDOW` awaiting PUBACK; msg/s.
async fn publish(addr: &str, messages: u64) -> Result<f64, BenchError> {
    let (mut peer, _) = Peer::connect(
        Transport::Ws,
        addr,
        config("bench-publisher", false),
        SessionFlows::default(),
    )
    .await?;
    let started = Instant::now();
    let (mut sent, mut done) = (0u64, 0u64);
    while done < messages {
        while sent < messages && peer.unfinished() < WINDOW {
            peer.publish(&format!("bench/acl/{}", sent % 10), vec![0; 64], QoS::AtLeastOnce)?;
            sent += 1;
        }
        peer.flush().await?;
        peer.read(|event| {
            if matches!(event, ClientEvent::PublishDone { .. }) {
                done += 1;
            }
        })
        .await?;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs both comparisons `repeat` times; the Markdown report.
pub async fn run(
    programs: &Programs,
    clients: u64,
    messages: u64,
    repeat: usize,
) -> Result<String, BenchError> {
    let dir = std::env::temp_dir().join(format!("tabmq-bench-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let logins = [Login::Anonymous, Login::Password, Login::Jwt];
    let mut storms: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); logins.len()];
    let mut rates: [Vec<f64>; 2] = Default::default();
    for round in 0..repeat {
        eprintln!("security bench: round {}/{repeat}", round + 1);
        for (index, login) in logins.into_iter().enumerate() {
            let broker =
                Running::start_with(Target::Tabmq, programs, &auth_config(login, programs, &dir)?).await?;
            let (elapsed, latency) = storm(&broker.ws, clients, login).await?;
            broker.stop().await;
            storms[index].0.push(elapsed.as_secs_f64());
            storms[index]
                .1
                .push(latency.value_at_quantile(0.5) as f64 / 1000.0);
            storms[index]
                .2
                .push(latency.value_at_quantile(0.99) as f64 / 1000.0);
        }
        for (index, rules) in [0usize, 100].into_iter().enumerate() {
            let extra = if rules == 0 {
                String::new()
            } else {
                acl_config(rules, &dir)?
            };
            let broker = Running::start_with(Target::Tabmq, programs, &extra).await?;
            rates[index].push(publish(&broker.ws, messages).await?);
            broker.stop().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "Connection storm: {clients} WebSocket clients connect at once (median of {repeat} runs).\n\n\
         | credentials | until the last CONNACK | CONNACK p50 | CONNACK p99 |\n|---|---|---|---|"
    );
    for (login, (elapsed, p50, p99)) in logins.iter().zip(&mut storms) {
        let _ = writeln!(
            report,
            "| {} | {:.2} s | {:.1} ms | {:.1} ms |",
            login.name(),
            median(elapsed),
            median(p50),
            median(p99)
        );
    }
    let _ = writeln!(
        report,
        "\nPublishing: {messages} QoS 1 messages of 64 B, {WINDOW} awaiting PUBACK (median of {repeat} runs).\n\n\
         | ACL | msg/s |\n|---|---|\n| none | {:.0} |\n| 100 rules | {:.0} |",
        median(&mut rates[0]),
        median(&mut rates[1])
    );
    Ok(report)
}
