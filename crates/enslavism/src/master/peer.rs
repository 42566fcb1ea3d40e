//! One connected slave or client: its WebSocket, its outbound queue, and the
//! loop that feeds decoded frames to the router.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

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
use super::Shared;
use crate::proto::{IceCandidate, Message, SessionDescription};

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
pub(crate) async fn run_peer<S, Slot>(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<S>,
    kind: PeerKind,
    remote_addr: SocketAddr,
    slot: Slot,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let outbox = Arc::new(Outbox::new(shared.config.outbound_queue_len));
    let link = SocketLink(outbox.clone());
    let added = {
        let mut router = shared.router();
        match kind {
            PeerKind::Slave => router.add_slave(link),
            PeerKind::Client => router.add_client(link),
        }
    };
    let id = match added {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(%remote_addr, "{e}");
            let _ = ws.close(Some(close_frame(CLOSE_TRY_AGAIN_LATER, &e.to_string()))).await;
            return;
        }
    };
    tracing::debug!(kind = kind.name(), id, %remote_addr, "peer connected");

    // A bug while serving one peer must cost that peer only: the panic is
    // caught here, the peer dropped and forgotten like any other.
    let served = std::panic::AssertUnwindSafe(async {
        shared.hooks.on_event(MasterEvent::Connected { kind, id, remote_addr });
        pump(&shared, &mut ws, kind, id, &outbox).await
    });
    let (code, reason) = match futures_util::FutureExt::catch_unwind(served).await {
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

    shared.router().remove(kind, id);
    drop(slot);
    tracing::debug!(kind = kind.name(), id, code, "peer closed");
    shared.hooks.on_event(MasterEvent::Closed { kind, id, code, reason });
}

/// Moves frames both ways until the connection ends; returns its close code and reason.
async fn pump<S>(
    shared: &Shared,
    ws: &mut WebSocketStream<S>,
    kind: PeerKind,
    id: u32,
    outbox: &Outbox,
) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut heartbeat = tokio::time::interval(shared.config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let mut last_heard = tokio::time::Instant::now();
    // A peer whose socket takes nothing for this long is as gone as a silent one.
    let write_limit = shared.config.heartbeat_timeout;
    let mut limits = (kind == PeerKind::Client).then(|| ClientLimits::new(&shared.config));
    // Made once: a new wait per wake-up would lock the token shared by every
    // peer twice per frame (register, then drop), a broadcast to 5,000 clients
    // contending on it from every worker.
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    // Frames taken from the outbox; its capacity is kept for the next batch.
    let mut batch = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                close_cleanly(ws, CLOSE_GOING_AWAY, "master closing").await;
                return (CLOSE_GOING_AWAY, "master closing".into());
            }
            outgoing = outbox.take(&mut batch) => match outgoing {
                Outgoing::Frames => {
                    // Each part of a long batch has the whole limit: a slow
                    // but reading peer is not a stalled one.
                    while !batch.is_empty() {
                        if let Err(ended) = bounded_write(send_some(ws, &mut batch), write_limit, &mut shutdown).await {
                            return ended.close(kind, id);
                        }
                    }
                }
                // The outbox hands out a close only once what was queued before it is written.
                Outgoing::Close(code, reason) => {
                    close_cleanly(ws, code, &reason).await;
                    return (code, reason);
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= shared.config.heartbeat_timeout {
                    tracing::debug!(kind = kind.name(), id, "no sign of life: dropping the peer");
                    return (CLOSE_ABNORMAL, "heartbeat timeout".into());
                }
                if last_heard.elapsed() >= shared.config.heartbeat_interval {
                    if let Err(ended) = bounded_write(ws.send(WsMessage::Ping(Default::default())), write_limit, &mut shutdown).await {
                        return ended.close(kind, id);
                    }
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Binary(data))) => {
                    last_heard = tokio::time::Instant::now();
                    handle_frame(shared, kind, id, &data, limits.as_mut());
                }
                Some(Ok(WsMessage::Pong(_))) => last_heard = tokio::time::Instant::now(),
                Some(Ok(WsMessage::Text(_))) => {
                    last_heard = tokio::time::Instant::now();
                    tracing::debug!(kind = kind.name(), id, "text frame ignored: the protocol is binary");
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    // Let tungstenite send its reply to the close.
                    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, ws.flush()).await;
                    return frame.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string()));
                }
                Some(Ok(WsMessage::Ping(_))) => {
                    last_heard = tokio::time::Instant::now();
                    // The pong is queued by tungstenite; send it now.
                    if let Err(ended) = bounded_write(ws.flush(), write_limit, &mut shutdown).await {
                        return ended.close(kind, id);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(kind = kind.name(), id, "connection error: {e}");
                    // Tell the peer why where the protocol has a code for it.
                    let code = match e {
                        WsError::Capacity(_) => CLOSE_MESSAGE_TOO_BIG,
                        WsError::Protocol(_) | WsError::Utf8(_) => CLOSE_PROTOCOL_ERROR,
                        _ => return (CLOSE_ABNORMAL, String::new()),
                    };
                    let reason = e.to_string();
                    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, ws.close(Some(close_frame(code, &reason)))).await;
                    return (code, reason);
                }
                None => return (CLOSE_ABNORMAL, String::new()),
            },
        }
    }
}

/// Why a write to the peer did not complete.
enum WriteEnded {
    /// The connection failed.
    Failed,
    /// The peer's socket took nothing for the whole limit: it stopped reading.
    Stalled,
    /// The master is closing; a stalled peer gets no close frame.
    Shutdown,
}

impl WriteEnded {
    /// The close code and reason recorded for the peer.
    fn close(self, kind: PeerKind, id: u32) -> (u16, String) {
        match self {
            WriteEnded::Failed => (CLOSE_ABNORMAL, String::new()),
            WriteEnded::Stalled => {
                tracing::debug!(kind = kind.name(), id, "the peer takes nothing: dropping it");
                (CLOSE_ABNORMAL, "write timeout".into())
            }
            WriteEnded::Shutdown => (CLOSE_GOING_AWAY, "master closing".into()),
        }
    }
}

/// Runs one write to the peer, for at most `limit`, and gives up at once if
/// the master closes: a peer that stops reading (its TCP window full) would
/// otherwise hold this loop, its heartbeat and its slot forever.
async fn bounded_write<F>(
    write: F,
    limit: std::time::Duration,
    shutdown: &mut std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
) -> Result<(), WriteEnded>
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    // The write first: it usually completes at once, and then the shutdown
    // wait (a lock shared by every peer, when polled) is not looked at.
    tokio::select! {
        biased;
        written = tokio::time::timeout(limit, write) => match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteEnded::Failed),
            Err(_) => Err(WriteEnded::Stalled),
        },
        _ = shutdown.as_mut() => Err(WriteEnded::Shutdown),
    }
}

/// Sends up to [`FLUSH_BATCH`] frames from the front of `batch`, then flushes once.
async fn send_some<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Bytes>,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for _ in 0..FLUSH_BATCH {
        match batch.pop_front() {
            Some(frame) => ws.feed(WsMessage::Binary(frame)).await?,
            None => break,
        }
    }
    ws.flush().await
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
fn handle_frame(shared: &Shared, kind: PeerKind, id: u32, data: &[u8], limits: Option<&mut ClientLimits>) {
    let msg = match Message::decode(data) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::debug!(kind = kind.name(), id, "malformed frame dropped: {e}");
            return;
        }
    };
    if let Some(limits) = limits {
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
    }
    if let Err(e) = shared.router().route(kind, id, msg) {
        tracing::debug!(kind = kind.name(), id, "message dropped: {e}");
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
