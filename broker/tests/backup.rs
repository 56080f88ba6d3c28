//! `tabmq backup` makes a consistent copy while the broker runs under QoS 1 load: the copy
//! is a state the broker was in (the queued messages are a prefix of those sent, no gap),
//! holds at least what was acknowledged before it was asked for, and a broker started on
//! it resumes the session. With the broker stopped it copies the file itself.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::broker::Broker;
use support::client::{TestClient, config};
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};

/// Runs `tabmq backup`; its exit code and output.
fn backup(data_dir: &Path, out: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .args(["backup", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run tabmq backup");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

/// The message numbers a broker started on `database` delivers to `backup-sub`.
async fn queued_in(database: &Path) -> Vec<usize> {
    let seed = database.with_extension("seed");
    std::fs::create_dir_all(&seed).expect("seed directory");
    std::fs::copy(database, seed.join("tabmq.redb")).expect("copy the backup");
    let broker = Broker::start_on_copy_of("", &seed);
    let mut subscriber = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "backup-sub", false)).await;
    assert_eq!(
        subscriber.connack().await,
        Ok(true),
        "the session is in the backup"
    );
    let mut numbers = Vec::new();
    while let Some(message) = subscriber.message(Duration::from_secs(2)).await {
        numbers.push(
            std::str::from_utf8(&message.payload)
                .expect("utf-8")
                .parse()
                .expect("a number"),
        );
    }
    numbers
}

#[tokio::test]
async fn a_backup_taken_under_load_is_a_consistent_state_a_broker_resumes() {
    let v5 = ProtocolVersion::V5;
    let mut broker = Broker::start("");
    let mut subscriber = TestClient::tcp(broker.tcp, config(v5, "backup-sub", false)).await;
    subscriber.subscribe("load/#", QoS::AtLeastOnce).await;
    subscriber.disconnect().await;

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut publisher = TestClient::tcp(broker.tcp, config(v5, "backup-pub", true)).await;
    let counter = acknowledged.clone();
    let load = tokio::spawn(async move {
        for n in 0.. {
            let reason = publisher
                .publish(Publish::new("load/n", n.to_string(), QoS::AtLeastOnce))
                .await;
            assert_eq!(reason, ReasonCode::Success);
            counter.store(n + 1, Ordering::SeqCst);
        }
    });
    while acknowledged.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let out = broker.dir.join("online.redb");
    let before = acknowledged.load(Ordering::SeqCst);
    let data_dir = broker.data_dir();
    let (code, report) = {
        let out = out.clone();
        tokio::task::spawn_blocking(move || backup(&data_dir, &out))
            .await
            .expect("backup")
    };
    let after = acknowledged.load(Ordering::SeqCst);
    load.abort();
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("from the running broker"), "{report}");
    let (code, report) = backup(&broker.data_dir(), &out);
    assert_eq!(code, Some(1), "an existing file is not overwritten: {report}");

    let numbers = queued_in(&out).await;
    let expected: Vec<usize> = (0..numbers.len()).collect();
    assert_eq!(
        numbers, expected,
        "a prefix of what was sent, in order, without a gap"
    );
    assert!(
        numbers.len() >= before && numbers.len() <= after + 1,
        "{} queued in the backup; {before} acknowledged before it was asked for, {after} once it was made",
        numbers.len()
    );
    println!(
        "backup under load: {} messages, {before} acknowledged before, {after} after",
        numbers.len()
    );

    // With the broker stopped, the file is read directly.
    assert_eq!(broker.terminate().code(), Some(0));
    let offline = broker.dir.join("offline.redb");
    let (code, report) = backup(&broker.data_dir(), &offline);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("no broker running"), "{report}");
    assert!(queued_in(&offline).await.len() >= after);
}
