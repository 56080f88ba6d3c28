//! Wiring and lifetime: open the store, start the router and listeners, and shut
//! down cleanly on SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::connection::Shared;
use crate::limits::PerAddress;
use crate::listener::proxy::TrustedProxies;
use crate::listener::tls::{TlsError, TlsSettings};
use crate::listener::{self, Kind};
use crate::metrics::Metrics;
use crate::router::{self, Router, RouterSender, ToRouter};
use crate::security::{Security, SecurityError};
use crate::store::{RedbStore, Snapshot, Store, StoreError, StoreHandle};

/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the broker could not start.
#[derive(Debug, Error)]
pub enum StartupError {
    /// The data directory is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Cluster mode is configured and NATS is not usable.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A password or ACL file is unusable.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// A certificate or key file is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listen address could not be bound.
    #[error("cannot listen on {address} ({option}): {source}")]
    Bind {
        /// The config option naming the address.
        option: &'static str,
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Pending connections the kernel may hold for a listener. tokio's default (1,024) made a
/// storm of 1,000 browsers overflow it: dropped SYNs come back only after a second.
const LISTEN_BACKLOG: u32 = 4_096;

async fn bind(option: &'static str, address: &str) -> Result<Option<TcpListener>, StartupError> {
    if address.is_empty() {
        return Ok(None);
    }
    let error = |source| StartupError::Bind {
        option,
        address: address.to_owned(),
        source,
    };
    let socket_address = tokio::net::lookup_host(address)
        .await
        .map_err(error)?
        .next()
        .ok_or_else(|| {
            error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such address",
            ))
        })?;
    let socket = if socket_address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    socket.set_reuseaddr(true).map_err(error)?;
    socket.bind(socket_address).map_err(error)?;
    socket.listen(LISTEN_BACKLOG).map(Some).map_err(error)
}

