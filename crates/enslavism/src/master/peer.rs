//! One connected slave or client: its WebSocket, its outbound queue, and the
//! loop that feeds decoded frames to the router.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use super::hooks::MasterEvent;
use super::outbox::{Outbox, Outgoing};
use super::rate::TokenBucket;
use super::router::{PeerKind, PeerLink};
use super::stats::PeerTraffic;
use super::Shared;
use crate::proto::{IceCandidate, Message, ProtocolVersion, SessionDescription};

/// Close code for a peer that connects while every id is taken.
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Close code for connections ended because the master closes.
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a peer that broke the WebSocket protocol.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a peer that sent a message over the size limit.
const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// Close code recorded when the connection ended without a close frame.
const CLOSE_ABNORMAL: u16 = 1006;
/// Close code for a connection dropped because of a bug on our side.
const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// How long a closing connection waits for the peer's close frame.
const CLOSE_REPLY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Frames sent in one batch before the socket is flushed.
const FLUSH_BATCH: usize = 64;

/// The router's handle on one connection.
pub(crate) struct SocketLink(Arc<Outbox>);

impl SocketLink {
    /// The master is closing: the connection ends at once.
    pub(crate) fn shut_down(&self) {
        self.0.shut_down();
    }
}

impl PeerLink for SocketLink {
    fn push(&self, frame: Bytes) -> bool {
        self.0.push(frame)
    }

    fn close(&self, code: u16, reason: &str) {
        self.0.request_close(code, reason);
    }
}

/// Runs one peer from its completed handshake to its close. `slot` (its
/// place under `max_connections`) is given back as soon as the router has
/// forgotten the peer, before anyone hears of the close.
///
/// Not an `async fn`: one copies its arguments into the future a second
/// time (rustc's layout, `-Zprint-type-sizes`: 380 bytes per peer, `ws`
/// alone 328), and this future is most of what an idle peer costs.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_peer<S, Slot>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    kind: PeerKind,
    protocol: ProtocolVersion,
    remote_addr: SocketAddr,
    slot: Slot,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let outbox = Arc::new(Outbox::new(shared.config.outbound_queue_length));
        let added = {
            let mut router = shared.router();
            let link = SocketLink(outbox.clone());
            match kind {
                PeerKind::Slave => router.add_slave(link, protocol),
                PeerKind::Client => router.add_client(link, protocol),
            }
        };
        // After the router's lock: a master closing from now on found this
        // peer there, or had cancelled before we looked.
        if shared.shutdown.is_cancelled() {
            outbox.shut_down();
        }
        let id = match added {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(%remote_addr, "{e}");
                let _ =
                    tokio::time::timeout(CLOSE_REPLY_WAIT, ws.close(Some(close_frame(CLOSE_TRY_AGAIN_LATER, &e.to_string()))))
                        .await;
                return;
            }
        };
        tracing::debug!(kind = kind.name(), id, %remote_addr, ?protocol, "peer connected");

        // A bug while serving one peer must cost that peer only: the panic is
        // caught here, the peer dropped and forgotten like any other.
        let served = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(serve(
            &shared,
            &mut ws,
            Peer { kind, id, protocol },
            remote_addr,
            &outbox,
        )))
        .await;
        let (code, reason) = match served {
            Ok(closed) => closed,
            Err(panic) => {
                let what = crate::panic_message(&*panic);
                tracing::error!(kind = kind.name(), id, "internal error while serving the peer: {what}");
                shared.hooks.on_event(MasterEvent::InternalError {
                    message: format!("internal error while serving {} {id}: {what}", kind.name()),
                });
                close_cleanly(&mut ws, CLOSE_INTERNAL_ERROR, "internal error").await;
                (CLOSE_INTERNAL_ERROR, "internal error".to_owned())
            }
        };

        let unregistered = shared.router().remove(kind, id);
        drop(slot);
        tracing::debug!(kind = kind.name(), id, code, "peer closed");
        if let Some(entry) = unregistered {
            shared.hooks.on_event(MasterEvent::SlaveUnregistered { id, user_data: entry.user_data, remote_addr });
        }
        shared.hooks.on_event(MasterEvent::Closed { kind, id, code, reason });
    }
}

