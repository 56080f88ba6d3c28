//! Broker configuration: a TOML file, overridden by command-line flags.
//!
//! Every option is documented in the README and in `broker/tabmq.example.toml`.
//! Unknown keys and out-of-range values are errors that name the option.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value is outside its allowed range.
    #[error("invalid value for {option}: {reason}")]
    Invalid {
        /// The option, as `section.key`.
        option: &'static str,
        /// What is allowed.
        reason: &'static str,
    },
}

/// How acknowledged messages reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// PUBACK/PUBREC is sent only after the message is fsynced (grouped across clients).
    Ack,
    /// Writes are committed without fsync and synced every `flush_interval_ms`.
    Interval,
}

/// What a second connection with a client id already connected does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TakeoverPolicy {
    /// The newcomer replaces the old connection, which is told why (the spec's behaviour).
    Replace,
    /// The newcomer is refused with CONNACK 0x85 (3.1.1: 0x02 identifier rejected).
    Reject,
}

/// What happens when a session's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueFullPolicy {
    /// The new message is dropped for that session (Mosquitto's behaviour).
    DropNew,
    /// The oldest queued message is dropped to make room.
    DropOldest,
}

/// `[listeners]`: where the broker listens and what it serves over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listeners {
    /// HTTP + WebSocket address; `""` disables it.
    pub ws: String,
    /// Plain MQTT over TCP address; `""` disables it.
    pub tcp: String,
    /// HTTPS + MQTT over secure WebSocket address (needs `[tls]`); `""` disables it.
    pub wss: String,
    /// MQTT over TLS address (needs `[tls]`); `""` disables it.
    pub mqtts: String,
    /// The WebSocket path.
    pub ws_path: String,
    /// Directory of static files served over HTTP (the demo page); `""` serves none.
    pub www: String,
    /// Page origins (`https://app.example.com`) allowed to open the MQTT WebSocket; an
    /// upgrade without an `Origin` header (not a browser) is always allowed. Empty: the
    /// broker's own origin (the page it serves) and loopback origins; `["*"]`: any.
    pub allowed_origins: Vec<String>,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`;
    /// when not, only loopback clients.
    pub metrics_token: String,
    /// Addresses or CIDR ranges of reverse proxies whose `X-Forwarded-For` (HTTP ports) and
    /// PROXY protocol header (MQTT ports, then required from them) name the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            ws: "127.0.0.1:8080".into(),
            tcp: "127.0.0.1:1883".into(),
            wss: String::new(),
            mqtts: String::new(),
            ws_path: "/mqtt".into(),
            www: "www".into(),
            allowed_origins: Vec::new(),
            metrics_token: String::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[storage]`: the embedded store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Directory holding the database file.
    pub data_dir: PathBuf,
    /// `ack` or `interval`.
    pub durability: Durability,
    /// Sync period for `interval` durability.
    pub flush_interval_ms: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            durability: Durability::Ack,
            flush_interval_ms: 1000,
        }
    }
}

