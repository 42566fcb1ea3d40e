//! A slave: a game server that registers with a master and accepts WebRTC
//! data-channel connections from browsers, on webrtc-rs' sans-I/O core.
//!
//! [`Slave::connect`] binds the slave's UDP sockets (one per shard, see
//! `engine`), opens the master link (WebSocket, cookies as authData),
//! registers the userData, then answers every client's offer through the
//! master: [`SlaveHooks::on_offer`] decides, a shard answers, and every data
//! channel the browser opens is reported as [`SlaveEvent`]s. Channels are
//! addressed by a [`ChannelId`] for sending.

mod channel;
mod engine;
pub(crate) mod ice_nudge;
mod link;
mod nat;
pub(crate) mod negotiated;
pub(crate) mod peer;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proto::ProtoError;

use channel::ChannelHandle;
pub use channel::{ChannelInfo, SEND_QUEUE_LIMIT};

/// A data channel, as numbered by its slave (unique for the slave's lifetime).
pub type ChannelId = u64;

/// One peer connection of a client, as numbered by its slave (unique for the
/// slave's lifetime). A client that reconnects keeps its client id but gets a
/// new session, so events of the old and new connections never mix.
pub type SessionId = u64;

/// Default time to wait for the master's WebSocket handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the `offer` decision may take before the offer is refused.
pub const DEFAULT_OFFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time after which a peer whose ICE went quiet counts as disconnected.
pub const DEFAULT_ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time after which a disconnected peer counts as failed and is released.
pub const DEFAULT_ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait between two reconnection attempts to the master.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Default time between pings to a quiet master.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default silence after which the master counts as gone (half-open link) and
/// the slave reconnects.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest message a data channel carries (RFC 8841's default).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// The largest `max_message_size` webrtc-rs takes.
pub const MAX_MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// Default time a peer has to open its first data channel after its offer.
pub const DEFAULT_PEER_SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How a slave's peer connections are set up.
#[derive(Debug, Clone)]
pub struct SlaveConfig {
    /// Local addresses announced as host candidates. One address is bound
    /// itself; several are served by one socket on the wildcard address.
    /// `0.0.0.0` (`::`) stands for every non-loopback, non-link-local IPv4
    /// (IPv6) address of the host's interfaces; loopback must be named
    /// explicitly (`127.0.0.1`).
    pub ice_addresses: Vec<IpAddr>,
    /// Addresses announced in the slave's host candidates in place of the
    /// bound ones of the same family (NAT 1:1: a cloud VM's public IP, a
    /// container's host address). Empty: the bound addresses.
    pub public_addresses: Vec<IpAddr>,
    /// The one UDP port every peer connection uses (one shard, one core's
    /// worth of WebRTC work; `Some(0)`: one shard on a free port). `None`:
    /// see `port_range`.
    pub udp_port: Option<u16>,
    /// Ports (inclusive) for the shards, one port each, as many shards as
    /// cores (a port in use is skipped). `None` with no `udp_port`: one
    /// shard per core, each on a free port chosen once.
    pub port_range: Option<(u16, u16)>,
    /// STUN servers (`stun:` and `turn:` URLs over UDP): each shard asks them
    /// for its server-reflexive address and announces it. The slave does not
    /// relay through TURN (it is the one with a reachable address).
    pub ice_servers: Vec<IceServer>,
    /// Time to wait for the master's WebSocket handshake.
    pub connect_timeout: Duration,
    /// Time the offer decision may take before the offer is refused.
    pub offer_timeout: Duration,
    /// Largest message a data channel carries each way, announced to the
    /// browser (`a=max-message-size`). Each peer keeps a zero-filled buffer
    /// of this size: with the default 64 KiB, a third of a peer's memory
    /// (heap profile of 150 peers); 16 KiB is plenty for game state. At most
    /// [`MAX_MAX_MESSAGE_SIZE`].
    pub max_message_size: usize,
    /// ICE disconnected timeout.
    pub ice_disconnected_timeout: Duration,
    /// ICE failed timeout: a failed peer connection is closed and reported.
    pub ice_failed_timeout: Duration,
    /// Time a peer has to open its first data channel before it is released.
    pub peer_setup_timeout: Duration,
    /// Answer a browser's first nominating ICE check as soon as our side can
    /// (see `ice_nudge`): ~50 ms less per connection with webrtc-rs 0.21.1.
    pub ice_nudge: bool,
    /// Reconnect to the master (and register again) when the link drops.
    pub reconnect: bool,
    /// Longest wait between two reconnection attempts (the wait doubles from 250 ms).
    pub reconnect_max_delay: Duration,
    /// How often the slave pings a quiet master.
    pub heartbeat_interval: Duration,
    /// Certificates trusted for a `wss://` master beyond the Mozilla roots
    /// (a private CA, a self-signed master); see [`crate::tls::certificates_from_pem`].
    pub ca: Vec<crate::tls::CertificateDer<'static>>,
    /// A master silent this long (no frame, no pong) counts as gone: the
    /// link is dropped (and reconnected, unless `reconnect` is off).
    pub heartbeat_timeout: Duration,
}

