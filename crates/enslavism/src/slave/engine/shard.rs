//! One shard: a task that owns a UDP socket and the peer connections on it.
//!
//! The loop waits for one of: commands (a batch at a time), datagrams (a batch
//! at a time), the earliest peer deadline. What it touched is then driven
//! once: bookkeeping of channels, then str0m's output (events, messages,
//! datagrams onto the socket) up to the peer's next deadline.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::channel::ChannelId as RtcChannelId;
use str0m::net::Transmit;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};
use tokio::sync::{mpsc, oneshot};

use super::link::LinkFigures;
use super::rtc_peer::{self, PeerTemplate, SCTP_BUFFER};
use super::socket::{Backlog, ShardSocket};
use super::{AnswerError, Command, OpenPeer, PeerKey};
use crate::slave::channel::{ChannelCounters, ChannelHandle, ChannelInfo, LOW_THRESHOLD_DISARMED, SEND_QUEUE_LIMIT};
use crate::slave::stats::{PeerStats, ShardStats, Traffic};
use crate::slave::{ChannelId, SlaveEvent, SlaveShared};
use crate::transport::reflexive::Reflexive;
use crate::transport::stun::binding_request_ufrag;
use crate::transport::{empty_message_dropped, settle, settle_due, SharedCrypto};

/// How long a peer with no channel left waits for the browser to open another.
const PEER_IDLE_GRACE: Duration = Duration::from_secs(1);
/// How long after its first channel opens a peer's first DTLS datagrams
/// still go out twice (see [`Peer::duplicate_until`]).
const SETUP_REDUNDANCY: Duration = Duration::from_secs(2);
/// How many of a peer's DTLS datagrams go out twice at most (see
/// [`Peer::duplicate_until`]). A setup and its first messages are about ten;
/// without a bound, a bulk send begun at once went out twice for 2 s:
/// slave→browser fell from 81,000 to 20,000–27,000 msg/s in the throughput
/// benchmark, which sends for 2 s right after the channel opens.
const SETUP_COPIES: u8 = 16;
/// How long a closing channel waits for SCTP to deliver what it was given.
/// (webrtc-rs reset the stream at once on close, and libwebrtc then neither
/// gets the rest nor reports the close: 1.2 MB sent then closed, 776 kB
/// arrived and the browser's channel stayed open.)
const CLOSE_DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Commands taken per wake-up.
const COMMAND_BATCH: usize = 256;
/// Addresses remembered per peer (its candidate pairs' remote ends).
const MAX_PEER_ADDRESSES: usize = 8;
/// Bytes of a channel's messages str0m may hold (its `buffered_amount`,
/// released when SCTP has them acknowledged); the rest waits in the
/// channel's queue. This bounds what is in flight to the browser, and
/// Chromium reads WebRTC through a small UDP receive buffer: with 128 KiB,
/// bulk sends overflowed it (RcvbufErrors in the namespace), the
/// retransmissions were lost too, Chromium's reassembly queue filled
/// behind the gap, its advertised window wrapped below zero to 4 GiB and
/// it aborted ("Reassembly Queue is exhausted", see doc/upstream.md) in 8
/// of 12 throughput runs; 64 KiB failed 2 of 4, 48 KiB 0 of 5, 32 KiB 0 of
/// 4, at the same rate (100–129k msg/s). Without any bound, a bulk send to
/// a webrtc-rs peer stalled for seconds on retransmission timeouts. The
/// cost: at most 32 KiB per round trip and channel (2.6 Mbit/s at 100 ms).
const SCTP_SEND_BUFFER: usize = 32 * 1024;

/// What woke the shard's loop.
enum Woke {
    Shutdown,
    Commands,
    Readable,
    Timer,
    Writable,
}

/// Brackets one wake-up's events for the hooks; ends it when dropped, a
/// panic included.
struct EventBatch<'a>(&'a dyn crate::slave::SlaveHooks);

impl<'a> EventBatch<'a> {
    fn begin(hooks: &'a dyn crate::slave::SlaveHooks) -> Self {
        hooks.begin_batch();
        EventBatch(hooks)
    }
}

impl Drop for EventBatch<'_> {
    fn drop(&mut self) {
        self.0.end_batch();
    }
}

/// One data channel of a peer, as its shard keeps it.
struct Channel {
    rtc_id: RtcChannelId,
    /// Our id, given when announced (0 before).
    id: ChannelId,
    /// The properties to announce; `None` once announced.
    pending: Option<ChannelInfo>,
    counters: Arc<ChannelCounters>,
    /// Bytes of our messages str0m holds, as far as we know: counted up by
    /// our sends, down to str0m's buffered amount when that is lower.
    outstanding: usize,
    /// Messages waiting for room in SCTP (see [`SCTP_SEND_BUFFER`]).
    queue: VecDeque<(Bytes, bool)>,
    /// Set when the channel is to close once delivered (or at this deadline).
    closing: Option<Instant>,
    close_sent: bool,
}

