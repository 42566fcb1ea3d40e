//! `NativeMasterConnection`: the engine's native client, as the JS wrapper
//! (lib/master-connection.js) sees it. Channels are numbered here, and take
//! the same calls as the slave's (`send`, `bufferedAmount`, …), so that one
//! JS DataChannel class serves both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enslavism::client::{
    ChannelOptions, ChannelReceiver, ClientError, MasterConnection, MasterConnectionBuilder, MasterEvent, QueuedSender,
    SlaveConnection, SlaveInfo,
};
use enslavism::config::ConfigError;
use enslavism::dial::DialError;
use napi::bindgen_prelude::{Buffer, Function};
use napi_derive::napi;

use crate::convert::{config_error, ice_servers, ip_list, millis, set_each, trusted_cas, NativeIceServer};
use crate::delivery::{BatchArgs, Deliverer, Delivery};
use crate::outbox::read_batch;
use crate::slave::NativeFailure;
use crate::{codes, init_logging, js_error};

/// Options of a MasterConnection, as passed from JS (all optional).
#[napi(object)]
#[derive(Default)]
pub struct NativeClientOptions {
    /// Local IP addresses ICE binds (default `0.0.0.0`).
    pub ice_addresses: Option<Vec<String>>,
    /// STUN/TURN servers.
    pub ice_servers: Option<Vec<NativeIceServer>>,
    /// Reconnect to the master when the link drops (default true).
    pub reconnect: Option<bool>,
    /// Longest wait (ms) between two reconnection attempts.
    pub reconnect_max_delay: Option<i64>,
    /// How long (ms) a slave missing after a reconnection may take to register again.
    pub resync_grace: Option<i64>,
    /// Milliseconds to wait for the master's handshake and first list.
    pub connect_timeout: Option<i64>,
    /// Milliseconds a slave has to answer, and a channel to open.
    pub signalling_timeout: Option<i64>,
    /// CA certificates (PEM) trusted for a `wss://` master beyond the Mozilla roots.
    pub ca: Option<Vec<Buffer>>,
    /// The contents of the file named by `NODE_EXTRA_CA_CERTS`, trusted the same way.
    pub extra_ca_certs: Option<Buffer>,
}

/// One event delivered to the JS wrapper; `type` says which (a
/// discriminated union in binding.d.ts).
#[napi(discriminant = "type", discriminant_case = "lowercase")]
pub enum NativeClientEvent {
    /// A slave was listed.
    SlaveAdded {
        /// The slave's lifetime id.
        uid: i64,
        /// Its id on the current master connection.
        id: u32,
        /// Its userData, as JSON text.
        user_data: String,
    },
    /// A slave from before a reconnection was listed again, under a new id.
    SlaveRelisted { uid: i64, id: u32, user_data: String },
    /// A slave from before a reconnection was listed again, under its id
    /// (not shown to the application: nothing changed for it).
    SlaveKept { uid: i64, id: u32 },
    /// A slave's userData changed.
    SlaveUpdated { uid: i64, id: u32, user_data: String },
    /// A slave left the list.
    SlaveRemoved { uid: i64, id: u32, user_data: String },
    /// The connection to the master was lost (it reconnects by itself).
    Disconnected { code: u32, reason: String },
    /// The connection to a master is back: the one it had or the next of the list.
    Reconnected {
        /// The master connected to now, as given.
        url: String,
    },
    /// The MasterConnection is closed for good.
    Closed,
    /// A channel closed.
    ChannelClose { channel: i64 },
    /// A channel's buffered amount fell to its threshold.
    BufferedAmountLow { channel: i64 },
}

/// How a channel delivers, as `createDataChannel` was asked.
#[napi(object)]
pub struct NativeChannelOptions {
    /// Messages arrive in order.
    pub ordered: bool,
    /// Retransmission limit (unreliable).
    pub max_retransmits: Option<u32>,
    /// Lifetime limit in ms (unreliable).
    pub max_packet_life_time: Option<u32>,
    /// Subprotocol name.
    pub protocol: String,
}

/// An open channel, as `createDataChannel` resolves (or why it did not).
#[napi(object)]
pub struct NativeOpenedChannel {
    /// The channel's handle for `send` and the other calls.
    pub channel: Option<i64>,
    /// Why it did not open.
    pub failure: Option<NativeFailure>,
}

/// Delivers events to JS (nothing once closed; refused only while Node is
/// shutting down, when there is nothing to deliver to).
struct Sink(Deliverer<NativeClientEvent>);

impl Sink {
    fn deliver(&self, delivery: Delivery<NativeClientEvent>) {
        self.0.deliver(delivery);
    }

    fn emit(&self, event: NativeClientEvent) {
        self.0.emit(event);
    }

    fn shut(&self) {
        self.0.shut();
    }
}