/// Serves a connected peer until its connection ends; returns its close code and reason.
async fn serve<S>(
    shared: &Shared,
    ws: &mut WebSocketStream<S>,
    peer: Peer,
    remote_addr: SocketAddr,
    outbox: &Outbox,
) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    shared.hooks.on_event(MasterEvent::Connected { kind: peer.kind, id: peer.id, remote_addr });
    // In a block of its own: its room is then reused by the closing writes below.
    let ended = {
        let mut connection = Connection::new(shared, peer, remote_addr, outbox);
        std::future::poll_fn(|cx| connection.poll(cx, ws)).await
    };
    match ended {
        Ended::Close(code, reason) => {
            if code == super::CLOSE_SLOW_CONSUMER {
                shared.traffic.dropped();
            }
            close_cleanly(ws, code, &reason).await;
            (code, reason)
        }
        Ended::ByPeer(code, reason) => {
            // Let tungstenite send its reply to the close.
            let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, ws.flush()).await;
            (code, reason)
        }
        Ended::Refused(code, reason) => {
            shared.traffic.dropped();
            let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, ws.close(Some(close_frame(code, &reason)))).await;
            (code, reason)
        }
        Ended::Dropped(code, reason) => {
            if code != CLOSE_GOING_AWAY {
                shared.traffic.dropped();
            }
            (code, reason.into())
        }
    }
}

/// How a connection ended, and what is still to be said on it.
enum Ended {
    /// We close: send this close frame and wait briefly for the reply.
    Close(u16, String),
    /// The peer sent a close frame with this code and reason.
    ByPeer(u16, String),
    /// The peer broke the protocol: tell it why, without waiting.
    Refused(u16, String),
    /// Nothing more can be said: the connection failed, stalled or went
    /// silent, or the master closed during a write.
    Dropped(u16, &'static str),
}

/// The state of one peer's connection between wake-ups. It is driven by
/// hand from one `poll` (outbox, socket writes, socket reads, heartbeat)
/// rather than by a `select!` over nested futures: that loop was 920 bytes
/// of every peer's task (each branch's future and each write's `Timeout`
/// kept their own room), this is about 200, and an idle peer costs no timer
/// beyond its heartbeat.
struct Connection<'a> {
    shared: &'a Shared,
    outbox: &'a Outbox,
    peer: Peer,
    /// Frames taken from the outbox and not yet handed to the socket; its
    /// capacity is kept for the next batch.
    batch: VecDeque<Bytes>,
    /// Frames handed to the socket since its last flush.
    unflushed: usize,
    /// Set when a write could not complete at once: the part being written
    /// (up to [`FLUSH_BATCH`] frames and their flush) has until then. Made
    /// the first time a peer's socket is full, and kept.
    write_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    write_deadline_armed: bool,
    heartbeat: tokio::time::Interval,
    last_heard: tokio::time::Instant,
    side: Side,
    /// Frames and bytes since the master's counters were last added to.
    traffic: PeerTraffic,
}

/// Who a connection serves.
#[derive(Debug, Clone, Copy)]
struct Peer {
    kind: PeerKind,
    id: u32,
    protocol: ProtocolVersion,
}

/// What only one kind of peer needs (in the room of the other's).
enum Side {
    /// A client is held to rates.
    Client(ClientLimits),
    /// A slave's registration: few peers are slaves, so it is boxed.
    Slave(Box<SlaveState>),
}

// A slave's state costs clients nothing: 64 bytes, as `Option<ClientLimits>` was.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Side>() == std::mem::size_of::<Option<ClientLimits>>());

/// A slave's address (for its registration events) and the pace of its
/// userData updates.
struct SlaveState {
    remote_addr: SocketAddr,
    updates: TokenBucket,
    /// The latest update over the rate (sequence number, userData): applied
    /// when `retry` fires; a newer one replaces it.
    deferred: Option<(u32, String)>,
    retry: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, peer: Peer, remote_addr: SocketAddr, outbox: &'a Outbox) -> Self {
        let mut heartbeat = tokio::time::interval(shared.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        Connection {
            shared,
            outbox,
            peer,
            batch: VecDeque::new(),
            unflushed: 0,
            write_deadline: None,
            write_deadline_armed: false,
            heartbeat,
            last_heard: tokio::time::Instant::now(),
            traffic: PeerTraffic::default(),
            side: match peer.kind {
                PeerKind::Client => Side::Client(ClientLimits::new(&shared.config)),
                PeerKind::Slave => Side::Slave(Box::new(SlaveState {
                    remote_addr,
                    updates: TokenBucket::new(shared.config.max_user_data_updates_per_second, tokio::time::Instant::now()),
                    deferred: None,
                    retry: None,
                })),
            },
        }
    }

