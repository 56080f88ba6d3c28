//! The session machine against the protocol crate's server connection playing the
//! broker, with an in-memory IndexedDB, a fake clock, and a reload possible between any
//! two steps.

use std::collections::VecDeque;
use std::time::Duration;

use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::server::{Connection, ServerConfig, ServerEvent};
use tabmq_protocol::{Properties, ProtocolVersion, QoS, ReasonCode, Timestamp};

use super::*;
use crate::backoff::BackoffOptions;
use crate::mirror::SessionWrites;
use crate::options::Options;
use crate::session_log::{StoredSession, decode_entry, encode_entry};

fn options() -> Options {
    Options {
        namespace: "app".into(),
        user: None,
        keep_alive: 60,
        clean_start: false,
        session_expiry: 86_400,
        username: None,
        password: None,
        will: None,
        receive_maximum: 100,
        backoff: BackoffOptions {
            initial_ms: 100,
            max_ms: 1_000,
            stable_ms: 10_000,
        },
        flap_cooldown_ms: 30_000,
    }
}

/// IndexedDB as the tests keep it: the log entries committed saves wrote, each encoded
/// and decoded as the browser stores it.
#[derive(Debug, Default, Clone)]
struct Store {
    entries: Vec<(u64, Vec<u8>)>,
}

impl Store {
    fn apply(&mut self, seq: u64, writes: &SessionWrites) {
        if writes.replace_all {
            self.entries.retain(|(stored, _)| *stored >= seq);
        }
        let entry = encode_entry(writes).expect("encodes");
        assert!(
            self.entries.last().is_none_or(|(last, _)| *last < seq),
            "entries in key order"
        );
        self.entries.push((seq, entry));
    }

    fn stored(&self) -> StoredSession {
        let mut stored = StoredSession::default();
        for (_, entry) in &self.entries {
            stored.apply(&decode_entry(entry).expect("decodes"));
        }
        stored
    }

    fn session(&self) -> (SessionFlows, u64) {
        (
            self.stored().flows(),
            self.entries.last().map_or(0, |(seq, _)| *seq),
        )
    }
}

/// One thing in transit, done by [`World::step`] in order.
#[derive(Debug)]
enum Work {
    Commit(SaveId, u64, SessionWrites),
    Handle(DeliveryId),
    ToBroker(SocketId, Vec<u8>),
    ToPage(SocketId, Vec<u8>),
    ClosedAtPage(SocketId, u16),
}

/// A page, the broker and the link between them.
struct World {
    now: Timestamp,
    page: Session,
    store: Store,
    work: VecDeque<Work>,
    server: Option<(SocketId, Connection)>,
    broker_session: Option<SessionFlows>,
    /// Refuse every CONNECT with this reason.
    refuse_with: Option<ReasonCode>,
    /// Payloads the broker took (and acknowledged) from the page.
    broker_received: Vec<String>,
    /// The user name and password of each CONNECT the broker received.
    logins: Vec<(Option<String>, Option<Vec<u8>>)>,
    /// Payloads the app was handed, across reloads (as an app keeping them in localStorage).
    app_seen: Vec<String>,
    events: Vec<Event>,
    settled: Vec<(OpId, Outcome)>,
    next_op: OpId,
    connects: u32,
    left_tabs: u32,
    /// The page leads by a lease (no Web Locks).
    lease: bool,
    lock_checks: u32,
}

impl World {
    fn new() -> Self {
        Self::speaking(ProtocolVersion::V5)
    }

    fn speaking(version: ProtocolVersion) -> Self {
        Self::build(version, false)
    }

    /// A world whose page has no Web Locks: it leads by an IndexedDB lease.
    fn leasing() -> Self {
        Self::build(ProtocolVersion::V5, true)
    }

