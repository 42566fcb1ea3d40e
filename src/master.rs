//! `NativeMaster`: the engine's master, as the JS wrapper sees it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use enslavism::master::cluster::{ClusterConfig, ClusterConfigBuilder};
use enslavism::master::{
    AuthDecision, AuthRequest, Master, MasterConfig, MasterConfigBuilder, MasterError, MasterEvent, MasterHooks, MasterStats,
    MonitoringRequest, PeerKind, Rejection,
};
use enslavism::tls::TlsIdentity;
use http::{HeaderMap, HeaderName, HeaderValue};
use napi::bindgen_prelude::{within_runtime_if_available, Buffer, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use tokio::sync::oneshot;

use crate::convert::{config_error, millis, narrow, set_each, size};
use crate::{codes, init_logging, js_error};

/// Options of a master, as passed from JS (all optional).
#[napi(object)]
#[derive(Default)]
pub struct NativeMasterOptions {
    /// Address to listen on; default: every interface (`::`, or `0.0.0.0`
    /// where IPv6 is off).
    pub host: Option<String>,
    /// Largest WebSocket message a peer may send, in bytes.
    pub max_message_size: Option<i64>,
    /// Frames queued for one peer before it is disconnected as too slow.
    pub outbound_queue_length: Option<i64>,
    /// Milliseconds a connection has to send its HTTP request headers.
    pub handshake_timeout: Option<i64>,
    /// Milliseconds the auth listeners have to decide.
    pub auth_timeout: Option<i64>,
    /// Milliseconds between pings to a quiet peer.
    pub heartbeat_interval: Option<i64>,
    /// Milliseconds of silence after which a peer is dropped.
    pub heartbeat_timeout: Option<i64>,
    /// Most connections at once; more are answered 503.
    pub max_connections: Option<i64>,
    /// Largest userData (bytes of JSON) a slave may register.
    pub max_user_data_size: Option<i64>,
    /// Offers one client may send per second (0: no limit).
    pub max_offers_per_second: Option<i64>,
    /// ICE candidates one client may send per second (0: no limit).
    pub max_candidates_per_second: Option<i64>,
    /// userData updates a slave may make per second (0: no limit); more are merged and delayed.
    pub max_user_data_updates_per_second: Option<i64>,
    /// The certificate and key of the master's own HTTPS/WSS server.
    pub tls: Option<NativeTlsOptions>,
    /// Serve the metrics at `/enslavism/metrics`.
    pub metrics: Option<bool>,
    /// Serve the status page at `/enslavism/status`.
    pub status: Option<bool>,
    /// Whether JS decides who may read the metrics and status page on the
    /// master's own port (`monitoringauth` events); without, anyone may.
    pub monitoring_auth: Option<bool>,
    /// Share the lobby with the other masters of a cluster, through Redis.
    pub cluster: Option<NativeClusterOptions>,
}

/// The `cluster` option of a master.
#[napi(object)]
pub struct NativeClusterOptions {
    /// The Redis server's URL (`redis://host:port[/db]`).
    pub redis: String,
    /// The cluster's name: masters with the same Redis and name share a lobby.
    pub name: Option<String>,
    /// Milliseconds a slave stays listed after its master last refreshed it.
    pub slave_ttl: Option<i64>,
    /// Milliseconds a relayed offer waits for its answer.
    pub relay_timeout: Option<i64>,
    /// Milliseconds connecting to Redis and each command may take.
    pub redis_timeout: Option<i64>,
}

fn cluster_config(options: &NativeClusterOptions) -> napi::Result<ClusterConfig, String> {
    let mut b = ClusterConfig::builder(options.redis.clone());
    if let Some(name) = &options.name {
        b = b.name(name.clone());
    }
    b = set_each(
        b,
        &[
            (options.slave_ttl, ClusterConfigBuilder::slave_ttl),
            (options.relay_timeout, ClusterConfigBuilder::relay_timeout),
            (options.redis_timeout, ClusterConfigBuilder::redis_timeout),
        ],
        millis,
    );
    b.build().map_err(config_error)
}

/// A certificate chain and its private key, in PEM.
#[napi(object)]
pub struct NativeTlsOptions {
    /// The certificate chain, leaf first (PEM).
    pub cert: Buffer,
    /// The private key (PEM).
    pub key: Buffer,
}

fn tls_identity(tls: &NativeTlsOptions) -> napi::Result<TlsIdentity, String> {
    TlsIdentity::from_pem(&tls.cert, &tls.key).map_err(|e| js_error(codes::CERTIFICATE, e.to_string()))
}

/// One event delivered to the JS wrapper; `type` says which (a
/// discriminated union in binding.d.ts). Peers' addresses come as
/// `remoteAddress`, `remotePort` and `remoteFamily` (`IPv4` or `IPv6`).
#[napi(discriminant = "type", discriminant_case = "lowercase")]
pub enum NativeMasterEvent {
    /// A handshake waits for the auth listeners: answer with `resolveAuth(ticket, …)`.
    Auth {
        /// `slave` or `client`.
        kind: String,
        /// The decision ticket.
        ticket: u32,
        /// The request's cookies.
        cookies: HashMap<String, String>,
        /// The request's headers, lower-case names, repeated ones joined with `, `.
        headers: HashMap<String, String>,
        remote_address: String,
        remote_port: u32,
        remote_family: String,
    },
    /// A request for the metrics or the status page waits for `metricsAuth`:
    /// answer with `resolveAuth(ticket, …)`.
    MonitoringAuth {
        ticket: u32,
        /// The path asked for.
        path: String,
        headers: HashMap<String, String>,
        remote_address: String,
        remote_port: u32,
        remote_family: String,
    },
    /// A peer finished its handshake.
    Connection { kind: String, id: u32, remote_address: String, remote_port: u32, remote_family: String },
    /// A peer's WebSocket closed.
    Close { kind: String, id: u32, code: u32, reason: String },
    /// A bug in the engine was caught: one peer was dropped.
    Error { reason: String },
    /// A slave registered (`userData` is JSON text).
    SlaveRegister { id: u32, user_data: String, remote_address: String, remote_port: u32, remote_family: String },
    /// A registered slave has new userData.
    SlaveUpdate { id: u32, user_data: String, remote_address: String, remote_port: u32, remote_family: String },
    /// A registered slave left every list.
    SlaveUnregister { id: u32, user_data: String, remote_address: String, remote_port: u32, remote_family: String },
    /// Connected to the cluster's Redis and in sync (`node`: this master's node number).
    ClusterConnect { node: u32 },
    /// The cluster's Redis was lost.
    ClusterDisconnect { reason: String },
    /// A slave of another master is listed here too.
    RemoteSlaveRegister { id: u32, node: u32, user_data: String },
    /// A slave of another master has new userData.
    RemoteSlaveUpdate { id: u32, node: u32, user_data: String },
    /// A slave of another master left this master's list.
    RemoteSlaveUnregister { id: u32, node: u32, user_data: String },
}

type EventCallback = ThreadsafeFunction<NativeMasterEvent, (), NativeMasterEvent, Status, false>;

/// The JS side of the engine's hooks: auth round trips and events.
struct JsHooks {
    events: Mutex<Option<Arc<EventCallback>>>,
    /// Whether JS listens to `slaveauth` / `clientauth`.
    auth_observed: [AtomicBool; 2],
    /// Whether JS listens to `slaveconnection` / `clientconnection`.
    connections_observed: [AtomicBool; 2],
    /// Peers JS has a socket object for: their close must reach JS even if
    /// nobody listens to new connections any more.
    announced: Mutex<HashSet<(usize, u32)>>,
    tickets: Mutex<HashMap<u32, oneshot::Sender<Result<(), Rejection>>>>,
    next_ticket: AtomicU32,
    /// Whether JS decides monitoring requests (`metricsAuth`).
    monitoring_auth: bool,
}

fn kind_index(kind: PeerKind) -> usize {
    match kind {
        PeerKind::Slave => 0,
        PeerKind::Client => 1,
    }
}

fn parse_kind(kind: &str) -> napi::Result<PeerKind, String> {
    match kind {
        "slave" => Ok(PeerKind::Slave),
        "client" => Ok(PeerKind::Client),
        other => Err(js_error(codes::INVALID_ARG, format!("peer kind must be 'slave' or 'client', not {other:?}"))),
    }
}

fn address_fields(addr: SocketAddr) -> (String, u32, String) {
    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
    (addr.ip().to_string(), u32::from(addr.port()), family.to_owned())
}

impl JsHooks {
    fn emit(&self, event: NativeMasterEvent) -> bool {
        let callback = self.events.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match callback {
            Some(cb) => cb.call(event, ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok,
            None => false,
        }
    }

    fn resolve(&self, ticket: u32, decision: Result<(), Rejection>) -> bool {
        let sender = self.tickets.lock().unwrap_or_else(|p| p.into_inner()).remove(&ticket);
        sender.map(|s| s.send(decision).is_ok()).unwrap_or(false)
    }

    /// Asks JS to decide: the event made with a ticket goes out, answered by `resolveAuth`.
    fn ask(&self, event: impl FnOnce(u32) -> NativeMasterEvent) -> AuthDecision {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.tickets.lock().unwrap_or_else(|p| p.into_inner()).insert(ticket, tx);
        if !self.emit(event(ticket)) {
            self.tickets.lock().unwrap_or_else(|p| p.into_inner()).remove(&ticket);
            return Box::pin(std::future::ready(Err(Rejection { reason: Some("master closing".into()) })));
        }
        Box::pin(async move {
            // A dropped ticket (master closed) refuses.
            rx.await.unwrap_or_else(|_| Err(Rejection { reason: Some("master closing".into()) }))
        })
    }

    /// Stops delivering events (lets the process exit) and refuses pending handshakes.
    fn shut(&self) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        let pending: Vec<_> = self.tickets.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for (_, sender) in pending {
            let _ = sender.send(Err(Rejection { reason: Some("master closing".into()) }));
        }
    }
}

/// Headers as Node's `req.headers` has them: lower-case names (the `http`
/// crate's already are), repeated headers joined with `, `, values that are
/// not UTF-8 decoded lossily.
fn headers_object(headers: &http::HeaderMap) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::with_capacity(headers.keys_len());
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

impl MasterHooks for JsHooks {
    fn authorize(&self, request: AuthRequest) -> AuthDecision {
        if !self.auth_observed[kind_index(request.kind)].load(Ordering::Relaxed) {
            return Box::pin(std::future::ready(Ok(())));
        }
        let (remote_address, remote_port, remote_family) = address_fields(request.remote_addr);
        let (cookies, headers) = (request.cookies, headers_object(&request.headers));
        self.ask(|ticket| NativeMasterEvent::Auth {
            kind: request.kind.name().into(),
            ticket,
            cookies,
            headers,
            remote_address,
            remote_port,
            remote_family,
        })
    }

    fn authorize_monitoring(&self, request: MonitoringRequest) -> AuthDecision {
        if !self.monitoring_auth {
            return Box::pin(std::future::ready(Ok(())));
        }
        let (remote_address, remote_port, remote_family) = address_fields(request.remote_addr);
        let (path, headers) = (request.path, headers_object(&request.headers));
        self.ask(|ticket| NativeMasterEvent::MonitoringAuth { ticket, path, headers, remote_address, remote_port, remote_family })
    }

    fn on_event(&self, event: MasterEvent) {
        let event = match event {
            MasterEvent::Connected { kind, id, remote_addr } => {
                if !self.connections_observed[kind_index(kind)].load(Ordering::Relaxed) {
                    return;
                }
                self.announced.lock().unwrap_or_else(|p| p.into_inner()).insert((kind_index(kind), id));
                let (remote_address, remote_port, remote_family) = address_fields(remote_addr);
                NativeMasterEvent::Connection { kind: kind.name().into(), id, remote_address, remote_port, remote_family }
            }
            MasterEvent::SlaveRegistered { id, user_data, remote_addr } => {
                let (remote_address, remote_port, remote_family) = address_fields(remote_addr);
                NativeMasterEvent::SlaveRegister { id, user_data, remote_address, remote_port, remote_family }
            }
            MasterEvent::SlaveUpdated { id, user_data, remote_addr } => {
                let (remote_address, remote_port, remote_family) = address_fields(remote_addr);
                NativeMasterEvent::SlaveUpdate { id, user_data, remote_address, remote_port, remote_family }
            }
            MasterEvent::SlaveUnregistered { id, user_data, remote_addr } => {
                let (remote_address, remote_port, remote_family) = address_fields(remote_addr);
                NativeMasterEvent::SlaveUnregister { id, user_data, remote_address, remote_port, remote_family }
            }
            MasterEvent::Closed { kind, id, code, reason } => {
                if !self.announced.lock().unwrap_or_else(|p| p.into_inner()).remove(&(kind_index(kind), id)) {
                    return;
                }
                NativeMasterEvent::Close { kind: kind.name().into(), id, code: u32::from(code), reason }
            }
            MasterEvent::InternalError { message } => NativeMasterEvent::Error { reason: message },
            MasterEvent::ClusterConnected { node } => NativeMasterEvent::ClusterConnect { node: u32::from(node) },
            MasterEvent::ClusterDisconnected { reason } => NativeMasterEvent::ClusterDisconnect { reason },
            MasterEvent::RemoteSlaveListed { id, node, user_data } => {
                NativeMasterEvent::RemoteSlaveRegister { id, node: u32::from(node), user_data }
            }
            MasterEvent::RemoteSlaveUpdated { id, node, user_data } => {
                NativeMasterEvent::RemoteSlaveUpdate { id, node: u32::from(node), user_data }
            }
            MasterEvent::RemoteSlaveUnlisted { id, node, user_data } => {
                NativeMasterEvent::RemoteSlaveUnregister { id, node: u32::from(node), user_data }
            }
            // Events added to the engine later are not shown to JS until the binding knows them.
            _ => return,
        };
        self.emit(event);
    }
}

/// The engine's master. Created by `listen` (own port) or `detached`
/// (upgrades handed over from a Node `http.Server`).
#[napi]
pub struct NativeMaster {
    master: Arc<Master>,
    hooks: Arc<JsHooks>,
}

/// The options as the engine's builder takes them; it checks the values.
fn config_from(options: &NativeMasterOptions) -> napi::Result<MasterConfig, String> {
    let mut b = MasterConfig::builder();
    if let Some(tls) = &options.tls {
        b = b.tls(tls_identity(tls)?);
    }
    b = set_each(
        b,
        &[
            (options.max_message_size, MasterConfigBuilder::max_message_size),
            (options.outbound_queue_length, MasterConfigBuilder::outbound_queue_length),
            (options.max_connections, MasterConfigBuilder::max_connections),
            (options.max_user_data_size, MasterConfigBuilder::max_user_data_size),
        ],
        size,
    );
    b = set_each(
        b,
        &[
            (options.handshake_timeout, MasterConfigBuilder::handshake_timeout),
            (options.auth_timeout, MasterConfigBuilder::auth_timeout),
            (options.heartbeat_interval, MasterConfigBuilder::heartbeat_interval),
            (options.heartbeat_timeout, MasterConfigBuilder::heartbeat_timeout),
        ],
        millis,
    );
    if let Some(n) = options.max_offers_per_second {
        b = b.max_offers_per_second(narrow("max_offers_per_second", n).map_err(config_error)?);
    }
    if let Some(n) = options.max_candidates_per_second {
        b = b.max_candidates_per_second(narrow("max_candidates_per_second", n).map_err(config_error)?);
    }
    if let Some(n) = options.max_user_data_updates_per_second {
        b = b.max_user_data_updates_per_second(narrow("max_user_data_updates_per_second", n).map_err(config_error)?);
    }
    b = b.metrics(options.metrics == Some(true)).status(options.status == Some(true));
    if let Some(cluster) = &options.cluster {
        b = b.cluster(cluster_config(cluster)?);
    }
    b.build().map_err(config_error)
}

fn make_hooks(on_event: Function<'_, NativeMasterEvent, ()>, monitoring_auth: bool) -> napi::Result<Arc<JsHooks>, String> {
    init_logging();
    let callback = on_event
        .build_threadsafe_function::<NativeMasterEvent>()
        .callee_handled::<false>()
        .build()
        .map_err(|e| js_error(codes::INTERNAL, e.reason))?;
    Ok(Arc::new(JsHooks {
        events: Mutex::new(Some(Arc::new(callback))),
        auth_observed: Default::default(),
        connections_observed: Default::default(),
        announced: Mutex::new(HashSet::new()),
        tickets: Mutex::new(HashMap::new()),
        next_ticket: AtomicU32::new(0),
        monitoring_auth,
    }))
}

fn master_error(e: MasterError) -> napi::Error<String> {
    let code = match &e {
        MasterError::Bind { source, .. } => match source.kind() {
            std::io::ErrorKind::AddrInUse => "EADDRINUSE",
            std::io::ErrorKind::PermissionDenied => "EACCES",
            std::io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
            _ => "ERR_ENSLAVISM_LISTEN",
        },
        MasterError::NoRuntime => codes::INTERNAL,
        MasterError::Closed => codes::CLOSED,
        MasterError::Adopt(_) => codes::ADOPT_FAILED,
        MasterError::NotOurPath(_) => codes::INVALID_ARG,
        MasterError::NotTls => codes::NOT_TLS,
    };
    js_error(code, e.to_string())
}

fn bind_master(port: u16, host: Option<&str>, config: MasterConfig, hooks: Arc<JsHooks>) -> Result<Master, MasterError> {
    within_runtime_if_available(|| match host {
        Some(host) => {
            let ip: IpAddr = host.parse().map_err(|_| MasterError::Bind {
                addr: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host:?} is not an IP address")),
            })?;
            Master::bind(SocketAddr::new(ip, port), config, hooks)
        }
        // Like Node's `server.listen(port)`: dual-stack where IPv6 exists.
        None => {
            Master::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port), config.clone(), hooks.clone()).or_else(
                |e| match e {
                    MasterError::Bind { ref source, .. } if source.kind() != std::io::ErrorKind::AddrInUse => {
                        Master::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), config, hooks)
                    }
                    other => Err(other),
                },
            )
        }
    })
}

