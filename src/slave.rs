//! `NativeSlave`: the engine's slave, as the JS wrapper sees it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use enslavism::dial::DialError;
use enslavism::slave::{
    ChannelId, ChannelStats, ConnectionStats, OfferDecision, Slave, SlaveConfig, SlaveConfigBuilder, SlaveError, SlaveEvent,
    SlaveHooks,
};
use napi::bindgen_prelude::{Buffer, Function};
use napi_derive::napi;
use tokio::sync::oneshot;

use crate::convert::{config_error, ice_servers, ip_list, millis, narrow, set_each, size, trusted_cas, NativeIceServer};
use crate::delivery::{BatchArgs, Deliverer, Delivery};
use crate::outbox::read_batch;
use crate::{codes, init_logging, js_error};

/// Options of a slave, as passed from JS (all optional).
#[napi(object)]
#[derive(Default)]
pub struct NativeSlaveOptions {
    /// Local IP addresses ICE binds (default `0.0.0.0`: every non-loopback IPv4 interface).
    pub ice_addresses: Option<Vec<String>>,
    /// Addresses announced in place of the bound ones of the same family (NAT 1:1).
    pub public_addresses: Option<Vec<String>>,
    /// The one UDP port of every peer connection.
    pub udp_port: Option<i64>,
    /// `[min, max]` UDP ports for the shards (one port each).
    pub port_range: Option<Vec<i64>>,
    /// STUN/TURN servers.
    pub ice_servers: Option<Vec<NativeIceServer>>,
    /// Milliseconds to wait for the master's handshake.
    pub connect_timeout: Option<i64>,
    /// Milliseconds the `offer` decision may take.
    pub offer_timeout: Option<i64>,
    /// Largest message a data channel carries (bytes).
    pub max_message_size: Option<i64>,
    /// Milliseconds of ICE silence before a peer counts as disconnected.
    pub ice_disconnected_timeout: Option<i64>,
    /// Milliseconds before a disconnected peer is released.
    pub ice_failed_timeout: Option<i64>,
    /// Milliseconds a peer has to open its first data channel.
    pub peer_setup_timeout: Option<i64>,
    /// No effect since 0.10 (see `SlaveConfigBuilder::ice_nudge`); still
    /// accepted, and type-checked, for code written for 0.9.x and 0.10's betas.
    pub ice_nudge: Option<bool>,
    /// Reconnect to the master when the link drops (default true).
    pub reconnect: Option<bool>,
    /// Longest wait (ms) between two reconnection attempts.
    pub reconnect_max_delay: Option<i64>,
    /// Milliseconds between pings to a quiet master.
    pub heartbeat_interval: Option<i64>,
    /// Milliseconds of master silence after which the link is dropped and reconnected.
    pub heartbeat_timeout: Option<i64>,
    /// CA certificates (PEM) trusted for a `wss://` master beyond the Mozilla roots.
    pub ca: Option<Vec<Buffer>>,
    /// The contents of the file named by `NODE_EXTRA_CA_CERTS`, trusted the same way.
    pub extra_ca_certs: Option<Buffer>,
    /// TCP port of the metrics listener (`GET /metrics`; 0: a free port).
    pub metrics_port: Option<i64>,
    /// Address the metrics listener binds (default every IPv4 interface).
    pub metrics_host: Option<String>,
    /// Per-connection series in the metrics (default false).
    pub metrics_per_connection: Option<bool>,
}

/// Messages and bytes each way (`slave.stats()`, `dc.stats()`).
#[napi(object)]
pub struct NativeTraffic {
    /// Messages received.
    pub messages_in: f64,
    /// Messages handed to SCTP.
    pub messages_out: f64,
    /// Payload bytes received.
    pub bytes_in: f64,
    /// Payload bytes handed to SCTP.
    pub bytes_out: f64,
}