    fn build(version: ProtocolVersion, lease: bool) -> Self {
        let mut world = Self {
            now: Timestamp::from_millis(1_000),
            page: Session::new(options(), version, "tab-1".into(), Some("desk".into()), 42),
            store: Store::default(),
            work: VecDeque::new(),
            server: None,
            broker_session: None,
            refuse_with: None,
            broker_received: Vec::new(),
            logins: Vec::new(),
            app_seen: Vec::new(),
            events: Vec::new(),
            settled: Vec::new(),
            next_op: 0,
            connects: 0,
            left_tabs: 0,
            lease,
            lock_checks: 0,
        };
        world.actions();
        world
    }

    fn input(&mut self, input: Input) {
        self.page.handle(input, self.now);
        self.actions();
    }

    fn request(&mut self, request: Request) -> OpId {
        self.next_op += 1;
        let op = self.next_op;
        self.input(Input::Request { op, request });
        op
    }

    fn publish(&mut self, text: &str, qos: QoS) -> OpId {
        self.request(Request::Publish(Publish::new("t", text.as_bytes().to_vec(), qos)))
    }

    /// Runs the page's actions: storage reads and lock grants answer at once; saves,
    /// deliveries and bytes become work.
    fn actions(&mut self) {
        while let Some(action) = self.page.poll_action() {
            match action {
                Action::Open { socket } => {
                    self.connects += 1;
                    self.server = Some((socket, Connection::new(ServerConfig::default(), self.now)));
                    self.page.handle(Input::Opened { socket }, self.now);
                }
                Action::Send { socket, bytes } => self.work.push_back(Work::ToBroker(socket, bytes)),
                Action::Close { socket, code, .. } => {
                    self.broker_connection_lost();
                    self.work.push_back(Work::ClosedAtPage(socket, code));
                }
                Action::Save {
                    save, seq, writes, ..
                } => self.work.push_back(Work::Commit(save, seq, writes)),
                Action::StoreDeviceId { .. } => {
                    self.page
                        .handle(Input::DeviceIdStored { result: Ok(()) }, self.now);
                }
                Action::Load { client_id } => {
                    let result = Ok(self.store.session());
                    self.page.handle(Input::Loaded { client_id, result }, self.now);
                }
                Action::Deliver { delivery, message } => {
                    self.app_seen
                        .push(String::from_utf8_lossy(&message.publish.payload).into());
                    self.work.push_back(Work::Handle(delivery));
                }
                Action::Emit(event) => self.events.push(event),
                Action::Settle { op, outcome } => self.settled.push((op, outcome)),
                Action::JoinTabs { client_id } => {
                    // The only tab: the lock is granted at once.
                    self.page.handle(
                        Input::LockGranted {
                            client_id,
                            lease: self.lease,
                        },
                        self.now,
                    );
                }
                Action::LeaveTabs => self.left_tabs += 1,
                Action::CheckLock => self.lock_checks += 1,
                Action::Post(_) => {}
            }
        }
    }

