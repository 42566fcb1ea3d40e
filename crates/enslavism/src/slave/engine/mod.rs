//! The slave's WebRTC engine: every peer connection on a few UDP sockets.
//!
//! One shard per socket (by default one per core, each on its own port; one
//! with `udp_port`): a task that owns the socket and every str0m (sans-I/O
//! WebRTC) peer connection assigned to it. It routes datagrams by source
//! address, and a first datagram from a new address by the STUN USERNAME (our
//! ufrag, unique per peer); it keeps one deadline per peer (str0m's next
//! timeout, or one of its own); it takes commands (offers, candidates,
//! sends) and reports [`super::SlaveEvent`]s itself, in order per peer.
//!
//! Measured against the `webrtc` driver it replaced (one socket and three
//! tasks per peer), then against `rtc` driven the same way: see
//! doc/performance.md.

mod link;
mod rtc_peer;
mod shard;
mod socket;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::stats::{ChannelStats, ConnectionStats, PeerStats, ShardStats};
use super::{SessionId, SlaveConfig, SlaveShared};

/// A peer connection, as its shard knows it: its session id.
pub(crate) type PeerKey = SessionId;
/// A data channel, as its peer connection knows it.
pub(crate) type ChannelKey = str0m::channel::ChannelId;

/// Why the engine could not answer an offer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnswerError {
    /// str0m refused the offer (or its renegotiation).
    #[error("unusable offer: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// The peer is gone (released meanwhile, or its shard stopped).
    #[error("the peer connection is gone")]
    Gone,
}

/// A new peer connection to set up from a client's offer.
pub(crate) struct OpenPeer {
    pub key: PeerKey,
    pub client_id: u32,
    pub offer_sdp: String,
    /// When the offer reached the slave (its setup time starts there).
    pub offered_at: Instant,
    /// The connection's counters, shared with the slave's registry.
    pub stats: Arc<PeerStats>,
    /// The answer (SDP, every candidate in it), or why there is none.
    pub answer: oneshot::Sender<Result<String, AnswerError>>,
    /// Dropped when the shard releases the peer.
    pub released: oneshot::Sender<()>,
}

/// What a shard is asked to do.
pub(crate) enum Command {
    Open(Box<OpenPeer>),
    /// A renegotiation of a live peer.
    Offer {
        peer: PeerKey,
        sdp: String,
        answer: oneshot::Sender<Result<String, AnswerError>>,
    },
    /// A trickled remote candidate (`candidate:…`).
    Candidate {
        peer: PeerKey,
        candidate: String,
    },
    /// Release the peer (its signalling ended).
    Close {
        peer: PeerKey,
    },
    Send {
        peer: PeerKey,
        channel: ChannelKey,
        data: Bytes,
        is_text: bool,
    },
    /// The channel's queue went over its limit (see `ChannelHandle::send`).
    Overflowed {
        peer: PeerKey,
        channel: ChannelKey,
    },
    CloseChannel {
        peer: PeerKey,
        channel: ChannelKey,
    },
    /// The connection's figures (`None`: the peer is gone).
    Stats {
        peer: PeerKey,
        reply: oneshot::Sender<Option<ConnectionStats>>,
    },
}

/// The way to one shard.
struct ShardHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// What the shard counts (written by it alone), its peers among them.
    stats: Arc<ShardStats>,
    port: u16,
}

/// The slave's shards.
pub(crate) struct Engine {
    shards: Vec<ShardHandle>,
}

/// Shards bound but not running yet (they need the slave's shared state).
pub(crate) struct Bound {
    shards: Vec<BoundShard>,
}

struct BoundShard {
    socket: socket::ShardSocket,
    announced: Vec<IpAddr>,
    commands: mpsc::UnboundedSender<Command>,
    receiver: mpsc::UnboundedReceiver<Command>,
    stats: Arc<ShardStats>,
}

/// How many shards to run: one per core by default, one for a fixed port,
/// one per port of a range (at most one per core).
fn shard_ports(config: &SlaveConfig) -> Vec<u16> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match (config.udp_port, config.port_range) {
        (Some(port), _) => vec![port],
        (_, Some((lo, hi))) => (lo..=hi).take(cores).collect(),
        (None, None) => vec![0; cores],
    }
}

