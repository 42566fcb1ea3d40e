//! A native client: what the browser bundle does, in Rust, for bots, load
//! tests and server-to-server links.
//!
//! [`MasterConnection`] keeps the live slave list (with reconnection and
//! resynchronisation as the browser bundle does them); a [`SlaveConnection`]
//! opens [`DataChannel`]s to one slave over str0m (one UDP socket and one
//! task per slave connection), signalling through the master. It speaks
//! enslavism 0.9.0's protocol, and the negotiated channels of ours (see
//! [`ChannelOptions`]), so it works against our master and slave and
//! against 0.9.0's.
//!
//! ```no_run
//! # async fn run() -> Result<(), enslavism::client::ClientError> {
//! use enslavism::client::{ChannelOptions, MasterConnection, MasterEvent};
//!
//! let (master, mut events) = MasterConnection::builder("ws://127.0.0.1:8081").connect().await?;
//! let slave = match master.slaves().first() {
//!     Some(listed) => master.slave(listed.id)?,
//!     None => loop {
//!         if let Some(MasterEvent::SlaveAdded(listed)) = events.next().await {
//!             break master.slave(listed.id)?;
//!         }
//!     },
//! };
//! let mut channel = slave.create_data_channel("state", ChannelOptions::unreliable()).await?;
//! channel.send(&b"hello"[..]).await?;
//! if let Some(reply) = channel.recv().await {
//!     println!("{} bytes back", reply.data.len());
//! }
//! master.close().await;
//! # Ok(()) }
//! ```

mod channel;
mod link;
mod list;
mod peer;
mod session;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proto::{Message, ProtoError};
use crate::slave::IceServer;

pub use channel::{ChannelMessage, ChannelOptions, ChannelReceiver, ChannelSender, DataChannel, QueuedSender};
pub use list::SlaveInfo;
pub use session::SlaveConnection;

use list::{SlaveKey, SlaveList};
use session::SessionInput;

/// Default time to wait for the master's WebSocket handshake and first list.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a slave has to answer an offer, and a channel to open.
pub const DEFAULT_SIGNALLING_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait between two reconnection attempts to the master.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Default time a slave missing from the first list after a reconnection
/// may take to register again before it is removed.
pub const DEFAULT_RESYNC_GRACE: Duration = Duration::from_secs(5);
/// Default time between pings to a quiet master.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default silence after which the master counts as gone.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);