    /// True while frames wait to be written or flushed.
    fn writing(&self) -> bool {
        !self.batch.is_empty() || self.unflushed > 0
    }

    fn poll<S>(&mut self, cx: &mut Context<'_>, ws: &mut WebSocketStream<S>) -> Poll<Ended>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let polled = self.poll_inner(cx, ws);
        self.shared.traffic.add(&mut self.traffic);
        polled
    }

    fn poll_inner<S>(&mut self, cx: &mut Context<'_>, ws: &mut WebSocketStream<S>) -> Poll<Ended>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            // The master closing overtakes everything; a peer we are
            // writing to (perhaps one that stopped reading) gets no close frame.
            let ready = !self.writing();
            match self.outbox.poll_take(cx, &mut self.batch, ready) {
                Poll::Ready(Outgoing::Shutdown) if self.writing() => {
                    return Poll::Ready(Ended::Dropped(CLOSE_GOING_AWAY, "master closing"))
                }
                Poll::Ready(Outgoing::Shutdown) => return Poll::Ready(Ended::Close(CLOSE_GOING_AWAY, "master closing".into())),
                // Handed out only once what was queued before it is written.
                Poll::Ready(Outgoing::Close(code, reason)) => return Poll::Ready(Ended::Close(code, reason)),
                Poll::Ready(Outgoing::Frames) | Poll::Pending => {}
            }
            if self.writing() {
                match self.poll_write(cx, ws) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(ended)) => return Poll::Ready(ended),
                    Poll::Pending => {}
                }
            }
            match ws.poll_next_unpin(cx) {
                Poll::Ready(incoming) => match self.on_incoming(incoming) {
                    Some(ended) => return Poll::Ready(ended),
                    None => continue,
                },
                Poll::Pending => {}
            }
            if self.heartbeat.poll_tick(cx).is_ready() {
                if let Some(ended) = self.on_heartbeat(cx, ws) {
                    return Poll::Ready(ended);
                }
                continue;
            }
            if let Side::Slave(slave) = &mut self.side {
                if slave.retry.as_mut().is_some_and(|retry| retry.as_mut().poll(cx).is_ready()) {
                    slave.retry = None;
                    if let Some((seq, user_data)) = slave.deferred.take() {
                        update_user_data(self.shared, self.peer.id, slave, self.outbox, seq, user_data);
                    }
                    continue;
                }
            }
            return Poll::Pending;
        }
    }

    /// Hands the batch to the socket, a part of up to [`FLUSH_BATCH`] frames
    /// at a time, each part flushed. Ready once a part is out.
    fn poll_write<S>(&mut self, cx: &mut Context<'_>, ws: &mut WebSocketStream<S>) -> Poll<Result<(), Ended>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let written = self.poll_write_part(cx, ws);
        if written.is_ready() {
            self.write_deadline_armed = false;
            return written.map(|result| result.map_err(|_| Ended::Dropped(CLOSE_ABNORMAL, "")));
        }
        // The socket is full. Each part has the whole limit: a slow but
        // reading peer is not a stalled one.
        let limit = self.shared.config.heartbeat_timeout;
        let deadline = self.write_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if !self.write_deadline_armed {
            deadline.as_mut().reset(tokio::time::Instant::now() + limit);
            self.write_deadline_armed = true;
        }
        if deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(kind = self.peer.kind.name(), id = self.peer.id, "the peer takes nothing: dropping it");
            return Poll::Ready(Err(Ended::Dropped(CLOSE_ABNORMAL, "write timeout")));
        }
        Poll::Pending
    }

    fn poll_write_part<S>(&mut self, cx: &mut Context<'_>, ws: &mut WebSocketStream<S>) -> Poll<Result<(), WsError>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        while self.unflushed < FLUSH_BATCH {
            if self.batch.is_empty() {
                break;
            }
            ready!(ws.poll_ready_unpin(cx))?;
            let frame = self.batch.pop_front().expect("the batch is not empty");
            let bytes = frame.len();
            ws.start_send_unpin(WsMessage::Binary(frame))?;
            self.traffic.sent(bytes);
            self.unflushed += 1;
        }
        ready!(ws.poll_flush_unpin(cx))?;
        self.unflushed = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes one frame (or the end) from the socket; `Some` when the connection is over.
    fn on_incoming(&mut self, incoming: Option<Result<WsMessage, WsError>>) -> Option<Ended> {
        let (kind, id) = (self.peer.kind, self.peer.id);
        match incoming {
            Some(Ok(WsMessage::Binary(data))) => {
                self.last_heard = tokio::time::Instant::now();
                self.traffic.received(data.len());
                handle_frame(self.shared, self.peer, &mut self.side, self.outbox, &data);
            }
            Some(Ok(WsMessage::Pong(_))) => self.last_heard = tokio::time::Instant::now(),
            Some(Ok(WsMessage::Text(text))) => {
                self.last_heard = tokio::time::Instant::now();
                self.traffic.received(text.len());
                tracing::debug!(kind = kind.name(), id, "text frame ignored: the protocol is binary");
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return Some(Ended::ByPeer(
                    frame.as_ref().map_or(1005, |f| f.code.into()),
                    frame.map_or_else(String::new, |f| f.reason.to_string()),
                ));
            }
            Some(Ok(WsMessage::Ping(_))) => {
                self.last_heard = tokio::time::Instant::now();
                // tungstenite queued the pong; the next write flushes it.
                self.unflushed = self.unflushed.max(1);
            }
            Some(Ok(WsMessage::Frame(_))) => {}
            Some(Err(e)) => {
                tracing::debug!(kind = kind.name(), id, "connection error: {e}");
                // Tell the peer why where the protocol has a code for it.
                let code = match e {
                    WsError::Capacity(_) => CLOSE_MESSAGE_TOO_BIG,
                    WsError::Protocol(_) | WsError::Utf8(_) => CLOSE_PROTOCOL_ERROR,
                    _ => return Some(Ended::Dropped(CLOSE_ABNORMAL, "")),
                };
                return Some(Ended::Refused(code, e.to_string()));
            }
            None => return Some(Ended::Dropped(CLOSE_ABNORMAL, "")),
        }
        None
    }

    /// A heartbeat tick: drops a silent peer, pings a quiet one.
    fn on_heartbeat<S>(&mut self, cx: &mut Context<'_>, ws: &mut WebSocketStream<S>) -> Option<Ended>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let quiet = self.last_heard.elapsed();
        if quiet >= self.shared.config.heartbeat_timeout {
            tracing::debug!(kind = self.peer.kind.name(), id = self.peer.id, "no sign of life: dropping the peer");
            return Some(Ended::Dropped(CLOSE_ABNORMAL, "heartbeat timeout"));
        }
        // A socket still busy with earlier frames gets no ping: its write
        // deadline watches it already.
        if quiet >= self.shared.config.heartbeat_interval && !self.writing() {
            match ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    if ws.start_send_unpin(WsMessage::Ping(Default::default())).is_err() {
                        return Some(Ended::Dropped(CLOSE_ABNORMAL, ""));
                    }
                    self.unflushed += 1;
                }
                Poll::Ready(Err(_)) => return Some(Ended::Dropped(CLOSE_ABNORMAL, "")),
                Poll::Pending => self.unflushed = self.unflushed.max(1),
            }
        }
        None
    }
}