/// Setup-time percentiles in milliseconds (null before the first setup).
#[napi(object)]
pub struct NativeSetupMs {
    /// Connections set up so far.
    pub count: f64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// `slave.stats()`.
#[napi(object)]
pub struct NativeSlaveStats {
    /// Peer connections held now.
    pub connections: u32,
    /// Data channels open now.
    pub channels: u32,
    /// Messages received since the start.
    pub messages_in: f64,
    /// Messages sent since the start.
    pub messages_out: f64,
    /// Payload bytes received.
    pub bytes_in: f64,
    /// Payload bytes sent.
    pub bytes_out: f64,
    /// Setup times.
    pub setup_ms: NativeSetupMs,
}

/// The selected candidate pair, as `ip:port` strings.
#[napi(object)]
pub struct NativeCandidatePair {
    /// Our end.
    pub local: String,
    /// The client's end.
    pub remote: String,
}

/// `clientCo.getStats()`.
#[napi(object)]
pub struct NativeConnectionStats {
    /// Latest ICE check round trip (ms).
    pub rtt_ms: Option<f64>,
    /// Messages received.
    pub messages_in: f64,
    /// Messages sent.
    pub messages_out: f64,
    /// Payload bytes received.
    pub bytes_in: f64,
    /// Payload bytes sent.
    pub bytes_out: f64,
    /// UDP datagrams received.
    pub packets_in: f64,
    /// UDP datagrams sent.
    pub packets_out: f64,
    /// Bytes of the datagrams received.
    pub transport_bytes_in: f64,
    /// Bytes of the datagrams sent.
    pub transport_bytes_out: f64,
    /// Not counted by the engine: null.
    pub packets_lost: Option<f64>,
    /// Not counted by the engine: null.
    pub retransmissions: Option<f64>,
    /// The pair ICE selected (null before).
    pub selected_candidate_pair: Option<NativeCandidatePair>,
}

/// The figures of `connectionStats`, or why there are none.
#[napi(object)]
pub struct NativeConnectionStatsOutcome {
    /// The figures.
    pub stats: Option<NativeConnectionStats>,
    /// The failure.
    pub failure: Option<NativeFailure>,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn traffic(t: ChannelStats) -> NativeTraffic {
    NativeTraffic {
        messages_in: t.messages_in as f64,
        messages_out: t.messages_out as f64,
        bytes_in: t.bytes_in as f64,
        bytes_out: t.bytes_out as f64,
    }
}

fn connection_stats(s: ConnectionStats) -> NativeConnectionStats {
    NativeConnectionStats {
        rtt_ms: s.rtt.map(ms),
        messages_in: s.messages_in as f64,
        messages_out: s.messages_out as f64,
        bytes_in: s.bytes_in as f64,
        bytes_out: s.bytes_out as f64,
        packets_in: s.packets_in as f64,
        packets_out: s.packets_out as f64,
        transport_bytes_in: s.transport_bytes_in as f64,
        transport_bytes_out: s.transport_bytes_out as f64,
        packets_lost: s.packets_lost.map(|n| n as f64),
        retransmissions: s.retransmissions.map(|n| n as f64),
        selected_candidate_pair: s
            .selected_candidate_pair
            .map(|p| NativeCandidatePair { local: p.local.to_string(), remote: p.remote.to_string() }),
    }
}

/// One event delivered to the JS wrapper; `type` says which (a
/// discriminated union in binding.d.ts). Messages, the hot path, are not
/// events: they cross as (channel, data) pairs of the batch.
#[napi(discriminant = "type", discriminant_case = "lowercase")]
pub enum NativeSlaveEvent {
    /// A client offers a connection: answer with `resolveOffer(ticket, …)`.
    Offer { client_id: u32, ticket: u32 },
    /// A client is connected (`session`: this connection; a reconnecting client gets a new one).
    Connection { client_id: u32, session: i64 },
    /// A client opened a data channel, with these settings.
    DataChannel {
        client_id: u32,
        session: i64,
        /// The channel's handle.
        channel: i64,
        /// Negotiated out of band.
        negotiated: bool,
        label: String,
        protocol: String,
        ordered: bool,
        max_retransmits: Option<u32>,
        /// In ms.
        max_packet_life_time: Option<u32>,
        /// The channel's number.
        id: u32,
    },
    /// A channel's buffered amount fell to its threshold.
    BufferedAmountLow { channel: i64 },
    /// A channel failed.
    Error { channel: i64, reason: String },
    /// A channel closed.
    /// A channel closed, with its figures at the close.
    ChannelClose { channel: i64, stats: NativeTraffic },
    /// A client's connection is gone.
    ConnectionClose { client_id: u32, session: i64 },
    /// The link to a master is back: the one it had or the next of the list.
    MasterReconnect {
        /// The master registered with now, as given.
        url: String,
    },
    /// A bug in the engine was caught.
    InternalError { reason: String },
    /// The link to the master closed.
    MasterClose { code: u32, reason: String },
}

/// Why an asynchronous call failed.
#[napi(object)]
pub struct NativeFailure {
    /// The error's `code`.
    pub code: String,
    /// The error's message.
    pub message: String,
}

struct JsSlaveHooks {
    events: Deliverer<NativeSlaveEvent>,
    offers_observed: AtomicBool,
    tickets: Mutex<HashMap<u32, oneshot::Sender<bool>>>,
    next_ticket: AtomicU32,
}

impl JsSlaveHooks {
    fn emit(&self, event: NativeSlaveEvent) -> bool {
        self.events.emit(event)
    }

