//! The signalling master: knows every slave and every client, keeps each
//! client's slave list in sync, and relays offers, answers, ICE candidates
//! and rejections between them.
//!
//! A [`Master`] either listens on its own port ([`Master::bind`]) or takes
//! over WebSocket upgrades that another HTTP server has parsed
//! ([`Master::adopt_upgrade`]). Either way the routing runs entirely here.

pub mod cluster;
mod config;
pub(crate) mod handshake;
mod hooks;
mod monitoring;
mod outbox;
mod peer;
mod pending_offers;
mod rate;
mod router;
mod server;
mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt;
use http::HeaderMap;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpSocket;
use tokio::runtime::Handle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{
    MasterConfig, MasterConfigBuilder, DEFAULT_AUTH_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_MAX_CANDIDATES_PER_SECOND, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HTTP_HEADER_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_OFFERS_PER_SECOND, DEFAULT_MAX_USER_DATA_UPDATES_PER_SECOND,
    DEFAULT_OUTBOUND_QUEUE_LENGTH, METRICS_PATH, MIN_HEARTBEAT_INTERVAL, MIN_HTTP_HEADER_SIZE, STATUS_JSON_PATH, STATUS_PATH,
};
pub use hooks::{AuthDecision, AuthRequest, MasterEvent, MasterHooks, MonitoringRequest, NoHooks, Rejection};
pub use monitoring::MonitoringPage;
pub use router::{IdAllocator, IdsExhausted, PeerKind, PeerLink, RoutingError, SignallingRouter, CLOSE_SLOW_CONSUMER};
pub use stats::{MasterStats, RefusedHandshakes, SignallingCounts};

use crate::proto::ProtocolVersion;
use crate::tls::{ServerTls, TlsIdentity};
use peer::{run_peer, SocketLink};

/// Connections the kernel may hold for [`Master::bind`]'s listener before
/// they are accepted (it caps this at `net.core.somaxconn`, 4096 by
/// default). std's 128 overflowed when clients came in a burst, as after a
/// master restart, and the dropped ones retried their SYN a second later:
/// 1,000 clients at once took 1.03 s to connect, 60 ms with this.
const LISTEN_BACKLOG: u32 = 4096;

/// How long [`Master::close`] waits for connections to say goodbye.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What can go wrong when starting or using a master.
#[derive(Debug, Error)]
pub enum MasterError {
    /// The listening socket could not be set up (port in use, no permission…).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A master needs a tokio runtime; none is running on this thread.
    #[error("no tokio runtime: create the master from within a tokio runtime")]
    NoRuntime,
    /// The master was closed; it accepts nothing more.
    #[error("the master is closed")]
    Closed,
    /// A socket handed over could not be used.
    #[error("cannot take over the connection: {0}")]
    Adopt(#[source] std::io::Error),
    /// [`Master::set_tls`] on a master that was not started with TLS.
    #[error("this master was started without TLS: give it a certificate when it starts (tls option)")]
    NotTls,
    /// An upgrade was handed over for a path that is not an enslavism path.
    #[error("{0:?} is not an enslavism WebSocket path (/enslavism/slaves or /enslavism/clients)")]
    NotOurPath(String),
}

/// State shared by every task of one master.
pub(crate) struct Shared {
    router: Mutex<SignallingRouter<SocketLink>>,
    hooks: Arc<dyn MasterHooks>,
    config: MasterConfig,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Connections counted against `config.max_connections`.
    connections: Arc<AtomicUsize>,
    /// TLS of the master's own server, when it has a certificate.
    pub(crate) tls: Option<ServerTls>,
    /// Frames, bytes, refusals and drops, counted by the peers' tasks.
    traffic: stats::TrafficCounters,
}

/// One connection counted against `max_connections`, for as long as it lives.
pub(crate) struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// A slot for one more connection, or `None` at the limit.
    pub(crate) fn connection_slot(&self) -> Option<ConnectionSlot> {
        let max = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| ConnectionSlot(self.connections.clone()))
    }

    /// Starts closing: listeners and handshakes watch the token; connected
    /// peers are told through their outboxes, so that their tasks need not
    /// poll the token (a lock every peer shares) on every wake-up.
    fn shut_down(&self) {
        self.shutdown.cancel();
        // Peers added after this see the token cancelled (`run_peer`).
        for link in self.router().links() {
            link.shut_down();
        }
    }

    fn stats(&self) -> MasterStats {
        let router = self.router();
        let gauges = router.gauges();
        MasterStats::read(&self.traffic, router.signalling_counts(), gauges)
    }

    fn metrics(&self) -> String {
        // One look at the router: the counts and the latency of one moment.
        let router = self.router();
        let gauges = router.gauges();
        let (signalling, latency) = (router.signalling_counts(), router.signalling_latency());
        drop(router);
        MasterStats::read(&self.traffic, signalling, gauges).metrics(latency)
    }

    /// The router; a panic elsewhere never makes it unusable.
    fn router(&self) -> MutexGuard<'_, SignallingRouter<SocketLink>> {
        self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running master.
