//! A slave: a game server that registers with a master and accepts WebRTC
//! data-channel connections from browsers, on str0m (sans-I/O WebRTC).
//!
//! [`Slave::builder`]'s `connect` binds the slave's UDP sockets (one per shard, see
//! `engine`), opens the master link (WebSocket, cookies as authData),
//! registers the userData, then answers every client's offer through the
//! master: [`SlaveHooks::on_offer`] decides, a shard answers, and every data
//! channel the browser opens is reported as [`SlaveEvent`]s. Channels are
//! addressed by a [`ChannelId`] for sending.
//!
//! What the slave carries is counted as it goes and read on demand:
//! [`Slave::stats`], [`Slave::channel_stats`], [`Connection::stats`], and
//! the same as Prometheus metrics, [`Slave::metrics`] (served over HTTP
//! with [`SlaveConfigBuilder::metrics_port`]).

mod channel;
mod config;
mod engine;
mod link;
mod metrics;
mod metrics_http;
mod nat;
pub(crate) mod negotiated;
pub(crate) mod peer;
mod stats;
mod user_data;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proto::ProtoError;

use channel::ChannelHandle;
pub use channel::{ChannelInfo, SEND_QUEUE_LIMIT};
pub use config::{
    IceServer, SlaveConfig, SlaveConfigBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_TIMEOUT,
    DEFAULT_ICE_DISCONNECTED_TIMEOUT, DEFAULT_ICE_FAILED_TIMEOUT, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_METRICS_HOST,
    DEFAULT_OFFER_TIMEOUT, DEFAULT_PEER_SETUP_TIMEOUT, DEFAULT_RECONNECT_MAX_DELAY, MAX_MAX_MESSAGE_SIZE, MIN_MAX_MESSAGE_SIZE,
};
pub use metrics::PREFIX as METRICS_PREFIX;
pub use stats::{CandidatePair, ChannelStats, ConnectionStats, SetupTimes, SlaveStats, SETUP_BUCKETS};

/// A data channel, as numbered by its slave (unique for the slave's lifetime).
pub type ChannelId = u64;

/// One peer connection of a client, as numbered by its slave (unique for the
/// slave's lifetime). A client that reconnects keeps its client id but gets a
/// new session, so events of the old and new connections never mix.
pub type SessionId = u64;