    /// The broker's side of the connection: stores what it must, answers.
    fn broker(&mut self) {
        let Some((socket, server)) = self.server.as_mut() else {
            return;
        };
        let socket = *socket;
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connect(connect) => {
                    let password = connect.password.as_ref().map(|p| p.to_vec());
                    self.logins.push((connect.username.clone(), password));
                    match self.refuse_with {
                        Some(reason) => server.refuse(reason),
                        None => {
                            let stored = if connect.clean_start {
                                None
                            } else {
                                self.broker_session.take()
                            };
                            let present = stored.is_some();
                            server.accept(
                                present,
                                stored.unwrap_or_default(),
                                Properties::default(),
                                self.now,
                            );
                        }
                    }
                }
                ServerEvent::Publish(publish) => {
                    self.broker_received
                        .push(String::from_utf8_lossy(&publish.payload).into());
                    if let Some(id) = publish.packet_id {
                        server.acknowledge(id, ReasonCode::Success);
                    }
                }
                ServerEvent::Closed(_) => {}
                _ => {}
            }
        }
        if let Some(bytes) = server.poll_transmit() {
            self.work.push_back(Work::ToPage(socket, bytes));
        }
    }

    fn broker_connection_lost(&mut self) {
        if let Some((_, mut server)) = self.server.take() {
            self.broker_session = Some(server.take_session());
        }
    }

    /// Does the oldest piece of work; false when there is none.
    fn step(&mut self) -> bool {
        self.broker();
        let Some(work) = self.work.pop_front() else {
            return false;
        };
        match work {
            Work::Commit(save, seq, writes) => {
                self.store.apply(seq, &writes);
                self.input(Input::Saved { save, result: Ok(()) });
            }
            Work::Handle(delivery) => self.input(Input::Handled { delivery }),
            Work::ToBroker(socket, bytes) => {
                if let Some((open, server)) = self.server.as_mut()
                    && *open == socket
                {
                    server.handle_bytes(&bytes, self.now);
                }
            }
            Work::ToPage(socket, bytes) => self.input(Input::Received { socket, bytes }),
            Work::ClosedAtPage(socket, code) => self.input(Input::Closed {
                socket,
                code,
                reason: String::new(),
            }),
        }
        self.broker();
        true
    }

    fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the world never settled");
    }

    /// The page dies: nothing in transit survives, the broker keeps its session; a new
    /// page loads what IndexedDB holds and connects.
    fn reload(&mut self) {
        self.work.clear();
        self.broker_connection_lost();
        self.page = new_page();
        self.actions();
        self.request(Request::Connect);
    }

    /// The broker sends `count` messages at `qos`, named `{prefix}{n}`.
    fn broker_sends(&mut self, prefix: &str, count: usize, qos: QoS) {
        let publishes = (0..count).map(|n| Publish::new("in", format!("{prefix}{n}").into_bytes(), qos));
        match self.server.as_mut() {
            Some((_, server)) => {
                for publish in publishes {
                    server.deliver(publish);
                }
            }
            None => {
                let session = self.broker_session.get_or_insert_with(SessionFlows::default);
                for publish in publishes {
                    session.outgoing.enqueue(publish);
                }
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        if self.page.poll_timeout().is_some_and(|at| at <= self.now) {
            self.input(Input::Timeout);
        }
    }

    fn outcome(&self, op: OpId) -> Option<&Outcome> {
        self.settled
            .iter()
            .find(|(settled, _)| *settled == op)
            .map(|(_, outcome)| outcome)
    }
}

/// A tab of device `desk` whose first actions (joining the tabs) are already taken.
fn bare_tab(tab_id: &str) -> Session {
    let mut tab = Session::new(
        options(),
        ProtocolVersion::V5,
        tab_id.into(),
        Some("desk".into()),
        1,
    );
    while tab.poll_action().is_some() {}
    tab
}

fn new_page() -> Session {
    Session::new(
        options(),
        ProtocolVersion::V5,
        "tab-1".into(),
        Some("desk".into()),
        42,
    )
}

fn connected_world() -> World {
    let mut world = World::new();
    let op = world.request(Request::Connect);
    world.settle();
    assert_eq!(
        world.outcome(op),
        Some(&Ok(Reply::Connected {
            session_present: false
        }))
    );
    world
}

/// For every step at which the page could die: a connected world that runs `start`, then
/// that many steps, handed to `check` with what `start` returned and the step.
fn at_every_step<T>(start: impl Fn(&mut World) -> T, mut check: impl FnMut(World, T, usize)) {
    let total_steps = {
        let mut world = connected_world();
        start(&mut world);
        let mut steps = 0;
        while world.step() {
            steps += 1;
        }
        steps
    };
    for reload_at in 0..=total_steps {
        let mut world = connected_world();
        let started = start(&mut world);
        for _ in 0..reload_at {
            world.step();
        }
        check(world, started, reload_at);
    }
}

/// QoS 1/2 messages the broker has sent the page and not had acknowledged.
fn unacknowledged_at_broker(world: &World) -> usize {
    let Some((_, server)) = world.server.as_ref() else {
        panic!("connected")
    };
    server.session().outgoing.inflight_len()
}

fn count(list: &[String], text: &str) -> usize {
    list.iter().filter(|seen| *seen == text).count()
}

#[test]
fn a_received_message_reaches_the_app_before_its_acknowledgement_leaves() {
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let mut world = connected_world();
        world.broker_sends("m", 1, qos);
        // Run everything but the app's handler.
        loop {
            world.broker();
            let Some(index) = world
                .work
                .iter()
                .position(|work| !matches!(work, Work::Handle(_)))
            else {
                break;
            };
            let work = world.work.remove(index).expect("exists");
            world.work.push_front(work);
            world.step();
        }
        assert_eq!(world.app_seen, ["m0"]);
        assert_eq!(unacknowledged_at_broker(&world), 1, "not acknowledged yet");
        world.settle();
        assert_eq!(unacknowledged_at_broker(&world), 0, "acknowledged once handled");
    }
}

