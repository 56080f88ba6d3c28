//! Broker counters, shared by every task, rendered for Prometheus and `$SYS/` topics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use tabmq_protocol::QoS;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident: $kind:literal,)*) => {
        /// Every counter and gauge the broker keeps.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// `(name, kind, help, value)` for each metric.
            pub fn values(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
                vec![$((stringify!($name), $kind, concat!($($doc),*).trim_start(), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Network connections open now (MQTT or not yet).
    connections: "gauge",
    /// MQTT connections accepted (CONNACK sent with success) since start.
    connections_total: "counter",
    /// CONNECTs answered with a refusal, whatever the reason.
    connects_refused_total: "counter",
    /// Connections refused because max_connections was reached.
    connections_rejected_total: "counter",
    /// Sessions known to the broker (connected or not).
    sessions: "gauge",
    /// Messages received from clients at QoS 0.
    messages_in_qos0_total: "counter",
    /// Messages received from clients at QoS 1.
    messages_in_qos1_total: "counter",
    /// Messages received from clients at QoS 2.
    messages_in_qos2_total: "counter",
    /// Messages sent to clients at QoS 0.
    messages_out_qos0_total: "counter",
    /// Messages sent to clients at QoS 1.
    messages_out_qos1_total: "counter",
    /// Messages sent to clients at QoS 2.
    messages_out_qos2_total: "counter",
    /// Messages waiting in session queues now.
    messages_queued: "gauge",
    /// Messages dropped because a session queue was full or they expired.
    messages_dropped_total: "counter",
    /// Retained messages held now.
    retained_messages: "gauge",
    /// Bytes received from clients.
    bytes_in_total: "counter",
    /// Bytes sent to clients.
    bytes_out_total: "counter",
    /// Connections closed for a protocol violation.
    protocol_errors_total: "counter",
    /// Connections refused because their address held max_connections_per_ip.
    connections_refused_per_ip_total: "counter",
    /// Connections refused because their address opened them too fast.
    connections_rate_limited_total: "counter",
    /// Connections closed for publishing faster than max_publish_rate or max_publish_bytes_rate.
    publish_rate_exceeded_total: "counter",
    /// TLS handshakes that failed or timed out (bad or missing client certificates too).
    tls_handshake_failures_total: "counter",
    /// WebSocket upgrades refused for their page's origin.
    origin_refusals_total: "counter",
    /// CONNECTs refused for their credentials or client id.
    auth_failures_total: "counter",
    /// PUBLISHes, SUBSCRIBE filters and wills the ACL refused.
    acl_denials_total: "counter",
    /// Connections replaced by a newer one with the same client id.
    takeovers_total: "counter",
    /// Connections refused by the flap guard.
    flap_guard_refusals_total: "counter",
    /// Storage commits that failed.
    storage_errors_total: "counter",
    /// 1 while storage is failing (writes refused and kept, retried until they succeed).
    storage_failing: "gauge",
    /// Changes of failed commits kept to be written once storage recovers.
    storage_kept_changes: "gauge",
    /// Messages not sent to the other cluster nodes because the link to NATS was full.
    cluster_dropped_total: "counter",
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `amount` to `counter`.
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge.
    pub fn dec(gauge: &AtomicU64) {
        gauge.fetch_sub(1, Ordering::Relaxed);
    }

    /// Subtracts `amount` from a gauge.
    pub fn sub(gauge: &AtomicU64, amount: u64) {
        gauge.fetch_sub(amount, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// The inbound counter for `qos`.
    pub fn messages_in(&self, qos: QoS) -> &AtomicU64 {
        match qos {
            QoS::AtMostOnce => &self.messages_in_qos0_total,
            QoS::AtLeastOnce => &self.messages_in_qos1_total,
            QoS::ExactlyOnce => &self.messages_in_qos2_total,
        }
    }

    /// The outbound counter for `qos`.
    pub fn messages_out(&self, qos: QoS) -> &AtomicU64 {
        match qos {
            QoS::AtMostOnce => &self.messages_out_qos0_total,
            QoS::AtLeastOnce => &self.messages_out_qos1_total,
            QoS::ExactlyOnce => &self.messages_out_qos2_total,
        }
    }

    /// The Prometheus text exposition of every metric, prefixed `tabmq_`.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in self.values() {
            let _ = writeln!(
                out,
                "# HELP tabmq_{name} {help}\n# TYPE tabmq_{name} {kind}\ntabmq_{name} {value}"
            );
        }
        out
    }
}