/// `[limits]`: bounds on what clients may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections held at once, both listeners together.
    pub max_connections: usize,
    /// Seconds a socket may stay open without sending CONNECT.
    pub connect_timeout_secs: u64,
    /// Largest MQTT packet accepted, in bytes (also the WebSocket frame and message limit).
    pub max_packet_size: u32,
    /// QoS 1/2 messages in flight per direction (the receive maximum announced).
    pub max_inflight: u16,
    /// QoS 1/2 messages queued per session beyond the `max_inflight` in flight.
    pub max_queued_messages: usize,
    /// Payload bytes queued per session.
    pub max_queued_bytes: usize,
    /// What to drop when a queue is full: `drop-new` or `drop-oldest`.
    pub queue_full: QueueFullPolicy,
    /// Messages waiting for a connected client's socket; beyond it, QoS 0 messages
    /// to that client are dropped (QoS 1/2 ones are bounded by the queue limits).
    pub max_backlog: usize,
    /// Payload bytes waiting for a connected client's socket; beyond it, QoS 0 messages
    /// to that client are dropped, as with `max_backlog`.
    pub max_backlog_bytes: usize,
    /// Bytes of packets waiting for the router, all connections together; a connection
    /// that finds it full stops being read until there is room.
    pub router_queue_bytes: usize,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Subscriptions per session.
    pub max_subscriptions_per_session: usize,
    /// Topic aliases a v5 client may use.
    pub topic_alias_maximum: u16,
    /// Topic aliases the broker assigns, per connection, to the topics it sends a v5 client
    /// most (0: none); never more than the client's Topic Alias Maximum.
    pub topic_aliases_to_client: u16,
    /// Upper bound on keep-alive in seconds, told to v5 clients (0: no bound).
    pub max_keep_alive_secs: u16,
    /// Connections one client address may hold at once (both ports, HTTP included).
    pub max_connections_per_ip: usize,
    /// New connections one address may open per second, after a burst of
    /// `connect_burst_per_ip`.
    pub max_connect_rate_per_ip: u32,
    /// The burst allowed before `max_connect_rate_per_ip` applies.
    pub connect_burst_per_ip: u32,
    /// PUBLISH packets a connection may send per second (0: no limit); beyond it,
    /// MQTT 5 clients get DISCONNECT 0x96 and 3.1.1 clients are closed.
    pub max_publish_rate: u64,
    /// PUBLISH payload bytes a connection may send per second (0: no limit).
    pub max_publish_bytes_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            connect_timeout_secs: 10,
            max_packet_size: 1024 * 1024,
            max_inflight: 100,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            queue_full: QueueFullPolicy::DropNew,
            max_backlog: 10_000,
            max_backlog_bytes: 1024 * 1024,
            router_queue_bytes: 1024 * 1024,
            max_topic_length: 1024,
            max_topic_levels: 32,
            max_subscriptions_per_session: 100,
            topic_alias_maximum: 10,
            topic_aliases_to_client: 16,
            max_keep_alive_secs: 0,
            max_connections_per_ip: 1000,
            max_connect_rate_per_ip: 50,
            connect_burst_per_ip: 100,
            max_publish_rate: 0,
            max_publish_bytes_rate: 0,
        }
    }
}

/// `[sessions]`: session lifetime and takeover behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sessions {
    /// Seconds a disconnected MQTT 3.1.1 persistent session is kept (3.1.1 has no expiry of its own).
    pub v311_session_expiry_secs: u32,
    /// Cap on the session expiry a v5 client may ask for.
    pub max_session_expiry_secs: u32,
    /// `replace` or `reject`.
    pub takeover: TakeoverPolicy,
    /// Takeovers of one client id within `flap_window_secs` that trigger the flap guard.
    pub flap_max_takeovers: u32,
    /// The flap guard's window.
    pub flap_window_secs: u64,
    /// How long a flapping client id is refused.
    pub flap_cooldown_secs: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            v311_session_expiry_secs: 7 * 24 * 3600,
            max_session_expiry_secs: u32::MAX,
            takeover: TakeoverPolicy::Replace,
            flap_max_takeovers: 5,
            flap_window_secs: 10,
            flap_cooldown_secs: 30,
        }
    }
}

/// `[tls]`: the certificate of the `wss` and `mqtts` listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// The certificate chain, PEM.
    pub cert_file: String,
    /// Its private key, PEM.
    pub key_file: String,
    /// A CA whose certificates clients must present (mutual TLS); `""`: none asked.
    pub client_ca_file: String,
    /// With `client_ca_file`: the client certificate's subject common name is the user name
    /// (no password needed), as Mosquitto's option of the same name.
    pub use_identity_as_username: bool,
}

/// `[auth]`: who a client is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// `user:hash` lines written by `tabmq passwd`; `""` configures none.
    pub password_file: String,
    /// Whether clients without credentials are let in. Unset: only when no credentials
    /// are configured and every listener is on a loopback address.
    pub allow_anonymous: Option<bool>,
    /// `[auth.jwt]`: tokens as passwords.
    pub jwt: Jwt,
}

/// `[auth.jwt]`: JSON Web Tokens passed as the CONNECT password; set one key source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Jwt {
    /// The HS256 secret itself (at least 32 bytes).
    pub secret: String,
    /// A file holding the HS256 secret.
    pub secret_file: String,
    /// A PEM public key (RS256, ES256 or EdDSA) or a JWKS file.
    pub public_key_file: String,
    /// The required `iss`; `""`: not checked.
    pub issuer: String,
    /// The required `aud`; `""`: not checked.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 5).
    pub leeway_secs: u64,
}

impl Jwt {
    /// Whether any key source is set.
    pub fn is_configured(&self) -> bool {
        !(self.secret.is_empty() && self.secret_file.is_empty() && self.public_key_file.is_empty())
    }
}

