//! One client's WebRTC peer connection on the slave: the offer decision, the
//! answer, trickled candidates both ways, and its data channels.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::transport::RTCDtlsRole;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
    SettingEngineBuilder,
};

use super::channel::{run_channel, ChannelInfo, ChannelNote};
use super::{nat, negotiated};
use super::{SessionId, SlaveEvent, SlaveShared};
use crate::proto::{Candidate, IceCandidate, Message, SessionDescription};

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

/// What webrtc-rs reports, forwarded off its driver task.
enum Signal {
    Candidate(RTCIceCandidateInit),
    GatheringComplete,
    State(RTCPeerConnectionState),
    DataChannel(Arc<dyn DataChannel>),
}

struct Forwarder(mpsc::UnboundedSender<Signal>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forwarder {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.0.send(Signal::Candidate(init));
            }
            Err(e) => tracing::debug!("local candidate not serialisable: {e}"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(Signal::GatheringComplete);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(Signal::State(state));
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        let _ = self.0.send(Signal::DataChannel(data_channel));
    }
}

/// The `a=mid:` of the offer's first m-line: what our candidates refer to.
pub(crate) fn first_mid(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .filter(|m| !m.is_empty() && m.len() <= crate::proto::MAX_SDP_MID_LEN)
        .unwrap_or("0")
        .to_owned()
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

/// Our ICE servers as webrtc-rs takes them.
pub(crate) fn rtc_ice_servers(servers: &[super::IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer { urls: s.urls.clone(), username: s.username.clone(), credential: s.credential.clone() })
        .collect()
}

/// Bytes each data channel may have in SCTP, unacknowledged, before its
/// sends wait. Loopback needs ~64 KiB for full speed; Chromium aborted
/// associations more often with 256 KiB and more in flight.
pub(crate) const SCTP_SEND_BUFFER: usize = 128 * 1024;

async fn build_peer(
    shared: &SlaveShared,
    signals: mpsc::UnboundedSender<Signal>,
) -> webrtc::error::Result<Box<dyn PeerConnection>> {
    let config = &shared.config;
    let settings = SettingEngineBuilder::new()
        // The default role costs 140–340 ms per browser connection (DTLS and SCTP retries).
        .with_answering_dtls_role(RTCDtlsRole::Server)
        // The default mode opens a multicast socket per peer and fails without a multicast route.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(Some(config.ice_disconnected_timeout), Some(config.ice_failed_timeout), None)
        .build();
    let rtc_config = RTCConfigurationBuilder::new().with_ice_servers(rtc_ice_servers(&config.ice_servers)).build();

    let attempts = match config.port_range {
        Some((lo, hi)) => u32::from(hi.saturating_sub(lo)) + 1,
        None => 1,
    };
    let mut last_err = None;
    for _ in 0..attempts.min(64) {
        let port = match config.port_range {
            Some((lo, hi)) => {
                let span = u32::from(hi.saturating_sub(lo)) + 1;
                lo + (shared.next_port.fetch_add(1, Ordering::Relaxed) % span) as u16
            }
            None => 0,
        };
        let addrs: Vec<SocketAddr> = config.ice_addresses.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        let built = PeerConnectionBuilder::new()
            .with_configuration(rtc_config.clone())
            .with_setting_engine(settings.clone())
            .with_handler(Arc::new(Forwarder(signals.clone())))
            .with_runtime(shared.runtime.clone())
            // Unbounded by default: a sender pacing on bufferedAmount never saw
            // the SCTP queue grow, and queued without limit (100 MB in a 2 s
            // bulk send, then a browser abort). Bounded, `send` waits, the
            // channel's own queue grows, and bufferedAmount tells the sender.
            .with_data_channel_send_buffer_limit(SCTP_SEND_BUFFER)
            .with_udp_addrs(addrs)
            .build()
            .await;
        match built {
            Ok(pc) => return Ok(Box::new(pc)),
            Err(e) => {
                tracing::debug!(port, "cannot bind a peer connection: {e}");
                last_err = Some(e);
            }
        }
    }
    Err(last_err.expect("at least one attempt"))
}

/// Applies an offer: creates the negotiated channels it newly lists, answers,
/// and returns the answer with the channels created.
async fn apply_offer(
    pc: &dyn PeerConnection,
    offer_sdp: &str,
    created: &mut HashSet<u16>,
) -> webrtc::error::Result<(String, Vec<(ChannelInfo, Arc<dyn DataChannel>)>)> {
    let (clean, listed) = negotiated::split_offer(offer_sdp);
    pc.set_remote_description(RTCSessionDescription::offer(clean)?).await?;
    let mut channels = Vec::new();
    for channel in listed {
        if !created.insert(channel.stream_id) {
            continue;
        }
        let init = RTCDataChannelInit {
            ordered: channel.info.ordered,
            max_packet_life_time: channel.info.max_packet_life_time,
            max_retransmits: channel.info.max_retransmits,
            protocol: channel.info.protocol.clone(),
            negotiated: Some(channel.stream_id),
        };
        let dc = pc.create_data_channel(&channel.info.label, Some(init)).await?;
        channels.push((channel.info, dc));
    }
    let answer = pc.create_answer(None).await?;
    let sdp = answer.sdp.clone();
    pc.set_local_description(answer).await?;
    Ok((sdp, channels))
}

/// How long the first answer waits for our host candidates to be gathered.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The answer to send: with our candidates in it where gathering finishes in
/// time (the browser can then check pairs at once instead of waiting for
/// trickled candidates and its next check interval). Candidates gathered
/// meanwhile are in the SDP, so their signals are dropped; later ones are
/// trickled as usual.
async fn answer_to_send(pc: &dyn PeerConnection, answer_sdp: String, signals: &mut mpsc::UnboundedReceiver<Signal>) -> String {
    let deadline = tokio::time::sleep(GATHER_WAIT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(Signal::GatheringComplete) | None => break,
                // In the description read below.
                Some(Signal::Candidate(_)) => {}
                // Nothing else can happen before the browser has an answer.
                Some(_) => {}
            },
            _ = &mut deadline => break,
        }
    }
    pc.local_description().await.map_or(answer_sdp, |d| d.sdp)
}