    fn shut(&self) {
        self.events.shut();
        self.tickets.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl SlaveHooks for JsSlaveHooks {
    fn on_offer(&self, client_id: u32) -> OfferDecision {
        if !self.offers_observed.load(Ordering::Relaxed) {
            return Box::pin(std::future::ready(true));
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.tickets.lock().unwrap_or_else(|p| p.into_inner()).insert(ticket, tx);
        if !self.emit(NativeSlaveEvent::Offer { client_id, ticket }) {
            self.tickets.lock().unwrap_or_else(|p| p.into_inner()).remove(&ticket);
            return Box::pin(std::future::ready(false));
        }
        Box::pin(async move { rx.await.unwrap_or(false) })
    }

    fn begin_batch(&self) {
        self.events.hold();
    }

    fn end_batch(&self) {
        self.events.release();
    }

    fn on_event(&self, e: SlaveEvent) {
        let out = match e {
            SlaveEvent::Connection { client_id, session } => NativeSlaveEvent::Connection { client_id, session: session as i64 },
            SlaveEvent::DataChannel { client_id, session, channel, info } => NativeSlaveEvent::DataChannel {
                client_id,
                session: session as i64,
                channel: channel as i64,
                negotiated: info.negotiated,
                label: info.label,
                protocol: info.protocol,
                ordered: info.ordered,
                max_retransmits: info.max_retransmits.map(u32::from),
                max_packet_life_time: info.max_packet_life_time.map(u32::from),
                id: u32::from(info.id),
            },
            SlaveEvent::Message { channel, data, is_text } => {
                self.events.deliver(Delivery::Message { channel, data, is_text });
                return;
            }
            SlaveEvent::BufferedAmountLow { channel } => NativeSlaveEvent::BufferedAmountLow { channel: channel as i64 },
            SlaveEvent::ChannelError { channel, message } => NativeSlaveEvent::Error { channel: channel as i64, reason: message },
            SlaveEvent::ChannelClose { channel, stats } => {
                NativeSlaveEvent::ChannelClose { channel: channel as i64, stats: traffic(stats) }
            }
            SlaveEvent::ConnectionClose { client_id, session } => {
                NativeSlaveEvent::ConnectionClose { client_id, session: session as i64 }
            }
            SlaveEvent::MasterReconnect { url, .. } => NativeSlaveEvent::MasterReconnect { url },
            SlaveEvent::InternalError { message } => NativeSlaveEvent::InternalError { reason: message },
            SlaveEvent::MasterClose { code, reason } => NativeSlaveEvent::MasterClose { code: u32::from(code), reason },
            // Events added to the engine later are not shown to JS until the binding knows them.
            _ => return,
        };
        self.emit(out);
    }
}

fn slave_error(e: SlaveError) -> napi::Error<String> {
    let code = match &e {
        SlaveError::Dial(DialError::BadUrl { .. }) => "ERR_INVALID_URL",
        SlaveError::Dial(DialError::Refused { .. }) => "ERR_ENSLAVISM_REFUSED",
        SlaveError::Dial(DialError::Tls { .. }) => codes::TLS,
        SlaveError::Dial(_) => "ERR_ENSLAVISM_UNREACHABLE",
        SlaveError::UserData(_) => codes::INVALID_ARG,
        SlaveError::UserDataRefused(_) => "ERR_ENSLAVISM_USERDATA_REFUSED",
        SlaveError::NoMaster => "ERR_ENSLAVISM_NO_MASTER",
        SlaveError::NoRuntime => codes::INTERNAL,
        SlaveError::Closed => codes::CLOSED,
        SlaveError::ChannelNotOpen(_) => "ERR_ENSLAVISM_CHANNEL_CLOSED",
        SlaveError::Certificate(_) => codes::CERTIFICATE,
        SlaveError::ConnectionClosed(_) => codes::CLOSED,
        SlaveError::Bind(source) | SlaveError::MetricsBind(source) => match source.kind() {
            std::io::ErrorKind::AddrInUse => "EADDRINUSE",
            std::io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
            std::io::ErrorKind::PermissionDenied => "EACCES",
            _ => "ERR_ENSLAVISM_BIND",
        },
    };
    js_error(code, e.to_string())
}

/// The options as the engine's builder takes them; it checks the values.
fn config_from(options: NativeSlaveOptions) -> napi::Result<SlaveConfig, String> {
    let mut b = SlaveConfig::builder()
        .ca(trusted_cas(options.ca.as_deref(), options.extra_ca_certs.as_ref())?)
        .ice_servers(ice_servers(options.ice_servers))
        .public_addresses(ip_list(options.public_addresses.as_deref().unwrap_or_default(), "publicAddresses")?);
    if let Some(list) = &options.ice_addresses {
        b = b.ice_addresses(ip_list(list, "iceAddresses")?);
    }
    if let Some(port) = options.udp_port {
        b = b.udp_port(narrow("udp_port", port).map_err(config_error)?);
    }
    if let Some(range) = options.port_range.as_deref() {
        let [first, last] = range else {
            return Err(js_error(codes::INVALID_ARG, "options.portRange must be [first, last]"));
        };
        let port = |n| narrow("port_range", n).map_err(config_error);
        b = b.port_range(port(*first)?, port(*last)?);
    }
    b = set_each(
        b,
        &[
            (options.connect_timeout, SlaveConfigBuilder::connect_timeout),
            (options.offer_timeout, SlaveConfigBuilder::offer_timeout),
            (options.ice_disconnected_timeout, SlaveConfigBuilder::ice_disconnected_timeout),
            (options.ice_failed_timeout, SlaveConfigBuilder::ice_failed_timeout),
            (options.peer_setup_timeout, SlaveConfigBuilder::peer_setup_timeout),
            (options.reconnect_max_delay, SlaveConfigBuilder::reconnect_max_delay),
            (options.heartbeat_interval, SlaveConfigBuilder::heartbeat_interval),
            (options.heartbeat_timeout, SlaveConfigBuilder::heartbeat_timeout),
        ],
        millis,
    );
    b = set_each(b, &[(options.max_message_size, SlaveConfigBuilder::max_message_size)], size);
    if let Some(on) = options.reconnect {
        b = b.reconnect(on);
    }
    if let Some(port) = options.metrics_port {
        b = b.metrics_port(narrow("metrics_port", port).map_err(config_error)?);
    }
    if let Some(host) = &options.metrics_host {
        b = b.metrics_host(ip_list(std::slice::from_ref(host), "metricsHost")?[0]);
    }
    if let Some(on) = options.metrics_per_connection {
        b = b.metrics_per_connection(on);
    }
    b.build().map_err(config_error)
}

/// The engine's slave. `create` makes it, `connect` registers it.
#[napi]
pub struct NativeSlave {
    config: Mutex<Option<SlaveConfig>>,
    hooks: Arc<JsSlaveHooks>,
    slave: Mutex<Option<Arc<Slave>>>,
}

#[napi]
impl NativeSlave {
    /// Validates the options and prepares event delivery: `onEvents(batch)`
    /// with, in order, each event object, and for each message its channel
    /// id followed by its data (an `ArrayBuffer`, or a string for a text message).
    #[napi(factory)]
    pub fn create(
        options: Option<NativeSlaveOptions>,
        on_events: Function<'_, BatchArgs<NativeSlaveEvent>, ()>,
    ) -> napi::Result<Self, String> {
        crate::guarded(|| {
            init_logging();
            let config = config_from(options.unwrap_or_default())?;
            let events = Deliverer::new(on_events).map_err(|e| js_error(codes::INTERNAL, e.reason))?;
            Ok(NativeSlave {
                config: Mutex::new(Some(config)),
                hooks: Arc::new(JsSlaveHooks {
                    events,
                    offers_observed: AtomicBool::new(false),
                    tickets: Mutex::new(HashMap::new()),
                    next_ticket: AtomicU32::new(0),
                }),
                slave: Mutex::new(None),
            })
        })
    }

    /// Connects to the first master of `masterUrls` that answers (the others
    /// are failed over to) and registers `userData` (JSON text), with
    /// `auth` as `[name, value, …]` cookie pairs. Resolves with null once
    /// registered, or with the failure (async N-API errors cannot carry a
    /// code, so the wrapper makes the Error).
    #[napi]
    pub async fn connect(&self, master_urls: Vec<String>, user_data: String, auth: Vec<String>) -> Option<NativeFailure> {
        let attempt = std::panic::AssertUnwindSafe(self.connect_inner(master_urls, user_data, auth));
        futures_util::FutureExt::catch_unwind(attempt).await.unwrap_or_else(|panic| {
            let err = crate::panic_error(&*panic);
            Some(NativeFailure { code: err.status, message: err.reason })
        })
    }

    async fn connect_inner(&self, master_urls: Vec<String>, user_data: String, auth: Vec<String>) -> Option<NativeFailure> {
        let Some(config) = self.config.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Some(NativeFailure { code: codes::CLOSED.into(), message: "connect() was already called".into() });
        };
        let mut urls = master_urls.into_iter();
        let Some(first) = urls.next() else {
            return Some(NativeFailure { code: codes::INVALID_ARG.into(), message: "name at least one master URL".into() });
        };
        let mut builder = Slave::builder(first).user_data(user_data).config(config).hooks(self.hooks.clone());
        for url in urls {
            builder = builder.fallback_url(url);
        }
        for pair in auth.chunks_exact(2) {
            builder = builder.cookie(pair[0].clone(), pair[1].clone());
        }
        match builder.connect().await {
            Ok(slave) => {
                *self.slave.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(slave));
                None
            }
            Err(e) => {
                self.hooks.shut();
                let err = slave_error(e);
                Some(NativeFailure { code: err.status, message: err.reason })
            }
        }
    }

    fn slave(&self) -> napi::Result<Arc<Slave>, String> {
        self.slave
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| js_error(codes::CLOSED, "the slave is not connected"))
    }