#[test]
fn a_reload_at_any_step_of_incoming_traffic_loses_nothing() {
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        at_every_step(
            |world| world.broker_sends("m", 5, qos),
            |mut world, (), reload_at| {
                let seen_before = world.app_seen.clone();
                world.reload();
                world.settle();
                for n in 0..5 {
                    let text = format!("m{n}");
                    let times = count(&world.app_seen, &text);
                    assert!(times >= 1, "{qos:?}: {text} lost by a reload at step {reload_at}");
                    if qos == QoS::ExactlyOnce {
                        // A second time only if the page died during its handler or before
                        // the commit that follows it: it was handed over before the reload.
                        assert!(
                            times == 1 || count(&seen_before, &text) == 1,
                            "{text} handed over twice after a reload at step {reload_at}"
                        );
                        assert!(times <= 2);
                    }
                }
                assert_eq!(unacknowledged_at_broker(&world), 0, "everything acknowledged");
            },
        );
    }
}

#[test]
fn a_reload_at_any_step_of_outgoing_traffic_loses_nothing_accepted_and_qos2_arrives_once() {
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        at_every_step(
            |world| -> Vec<OpId> { (0..5).map(|n| world.publish(&format!("p{n}"), qos)).collect() },
            |mut world, ops, reload_at| {
                // Accepted: acknowledged to the app, or stored in IndexedDB.
                let stored: Vec<String> = world
                    .store
                    .stored()
                    .messages()
                    .iter()
                    .map(|message| String::from_utf8_lossy(&message.publish.payload).into())
                    .collect();
                let accepted: Vec<String> = (0..5)
                    .map(|n| format!("p{n}"))
                    .filter(|text| stored.contains(text))
                    .chain(
                        ops.iter()
                            .enumerate()
                            .filter(|(_, op)| world.outcome(**op).is_some())
                            .map(|(n, _)| format!("p{n}")),
                    )
                    .collect();
                world.reload();
                world.settle();
                for text in &accepted {
                    assert!(
                        world.broker_received.contains(text),
                        "{qos:?}: {text} lost by a reload at step {reload_at}"
                    );
                }
                if qos == QoS::ExactlyOnce {
                    for n in 0..5 {
                        let text = format!("p{n}");
                        assert!(
                            count(&world.broker_received, &text) <= 1,
                            "{text} reached the broker twice (reload at step {reload_at})"
                        );
                    }
                }
                assert!(world.page.pending().is_empty(), "everything completed");
            },
        );
    }
}

#[test]
fn a_publish_leaves_only_after_its_save_has_committed() {
    let mut world = connected_world();
    world.publish("p", QoS::AtLeastOnce);
    assert!(
        matches!(world.work.front(), Some(Work::Commit(..))),
        "the save comes first: {:?}",
        world.work
    );
    assert_eq!(world.work.len(), 1, "no bytes before the commit");
    world.step();
    assert!(matches!(world.work.front(), Some(Work::ToBroker(..))));
}

