//! What one side writes, the other reads back the same: tab messages of every kind,
//! the inputs the driver writes, the actions it reads.

use tabmq_protocol::flow::{InflightState, OutgoingMessage};
use tabmq_protocol::packet::{Publish, RetainHandling, Subscription, SubscriptionOptions};
use tabmq_protocol::{PacketId, Properties, ProtocolVersion, QoS};

use super::bridge::{read_input, read_options, write_action};
use super::values::{decode_tab_message, encode_tab_message};
use super::{Reader, WireError, Writer};
use crate::error::ClientError;
use crate::mirror::SessionWrites;
use crate::session::{Action, Event, Input, Received, Reply, Request};
use crate::session_log::{decode_entry, encode_entry};
use crate::tabs::{LeaderState, PendingItem, TabMessage};

fn publish_with_properties() -> Publish {
    Publish {
        retain: true,
        properties: Properties {
            message_expiry_interval: Some(60),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/to".into()),
            correlation_data: Some(vec![0, 1, 255].into()),
            user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            ..Properties::default()
        }
        .into(),
        ..Publish::new("room/ü", &b"\x00payload\xff"[..], QoS::ExactlyOnce)
    }
}

fn pending() -> Vec<PendingItem> {
    vec![
        PendingItem {
            topic: "t/1".into(),
            qos: 1,
            state: "queued",
            bytes: 3,
        },
        PendingItem {
            topic: "t/2".into(),
            qos: 2,
            state: "awaiting-pubcomp",
            bytes: 70_000,
        },
    ]
}

fn every_tab_message() -> Vec<TabMessage> {
    let call = |request| TabMessage::Call {
        tab: "tab-1".into(),
        call: 7,
        request,
    };
    let result = |outcome| TabMessage::Result {
        tab: "tab-1".into(),
        call: 300,
        outcome,
    };
    let subscription = |filter: &str| Subscription {
        filter: filter.into(),
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        },
    };
    let mut received = Received {
        publish: publish_with_properties(),
        id: "5-1700000000000-42".into(),
    };
    received.publish.dup = true;
    vec![
        TabMessage::Hello { tab: "tab-9".into() },
        TabMessage::Leader(LeaderState {
            elected: true,
            connected: false,
            session_present: true,
            pending: pending(),
        }),
        call(Request::Connect),
        call(Request::Publish(publish_with_properties())),
        call(Request::Subscribe(vec![subscription("a/+"), subscription("b/#")])),
        call(Request::Unsubscribe(vec!["a/+".into(), String::new()])),
        result(Ok(Reply::Done)),
        result(Ok(Reply::Connected {
            session_present: true,
        })),
        result(Ok(Reply::Reasons(vec![0, 1, 0x87]))),
        result(Err(ClientError::Relayed {
            kind: "refused".into(),
            message: "refused by the broker with reason code 0x87".into(),
            reason_code: Some(0x87),
        })),
        TabMessage::Event(Event::Connect {
            session_present: false,
        }),
        TabMessage::Event(Event::Disconnect {
            reason: "the broker closed the connection".into(),
            reason_code: Some(0x8e),
            close_code: 4000,
            close_reason: "taken over".into(),
        }),
        TabMessage::Event(Event::Reconnecting {
            attempt: 3,
            delay_ms: 2_000,
        }),
        TabMessage::Event(Event::Offline),
        TabMessage::Event(Event::Online),
        TabMessage::Event(Event::Takeover { confirmed: true }),
        TabMessage::Event(Event::Refused { reason_code: 0x86 }),
        TabMessage::Message(received),
        TabMessage::Pending(pending()),
    ]
}

#[test]
fn every_tab_message_round_trips() {
    for message in every_tab_message() {
        let bytes = encode_tab_message(&message);
        assert_eq!(decode_tab_message(&bytes).as_ref(), Ok(&message), "{message:?}");
    }
}

#[test]
fn an_error_outcome_reaches_the_other_tab_with_its_kind_message_and_code() {
    let message = TabMessage::Result {
        tab: "t".into(),
        call: 1,
        outcome: Err(ClientError::Refused(0x87)),
    };
    let Ok(TabMessage::Result {
        outcome: Err(error), ..
    }) = decode_tab_message(&encode_tab_message(&message))
    else {
        panic!("the result decodes");
    };
    assert_eq!(error.kind(), "refused");
    assert_eq!(error.reason_code(), Some(0x87));
    assert_eq!(error.to_string(), ClientError::Refused(0x87).to_string());
}