/// `[authz]`: what a client may do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Authz {
    /// An ACL file in Mosquitto's syntax; `""`: every topic but `$` ones is open to all.
    pub acl_file: String,
    /// The shape of the client ids a user may use, `%u` for the user name and `*` for any
    /// text, e.g. `"*-%u-*"`; `""`: any client id.
    pub client_id_pattern: String,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A `tracing` filter such as `info` or `tabmq=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// `[cluster]`: several broker nodes as one over NATS JetStream; off while `nats` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// NATS server URLs, e.g. `["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]`.
    pub nats: Vec<String>,
    /// This node's name, unique in the cluster (letters, digits, `-` and `_`).
    pub node_id: String,
    /// NATS user name (with `password`).
    pub user: String,
    /// NATS password.
    pub password: String,
    /// NATS token (instead of user and password).
    pub token: String,
    /// NATS credentials file (JWT and NKey seed), instead of the above.
    pub creds_file: String,
    /// Prefix of the NATS subjects, streams and buckets of this cluster.
    pub prefix: String,
    /// JetStream replicas of the streams and buckets (at most the number of NATS servers;
    /// one against a server that is not in a cluster).
    pub replicas: usize,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            nats: Vec::new(),
            node_id: String::new(),
            user: String::new(),
            password: String::new(),
            token: String::new(),
            creds_file: String::new(),
            prefix: "tabmq".into(),
            replicas: 3,
        }
    }
}