    /// Replaces the userData (JSON text); resolves with null once the master
    /// has it, or with the failure (a refusal, a closed slave).
    #[napi]
    pub async fn set_user_data(&self, user_data: String) -> Option<NativeFailure> {
        let slave = match self.slave() {
            Ok(slave) => slave,
            Err(err) => return Some(NativeFailure { code: err.status, message: err.reason }),
        };
        let attempt = std::panic::AssertUnwindSafe(slave.set_user_data(user_data));
        match futures_util::FutureExt::catch_unwind(attempt).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                let err = slave_error(e);
                Some(NativeFailure { code: err.status, message: err.reason })
            }
            Err(panic) => {
                let err = crate::panic_error(&*panic);
                Some(NativeFailure { code: err.status, message: err.reason })
            }
        }
    }

    /// The master registered with (or last, while reconnecting); null before `connect` resolves.
    #[napi]
    pub fn master_url(&self) -> Option<String> {
        self.slave().ok().map(|s| s.master_url())
    }

    /// The UDP ports the slave's peer connections use (empty before `connect` resolves).
    #[napi]
    pub fn udp_ports(&self) -> Vec<u32> {
        self.slave().map_or_else(|_| Vec::new(), |s| s.udp_ports().into_iter().map(u32::from).collect())
    }