#[test]
fn damaged_and_foreign_tab_messages_are_refused() {
    for message in every_tab_message() {
        let bytes = encode_tab_message(&message);
        for cut in 0..bytes.len() {
            assert!(
                decode_tab_message(&bytes[..cut]).is_err(),
                "{message:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_tab_message(&longer), Err(WireError::Invalid));
        let mut other_format = bytes;
        other_format[0] = 2;
        assert_eq!(decode_tab_message(&other_format), Err(WireError::Invalid));
    }
    for request in [Request::Disconnect, Request::Close, Request::SetDeviceId(None)] {
        let call = TabMessage::Call {
            tab: "t".into(),
            call: 1,
            request,
        };
        assert_eq!(
            decode_tab_message(&encode_tab_message(&call)),
            Err(WireError::Invalid),
            "only requests a follower relays are taken"
        );
    }
}

fn outgoing(id: u64, state: Option<InflightState>) -> OutgoingMessage {
    let mut publish = Publish::new(format!("t/{id}"), vec![1, 2], QoS::ExactlyOnce);
    publish.packet_id = state.and_then(|_| PacketId::new(id as u16));
    OutgoingMessage { id, publish, state }
}

#[test]
fn a_save_action_carries_an_entry_the_log_reads_back() {
    let writes = SessionWrites {
        put: vec![outgoing(4, Some(InflightState::AwaitingPubrec))],
        delete: vec![1..=3],
        incoming: None,
        replace_all: true,
    };
    let action = Action::Save {
        save: 9,
        seq: 130,
        client_id: "app-phone".into(),
        writes: writes.clone(),
    };
    let bytes = write_action(&action).expect("encodes");
    let mut reader = Reader::new(&bytes);
    assert_eq!(reader.u8(), Ok(3));
    assert_eq!(reader.n(), Ok(9));
    assert_eq!(reader.n(), Ok(130));
    assert_eq!(reader.str().as_deref(), Ok("app-phone"));
    assert_eq!(reader.bool(), Ok(true));
    assert_eq!(decode_entry(reader.rest()), Ok(writes));
}

fn loaded_input(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut writer = Writer::tagged(7);
    writer.str("app-phone").u8(0).n(2).n(entries.len() as u64);
    for entry in entries {
        writer.bytes(entry);
    }
    writer.finish()
}

#[test]
fn a_loaded_log_is_applied_in_order_and_a_damaged_entry_is_reported() {
    let first = SessionWrites {
        put: vec![outgoing(1, None), outgoing(2, None)],
        ..SessionWrites::default()
    };
    let second = SessionWrites {
        put: vec![outgoing(2, Some(InflightState::AwaitingPubcomp))],
        delete: vec![1..=1],
        ..SessionWrites::default()
    };
    let entries = [
        encode_entry(&first).expect("encodes"),
        encode_entry(&second).expect("encodes"),
    ];
    let Ok(Input::Loaded { client_id, result }) = read_input(&loaded_input(&entries)) else {
        panic!("a loaded input");
    };
    assert_eq!(client_id, "app-phone");
    let (flows, last_seq) = result.expect("the log is readable");
    assert_eq!(last_seq, 2);
    assert_eq!(
        flows.outgoing.iter().map(|m| (m.id, m.state)).collect::<Vec<_>>(),
        [(2, Some(InflightState::AwaitingPubcomp))]
    );

    let damaged = [entries[0].clone(), vec![1, 0, 9]];
    let Ok(Input::Loaded { result, .. }) = read_input(&loaded_input(&damaged)) else {
        panic!("a loaded input");
    };
    let error = result.expect_err("a damaged entry is reported");
    assert!(
        error.starts_with("a saved session entry is unreadable"),
        "{error}"
    );
}

#[test]
fn inputs_the_driver_writes_are_read_and_unknown_ones_refused() {
    let mut request = Writer::tagged(0);
    request.n(12).u8(3).opt(Some("phone"), |w, s| {
        w.str(s);
    });
    assert!(matches!(
        read_input(&request.finish()),
        Ok(Input::Request { op: 12, request: Request::SetDeviceId(Some(id)) }) if id == "phone"
    ));
    let mut received = Writer::tagged(2);
    received.n(3).rest(&[0x30, 0x00]);
    assert!(matches!(
        read_input(&received.finish()),
        Ok(Input::Received { socket: 3, bytes }) if bytes == [0x30, 0x00]
    ));
    let mut saved = Writer::tagged(5);
    saved.n(4).opt(Some("QuotaExceededError"), |w, s| {
        w.str(s);
    });
    assert!(matches!(
        read_input(&saved.finish()),
        Ok(Input::Saved { save: 4, result: Err(e) }) if e == "QuotaExceededError"
    ));
    assert!(matches!(read_input(&[4]), Ok(Input::Timeout)));
    assert_eq!(read_input(&[99]).err(), Some(WireError::Invalid));
    assert_eq!(read_input(&[4, 0]).err(), Some(WireError::Invalid));
}

#[test]
fn options_are_read_in_the_order_the_driver_writes_them() {
    let mut writer = Writer::default();
    writer
        .u8(4)
        .str("app")
        .opt(Some("alice"), |w, s| {
            w.str(s);
        })
        .n(30)
        .bool(true)
        .n(600)
        .opt(Some("user"), |w, s| {
            w.str(s);
        })
        .opt(None::<&str>, |w, s| {
            w.str(s);
        })
        .opt(Some(()), |w, ()| {
            w.str("will/t")
                .str("gone")
                .u8(1)
                .bool(false)
                .opt(Some(5u64), |w, n| {
                    w.n(n);
                });
        })
        .n(20)
        .n(100)
        .n(5_000)
        .n(1_000)
        .n(30_000);
    writer.str("tab-1");
    let bytes = writer.finish();
    let (options, version, mut rest) = read_options(&bytes).expect("readable");
    assert_eq!(
        rest.str().as_deref(),
        Ok("tab-1"),
        "what follows the options is left to read"
    );
    assert_eq!(version, ProtocolVersion::V311);
    assert_eq!(options.namespace, "app");
    assert_eq!(options.user.as_deref(), Some("alice"));
    assert_eq!(options.keep_alive, 30);
    assert_eq!(options.username.as_deref(), Some("user"));
    assert_eq!(options.password, None);
    assert_eq!(
        options.will.as_ref().map(|will| will.delay_seconds),
        Some(Some(5))
    );
    assert_eq!(options.receive_maximum, 20);
    assert_eq!(options.backoff.max_ms, 5_000);
    assert_eq!(options.flap_cooldown_ms, 30_000);
    assert!(read_options(&[3]).is_err(), "an unknown protocol level");
    assert!(read_options(&[5]).is_err(), "truncated");
}
