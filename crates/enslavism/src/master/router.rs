//! Who is connected, and where each signalling message goes.
//!
//! [`SignallingRouter`] keeps the registry of slaves and clients, hands out
//! their ids, keeps every client's slave list in sync, and routes offers,
//! answers, candidates and rejections with the ids rewritten (destination id
//! in, sender id out). It does no I/O: it pushes encoded frames into each
//! peer's [`PeerLink`], so it can be driven in memory by tests.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use thiserror::Error;

use prometheus_client::metrics::histogram::Histogram;

use super::cluster::records::{node_of, Change, Relayed, CLUSTER_SLAVE_IDS, LOCAL_BITS};
use super::cluster::{ClusterOutlet, Command, RemoteSlave};
use super::pending_offers::PendingOffers;
use super::stats::{SignallingCounts, SignallingTally};
use crate::proto::{IceCandidate, Message, MessageType, ProtoError, ProtocolVersion, SessionDescription, SlaveEntry};

/// The two kinds of peer a master talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// A game server, connected on `/enslavism/slaves`.
    Slave,
    /// A browser (or any client), connected on `/enslavism/clients`.
    Client,
}

impl PeerKind {
    /// The WebSocket path peers of this kind connect to.
    pub fn path(self) -> &'static str {
        match self {
            PeerKind::Slave => "/enslavism/slaves",
            PeerKind::Client => "/enslavism/clients",
        }
    }

    /// The kind whose WebSocket path is `path`, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        match path {
            "/enslavism/slaves" => Some(PeerKind::Slave),
            "/enslavism/clients" => Some(PeerKind::Client),
            _ => None,
        }
    }

    /// `"slave"` or `"client"`.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Slave => "slave",
            PeerKind::Client => "client",
        }
    }
}

/// The router's way to a connected peer: a bounded outbound queue.
pub trait PeerLink {
    /// Queues one frame; returns `false` when the queue is full or gone.
    fn push(&self, frame: Bytes) -> bool;
    /// Asks the peer's connection to close with this WebSocket close code.
    fn close(&self, code: u16, reason: &str);
}