/// A slave event's fields.
fn slave_fields(info: SlaveInfo) -> (i64, u32, String) {
    (info.uid as i64, info.id, info.user_data)
}

/// The `code` a client error gets in JS (the browser bundle's for the two it has).
fn client_error(e: &ClientError) -> NativeFailure {
    let code = match e {
        ClientError::Dial(DialError::BadUrl { .. }) => "ERR_INVALID_URL",
        ClientError::Dial(DialError::Refused { .. }) => "ERR_ENSLAVISM_REFUSED",
        ClientError::Dial(DialError::Tls { .. }) => codes::TLS,
        ClientError::Dial(_) => "ERR_ENSLAVISM_UNREACHABLE",
        ClientError::Certificate(_) => codes::CERTIFICATE,
        ClientError::Config(ConfigError::OutOfRange { .. }) => codes::OUT_OF_RANGE,
        ClientError::Config(_) => codes::INVALID_ARG,
        ClientError::Rejected { .. } => "REJECTED",
        ClientError::MasterUnavailable => "MASTER_UNAVAILABLE",
        ClientError::UnknownSlave(_) => "ERR_ENSLAVISM_UNKNOWN_SLAVE",
        ClientError::Timeout { .. } => "ERR_ENSLAVISM_TIMEOUT",
        ClientError::Closed => codes::CLOSED,
        ClientError::ConnectionClosed { .. } | ClientError::ChannelClosed => "ERR_ENSLAVISM_CONNECTION_CLOSED",
        _ => codes::INTERNAL,
    };
    NativeFailure { code: code.into(), message: e.to_string() }
}

/// The options as the engine's builder takes them; `check` is the
/// engine's own validation, run now so that bad options throw at once.
fn builder_from(
    urls: Vec<String>,
    options: NativeClientOptions,
    cookies: Vec<String>,
) -> napi::Result<MasterConnectionBuilder, String> {
    let mut urls = urls.into_iter();
    let first = urls.next().ok_or_else(|| js_error(codes::INVALID_ARG, "name at least one master URL"))?;
    let mut builder = MasterConnection::builder(first)
        .ice_servers(ice_servers(options.ice_servers))
        .ca(trusted_cas(options.ca.as_deref(), options.extra_ca_certs.as_ref())?);
    for url in urls {
        builder = builder.fallback_url(url);
    }
    if let Some(on) = options.reconnect {
        builder = builder.reconnect(on);
    }
    builder = set_each(
        builder,
        &[
            (options.reconnect_max_delay, MasterConnectionBuilder::reconnect_max_delay),
            (options.resync_grace, MasterConnectionBuilder::resync_grace),
            (options.connect_timeout, MasterConnectionBuilder::connect_timeout),
            (options.signalling_timeout, MasterConnectionBuilder::signalling_timeout),
        ],
        millis,
    );
    if let Some(list) = &options.ice_addresses {
        builder = builder.ice_addresses(ip_list(list, "iceAddresses")?);
    }
    for pair in cookies.chunks_exact(2) {
        builder = builder.cookie(pair[0].clone(), pair[1].clone());
    }
    builder.check().map_err(config_error)?;
    Ok(builder)
}

/// The engine's client. `create` makes it, `connect` connects it.
#[napi]
pub struct NativeMasterConnection {
    builder: Mutex<Option<MasterConnectionBuilder>>,
    sink: Arc<Sink>,
    connection: Mutex<Option<Arc<MasterConnection>>>,
    channels: Arc<Mutex<HashMap<u64, QueuedSender>>>,
    /// The slaves channels were opened to, by uid: a `SlaveConnection`
    /// dropped closes its peer connection, so they are kept until removed.
    slaves: Arc<Mutex<HashMap<u64, SlaveConnection>>>,
    /// Channels opened and not started yet (see `start_channel`).
    unread: Mutex<HashMap<u64, ChannelReceiver>>,
    next_channel: AtomicU64,
    /// `close` was called (perhaps while `connect` was still under way).
    closed: AtomicBool,
}

#[napi]
impl NativeMasterConnection {
    /// Validates the options and prepares event delivery: `onEvents(batch)`
    /// as for `NativeSlave.create`. `urls` are the masters, in order of
    /// preference; `cookies` is `[name, value, …]`.
    #[napi(factory)]
    pub fn create(
        urls: Vec<String>,
        options: Option<NativeClientOptions>,
        cookies: Vec<String>,
        on_events: Function<'_, BatchArgs<NativeClientEvent>, ()>,
    ) -> napi::Result<Self, String> {
        crate::guarded(|| {
            init_logging();
            let builder = builder_from(urls, options.unwrap_or_default(), cookies)?;
            let events = Deliverer::new(on_events).map_err(|e| js_error(codes::INTERNAL, e.reason))?;
            Ok(NativeMasterConnection {
                builder: Mutex::new(Some(builder)),
                sink: Arc::new(Sink(events)),
                connection: Mutex::new(None),
                channels: Arc::new(Mutex::new(HashMap::new())),
                slaves: Arc::new(Mutex::new(HashMap::new())),
                unread: Mutex::new(HashMap::new()),
                next_channel: AtomicU64::new(1),
                closed: AtomicBool::new(false),
            })
        })
    }

