//! The client's WebSocket to the master: the slave list, signalling to the
//! slaves' sessions, heartbeat, and reconnection with resynchronisation.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::list::Change;
use super::session::SessionInput;
use super::{ClientError, MasterEvent, Outgoing, Shared};
use crate::dial::{inbound, within, DialError, Inbound, MasterSocket, CLOSE_WRITE_LIMIT, RECONNECT_INITIAL_DELAY};
use crate::proto::{IceCandidate, Message, SessionDescription};

/// Where clients connect on a master.
pub(crate) const PATH: &str = "/enslavism/clients";

type Events = mpsc::UnboundedSender<MasterEvent>;

/// Connects to the master at `url` and takes in its first slave list; the
/// slaves listed before (if any) become orphans until it names them.
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    tls: &Arc<rustls::ClientConfig>,
    events: &Events,
    url: String,
) -> Result<MasterSocket, ClientError> {
    let settings = &shared.settings;
    let (ws, _) = crate::dial::open(&url, PATH, &settings.cookies, tls, settings.connect_timeout).await?;
    shared.state().list.orphan_all();
    first_list(shared, ws, events, &url).await
}

/// Waits for the first slave list of a new connection (every master sends
/// one at once, empty or not) and takes it in.
async fn first_list(shared: &Arc<Shared>, mut ws: MasterSocket, events: &Events, url: &str) -> Result<MasterSocket, ClientError> {
    let limit = shared.settings.connect_timeout;
    let unreachable = |reason: String| ClientError::Dial(DialError::Unreachable { url: url.to_owned(), reason });
    let list = tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Binary(data))) => match Message::decode(&data) {
                    Ok(Message::AddSlaves(list)) => return Ok(list),
                    Ok(other) => report_bad(events, format!("{:?} before the slave list", other.message_type())),
                    Err(e) => report_bad(events, e.to_string()),
                },
                Some(Ok(WsMessage::Close(frame))) => {
                    return Err(unreachable(format!(
                        "closed before the slave list: {}",
                        frame.map_or(String::new(), |f| f.reason.to_string())
                    )))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(unreachable(e.to_string())),
                None => return Err(unreachable("closed before the slave list".into())),
            }
        }
    })
    .await
    .map_err(|_| unreachable(format!("no slave list within {limit:?}")))??;
    shared.masters.set_current(url);
    let changes = {
        let mut state = shared.state();
        state.connections += 1;
        state.connection = Some(state.connections);
        state.list.add(list)
    };
    report(shared, events, changes);
    Ok(ws)
}

fn report_bad(events: &Events, reason: String) {
    tracing::debug!("malformed frame from the master dropped: {reason}");
    let _ = events.send(MasterEvent::BadFrame { reason });
}

/// Reports list changes; a removed slave's connection is closed.
fn report(shared: &Shared, events: &Events, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Added(info) => {
                let _ = events.send(MasterEvent::SlaveAdded(info));
            }
            Change::Relisted(info) => {
                let _ = events.send(MasterEvent::SlaveRelisted(info));
            }
            Change::Kept(info) => {
                let _ = events.send(MasterEvent::SlaveKept(info));
            }
            Change::Updated(info) => {
                let _ = events.send(MasterEvent::SlaveUpdated(info));
            }
            Change::Removed(info) => {
                let session = {
                    let mut state = shared.state();
                    state.handles.remove(&info.uid);
                    state.sessions.remove(&info.uid)
                };
                if let Some(session) = session {
                    let _ = session.send(SessionInput::Close);
                }
                let _ = events.send(MasterEvent::SlaveRemoved(info));
            }
        }
    }
}

/// The link for the client's lifetime: serves one master connection, and
/// when it drops, reconnects (with backoff, to the next master of the list
/// first) and resynchronises the list.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut ws: MasterSocket,
    tls: Arc<rustls::ClientConfig>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    events: Events,
) {
    loop {
        let ended = serve(&shared, &mut ws, &mut outgoing, &events).await;
        shared.state().connection = None;
        let Some((code, reason)) = ended else { break };
        tracing::info!(code, %reason, "the master connection closed");
        let _ = events.send(MasterEvent::Disconnected { code, reason });
        if !shared.settings.reconnect {
            break;
        }
        let Some(new_ws) = reconnect(&shared, &tls, &events).await else { break };
        ws = new_ws;
        let url = shared.masters.current().to_owned();
        tracing::info!(%url, "connected to a master again");
        let _ = events.send(MasterEvent::Reconnected { url });
    }
    // Closed for good: every slave connection with it.
    let sessions: Vec<_> = {
        let mut state = shared.state();
        state.handles.clear();
        state.sessions.drain().map(|(_, s)| s).collect()
    };
    for session in sessions {
        let _ = session.send(SessionInput::Close);
    }
}