/// Close code sent to a peer whose outbound queue overflowed.
pub const CLOSE_SLOW_CONSUMER: u16 = 1008;
/// Close code sent to a slave whose userData is over the master's limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Why a message from a peer was not routed. The message is dropped; the
/// sender stays connected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingError {
    /// The peer sent a type meant for the other direction or the other kind.
    #[error("a {kind} may not send {msg_type:?}", kind = .kind.name())]
    WrongDirection {
        /// Who sent it.
        kind: PeerKind,
        /// What it sent.
        msg_type: MessageType,
    },
    /// The destination id names no connected (and, for slaves, registered) peer.
    #[error("no {kind} with id {id}", kind = .kind.name())]
    UnknownDestination {
        /// The kind of the destination.
        kind: PeerKind,
        /// The id that was asked for.
        id: u32,
    },
    /// The sender is not (or no longer) known to the router.
    #[error("the sending {kind} (id {id}) is not connected", kind = .kind.name())]
    UnknownSender {
        /// The kind of the sender.
        kind: PeerKind,
        /// The sender's id.
        id: u32,
    },
    /// A slave registered more userData than this master accepts; it is closed.
    #[error("userData of {len} bytes is over this master's limit of {max} bytes")]
    UserDataTooLarge {
        /// The userData's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A slave sent a userData update before registering.
    #[error("slave {id} is not registered: it must register before it updates its userData")]
    NotRegistered {
        /// The slave's id.
        id: u32,
    },
    /// The peer sent a message of a protocol version it did not agree to.
    #[error("{msg_type:?} needs the enslavism.2 subprotocol, which this {kind} did not agree to", kind = .kind.name())]
    NotNegotiated {
        /// Who sent it.
        kind: PeerKind,
        /// What it sent.
        msg_type: MessageType,
    },
    /// The destination is a peer of another master, and Redis cannot be
    /// reached: an offer is refused back to the client.
    #[error("peer {id} is on another master, which cannot be reached (Redis is unavailable)")]
    Unreachable {
        /// The destination's id.
        id: u32,
    },
    /// The message could not be re-encoded (cannot happen for decoded input).
    #[error(transparent)]
    Encode(#[from] ProtoError),
}

/// Every id of the u32 space is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("all 2^32 {kind} ids are in use", kind = .0.name())]
pub struct IdsExhausted(pub PeerKind);

/// Hands out u32 ids in order, wrapping around and skipping ids still in
/// use: from the whole u32 space, or, for a master in a cluster, from its
/// node's range (the node in the high bits).
#[derive(Debug, Clone)]
pub struct IdAllocator {
    next: u32,
    base: u32,
    mask: u32,
}

impl Default for IdAllocator {
    fn default() -> Self {
        IdAllocator::starting_at(0)
    }
}

impl IdAllocator {
    /// An allocator whose first id is `next` (tests start near `u32::MAX`).
    pub fn starting_at(next: u32) -> Self {
        IdAllocator { next, base: 0, mask: u32::MAX }
    }

    /// An allocator of the ids of cluster node `node`:
    /// `node << LOCAL_BITS | n`, n wrapping within the node's range.
    pub fn for_node(node: u16) -> Self {
        IdAllocator { next: 0, base: u32::from(node) << LOCAL_BITS, mask: (1 << LOCAL_BITS) - 1 }
    }

    /// The next id not in use, or `None` when all ids of the range are.
    pub fn allocate(&mut self, live: usize, in_use: impl Fn(u32) -> bool) -> Option<u32> {
        if live as u64 > u64::from(self.mask) {
            return None;
        }
        loop {
            let id = self.base | (self.next & self.mask);
            self.next = self.next.wrapping_add(1) & self.mask;
            if !in_use(id) {
                return Some(id);
            }
        }
    }
}

/// What clients are to hear of other masters' slaves, gathered over a
/// batch of changes (see [`Router::apply_changes`]).
#[derive(Default)]
struct Told {
    added: Vec<SlaveEntry>,
    updated: Vec<SlaveEntry>,
    removed: Vec<u32>,
}

impl Told {
    /// Whether slave `id` is in one of the frames already.
    fn names(&self, id: u32) -> bool {
        self.added.iter().chain(&self.updated).any(|e| e.id == id) || self.removed.contains(&id)
    }
}

/// A change in the list of another master's slaves, as this master saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteEvent {
    /// Listed from now on.
    Listed { id: u32, node: u16, user_data: String },
    /// New userData.
    Updated { id: u32, node: u16, user_data: String },
    /// Gone from the list.
    Unlisted { id: u32, node: u16, user_data: String },
}

struct SlaveState<L> {
    link: L,
    /// The AddSlaves entry of a registered slave; `None` until it registers.
    entry: Option<SlaveEntry>,
    protocol: ProtocolVersion,
}

struct ClientState<L> {
    link: L,
    /// A V2 client hears of userData changes as UpdateSlaves.
    protocol: ProtocolVersion,
}

/// The registry of peers and the routing rules between them.
pub struct SignallingRouter<L> {
    slaves: HashMap<u32, SlaveState<L>>,
    clients: HashMap<u32, ClientState<L>>,
    slave_ids: IdAllocator,
    client_ids: IdAllocator,
    /// AddSlaves of every registered slave, built once per change of the list.
    slave_list_frame: Option<Bytes>,
    /// Largest userData a slave may register.
    max_user_data_len: usize,
    /// What was relayed, and how fast slaves answered.
    tally: SignallingTally,
    /// The way to other masters, for a master in a cluster.
    cluster: Option<ClusterOutlet>,
    /// Registered slaves of other masters, by id.
    remote: HashMap<u32, RemoteSlave>,
    /// Offers relayed to other masters' slaves, not yet answered.
    relayed: PendingOffers,
    /// Slave ids reserved for this master from the cluster's counter.
    slave_id_stock: VecDeque<u32>,
    /// Whether more were asked for and not received yet.
    slave_ids_asked: bool,
    /// Local slaves closed because another master's has their id.
    displaced: HashSet<u32>,
}

/// Reserved slave ids below which the router asks the cluster for more
/// (half a block: a burst of registrations rarely outruns a round trip).
const SLAVE_ID_STOCK_LOW: usize = 128;
/// Close code (Service Restart) for peers whose id another master of the
/// cluster holds: they connect again and get another.
pub(crate) const CLOSE_ID_TAKEN: u16 = 1012;

impl<L: PeerLink> Default for SignallingRouter<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: PeerLink> SignallingRouter<L> {
    /// An empty router.
    pub fn new() -> Self {
        Self::with_allocators(IdAllocator::default(), IdAllocator::default())
    }

