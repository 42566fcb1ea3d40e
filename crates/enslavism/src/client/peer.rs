//! One client connection's transport: a str0m `Rtc` behind a UDP socket of
//! its own, driven by the connection's task (datagrams in and out, timers,
//! the STUN client), and the data channels it carries with their queues.
//!
//! The task calls, in a loop: [`Peer::turn`] (what str0m produced goes out,
//! its events are handled), then waits for the first of [`Peer::readable`],
//! [`Peer::wake_at`] and its other inputs, and hands what came to the peer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};
use tokio::sync::mpsc;

use super::channel::{ChannelCommand, ChannelMessage, ChannelOptions, ChannelState, DataChannel, OpenReply, SEND_BUFFER};
use super::ClientError;
use crate::transport::reflexive::Reflexive;
use crate::transport::{empty_message_dropped, is_transient, settle, settle_due, SharedCrypto};

/// Room for one datagram: what a loopback interface carries at most.
const RECV_BUFFER: usize = 64 * 1024;

thread_local! {
    /// One receive buffer per runtime thread, not per connection: a read
    /// never waits while it holds it (1,000 bots: 64 MiB saved).
    static RECEIVED: RefCell<Vec<u8>> = RefCell::new(vec![0; RECV_BUFFER]);
}

/// A data channel of the connection, as its task keeps it.
struct Channel {
    id: ChannelId,
    state: Arc<ChannelState>,
    /// Until it opens: the application's reply, its handle, and when to give up.
    opening: Option<(OpenReply, DataChannel, Instant)>,
    incoming: mpsc::Sender<ChannelMessage>,
    /// Messages not yet handed to SCTP (`true`: text).
    queue: VecDeque<(Bytes, bool)>,
    /// Bytes of ours str0m holds, unacknowledged.
    in_sctp: usize,
    /// The application asked to close it once its queue is in SCTP.
    close_asked: bool,
}

/// What one turn found for the connection's task.
#[derive(Default)]
pub(super) struct TurnNews {
    /// Local candidates learned since (server-reflexive), to trickle.
    pub candidates: Vec<Candidate>,
    /// A channel closed.
    pub channel_closed: bool,
}

/// A connection's deadlines.
pub(super) struct PeerTiming {
    /// Once connected, a slave silent this long is gone.
    pub silence: Duration,
    /// A channel has this long to open.
    pub open_within: Duration,
}

/// One connection's str0m peer and its socket.
pub(super) struct Peer {
    rtc: Rtc,
    socket: tokio::net::UdpSocket,
    /// Our host candidates' addresses (one per announced address, on the socket's port).
    hosts: Vec<SocketAddr>,
    /// The socket is bound to a wildcard: a datagram is taken as arriving
    /// at our host address of its sender's family.
    wildcard: bool,
    pending: Vec<Output>,
    /// Scratch buffers of [`Peer::turn`], kept for their capacity.
    outputs: Vec<Output>,
    events: Vec<Event>,
    next_timeout: Result<Instant, RtcError>,
    /// Datagrams handed to str0m since its output was last drained.
    unsettled: u16,
    channels: Vec<Channel>,
    /// Where the channels' handles send their commands.
    commands: mpsc::UnboundedSender<ChannelCommand>,
    stun: Reflexive,
    learned: Vec<Candidate>,
    /// When the slave was last heard from, and how long a silence means it is gone.
    heard_at: Instant,
    silence: Duration,
    connected: bool,
    /// Why the connection ended, once it did.
    ended: Option<String>,
    /// How long a channel has to open.
    open_within: Duration,
    /// Names the slave in errors.
    slave: u32,
}

