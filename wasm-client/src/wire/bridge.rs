//! The machine's side of the JavaScript boundary: inputs the driver sends, actions it
//! runs, and the client options. Each input and action is a tag, then its fields;
//! `npm/src/driver.js` writes the inputs and reads the actions.

use tabmq_protocol::{ProtocolVersion, Timestamp};

use super::values::{
    decode_tab_message, encode_tab_message, read_request, write_event, write_outcome, write_received,
};
use super::{Reader, WireError, Writer};
use crate::backoff::BackoffOptions;
use crate::options::{Options, WillOptions};
use crate::session::{Action, Input, SaveId};
use crate::session_log::{StoredSession, decode_entry, encode_entry};

/// Reads an input. Tags: 0 request (op, request), 1 socket opened (socket), 2 bytes
/// received (socket, then the bytes to the end), 3 socket closed (socket, code,
/// reason), 4 timeout, 5 saved (save, error?), 6 device id stored (error?), 7 session
/// loaded (client id, error?, or last seq and the log entries), 8 handled (delivery),
/// 9 lock granted (client id, lease), 10 lock checked (held), 11 lock lost (client id),
/// 12 tab message (to the end), 13 online, 14 offline, 15 credentials (user name?,
/// password?).
pub fn read_input(bytes: &[u8]) -> Result<Input, WireError> {
    let mut reader = Reader::new(bytes);
    let input = match reader.u8()? {
        0 => Input::Request {
            op: reader.int()?,
            request: read_request(&mut reader)?,
        },
        1 => Input::Opened { socket: reader.n()? },
        2 => Input::Received {
            socket: reader.n()?,
            bytes: reader.rest().to_vec(),
        },
        3 => Input::Closed {
            socket: reader.n()?,
            code: reader.int()?,
            reason: reader.str()?,
        },
        4 => Input::Timeout,
        5 => Input::Saved {
            save: reader.n()?,
            result: failure(&mut reader)?,
        },
        6 => Input::DeviceIdStored {
            result: failure(&mut reader)?,
        },
        7 => {
            let client_id = reader.str()?;
            let result = match failure(&mut reader)? {
                Ok(()) => read_session(&mut reader)?,
                Err(error) => Err(error),
            };
            Input::Loaded { client_id, result }
        }
        8 => Input::Handled {
            delivery: reader.n()?,
        },
        9 => Input::LockGranted {
            client_id: reader.str()?,
            lease: reader.bool()?,
        },
        10 => Input::LockChecked { held: reader.bool()? },
        11 => Input::LockLost {
            client_id: reader.str()?,
        },
        12 => Input::Tab(decode_tab_message(reader.rest())?),
        13 => Input::Online,
        15 => Input::Credentials {
            username: reader.opt(Reader::str)?,
            password: reader.opt(Reader::str)?,
        },
        14 => Input::Offline,
        _ => return Err(WireError::Invalid),
    };
    reader.end()?;
    Ok(input)
}

/// An optional error text: absent means it worked.
fn failure(reader: &mut Reader) -> Result<Result<(), String>, WireError> {
    Ok(reader.opt(Reader::str)?.map_or(Ok(()), Err))
}

type LoadedSession = Result<(tabmq_protocol::flow::SessionFlows, u64), String>;

/// The key of the session log's last entry and its entries, applied in order.
fn read_session(reader: &mut Reader) -> Result<LoadedSession, WireError> {
    let last_seq = reader.n()?;
    let count: usize = reader.int()?;
    let mut stored = StoredSession::default();
    for _ in 0..count {
        match decode_entry(reader.bytes()?) {
            Ok(writes) => stored.apply(&writes),
            Err(error) => return Ok(Err(format!("a saved session entry is unreadable: {error}"))),
        }
    }
    Ok(Ok((stored.flows(), last_seq)))
}

