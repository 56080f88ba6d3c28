//! A full disk, for real: the data directory on a small tmpfs, filled up while the broker
//! runs. Nothing that needs storage is acknowledged meanwhile, what needs none goes on,
//! `/ready` says so, and once space is back the broker recovers without a restart, with
//! every acknowledged message still there after a SIGKILL.
//!
//! Mounting needs root; without it the full-disk test says so and checks nothing (the writer's
//! unit tests cover the same states with a store that fails on demand).

mod support;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::broker::{Broker, http_get};
use support::client::{TestClient, WAIT, config};
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with a file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&chunk[..512]).is_ok() {}
    let _ = file.sync_all();
    path
}

fn message(n: usize) -> Publish {
    Publish::new(
        "disk/data",
        format!("{n:05}{}", "x".repeat(1024)),
        QoS::AtLeastOnce,
    )
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_full_disk_refuses_what_needs_storage_and_recovers_without_a_restart() {
    let v5 = ProtocolVersion::V5;
    let mut tmpfs = None;
    // The probes below connect faster and hold more connections than one address may.
    let limits = "[limits]\nmax_connect_rate_per_ip = 100000\nconnect_burst_per_ip = 100000\nmax_connections_per_ip = 100000\n";
    let mut broker = Broker::start_with(limits, |data_dir| tmpfs = Tmpfs::mount(data_dir));
    let Some(_tmpfs) = tmpfs else {
        println!("skipped: mounting a tmpfs needs root");
        return;
    };
    let mut offline = TestClient::tcp(broker.tcp, config(v5, "offline-sub", false)).await;
    offline.subscribe("disk/#", QoS::AtLeastOnce).await;
    offline.disconnect().await;
    let mut keeper = TestClient::tcp(broker.tcp, config(v5, "keeper", false)).await;
    let mut publisher = TestClient::tcp(broker.tcp, config(v5, "publisher", true)).await;
    assert_eq!(http_get(broker.ws, "/ready"), "ready\n");

    let mut acknowledged = Vec::new();
    for n in 0..10 {
        assert_eq!(publisher.publish(message(n)).await, ReasonCode::Success);
        acknowledged.push(n);
    }

    let filler = fill(&broker.data_dir());
    // New persistent sessions until one cannot be stored: each is the only write of its
    // moment, so the first refusal is a CONNACK withheld because its commit failed.
    let mut probes = Vec::new();
    let mut accepted = Vec::new();
    for n in 0..5_000 {
        let id = format!("probe-{n}");
        let mut probe = TestClient::tcp(broker.tcp, config(v5, &id, false)).await;
        match probe.connack().await {
            Ok(_) => accepted.push(id),
            Err(reason) => {
                assert_eq!(reason, ReasonCode::ServerUnavailable, "{id}");
                break;
            }
        }
        probes.push(probe);
    }
    assert!(accepted.len() < 5_000, "the disk never filled");
    println!("disk full after {} new sessions", accepted.len());
    let refused = 100;
    // Nothing that needs storage is acknowledged.
    assert_eq!(broker.metric("storage_failing"), 1);
    assert_eq!(http_get(broker.ws, "/ready"), "storage failing\n");
    for n in refused..refused + 20 {
        assert_eq!(
            publisher.publish(message(n)).await,
            ReasonCode::ImplementationSpecificError,
            "a message for a stored session"
        );
    }
    // MQTT 3.1.1 has no negative PUBACK: the connection is closed instead.
    let mut legacy = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "legacy", true)).await;
    legacy.publish_nowait(message(refused + 50)).await;
    let event = legacy
        .wait_for(|event| {
            matches!(
                event,
                ClientEvent::PublishDone { .. } | ClientEvent::Disconnected(_)
            )
        })
        .await;
    assert!(matches!(event, ClientEvent::Disconnected(_)), "3.1.1: {event:?}");
    for version in [ProtocolVersion::V311, v5] {
        let mut newcomer = TestClient::tcp(broker.tcp, config(version, "newcomer", false)).await;
        assert_eq!(
            newcomer.connack().await,
            Err(ReasonCode::ServerUnavailable),
            "{version:?}"
        );
    }
    assert_eq!(
        keeper.subscribe("more/#", QoS::AtLeastOnce).await,
        ReasonCode::UnspecifiedError,
        "a stored session's subscription"
    );

    // What needs no storage goes on: clean sessions, QoS 0 and QoS 1 between them.
    let mut listener = TestClient::tcp(broker.tcp, config(v5, "listener", true)).await;
    assert_eq!(
        listener.subscribe("live/#", QoS::AtLeastOnce).await,
        ReasonCode::GrantedQos1
    );
    let live = Publish::new("live/1", "hello", QoS::AtLeastOnce);
    assert_eq!(publisher.publish(live).await, ReasonCode::Success);
    publisher
        .publish(Publish::new("live/2", "zero", QoS::AtMostOnce))
        .await;
    for payload in ["hello", "zero"] {
        let received = listener.message(WAIT).await.expect("delivered");
        assert_eq!(received.payload.as_ref(), payload.as_bytes());
    }

    // Space comes back: the broker recovers by itself.
    std::fs::remove_file(filler).expect("remove the filler");
    wait_until("the broker never became ready again", || {
        http_get(broker.ws, "/ready") == "ready\n"
    });
    assert_eq!(broker.metric("storage_failing"), 0);
    let after = refused + 100;
    assert_eq!(publisher.publish(message(after)).await, ReasonCode::Success);
    acknowledged.push(after);
    assert_eq!(
        keeper.subscribe("more/#", QoS::AtLeastOnce).await,
        ReasonCode::GrantedQos1
    );

    // Every acknowledged message and session survives a crash.
    drop(probes);
    broker.kill();
    broker.restart();
    for id in accepted.iter().rev().take(20) {
        let mut probe = TestClient::tcp(broker.tcp, config(v5, id, false)).await;
        assert_eq!(probe.connack().await, Ok(true), "{id} was acknowledged");
    }
    let mut offline = TestClient::tcp(broker.tcp, config(v5, "offline-sub", false)).await;
    assert_eq!(offline.connack().await, Ok(true));
    let mut received = Vec::new();
    while let Some(message) = offline.message(Duration::from_secs(3)).await {
        let n: usize = std::str::from_utf8(&message.payload[..5])
            .expect("utf-8")
            .parse()
            .expect("a number");
        received.push(n);
    }
    let lost: Vec<_> = acknowledged.iter().filter(|n| !received.contains(n)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    println!(
        "after the restart: {} received, all {} acknowledged among them",
        received.len(),
        acknowledged.len()
    );
}

#[test]
fn ready_answers_200_while_storage_works() {
    let broker = Broker::start("");
    assert_eq!(http_get(broker.ws, "/ready"), "ready\n");
    assert_eq!(broker.metric("storage_failing"), 0);
    assert_eq!(broker.metric("storage_kept_changes"), 0);
}