pub struct Master {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    runtime: Handle,
}

impl Master {
    /// Starts a master listening on `addr` (port 0 picks a free port).
    /// Must be called within a tokio runtime; binding happens before it returns.
    pub fn bind(addr: SocketAddr, config: MasterConfig, hooks: Arc<dyn MasterHooks>) -> Result<Master, MasterError> {
        let runtime = Handle::try_current().map_err(|_| MasterError::NoRuntime)?;
        let bind_err = |source| MasterError::Bind { addr, source };
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(bind_err)?;
        // As std's `TcpListener::bind` does: a restarted master gets its port back at once.
        socket.set_reuseaddr(true).map_err(bind_err)?;
        socket.bind(addr).map_err(bind_err)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let master = Master::new(runtime, Some(local_addr), config, hooks);
        master.shared.tasks.spawn(server::accept_loop(master.shared.clone(), listener));
        Ok(master)
    }

    /// Starts a master without a listener of its own: connections arrive
    /// through [`Master::adopt_upgrade`]. Must be called within a tokio runtime.
    pub fn detached(config: MasterConfig, hooks: Arc<dyn MasterHooks>) -> Result<Master, MasterError> {
        let runtime = Handle::try_current().map_err(|_| MasterError::NoRuntime)?;
        Ok(Master::new(runtime, None, config, hooks))
    }

    fn new(runtime: Handle, local_addr: Option<SocketAddr>, config: MasterConfig, hooks: Arc<dyn MasterHooks>) -> Master {
        let mut config = config;
        // A detached master never sees TLS: the server that hands it
        // connections has decrypted them.
        let tls = config.tls.take().filter(|_| local_addr.is_some()).map(ServerTls::new);
        let cluster = config.cluster.take();
        let mut router = SignallingRouter::new();
        router.set_max_user_data_len(config.max_user_data_size);
        let shared = Arc::new(Shared {
            router: Mutex::new(router),
            hooks,
            config,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            connections: Arc::new(AtomicUsize::new(0)),
            tls,
            traffic: stats::TrafficCounters::default(),
        });
        if let Some(cluster) = cluster {
            let task = cluster::sync::join(&shared, cluster);
            shared.tasks.spawn_on(task.run(), &runtime);
        }
        Master { shared, local_addr, runtime }
    }

    /// The address the master listens on (`None` for a detached master).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// True when the master's own server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Presents `identity` from the next TLS handshake on (a renewed
    /// certificate); open connections are left as they are.
    pub fn set_tls(&self, identity: TlsIdentity) -> Result<(), MasterError> {
        self.shared.tls.as_ref().ok_or(MasterError::NotTls)?.set_identity(identity);
        Ok(())
    }

    /// Takes over a connection whose HTTP upgrade request another server has
    /// already parsed: `path` and `headers` are that request's, `head` the
    /// bytes read after its headers. The handshake (auth, 101 or 401) and the
    /// WebSocket then run here. Callable from any thread.
    pub fn adopt_upgrade(
        &self,
        stream: std::net::TcpStream,
        path: &str,
        headers: HeaderMap,
        head: Vec<u8>,
    ) -> Result<(), MasterError> {
        self.check_adoptable(path)?;
        stream.set_nonblocking(true).map_err(MasterError::Adopt)?;
        let _runtime = self.runtime.enter();
        let stream = tokio::net::TcpStream::from_std(stream).map_err(MasterError::Adopt)?;
        let remote_addr = stream.peer_addr().map_err(MasterError::Adopt)?;
        let _ = stream.set_nodelay(true);
        self.adopt_stream(stream, remote_addr, path, headers, head)
    }