impl Channel {
    fn new(rtc_id: RtcChannelId, info: ChannelInfo) -> Self {
        Channel {
            rtc_id,
            id: 0,
            pending: Some(info),
            counters: Arc::default(),
            outstanding: 0,
            queue: VecDeque::new(),
            closing: None,
            close_sent: false,
        }
    }
}

/// One client's peer connection.
struct Peer {
    rtc: Rtc,
    client_id: u32,
    ufrag: Box<[u8]>,
    /// Remote addresses routed to this peer.
    addresses: Vec<SocketAddr>,
    channels: Vec<Channel>,
    known_streams: HashSet<u16>,
    /// The source address of our last datagram (see [`source`]).
    source: Option<IpAddr>,
    /// Dropped on release: tells the peer's signalling task.
    released: Option<oneshot::Sender<()>>,
    /// Until a first channel is announced.
    setup_deadline: Option<Instant>,
    /// Armed while no channel is live after one was.
    idle_deadline: Option<Instant>,
    /// The deadline the peer is filed under in the shard's timers.
    scheduled: Option<Instant>,
    dirty: bool,
    release: bool,
    /// A panic caught while working on this peer, to report as it is released.
    panic: Option<String>,
    /// What the connection counts (shared with the slave's registry).
    stats: Arc<PeerStats>,
    /// When the offer reached the slave; taken when the first channel opens.
    offered_at: Option<Instant>,
    /// What the socket carried for this peer.
    link: LinkFigures,
    /// What str0m produced since the peer was last driven (see `settle`):
    /// datagrams to send, events to report.
    pending: Vec<Output>,
    /// str0m's next timeout, as the last drain gave it (or why it failed).
    next_timeout: Result<Instant, RtcError>,
    /// Datagrams taken since the last drain (see `transport::settle_due`).
    unsettled: u16,
    /// When the last datagram came from the browser (ICE's liveness is ours
    /// to judge: str0m reports a disconnection, never a failure).
    heard_at: Instant,
    /// Until then, each DTLS datagram (a handshake flight, or SCTP in
    /// application-data records) is sent twice: the first loss of one of
    /// ours costs a whole timer (dimpl's or the browser's 1 s for a flight,
    /// sctp-proto's RTO.Initial of 3 s for SCTP, neither settable through
    /// str0m), and a setup is a handful of them (flights 4 and 6, INIT ACK,
    /// COOKIE ACK, DCEP ACK, the first messages). A copy repeats a DTLS
    /// sequence number, so the peer's DTLS drops it, or takes it for a
    /// retransmission and resends its own flight. Until the setup is over,
    /// then SETUP_REDUNDANCY, and for at most [`SETUP_COPIES`] datagrams
    /// (`copies_left`).
    duplicate_until: Instant,
    copies_left: u8,
}

impl Peer {
    /// Marks the peer for release after a panic (its state may be broken).
    fn panicked(&mut self, message: String) {
        self.release = true;
        self.panic.get_or_insert(message);
    }
}

/// What a peer's work needs besides the peer.
struct Context<'a> {
    shared: &'a SlaveShared,
    socket: &'a ShardSocket,
    backlog: &'a mut Backlog,
    by_addr: &'a mut HashMap<SocketAddr, PeerKey>,
    commands: &'a mpsc::UnboundedSender<Command>,
    stats: &'a ShardStats,
    /// The shard serves several addresses: each datagram names its source.
    wildcard: bool,
    /// The driven peer's events, kept to be handled once its datagrams are
    /// out (reused: no allocation per turn).
    events: &'a mut Vec<Event>,
}

pub(crate) struct Shard {
    shared: Arc<SlaveShared>,
    socket: ShardSocket,
    backlog: Backlog,
    port: u16,
    wildcard: bool,
    /// The local address a datagram arrived at, when the kernel did not say.
    default_local: IpAddr,
    template: PeerTemplate,
    reflexive: Reflexive,
    stats: Arc<ShardStats>,
    /// For the channels' handles.
    commands: mpsc::UnboundedSender<Command>,
    /// Boxed: a `Peer` holds its `Rtc` inline (several kB), and a map keeps
    /// up to half its slots free (with `rtc`: 7.6 kB per peer unboxed).
    peers: HashMap<PeerKey, Box<Peer>>,
    by_addr: HashMap<SocketAddr, PeerKey>,
    by_ufrag: HashMap<Box<[u8]>, PeerKey>,
    timers: BTreeSet<(Instant, PeerKey)>,
    dirty: Vec<PeerKey>,
    /// See [`Context::events`].
    events: Vec<Event>,
}