/// The rates a client is held to.
struct ClientLimits {
    offers: TokenBucket,
    candidates: TokenBucket,
}

impl ClientLimits {
    fn new(config: &super::MasterConfig) -> Self {
        let now = tokio::time::Instant::now();
        ClientLimits {
            offers: TokenBucket::new(config.max_offers_per_second, now),
            candidates: TokenBucket::new(config.max_candidates_per_second, now),
        }
    }
}

/// Decodes one frame and routes it; bad frames are dropped with a debug log.
fn handle_frame(shared: &Shared, peer: Peer, side: &mut Side, outbox: &Outbox, data: &[u8]) {
    let Peer { kind, id, protocol } = peer;
    let msg = match Message::decode(data) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::debug!(kind = kind.name(), id, "malformed frame dropped: {e}");
            return;
        }
    };
    if msg.message_type().since() > protocol {
        let e = super::RoutingError::NotNegotiated { kind, msg_type: msg.message_type() };
        tracing::debug!(kind = kind.name(), id, "message dropped: {e}");
        return;
    }
    let slave = match side {
        Side::Client(limits) => {
            let now = tokio::time::Instant::now();
            match &msg {
                Message::OfferToSlave(SessionDescription { id: slave_id, .. }) if !limits.offers.try_take(now) => {
                    tracing::debug!(id, slave_id, "offer over the client's rate refused");
                    shared.router().reject_offer(id, *slave_id);
                    return;
                }
                Message::IceCandidateToSlave(IceCandidate { .. }) if !limits.candidates.try_take(now) => {
                    tracing::debug!(id, "candidate over the client's rate dropped");
                    return;
                }
                _ => {}
            }
            None
        }
        Side::Slave(slave) => Some(slave),
    };
    let msg = match msg {
        Message::Ping { token } => return reply(outbox, &Message::Pong { token }),
        Message::UpdateUserData { seq, user_data } => {
            if let Some(slave) = slave {
                let now = tokio::time::Instant::now();
                if slave.deferred.is_some() || !slave.updates.try_take(now) {
                    // Over the rate: the latest waits for the next token.
                    tracing::debug!(id, seq, "userData update over the slave's rate deferred");
                    slave.deferred = Some((seq, user_data));
                    if slave.retry.is_none() {
                        slave.retry = Some(Box::pin(tokio::time::sleep(slave.updates.wait(now))));
                    }
                } else {
                    update_user_data(shared, id, slave, outbox, seq, user_data);
                }
                return;
            }
            Message::UpdateUserData { seq, user_data }
        }
        msg => msg,
    };
    let registers = matches!(msg, Message::Register { .. });
    let mut router = shared.router();
    let was_registered = registers && router.registered_slave(id).is_some();
    if let Err(e) = router.route(kind, id, msg) {
        tracing::debug!(kind = kind.name(), id, "message dropped: {e}");
        return;
    }
    // Registration changes are rare: the application hears of each, outside the lock.
    let registered = if registers { router.registered_slave(id).map(|e| e.user_data.clone()) } else { None };
    drop(router);
    if let (Some(user_data), Some(slave)) = (registered, slave) {
        let remote_addr = slave.remote_addr;
        shared.hooks.on_event(if was_registered {
            MasterEvent::SlaveUpdated { id, user_data, remote_addr }
        } else {
            MasterEvent::SlaveRegistered { id, user_data, remote_addr }
        });
    }
}