/// What can go wrong when starting or using a slave.
#[derive(Debug, Error)]
pub enum SlaveError {
    /// The master could not be dialled: a bad URL, a refusal (e.g. 401 from
    /// `slaveauth`), a TLS failure, or no answer in time.
    #[error(transparent)]
    Dial(#[from] crate::dial::DialError),
    /// A certificate of the `ca` option is unusable.
    #[error("{0}")]
    Certificate(#[from] crate::tls::TlsError),
    /// userData cannot be registered (over 65,535 bytes of JSON, or not JSON).
    #[error("cannot register this userData: {0}")]
    UserData(#[from] ProtoError),
    /// The master refused a userData update (over its `maxUserDataLength`,
    /// say); the slave's userData is the one it had before.
    #[error("the master refused the userData update: {0}")]
    UserDataRefused(String),
    /// The master link closed for good (`reconnect` is off): nothing can
    /// reach the master any more.
    #[error("the slave is no longer connected to its master (reconnect is off)")]
    NoMaster,
    /// The UDP sockets could not be bound (`udp_port` in use, an address
    /// that is not this host's, no free port in `port_range`).
    #[error("cannot bind the slave's UDP socket: {0}")]
    Bind(#[source] std::io::Error),
    /// A slave needs a tokio runtime; none is running on this thread.
    #[error("no tokio runtime: create the slave from within a tokio runtime")]
    NoRuntime,
    /// The slave is closed.
    #[error("the slave is closed")]
    Closed,
    /// No open data channel has this id.
    #[error("data channel {0} is not open")]
    ChannelNotOpen(ChannelId),
    /// The client connection is gone (released, or the slave closed).
    #[error("client connection {0} is closed")]
    ConnectionClosed(SessionId),
    /// The metrics listener (`metrics_port`) could not be bound.
    #[error("cannot listen for metrics: {0}")]
    MetricsBind(#[source] std::io::Error),
}

/// The decision future of [`SlaveHooks::on_offer`]: `true` accepts.
pub type OfferDecision = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Something that happened on a slave, for the application to observe.
/// More kinds of event may be added in minor versions.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SlaveEvent {
    /// A client's offer was accepted and answered.
    Connection {
        /// The client's id, given by the master.
        client_id: u32,
        /// This connection of the client.
        session: SessionId,
    },
    /// A data channel the client opened is open (reported once).
    DataChannel {
        /// Whose channel.
        client_id: u32,
        /// On which connection of that client.
        session: SessionId,
        /// The channel's handle for [`Slave::send`] and [`Slave::close_channel`].
        channel: ChannelId,
        /// Its label and reliability, as the browser asked.
        info: ChannelInfo,
    },
    /// A message arrived on a data channel.
    Message {
        /// Which channel.
        channel: ChannelId,
        /// The payload.
        data: Bytes,
        /// True for a text message, false for binary.
        is_text: bool,
    },
    /// The amount buffered for sending fell to the channel's low threshold.
    /// More may have been queued by the time this is handled: check
    /// [`Slave::buffered_amount`] (the Node wrapper drops such stale reports).
    BufferedAmountLow {
        /// Which channel.
        channel: ChannelId,
    },
    /// A data channel reported an error.
    ChannelError {
        /// Which channel.
        channel: ChannelId,
        /// What went wrong.
        message: String,
    },
    /// A data channel closed; its id is not used again.
    ChannelClose {
        /// Which channel.
        channel: ChannelId,
        /// Its figures at the close ([`Slave::channel_stats`] knows it no more).
        stats: ChannelStats,
    },
    /// A client's peer connection is gone (closed, failed or timed out).
    ConnectionClose {
        /// The client's id.
        client_id: u32,
        /// Which connection of the client ended.
        session: SessionId,
    },
    /// The slave is connected and registered with a master again: the
    /// one it had, or the next of its list (see [`SlaveBuilder::fallback_url`]).
    #[non_exhaustive]
    MasterReconnect {
        /// The master it is registered with now, as given to the builder.
        url: String,
    },
    /// A bug in the engine was caught in one of the slave's tasks (one peer
    /// connection, or the master link); the rest goes on.
    InternalError {
        /// What went wrong.
        message: String,
    },
    /// The WebSocket to the master closed; open peer connections go on, and
    /// the slave reconnects unless `reconnect` is off.
    MasterClose {
        /// The close code (1006 when the connection dropped).
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// The application's side of a slave. Every method has a default: accept
/// every offer, observe nothing.
pub trait SlaveHooks: Send + Sync + 'static {
    /// Decides whether a client's offer is accepted. The default accepts.
    fn on_offer(&self, _client_id: u32) -> OfferDecision {
        Box::pin(std::future::ready(true))
    }

    /// Observes an event. Called from the slave's tasks, in order per channel.
    fn on_event(&self, _event: SlaveEvent) {}

    /// One burst of [`on_event`](Self::on_event) calls begins on this
    /// thread: a shard's wake-up (every datagram waiting, every command,
    /// every peer driven), ended by [`end_batch`](Self::end_batch) on the
    /// same thread. A hook that hands events to another thread can hold them
    /// until then and hand them over at once: waking the other thread at
    /// the first event cost a context switch every one or two messages
    /// when both threads share a core. Events from other threads, or
    /// outside a batch, are not bracketed. The default does nothing.
    fn begin_batch(&self) {}

    /// The burst that [`begin_batch`](Self::begin_batch) began on this
    /// thread is over (also when the work panicked).
    fn end_batch(&self) {}
}

/// State shared by every task of one slave.
pub(crate) struct SlaveShared {
    config: SlaveConfig,
    hooks: Arc<dyn SlaveHooks>,
    channels: Mutex<HashMap<ChannelId, ChannelHandle>>,
    next_channel: std::sync::atomic::AtomicU64,
    next_session: std::sync::atomic::AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The shards every peer connection lives in.
    engine: engine::Engine,
    /// What the slave registers with, and updates of it on their way.
    user_data: user_data::UserData,
    /// Setup times and the live connections' counters (the rest is per shard).
    stats: stats::Stats,
    /// The metrics listener's port, if there is one.
    metrics_port: Option<u16>,
    /// The masters to register with, and the one in use.
    masters: crate::masters::MasterUrls,
}

impl SlaveShared {
    /// Runs `task` on the slave's tracker; a panic in it (a bug of ours) is
    /// reported as [`SlaveEvent::InternalError`] instead of vanishing.
    pub(crate) fn spawn_guarded(self: &Arc<Self>, what: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let shared = self.clone();
        self.tasks.spawn(async move {
            if let Err(panic) = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(task)).await {
                let message = format!("internal error in {what}: {}", crate::panic_message(&*panic));
                tracing::error!("{message}");
                shared.hooks.on_event(SlaveEvent::InternalError { message });
            }
        });
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<ChannelId, ChannelHandle>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self) -> SlaveStats {
        let (connections, channels, traffic) = self.engine.totals();
        SlaveStats {
            connections,
            channels,
            messages_in: traffic.messages_in,
            messages_out: traffic.messages_out,
            bytes_in: traffic.bytes_in,
            bytes_out: traffic.bytes_out,
            setup: self.stats.setup.snapshot().times(),
        }
    }

    fn metrics_text(&self) -> String {
        let (connections, channels, traffic) = self.engine.totals();
        let per_connection = if self.config.metrics_per_connection {
            let mut rows: Vec<metrics::ConnectionRow> = self
                .stats
                .connections()
                .iter()
                .map(|(session, c)| metrics::ConnectionRow {
                    session: *session,
                    client_id: c.stats.client_id,
                    traffic: c.stats.traffic.read(),
                    rtt: c.stats.rtt(),
                })
                .collect();
            rows.sort_unstable_by_key(|row| row.session);
            rows
        } else {
            Vec::new()
        };
        metrics::render(metrics::Snapshot { connections, channels, traffic, setup: self.stats.setup.snapshot(), per_connection })
    }
}

/// A client connection of a slave, found by its session
/// ([`Slave::connection`]); it does not keep the connection open.
#[derive(Clone)]
pub struct Connection {
    session: SessionId,
    shard: mpsc::UnboundedSender<engine::Command>,
}

impl Connection {
    /// This connection's session (as in [`SlaveEvent::Connection`]).
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The connection's figures, asked of the shard that owns it (a round
    /// trip through its loop: for reads now and then, not per frame). Fails with
    /// [`SlaveError::ConnectionClosed`] once the connection is gone.
    pub async fn stats(&self) -> Result<ConnectionStats, SlaveError> {
        let (reply, answer) = oneshot::channel();
        self.shard
            .send(engine::Command::Stats { peer: self.session, reply })
            .map_err(|_| SlaveError::ConnectionClosed(self.session))?;
        answer.await.ok().flatten().ok_or(SlaveError::ConnectionClosed(self.session))
    }
}

/// A slave registered with its master.
pub struct Slave {
    shared: Arc<SlaveShared>,
}

/// How a [`Slave`] connects; made by [`Slave::builder`].
#[must_use = "a builder does nothing until connect() is called"]
pub struct SlaveBuilder {
    master_url: String,
    fallback_urls: Vec<String>,
    user_data: String,
    cookies: Vec<(String, String)>,
    config: SlaveConfig,
    hooks: Arc<dyn SlaveHooks>,
}

/// The hooks of a slave built without any: accept every offer, observe nothing.
struct DefaultHooks;
impl SlaveHooks for DefaultHooks {}

impl SlaveBuilder {
    /// The userData every client's list shows for this slave, as JSON text
    /// (at most 65,535 bytes; default `{}`).
    pub fn user_data(mut self, json: impl Into<String>) -> Self {
        self.user_data = json.into();
        self
    }

    /// Sends a cookie with the WebSocket handshake (what `slaveauth` reads,
    /// 0.9.0's authData).
    pub fn cookie(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cookies.push((name.into(), value.into()));
        self
    }

    /// How the slave's peer connections are set up (default `SlaveConfig::default()`).
    pub fn config(mut self, config: SlaveConfig) -> Self {
        self.config = config;
        self
    }

    /// Another master to register with when the ones before it in the list
    /// cannot be reached (call it once per master; the list starts with
    /// [`Slave::builder`]'s). `connect` tries them in order; when the link
    /// drops, the slave registers with the next one (round robin, the one
    /// that dropped last, with the reconnection backoff between full
    /// rounds), with its latest userData. Every URL is checked by `connect`.
    pub fn fallback_url(mut self, master_url: impl Into<String>) -> Self {
        self.fallback_urls.push(master_url.into());
        self
    }

    /// The application's side: offer decisions and events (default: accept
    /// every offer, observe nothing).
    pub fn hooks(mut self, hooks: Arc<dyn SlaveHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Binds the UDP sockets, connects to the first master of the list that
    /// answers, and resolves once registered (when none answers, with the
    /// first master's error; a URL that is not `ws://` or `wss://` fails
    /// before anything is bound, naming it). Must run within a tokio runtime.
    pub async fn connect(self) -> Result<Slave, SlaveError> {
        let SlaveBuilder { master_url, fallback_urls, user_data, cookies, config, hooks } = self;
        let masters = crate::masters::MasterUrls::new(master_url, fallback_urls, link::PATH)?;
        Slave::start(masters, &user_data, &cookies, config, hooks).await
    }
}

impl Slave {
    /// A slave of the master at `master_url` (`ws://host:port` or
    /// `wss://…`; the path `/enslavism/slaves` is appended), to configure
    /// and [`connect`](SlaveBuilder::connect); more masters to fail over to
    /// are added with [`SlaveBuilder::fallback_url`].
    pub fn builder(master_url: impl Into<String>) -> SlaveBuilder {
        SlaveBuilder {
            master_url: master_url.into(),
            fallback_urls: Vec::new(),
            user_data: "{}".to_owned(),
            cookies: Vec::new(),
            config: SlaveConfig::default(),
            hooks: Arc::new(DefaultHooks),
        }
    }

    async fn start(
        masters: crate::masters::MasterUrls,
        user_data: &str,
        auth: &[(String, String)],
        config: SlaveConfig,
        hooks: Arc<dyn SlaveHooks>,
    ) -> Result<Slave, SlaveError> {
        crate::proto::check_user_data(user_data)?;
        let tls = crate::tls::client_config(&config.ca)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SlaveError::NoRuntime);
        }
        let (engine, bound) = engine::Engine::bind(&config).map_err(SlaveError::Bind)?;
        let metrics_listener = metrics_http::bind(&config).map_err(SlaveError::MetricsBind)?;
        let metrics_port = match &metrics_listener {
            Some(listener) => Some(listener.local_addr().map_err(SlaveError::MetricsBind)?.port()),
            None => None,
        };
        let shared = Arc::new(SlaveShared {
            config: config.clone(),
            hooks,
            channels: Mutex::new(HashMap::new()),
            next_channel: std::sync::atomic::AtomicU64::new(1),
            next_session: std::sync::atomic::AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            engine,
            user_data: user_data::UserData::new(user_data.to_owned()),
            stats: stats::Stats::default(),
            metrics_port,
            masters,
        });
        if let Some(listener) = metrics_listener {
            shared.spawn_guarded("the metrics listener", metrics_http::serve(shared.clone(), listener));
        }
        bound.start(&shared, &engine::stun_servers(&shared.config).await);
        // Stops the shards if the master cannot be reached.
        let stop = shared.shutdown.clone().drop_guard();
        let registration = link::Registration { auth: auth.to_vec(), tls };
        link::start(shared.clone(), registration).await?;
        stop.disarm();
        Ok(Slave { shared })
    }

    /// The master the slave is registered with (or was last, while it
    /// reconnects), as given to the builder.
    pub fn master_url(&self) -> String {
        self.shared.masters.current().to_owned()
    }

    /// The latest userData set (by the builder or [`Slave::set_user_data`]).
    pub fn user_data(&self) -> String {
        self.shared.user_data.latest()
    }

    /// Replaces the slave's userData (JSON text, at most 65,535 bytes) and
    /// resolves once the master has it, when every client's list shows it.
    /// A master that speaks [`ProtocolVersion::V2`](crate::proto::ProtocolVersion::V2)
    /// updates the listing in place and confirms; a 0.9.0 master gets a
    /// second Register (it lists the slave again) and this resolves once it
    /// is sent. While the master link is down, this resolves when the slave
    /// registers again, with the latest userData. Updates in quick
    /// succession are merged: the master gets the latest.
    pub async fn set_user_data(&self, json: impl Into<String>) -> Result<(), SlaveError> {
        let json = json.into();
        crate::proto::check_user_data(&json)?;
        if self.is_closed() {
            return Err(SlaveError::Closed);
        }
        let settled = self.shared.user_data.set(json);
        tokio::select! {
            outcome = settled => match outcome {
                Ok(Ok(())) => Ok(()),
                Ok(Err(user_data::NotApplied::Refused(reason))) => Err(SlaveError::UserDataRefused(reason)),
                Ok(Err(user_data::NotApplied::NoMaster)) => Err(SlaveError::NoMaster),
                Err(_) => Err(SlaveError::Closed),
            },
            _ = self.shared.shutdown.cancelled() => Err(SlaveError::Closed),
        }
    }

    /// The UDP ports the slave's peer connections use (one per shard).
    pub fn udp_ports(&self) -> Vec<u16> {
        self.shared.engine.ports()
    }

    /// The slave's figures now: connections and channels open, messages and
    /// bytes each way since it started, setup times. Reads counters the
    /// shards keep; no lock, no round trip.
    pub fn stats(&self) -> SlaveStats {
        self.shared.stats()
    }

    /// One open channel's messages and bytes each way (`None` once it closed).
    pub fn channel_stats(&self, channel: ChannelId) -> Option<ChannelStats> {
        self.shared.channels().get(&channel).map(ChannelHandle::stats)
    }

    /// A live client connection, by the session of its
    /// [`SlaveEvent::Connection`] (`None` once it is gone).
    pub fn connection(&self, session: SessionId) -> Option<Connection> {
        let shard = self.shared.stats.connections().get(&session)?.shard.clone();
        Some(Connection { session, shard })
    }

    /// The slave's metrics as an OpenMetrics text exposition (what
    /// Prometheus scrapes; media type [`crate::metrics::CONTENT_TYPE`]),
    /// every name prefixed [`METRICS_PREFIX`]: `_connections` and
    /// `_channels` (gauges), `_messages_total` and `_bytes_total` (counters,
    /// label `direction` `in` or `out`), `_setup_seconds` (a histogram over
    /// [`SETUP_BUCKETS`]); with `metrics_per_connection`,
    /// `_connection_rtt_seconds`, `_connection_messages_total` and
    /// `_connection_bytes_total` per connection.
    pub fn metrics(&self) -> String {
        self.shared.metrics_text()
    }

    /// The port the metrics listener is bound to (`metrics_port`; 0 there
    /// gives a free one), `None` without one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.shared.metrics_port
    }

    /// Queues a message on a data channel (`is_text` sends a text message).
    /// Past [`SEND_QUEUE_LIMIT`] queued bytes, the message and the queue are
    /// dropped, a `ChannelError` is reported, and the channel closes once SCTP
    /// delivered what it holds (this still returns `Ok`). An empty message
    /// is dropped, with a warning logged once per process: str0m cannot
    /// send one yet (doc/upstream.md).
    pub fn send(&self, channel: ChannelId, data: Bytes, is_text: bool) -> Result<(), SlaveError> {
        let channels = self.shared.channels();
        let handle = channels.get(&channel).ok_or(SlaveError::ChannelNotOpen(channel))?;
        handle.send(data, is_text).map_err(|_| SlaveError::ChannelNotOpen(channel))
    }

    /// Queues several messages in order, each as [`Slave::send`] does, with
    /// one look-up of the channels for all (how the Node binding hands over
    /// what one JS turn sent). A message for a channel that is not open is
    /// dropped; returns how many were.
    pub fn send_many(&self, messages: impl IntoIterator<Item = (ChannelId, Bytes, bool)>) -> usize {
        let channels = self.shared.channels();
        let mut dropped = 0;
        for (channel, data, is_text) in messages {
            let sent = channels.get(&channel).is_some_and(|handle| handle.send(data, is_text).is_ok());
            dropped += usize::from(!sent);
        }
        dropped
    }

    /// Bytes queued on a channel and not yet handed to SCTP.
    pub fn buffered_amount(&self, channel: ChannelId) -> usize {
        self.shared.channels().get(&channel).map_or(0, ChannelHandle::buffered_amount)
    }

    /// Sets the threshold under which `BufferedAmountLow` is reported (none
    /// is reported until a threshold is set).
    pub fn set_buffered_amount_low_threshold(&self, channel: ChannelId, threshold: usize) {
        if let Some(handle) = self.shared.channels().get(&channel) {
            handle.set_low_threshold(threshold);
        }
    }

    /// Closes one data channel once what was sent on it is delivered (at most
    /// 10 s later); its `ChannelClose` event follows.
    pub fn close_channel(&self, channel: ChannelId) {
        if let Some(handle) = self.shared.channels().get(&channel) {
            handle.close();
        }
    }

    /// True once [`Slave::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Closes every peer connection and the master link, and waits for them.
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.tasks.wait()).await;
    }
}

impl Drop for Slave {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