impl Shard {
    pub(super) fn new(
        shared: Arc<SlaveShared>,
        socket: ShardSocket,
        announced: Vec<IpAddr>,
        stats: Arc<ShardStats>,
        commands: mpsc::UnboundedSender<Command>,
        crypto: SharedCrypto,
        stun_servers: Vec<SocketAddr>,
    ) -> Self {
        let local = socket.local_addr().expect("a bound socket has an address");
        let template = PeerTemplate::new(&announced, local.port(), crypto);
        Shard {
            port: local.port(),
            wildcard: local.ip().is_unspecified(),
            default_local: announced.first().copied().unwrap_or(local.ip()),
            template,
            reflexive: Reflexive::new(stun_servers, Instant::now()),
            socket,
            backlog: Backlog::default(),
            stats,
            commands,
            shared,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            timers: BTreeSet::new(),
            dirty: Vec::new(),
            events: Vec::new(),
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        // Parked an hour away while no peer has a deadline.
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        let shutdown = self.shared.shutdown.clone();
        let hooks = self.shared.hooks.clone();
        loop {
            let next = [self.timers.first().map(|(at, _)| *at), self.reflexive.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map_or_else(far, tokio::time::Instant::from_std);
            if timer.deadline() != next {
                timer.as_mut().reset(next);
            }
            // Unbiased: with a priority order, a JS sender that always has a
            // command waiting would keep the socket (and its SACKs) unread.
            let woke = tokio::select! {
                _ = shutdown.cancelled() => Woke::Shutdown,
                n = commands.recv_many(&mut batch, COMMAND_BATCH) => if n == 0 { Woke::Shutdown } else { Woke::Commands },
                readable = self.socket.readable() => match readable {
                    Ok(()) => Woke::Readable,
                    Err(e) => {
                        tracing::error!("the UDP socket failed: {e}");
                        Woke::Shutdown
                    }
                },
                _ = &mut timer => Woke::Timer,
                writable = self.socket.writable(), if !self.backlog.is_empty() => {
                    if writable.is_ok() {
                        self.backlog.flush(&self.socket);
                    }
                    Woke::Writable
                }
            };
            // What this wake-up makes the application hear, it hears at once (see `begin_batch`).
            let _batch = EventBatch::begin(&*hooks);
            match woke {
                Woke::Shutdown => break,
                Woke::Commands => {
                    for command in batch.drain(..) {
                        self.command(command);
                    }
                }
                Woke::Readable => self.read(),
                Woke::Timer => self.timeouts(),
                Woke::Writable => {}
            }
            self.drive_dirty();
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.release(key, "the slave is closing");
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Open(open) => self.open(*open),
            Command::Offer { peer, sdp, answer } => {
                let config = &self.shared.config;
                let result = match self.peers.get_mut(&peer) {
                    Some(p) => {
                        let mut created = Vec::new();
                        let applied = guarded(|| {
                            rtc_peer::apply_offer(&mut p.rtc, &sdp, &mut p.known_streams, &mut created, &mut p.pending, config)
                        });
                        match applied {
                            Ok(Ok(sdp)) => {
                                p.channels.extend(created.into_iter().map(|(rtc_id, info)| Channel::new(rtc_id, info)));
                                p.idle_deadline = None;
                                // Its drains kept no deadline: a timeout now
                                // asks str0m for the next one.
                                p.next_timeout = Ok(Instant::now());
                                Ok(sdp)
                            }
                            Ok(Err(e)) => Err(AnswerError::Rtc(e)),
                            Err(panic) => {
                                p.panicked(panic);
                                Err(AnswerError::Gone)
                            }
                        }
                    }
                    None => Err(AnswerError::Gone),
                };
                let _ = answer.send(result);
                self.touch(peer);
            }
            Command::Candidate { peer, candidate } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    match Candidate::from_sdp_string(&candidate) {
                        Ok(candidate) => {
                            p.rtc.add_remote_candidate(candidate);
                            p.next_timeout = settle(&mut p.rtc, &mut p.pending);
                        }
                        Err(e) => tracing::debug!(client_id = p.client_id, "remote candidate refused: {e}"),
                    }
                    self.touch(peer);
                }
            }
            Command::Close { peer } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.release = true;
                    self.touch(peer);
                }
            }
            Command::Send { peer, channel, data, is_text } => self.send(peer, channel, data, is_text),
            Command::Overflowed { peer, channel } => {
                let Some(p) = self.peers.get_mut(&peer) else { return };
                let Some(ch) = p.channels.iter_mut().find(|c| c.rtc_id == channel) else { return };
                tracing::debug!(client_id = p.client_id, channel = ch.id, "send queue over its limit; closing the channel");
                self.shared.hooks.on_event(SlaveEvent::ChannelError {
                    channel: ch.id,
                    message: format!("send queue full ({SEND_QUEUE_LIMIT} bytes the peer has not taken); the channel closes"),
                });
                ch.closing.get_or_insert(Instant::now() + CLOSE_DRAIN_LIMIT);
                self.touch(peer);
            }
            Command::CloseChannel { peer, channel } => {
                let Some(p) = self.peers.get_mut(&peer) else { return };
                let Some(ch) = p.channels.iter_mut().find(|c| c.rtc_id == channel) else { return };
                ch.closing.get_or_insert(Instant::now() + CLOSE_DRAIN_LIMIT);
                self.touch(peer);
            }
            Command::Stats { peer, reply } => {
                let stats = self.peers.get(&peer).map(|p| {
                    let mut stats = p.link.connection_stats();
                    let traffic = p.stats.traffic.read();
                    stats.messages_in = traffic.messages_in;
                    stats.messages_out = traffic.messages_out;
                    stats.bytes_in = traffic.bytes_in;
                    stats.bytes_out = traffic.bytes_out;
                    stats
                });
                let _ = reply.send(stats);
            }
        }
    }

    /// Queues a message and hands SCTP what it has room for. What cannot be
    /// sent leaves the buffered amount.
    fn send(&mut self, peer: PeerKey, channel: RtcChannelId, data: Bytes, is_text: bool) {
        let len = data.len();
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let Some(ch) = p.channels.iter_mut().find(|c| c.rtc_id == channel) else { return };
        if ch.counters.overflowed.load(Ordering::Relaxed) || ch.closing.is_some() {
            ch.counters.buffered.fetch_sub(len, Ordering::Relaxed);
            return;
        }
        if p.rtc.channel(channel).is_none() {
            ch.counters.buffered.fetch_sub(len, Ordering::Relaxed);
            return;
        }
        if len > SCTP_BUFFER {
            // str0m would never take it, and the channel would wait behind it.
            ch.counters.buffered.fetch_sub(len, Ordering::Relaxed);
            let message = format!("a {len}-byte message is over what a connection can hold ({SCTP_BUFFER} bytes); dropped");
            self.shared.hooks.on_event(SlaveEvent::ChannelError { channel: ch.id, message });
            return;
        }
        ch.queue.push_back((data, is_text));
        feed(ch, &mut p.rtc, &mut p.pending, &mut p.next_timeout, [&p.stats.traffic, &self.stats.traffic]);
        if !p.dirty {
            p.dirty = true;
            self.dirty.push(peer);
        }
    }

    fn open(&mut self, open: OpenPeer) {
        let OpenPeer { key, client_id, offer_sdp, offered_at, stats, answer, released } = open;
        let config = &self.shared.config;
        let mut known_streams = HashSet::new();
        let made = guarded(|| self.template.answer(Instant::now(), &offer_sdp, config, &mut known_streams));
        let rtc_peer::Answered { rtc, sdp, created, pending } = match made {
            Ok(Ok(made)) => made,
            Ok(Err(e)) => {
                let _ = answer.send(Err(AnswerError::Rtc(e)));
                return;
            }
            Err(panic) => {
                let message = format!("internal error in a peer connection: {panic}");
                self.shared.hooks.on_event(SlaveEvent::InternalError { message });
                let _ = answer.send(Err(AnswerError::Gone));
                return;
            }
        };
        let Some(ufrag) = rtc_peer::local_ufrag(&sdp).map(|u| u.as_bytes().into()) else {
            let _ = answer.send(Err(AnswerError::Gone));
            return;
        };
        let now = Instant::now();
        let peer = Peer {
            rtc,
            client_id,
            ufrag,
            addresses: Vec::new(),
            channels: created.into_iter().map(|(rtc_id, info)| Channel::new(rtc_id, info)).collect(),
            known_streams,
            source: None,
            released: Some(released),
            setup_deadline: Some(now + config.peer_setup_timeout),
            idle_deadline: None,
            scheduled: None,
            dirty: false,
            release: false,
            panic: None,
            stats,
            offered_at: Some(offered_at),
            link: LinkFigures::default(),
            pending,
            next_timeout: Ok(now),
            unsettled: 0,
            heard_at: now,
            duplicate_until: now + config.peer_setup_timeout,
            copies_left: SETUP_COPIES,
        };
        self.by_ufrag.insert(peer.ufrag.clone(), key);
        self.peers.insert(key, Box::new(peer));
        self.stats.peers.fetch_add(1, Ordering::Relaxed);
        self.shared.hooks.on_event(SlaveEvent::Connection { client_id, session: key });
        if answer.send(Ok(sdp)).is_err() {
            // The signalling task is gone: nobody will ever use this peer.
            self.peers.get_mut(&key).expect("just inserted").release = true;
        }
        self.touch(key);
    }

    /// Reads every datagram waiting and hands each to its peer.
    fn read(&mut self) {
        let Shard { socket, peers, by_addr, by_ufrag, dirty, port, default_local, reflexive, .. } = self;
        let (port, default_local) = (*port, *default_local);
        let now = Instant::now();
        let mut mapped = None;
        let drained = socket.drain(|from, to, datagram| {
            if let Some(address) = reflexive.handle_response(from, datagram, now) {
                mapped = Some(address);
                return;
            }
            // A Binding request names its peer: a new address, or a browser
            // that changed sockets. Anything else must come from a known address.
            let key = match binding_request_ufrag(datagram).and_then(|u| by_ufrag.get(u)) {
                Some(key) => *key,
                None => match by_addr.get(&from) {
                    Some(key) => *key,
                    None => {
                        tracing::trace!(%from, "datagram from an unknown address dropped");
                        return;
                    }
                },
            };
            let Some(peer) = peers.get_mut(&key) else { return };
            let local = SocketAddr::new(to.unwrap_or(default_local), port);
            peer.link.received(datagram, now);
            peer.heard_at = now;
            let handled = guarded(|| {
                receive(&mut peer.rtc, now, from, local, datagram);
                // Once set up, drained here only every few datagrams (then in `drive`).
                peer.unsettled += 1;
                if settle_due(peer.unsettled, peer.setup_deadline.is_none()) {
                    peer.unsettled = 0;
                    peer.next_timeout = settle(&mut peer.rtc, &mut peer.pending);
                }
            });
            if let Err(panic) = handled {
                peer.panicked(panic);
            }
            if !peer.dirty {
                peer.dirty = true;
                dirty.push(key);
            }
        });
        if let Err(e) = drained {
            tracing::debug!("reading the UDP socket: {e}");
        }
        if let Some(mapped) = mapped {
            self.template.add_reflexive(mapped);
        }
    }

    /// Runs the timers that are due.
    fn timeouts(&mut self) {
        let now = Instant::now();
        let (socket, backlog) = (&self.socket, &mut self.backlog);
        self.reflexive.handle_timeout(now, |to, datagram| backlog.send(socket, to, None, datagram));
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            peer.scheduled = None;
            let handled = guarded(|| {
                peer.next_timeout = match peer.rtc.handle_input(Input::Timeout(now)) {
                    Ok(()) => settle(&mut peer.rtc, &mut peer.pending),
                    Err(e) => Err(e),
                };
            });
            if let Err(panic) = handled {
                peer.panicked(panic);
            }
            self.touch(key);
        }
    }

    fn touch(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(&key) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Drives every peer touched since the last time.
    fn drive_dirty(&mut self) {
        while let Some(key) = self.dirty.pop() {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            peer.dirty = false;
            let mut cx = Context {
                shared: &self.shared,
                socket: &self.socket,
                backlog: &mut self.backlog,
                by_addr: &mut self.by_addr,
                commands: &self.commands,
                stats: &self.stats,
                wildcard: self.wildcard,
                events: &mut self.events,
            };
            let next = if peer.release {
                None
            } else {
                guarded(|| drive(key, peer, &mut cx)).unwrap_or_else(|panic| {
                    peer.panicked(panic);
                    None
                })
            };
            if let Some(panic) = peer.panic.take() {
                let message = format!("internal error in a peer connection: {panic}");
                self.shared.hooks.on_event(SlaveEvent::InternalError { message });
            }
            let peer = self.peers.get_mut(&key).expect("driven above");
            match next {
                Some(at) => {
                    if peer.scheduled != Some(at) {
                        if let Some(old) = peer.scheduled.take() {
                            self.timers.remove(&(old, key));
                        }
                        self.timers.insert((at, key));
                        peer.scheduled = Some(at);
                    }
                }
                None => self.release(key, "released"),
            }
        }
    }

    /// Removes a peer: its channels close, then the connection, as the
    /// application hears it; the browser is told (SCTP ABORT, DTLS close_notify).
    fn release(&mut self, key: PeerKey, why: &str) {
        let Some(mut peer) = self.peers.remove(&key) else { return };
        tracing::debug!(client_id = peer.client_id, "peer connection released: {why}");
        for ch in &peer.channels {
            close_channel_handle(&self.shared, &self.stats, ch);
        }
        if let Some(at) = peer.scheduled.take() {
            self.timers.remove(&(at, key));
        }
        if self.by_ufrag.get(&peer.ufrag) == Some(&key) {
            self.by_ufrag.remove(&peer.ufrag);
        }
        for addr in &peer.addresses {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        let (socket, backlog) = (&self.socket, &mut self.backlog);
        let wildcard = self.wildcard;
        let closed = guarded(|| {
            for output in peer.pending.drain(..) {
                if let Output::Transmit(t) = output {
                    backlog.send(socket, t.destination, source(wildcard, t.source.ip()), &t.contents);
                }
            }
            let _ = peer.rtc.close();
            // The close's own datagrams (SCTP's shutdown, DTLS close_notify)
            // go out now; str0m ends the drain on its own (bounded, as a
            // loop guard).
            for _ in 0..64 {
                match peer.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => backlog.send(socket, t.destination, source(wildcard, t.source.ip()), &t.contents),
                    Ok(Output::Event(_)) => {}
                    Ok(Output::Timeout(_)) | Err(_) => break,
                }
            }
        });
        if closed.is_err() {
            tracing::debug!(client_id = peer.client_id, "closing the peer connection failed");
        }
        self.stats.peers.fetch_sub(1, Ordering::Relaxed);
        self.shared.hooks.on_event(SlaveEvent::ConnectionClose { client_id: peer.client_id, session: key });
        drop(peer.released.take());
    }
}

