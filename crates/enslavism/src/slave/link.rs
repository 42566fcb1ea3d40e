//! The slave's WebSocket to its master: registration, then signalling
//! dispatched to one task per client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderValue, COOKIE};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::peer::{ice_session, run_peer, PeerCommand};
use super::{SlaveError, SlaveEvent, SlaveShared};
use crate::proto::{IceCandidate, Message, SessionDescription};

type MasterSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The cookie header carrying authData, encoded as 0.9.0 did (`cookie.serialize`).
fn cookie_header(auth: &[(String, String)]) -> String {
    auth.iter()
        .map(|(name, value)| cookie::Cookie::new(name.as_str(), value.as_str()).encoded().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Opens the WebSocket to `master_url + "/enslavism/slaves"`; a `wss://`
/// URL is verified with `tls`.
pub(crate) async fn open(
    master_url: &str,
    auth: &[(String, String)],
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<MasterSocket, SlaveError> {
    let bad_url = |reason: String| SlaveError::BadUrl { url: master_url.to_owned(), reason };
    if !(master_url.starts_with("ws://") || master_url.starts_with("wss://")) {
        return Err(bad_url("it must start with ws:// or wss://".into()));
    }
    let url = format!("{}/enslavism/slaves", master_url.trim_end_matches('/'));
    let mut request = url.as_str().into_client_request().map_err(|e| bad_url(e.to_string()))?;
    if !auth.is_empty() {
        let value = HeaderValue::from_str(&cookie_header(auth))
            .map_err(|e| bad_url(format!("authData cannot be sent as cookies: {e}")))?;
        request.headers_mut().insert(COOKIE, value);
    }
    let unreachable = |reason: String| SlaveError::Unreachable { url: url.clone(), reason };
    // Nagle off, as the master's side has it: with it, an answer written while
    // the previous frame waits for its (delayed) ACK sat up to 40 ms.
    let connector = Some(Connector::Rustls(tls.clone()));
    match tokio::time::timeout(timeout, tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)).await {
        Err(_) => Err(unreachable(format!("no WebSocket handshake within {timeout:?}"))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Io(e))) => match crate::tls::rustls_error(&e) {
            Some(source) => Err(SlaveError::Tls { url, source: source.clone() }),
            None => Err(unreachable(e.to_string())),
        },
        Ok(Err(WsError::Http(response))) => Err(SlaveError::Refused {
            status: response.status().as_u16(),
            body: response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default(),
        }),
        Ok(Err(WsError::Url(e))) => Err(bad_url(e.to_string())),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
    }
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
        .map_err(|reason| SlaveError::Unreachable { url: registration.url.clone(), reason })?;
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
                match incoming {
                    Some(Ok(WsMessage::Binary(data))) => match Message::decode(&data) {
                        Ok(msg) => dispatch(shared, peers, detached, to_master, msg),
                        Err(e) => tracing::debug!("malformed frame from the master dropped: {e}"),
                    },
                    Some(Ok(WsMessage::Close(frame))) => {
                        let _ = within(CLOSE_WRITE_LIMIT, ws.flush()).await;
                        return Some(frame.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string())));
                    }
                    Some(Ok(WsMessage::Ping(_))) => {
                        if let Err(reason) = within(shared.config.heartbeat_timeout, ws.flush()).await {
                            return Some((1006, reason));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Some((1006, e.to_string())),
                    None => return Some((1006, String::new())),
                }
            }
            _ = shared.shutdown.cancelled() => {
                let _ = within(CLOSE_WRITE_LIMIT, ws.close(None)).await;
                return None;
            }
        }
    }
}

/// How long a goodbye to the master may take to write.
const CLOSE_WRITE_LIMIT: Duration = Duration::from_millis(500);

/// Runs one write to the master, giving up after `limit`: on a half-open link,
/// or a master that stopped reading, whose send buffer is full, a write would
/// otherwise wait forever and the heartbeat with it.
async fn within(limit: Duration, write: impl std::future::Future<Output = Result<(), WsError>>) -> Result<(), String> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("heartbeat timeout (send stalled)".into()),
    }
}

/// First wait before reconnecting; it doubles up to `reconnect_max_delay`.
const RECONNECT_INITIAL_DELAY: Duration = Duration::from_millis(250);

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_tungstenite::MaybeTlsStream;

    /// With Nagle on, a frame written while the previous one waited for the
    /// master's delayed ACK sat up to 40 ms: 10 setups at once had a p95 40 ms
    /// above their p50.
    #[tokio::test]
    async fn the_link_to_the_master_sends_small_frames_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let master = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio_tungstenite::accept_async(stream).await.unwrap()
        });
        let tls = crate::tls::client_config(&[]).unwrap();
        let ws = super::open(&format!("ws://{addr}"), &[], &tls, Duration::from_secs(5)).await.unwrap();
        let MaybeTlsStream::Plain(tcp) = ws.get_ref() else { panic!("a ws:// link is plain TCP") };
        assert!(tcp.nodelay().unwrap(), "Nagle's algorithm is on for the master link");
        drop(master.await.unwrap());
    }
}
