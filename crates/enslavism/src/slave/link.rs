//! The slave's WebSocket to its master: registration, then signalling
//! dispatched to one task per client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::peer::{ice_session, run_peer, PeerCommand};
use super::{SlaveError, SlaveEvent, SlaveShared};
use crate::dial::{inbound, within, DialError, Inbound, MasterSocket, CLOSE_WRITE_LIMIT, RECONNECT_INITIAL_DELAY};
use crate::proto::{IceCandidate, Message, SessionDescription};

/// Opens the WebSocket to `master_url + "/enslavism/slaves"`; a `wss://`
/// URL is verified with `tls`.
pub(crate) async fn open(
    master_url: &str,
    auth: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<MasterSocket, SlaveError> {
    Ok(crate::dial::open(master_url, "/enslavism/slaves", auth, tls, timeout).await?)
}

/// Where and as whom the slave registers (kept to register again after a reconnect).
pub(crate) struct Registration {
    pub url: String,
    pub auth: Vec<(String, String)>,
    pub user_data: String,
    /// How a `wss://` master is verified.
    pub tls: Arc<rustls::ClientConfig>,
}

async fn register(mut ws: MasterSocket, registration: &Registration, limit: Duration) -> Result<MasterSocket, SlaveError> {
    let frame = Message::Register { user_data: registration.user_data.clone() }.encode()?;
    within(limit, ws.send(WsMessage::Binary(frame.into())))
        .await
        .map_err(|reason| DialError::Unreachable { url: registration.url.clone(), reason })?;
    Ok(ws)
}

/// Registers and starts the signalling loop.
pub(crate) async fn start(shared: Arc<SlaveShared>, ws: MasterSocket, registration: Registration) -> Result<(), SlaveError> {
    let ws = register(ws, &registration, shared.config.connect_timeout).await?;
    let task_shared = shared.clone();
    shared.spawn_guarded("the master link", run_link(task_shared, ws, registration));
    Ok(())
}

/// A client's peer task, and the session it serves.
struct PeerEntry {
    commands: mpsc::UnboundedSender<PeerCommand>,
    /// The browser session's ICE credentials (see `ice_session`).
    ice: Option<String>,
}

/// The master link for the slave's lifetime: serves one master connection,
/// and when it drops, reconnects (with backoff) and registers again.
async fn run_link(shared: Arc<SlaveShared>, mut ws: MasterSocket, registration: Registration) {
    let (to_master, mut outgoing) = mpsc::unbounded_channel::<Bytes>();
    let mut peers: HashMap<u32, PeerEntry> = HashMap::new();
    // Peers of earlier master connections: their client ids meant something
    // only to that master, so they keep running but can no longer be addressed.
    let mut detached: Vec<PeerEntry> = Vec::new();
    loop {
        let Some((code, reason)) = serve(&shared, &mut ws, &mut peers, &mut detached, &to_master, &mut outgoing).await else {
            return;
        };
        tracing::info!(code, %reason, "the master link closed");
        shared.hooks.on_event(SlaveEvent::MasterClose { code, reason });
        // Their client ids meant something to that master only.
        for (_, entry) in peers.drain() {
            let _ = entry.commands.send(PeerCommand::Readdress(None));
            detached.push(entry);
        }
        detached.retain(|entry| !entry.commands.is_closed());
        if !shared.config.reconnect {
            // Peers keep their connections until they end or the slave closes.
            tokio::select! {
                _ = async { while outgoing.recv().await.is_some() {} } => {}
                _ = shared.shutdown.cancelled() => {}
            }
            return;
        }
        let Some(new_ws) = reconnect(&shared, &registration, &mut outgoing).await else {
            return;
        };
        ws = new_ws;
        tracing::info!("registered with the master again");
        shared.hooks.on_event(SlaveEvent::MasterReconnect);
    }
}

/// Serves one master connection; `None` when the slave is closing.
async fn serve(
    shared: &Arc<SlaveShared>,
    ws: &mut MasterSocket,
    peers: &mut HashMap<u32, PeerEntry>,
    detached: &mut Vec<PeerEntry>,
    to_master: &mpsc::UnboundedSender<Bytes>,
    outgoing: &mut mpsc::UnboundedReceiver<Bytes>,
) -> Option<(u16, String)> {
    let interval = shared.config.heartbeat_interval.max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval(interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= shared.config.heartbeat_timeout {
                    tracing::info!("no sign of life from the master: dropping the link");
                    return Some((1006, "heartbeat timeout".into()));
                }
                if last_heard.elapsed() >= interval {
                    if let Err(reason) = within(shared.config.heartbeat_timeout, ws.send(WsMessage::Ping(Default::default()))).await {
                        return Some((1006, reason));
                    }
                }
            }
            frame = outgoing.recv() => {
                let Some(frame) = frame else { continue };
                if let Err(reason) = within(shared.config.heartbeat_timeout, ws.send(WsMessage::Binary(frame))).await {
                    return Some((1006, reason));
                }
            }
            incoming = ws.next() => {
                // Any frame, pongs included, shows the master is alive.
                if matches!(incoming, Some(Ok(_))) {
                    last_heard = tokio::time::Instant::now();
                }
                match inbound(ws, incoming, shared.config.heartbeat_timeout).await {
                    Inbound::Frame(data) => match Message::decode(&data) {
                        Ok(msg) => dispatch(shared, peers, detached, to_master, msg),
                        Err(e) => tracing::debug!("malformed frame from the master dropped: {e}"),
                    },
                    Inbound::Nothing => {}
                    Inbound::Ended(code, reason) => return Some((code, reason)),
                }
            }
            _ = shared.shutdown.cancelled() => {
                let _ = within(CLOSE_WRITE_LIMIT, ws.close(None)).await;
                return None;
            }
        }
    }
}