/// Runs `f`, turning a panic (a bug in str0m or ours) into its message:
/// the caller releases that one peer, the others go on.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = crate::panic_message(&*panic);
        tracing::error!("caught a panic in a peer connection: {message}");
        message
    })
}

/// The application no longer reaches this channel; it hears of the close if
/// it heard of the channel.
fn close_channel_handle(shared: &SlaveShared, stats: &ShardStats, ch: &Channel) {
    if ch.pending.is_none() {
        shared.channels().remove(&ch.id);
        stats.channels.fetch_sub(1, Ordering::Relaxed);
        shared.hooks.on_event(SlaveEvent::ChannelClose { channel: ch.id, stats: ch.counters.traffic.read() });
    }
}

/// Hands str0m one datagram from `from`. What it cannot parse (not STUN,
/// DTLS or SRTP) or refuses is dropped: a stray or hostile datagram harms
/// nothing.
fn receive(rtc: &mut Rtc, now: Instant, from: SocketAddr, local: SocketAddr, datagram: &[u8]) {
    let Ok(receive) = Receive::new(Protocol::Udp, from, local, datagram) else {
        tracing::trace!(%from, "datagram str0m cannot read dropped");
        return;
    };
    if let Err(e) = rtc.handle_input(Input::Receive(now, receive)) {
        tracing::debug!(%from, "datagram refused: {e}");
    }
}

