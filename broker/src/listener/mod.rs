//! Accept loops for the two listeners, with the connection limits applied (in total,
//! and per client address).

pub mod http;
pub mod origin;
pub mod proxy;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use self::tls::TlsSettings;
use crate::connection::stream::Stream;
use crate::connection::transport::Transport;
use crate::connection::{self, Shared};
use crate::limits::{AddressRefusal, AddressSlot};
use crate::metrics::Metrics;

/// Whether `max_connections` MQTT connections are open; counts the refusal if so.
pub fn at_capacity(shared: &Shared) -> bool {
    let full =
        shared.metrics.connections.load(Ordering::Relaxed) as usize >= shared.config.limits.max_connections;
    if full {
        Metrics::inc(&shared.metrics.connections_rejected_total);
    }
    full
}

/// Admits a connection from `peer` by the per-address limits, counting a refusal.
pub fn admit(shared: &Shared, peer: std::net::SocketAddr) -> Option<AddressSlot> {
    match shared.per_address.admit(peer.ip(), std::time::Instant::now()) {
        Ok(slot) => Some(slot),
        Err(refusal) => {
            let counter = match refusal {
                AddressRefusal::TooManyConnections => &shared.metrics.connections_refused_per_ip_total,
                AddressRefusal::TooFast => &shared.metrics.connections_rate_limited_total,
            };
            Metrics::inc(counter);
            debug!(%peer, ?refusal, "connection refused by the per-address limits");
            None
        }
    }
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP with the MQTT WebSocket upgrade.
    WebSocket,
    /// MQTT over plain TCP.
    Tcp,
}

/// Accepts connections forever, with TLS first when `tls` is given. Each task holds a
/// clone of `alive`, so shutdown can wait for every connection to finish.
pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    kind: Kind,
    tls: Option<Arc<TlsSettings>>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // A trusted proxy's connections are counted against the client they carry, once
        // known (its PROXY header, or the X-Forwarded-For of the upgrade).
        let trusted = shared.proxies.trusts(peer.ip());
        let slot = if trusted {
            None
        } else {
            match admit(&shared, peer) {
                Some(slot) => Some(slot),
                None => continue,
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let alive = alive.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let mut slot = slot;
            let mut stream = stream;
            let mut peer = peer;
            if trusted && kind == Kind::Tcp {
                let limit = std::time::Duration::from_secs(shared.config.limits.connect_timeout_secs);
                // Boxed, as the TLS handshake below: rare, and large beside the connection.
                match Box::pin(tokio::time::timeout(limit, proxy::read_header(&mut stream, peer))).await {
                    Ok(Ok(client)) => peer = client,
                    Ok(Err(error)) => return debug!(%peer, %error, "closing connection from a trusted proxy"),
                    Err(_) => return debug!(%peer, "no PROXY header in time from a trusted proxy"),
                }
                match admit(&shared, peer) {
                    Some(admitted) => slot = Some(admitted),
                    None => return,
                }
            }
            let _slot = slot;
            // The user a verified client certificate names, when its name is the user name.
            let mut certified = None;
            let stream = match tls {
                None => Stream::Plain(stream),
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    let limit = std::time::Duration::from_secs(shared.config.limits.connect_timeout_secs);
                    match Box::pin(tokio::time::timeout(limit, handshake)).await {
                        Ok(Ok(stream)) => {
                            if tls.identity_as_username() {
                                certified = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .and_then(|certificate| tls::subject_common_name(certificate));
                            }
                            Stream::Tls(Box::new(stream))
                        }
                        Ok(Err(error)) => {
                            debug!(%peer, %error, "TLS handshake failed");
                            Metrics::inc(&shared.metrics.tls_handshake_failures_total);
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            Metrics::inc(&shared.metrics.tls_handshake_failures_total);
                            return;
                        }
                    }
                }
            };
            match kind {
                Kind::Tcp if at_capacity(&shared) => drop(stream),
                Kind::Tcp => connection::run(shared, Transport::Tcp(stream), peer, certified).await,
                // HTTP (the page, /metrics) stays reachable; the upgrade checks the limit.
                Kind::WebSocket => {
                    // The HTTP exchange is over (and its future gone) before the connection runs.
                    let upgraded = Box::pin(http::serve(&shared, stream, peer, trusted)).await;
                    if let Some(upgraded) = upgraded {
                        let _proxied = upgraded.slot;
                        connection::run(shared, upgraded.transport, upgraded.peer, certified).await;
                    }
                }
            }
        });
    }
}