    /// The slave's counters and gauges (zeros before `connect` resolves).
    #[napi]
    pub fn stats(&self) -> napi::Result<NativeSlaveStats, String> {
        crate::guarded(|| {
            let s = self.slave().map(|s| s.stats()).unwrap_or_default();
            Ok(NativeSlaveStats {
                connections: u32::try_from(s.connections).unwrap_or(u32::MAX),
                channels: u32::try_from(s.channels).unwrap_or(u32::MAX),
                messages_in: s.messages_in as f64,
                messages_out: s.messages_out as f64,
                bytes_in: s.bytes_in as f64,
                bytes_out: s.bytes_out as f64,
                setup_ms: NativeSetupMs {
                    count: s.setup.count as f64,
                    p50: s.setup.p50.map(ms),
                    p95: s.setup.p95.map(ms),
                    p99: s.setup.p99.map(ms),
                },
            })
        })
    }

    /// One open channel's traffic (null once closed).
    #[napi]
    pub fn channel_stats(&self, channel: i64) -> napi::Result<Option<NativeTraffic>, String> {
        crate::guarded(|| Ok(self.slave().ok().and_then(|s| s.channel_stats(channel as ChannelId)).map(traffic)))
    }

    /// The metrics, OpenMetrics text (empty before `connect` resolves).
    #[napi]
    pub fn metrics(&self) -> napi::Result<String, String> {
        crate::guarded(|| Ok(self.slave().map(|s| s.metrics()).unwrap_or_default()))
    }