/// What can go wrong with a client, its slave connections and channels.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The master could not be dialled: a bad URL, a refusal (e.g. 401 from
    /// `clientauth`), a TLS failure, or no answer (or no slave list) in time.
    #[error(transparent)]
    Dial(#[from] crate::dial::DialError),
    /// A certificate given with [`MasterConnectionBuilder::ca`] is unusable.
    #[error("{0}")]
    Certificate(#[from] crate::tls::TlsError),
    /// A builder setting cannot be used.
    #[error("invalid client configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// No slave is listed under this id.
    #[error("no slave is listed under id {0}")]
    UnknownSlave(u32),
    /// The master is not connected (or the slave is not listed on the
    /// current connection yet): signalling cannot reach the slave.
    #[error("the master is not connected: cannot reach the slave")]
    MasterUnavailable,
    /// The slave refused the connection (its `offer` listener said no, or
    /// the master refused an offer sent too fast).
    #[error("slave {slave} rejected the connection")]
    Rejected {
        /// The slave's id.
        slave: u32,
    },
    /// A step did not happen in time.
    #[error("{what} did not happen within {after:?}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// How long.
        after: Duration,
    },
    /// The connection to the slave failed or was closed first.
    #[error("the connection to slave {slave} closed")]
    ConnectionClosed {
        /// The slave's id.
        slave: u32,
    },
    /// The data channel is closed.
    #[error("the data channel is closed")]
    ChannelClosed,
    /// The MasterConnection is closed.
    #[error("the master connection is closed")]
    Closed,
    /// A signalling message cannot be encoded.
    #[error("{0}")]
    Protocol(#[from] ProtoError),
    /// str0m (the WebRTC stack) refused a step.
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// The connection to the slave could not be set up (a socket, an
    /// unusable answer).
    #[error("WebRTC: {0}")]
    Peer(String),
}

/// Something that happened to the master connection or its list. More
/// kinds may be added in minor versions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterEvent {
    /// A slave was listed.
    SlaveAdded(SlaveInfo),
    /// A slave listed before a reconnection to the master is listed again
    /// under a new id (the one slave of the earlier list with this
    /// userData): its [`SlaveConnection`] and open channels are kept, under
    /// the new id.
    SlaveRelisted(SlaveInfo),
    /// A slave listed before a reconnection to the master is listed again
    /// under the id and userData it had (masters in a cluster give a slave
    /// the same id on every master): the same slave, with its
    /// [`SlaveConnection`] and open channels. Nothing changed for the
    /// application (no SlaveRelisted, SlaveAdded, SlaveRemoved or
    /// SlaveUpdated for it); it is in [`MasterConnection::slaves`] again.
    SlaveKept(SlaveInfo),
    /// A slave is gone; its SlaveConnection is closed.
    SlaveRemoved(SlaveInfo),
    /// A listed slave has new userData (from a master speaking
    /// [`ProtocolVersion::V2`](crate::proto::ProtocolVersion::V2)); its
    /// SlaveConnection is not touched.
    SlaveUpdated(SlaveInfo),
    /// The WebSocket to the master closed; unless reconnection is off, the
    /// client reconnects (open data channels are not touched).
    Disconnected {
        /// The close code (1006 when the connection dropped).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Connected again, to the same master or the next of the list (see
    /// [`MasterConnectionBuilder::fallback_url`]), and the list is up to date.
    #[non_exhaustive]
    Reconnected {
        /// The master connected to now, as given to the builder.
        url: String,
    },
    /// The master sent a frame that is not a valid message for a client; it
    /// was dropped.
    BadFrame {
        /// What was wrong with it.
        reason: String,
    },
}

/// The events of one [`MasterConnection`], in order.
pub struct MasterEvents {
    rx: mpsc::UnboundedReceiver<MasterEvent>,
}

impl MasterEvents {
    /// The next event; `None` once the connection is closed for good.
    pub async fn next(&mut self) -> Option<MasterEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<MasterEvent> {
        self.rx.try_recv().ok()
    }
}

/// The settings every part of one client reads, validated once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    url: String,
    fallback_urls: Vec<String>,
    cookies: Vec<(String, String)>,
    pub(crate) ice_addresses: Vec<IpAddr>,
    pub(crate) ice_servers: Vec<IceServer>,
    ca: Vec<crate::tls::CertificateDer<'static>>,
    connect_timeout: Duration,
    pub(crate) signalling_timeout: Duration,
    reconnect: bool,
    reconnect_max_delay: Duration,
    resync_grace: Duration,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
}

/// How a [`MasterConnection`] connects; made by [`MasterConnection::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() is called"]
pub struct MasterConnectionBuilder {
    settings: Settings,
}

impl MasterConnectionBuilder {
    /// Sends a cookie with the WebSocket handshake (what `clientauth` reads).
    pub fn cookie(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.cookies.push((name.into(), value.into()));
        self
    }

    /// Another master to connect to when the ones before it in the list
    /// cannot be reached (call it once per master; the list starts with
    /// [`MasterConnection::builder`]'s). `connect` tries them in order; when
    /// the connection drops, the client connects to the next one (round
    /// robin, the one that dropped last, with the reconnection backoff
    /// between full rounds) and resynchronises the list.
    pub fn fallback_url(mut self, url: impl Into<String>) -> Self {
        self.settings.fallback_urls.push(url.into());
        self
    }

    /// Local addresses ICE binds (default `0.0.0.0`: every non-loopback IPv4
    /// interface, or loopback on a host without one). A connection uses the
    /// IPv4 ones when there are any, else the IPv6 ones.
    pub fn ice_addresses(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.settings.ice_addresses = addresses.into_iter().collect();
        self
    }