#[napi]
impl NativeMaster {
    /// Starts a master on its own port (0 picks a free one). Throws on bind
    /// errors, with the system's code (`EADDRINUSE`, `EACCES`, …).
    #[napi(factory)]
    pub fn listen(
        port: u32,
        options: Option<NativeMasterOptions>,
        on_event: Function<'_, NativeMasterEvent, ()>,
    ) -> napi::Result<Self, String> {
        crate::guarded(|| {
            let port =
                u16::try_from(port).map_err(|_| js_error(codes::INVALID_ARG, format!("port must be 0 to 65535, not {port}")))?;
            let options = options.unwrap_or_default();
            let config = config_from(&options)?;
            let hooks = make_hooks(on_event, options.monitoring_auth == Some(true))?;
            let master = bind_master(port, options.host.as_deref(), config, hooks.clone())
                .inspect_err(|_| hooks.shut())
                .map_err(master_error)?;
            Ok(NativeMaster { master: Arc::new(master), hooks })
        })
    }

    /// Starts a master without a port of its own; connections arrive through
    /// `adoptUpgrade`.
    #[napi(factory)]
    pub fn detached(
        options: Option<NativeMasterOptions>,
        on_event: Function<'_, NativeMasterEvent, ()>,
    ) -> napi::Result<Self, String> {
        crate::guarded(|| {
            let options = options.unwrap_or_default();
            let config = config_from(&options)?;
            let hooks = make_hooks(on_event, options.monitoring_auth == Some(true))?;
            let master = within_runtime_if_available(|| Master::detached(config, hooks.clone())).map_err(master_error)?;
            Ok(NativeMaster { master: Arc::new(master), hooks })
        })
    }