    /// Connects; resolves with null once the first list is in (its slaves
    /// come as `slaveadded` events), or with the failure.
    #[napi]
    pub async fn connect(&self) -> Option<NativeFailure> {
        let Some(builder) = self.builder.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Some(NativeFailure { code: codes::CLOSED.into(), message: "connect() was already called".into() });
        };
        let connected = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(builder.connect())).await;
        match connected {
            Ok(Ok((connection, mut events))) => {
                // Under the lock `close` takes too: a close meanwhile is never missed.
                let stored = {
                    let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
                    let open = !self.closed.load(Ordering::Relaxed);
                    if open {
                        *slot = Some(Arc::new(connection));
                        None
                    } else {
                        Some(connection)
                    }
                };
                if let Some(connection) = stored {
                    connection.close().await;
                    return Some(NativeFailure { code: codes::CLOSED.into(), message: "closed while connecting".into() });
                }
                let (sink, slaves) = (self.sink.clone(), self.slaves.clone());
                tokio::spawn(async move {
                    while let Some(e) = events.next().await {
                        let out = match e {
                            MasterEvent::SlaveAdded(info) => {
                                let (uid, id, user_data) = slave_fields(info);
                                NativeClientEvent::SlaveAdded { uid, id, user_data }
                            }
                            MasterEvent::SlaveRelisted(info) => {
                                let (uid, id, user_data) = slave_fields(info);
                                NativeClientEvent::SlaveRelisted { uid, id, user_data }
                            }
                            MasterEvent::SlaveKept(info) => {
                                let (uid, id, _) = slave_fields(info);
                                NativeClientEvent::SlaveKept { uid, id }
                            }
                            MasterEvent::SlaveUpdated(info) => {
                                let (uid, id, user_data) = slave_fields(info);
                                NativeClientEvent::SlaveUpdated { uid, id, user_data }
                            }
                            MasterEvent::SlaveRemoved(info) => {
                                slaves.lock().unwrap_or_else(|p| p.into_inner()).remove(&info.uid);
                                let (uid, id, user_data) = slave_fields(info);
                                NativeClientEvent::SlaveRemoved { uid, id, user_data }
                            }
                            MasterEvent::Disconnected { code, reason } => {
                                NativeClientEvent::Disconnected { code: u32::from(code), reason }
                            }
                            MasterEvent::Reconnected { url, .. } => NativeClientEvent::Reconnected { url },
                            // Dropped by the engine already; JS has nothing to do with it.
                            _ => continue,
                        };
                        sink.emit(out);
                    }
                    sink.emit(NativeClientEvent::Closed);
                });
                None
            }
            Ok(Err(e)) => {
                self.sink.shut();
                Some(client_error(&e))
            }
            Err(panic) => {
                self.sink.shut();
                let err = crate::panic_error(&*panic);
                Some(NativeFailure { code: err.status, message: err.reason })
            }
        }
    }

    /// The master connected to (or last, while reconnecting); null before `connect` resolves.
    #[napi]
    pub fn master_url(&self) -> Option<String> {
        self.connection().ok().map(|c| c.master_url())
    }

    fn connection(&self) -> Result<Arc<MasterConnection>, NativeFailure> {
        self.connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| NativeFailure { code: codes::CLOSED.into(), message: "the master connection is not connected".into() })
    }

    /// The connection to the slave `uid` (listed under `id` now), kept for
    /// the next calls.
    fn slave(&self, uid: i64, id: u32) -> Result<SlaveConnection, ClientError> {
        let mut slaves = self.slaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slave) = slaves.get(&(uid as u64)) {
            return Ok(slave.clone());
        }
        let connection = self.connection().map_err(|_| ClientError::Closed)?;
        let slave = connection.slave(id)?;
        slaves.insert(uid as u64, slave.clone());
        Ok(slave)
    }

    /// Opens a data channel to the slave `uid` (listed under `id`); resolves
    /// with its handle once open, or with the failure.
    #[napi]
    pub async fn create_data_channel(
        &self,
        uid: i64,
        id: u32,
        label: String,
        options: NativeChannelOptions,
    ) -> NativeOpenedChannel {
        let NativeChannelOptions { ordered, max_retransmits, max_packet_life_time, protocol } = options;
        let failed = |failure| NativeOpenedChannel { channel: None, failure: Some(failure) };
        let slave = match self.slave(uid, id) {
            Ok(slave) => slave,
            Err(e) => return failed(client_error(&e)),
        };
        let mut options = ChannelOptions::reliable().ordered(ordered).protocol(protocol);
        if let Some(n) = max_retransmits {
            options = options.max_retransmits(n.min(u32::from(u16::MAX)) as u16);
        }
        if let Some(ms) = max_packet_life_time {
            options = options.max_packet_life_time(ms.min(u32::from(u16::MAX)) as u16);
        }
        let opened = slave.create_data_channel(&label, options);
        let dc = match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(opened)).await {
            Ok(Ok(dc)) => dc,
            Ok(Err(e)) => return failed(client_error(&e)),
            Err(panic) => {
                let err = crate::panic_error(&*panic);
                return failed(NativeFailure { code: err.status, message: err.reason });
            }
        };
        let channel = self.next_channel.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = dc.split();
        let low_sink = self.sink.clone();
        let queued = sender.queued(move || low_sink.emit(NativeClientEvent::BufferedAmountLow { channel: channel as i64 }));
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).insert(channel, queued);
        self.unread.lock().unwrap_or_else(|p| p.into_inner()).insert(channel, receiver);
        NativeOpenedChannel { channel: Some(channel as i64), failure: None }
    }

    /// Starts delivering a channel's messages (and its close): called by the
    /// wrapper once it can take them, so that none arrive before the JS
    /// DataChannel exists (the slave may send as soon as its end is open).
    #[napi]
    pub fn start_channel(&self, channel: i64) {
        let channel = channel as u64;
        let Some(mut receiver) = self.unread.lock().unwrap_or_else(|p| p.into_inner()).remove(&channel) else { return };
        let (sink, channels) = (self.sink.clone(), self.channels.clone());
        // On the JS thread: no tokio context here, napi-rs' runtime takes it.
        napi::bindgen_prelude::spawn(async move {
            while let Some(message) = receiver.recv().await {
                sink.deliver(Delivery::Message { channel, data: message.data, is_text: message.is_text });
            }
            channels.lock().unwrap_or_else(|p| p.into_inner()).remove(&channel);
            sink.emit(NativeClientEvent::ChannelClose { channel: channel as i64 });
        });
    }

    fn channel(&self, channel: i64) -> Option<QueuedSender> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).get(&(channel as u64)).cloned()
    }

    /// Queues what one JS turn sent (see `outbox::read_batch`); messages on
    /// channels no longer open are dropped (their close is on its way).
    #[napi]
    pub fn send_batch(&self, bytes: &[u8], meta: &[f64]) -> napi::Result<(), String> {
        crate::guarded(|| {
            let messages = read_batch(bytes, meta)?;
            let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            for (channel, data, is_text) in messages {
                if let Some(sender) = channels.get(&channel) {
                    let _ = sender.send(data, is_text);
                }
            }
            Ok(())
        })
    }

    /// Bytes sent on a channel that the slave has not acknowledged yet
    /// (queued, or in SCTP).
    #[napi]
    pub fn buffered_amount(&self, channel: i64) -> u32 {
        self.channel(channel).map_or(0, |s| u32::try_from(s.buffered_amount()).unwrap_or(u32::MAX))
    }

    /// Sets a channel's `bufferedamountlow` threshold.
    #[napi]
    pub fn set_buffered_amount_low_threshold(&self, channel: i64, threshold: u32) {
        if let Some(sender) = self.channel(channel) {
            sender.set_low_threshold(threshold as usize);
        }
    }

    /// Closes one channel once what was queued on it is handed to SCTP.
    #[napi]
    pub fn close_channel(&self, channel: i64) {
        if let Some(sender) = self.channel(channel) {
            sender.close();
        }
    }

    /// Closes the peer connection to the slave `uid`, and its channels.
    #[napi]
    pub fn close_slave(&self, uid: i64) {
        if let Some(slave) = self.slaves.lock().unwrap_or_else(|p| p.into_inner()).get(&(uid as u64)) {
            slave.close();
        }
    }

    /// Closes the master connection and every connection to a slave; resolves
    /// once done. No event is delivered after this (the wrapper closes its
    /// channels itself).
    #[napi]
    pub async fn close(&self) {
        let connection = {
            let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
            self.closed.store(true, Ordering::Relaxed);
            slot.take()
        };
        if let Some(connection) = connection {
            let closing = std::panic::AssertUnwindSafe(connection.close());
            let _ = tokio::time::timeout(Duration::from_secs(6), futures_util::FutureExt::catch_unwind(closing)).await;
        }
        self.builder.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.slaves.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.unread.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // Lets Node exit: nothing is delivered from now on.
        self.sink.shut();
    }
}