/// Connects again, going round the master list (see `crate::masters`) with
/// backoff between rounds; `None` once the client is closing. The slaves
/// listed so far become orphans until the new list names them.
async fn reconnect(shared: &Arc<Shared>, tls: &Arc<rustls::ClientConfig>, events: &Events) -> Option<MasterSocket> {
    let settings = &shared.settings;
    let mut backoff = shared.masters.backoff(RECONNECT_INITIAL_DELAY, settings.reconnect_max_delay);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shared.shutdown.cancelled() => return None,
        }
        let attempt = shared.masters.fail_over(|url| connect(shared, tls, events, url));
        tokio::select! {
            result = attempt => match result {
                Ok(ws) => return Some(ws),
                Err(e) => tracing::debug!("reconnecting to the master failed: {e}"),
            },
            _ = shared.shutdown.cancelled() => return None,
        }
    }
}

/// Serves one master connection; `None` when the client is closing, else
/// the close code and reason.
async fn serve(
    shared: &Arc<Shared>,
    ws: &mut MasterSocket,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    events: &Events,
) -> Option<(u16, String)> {
    let settings = &shared.settings;
    let connection = shared.state().connection;
    let mut heartbeat = tokio::time::interval(settings.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let mut last_heard = tokio::time::Instant::now();
    // Slaves of an earlier connection not listed again are removed after the grace period.
    let grace = tokio::time::sleep(settings.resync_grace);
    tokio::pin!(grace);
    let mut orphans = shared.state().list.has_orphans();
    loop {
        tokio::select! {
            _ = &mut grace, if orphans => {
                orphans = false;
                let changes = shared.state().list.drop_orphans();
                report(shared, events, changes);
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= settings.heartbeat_timeout {
                    tracing::info!("no sign of life from the master: dropping the connection");
                    return Some((1006, "heartbeat timeout".into()));
                }
                if last_heard.elapsed() >= settings.heartbeat_interval {
                    if let Err(reason) = within(settings.heartbeat_timeout, ws.send(WsMessage::Ping(Default::default()))).await {
                        return Some((1006, reason));
                    }
                }
            }
            frame = outgoing.recv() => {
                // Frames addressed with an earlier connection's ids are dropped.
                let Some((to, frame)) = frame else { continue };
                if Some(to) != connection {
                    continue;
                }
                if let Err(reason) = within(settings.heartbeat_timeout, ws.send(WsMessage::Binary(frame))).await {
                    return Some((1006, reason));
                }
            }
            incoming = ws.next() => {
                if matches!(incoming, Some(Ok(_))) {
                    last_heard = tokio::time::Instant::now();
                }
                match inbound(ws, incoming, settings.heartbeat_timeout).await {
                    Inbound::Frame(data) => match Message::decode(&data) {
                        Ok(msg) => dispatch(shared, events, msg),
                        Err(e) => report_bad(events, e.to_string()),
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

fn dispatch(shared: &Shared, events: &Events, msg: Message) {
    match msg {
        Message::AddSlaves(list) => {
            let changes = shared.state().list.add(list);
            report(shared, events, changes);
        }
        Message::UpdateSlaves(list) => {
            let changes = shared.state().list.update(list);
            report(shared, events, changes);
        }
        Message::RemoveSlaves(ids) => {
            let changes = shared.state().list.remove(&ids);
            report(shared, events, changes);
        }
        Message::AnswerFromSlave(SessionDescription { id, sdp }) => shared.to_session(id, SessionInput::Answer(sdp)),
        Message::IceCandidateFromSlave(IceCandidate { id, candidate }) => {
            shared.to_session(id, SessionInput::Candidate(candidate))
        }
        Message::RejectFromSlave { id } => shared.to_session(id, SessionInput::Rejected),
        other => report_bad(events, format!("{:?} is not a message for a client", other.message_type())),
    }
}