/// Writes an action. Tags: 0 open (socket), 1 send (socket, then the bytes to the
/// end), 2 close (socket, code, reason), 3 save (save, seq, client id, replaces, then
/// the log entry to the end), 4 store device id (id?), 5 load (client id), 6 deliver
/// (delivery, message), 7 emit (event), 8 settle (op, outcome), 9 join tabs (client
/// id), 10 leave tabs, 11 check lock, 12 post (tab message to the end).
///
/// A save whose entry cannot be encoded (a PUBLISH the codec refuses, which the client
/// never accepts) is `Err` with its id and why, for the machine to hear as failed.
pub fn write_action(action: &Action) -> Result<Vec<u8>, (SaveId, String)> {
    let mut writer = Writer::default();
    match action {
        Action::Open { socket } => {
            writer.u8(0).n(*socket);
        }
        Action::Send { socket, bytes } => {
            writer.u8(1).n(*socket).rest(bytes);
        }
        Action::Close { socket, code, reason } => {
            writer.u8(2).n(*socket).n((*code).into()).str(reason);
        }
        Action::Save {
            save,
            seq,
            client_id,
            writes,
        } => {
            let entry = encode_entry(writes)
                .map_err(|error| (*save, format!("a message cannot be saved: {error}")))?;
            writer
                .u8(3)
                .n(*save)
                .n(*seq)
                .str(client_id)
                .bool(writes.replace_all)
                .rest(&entry);
        }
        Action::StoreDeviceId { device_id } => {
            writer.u8(4).opt(device_id.as_deref(), |w, id| {
                w.str(id);
            });
        }
        Action::Load { client_id } => {
            writer.u8(5).str(client_id);
        }
        Action::Deliver { delivery, message } => write_received(writer.u8(6).n(*delivery), message),
        Action::Emit(event) => write_event(writer.u8(7), event),
        Action::Settle { op, outcome } => write_outcome(writer.u8(8).n((*op).into()), outcome),
        Action::JoinTabs { client_id } => {
            writer.u8(9).str(client_id);
        }
        Action::LeaveTabs => {
            writer.u8(10);
        }
        Action::CheckLock => {
            writer.u8(11);
        }
        Action::Post(message) => {
            writer.u8(12).rest(&encode_tab_message(message));
        }
    }
    Ok(writer.finish())
}

/// The options the driver checked in the app's object and wrote (defaults filled):
/// protocol level (4 or 5), namespace, user?, keep-alive, clean start, session expiry, user
/// name?, password?, will? (topic, payload, QoS, retain, delay?), receive maximum,
/// backoff initial, maximum and stable delays, flap cooldown; and a reader of what follows.
pub fn read_options(bytes: &[u8]) -> Result<(Options, ProtocolVersion, Reader<'_>), WireError> {
    let mut reader = Reader::new(bytes);
    let version = match reader.u8()? {
        4 => ProtocolVersion::V311,
        5 => ProtocolVersion::V5,
        _ => return Err(WireError::Invalid),
    };
    let options = Options {
        namespace: reader.str()?,
        user: reader.opt(Reader::str)?,
        keep_alive: reader.int()?,
        clean_start: reader.bool()?,
        session_expiry: reader.int()?,
        username: reader.opt(Reader::str)?,
        password: reader.opt(Reader::str)?,
        will: reader.opt(|r| {
            Ok(WillOptions {
                topic: r.str()?,
                payload: r.str()?,
                qos: r.u8()?,
                retain: r.bool()?,
                delay_seconds: r.opt(Reader::int)?,
            })
        })?,
        receive_maximum: reader.int()?,
        backoff: BackoffOptions {
            initial_ms: reader.int()?,
            max_ms: reader.int()?,
            stable_ms: reader.int()?,
        },
        flap_cooldown_ms: reader.int()?,
    };
    Ok((options, version, reader))
}

/// Milliseconds since the epoch, as JavaScript gives them, as the machine's clock.
pub fn timestamp(millis: f64) -> Timestamp {
    Timestamp::from_millis(millis.max(0.0) as u64)
}