/// Sends one datagram of the peer's (the first DTLS ones twice during its
/// setup, see [`Peer::duplicate_until`]).
fn transmit(key: PeerKey, peer: &mut Peer, cx: &mut Context<'_>, t: &Transmit, now: Instant) {
    let to = t.destination;
    learn_address(key, peer, cx, to);
    peer.source = source(cx.wildcard, t.source.ip());
    // DTLS records start with their content type, 20 to 63 (RFC 7983); ICE's STUN goes once.
    let dtls = t.contents.first().is_some_and(|b| (20..=63).contains(b));
    let twice = dtls && peer.copies_left > 0 && now < peer.duplicate_until;
    peer.copies_left -= u8::from(twice);
    for _ in 0..1 + usize::from(twice) {
        peer.link.sent(&t.contents, t.source, to, now);
        cx.backlog.send(cx.socket, to, peer.source, &t.contents);
    }
}

/// Takes what the peer has for us and sends what it has for the browser;
/// returns its next deadline, or `None` to release it.
fn drive(key: PeerKey, peer: &mut Peer, cx: &mut Context<'_>) -> Option<Instant> {
    let now = Instant::now();
    // What the datagrams taken since the last drain produced (str0m settles
    // SCTP's acknowledgements here: the channels' room is known after it,
    // and what it released goes out in this turn's datagrams).
    if peer.unsettled > 0 {
        peer.unsettled = 0;
        peer.next_timeout = settle(&mut peer.rtc, &mut peer.pending);
    }
    channel_bookkeeping(peer, cx, now);
    // What str0m produced since the last turn: the datagrams go out first,
    // the events are handled once they are out (what the browser waits
    // for, SCTP acknowledgements or a channel's DCEP ACK, does not wait for
    // the application).
    let mut pending = std::mem::take(&mut peer.pending);
    for output in pending.drain(..) {
        match output {
            Output::Transmit(t) => transmit(key, peer, cx, &t, now),
            Output::Event(event) => cx.events.push(event),
            Output::Timeout(_) => {}
        }
    }
    peer.pending = pending;
    let mut events = std::mem::take(cx.events);
    let mut live = true;
    for event in events.drain(..) {
        live = live && on_event(key, peer, cx, event, now);
    }
    *cx.events = events;
    let mut next = match &peer.next_timeout {
        Ok(at) if live && peer.rtc.is_alive() => *at,
        Ok(_) => return None,
        Err(e) => {
            tracing::debug!(client_id = peer.client_id, "the peer connection failed: {e}");
            return None;
        }
    };
    peer.stats.set_rtt(peer.link.rtt());
    if peer.setup_deadline.is_some_and(|at| at <= now) {
        tracing::debug!(client_id = peer.client_id, "no data channel opened in time");
        return None;
    }
    if peer.idle_deadline.is_some_and(|at| at <= now) {
        tracing::debug!(client_id = peer.client_id, "every channel closed");
        return None;
    }
    // Once set up, a browser that has sent nothing (not even ICE's
    // keepalives, every few seconds) for this long is gone: disconnected,
    // then failed, as the timeouts are documented.
    let config = &cx.shared.config;
    let silence = config.ice_disconnected_timeout + config.ice_failed_timeout;
    let silent_until = peer.setup_deadline.is_none().then(|| peer.heard_at + silence);
    if silent_until.is_some_and(|at| at <= now) {
        tracing::debug!(client_id = peer.client_id, "nothing heard from the browser in time");
        return None;
    }
    let own = [peer.setup_deadline, peer.idle_deadline, silent_until]
        .into_iter()
        .chain(peer.channels.iter().filter(|c| !c.close_sent).map(|c| c.closing));
    for at in own.flatten() {
        next = next.min(at);
    }
    // A deadline already due runs on the next turn, not in a spin.
    Some(next.max(now + Duration::from_millis(1)))
}

