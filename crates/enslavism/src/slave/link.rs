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
use crate::proto::{IceCandidate, Message, ProtocolVersion, SessionDescription};

/// An open master connection, and the messages agreed in its handshake.
pub(crate) struct Link {
    ws: MasterSocket,
    protocol: ProtocolVersion,
}

/// Where slaves connect on a master.
pub(crate) const PATH: &str = "/enslavism/slaves";

/// Opens the WebSocket to `master_url + "/enslavism/slaves"`; a `wss://`
/// URL is verified with `tls`.
async fn open(
    master_url: &str,
    auth: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Link, SlaveError> {
    let (ws, protocol) = crate::dial::open(master_url, PATH, auth, tls, timeout).await?;
    Ok(Link { ws, protocol })
}

/// As whom the slave registers (kept to register again after a reconnect;
/// where is `SlaveShared::masters`).
pub(crate) struct Registration {
    pub auth: Vec<(String, String)>,
    /// How a `wss://` master is verified.
    pub tls: Arc<rustls::ClientConfig>,
}

/// Registers with the latest userData, which settles every update waiting:
/// the master has the latest now.
async fn register(shared: &SlaveShared, mut link: Link, url: &str) -> Result<Link, SlaveError> {
    let pending = shared.user_data.for_registration();
    let frame = Message::Register { user_data: pending.user_data }.encode()?;
    within(shared.config.connect_timeout, link.ws.send(WsMessage::Binary(frame.into())))
        .await
        .map_err(|reason| DialError::Unreachable { url: url.to_owned(), reason })?;
    shared.user_data.settle(pending.seq, None);
    Ok(link)
}

/// Connects and registers with the first master of the list that answers
/// (in the order given), and starts the signalling loop. When none does,
/// the first master's error.
pub(crate) async fn start(shared: Arc<SlaveShared>, registration: Registration) -> Result<(), SlaveError> {
    let link = shared.masters.connect_first(|url| connect(&shared, &registration, url)).await?;
    let task_shared = shared.clone();
    shared.spawn_guarded("the master link", run_link(task_shared, link, registration));
    Ok(())
}

/// A client's peer task, and the session it serves.
struct PeerEntry {
    commands: mpsc::UnboundedSender<PeerCommand>,
    /// The browser session's ICE credentials (see `ice_session`).
    ice: Option<String>,
}

/// Opens the link to the master at `url` and registers there.
async fn connect(shared: &SlaveShared, registration: &Registration, url: String) -> Result<Link, SlaveError> {
    let link = open(&url, &registration.auth, &registration.tls, shared.config.connect_timeout).await?;
    register(shared, link, &url).await
}

/// The master link for the slave's lifetime: serves one master connection,
/// and when it drops, reconnects (with backoff, to the next master of the
/// list first) and registers again.
async fn run_link(shared: Arc<SlaveShared>, mut link: Link, registration: Registration) {
    serve_for_life(&shared, &mut link, &registration).await;
    shared.user_data.end_link();
}

async fn serve_for_life(shared: &Arc<SlaveShared>, link: &mut Link, registration: &Registration) {
    let (to_master, mut outgoing) = mpsc::unbounded_channel::<Bytes>();
    let mut peers: HashMap<u32, PeerEntry> = HashMap::new();
    // Peers of earlier master connections: their client ids meant something
    // only to that master, so they keep running but can no longer be addressed.
    let mut detached: Vec<PeerEntry> = Vec::new();
    loop {
        let Some((code, reason)) = serve(shared, link, &mut peers, &mut detached, &to_master, &mut outgoing).await else {
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
        let Some(new_link) = reconnect(shared, registration, &mut outgoing).await else {
            return;
        };
        *link = new_link;
        let url = shared.masters.current().to_owned();
        tracing::info!(%url, "registered with a master again");
        shared.hooks.on_event(SlaveEvent::MasterReconnect { url });
    }
}

/// Serves one master connection; `None` when the slave is closing.
async fn serve(
    shared: &Arc<SlaveShared>,
    link: &mut Link,
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
    let Link { ws, protocol } = link;
    loop {
        tokio::select! {
            _ = shared.user_data.changed.notified() => {
                if let Err(reason) = send_update(shared, ws, *protocol).await {
                    return Some((1006, reason));
                }
            }
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

/// Sends the latest userData if it is new to the master: as an update to a
/// V2 master (its result settles the wait), as a second Register to a 0.9.0
/// master, which answers nothing (sent is all that can be known).
async fn send_update(shared: &SlaveShared, ws: &mut MasterSocket, protocol: ProtocolVersion) -> Result<(), String> {
    let Some(pending) = shared.user_data.take_unsent() else { return Ok(()) };
    let message = match protocol {
        ProtocolVersion::V2 => Message::UpdateUserData { seq: pending.seq, user_data: pending.user_data },
        ProtocolVersion::V1 => Message::Register { user_data: pending.user_data },
    };
    // Checked when set: the only error left would be a bug of ours.
    let frame = message.encode().map_err(|e| e.to_string())?;
    within(shared.config.heartbeat_timeout, ws.send(WsMessage::Binary(frame.into()))).await?;
    if protocol == ProtocolVersion::V1 {
        shared.user_data.settle(pending.seq, None);
    }
    Ok(())
}

/// Connects and registers again, going round the master list (see
/// `crate::masters`) with backoff between rounds; `None` when the slave is
/// closing. Signalling queued meanwhile was for the old master and is dropped.
async fn reconnect(
    shared: &Arc<SlaveShared>,
    registration: &Registration,
    outgoing: &mut mpsc::UnboundedReceiver<Bytes>,
) -> Option<Link> {
    let mut backoff = shared.masters.backoff(RECONNECT_INITIAL_DELAY, shared.config.reconnect_max_delay);
    loop {
        let wait = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = outgoing.recv() => {}
                _ = shared.shutdown.cancelled() => return None,
            }
        }
        let attempt = shared.masters.fail_over(|url| connect(shared, registration, url));
        tokio::select! {
            result = attempt => match result {
                Ok(ws) => return Some(ws),
                Err(e) => tracing::debug!("reconnecting to the master failed: {e}"),
            },
            _ = shared.shutdown.cancelled() => return None,
        }
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
        Message::UserDataResult { seq, refusal } => {
            if let Some(reason) = &refusal {
                tracing::info!(seq, %reason, "the master refused a userData update");
            }
            shared.user_data.settle(seq, refusal);
        }
        Message::Pong { .. } => {}
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