/// Connects and registers again, retrying with backoff; `None` when the
/// slave is closing. Signalling queued meanwhile was for the old master and
/// is dropped.
async fn reconnect(
    shared: &Arc<SlaveShared>,
    registration: &Registration,
    outgoing: &mut mpsc::UnboundedReceiver<Bytes>,
) -> Option<MasterSocket> {
    let mut delay = RECONNECT_INITIAL_DELAY.min(shared.config.reconnect_max_delay);
    loop {
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = outgoing.recv() => {}
                _ = shared.shutdown.cancelled() => return None,
            }
        }
        let attempt = async {
            let ws = open(&registration.url, &registration.auth, &registration.tls, shared.config.connect_timeout).await?;
            register(ws, registration, shared.config.connect_timeout).await
        };
        tokio::select! {
            result = attempt => match result {
                Ok(ws) => return Some(ws),
                Err(e) => tracing::debug!("reconnecting to the master failed: {e}"),
            },
            _ = shared.shutdown.cancelled() => return None,
        }
        delay = (delay * 2).min(shared.config.reconnect_max_delay);
    }
}

fn dispatch(
    shared: &Arc<SlaveShared>,
    peers: &mut HashMap<u32, PeerEntry>,
    detached: &mut Vec<PeerEntry>,
    to_master: &mpsc::UnboundedSender<Bytes>,
    msg: Message,
) {
    match msg {
        Message::OfferFromClient(SessionDescription { id, sdp }) => {
            tracing::trace!(client_id = id, "offer");
            let ice = ice_session(&sdp);
            if let Some(entry) = peers.get(&id) {
                // Same browser session: renegotiation on the live connection.
                if !entry.commands.is_closed() && entry.ice == ice {
                    let _ = entry.commands.send(PeerCommand::Offer(sdp));
                    return;
                }
            }
            // A live session known under another id (the client or this slave
            // reconnected to the master since): it renegotiates, so keep it.
            if let Some(entry) = take_session(peers, detached, id, ice.as_deref()) {
                let _ = entry.commands.send(PeerCommand::Readdress(Some(id)));
                let _ = entry.commands.send(PeerCommand::Offer(sdp));
                peers.insert(id, entry);
                return;
            }
            // A new session (or the old one is gone): a fresh peer. A stale
            // one is released when its sender is dropped.
            let (commands, receiver) = mpsc::unbounded_channel();
            peers.insert(id, PeerEntry { commands, ice });
            shared.spawn_guarded("a peer connection", run_peer(shared.clone(), id, sdp, receiver, to_master.clone()));
        }
        Message::IceCandidateFromClient(IceCandidate { id, candidate }) => match peers.get(&id) {
            Some(entry) if !entry.commands.is_closed() => {
                tracing::trace!(client_id = id, "remote candidate");
                let _ = entry.commands.send(PeerCommand::Candidate(candidate));
            }
            _ => tracing::debug!(client_id = id, "candidate for no live peer dropped"),
        },
        other => {
            tracing::debug!(msg_type = ?other.message_type(), "unexpected message from the master dropped")
        }
    }
    // Forget peers whose task has ended.
    peers.retain(|_, entry| !entry.commands.is_closed());
}

/// Takes the live session with these ICE credentials from under another id
/// or from the peers of an earlier master connection.
fn take_session(
    peers: &mut HashMap<u32, PeerEntry>,
    detached: &mut Vec<PeerEntry>,
    id: u32,
    ice: Option<&str>,
) -> Option<PeerEntry> {
    let ice = ice?;
    let matches = |entry: &PeerEntry| !entry.commands.is_closed() && entry.ice.as_deref() == Some(ice);
    if let Some(old_id) = peers.iter().find(|(other, entry)| **other != id && matches(entry)).map(|(other, _)| *other) {
        return peers.remove(&old_id);
    }
    let index = detached.iter().position(matches)?;
    Some(detached.swap_remove(index))
}