/// The source address to give a datagram: only a shard bound to a wildcard
/// chooses (the kernel would pick by route, not by the candidate in use).
fn source(wildcard: bool, local: IpAddr) -> Option<IpAddr> {
    (wildcard && !local.is_unspecified()).then_some(local)
}

/// Routes datagrams from `to` to this peer from now on: the agent sends only
/// to addresses it learned from signalling or from an authenticated check.
fn learn_address(key: PeerKey, peer: &mut Peer, cx: &mut Context<'_>, to: SocketAddr) {
    if cx.by_addr.get(&to) == Some(&key) {
        return;
    }
    cx.by_addr.insert(to, key);
    if !peer.addresses.contains(&to) {
        if peer.addresses.len() == MAX_PEER_ADDRESSES {
            let old = peer.addresses.remove(0);
            if cx.by_addr.get(&old) == Some(&key) {
                cx.by_addr.remove(&old);
            }
        }
        peer.addresses.push(to);
    }
}

/// Handles one event; false to release the peer.
fn on_event(key: PeerKey, peer: &mut Peer, cx: &mut Context<'_>, event: Event, now: Instant) -> bool {
    match event {
        Event::IceConnectionStateChange(state) => {
            tracing::debug!(client_id = peer.client_id, ?state, "ICE state");
            // A disconnection may heal; silence (see `drive`) ends the peer.
            true
        }
        // The browser closed the connection (SCTP ABORT, DTLS close_notify).
        Event::Closed => {
            tracing::debug!(client_id = peer.client_id, "closed by the browser");
            false
        }
        Event::ChannelOpen(rtc_id, _) => {
            if let Some(index) = channel_index(peer, rtc_id) {
                // Counted before it is reported: whoever hears of the
                // channel finds its setup in the stats.
                set_up(peer, cx, now);
                announce(key, peer.client_id, &mut peer.channels[index], cx);
                peer.idle_deadline = None;
            }
            true
        }
        Event::ChannelData(message) => {
            let Some(index) = channel_index(peer, message.id) else { return true };
            set_up(peer, cx, now);
            announce(key, peer.client_id, &mut peer.channels[index], cx);
            let ch = &mut peer.channels[index];
            let len = message.data.len();
            // str0m takes messages up to its own limit (256 KiB); the slave
            // announced, and keeps to, the configured one.
            let limit = cx.shared.config.max_message_size;
            if len > limit {
                tracing::debug!(client_id = peer.client_id, channel = ch.id, len, "message over maxMessageSize");
                cx.shared.hooks.on_event(SlaveEvent::ChannelError {
                    channel: ch.id,
                    message: format!("a {len}-byte message is over maxMessageSize ({limit}); the channel closes"),
                });
                ch.closing.get_or_insert(now);
                return true;
            }
            ch.counters.traffic.received(len);
            peer.stats.traffic.received(len);
            cx.stats.traffic.received(len);
            let event = SlaveEvent::Message { channel: ch.id, data: Bytes::from(message.data), is_text: !message.binary };
            cx.shared.hooks.on_event(event);
            true
        }
        Event::ChannelClose(rtc_id) => {
            if let Some(index) = peer.channels.iter().position(|c| c.rtc_id == rtc_id) {
                let ch = peer.channels.swap_remove(index);
                let was_announced = ch.pending.is_none();
                close_channel_handle(cx.shared, cx.stats, &ch);
                if peer.channels.is_empty() && was_announced {
                    peer.idle_deadline = Some(now + PEER_IDLE_GRACE);
                }
            }
            true
        }
        _ => true,
    }
}