#[test]
fn final_refusals_stop_after_one_attempt_and_reject_connect() {
    for reason in [
        ReasonCode::ClientIdentifierNotValid,
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
        ReasonCode::BadAuthenticationMethod,
    ] {
        let mut world = World::new();
        world.refuse_with = Some(reason);
        let op = world.request(Request::Connect);
        world.settle();
        assert_eq!(world.outcome(op), Some(&Err(ClientError::Refused(reason.byte()))));
        assert!(world.events.contains(&Event::Refused {
            reason_code: reason.byte()
        }));
        assert_eq!(world.page.poll_timeout(), None, "no retry scheduled");
        world.advance(120_000);
        world.settle();
        assert_eq!(world.connects, 1, "{reason:?}: one attempt only");
        // The app may try again.
        world.refuse_with = None;
        let again = world.request(Request::Connect);
        world.settle();
        assert!(matches!(world.outcome(again), Some(Ok(Reply::Connected { .. }))));
    }
}

#[test]
fn mqtt_311_return_codes_2_4_and_5_stop_the_client_too() {
    for (reason, return_code) in [
        (ReasonCode::ClientIdentifierNotValid, 2),
        (ReasonCode::BadUserNameOrPassword, 4),
        (ReasonCode::NotAuthorized, 5),
    ] {
        assert_eq!(reason.to_v311_connack(), return_code);
        let mut world = World::speaking(ProtocolVersion::V311);
        world.refuse_with = Some(reason);
        let op = world.request(Request::Connect);
        world.settle();
        assert_eq!(world.outcome(op), Some(&Err(ClientError::Refused(reason.byte()))));
        world.advance(120_000);
        world.settle();
        assert_eq!(world.connects, 1, "return code {return_code}: one attempt only");
    }
}

#[test]
fn the_flap_guard_refusal_waits_for_its_cooldown_then_retries_once() {
    let mut world = World::new();
    world.refuse_with = Some(ReasonCode::ConnectionRateExceeded);
    let op = world.request(Request::Connect);
    world.settle();
    assert_eq!(world.connects, 1);
    assert_eq!(world.outcome(op), None, "still waiting for the retry");
    world.advance(29_000);
    world.settle();
    assert_eq!(world.connects, 1, "not before the cooldown");
    world.advance(1_000);
    world.settle();
    assert_eq!(world.connects, 2, "one retry");
    assert_eq!(world.outcome(op), Some(&Err(ClientError::Refused(0x9F))));
    world.advance(120_000);
    world.settle();
    assert_eq!(world.connects, 2);
}

#[test]
fn transient_refusals_retry_with_a_growing_backoff() {
    let mut world = World::new();
    world.refuse_with = Some(ReasonCode::ServerUnavailable);
    world.request(Request::Connect);
    world.settle();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let at = world.page.poll_timeout().expect("a retry is scheduled");
        delays.push(at.saturating_since(world.now).as_millis() as u64);
        world.now = at;
        world.input(Input::Timeout);
        world.settle();
    }
    assert_eq!(world.connects, 5);
    for pair in delays.windows(2) {
        assert!(pair[1] >= pair[0] || pair[1] >= 500, "delays grow: {delays:?}");
    }
    assert!(
        delays.iter().all(|delay| *delay >= 50 && *delay <= 1_000),
        "{delays:?}"
    );
}

#[test]
fn a_takeover_is_reported_once_and_stops_reconnecting() {
    let mut world = connected_world();
    take_over(&mut world);
    assert_eq!(
        world
            .events
            .iter()
            .filter(|e| matches!(e, Event::Takeover { .. }))
            .count(),
        1
    );
    assert_eq!(world.page.poll_timeout(), None);
    world.advance(60_000);
    world.settle();
    assert_eq!(world.connects, 1);
}

/// The broker tells the page's connection that another one took its session over.
fn take_over(world: &mut World) {
    let Some((socket, server)) = world.server.as_mut() else {
        panic!("connected")
    };
    let socket = *socket;
    server.close(ReasonCode::SessionTakenOver);
    let bytes = server.poll_transmit().expect("DISCONNECT");
    world.input(Input::Received { socket, bytes });
    world.settle();
    world.input(Input::Closed {
        socket,
        code: 4000,
        reason: "session taken over".into(),
    });
    world.settle();
}