    /// The port listened on, or null for a detached master.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.master.local_addr().map(|a| u32::from(a.port()))
    }

    /// Tells which JS listeners exist, so that no JS work is done for events
    /// nobody listens to.
    #[napi]
    pub fn set_observed(&self, kind: String, auth: bool, connections: bool) -> napi::Result<(), String> {
        crate::guarded(|| {
            let i = kind_index(parse_kind(&kind)?);
            self.hooks.auth_observed[i].store(auth, Ordering::Relaxed);
            self.hooks.connections_observed[i].store(connections, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Answers an `auth` event: `rejected` false accepts; true refuses with
    /// HTTP 401 and `reason` (or the plain status text). Returns false for an
    /// unknown or expired ticket.
    #[napi]
    pub fn resolve_auth(&self, ticket: u32, rejected: bool, reason: Option<String>) -> napi::Result<bool, String> {
        crate::guarded(|| {
            let decision = if rejected { Err(Rejection { reason }) } else { Ok(()) };
            Ok(self.hooks.resolve(ticket, decision))
        })
    }

    /// Takes over an upgrade request parsed by a Node `http.Server`: `fd` is
    /// the socket's descriptor (duplicated here, so Node may destroy its
    /// socket right after), `rawHeaders` the request's `rawHeaders`, `head`
    /// the bytes read past the headers.
    #[napi]
    pub fn adopt_upgrade(&self, fd: i32, path: String, raw_headers: Vec<String>, head: Buffer) -> napi::Result<(), String> {
        crate::guarded(|| {
            if fd < 0 {
                return Err(js_error(codes::INVALID_ARG, format!("file descriptor must be >= 0, not {fd}")));
            }
            // SAFETY: fd is non-negative and only borrowed for the duration of
            // the duplication below; the owned duplicate is ours from then on.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let owned = borrowed
                .try_clone_to_owned()
                .map_err(|e| js_error(codes::ADOPT_FAILED, format!("cannot duplicate file descriptor {fd}: {e}")))?;
            let stream = std::net::TcpStream::from(owned);
            self.master.adopt_upgrade(stream, &path, header_map(&raw_headers), head.to_vec()).map_err(master_error)
        })
    }

    /// Takes over an upgrade request that a Node TLS server decrypts: returns
    /// the file descriptor of a socket for JS to relay the plaintext through
    /// (JS owns it and closes it); the engine holds the other end.
    #[napi]
    pub fn adopt_relayed(
        &self,
        path: String,
        raw_headers: Vec<String>,
        head: Buffer,
        remote_address: String,
        remote_port: u32,
    ) -> napi::Result<i32, String> {
        crate::guarded(|| {
            let ip: IpAddr = remote_address
                .parse()
                .map_err(|_| js_error(codes::INVALID_ARG, format!("remote address {remote_address:?} is not an IP address")))?;
            let port = u16::try_from(remote_port).map_err(|_| js_error(codes::INVALID_ARG, format!("bad port {remote_port}")))?;
            let relay = within_runtime_if_available(|| {
                self.master.adopt_relayed(SocketAddr::new(ip, port), &path, header_map(&raw_headers), head.to_vec())
            })
            .map_err(master_error)?;
            Ok(std::os::fd::IntoRawFd::into_raw_fd(relay))
        })
    }

    /// Presents a new certificate from the next TLS handshake on.
    #[napi(js_name = "setTLS")]
    pub fn set_tls(&self, tls: NativeTlsOptions) -> napi::Result<(), String> {
        crate::guarded(|| self.master.set_tls(tls_identity(&tls)?).map_err(master_error))
    }

    /// Sends a raw binary frame to one peer. Returns false when it is gone.
    #[napi]
    pub fn send(&self, kind: String, id: u32, data: Buffer) -> napi::Result<bool, String> {
        crate::guarded(|| {
            let kind = parse_kind(&kind)?;
            Ok(self.master.send(kind, id, Bytes::copy_from_slice(&data)))
        })
    }

    /// Closes one peer's WebSocket. Returns false when it is gone.
    #[napi]
    pub fn disconnect(&self, kind: String, id: u32, code: u32, reason: String) -> napi::Result<bool, String> {
        crate::guarded(|| {
            let kind = parse_kind(&kind)?;
            let code = u16::try_from(code)
                .ok()
                .filter(|c| *c == 1000 || (3000..=4999).contains(c))
                .ok_or_else(|| js_error(codes::INVALID_ARG, format!("close code must be 1000 or 3000 to 4999, not {code}")))?;
            if reason.len() > 123 {
                return Err(js_error(codes::INVALID_ARG, "close reason must be at most 123 bytes"));
            }
            Ok(self.master.disconnect(kind, id, code, &reason))
        })
    }

    /// Connected slaves and clients, as `[slaves, clients]`.
    #[napi]
    pub fn peer_counts(&self) -> napi::Result<Vec<u32>, String> {
        crate::guarded(|| {
            let (slaves, clients) = self.master.peer_counts();
            Ok(vec![slaves as u32, clients as u32])
        })
    }

    /// The master's figures (see `NativeMasterStats`).
    #[napi]
    pub fn stats(&self) -> napi::Result<NativeMasterStats, String> {
        crate::guarded(|| Ok(NativeMasterStats::from(self.master.stats())))
    }

    /// The master's metrics, OpenMetrics text.
    #[napi]
    pub fn metrics(&self) -> napi::Result<String, String> {
        crate::guarded(|| Ok(self.master.metrics()))
    }

    /// True when `path` is a monitoring path that is turned on (cheap: asked
    /// before `metricsAuth` decides).
    #[napi]
    pub fn monitoring_enabled(&self, path: String) -> bool {
        self.master.monitoring_enabled(&path)
    }

    /// What `path` answers when it is a monitoring path that is turned on
    /// (for an attached server, once its `metricsAuth` agreed); null otherwise.
    #[napi]
    pub fn monitoring_page(&self, path: String) -> napi::Result<Option<NativeMonitoringPage>, String> {
        crate::guarded(|| {
            Ok(self
                .master
                .monitoring_page(&path)
                .map(|page| NativeMonitoringPage { content_type: page.content_type.into(), body: page.body }))
        })
    }

    /// Closes every connection and the port; resolves once done. Afterwards
    /// no more events are delivered and the process may exit.
    #[napi]
    pub async fn close(&self) {
        let master = self.master.clone();
        // A panic while closing must not abort Node; the master is gone either way.
        let _ = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(master.close())).await;
        self.hooks.shut();
    }
}

/// A master's figures: gauges now, counters since it started (see the
/// engine's `MasterStats` for what each counts).
#[napi(object)]
pub struct NativeMasterStats {
    /// Connected slaves, registered or not.
    pub slaves: u32,
    /// Slaves registered with this master.
    pub registered_slaves: u32,
    /// Slaves of other masters of the cluster, listed here too.
    pub remote_slaves: u32,
    /// Connected clients.
    pub clients: u32,
    /// WebSocket messages received.
    pub frames_in: i64,
    /// WebSocket messages written.
    pub frames_out: i64,
    /// Payload bytes received.
    pub bytes_in: i64,
    /// Payload bytes written.
    pub bytes_out: i64,
    /// Offers relayed to slaves.
    pub offers: i64,
    /// Answers relayed to clients.
    pub answers: i64,
    /// ICE candidates relayed, both ways.
    pub candidates: i64,
    /// Offers refused, by slaves or on their behalf.
    pub rejections: i64,
    /// WebSocket handshakes refused.
    pub refused_handshakes: i64,
    /// Connections ended because of their peer.
    pub dropped_peers: i64,
}

impl From<MasterStats> for NativeMasterStats {
    fn from(s: MasterStats) -> Self {
        // Counters stay far below 2^53 (a million frames a second for 285 years).
        let n = |v: u64| v as i64;
        let gauge = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        NativeMasterStats {
            slaves: gauge(s.slaves),
            registered_slaves: gauge(s.registered_slaves),
            remote_slaves: gauge(s.remote_slaves),
            clients: gauge(s.clients),
            frames_in: n(s.frames_in),
            frames_out: n(s.frames_out),
            bytes_in: n(s.bytes_in),
            bytes_out: n(s.bytes_out),
            offers: n(s.signalling.offers),
            answers: n(s.signalling.answers),
            candidates: n(s.signalling.candidates),
            rejections: n(s.signalling.rejections),
            refused_handshakes: n(s.refused_handshakes.total()),
            dropped_peers: n(s.dropped_peers),
        }
    }
}

/// What a monitoring path answers.
#[napi(object)]
pub struct NativeMonitoringPage {
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

/// A request's headers from Node's `rawHeaders` (name, value, name, …);
/// unparsable pairs are skipped.
fn header_map(raw_headers: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for pair in raw_headers.chunks_exact(2) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(pair[0].as_bytes()), HeaderValue::from_str(&pair[1])) {
            headers.append(name, value);
        }
    }
    headers
}

/// A file the master serves from the binary (the browser client, its source map).
#[napi(object)]
pub struct NativeAsset {
    /// The request path it is served at.
    pub path: String,
    /// Its bytes.
    pub body: Buffer,
    /// `Content-Type`.
    pub content_type: String,
    /// `Cache-Control`.
    pub cache_control: String,
    /// `ETag`.
    pub etag: String,
}

/// Every file the master serves, for an attached server to serve the same.
#[napi]
pub fn assets() -> Vec<NativeAsset> {
    enslavism::assets::ALL
        .into_iter()
        .map(|asset| NativeAsset {
            path: asset.path.into(),
            body: Buffer::from(asset.body.as_bytes()),
            content_type: asset.content_type.into(),
            cache_control: enslavism::assets::CACHE_CONTROL.into(),
            etag: asset.etag.into(),
        })
        .collect()
}

/// True when a request's `If-None-Match` names the asset at `path`: answer 304.
#[napi]
pub fn asset_not_modified(path: String, if_none_match: String) -> bool {
    enslavism::assets::find(&path).is_some_and(|asset| asset.not_modified(&if_none_match))
}