/// The index of a channel in `peer.channels`; a channel the browser opened
/// in-band is added on first sight.
fn channel_index(peer: &mut Peer, rtc_id: RtcChannelId) -> Option<usize> {
    if let Some(index) = peer.channels.iter().position(|c| c.rtc_id == rtc_id) {
        return Some(index);
    }
    let stream_id = peer.rtc.direct_api().sctp_stream_id_by_channel_id(rtc_id)?;
    let info = rtc_peer::channel_info(peer.rtc.channel(rtc_id)?.config()?, stream_id);
    peer.channels.push(Channel::new(rtc_id, info));
    Some(peer.channels.len() - 1)
}

/// Tells the application of a channel, once.
fn announce(key: PeerKey, client_id: u32, ch: &mut Channel, cx: &mut Context<'_>) {
    let Some(info) = ch.pending.take() else { return };
    ch.id = cx.shared.next_channel.fetch_add(1, Ordering::Relaxed);
    cx.shared
        .channels()
        .insert(ch.id, ChannelHandle { shard: cx.commands.clone(), peer: key, rtc_id: ch.rtc_id, counters: ch.counters.clone() });
    cx.stats.channels.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client_id, channel = ch.id, label = %info.label, "data channel");
    cx.shared.hooks.on_event(SlaveEvent::DataChannel { client_id, session: key, channel: ch.id, info });
}