impl Engine {
    /// Binds the shards' sockets. With a port range, a port in use is
    /// skipped for the next one of the range.
    pub(crate) fn bind(config: &SlaveConfig) -> io::Result<(Engine, Bound)> {
        let announced = crate::transport::host::host_addresses(&config.ice_addresses);
        let bind_ip = socket::bind_address(&config.ice_addresses, &announced);
        let wanted = shard_ports(config);
        let mut candidates: Box<dyn Iterator<Item = u16>> = match config.port_range {
            // `build` refused a range with a port.
            Some((lo, hi)) => Box::new(lo..=hi),
            _ => Box::new(wanted.clone().into_iter()),
        };
        let mut shards = Vec::new();
        let mut handles = Vec::new();
        let mut last_error = None;
        while shards.len() < wanted.len() {
            let Some(port) = candidates.next() else {
                return Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port in portRange")));
            };
            let socket = match socket::ShardSocket::bind(SocketAddr::new(bind_ip, port)) {
                Ok(socket) => socket,
                Err(e) if config.port_range.is_some() => {
                    tracing::debug!(port, "cannot bind: {e}");
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let port = socket.local_addr()?.port();
            let (commands, receiver) = mpsc::unbounded_channel();
            let stats = Arc::new(ShardStats::default());
            handles.push(ShardHandle { commands: commands.clone(), stats: stats.clone(), port });
            shards.push(BoundShard { socket, announced: announced.clone(), commands, receiver, stats });
        }
        let ports: Vec<u16> = handles.iter().map(|h| h.port).collect();
        tracing::info!(?announced, ?ports, "the slave's host candidates");
        Ok((Engine { shards: handles }, Bound { shards }))
    }

    /// The UDP ports the shards listen on.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.shards.iter().map(|s| s.port).collect()
    }

    /// The command queue of the least loaded shard, for a new peer (sent
    /// there as [`Command::Open`]).
    pub(crate) fn least_loaded(&self) -> mpsc::UnboundedSender<Command> {
        let shard = self.shards.iter().min_by_key(|s| s.stats.peers.load(Ordering::Relaxed)).expect("at least one shard");
        shard.commands.clone()
    }

    /// Peers held, channels open and the traffic so far, summed over the shards.
    pub(crate) fn totals(&self) -> (usize, usize, ChannelStats) {
        let mut traffic = ChannelStats::default();
        let (mut peers, mut channels) = (0, 0);
        for shard in &self.shards {
            peers += shard.stats.peers.load(Ordering::Relaxed);
            channels += shard.stats.channels.load(Ordering::Relaxed);
            let t = shard.stats.traffic.read();
            traffic.messages_in += t.messages_in;
            traffic.messages_out += t.messages_out;
            traffic.bytes_in += t.bytes_in;
            traffic.bytes_out += t.bytes_out;
        }
        (peers, channels, traffic)
    }
}

impl Bound {
    /// Starts the shard tasks; each asks `stun_servers` for its reflexive address.
    pub(crate) fn start(self, shared: &Arc<SlaveShared>, stun_servers: &[SocketAddr]) {
        let crypto = crate::transport::SharedCrypto::new();
        for bound in self.shards {
            let ipv4_only = bound.socket.local_addr().is_ok_and(|a| a.is_ipv4());
            let servers = stun_servers.iter().filter(|s| s.is_ipv4() || !ipv4_only).copied().collect();
            let shard = shard::Shard::new(
                shared.clone(),
                bound.socket,
                bound.announced,
                bound.stats,
                bound.commands,
                crypto.clone(),
                servers,
            );
            shared.spawn_guarded("a WebRTC shard", shard.run(bound.receiver));
        }
    }
}

/// The UDP addresses of the STUN (and TURN) servers of `config`, resolved
/// within `connect_timeout`; a server that cannot be resolved is skipped.
pub(crate) async fn stun_servers(config: &SlaveConfig) -> Vec<SocketAddr> {
    crate::transport::reflexive::resolve(&config.ice_servers, config.connect_timeout, "the slave").await
}