impl Default for SlaveConfig {
    fn default() -> Self {
        SlaveConfig {
            ice_addresses: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            public_addresses: Vec::new(),
            udp_port: None,
            port_range: None,
            ice_servers: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            offer_timeout: DEFAULT_OFFER_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            ice_disconnected_timeout: DEFAULT_ICE_DISCONNECTED_TIMEOUT,
            ice_failed_timeout: DEFAULT_ICE_FAILED_TIMEOUT,
            peer_setup_timeout: DEFAULT_PEER_SETUP_TIMEOUT,
            ice_nudge: true,
            reconnect: true,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            ca: Vec::new(),
        }
    }
}

/// A STUN or TURN server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: String,
    /// TURN credential.
    pub credential: String,
}

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
    },
    /// A client's peer connection is gone (closed, failed or timed out).
    ConnectionClose {
        /// The client's id.
        client_id: u32,
        /// Which connection of the client ended.
        session: SessionId,
    },
    /// The slave is connected and registered with the master again.
    MasterReconnect,
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
}

/// A slave registered with its master.
pub struct Slave {
    shared: Arc<SlaveShared>,
}

impl Slave {
    /// Connects to the master at `master_url` (`ws://host:port`; the path
    /// `/enslavism/slaves` is appended), sending `auth` as cookies, and
    /// registers `user_data` (JSON text). Resolves once registered.
    pub async fn connect(
        master_url: &str,
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
        let shared = Arc::new(SlaveShared {
            config: config.clone(),
            hooks,
            channels: Mutex::new(HashMap::new()),
            next_channel: std::sync::atomic::AtomicU64::new(1),
            next_session: std::sync::atomic::AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            engine,
        });
        bound.start(&shared, &engine::stun_servers(&shared.config).await);
        // Stops the shards if the master cannot be reached.
        let stop = shared.shutdown.clone().drop_guard();
        let ws = link::open(master_url, auth, &tls, shared.config.connect_timeout).await?;
        let registration =
            link::Registration { url: master_url.to_owned(), auth: auth.to_vec(), user_data: user_data.to_owned(), tls };
        link::start(shared.clone(), ws, registration).await?;
        stop.disarm();
        Ok(Slave { shared })
    }

    /// The UDP ports the slave's peer connections use (one per shard).
    pub fn udp_ports(&self) -> Vec<u16> {
        self.shared.engine.ports()
    }

    /// Queues a message on a data channel (`is_text` sends a text message).
    /// Past [`SEND_QUEUE_LIMIT`] queued bytes, the message and the queue are
    /// dropped, a `ChannelError` is reported, and the channel closes once SCTP
    /// delivered what it holds (this still returns `Ok`).
    pub fn send(&self, channel: ChannelId, data: Bytes, is_text: bool) -> Result<(), SlaveError> {
        let channels = self.shared.channels();
        let handle = channels.get(&channel).ok_or(SlaveError::ChannelNotOpen(channel))?;
        handle.send(data, is_text).map_err(|_| SlaveError::ChannelNotOpen(channel))
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