/// A peer's first channel is open: its setup is over (counted once).
fn set_up(peer: &mut Peer, cx: &Context<'_>, now: Instant) {
    peer.setup_deadline = None;
    if let Some(at) = peer.offered_at.take() {
        cx.shared.stats.setup.record(now.saturating_duration_since(at));
        peer.duplicate_until = now + SETUP_REDUNDANCY;
    }
}

/// Hands SCTP the channel's queued messages while it holds less than
/// [`SCTP_SEND_BUFFER`], counting each in the channel's traffic and in
/// `also` (the connection's and the shard's). The writes are followed by
/// one drain of str0m's output into `pending` (see `settle`): a drain
/// after each write made str0m send each message in a datagram of its own
/// and walk its SCTP queue each time (81,000 → 6,000 msg/s to Chromium).
fn feed(
    ch: &mut Channel,
    rtc: &mut Rtc,
    pending: &mut Vec<Output>,
    next_timeout: &mut Result<Instant, RtcError>,
    also: [&Traffic; 2],
) {
    if ch.queue.is_empty() || ch.outstanding >= SCTP_SEND_BUFFER {
        return;
    }
    let Some(mut dc) = rtc.channel(ch.rtc_id) else { return };
    let mut wrote = false;
    while ch.outstanding < SCTP_SEND_BUFFER {
        let Some((data, is_text)) = ch.queue.front() else { break };
        let len = data.len();
        if len == 0 {
            // Written, it would take a stream sequence number with no chunk
            // and stall an ordered channel for good (doc/upstream.md).
            ch.queue.pop_front();
            empty_message_dropped();
            continue;
        }
        let written = dc.write(!is_text, data);
        wrote |= !matches!(written, Ok(false));
        match written {
            Ok(true) => {
                ch.queue.pop_front();
                ch.outstanding += len;
                ch.counters.traffic.sent(len);
                also.iter().for_each(|t| t.sent(len));
            }
            // str0m's buffer for the connection is full: wait for room.
            Ok(false) => break,
            Err(e) => {
                ch.queue.pop_front();
                ch.counters.buffered.fetch_sub(len, Ordering::Relaxed);
                tracing::debug!(channel = ch.id, "send failed: {e}");
            }
        }
    }
    if wrote {
        *next_timeout = settle(rtc, pending);
    }
}

/// Drops what a channel still has queued (it overflowed, or its close is due).
fn drop_queue(ch: &mut Channel) {
    let queued: usize = ch.queue.drain(..).map(|(data, _)| data.len()).sum();
    ch.counters.buffered.fetch_sub(queued, Ordering::Relaxed);
}

/// Follows what SCTP released (buffered amount, its low mark), hands it
/// what was waiting, and closes channels whose close is due.
fn channel_bookkeeping(peer: &mut Peer, cx: &mut Context<'_>, now: Instant) {
    for ch in &mut peer.channels {
        let Some(outstanding) = peer.rtc.channel(ch.rtc_id).map(|mut dc| dc.buffered_amount()) else {
            // Closed under us (or the whole connection is closing): nothing
            // more goes out, and nothing is left to wait for.
            if ch.closing.is_some() && !ch.close_sent {
                drop_queue(ch);
                ch.close_sent = true;
            }
            continue;
        };
        // str0m's figure may count more than our messages (its DCEP
        // acknowledgement of an in-band channel): only what falls below our
        // own count is released.
        if outstanding < ch.outstanding {
            let released = ch.outstanding - outstanding;
            ch.outstanding = outstanding;
            let before = ch.counters.buffered.fetch_sub(released, Ordering::Relaxed);
            let threshold = ch.counters.low_threshold.load(Ordering::Relaxed);
            if threshold != LOW_THRESHOLD_DISARMED && before > threshold && before - released <= threshold && ch.pending.is_none()
            {
                cx.shared.hooks.on_event(SlaveEvent::BufferedAmountLow { channel: ch.id });
            }
        }
        if ch.counters.overflowed.load(Ordering::Relaxed) {
            drop_queue(ch);
        }
        feed(ch, &mut peer.rtc, &mut peer.pending, &mut peer.next_timeout, [&peer.stats.traffic, &cx.stats.traffic]);
        if let Some(deadline) = ch.closing {
            if now >= deadline {
                drop_queue(ch);
            }
            if !ch.close_sent && ((ch.queue.is_empty() && ch.outstanding == 0) || now >= deadline) {
                ch.close_sent = true;
                peer.rtc.direct_api().close_data_channel(ch.rtc_id);
                peer.next_timeout = settle(&mut peer.rtc, &mut peer.pending);
            }
        }
    }
}