/// Applies a slave's userData update (every V2 client's list shows it),
/// and tells the slave whether it was.
fn update_user_data(shared: &Shared, id: u32, slave: &mut SlaveState, outbox: &Outbox, seq: u32, user_data: String) {
    // The event's copy; updates are rare next to signalling.
    let event_data = user_data.clone();
    let routed = shared.router().route(PeerKind::Slave, id, Message::UpdateUserData { seq, user_data });
    let refusal = match routed {
        Ok(()) => {
            let remote_addr = slave.remote_addr;
            shared.hooks.on_event(MasterEvent::SlaveUpdated { id, user_data: event_data, remote_addr });
            None
        }
        Err(e) => {
            tracing::debug!(id, seq, "userData update refused: {e}");
            Some(e.to_string())
        }
    };
    reply(outbox, &Message::UserDataResult { seq, refusal });
}

/// Queues an answer for the peer itself; a peer whose queue is full is
/// closed, as the router closes it.
fn reply(outbox: &Outbox, msg: &Message) {
    if let Ok(frame) = msg.encode() {
        if !outbox.push(Bytes::from(frame)) {
            outbox.request_close(super::CLOSE_SLOW_CONSUMER, "outbound queue full");
        }
    }
}

/// Sends a close frame and waits briefly for the peer's reply, so that the
/// peer sees a clean close (`wasClean`) rather than a dropped connection.
async fn close_cleanly<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Bounded: the peer may be the one that stopped reading.
    if !matches!(tokio::time::timeout(CLOSE_REPLY_WAIT, ws.close(Some(close_frame(code, reason)))).await, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    // A close reason may hold at most 123 bytes; cut at a character boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_owned().into() }
}