impl Peer {
    /// A peer with a socket announcing `announced` (see
    /// [`crate::transport::host::host_addresses`]; those of one family
    /// only, IPv4 where there is one), asking `stun_servers` for its
    /// server-reflexive address. A slave silent for `silence` once connected
    /// is gone; a channel has `open_within` to open.
    pub(super) fn new(
        crypto: &SharedCrypto,
        announced: &[IpAddr],
        stun_servers: Vec<SocketAddr>,
        timing: PeerTiming,
        commands: mpsc::UnboundedSender<ChannelCommand>,
        slave: u32,
    ) -> io::Result<Peer> {
        // One socket, one family: a dual-stack socket would see IPv4 peers
        // as mapped IPv6 addresses, which str0m's candidates do not match.
        let ipv4 = announced.iter().any(IpAddr::is_ipv4);
        let announced: Vec<IpAddr> = announced.iter().filter(|ip| ip.is_ipv4() == ipv4).copied().collect();
        let bind = match announced.as_slice() {
            [one] => *one,
            _ if ipv4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            _ => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(bind, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = tokio::net::UdpSocket::from_std(std_socket)?;
        let port = socket.local_addr()?.port();
        let now = Instant::now();
        let mut rtc = crypto
            .rtc_config()
            // Data channels only: no codec to offer.
            .clear_codecs()
            .build(now);
        let mut pending = Vec::new();
        let hosts: Vec<SocketAddr> = announced.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        for addr in &hosts {
            match Candidate::host(*addr, "udp") {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                }
                Err(e) => tracing::warn!(%addr, "host candidate refused: {e}"),
            }
        }
        let next_timeout = settle(&mut rtc, &mut pending);
        let servers = stun_servers.into_iter().filter(|s| hosts.iter().any(|h| h.is_ipv4() == s.is_ipv4())).collect();
        Ok(Peer {
            rtc,
            socket,
            hosts,
            wildcard: bind.is_unspecified(),
            pending,
            outputs: Vec::new(),
            events: Vec::new(),
            next_timeout,
            unsettled: 0,
            channels: Vec::new(),
            commands,
            stun: Reflexive::new(servers, now),
            learned: Vec::new(),
            heard_at: now,
            silence: timing.silence,
            connected: false,
            ended: None,
            open_within: timing.open_within,
            slave,
        })
    }

    /// The first offer, carrying `channels` (each gets its str0m id, in order).
    pub(super) fn offer(
        &mut self,
        channels: Vec<ChannelConfig>,
    ) -> Result<(String, SdpPendingOffer, Vec<ChannelId>), ClientError> {
        let mut api = self.rtc.sdp_api();
        let ids = channels.into_iter().map(|config| api.add_channel_with_config(config)).collect();
        let (offer, pending): (SdpOffer, SdpPendingOffer) =
            api.apply().ok_or_else(|| ClientError::Peer("str0m made no offer for the first channels".into()))?;
        self.next_timeout = settle(&mut self.rtc, &mut self.pending);
        Ok((offer.to_sdp_string(), pending, ids))
    }

    /// Applies the slave's answer to the offer `pending`.
    pub(super) fn accept_answer(&mut self, pending: SdpPendingOffer, sdp: &str) -> Result<(), ClientError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| ClientError::Peer(format!("unusable answer: {e}")))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        self.next_timeout = settle(&mut self.rtc, &mut self.pending);
        Ok(())
    }

    /// Adds a channel to the established connection (in-band: str0m sends
    /// its DCEP open; negotiated: both ends know it from the offer).
    pub(super) fn add_channel(&mut self, config: ChannelConfig) -> ChannelId {
        let id = self.rtc.direct_api().create_data_channel(config);
        self.next_timeout = settle(&mut self.rtc, &mut self.pending);
        id
    }

    /// Closes a channel the application never got (its answer said no, or
    /// a 0.9.0 slave takes it in-band instead).
    pub(super) fn drop_channel(&mut self, id: ChannelId) {
        self.rtc.direct_api().close_data_channel(id);
        self.next_timeout = settle(&mut self.rtc, &mut self.pending);
    }

    /// Waits for the channel `id` to open, until `open_by`; then `reply`
    /// gets its handle.
    pub(super) fn expect(&mut self, id: ChannelId, label: String, options: ChannelOptions, reply: OpenReply, open_by: Instant) {
        let state = Arc::new(ChannelState::new(id));
        let (handle, incoming) = DataChannel::new(label, options, state.clone(), self.commands.clone());
        self.channels.push(Channel {
            id,
            state,
            opening: Some((reply, handle, open_by)),
            incoming,
            queue: VecDeque::new(),
            in_sctp: 0,
            close_asked: false,
        });
    }

    /// Channels open or opening.
    pub(super) fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// A candidate the slave trickled.
    pub(super) fn add_remote_candidate(&mut self, candidate: &str) {
        match Candidate::from_sdp_string(candidate) {
            Ok(candidate) => {
                self.rtc.add_remote_candidate(candidate);
                self.next_timeout = settle(&mut self.rtc, &mut self.pending);
            }
            Err(e) => tracing::debug!(slave = self.slave, "remote candidate refused: {e}"),
        }
    }

    /// A channel handle's command.
    pub(super) fn command(&mut self, command: ChannelCommand) {
        match command {
            ChannelCommand::Write { channel, data, is_text } => match self.channels.iter_mut().find(|c| c.id == channel) {
                Some(ch) if !ch.close_asked && !ch.state.is_overflowed() => ch.queue.push_back((data, is_text)),
                Some(ch) => ch.state.release(data.len()),
                None => {}
            },
            ChannelCommand::Close { channel } => {
                if let Some(ch) = self.channels.iter_mut().find(|c| c.id == channel) {
                    ch.close_asked = true;
                    if ch.state.is_overflowed() {
                        drop_queue(ch);
                    }
                }
            }
        }
    }

    /// Waits until a datagram can be read.
    pub(super) async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Hands str0m (or the STUN client) every datagram waiting.
    pub(super) fn read(&mut self) {
        let now = Instant::now();
        RECEIVED.with_borrow_mut(|buffer| loop {
            let (len, from) = match self.socket.try_recv_from(buffer) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors surface as failed reads on Linux: the next one goes on.
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    self.ended.get_or_insert_with(|| format!("the socket failed: {e}"));
                    return;
                }
            };
            let datagram = &buffer[..len];
            if let Some(mapped) = self.stun.handle_response(from, datagram, now) {
                self.learn_reflexive(mapped);
                continue;
            }
            self.heard_at = now;
            let local = self.local_for(from);
            match Receive::new(Protocol::Udp, from, local, datagram) {
                Ok(receive) => {
                    if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
                        tracing::debug!(slave = self.slave, %from, "datagram refused: {e}");
                    }
                }
                Err(_) => tracing::trace!(%from, "datagram str0m cannot read dropped"),
            }
            self.unsettled += 1;
            if settle_due(self.unsettled, self.connected) {
                self.unsettled = 0;
                self.next_timeout = settle(&mut self.rtc, &mut self.pending);
            }
        });
    }

    /// The address a datagram from `from` arrived at.
    fn local_for(&self, from: SocketAddr) -> SocketAddr {
        let same_family = || self.hosts.iter().find(|h| h.is_ipv4() == from.is_ipv4());
        match (self.wildcard, self.hosts.first()) {
            (true, _) => same_family().or(self.hosts.first()).copied().unwrap_or(from),
            (false, Some(host)) => *host,
            (false, None) => from,
        }
    }

    fn learn_reflexive(&mut self, mapped: SocketAddr) {
        if self.hosts.contains(&mapped) || self.learned.iter().any(|c| c.addr() == mapped) {
            return;
        }
        let Some(base) = self.hosts.iter().find(|h| h.is_ipv4() == mapped.is_ipv4()).copied() else { return };
        match Candidate::server_reflexive(mapped, base, "udp") {
            Ok(candidate) => {
                tracing::debug!(slave = self.slave, %mapped, "server-reflexive address");
                self.rtc.add_local_candidate(candidate.clone());
                self.next_timeout = settle(&mut self.rtc, &mut self.pending);
                self.learned.push(candidate);
            }
            Err(e) => tracing::debug!(%mapped, "server-reflexive candidate refused: {e}"),
        }
    }

    /// When [`Peer::turn`] is next due without any input.
    pub(super) fn wake_at(&self) -> Instant {
        let now = Instant::now();
        let mut at = *self.next_timeout.as_ref().unwrap_or(&now);
        let opening = self.channels.iter().filter_map(|c| c.opening.as_ref().map(|(_, _, by)| *by));
        let silent_until = self.connected.then(|| self.heard_at + self.silence);
        for due in opening.chain(silent_until).chain(self.stun.poll_timeout()) {
            at = at.min(due);
        }
        // A deadline already due runs on the next turn, not in a spin.
        at.max(now + Duration::from_millis(1))
    }

    /// Why the connection is over, if it is.
    pub(super) fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// Runs what is due: str0m's timers, the channels' queues and deadlines,
    /// then sends what str0m produced and handles its events (a reader that
    /// is behind holds the connection here).
    pub(super) async fn turn(&mut self) -> TurnNews {
        let now = Instant::now();
        let mut news = TurnNews::default();
        if self.next_timeout.as_ref().is_ok_and(|at| *at <= now) {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(slave = self.slave, "str0m timeout: {e}");
            }
            self.unsettled = 1;
        }
        if self.unsettled > 0 {
            self.unsettled = 0;
            self.next_timeout = settle(&mut self.rtc, &mut self.pending);
        }
        let socket = &self.socket;
        self.stun.handle_timeout(now, |to, datagram| {
            let _ = socket.try_send_to(datagram, to);
        });
        if self.connected && now >= self.heard_at + self.silence {
            self.ended.get_or_insert_with(|| "nothing heard from the slave in time".into());
        }
        self.channel_bookkeeping(now, &mut news);
        // Events may make more output (a close): until there is none left.
        // Both buffers keep their capacity from turn to turn: no allocation
        // per datagram on this path.
        let mut outputs = std::mem::take(&mut self.outputs);
        let mut events = std::mem::take(&mut self.events);
        while !self.pending.is_empty() {
            std::mem::swap(&mut self.pending, &mut outputs);
            for output in outputs.drain(..) {
                match output {
                    Output::Transmit(t) => {
                        // A full kernel buffer drops it, as a full network would; SCTP resends.
                        if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                            tracing::trace!(to = %t.destination, "datagram not sent: {e}");
                        }
                    }
                    Output::Event(event) => events.push(event),
                    Output::Timeout(_) => {}
                }
            }
            for event in events.drain(..) {
                self.on_event(event, &mut news).await;
            }
            if self.unsettled > 0 {
                self.unsettled = 0;
                self.next_timeout = settle(&mut self.rtc, &mut self.pending);
            }
        }
        self.outputs = outputs;
        self.events = events;
        if let Err(e) = &self.next_timeout {
            self.ended.get_or_insert_with(|| format!("the peer connection failed: {e}"));
        } else if !self.rtc.is_alive() {
            self.ended.get_or_insert_with(|| "the peer connection closed".into());
        }
        news.candidates.append(&mut self.learned);
        news
    }

    async fn on_event(&mut self, event: Event, news: &mut TurnNews) {
        match event {
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(state) => tracing::debug!(slave = self.slave, ?state, "ICE state"),
            // The slave closed the connection (SCTP ABORT, DTLS close_notify).
            Event::Closed => {
                self.ended.get_or_insert_with(|| "closed by the slave".into());
            }
            Event::ChannelOpen(id, _) => {
                if let Some(ch) = self.channels.iter_mut().find(|c| c.id == id) {
                    if let Some((reply, handle, _)) = ch.opening.take() {
                        let _ = reply.send(Ok(handle));
                    }
                }
            }
            Event::ChannelData(message) => {
                let Some(ch) = self.channels.iter_mut().find(|c| c.id == message.id) else { return };
                if let Some((reply, handle, _)) = ch.opening.take() {
                    let _ = reply.send(Ok(handle));
                }
                let message = ChannelMessage { data: Bytes::from(message.data), is_text: !message.binary };
                // A reader that dropped its half gets nothing; the channel is still drained.
                if let Err(mpsc::error::TrySendError::Full(message)) = ch.incoming.try_send(message) {
                    let _ = ch.incoming.send(message).await;
                }
            }
            Event::ChannelClose(id) => {
                if let Some(index) = self.channels.iter().position(|c| c.id == id) {
                    let ch = self.channels.swap_remove(index);
                    self.close_handles(ch);
                    news.channel_closed = true;
                }
            }
            _ => {}
        }
    }

    /// Tells a channel's handles it is closed (a reply still waiting fails).
    fn close_handles(&self, mut ch: Channel) {
        drop_queue(&mut ch);
        ch.state.release(ch.in_sctp);
        ch.state.set_closed();
        if let Some((reply, _, _)) = ch.opening.take() {
            let _ = reply.send(Err(ClientError::ConnectionClosed { slave: self.slave }));
        }
    }

    /// Follows what SCTP released, hands it what waits, closes channels
    /// whose close is due and gives up on those that did not open in time.
    fn channel_bookkeeping(&mut self, now: Instant, news: &mut TurnNews) {
        let mut index = 0;
        while index < self.channels.len() {
            let ch = &mut self.channels[index];
            if ch.opening.as_ref().is_some_and(|(_, _, by)| *by <= now) {
                let ch = self.channels.swap_remove(index);
                let (reply, _, _) = ch.opening.expect("checked");
                let _ = reply.send(Err(ClientError::Timeout { what: "the data channel's opening", after: self.open_within }));
                ch.state.set_closed();
                self.rtc.direct_api().close_data_channel(ch.id);
                self.unsettled = 1;
                news.channel_closed = true;
                continue;
            }
            let Some(mut dc) = self.rtc.channel(ch.id) else {
                index += 1;
                continue;
            };
            let outstanding = dc.buffered_amount();
            // str0m's figure may count more than our messages (a DCEP
            // message): only what falls below our own count is released.
            if outstanding < ch.in_sctp {
                ch.state.release(ch.in_sctp - outstanding);
                ch.in_sctp = outstanding;
            }
            let mut wrote = false;
            while ch.in_sctp < SEND_BUFFER {
                let Some((data, is_text)) = ch.queue.front() else { break };
                let len = data.len();
                if len == 0 {
                    // Written, it would stall an ordered channel (the slave's `feed`).
                    ch.queue.pop_front();
                    empty_message_dropped();
                    continue;
                }
                match dc.write(!is_text, data) {
                    Ok(true) => {
                        wrote = true;
                        ch.queue.pop_front();
                        ch.in_sctp += len;
                    }
                    // str0m's buffer for the connection is full: wait for room.
                    Ok(false) => break,
                    Err(e) => {
                        ch.queue.pop_front();
                        ch.state.release(len);
                        tracing::debug!(slave = self.slave, "send failed: {e}");
                    }
                }
            }
            let close_now = ch.close_asked && ch.queue.is_empty();
            let id = ch.id;
            if close_now {
                ch.close_asked = false;
                self.rtc.direct_api().close_data_channel(id);
            }
            // One drain per channel's batch of writes (see the slave's shard:
            // a drain per write sends each message in a datagram of its own).
            if wrote || close_now {
                self.next_timeout = settle(&mut self.rtc, &mut self.pending);
            }
            index += 1;
        }
    }

    /// Ends the connection: str0m closes it as a browser does (SCTP
    /// shutdown, DTLS close_notify, sent at once, so that the slave releases
    /// its side without waiting for silence), and every channel's handles
    /// learn it.
    pub(super) fn close(&mut self) {
        if let Err(e) = self.rtc.close() {
            tracing::debug!(slave = self.slave, "closing: {e}");
        }
        let mut pending = Vec::new();
        let _ = settle(&mut self.rtc, &mut pending);
        for output in pending {
            if let Output::Transmit(t) = output {
                let _ = self.socket.try_send_to(&t.contents, t.destination);
            }
        }
        for ch in std::mem::take(&mut self.channels) {
            self.close_handles(ch);
        }
    }
}

/// Drops what a channel still has queued.
fn drop_queue(ch: &mut Channel) {
    let queued: usize = ch.queue.drain(..).map(|(data, _)| data.len()).sum();
    ch.state.release(queued);
}