impl Cluster {
    /// Whether cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, reason| Err(ConfigError::Invalid { option, reason });
        if !self.enabled() {
            return Ok(());
        }
        let name_like = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_like(&self.node_id) {
            return invalid(
                "cluster.node_id",
                "needed in cluster mode: a name unique in the cluster, of letters, digits, - and _",
            );
        }
        if !name_like(&self.prefix) {
            return invalid("cluster.prefix", "letters, digits, - and _ only");
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("cluster.replicas", "must be between 1 and 5");
        }
        if self
            .nats
            .iter()
            .any(|url| !["nats://", "tls://"].iter().any(|scheme| url.starts_with(scheme)))
        {
            return invalid("cluster.nats", "each URL must start with nats:// or tls://");
        }
        let ways = [
            !self.user.is_empty(),
            !self.token.is_empty(),
            !self.creds_file.is_empty(),
        ];
        if ways.iter().filter(|set| **set).count() > 1 {
            return invalid(
                "cluster",
                "give one of user (with password), token and creds_file",
            );
        }
        Ok(())
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[listeners]`.
    pub listeners: Listeners,
    /// `[storage]`.
    pub storage: Storage,
    /// `[limits]`.
    pub limits: Limits,
    /// `[sessions]`.
    pub sessions: Sessions,
    /// `[tls]`.
    pub tls: Tls,
    /// `[auth]`.
    pub auth: Auth,
    /// `[authz]`.
    pub authz: Authz,
    /// `[log]`.
    pub log: Log,
    /// `[cluster]`.
    pub cluster: Cluster,
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; the one-line error names the line and the offending key.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", error.message().replace('\n', "; ")),
                None => error.message().replace('\n', "; "),
            }
        })
    }

    /// Checks ranges and addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |option, reason| Err(ConfigError::Invalid { option, reason });
        for (option, address) in [
            ("listeners.ws", &self.listeners.ws),
            ("listeners.tcp", &self.listeners.tcp),
            ("listeners.wss", &self.listeners.wss),
            ("listeners.mqtts", &self.listeners.mqtts),
        ] {
            if !address.is_empty() && address.parse::<SocketAddr>().is_err() {
                return invalid(
                    option,
                    "expected an address such as 127.0.0.1:8080, or \"\" to disable",
                );
            }
        }
        let listeners = &self.listeners;
        if [&listeners.ws, &listeners.tcp, &listeners.wss, &listeners.mqtts]
            .iter()
            .all(|address| address.is_empty())
        {
            return invalid("listeners", "at least one of ws, tcp, wss and mqtts must be set");
        }
        if self.tls.use_identity_as_username && self.tls.client_ca_file.is_empty() {
            return invalid("tls.use_identity_as_username", "needs tls.client_ca_file");
        }
        if (!listeners.wss.is_empty() || !listeners.mqtts.is_empty())
            && (self.tls.cert_file.is_empty() || self.tls.key_file.is_empty())
        {
            return invalid(
                "tls",
                "the wss and mqtts listeners need tls.cert_file and tls.key_file",
            );
        }
        for origin in &self.listeners.allowed_origins {
            if origin != "*" && crate::listener::origin::parse(origin).is_none() {
                return invalid(
                    "listeners.allowed_origins",
                    "each entry must be an origin such as https://app.example.com, or \"*\"",
                );
            }
        }
        if self
            .listeners
            .trusted_proxies
            .iter()
            .any(|range| crate::listener::proxy::Range::parse(range).is_none())
        {
            return invalid(
                "listeners.trusted_proxies",
                "each entry must be an address or a CIDR range such as 10.0.0.0/8",
            );
        }
        if !self.listeners.ws_path.starts_with('/') {
            return invalid("listeners.ws_path", "must start with /");
        }
        self.cluster.validate()?;
        let limits = &self.limits;
        if limits.max_packet_size < 64
            || limits.max_packet_size > tabmq_protocol::codec::PROTOCOL_MAX_PACKET_SIZE
        {
            return invalid("limits.max_packet_size", "must be between 64 and 268435460");
        }
        if limits.max_inflight == 0 {
            return invalid("limits.max_inflight", "must be at least 1");
        }
        if limits.max_connections == 0 {
            return invalid("limits.max_connections", "must be at least 1");
        }
        if limits.max_queued_messages == 0
            || limits.max_queued_bytes == 0
            || limits.max_backlog == 0
            || limits.max_backlog_bytes == 0
            || limits.router_queue_bytes == 0
        {
            return invalid("limits.max_queued_messages", "queue limits must be at least 1");
        }
        if limits.max_connections_per_ip == 0
            || limits.max_connect_rate_per_ip == 0
            || limits.connect_burst_per_ip == 0
        {
            return invalid(
                "limits.max_connections_per_ip",
                "per-address limits (max_connections_per_ip, max_connect_rate_per_ip, connect_burst_per_ip) must be at least 1",
            );
        }
        if limits.connect_timeout_secs == 0 {
            return invalid("limits.connect_timeout_secs", "must be at least 1");
        }
        if limits.max_topic_levels == 0 || limits.max_topic_length == 0 {
            return invalid("limits.max_topic_length", "topic limits must be at least 1");
        }
        if self.storage.flush_interval_ms == 0 {
            return invalid("storage.flush_interval_ms", "must be at least 1");
        }
        let jwt = &self.auth.jwt;
        let sources = [&jwt.secret, &jwt.secret_file, &jwt.public_key_file]
            .into_iter()
            .filter(|source| !source.is_empty())
            .count();
        if sources > 1 {
            return invalid(
                "auth.jwt",
                "set only one of secret, secret_file and public_key_file",
            );
        }
        if jwt.leeway_secs > 5 {
            return invalid("auth.jwt.leeway_secs", "must be at most 5");
        }
        if !self.authz.client_id_pattern.is_empty()
            && let Err(reason) =
                crate::security::client_id::ClientIdPattern::parse(&self.authz.client_id_pattern)
        {
            return invalid("authz.client_id_pattern", reason);
        }
        if self.sessions.flap_max_takeovers == 0 {
            return invalid("sessions.flap_max_takeovers", "must be at least 1");
        }
        Ok(())
    }

    /// The flush period of `interval` durability.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.storage.flush_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_holds_the_defaults() {
        let example = Config::from_toml(include_str!("../tabmq.example.toml")).expect("parses");
        example.validate().expect("valid");
        let defaults = Config::default();
        assert_eq!(
            format!("{example:?}"),
            format!("{defaults:?}"),
            "the example shows every default"
        );
    }

    #[test]
    fn security_settings_are_checked() {
        let invalid = |text: &str| Config::from_toml(text).expect("parses").validate().is_err();
        assert!(
            invalid("[authz]\nclient_id_pattern = \"app-*\"\n"),
            "a pattern must name the user"
        );
        assert!(
            invalid("[auth.jwt]\nsecret = \"x\"\nsecret_file = \"y\"\n"),
            "one key source"
        );
        assert!(invalid("[auth.jwt]\nleeway_secs = 6\n"));
        assert!(
            invalid("[listeners]\nallowed_origins = [\"app.example.com\"]\n"),
            "an origin has a scheme"
        );
        assert!(invalid("[limits]\nmax_connect_rate_per_ip = 0\n"));
        assert!(!invalid(
            "[listeners]\nallowed_origins = [\"https://app.example.com\", \"*\"]\n"
        ));
    }
}