    /// Like [`Master::adopt_upgrade`], for a connection whose bytes reach us
    /// some other way (decrypted by another TLS server, say): `stream`
    /// carries what follows the request's headers, both ways, and
    /// `remote_addr` is the client's address. Callable from any thread.
    pub fn adopt_stream<S>(
        &self,
        stream: S,
        remote_addr: SocketAddr,
        path: &str,
        headers: HeaderMap,
        head: Vec<u8>,
    ) -> Result<(), MasterError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.check_adoptable(path)?;
        let shared = self.shared.clone();
        let Some(slot) = self.shared.connection_slot() else {
            self.shared.tasks.spawn_on(server::refuse_over_limit(shared, stream, remote_addr), &self.runtime);
            return Ok(());
        };
        // The handshake (request headers, auth: 1,000 bytes) in a box of its
        // own, freed once it is done: the task keeps only the peer's room,
        // 1 kB instead of 1.3 (-Zprint-type-sizes).
        let handshake = Box::pin(adopted_handshake(shared.clone(), stream, remote_addr, path.to_owned(), headers, head));
        let peer = handshake.then(move |upgraded| match upgraded {
            Some((ws, kind, protocol)) => Either::Left(run_peer(shared, ws, kind, protocol, remote_addr, slot)),
            None => Either::Right(std::future::ready(())),
        });
        self.shared.tasks.spawn_on(peer, &self.runtime);
        Ok(())
    }

    /// Takes over a connection that another TLS server (Node's
    /// `https.Server`) decrypts: returns the other end of a socket pair, to
    /// which that server relays the plaintext both ways (everything after the
    /// request's headers; `head` is what it already read). The rest is as
    /// [`Master::adopt_stream`].
    #[cfg(unix)]
    pub fn adopt_relayed(
        &self,
        remote_addr: SocketAddr,
        path: &str,
        headers: HeaderMap,
        head: Vec<u8>,
    ) -> Result<std::os::unix::net::UnixStream, MasterError> {
        self.check_adoptable(path)?;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(MasterError::Adopt)?;
        ours.set_nonblocking(true).map_err(MasterError::Adopt)?;
        let _runtime = self.runtime.enter();
        let ours = tokio::net::UnixStream::from_std(ours).map_err(MasterError::Adopt)?;
        self.adopt_stream(ours, remote_addr, path, headers, head)?;
        Ok(theirs)
    }

    fn check_adoptable(&self, path: &str) -> Result<(), MasterError> {
        if self.is_closed() {
            return Err(MasterError::Closed);
        }
        if PeerKind::from_path(path).is_none() {
            return Err(MasterError::NotOurPath(path.to_owned()));
        }
        Ok(())
    }

    /// Queues a raw binary frame for one peer. Returns `false` when no such
    /// peer is connected.
    pub fn send(&self, kind: PeerKind, id: u32, frame: Bytes) -> bool {
        self.shared.router().send_raw(kind, id, frame)
    }

    /// Closes one peer's WebSocket with this code and reason. Returns `false`
    /// when no such peer is connected.
    pub fn disconnect(&self, kind: PeerKind, id: u32, code: u16, reason: &str) -> bool {
        self.shared.router().close(kind, id, code, reason)
    }

    /// How many slaves (registered or not) and clients are connected.
    pub fn peer_counts(&self) -> (usize, usize) {
        let router = self.shared.router();
        (router.slave_count(), router.client_count())
    }

    /// The master's figures: connected peers now, traffic and signalling
    /// since it started.
    pub fn stats(&self) -> MasterStats {
        self.shared.stats()
    }

    /// The master's metrics as an OpenMetrics text exposition (names
    /// prefixed `enslavism_master_`; served as [`crate::metrics::CONTENT_TYPE`]):
    /// the figures of [`Master::stats`] and a histogram of the time from a
    /// client's offer received to the slave's answer sent on.
    pub fn metrics(&self) -> String {
        self.shared.metrics()
    }

    /// The answer to `path` when it is one of the monitoring paths and
    /// turned on ([`MasterConfigBuilder::metrics`], [`MasterConfigBuilder::status`]),
    /// for a server of the application's to serve once it has decided who
    /// may see it (the master's own server asks
    /// [`MasterHooks::authorize_monitoring`]).
    pub fn monitoring_page(&self, path: &str) -> Option<MonitoringPage> {
        self.shared.monitoring_page(path)
    }

    /// True when `path` is one of the monitoring paths and turned on: what
    /// a server of the application's asks before deciding who may see it
    /// (nothing is computed).
    pub fn monitoring_enabled(&self, path: &str) -> bool {
        self.shared.monitoring_enabled(path)
    }

    /// True once [`Master::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Stops listening (the port is free when this returns), closes every
    /// connection with code 1001, and waits up to [`CLOSE_GRACE`] for them.
    pub async fn close(&self) {
        self.shared.shut_down();
        self.shared.tasks.close();
        if tokio::time::timeout(CLOSE_GRACE, self.shared.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not close within {CLOSE_GRACE:?}");
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // Without this, a dropped master would keep its port and peers forever.
        self.shared.shut_down();
    }
}

/// The handshake of a connection handed over by another HTTP server: the
/// WebSocket, once the handshake succeeded.
async fn adopted_handshake<S>(
    shared: Arc<Shared>,
    mut stream: S,
    remote_addr: SocketAddr,
    path: String,
    headers: HeaderMap,
    head: Vec<u8>,
) -> Option<(WebSocketStream<S>, PeerKind, ProtocolVersion)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let outcome = tokio::select! {
        outcome = handshake::negotiate(&path, &headers, remote_addr, &*shared.hooks, shared.config.auth_timeout) => outcome,
        _ = shared.shutdown.cancelled() => return None,
    };
    if outcome.upgraded.is_none() {
        shared.traffic.refused(stats::Refusal::from_status(outcome.response.status()));
    }
    let written = stream.write_all(&handshake::serialize_response(&outcome.response)).await;
    if let Err(e) = written {
        tracing::debug!(%remote_addr, "cannot answer the handshake: {e}");
        return None;
    }
    match outcome.upgraded {
        Some((kind, protocol)) => {
            let config = shared.config.websocket_config();
            Some((WebSocketStream::from_partially_read(stream, head, Role::Server, Some(config)).await, kind, protocol))
        }
        None => {
            let _ = stream.shutdown().await;
            None
        }
    }
}