/// Runs the broker until a termination signal; returns after a clean shutdown.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let security = Arc::new(Security::load(&config, metrics.clone())?);
    let secure_listeners = !config.listeners.wss.is_empty() || !config.listeners.mqtts.is_empty();
    let tls = if secure_listeners {
        Some(TlsSettings::load(&config.tls)?)
    } else {
        None
    };
    let mut nats = match config.cluster.enabled() {
        true => {
            let sessions = &config.sessions;
            let flap = crate::cluster::FlapLimits {
                max_takeovers: sessions.flap_max_takeovers,
                window: Duration::from_secs(sessions.flap_window_secs),
                cooldown: Duration::from_secs(sessions.flap_cooldown_secs),
            };
            Some(crate::cluster::connect(&config.cluster, flap).await?)
        }
        false => None,
    };
    // A cluster node keeps sessions in JetStream, shared by all nodes; one node keeps
    // them in its embedded database.
    let (store, snapshot): (Box<dyn Store>, Snapshot) = match &mut nats {
        Some(nats) => {
            let snapshot = Snapshot {
                sessions: std::mem::take(&mut nats.held_sessions.sessions),
                retained: nats
                    .initial_retained
                    .iter()
                    .map(|message| (message.publish.topic.clone(), message.clone()))
                    .collect(),
            };
            info!(
                sessions = snapshot.sessions.len(),
                retained = snapshot.retained.len(),
                "cluster storage opened (JetStream)"
            );
            (Box::new(nats.state.clone()), snapshot)
        }
        None => {
            let (store, snapshot) = RedbStore::open(&config.storage.data_dir)?;
            info!(
                data_dir = %config.storage.data_dir.display(),
                sessions = snapshot.sessions.len(),
                retained = snapshot.retained.len(),
                "storage opened"
            );
            (Box::new(store), snapshot)
        }
    };
    let ws = bind("listeners.ws", &config.listeners.ws).await?;
    let tcp = bind("listeners.tcp", &config.listeners.tcp).await?;
    let wss = bind("listeners.wss", &config.listeners.wss).await?;
    let mqtts = bind("listeners.mqtts", &config.listeners.mqtts).await?;

    let (store, store_thread) = StoreHandle::start(
        store,
        config.storage.durability,
        config.flush_interval(),
        metrics.clone(),
    );
    let (router_tx, router_rx) = router::inbox(config.limits.router_queue_bytes);
    let handover = nats.as_ref().map(|nats| nats.handover.clone());
    let (cluster, cluster_tasks) = match nats {
        Some(nats) => {
            let (link, task) =
                crate::cluster::start(nats, &config.cluster, router_tx.clone(), metrics.clone());
            (Some(link), Some(task))
        }
        None => (None, None),
    };
    let router = Router::new(config.clone(), store.clone(), metrics.clone(), snapshot, cluster);
    let router_task = tokio::spawn(router.run(router_rx));
    // A cluster node's sessions are in JetStream: backups are the NATS servers' own.
    let backups = (!config.cluster.enabled()).then(|| {
        tokio::spawn(crate::backup::serve(
            config.storage.data_dir.clone(),
            store.clone(),
        ))
    });
    let ticker = tokio::spawn(tick(router_tx.clone()));

    let shared = Arc::new(Shared {
        config: config.clone(),
        router: router_tx.clone(),
        store: store.clone(),
        metrics,
        clock: Clock::start(),
        next_id: AtomicU64::new(1),
        security: security.clone(),
        per_address: PerAddress::new(&config.limits),
        proxies: TrustedProxies::new(&config.listeners.trusted_proxies),
        handover,
    });
    let reloader = tokio::spawn(reload_on_hangup(security, tls.clone()));
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let mut accept_tasks = Vec::new();
    if config
        .listeners
        .allowed_origins
        .iter()
        .any(|origin| origin == "*")
    {
        warn!("listeners.allowed_origins has \"*\": pages of any site may open the MQTT WebSocket");
    }
    let plain = [(ws, Kind::WebSocket, None), (tcp, Kind::Tcp, None)];
    let secure = [
        (wss, Kind::WebSocket, tls.clone()),
        (mqtts, Kind::Tcp, tls.clone()),
    ];
    for (listener, kind, tls) in plain.into_iter().chain(secure) {
        let Some(listener) = listener else { continue };
        let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        match (kind, tls.is_some()) {
            (Kind::WebSocket, false) => info!(
                "MQTT over WebSocket on ws://{address}{}, HTTP on http://{address}/",
                config.listeners.ws_path
            ),
            (Kind::WebSocket, true) => info!(
                "MQTT over secure WebSocket on wss://{address}{}, HTTPS on https://{address}/",
                config.listeners.ws_path
            ),
            (Kind::Tcp, false) => info!("MQTT over TCP on {address}"),
            (Kind::Tcp, true) => info!("MQTT over TLS on {address}"),
        }
        accept_tasks.push(tokio::spawn(listener::accept_loop(
            shared.clone(),
            listener,
            kind,
            tls,
            alive.clone(),
        )));
    }
    drop(alive);

    termination_signal().await;
    info!("shutting down: closing listeners and connections");
    for task in &accept_tasks {
        task.abort();
    }
    for task in accept_tasks {
        let _ = task.await;
    }
    let _ = router_tx.send(ToRouter::Shutdown).await;
    if tokio::time::timeout(SHUTDOWN_GRACE, all_closed.recv())
        .await
        .is_err()
    {
        warn!("some connections did not close in time");
    }
    ticker.abort();
    let _ = ticker.await;
    if let Some(backups) = backups {
        backups.abort();
        let _ = backups.await;
    }
    crate::backup::remove_socket(&config.storage.data_dir);
    reloader.abort();
    if let Some(cluster_tasks) = cluster_tasks {
        cluster_tasks.stop().await;
    }
    drop(router_tx);
    drop(shared);
    let _ = router_task.await;
    drop(store);
    let _ = tokio::task::spawn_blocking(move || store_thread.join()).await;
    info!("storage flushed; goodbye");
    Ok(())
}

async fn tick(router: RouterSender) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        if router.send(ToRouter::Tick).await.is_err() {
            return;
        }
    }
}

/// Reads the password, ACL, JWT key and TLS files again on each SIGHUP; a file that does
/// not parse leaves the current one in force.
async fn reload_on_hangup(security: Arc<Security>, tls: Option<Arc<TlsSettings>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP: the security files will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match security.reload() {
                Ok(()) => info!("SIGHUP: security files reloaded"),
                Err(error) => warn!(%error, "SIGHUP: reload failed; the previous files stay in force"),
            }
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => info!("SIGHUP: TLS certificate reloaded"),
                    Err(error) => warn!(%error, "SIGHUP: TLS reload failed; the previous certificate stays"),
                }
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