    /// An empty router whose ids start where the given allocators say.
    pub fn with_allocators(slave_ids: IdAllocator, client_ids: IdAllocator) -> Self {
        SignallingRouter {
            slaves: HashMap::new(),
            clients: HashMap::new(),
            slave_ids,
            client_ids,
            slave_list_frame: None,
            max_user_data_len: crate::proto::MAX_USER_DATA_LEN,
            tally: SignallingTally::default(),
            cluster: None,
            remote: HashMap::new(),
            relayed: PendingOffers::default(),
            slave_id_stock: VecDeque::new(),
            slave_ids_asked: false,
            displaced: HashSet::new(),
        }
    }

    /// Makes this router a node of a cluster: client ids come from the
    /// node's range, slave ids from the cluster's counter (reserved in
    /// blocks, [`SignallingRouter::stock_slave_ids`]; from the node's range
    /// only while none is reserved), and slaves, offers and answers reach
    /// other masters through `outlet`. Also how a master that lost its node
    /// number takes a new one (its peers must then connect again).
    pub(crate) fn join_cluster(&mut self, outlet: ClusterOutlet) {
        self.slave_ids = IdAllocator::for_node(outlet.node);
        self.client_ids = IdAllocator::for_node(outlet.node);
        self.cluster = Some(outlet);
    }

    /// Adds a block of slave ids reserved from the cluster's counter; with
    /// `fresh`, in place of those held (Redis may have lost its counter and
    /// given them again).
    pub(crate) fn stock_slave_ids(&mut self, ids: impl IntoIterator<Item = u32>, fresh: bool) {
        if fresh {
            self.slave_id_stock.clear();
        }
        self.slave_id_stock.extend(ids);
        self.slave_ids_asked = false;
    }

    /// The highest slave id in use here (local slaves' and other masters')
    /// that the cluster's counter gives, if any: the counter must stay above it.
    pub(crate) fn highest_cluster_slave_id(&self) -> Option<u32> {
        self.slaves.keys().chain(self.remote.keys()).copied().filter(|&id| id < CLUSTER_SLAVE_IDS).max()
    }