    /// The metrics listener's port (null without `metricsPort`, or before `connect` resolves).
    #[napi]
    pub fn metrics_port(&self) -> Option<u32> {
        self.slave().ok().and_then(|s| s.metrics_port()).map(u32::from)
    }

    /// One connection's figures, from the shard that owns it.
    #[napi]
    pub async fn connection_stats(&self, session: i64) -> NativeConnectionStatsOutcome {
        let failed = |err: napi::Error<String>| NativeConnectionStatsOutcome {
            stats: None,
            failure: Some(NativeFailure { code: err.status, message: err.reason }),
        };
        let slave = match self.slave() {
            Ok(slave) => slave,
            Err(err) => return failed(err),
        };
        let Some(connection) = slave.connection(session as u64) else {
            return failed(slave_error(SlaveError::ConnectionClosed(session as u64)));
        };
        let attempt = std::panic::AssertUnwindSafe(connection.stats());
        match futures_util::FutureExt::catch_unwind(attempt).await {
            Ok(Ok(stats)) => NativeConnectionStatsOutcome { stats: Some(connection_stats(stats)), failure: None },
            Ok(Err(e)) => failed(slave_error(e)),
            Err(panic) => failed(crate::panic_error(&*panic)),
        }
    }

    /// Tells whether JS listens to `offer` (if not, offers are accepted without asking).
    #[napi]
    pub fn set_offers_observed(&self, observed: bool) {
        self.hooks.offers_observed.store(observed, Ordering::Relaxed);
    }

    /// Answers an `offer` event: true accepts.
    #[napi]
    pub fn resolve_offer(&self, ticket: u32, accept: bool) -> napi::Result<bool, String> {
        crate::guarded(|| {
            let sender = self.hooks.tickets.lock().unwrap_or_else(|p| p.into_inner()).remove(&ticket);
            Ok(sender.is_some_and(|s| s.send(accept).is_ok()))
        })
    }

    /// Queues what one JS turn sent (see `outbox::read_batch`); messages on
    /// channels no longer open are dropped (their close is on its way).
    #[napi]
    pub fn send_batch(&self, bytes: &[u8], meta: &[f64]) -> napi::Result<(), String> {
        // Slices, not `Buffer`s: those would take and drop a JS reference each.
        crate::guarded(|| {
            let messages = read_batch(bytes, meta)?;
            self.slave()?.send_many(messages);
            Ok(())
        })
    }

    /// Bytes queued on a channel and not yet handed to SCTP.
    #[napi]
    pub fn buffered_amount(&self, channel: i64) -> napi::Result<u32, String> {
        crate::guarded(|| Ok(self.slave().map_or(0, |s| s.buffered_amount(channel as ChannelId) as u32)))
    }

    /// Sets a channel's `bufferedamountlow` threshold.
    #[napi]
    pub fn set_buffered_amount_low_threshold(&self, channel: i64, threshold: u32) -> napi::Result<(), String> {
        crate::guarded(|| {
            if let Ok(s) = self.slave() {
                s.set_buffered_amount_low_threshold(channel as ChannelId, threshold as usize);
            }
            Ok(())
        })
    }

    /// Closes one channel.
    #[napi]
    pub fn close_channel(&self, channel: i64) -> napi::Result<(), String> {
        crate::guarded(|| {
            if let Ok(s) = self.slave() {
                s.close_channel(channel as ChannelId);
            }
            Ok(())
        })
    }

    /// Closes every peer connection and the master link; resolves once done.
    #[napi]
    pub async fn close(&self) {
        let slave = self.slave.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(slave) = slave {
            // A panic while closing must not abort Node; the slave is gone either way.
            let _ = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(slave.close())).await;
        }
        self.hooks.shut();
    }
}