#[test]
fn without_web_locks_a_takeover_by_a_tab_that_took_the_lease_is_followed_not_reported() {
    for still_held in [false, true] {
        let mut world = World::leasing();
        let op = world.request(Request::Connect);
        world.settle();
        assert!(world.outcome(op).is_some());
        take_over(&mut world);
        assert_eq!(world.lock_checks, 1, "the lease is checked first");
        assert!(!world.events.iter().any(|e| matches!(e, Event::Takeover { .. })));
        world.input(Input::LockChecked { held: still_held });
        world.settle();
        let reported = world.events.contains(&Event::Takeover { confirmed: true });
        if still_held {
            assert!(
                reported,
                "the lease is still ours: another device took the session"
            );
        } else {
            assert!(!reported, "another tab of this browser leads now");
            assert_eq!(world.page.role(), None, "waiting to hear the new leader");
        }
        world.advance(60_000);
        world.settle();
        assert_eq!(world.connects, 1, "no reconnect either way");
    }
}

#[test]
fn with_web_locks_a_takeover_is_reported_at_once() {
    let mut world = connected_world();
    take_over(&mut world);
    assert_eq!(world.lock_checks, 0);
    assert!(world.events.contains(&Event::Takeover { confirmed: true }));
}

#[test]
fn requests_made_before_the_session_is_loaded_wait_for_it_in_order() {
    let mut page = bare_tab("tab");
    let now = Timestamp::from_millis(1);
    page.handle(
        Input::Request {
            op: 1,
            request: Request::Publish(Publish::new("t", &b"a"[..], QoS::AtLeastOnce)),
        },
        now,
    );
    page.handle(
        Input::Request {
            op: 2,
            request: Request::Connect,
        },
        now,
    );
    assert!(page.poll_action().is_none(), "nothing happens without a role");
    page.handle(
        Input::LockGranted {
            lease: false,
            client_id: "app-desk".into(),
        },
        now,
    );
    let actions: Vec<Action> = std::iter::from_fn(|| page.poll_action()).collect();
    assert!(actions.contains(&Action::Load {
        client_id: "app-desk".into()
    }));
    page.handle(
        Input::Loaded {
            client_id: "app-desk".into(),
            result: Ok((SessionFlows::default(), 0)),
        },
        now,
    );
    let actions: Vec<Action> = std::iter::from_fn(|| page.poll_action()).collect();
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, Action::Save { writes, .. } if writes.put.len() == 1))
    );
    assert!(actions.iter().any(|action| matches!(action, Action::Open { .. })));
    assert!(
        !actions.iter().any(|action| matches!(action, Action::Send { .. })),
        "nothing sent before the commit"
    );
}

#[test]
fn a_follower_relays_requests_and_reports_the_leaders_session_present() {
    let mut follower = bare_tab("tab-2");
    let now = Timestamp::from_millis(1);
    follower.handle(
        Input::Request {
            op: 7,
            request: Request::Connect,
        },
        now,
    );
    follower.handle(
        Input::Tab(TabMessage::Leader(crate::tabs::LeaderState {
            elected: false,
            connected: true,
            session_present: false,
            pending: Vec::new(),
        })),
        now,
    );
    let actions: Vec<Action> = std::iter::from_fn(|| follower.poll_action()).collect();
    assert!(actions.contains(&Action::Emit(Event::Role(Role::Follower))));
    assert!(actions.contains(&Action::Post(TabMessage::Call {
        tab: "tab-2".into(),
        call: 7,
        request: Request::Connect
    })));
    follower.handle(
        Input::Tab(TabMessage::Result {
            tab: "tab-2".into(),
            call: 7,
            outcome: Ok(Reply::Connected {
                session_present: false,
            }),
        }),
        now,
    );
    assert_eq!(
        follower.poll_action(),
        Some(Action::Settle {
            op: 7,
            outcome: Ok(Reply::Connected {
                session_present: false
            })
        })
    );
    assert!(follower.connected());
}