    /// The next reserved slave id not in use here, asking for more when
    /// the stock runs low.
    fn reserved_slave_id(&mut self) -> Option<u32> {
        let cluster = self.cluster.as_ref()?;
        if self.slave_id_stock.len() < SLAVE_ID_STOCK_LOW && !self.slave_ids_asked {
            cluster.send(Command::NeedSlaveIds);
            self.slave_ids_asked = true;
        }
        while let Some(id) = self.slave_id_stock.pop_front() {
            if !self.slaves.contains_key(&id) && !self.remote.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// Another master lists a slave under the id of one of ours (after
    /// Redis lost the id counter): the lower node keeps the id. Returns
    /// true when ours stays listed: it is then written again, so that the
    /// registry names us. Otherwise ours is asked to connect again (it gets
    /// another id), and the other is listed (at once if ours was not
    /// registered, else once ours is gone).
    fn keeps_id(&mut self, id: u32, other_node: u16) -> bool {
        let Some(cluster) = self.cluster.as_ref() else { return true };
        let Some(slave) = self.slaves.get(&id) else { return false };
        match &slave.entry {
            Some(entry) if cluster.node < other_node => {
                tracing::warn!(id, other_node, "cluster: another master lists a slave under an id of ours; ours keeps it");
                cluster.send(Command::Listed { id, user_data: entry.user_data.clone() });
                true
            }
            registered => {
                if self.displaced.insert(id) {
                    tracing::warn!(
                        id,
                        other_node,
                        "cluster: another master holds this slave's id; the slave reconnects for a new one"
                    );
                    slave.link.close(CLOSE_ID_TAKEN, "this id is taken in the cluster; connect again");
                }
                registered.is_some()
            }
        }
    }

    /// Sets the largest userData a slave may register (the protocol's
    /// 65,535 bytes at most); a slave over it is closed with 1009 (message too big).
    pub fn set_max_user_data_len(&mut self, max: usize) {
        self.max_user_data_len = max.min(crate::proto::MAX_USER_DATA_LEN);
    }

    /// Tells a client that `slave_id` refused its offer (the master refuses on
    /// the slave's behalf, e.g. when the client sends offers too fast).
    pub fn reject_offer(&mut self, client_id: u32, slave_id: u32) {
        if let Some(client) = self.clients.get(&client_id) {
            self.tally.rejected(client_id, slave_id);
            if let Ok(frame) = (Message::RejectFromSlave { id: slave_id }).encode() {
                push_or_close(&client.link, Bytes::from(frame));
            }
        }
    }

    /// Connected slaves (registered or not).
    pub fn slave_count(&self) -> usize {
        self.slaves.len()
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Registered slaves of this master.
    pub fn registered_slave_count(&self) -> usize {
        self.slaves.values().filter(|s| s.entry.is_some()).count()
    }

    /// Every count of peers, at one moment.
    pub(crate) fn gauges(&self) -> super::stats::Gauges {
        super::stats::Gauges {
            slaves: self.slave_count(),
            registered_slaves: self.registered_slave_count(),
            remote_slaves: self.remote_slave_count(),
            clients: self.client_count(),
        }
    }

    /// Slaves of other masters of the cluster, listed here too.
    pub fn remote_slave_count(&self) -> usize {
        self.remote.len()
    }

    /// Offers, answers, candidates and rejections relayed so far.
    pub fn signalling_counts(&self) -> SignallingCounts {
        self.tally.counts
    }

    /// The time from each offer received to its answer sent.
    pub(crate) fn signalling_latency(&self) -> Histogram {
        self.tally.latency()
    }

    /// The userData JSON of every registered slave of this master, by id.
    pub fn registered_slaves(&self) -> impl Iterator<Item = &SlaveEntry> {
        self.slaves.values().filter_map(|s| s.entry.as_ref())
    }

    /// Every slave clients see: this master's registered ones, then other masters'.
    pub fn listed_slaves(&self) -> impl Iterator<Item = SlaveEntry> + '_ {
        let remote = self.remote.iter().map(|(&id, r)| SlaveEntry { id, user_data: r.user_data.clone() });
        self.registered_slaves().cloned().chain(remote)
    }

    /// Adds a slave speaking `protocol`; it is listed to clients once it registers.
    pub fn add_slave(&mut self, link: L, protocol: ProtocolVersion) -> Result<u32, IdsExhausted> {
        let id = match self.reserved_slave_id() {
            Some(id) => id,
            None => {
                let slaves = &self.slaves;
                self.slave_ids.allocate(slaves.len(), |id| slaves.contains_key(&id)).ok_or(IdsExhausted(PeerKind::Slave))?
            }
        };
        self.slaves.insert(id, SlaveState { link, entry: None, protocol });
        Ok(id)
    }

    /// Adds a client speaking `protocol` and sends it the list of registered
    /// slaves (a bare AddSlaves type byte when there are none).
    pub fn add_client(&mut self, link: L, protocol: ProtocolVersion) -> Result<u32, IdsExhausted> {
        let clients = &self.clients;
        let id = self.client_ids.allocate(clients.len(), |id| clients.contains_key(&id)).ok_or(IdsExhausted(PeerKind::Client))?;
        push_or_close(&link, self.slave_list_frame());
        self.clients.insert(id, ClientState { link, protocol });
        Ok(id)
    }

    /// Forgets a peer. A registered slave's departure is broadcast to every
    /// client as RemoveSlaves, and its entry returned.
    pub fn remove(&mut self, kind: PeerKind, id: u32) -> Option<SlaveEntry> {
        self.tally.forget(kind, id);
        match kind {
            PeerKind::Client => {
                self.clients.remove(&id);
                self.relayed.forget_client(id);
                None
            }
            PeerKind::Slave => {
                let displaced = self.displaced.remove(&id);
                let entry = self.slaves.remove(&id)?.entry?;
                self.slave_list_frame = None;
                self.broadcast(&Message::RemoveSlaves(vec![id]));
                if let Some(cluster) = &self.cluster {
                    cluster.send(if displaced { Command::Displaced { id } } else { Command::Unlisted { id } });
                }
                Some(entry)
            }
        }
    }

    /// The entry of a registered slave.
    pub fn registered_slave(&self, id: u32) -> Option<&SlaveEntry> {
        self.slaves.get(&id)?.entry.as_ref()
    }

    /// Routes one decoded message from a peer.
    pub fn route(&mut self, from: PeerKind, from_id: u32, msg: Message) -> Result<(), RoutingError> {
        match from {
            PeerKind::Client => self.route_from_client(from_id, msg),
            PeerKind::Slave => self.route_from_slave(from_id, msg),
        }
    }

    /// Queues a raw frame for one peer (the ws-like `send` of the Node API).
    /// Returns `false` when no such peer is connected.
    pub fn send_raw(&self, kind: PeerKind, id: u32, frame: Bytes) -> bool {
        match self.link(kind, id) {
            Some(link) => {
                push_or_close(link, frame);
                true
            }
            None => false,
        }
    }

    /// Asks one peer's connection to close. Returns `false` when no such peer
    /// is connected.
    pub fn close(&self, kind: PeerKind, id: u32, code: u16, reason: &str) -> bool {
        match self.link(kind, id) {
            Some(link) => {
                link.close(code, reason);
                true
            }
            None => false,
        }
    }

    /// Every connection's link, slaves first.
    pub fn links(&self) -> impl Iterator<Item = &L> {
        self.slaves.values().map(|s| &s.link).chain(self.clients.values().map(|c| &c.link))
    }

    fn link(&self, kind: PeerKind, id: u32) -> Option<&L> {
        match kind {
            PeerKind::Slave => self.slaves.get(&id).map(|s| &s.link),
            PeerKind::Client => self.clients.get(&id).map(|c| &c.link),
        }
    }

    fn route_from_client(&mut self, client_id: u32, msg: Message) -> Result<(), RoutingError> {
        if !self.clients.contains_key(&client_id) {
            return Err(RoutingError::UnknownSender { kind: PeerKind::Client, id: client_id });
        }
        let (slave_id, out) = match msg {
            Message::OfferToSlave(SessionDescription { id, sdp }) => {
                (id, Message::OfferFromClient(SessionDescription { id: client_id, sdp }))
            }
            Message::IceCandidateToSlave(IceCandidate { id, candidate }) => {
                (id, Message::IceCandidateFromClient(IceCandidate { id: client_id, candidate }))
            }
            other => return Err(RoutingError::WrongDirection { kind: PeerKind::Client, msg_type: other.message_type() }),
        };
        let is_offer = matches!(out, Message::OfferFromClient(_));
        // Clients only see registered slaves, so only those can be reached.
        if let Some(slave) = self.slaves.get(&slave_id).filter(|s| s.entry.is_some()) {
            push_or_close(&slave.link, Bytes::from(out.encode()?));
        } else if let (Some(remote), Some(cluster)) = (self.remote.get(&slave_id), &self.cluster) {
            if !cluster.connected() {
                // Redis is away: the other master cannot be reached.
                if is_offer {
                    self.reject_offer(client_id, slave_id);
                }
                return Err(RoutingError::Unreachable { id: slave_id });
            }
            let message = Relayed::encode(PeerKind::Slave, slave_id, &out.encode()?);
            cluster.send(Command::Relay { node: remote.node, message, offer: is_offer.then_some((client_id, slave_id)) });
            if is_offer {
                // Uncapped: each waits at most the relay timeout.
                self.relayed.offered(client_id, slave_id, usize::MAX);
            }
        } else {
            // An offer to a slave that just left would wait forever: refuse it.
            if is_offer {
                self.reject_offer(client_id, slave_id);
            }
            return Err(RoutingError::UnknownDestination { kind: PeerKind::Slave, id: slave_id });
        }
        match out {
            Message::OfferFromClient(_) => self.tally.offer_relayed(client_id, slave_id),
            _ => self.tally.counts.candidates += 1,
        }
        Ok(())
    }

    fn route_from_slave(&mut self, slave_id: u32, msg: Message) -> Result<(), RoutingError> {
        let Some(slave) = self.slaves.get_mut(&slave_id) else {
            return Err(RoutingError::UnknownSender { kind: PeerKind::Slave, id: slave_id });
        };
        let (client_id, out) = match msg {
            Message::Register { user_data } => {
                if user_data.len() > self.max_user_data_len {
                    let err = RoutingError::UserDataTooLarge { len: user_data.len(), max: self.max_user_data_len };
                    slave.link.close(CLOSE_TOO_BIG, &err.to_string());
                    return Err(err);
                }
                let entry = SlaveEntry { id: slave_id, user_data };
                let was_registered = slave.entry.replace(entry.clone()).is_some();
                self.slave_list_frame = None;
                if let Some(cluster) = &self.cluster {
                    cluster.send(Command::Listed { id: slave_id, user_data: entry.user_data.clone() });
                }
                if was_registered {
                    // Registering again (0.9.0 slaves' way to change their
                    // userData) is an update; V1 clients, who know no
                    // update, see the slave replaced.
                    self.broadcast_update(vec![entry], true)?;
                } else {
                    self.broadcast(&Message::AddSlaves(vec![entry]));
                }
                return Ok(());
            }
            Message::UpdateUserData { user_data, .. } => {
                if slave.protocol < ProtocolVersion::V2 {
                    return Err(RoutingError::NotNegotiated { kind: PeerKind::Slave, msg_type: MessageType::UpdateUserData });
                }
                if user_data.len() > self.max_user_data_len {
                    return Err(RoutingError::UserDataTooLarge { len: user_data.len(), max: self.max_user_data_len });
                }
                let Some(entry) = slave.entry.as_mut() else {
                    return Err(RoutingError::NotRegistered { id: slave_id });
                };
                entry.user_data = user_data;
                let entry = entry.clone();
                self.slave_list_frame = None;
                if let Some(cluster) = &self.cluster {
                    cluster.send(Command::Listed { id: slave_id, user_data: entry.user_data.clone() });
                }
                // V1 clients are left alone: replacing the slave in their
                // lists would close their connections to it (0.9.0's bundle
                // does on RemoveSlaves). They see the new userData the next
                // time they connect.
                self.broadcast_update(vec![entry], false)?;
                return Ok(());
            }
            Message::AnswerToClient(SessionDescription { id, sdp }) => {
                (id, Message::AnswerFromSlave(SessionDescription { id: slave_id, sdp }))
            }
            Message::IceCandidateToClient(IceCandidate { id, candidate }) => {
                (id, Message::IceCandidateFromSlave(IceCandidate { id: slave_id, candidate }))
            }
            Message::RejectToClient { id } => (id, Message::RejectFromSlave { id: slave_id }),
            other => return Err(RoutingError::WrongDirection { kind: PeerKind::Slave, msg_type: other.message_type() }),
        };
        if let Some(client) = self.clients.get(&client_id) {
            push_or_close(&client.link, Bytes::from(out.encode()?));
        } else {
            // A client of another master of the cluster: its id says which.
            let cluster = self
                .cluster
                .as_ref()
                .filter(|c| node_of(client_id) != c.node)
                .ok_or(RoutingError::UnknownDestination { kind: PeerKind::Client, id: client_id })?;
            if !cluster.connected() {
                return Err(RoutingError::Unreachable { id: client_id });
            }
            let message = Relayed::encode(PeerKind::Client, client_id, &out.encode()?);
            cluster.send(Command::Relay { node: node_of(client_id), message, offer: None });
        }
        match out {
            Message::AnswerFromSlave(_) => self.tally.answer_relayed(client_id, slave_id),
            Message::IceCandidateFromSlave(_) => self.tally.counts.candidates += 1,
            _ => self.tally.rejected(client_id, slave_id),
        }
        Ok(())
    }

    /// Applies changes of other masters' slaves, in order; returns what the
    /// application hears. Clients get one frame per kind (AddSlaves,
    /// UpdateSlaves, RemoveSlaves) for the whole batch, not one per slave: a
    /// master that closes with 100 slaves would cost each client elsewhere
    /// 100 frames. Changes that change nothing here (our own coming back, a
    /// repeat, a conflict the other master loses) are skipped.
    pub(crate) fn apply_changes(&mut self, changes: impl IntoIterator<Item = Change>) -> Vec<RemoteEvent> {
        let mut events = Vec::new();
        let mut told = Told::default();
        let Some(our_node) = self.cluster.as_ref().map(|c| c.node) else { return events };
        for change in changes {
            let id = match &change {
                Change::Set { id, node, .. } | Change::Remove { id, node } if *node != our_node => *id,
                _ => continue,
            };
            // Frames carry one kind each: a slave already in one goes out first, to keep its order.
            if told.names(id) {
                self.tell(std::mem::take(&mut told));
            }
            match change {
                Change::Set { id, node, user_data } => {
                    if self.keeps_id(id, node) {
                        continue;
                    }
                    let entry = SlaveEntry { id, user_data: user_data.clone() };
                    match self.remote.insert(id, RemoteSlave { node, user_data: user_data.clone() }) {
                        // The same: nothing new. Another master took it over (its
                        // id contested): nothing to tell clients, a new node for the application.
                        Some(p) if p.user_data == user_data => {
                            events.extend((p.node != node).then_some(RemoteEvent::Updated { id, node, user_data }));
                        }
                        Some(_) => {
                            told.updated.push(entry);
                            events.push(RemoteEvent::Updated { id, node, user_data });
                        }
                        None => {
                            told.added.push(entry);
                            events.push(RemoteEvent::Listed { id, node, user_data });
                        }
                    }
                }
                Change::Remove { id, node } => {
                    if self.remote.get(&id).is_none_or(|r| r.node != node) {
                        continue;
                    }
                    let slave = self.remote.remove(&id).expect("checked above");
                    told.removed.push(id);
                    events.push(RemoteEvent::Unlisted { id, node, user_data: slave.user_data });
                }
            }
        }
        self.tell(told);
        events
    }

    /// Tells every client what changed in the list of other masters' slaves.
    fn tell(&mut self, told: Told) {
        let Told { mut added, updated, removed } = told;
        if added.is_empty() && updated.is_empty() && removed.is_empty() {
            return;
        }
        self.slave_list_frame = None;
        if !added.is_empty() {
            added.sort_unstable_by_key(|e| e.id);
            self.broadcast(&Message::AddSlaves(added));
        }
        if !updated.is_empty() {
            // As for a V2 update: V1 clients keep what they have.
            let _ = self.broadcast_update(updated, false);
        }
        if !removed.is_empty() {
            for (client, slave) in self.relayed.take_where(|slave, _| removed.contains(&slave)) {
                self.reject_offer(client, slave);
            }
            self.broadcast(&Message::RemoveSlaves(removed));
        }
    }

    /// Brings the remote list up to `live` (a full read of the registry):
    /// new slaves are listed, changed ones updated. Returns the events, and
    /// the listed slaves missing from `live`, left to the caller (they may
    /// be written again soon: after a Redis restart, masters come back one
    /// by one).
    pub(crate) fn reconcile(&mut self, live: HashMap<u32, RemoteSlave>) -> (Vec<RemoteEvent>, Vec<u32>) {
        let missing: Vec<u32> = self.remote.keys().filter(|id| !live.contains_key(id)).copied().collect();
        let changes: Vec<Change> = live
            .into_iter()
            .filter(|(id, slave)| self.remote.get(id) != Some(slave))
            .map(|(id, RemoteSlave { node, user_data })| Change::Set { id, node, user_data })
            .collect();
        (self.apply_changes(changes), missing)
    }

    /// The nodes of the other masters whose slaves are listed here.
    pub(crate) fn remote_nodes(&self) -> Vec<u16> {
        let mut nodes: Vec<u16> = self.remote.values().map(|r| r.node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The slaves listed here of the masters `nodes` (only those with one
    /// of these userData, when given), with their node.
    pub(crate) fn remote_slaves_of(&self, nodes: &[u16], user_data: Option<&[String]>) -> Vec<(u32, u16)> {
        self.remote
            .iter()
            .filter(|(_, r)| nodes.contains(&r.node) && user_data.is_none_or(|u| u.contains(&r.user_data)))
            .map(|(&id, r)| (id, r.node))
            .collect()
    }

    /// Ids of the other masters' slaves listed here.
    pub(crate) fn remote_slave_ids(&self) -> Vec<u32> {
        self.remote.keys().copied().collect()
    }

    /// Unlists other masters' slaves (one RemoveSlaves for all),
    /// refusing the offers still waiting for them.
    pub(crate) fn unlist_remote(&mut self, ids: &[u32]) -> Vec<RemoteEvent> {
        let removals: Vec<Change> =
            ids.iter().filter_map(|id| self.remote.get(id).map(|slave| Change::Remove { id: *id, node: slave.node })).collect();
        self.apply_changes(removals)
    }

    /// Hands a frame relayed by another master to its peer here. Returns
    /// the refusal to send back (its node and message) when it was an
    /// offer to a slave that is not here any more.
    pub(crate) fn deliver(&mut self, relayed: Relayed, message: &Message) -> Option<(u16, Bytes)> {
        match relayed.kind {
            PeerKind::Slave => {
                let client = match message {
                    Message::OfferFromClient(sd) => Some(sd.id),
                    _ => None,
                };
                match self.slaves.get(&relayed.id).filter(|s| s.entry.is_some()) {
                    Some(slave) => {
                        push_or_close(&slave.link, relayed.frame);
                        match client {
                            Some(client) => self.tally.offer_relayed(client, relayed.id),
                            None => self.tally.counts.candidates += 1,
                        }
                        None
                    }
                    None => {
                        let client = client?;
                        let frame = Message::RejectFromSlave { id: relayed.id }.encode().ok()?;
                        Some((node_of(client), Relayed::encode(PeerKind::Client, client, &frame)))
                    }
                }
            }
            PeerKind::Client => {
                let client = self.clients.get(&relayed.id)?;
                push_or_close(&client.link, relayed.frame);
                match message {
                    Message::AnswerFromSlave(sd) => {
                        self.relayed.take(relayed.id, sd.id);
                        self.tally.answer_relayed(relayed.id, sd.id);
                    }
                    Message::RejectFromSlave { id } => {
                        self.relayed.take(relayed.id, *id);
                        self.tally.rejected(relayed.id, *id);
                    }
                    _ => self.tally.counts.candidates += 1,
                }
                None
            }
        }
    }

    /// An offer relayed to another master could not be delivered: the
    /// client is told the slave refused.
    pub(crate) fn refuse_relayed(&mut self, client: u32, slave: u32) {
        self.relayed.take(client, slave);
        self.reject_offer(client, slave);
    }

    /// Refuses every relayed offer still waiting (Redis is lost: no answer can come).
    pub(crate) fn refuse_all_relayed(&mut self) {
        for (client, slave) in self.relayed.take_where(|_, _| true) {
            self.reject_offer(client, slave);
        }
    }

    /// Refuses the relayed offers that have waited since before `deadline`.
    pub(crate) fn expire_relayed(&mut self, deadline: tokio::time::Instant) {
        let deadline = deadline.into_std();
        for (client, slave) in self.relayed.take_where(|_, at| at < deadline) {
            self.reject_offer(client, slave);
        }
    }

    fn slave_list_frame(&mut self) -> Bytes {
        if let Some(frame) = &self.slave_list_frame {
            return frame.clone();
        }
        let mut entries: Vec<SlaveEntry> = self.listed_slaves().collect();
        entries.sort_unstable_by_key(|e| e.id);
        // Every entry was checked at registration, so this cannot fail; an
        // empty list is the safe fallback all the same.
        let frame = Bytes::from(Message::AddSlaves(entries).encode().unwrap_or_else(|_| vec![MessageType::AddSlaves as u8]));
        self.slave_list_frame = Some(frame.clone());
        frame
    }

    fn broadcast(&self, msg: &Message) {
        if let Ok(frame) = msg.encode() {
            self.broadcast_frame(Bytes::from(frame));
        }
    }

    fn broadcast_frame(&self, frame: Bytes) {
        for client in self.clients.values() {
            push_or_close(&client.link, frame.clone());
        }
    }

    /// Tells every V2 client of `entries`' new userData (UpdateSlaves); with
    /// `replace_for_v1`, V1 clients see the slaves removed and added again.
    fn broadcast_update(&self, entries: Vec<SlaveEntry>, replace_for_v1: bool) -> Result<(), RoutingError> {
        let replace = match replace_for_v1 {
            true => Some((
                Bytes::from(Message::RemoveSlaves(entries.iter().map(|e| e.id).collect()).encode()?),
                Bytes::from(Message::AddSlaves(entries.clone()).encode()?),
            )),
            false => None,
        };
        let update = Bytes::from(Message::UpdateSlaves(entries).encode()?);
        for client in self.clients.values() {
            match (client.protocol, &replace) {
                (ProtocolVersion::V2, _) => push_or_close(&client.link, update.clone()),
                (ProtocolVersion::V1, Some((remove, add))) => {
                    push_or_close(&client.link, remove.clone());
                    push_or_close(&client.link, add.clone());
                }
                (ProtocolVersion::V1, None) => {}
            }
        }
        Ok(())
    }
}

fn push_or_close<L: PeerLink>(link: &L, frame: Bytes) {
    if !link.push(frame) {
        link.close(CLOSE_SLOW_CONSUMER, "outbound queue full");
    }
}

#[cfg(test)]
mod tests;