/// The answer as the browser gets it: negotiated channels marked, host
/// candidates under the public addresses.
fn announced_answer(sdp: &str, config: &super::SlaveConfig) -> String {
    nat::announced_sdp(&negotiated::mark_answer(sdp), &config.public_addresses)
}

/// Runs one client's peer from its first offer to its release.
pub(crate) async fn run_peer(
    shared: Arc<SlaveShared>,
    client_id: u32,
    offer_sdp: String,
    mut commands: mpsc::UnboundedReceiver<PeerCommand>,
    to_master: mpsc::UnboundedSender<Bytes>,
) {
    let accepted = tokio::select! {
        decision = tokio::time::timeout(shared.config.offer_timeout, shared.hooks.on_offer(client_id)) => decision.unwrap_or(false),
        _ = shared.shutdown.cancelled() => false,
    };
    if !accepted {
        tracing::debug!(client_id, "offer rejected");
        send_to_master(&to_master, Message::RejectToClient { id: client_id });
        return;
    }

    // The setup futures are boxed: inline, their (large) state would stay
    // part of this task, allocated for the whole life of every peer.
    let (signal_tx, mut signals) = mpsc::unbounded_channel();
    tracing::trace!(client_id, "offer accepted");
    let pc = match Box::pin(build_peer(&shared, signal_tx)).await {
        Ok(pc) => pc,
        Err(e) => {
            tracing::warn!(client_id, "cannot create a peer connection: {e}");
            send_to_master(&to_master, Message::RejectToClient { id: client_id });
            return;
        }
    };
    tracing::trace!(client_id, "peer connection built");
    let mid = first_mid(&offer_sdp);
    let mut negotiated_ids = HashSet::new();
    let (answer_sdp, first_channels) = match Box::pin(apply_offer(&*pc, &offer_sdp, &mut negotiated_ids)).await {
        Ok(answered) => answered,
        Err(e) => {
            tracing::debug!(client_id, "unusable offer: {e}");
            send_to_master(&to_master, Message::RejectToClient { id: client_id });
            let _ = pc.close().await;
            return;
        }
    };
    tracing::trace!(client_id, "offer applied");
    let sdp = announced_answer(&Box::pin(answer_to_send(&*pc, answer_sdp, &mut signals)).await, &shared.config);
    tracing::trace!(client_id, "answer ready");
    let session: SessionId = shared.next_session.fetch_add(1, Ordering::Relaxed);
    shared.hooks.on_event(SlaveEvent::Connection { client_id, session });
    // Reports the end of the session however this task ends, a panic included.
    let _session_end = SessionEnd { shared: &shared, client_id, session };
    send_to_master(&to_master, Message::AnswerToClient(SessionDescription { id: client_id, sdp }));

    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    // Channel tasks started and not yet ended.
    let mut live_channels = 0usize;
    let spawn_channel = |dc: Arc<dyn DataChannel>, known: Option<ChannelInfo>, live_channels: &mut usize| {
        *live_channels += 1;
        shared.spawn_guarded("a data channel", run_channel(shared.clone(), (client_id, session), dc, known, notes_tx.clone()));
    };
    for (info, dc) in first_channels {
        spawn_channel(dc, Some(info), &mut live_channels);
    }
    // Where signalling goes; events keep the id the session started with.
    let mut signal_id = Some(client_id);
    let mut had_channel = false;
    let setup_deadline = tokio::time::sleep(shared.config.peer_setup_timeout);
    tokio::pin!(setup_deadline);
    // Armed while no channel is live: the browser may open another one on
    // this connection, or may be gone (webrtc-rs would linger ~30 s).
    let idle_deadline = tokio::time::sleep(PEER_IDLE_GRACE);
    tokio::pin!(idle_deadline);
    let mut idle = false;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(PeerCommand::Offer(sdp)) => match Box::pin(apply_offer(&*pc, &sdp, &mut negotiated_ids)).await {
                    Ok((sdp, channels)) => {
                        for (info, dc) in channels {
                            spawn_channel(dc, Some(info), &mut live_channels);
                        }
                        idle = false;
                        let sdp = announced_answer(&pc.local_description().await.map_or(sdp, |d| d.sdp), &shared.config);
                        if let Some(id) = signal_id {
                            send_to_master(&to_master, Message::AnswerToClient(SessionDescription { id, sdp }));
                        }
                    }
                    Err(e) => {
                        // The client waits for an answer: tell it, rather than leave it hanging.
                        tracing::debug!(client_id, "renegotiation failed: {e}");
                        if let Some(id) = signal_id {
                            send_to_master(&to_master, Message::RejectToClient { id });
                        }
                        break;
                    }
                },
                Some(PeerCommand::Candidate(Some(c))) if !c.candidate.is_empty() => {
                    let init = RTCIceCandidateInit {
                        candidate: c.candidate,
                        sdp_mid: Some(c.sdp_mid),
                        sdp_mline_index: Some(c.sdp_m_line_index),
                        ..Default::default()
                    };
                    if let Err(e) = pc.add_ice_candidate(init).await {
                        tracing::debug!(client_id, "remote candidate refused: {e}");
                    }
                }
                Some(PeerCommand::Candidate(_)) => {}
                Some(PeerCommand::Readdress(id)) => {
                    tracing::debug!(client_id, now = ?id, "the client is reached under another id");
                    signal_id = id;
                }
                None => break,
            },
            signal = signals.recv() => match signal {
                Some(Signal::Candidate(init)) => {
                    if let Some(id) = signal_id {
                        for candidate in nat::announced(&init.candidate, &shared.config.public_addresses) {
                            let candidate = Candidate { sdp_mid: mid.clone(), sdp_m_line_index: 0, candidate };
                            send_to_master(&to_master, Message::IceCandidateToClient(IceCandidate { id, candidate: Some(candidate) }));
                        }
                    }
                }
                Some(Signal::GatheringComplete) => {}
                Some(Signal::State(state)) => {
                    tracing::debug!(client_id, %state, "peer connection state");
                    if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                        break;
                    }
                }
                Some(Signal::DataChannel(dc)) => {
                    spawn_channel(dc, None, &mut live_channels);
                    idle = false;
                }
                None => break,
            },
            Some(note) = notes.recv() => match note {
                ChannelNote::Announced => had_channel = true,
                ChannelNote::Closed => {
                    live_channels -= 1;
                    if live_channels == 0 && had_channel {
                        idle = true;
                        idle_deadline.as_mut().reset(tokio::time::Instant::now() + PEER_IDLE_GRACE);
                    }
                }
            },
            _ = &mut idle_deadline, if idle => {
                tracing::debug!(client_id, "every channel closed; releasing the peer");
                break;
            }
            _ = &mut setup_deadline, if !had_channel => {
                tracing::debug!(client_id, "no data channel opened in time; releasing the peer");
                break;
            }
            _ = shared.shutdown.cancelled() => break,
        }
    }

    // Offers that arrive from now on start a new peer instead of waiting here.
    commands.close();
    let _ = pc.close().await;
    // Channels report their close before the connection does.
    drop(notes_tx);
    while live_channels > 0 {
        match tokio::time::timeout(std::time::Duration::from_secs(2), notes.recv()).await {
            Ok(Some(ChannelNote::Closed)) => live_channels -= 1,
            Ok(Some(ChannelNote::Announced)) => {}
            _ => break,
        }
    }
    tracing::debug!(client_id, "peer connection released");
}

/// Reports `ConnectionClose` when dropped: at the end of the session, or when
/// its task panics, so that the application never keeps a dead connection.
struct SessionEnd<'a> {
    shared: &'a SlaveShared,
    client_id: u32,
    session: SessionId,
}

impl Drop for SessionEnd<'_> {
    fn drop(&mut self) {
        self.shared.hooks.on_event(SlaveEvent::ConnectionClose { client_id: self.client_id, session: self.session });
    }
}

/// How long a peer with no channel left waits for the browser to open another.
const PEER_IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_and_ufrag_are_read_from_the_offer() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\n";
        assert_eq!(first_mid(sdp), "data");
        assert_eq!(ice_ufrag(sdp), Some("abcd"));
        assert_eq!(first_mid("v=0\r\n"), "0");
        assert_eq!(ice_ufrag("v=0\r\n"), None);
        assert_eq!(ice_session("a=ice-ufrag:abcd\r\na=ice-pwd:secret\r\n").as_deref(), Some("abcd:secret"));
        assert_eq!(ice_session(sdp), None, "no password, no session");
    }
}