#[test]
fn a_follower_that_becomes_leader_performs_its_unanswered_calls_and_connects() {
    let mut tab = bare_tab("tab-2");
    let now = Timestamp::from_millis(1);
    tab.handle(
        Input::Tab(TabMessage::Event(Event::Connect {
            session_present: true,
        })),
        now,
    );
    tab.handle(
        Input::Request {
            op: 1,
            request: Request::Connect,
        },
        now,
    );
    tab.handle(
        Input::Request {
            op: 2,
            request: Request::Publish(Publish::new("t", &b"x"[..], QoS::AtLeastOnce)),
        },
        now,
    );
    while tab.poll_action().is_some() {}
    // The leader's page went away before answering.
    tab.handle(
        Input::LockGranted {
            lease: false,
            client_id: "app-desk".into(),
        },
        now,
    );
    tab.handle(
        Input::Loaded {
            client_id: "app-desk".into(),
            result: Ok((SessionFlows::default(), 0)),
        },
        now,
    );
    let actions: Vec<Action> = std::iter::from_fn(|| tab.poll_action()).collect();
    assert!(actions.contains(&Action::Emit(Event::Role(Role::Leader))));
    assert!(
        actions
            .iter()
            .any(|action| matches!(action, Action::Save { writes, .. } if writes.put.len() == 1))
    );
    assert!(
        actions.iter().any(|action| matches!(action, Action::Open { .. })),
        "{actions:?}"
    );
}

#[test]
fn changing_the_device_id_releases_the_lock_and_ends_the_connection() {
    let mut world = connected_world();
    let op = world.request(Request::SetDeviceId(Some("other".into())));
    world.settle();
    assert_eq!(world.outcome(op), Some(&Ok(Reply::Done)));
    assert_eq!(world.left_tabs, 1, "the old client id's lock is released");
    assert_eq!(world.page.client_id().as_deref(), Some("app-other"));
    assert!(world.server.is_none(), "the old connection ended");
    assert!(
        world
            .events
            .iter()
            .any(|event| matches!(event, Event::Disconnect { .. }))
    );
    assert_eq!(world.connects, 1, "the new id connects when the app asks");
    let connect = world.request(Request::Connect);
    world.settle();
    assert!(matches!(
        world.outcome(connect),
        Some(Ok(Reply::Connected { .. }))
    ));
    assert_eq!(world.connects, 2);
}

#[test]
fn fresh_credentials_go_into_the_next_connect() {
    let mut world = World::new();
    world.input(Input::Credentials {
        username: None,
        password: Some("token-1".into()),
    });
    world.request(Request::Connect);
    world.settle();
    assert_eq!(world.logins, [(None, Some(b"token-1".to_vec()))]);
    world.request(Request::Disconnect);
    world.settle();
    world.input(Input::Credentials {
        username: Some("alice".into()),
        password: Some("token-2".into()),
    });
    let connect = world.request(Request::Connect);
    world.settle();
    assert!(matches!(
        world.outcome(connect),
        Some(Ok(Reply::Connected { .. }))
    ));
    assert_eq!(world.logins[1], (Some("alice".into()), Some(b"token-2".to_vec())));
}

#[test]
fn a_signed_in_user_names_the_client_id_and_the_connect() {
    let mut signed_in = options();
    signed_in.user = Some("alice".into());
    let session = Session::new(
        signed_in.clone(),
        ProtocolVersion::V5,
        "tab-1".into(),
        Some("desk".into()),
        1,
    );
    assert_eq!(session.client_id().as_deref(), Some("app-alice-desk"));
    let config = signed_in.client_config(ProtocolVersion::V5, "app-alice-desk".into());
    assert_eq!(
        config.username.as_deref(),
        Some("alice"),
        "the user name defaults to the user"
    );
    signed_in.username = Some("other".into());
    let config = signed_in.client_config(ProtocolVersion::V5, "app-alice-desk".into());
    assert_eq!(
        config.username.as_deref(),
        Some("other"),
        "an explicit user name wins"
    );
}