    /// STUN servers (`stun:` or `turn:` URLs over UDP) every connection to a
    /// slave asks for its server-reflexive address, trickled to the slave.
    /// The native client does not relay through TURN.
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.settings.ice_servers = servers.into_iter().collect();
        self
    }

    /// Certificates trusted for a `wss://` master beyond the Mozilla roots
    /// (see [`crate::tls::trust_anchors_from_pem`]).
    pub fn ca(mut self, certificates: impl IntoIterator<Item = crate::tls::CertificateDer<'static>>) -> Self {
        self.settings.ca.extend(certificates);
        self
    }

    /// Time the WebSocket handshake and the first slave list may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Time a slave has to answer an offer, and a channel to open (default 10 s).
    pub fn signalling_timeout(mut self, timeout: Duration) -> Self {
        self.settings.signalling_timeout = timeout;
        self
    }

    /// Reconnect when an established connection to the master drops (default on).
    pub fn reconnect(mut self, reconnect: bool) -> Self {
        self.settings.reconnect = reconnect;
        self
    }

    /// Longest wait between two reconnection attempts (from 250 ms, doubling; default 2 s).
    pub fn reconnect_max_delay(mut self, delay: Duration) -> Self {
        self.settings.reconnect_max_delay = delay;
        self
    }

    /// How long a slave missing after a reconnection may take to register
    /// again before it is removed (default 5 s).
    pub fn resync_grace(mut self, grace: Duration) -> Self {
        self.settings.resync_grace = grace;
        self
    }

    /// How often to ping a quiet master (default 5 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.settings.heartbeat_interval = interval;
        self
    }

    /// A master silent this long counts as gone (default 15 s; longer than
    /// the interval).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.settings.heartbeat_timeout = timeout;
        self
    }

    /// Checks every setting (what [`connect`](Self::connect) does first);
    /// the URLs are checked by `connect`.
    pub fn check(&self) -> Result<(), crate::config::ConfigError> {
        let s = &self.settings;
        let one_ms = Duration::from_millis(1);
        for (setting, value) in [
            ("connect_timeout", s.connect_timeout),
            ("signalling_timeout", s.signalling_timeout),
            ("reconnect_max_delay", s.reconnect_max_delay),
            ("resync_grace", s.resync_grace),
            ("heartbeat_interval", s.heartbeat_interval),
            ("heartbeat_timeout", s.heartbeat_timeout),
        ] {
            crate::config::duration(setting, value, one_ms)?;
        }
        crate::config::heartbeat(s.heartbeat_interval, s.heartbeat_timeout)?;
        if s.ice_addresses.is_empty() {
            return Err(crate::config::invalid("ice_addresses", "name at least one address (0.0.0.0: every interface)"));
        }
        Ok(())
    }

    /// Connects to the first master of the list that answers (when none
    /// does, fails with the first master's error; a URL that is not `ws://`
    /// or `wss://` fails before any is dialled, naming it), and resolves
    /// once its first slave list is in ([`MasterConnection::slaves`] holds
    /// it). Must run within a tokio runtime.
    pub async fn connect(self) -> Result<(MasterConnection, MasterEvents), ClientError> {
        self.check()?;
        let settings = self.settings;
        let masters = crate::masters::MasterUrls::new(settings.url.clone(), settings.fallback_urls.clone(), link::PATH)?;
        let tls = crate::tls::client_config(&settings.ca)?;
        let announced = crate::transport::host::host_addresses(&settings.ice_addresses);
        let (to_link, outgoing) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            settings,
            masters,
            state: Mutex::new(State::default()),
            to_link,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            crypto: crate::transport::SharedCrypto::new(),
            announced,
        });
        let (events_tx, rx) = mpsc::unbounded_channel();
        let ws = shared.masters.connect_first(|url| link::connect(&shared, &tls, &events_tx, url)).await?;
        shared.spawn_guarded(link::run(shared.clone(), ws, tls, outgoing, events_tx));
        Ok((MasterConnection { shared }, MasterEvents { rx }))
    }
}

/// A frame for the master connection of this number.
pub(crate) type Outgoing = (u64, Bytes);

/// What the link and the slave connections share.
#[derive(Default)]
struct State {
    list: SlaveList,
    /// The number of the master connection frames go to; `None` while disconnected.
    connection: Option<u64>,
    /// Master connections made so far.
    connections: u64,
    /// Each slave's session input, while it has a live peer connection.
    sessions: HashMap<SlaveKey, mpsc::UnboundedSender<SessionInput>>,
    /// The SlaveConnection handed out for a slave, so that there is one per slave.
    handles: HashMap<SlaveKey, Weak<session::SlaveInner>>,
}

