//! What the embedding application decides and learns: the auth decision for
//! each WebSocket handshake, and the connection events.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use super::router::PeerKind;

/// A WebSocket handshake waiting for the application's decision.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Which path the peer asked for.
    pub kind: PeerKind,
    /// The request's cookies, decoded (a slave's authData travels this way).
    pub cookies: HashMap<String, String>,
    /// Where the peer connects from.
    pub remote_addr: SocketAddr,
    /// The request's headers, as received.
    pub headers: http::HeaderMap,
}

/// A request for the master's metrics or status page, waiting for the
/// application's decision.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MonitoringRequest {
    /// The path asked for ([`METRICS_PATH`](super::METRICS_PATH), [`STATUS_PATH`](super::STATUS_PATH)
    /// or [`STATUS_JSON_PATH`](super::STATUS_JSON_PATH)).
    pub path: String,
    /// Where the request comes from.
    pub remote_addr: SocketAddr,
    /// The request's headers, as received.
    pub headers: http::HeaderMap,
}

/// A refused handshake: the peer gets HTTP 401 with this reason as the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejection {
    /// Why, as told to the peer; `None` sends the plain status text.
    pub reason: Option<String>,
}

/// The future an [`MasterHooks::authorize`] returns.
pub type AuthDecision = Pin<Box<dyn Future<Output = Result<(), Rejection>> + Send>>;

/// Something that happened on the master, for the application to observe.
/// More kinds of event may be added in minor versions.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MasterEvent {
    /// A peer finished its WebSocket handshake and got this id.
    Connected {
        /// Slave or client.
        kind: PeerKind,
        /// The id the router gave it.
        id: u32,
        /// Where it connects from.
        remote_addr: SocketAddr,
    },
    /// A peer's WebSocket is closed; its id may be reused later.
    Closed {
        /// Slave or client.
        kind: PeerKind,
        /// Its id.
        id: u32,
        /// The close code the peer sent (1006 when the connection just dropped).
        code: u16,
        /// The close reason the peer sent.
        reason: String,
    },
    /// A slave registered: clients list it under `id` from now on.
    SlaveRegistered {
        /// The id clients see.
        id: u32,
        /// Its userData (JSON text).
        user_data: String,
        /// Where it connects from.
        remote_addr: SocketAddr,
    },
    /// A registered slave changed its userData (an update, or a second
    /// registration, 0.9.0 slaves' only way): same id, clients' lists updated.
    SlaveUpdated {
        /// The id clients see.
        id: u32,
        /// Its new userData (JSON text).
        user_data: String,
        /// Where it connects from.
        remote_addr: SocketAddr,
    },
    /// A registered slave is gone from every list: it closed, its
    /// connection dropped, or it missed its heartbeats. Reported before its
    /// [`MasterEvent::Closed`].
    SlaveUnregistered {
        /// The id clients saw.
        id: u32,
        /// Its last userData (JSON text).
        user_data: String,
        /// Where it connected from.
        remote_addr: SocketAddr,
    },
    /// This master is connected to the cluster's Redis and in sync: the
    /// other masters' slaves are listed, offers to them are relayed.
    ClusterConnected {
        /// This master's node number (the high bits of the ids it gives).
        node: u16,
    },
    /// This master lost the cluster's Redis. It goes on serving its own
    /// slaves and clients; other masters' slaves stay listed, offers to
    /// them are refused, until it is back ([`MasterEvent::ClusterConnected`]).
    ClusterDisconnected {
        /// What went wrong.
        reason: String,
    },
    /// A slave of another master of the cluster is listed by this master
    /// too (it registered there, or this master just joined or got Redis back).
    RemoteSlaveListed {
        /// The id every master's clients see.
        id: u32,
        /// The node number of the master it is connected to.
        node: u16,
        /// Its userData (JSON text).
        user_data: String,
    },
    /// A slave of another master changed its userData, or is now another
    /// master's (an id two masters held: the lower node keeps it).
    RemoteSlaveUpdated {
        /// The id every master's clients see.
        id: u32,
        /// The node number of the master it is connected to.
        node: u16,
        /// Its new userData (JSON text).
        user_data: String,
    },
    /// A slave of another master is gone from this master's list (it left,
    /// or its master stopped refreshing it for a TTL).
    RemoteSlaveUnlisted {
        /// The id clients saw.
        id: u32,
        /// The node number of the master it was connected to.
        node: u16,
        /// Its last userData (JSON text).
        user_data: String,
    },
    /// A bug in the engine was caught while serving one peer; that peer was
    /// dropped, everything else goes on.
    InternalError {
        /// What went wrong.
        message: String,
    },
}

/// The application's side of a master. Every method has a default, so
/// `NoHooks` (accept everyone, observe nothing) is the empty impl.
pub trait MasterHooks: Send + Sync + 'static {
    /// Decides whether a handshake may proceed. The default accepts.
    fn authorize(&self, _request: AuthRequest) -> AuthDecision {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Observes a connection event. Called on the connection's task: keep it short.
    fn on_event(&self, _event: MasterEvent) {}

    /// Decides whether a request for the metrics or the status page (when
    /// they are on) is answered; a refusal gets HTTP 403. The default
    /// accepts: with metrics or status on, leave them open only where the
    /// port is not reachable from outside, or decide here.
    fn authorize_monitoring(&self, _request: MonitoringRequest) -> AuthDecision {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Accept everyone, observe nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl MasterHooks for NoHooks {}
