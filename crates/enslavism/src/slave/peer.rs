//! One client's peer connection on the slave, as signalling sees it: the
//! offer decision, the answer, renegotiations and trickled candidates. The
//! connection itself lives in a shard of the engine.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::engine::{Command, OpenPeer, PeerKey};
use super::stats::{PeerStats, Registered};
use super::SlaveShared;
use crate::proto::{Candidate, Message, SessionDescription};

/// What the master link forwards to a peer.
pub(crate) enum PeerCommand {
    /// A new offer on the same session (renegotiation).
    Offer(String),
    /// A trickled candidate from the client (`None`: end of candidates).
    Candidate(Option<Candidate>),
    /// The client is now reached under this id (it reconnected to the master,
    /// or the slave did), or cannot be reached at all (`None`: the master link
    /// that knew it is gone): signalling from now on goes there, or nowhere.
    Readdress(Option<u32>),
}

/// The offer's ICE username fragment: a new one means a new browser session.
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// The offer's ICE credentials (`ufrag:pwd`), which name one browser session.
/// The ufrag travels in clear in every STUN check, the password never does:
/// only that browser can send an offer carrying both.
pub(crate) fn ice_session(sdp: &str) -> Option<String> {
    let pwd = sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-pwd:"))?;
    Some(format!("{}:{pwd}", ice_ufrag(sdp)?))
}

fn send_to_master(to_master: &mpsc::UnboundedSender<Bytes>, msg: Message) {
    match msg.encode() {
        Ok(frame) => {
            let _ = to_master.send(Bytes::from(frame));
        }
        Err(e) => tracing::debug!("signalling message not sent: {e}"),
    }
}

/// Runs one client's peer from its first offer to its release: the offer
/// decision, then signalling between the master and the peer's shard, which
/// does the rest (and reports the connection's events).
pub(crate) async fn run_peer(
    shared: Arc<SlaveShared>,
    client_id: u32,
    offer_sdp: String,
    mut commands: mpsc::UnboundedReceiver<PeerCommand>,
    to_master: mpsc::UnboundedSender<Bytes>,
) {
    let offered_at = Instant::now();
    let accepted = tokio::select! {
        decision = tokio::time::timeout(shared.config.offer_timeout, shared.hooks.on_offer(client_id)) => decision.unwrap_or(false),
        _ = shared.shutdown.cancelled() => false,
    };
    if !accepted {
        tracing::debug!(client_id, "offer rejected");
        send_to_master(&to_master, Message::RejectToClient { id: client_id });
        return;
    }

    let key: PeerKey = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let (answer_tx, answer_rx) = oneshot::channel();
    let (released_tx, mut released) = oneshot::channel::<()>();
    let shard = shared.engine.least_loaded();
    let stats = Arc::new(PeerStats::new(client_id));
    // Registered before the shard hears of it: the application may ask for
    // the connection as soon as its `Connection` event arrives.
    shared.stats.connections().insert(key, Registered { shard: shard.clone(), stats: stats.clone() });
    let open = OpenPeer { key, client_id, offer_sdp, offered_at, stats, answer: answer_tx, released: released_tx };
    // The shard releases the peer once this task ends, however it ends.
    let _close = ClosePeer { shared: &shared, shard: &shard, key };
    let _ = shard.send(Command::Open(Box::new(open)));
    let answered = tokio::select! {
        answered = answer_rx => answered,
        _ = shared.shutdown.cancelled() => return,
    };
    match answered {
        Ok(Ok(sdp)) => send_to_master(&to_master, Message::AnswerToClient(SessionDescription { id: client_id, sdp })),
        Ok(Err(e)) => {
            tracing::debug!(client_id, "{e}");
            send_to_master(&to_master, Message::RejectToClient { id: client_id });
            return;
        }
        Err(_) => return,
    }

    // Where signalling goes; events keep the id the session started with.
    let mut signal_id = Some(client_id);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(PeerCommand::Offer(sdp)) => {
                    let (answer, answered) = oneshot::channel();
                    let _ = shard.send(Command::Offer { peer: key, sdp, answer });
                    let answered = tokio::select! {
                        answered = answered => answered,
                        _ = &mut released => break,
                    };
                    match answered {
                        Ok(Ok(sdp)) => {
                            if let Some(id) = signal_id {
                                send_to_master(&to_master, Message::AnswerToClient(SessionDescription { id, sdp }));
                            }
                        }
                        Ok(Err(e)) => {
                            // The client waits for an answer: tell it, rather than leave it hanging.
                            tracing::debug!(client_id, "renegotiation failed: {e}");
                            if let Some(id) = signal_id {
                                send_to_master(&to_master, Message::RejectToClient { id });
                            }
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Some(PeerCommand::Candidate(Some(c))) if !c.candidate.is_empty() => {
                    let _ = shard.send(Command::Candidate { peer: key, candidate: c.candidate });
                }
                Some(PeerCommand::Candidate(_)) => {}
                Some(PeerCommand::Readdress(id)) => {
                    tracing::debug!(client_id, now = ?id, "the client is reached under another id");
                    signal_id = id;
                }
                None => break,
            },
            _ = &mut released => break,
            _ = shared.shutdown.cancelled() => break,
        }
    }
    // Offers that arrive from now on start a new peer instead of waiting here.
    commands.close();
}

/// When dropped, forgets the connection and asks the shard to release the
/// peer (a no-op once it has).
struct ClosePeer<'a> {
    shared: &'a SlaveShared,
    shard: &'a mpsc::UnboundedSender<Command>,
    key: PeerKey,
}

impl Drop for ClosePeer<'_> {
    fn drop(&mut self) {
        self.shared.stats.connections().remove(&self.key);
        let _ = self.shard.send(Command::Close { peer: self.key });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ufrag_and_session_are_read_from_the_offer() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\n";
        assert_eq!(ice_ufrag(sdp), Some("abcd"));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
        assert_eq!(ice_session("a=ice-ufrag:abcd\r\na=ice-pwd:secret\r\n").as_deref(), Some("abcd:secret"));
        assert_eq!(ice_session(sdp), None, "no password, no session");
    }
}