/// State shared by every task of one client.
pub(crate) struct Shared {
    settings: Settings,
    /// The masters to connect to, and the one in use.
    masters: crate::masters::MasterUrls,
    state: Mutex<State>,
    to_link: mpsc::UnboundedSender<Outgoing>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Every connection's crypto and DTLS certificate (one key generation per client).
    crypto: crate::transport::SharedCrypto,
    /// The addresses every connection announces (`ice_addresses` expanded once).
    announced: Vec<IpAddr>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `task` on the client's tracker; a panic (a bug of ours) is logged
    /// and costs that task only.
    fn spawn_guarded(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(async move {
            if let Err(panic) = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(task)).await {
                tracing::error!("internal error in the client: {}", crate::panic_message(&*panic));
            }
        });
    }

    /// Sends `make(id)` to the slave `key` through the current master
    /// connection, under the id it has there.
    fn send_to_slave(&self, key: SlaveKey, make: impl FnOnce(u32) -> Message) -> Result<(), ClientError> {
        let state = self.state();
        let (Some(connection), Some(id)) = (state.connection, state.list.id_of(key)) else {
            return Err(ClientError::MasterUnavailable);
        };
        let frame = make(id).encode()?;
        self.to_link.send((connection, Bytes::from(frame))).map_err(|_| ClientError::Closed)
    }

    /// Hands a signalling message to the slave's live session, if it has one.
    fn to_session(&self, id: u32, input: SessionInput) {
        let state = self.state();
        if let Some(session) = state.list.key_of(id).and_then(|key| state.sessions.get(&key)) {
            let _ = session.send(input);
        } else {
            tracing::debug!(slave = id, "signalling for a slave without a connection dropped");
        }
    }
}

/// A connection to a master: the live list of slaves.
pub struct MasterConnection {
    shared: Arc<Shared>,
}

impl MasterConnection {
    /// Configures a connection to the master at `url` (`ws://host:port` or
    /// `wss://…`; `/enslavism/clients` is appended); more masters to fail
    /// over to are added with [`MasterConnectionBuilder::fallback_url`].
    pub fn builder(url: impl Into<String>) -> MasterConnectionBuilder {
        MasterConnectionBuilder {
            settings: Settings {
                url: url.into(),
                fallback_urls: Vec::new(),
                cookies: Vec::new(),
                ice_addresses: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
                ice_servers: Vec::new(),
                ca: Vec::new(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                signalling_timeout: DEFAULT_SIGNALLING_TIMEOUT,
                reconnect: true,
                reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
                resync_grace: DEFAULT_RESYNC_GRACE,
                heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
                heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            },
        }
    }

    /// The slaves listed now, by id.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.shared.state().list.snapshot()
    }

    /// The connection to the slave listed under `id` (the same one each time
    /// for the same slave). Nothing is opened until a channel is created.
    pub fn slave(&self, id: u32) -> Result<SlaveConnection, ClientError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(ClientError::Closed);
        }
        let mut state = self.shared.state();
        let key = state.list.key_of(id).ok_or(ClientError::UnknownSlave(id))?;
        if let Some(inner) = state.handles.get(&key).and_then(Weak::upgrade) {
            return Ok(SlaveConnection::from_inner(inner));
        }
        let connection = SlaveConnection::new(key, id, self.shared.clone());
        state.handles.insert(key, connection.downgrade());
        Ok(connection)
    }

    /// The master connected to (or last connected to, while reconnecting),
    /// as given to the builder.
    pub fn master_url(&self) -> String {
        self.shared.masters.current().to_owned()
    }

    /// True while the WebSocket to the master is open.
    pub fn is_connected(&self) -> bool {
        self.shared.state().connection.is_some()
    }

    /// Closes the connection to the master (no reconnection) and every
    /// connection to a slave, and waits for them (at most 5 s).
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.tasks.wait()).await;
    }
}

impl std::fmt::Debug for MasterConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterConnection").field("url", &self.shared.masters.current()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MasterEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterEvents").finish_non_exhaustive()
    }
}

impl Drop for MasterConnection {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
