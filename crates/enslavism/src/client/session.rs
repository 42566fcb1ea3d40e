//! A client's connection to one slave: a webrtc-rs peer connection offered
//! through the master, its channels, renegotiation for channels added later.
//!
//! One task per live connection owns the peer connection and takes, in
//! order, what the application asks (new channels, close) and what comes
//! back through the master (answer, candidates, rejection). Every wait is
//! bounded by the client's signalling timeout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::{mpsc, oneshot};
use webrtc::data_channel::DataChannel as RtcDataChannel;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
    SettingEngineBuilder,
};

use super::channel::{self, ChannelOptions, DataChannel, OpenReply};
use super::list::SlaveKey;
use super::{ClientError, Shared};
use crate::proto::{Candidate, IceCandidate, Message, SessionDescription};
use crate::slave::negotiated::{CHANNEL_ATTRIBUTE, SUPPORT_LINE};

/// Above the ids browsers give in-band channels first (as the browser bundle).
const FIRST_NEGOTIATED_STREAM_ID: u16 = 256;

/// How long the first offer waits for our host candidates to be gathered, so
/// that they travel in it rather than trickled one by one.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How often ICE checks a pair while connecting (webrtc-rs: 200 ms), and
/// how many checks a pair gets (webrtc-rs: 7, so still 1.4 s). The `webrtc`
/// driver sends what the handshake produces only at its next timer, and
/// while connecting that timer is this interval: `examples/bots.rs`' setup
/// p50 against a Rust slave went from 605 to 455 ms (20 bots, 2 runs each);
/// in memory two `rtc` peers open after 51 virtual ms instead of 201. 50 ms
/// is RFC 8445's Ta. Once connected the agent ticks at its keepalive pace.
const ICE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// Checks a pair gets before it fails: 28 × 50 ms, webrtc-rs's 1.4 s.
const ICE_CHECKS_PER_PAIR: u16 = 28;

/// Bytes each data channel may have in SCTP, unacknowledged, before its
/// sends wait. Loopback needs ~64 KiB for full speed; Chromium aborted
/// associations more often with 256 KiB and more in flight.
const SCTP_SEND_BUFFER: usize = 128 * 1024;

/// Our ICE servers as webrtc-rs takes them.
fn rtc_ice_servers(servers: &[crate::slave::IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer { urls: s.urls.clone(), username: s.username.clone(), credential: s.credential.clone() })
        .collect()
}

/// The `a=mid:` of an offer's first m-line: what its candidates refer to.
fn first_mid(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .filter(|m| !m.is_empty() && m.len() <= crate::proto::MAX_SDP_MID_LEN)
        .unwrap_or("0")
        .to_owned()
}

/// What a session task takes, from the application and from the master.
pub(crate) enum SessionInput {
    /// Open a channel.
    Create { label: String, options: ChannelOptions, reply: OpenReply },
    /// Close the connection.
    Close,
    /// The slave's answer.
    Answer(String),
    /// A trickled candidate from the slave (`None`: end of candidates).
    Candidate(Option<Candidate>),
    /// The slave (or the master) refused the last offer.
    Rejected,
}

/// The shared part of a [`SlaveConnection`].
pub(crate) struct SlaveInner {
    key: SlaveKey,
    /// The id it was listed under when this handle was made (for errors once unlisted).
    first_id: u32,
    shared: Arc<Shared>,
    /// The live session's input, if any.
    session: Mutex<Option<mpsc::UnboundedSender<SessionInput>>>,
}

/// One slave of the list: opens data channels to it over WebRTC. Clones
/// share the connection.
#[derive(Clone)]
pub struct SlaveConnection {
    inner: Arc<SlaveInner>,
}

impl SlaveConnection {
    pub(crate) fn new(key: SlaveKey, id: u32, shared: Arc<Shared>) -> Self {
        SlaveConnection { inner: Arc::new(SlaveInner { key, first_id: id, shared, session: Mutex::new(None) }) }
    }

    pub(crate) fn from_inner(inner: Arc<SlaveInner>) -> Self {
        SlaveConnection { inner }
    }

    pub(crate) fn downgrade(&self) -> Weak<SlaveInner> {
        Arc::downgrade(&self.inner)
    }

    /// The slave's id on the current master connection (the last one it had
    /// while it is not listed).
    pub fn id(&self) -> u32 {
        self.inner.shared.state().list.id_of(self.inner.key).unwrap_or(self.inner.first_id)
    }

    /// Opens a data channel named `label` (connecting first if needed) and
    /// resolves once it is open. Unreliable channels are negotiated (the
    /// slave creates its end from the offer, so that both ends are really
    /// unreliable); a slave that does not know this (0.9.0) gets an in-band
    /// channel instead. Fails if the slave refuses, or the connection fails
    /// or closes first, or nothing happens within the signalling timeout.
    pub async fn create_data_channel(&self, label: &str, options: ChannelOptions) -> Result<DataChannel, ClientError> {
        let (reply, opened) = oneshot::channel();
        let input = SessionInput::Create { label: label.to_owned(), options, reply };
        self.session()?.send(input).map_err(|_| ClientError::ConnectionClosed { slave: self.id() })?;
        // The session bounds every step; this only guards against a bug there.
        let limit = self.inner.shared.settings.signalling_timeout * 3;
        match tokio::time::timeout(limit, opened).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::ConnectionClosed { slave: self.id() }),
            Err(_) => Err(ClientError::Timeout { what: "the data channel's opening", after: limit }),
        }
    }

    /// Closes the peer connection and its channels; a later channel connects again.
    pub fn close(&self) {
        if let Some(session) = self.lock_session().take() {
            let _ = session.send(SessionInput::Close);
        }
    }

    fn lock_session(&self) -> std::sync::MutexGuard<'_, Option<mpsc::UnboundedSender<SessionInput>>> {
        self.inner.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live session, started if there is none.
    fn session(&self) -> Result<mpsc::UnboundedSender<SessionInput>, ClientError> {
        let shared = &self.inner.shared;
        if shared.shutdown.is_cancelled() {
            return Err(ClientError::Closed);
        }
        let mut session = self.lock_session();
        if let Some(live) = session.as_ref().filter(|s| !s.is_closed()) {
            return Ok(live.clone());
        }
        let key = self.inner.key;
        let mut state = shared.state();
        let id = state.list.id_of(key).ok_or(ClientError::UnknownSlave(self.inner.first_id))?;
        let (input, inputs) = mpsc::unbounded_channel();
        state.sessions.insert(key, input.clone());
        drop(state);
        *session = Some(input.clone());
        shared.spawn_guarded(run(shared.clone(), key, id, inputs));
        Ok(input)
    }
}

impl std::fmt::Debug for SlaveConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlaveConnection").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// What webrtc-rs reports, forwarded off its driver task.
enum Signal {
    Candidate(RTCIceCandidateInit),
    GatheringComplete,
    State(RTCPeerConnectionState),
}

struct Forwarder(mpsc::UnboundedSender<Signal>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forwarder {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.send(Signal::Candidate(init));
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
}

async fn build_peer(shared: &Shared, signals: mpsc::UnboundedSender<Signal>) -> Result<Box<dyn PeerConnection>, ClientError> {
    let settings = &shared.settings;
    let engine = SettingEngineBuilder::new()
        // The default mode opens a multicast socket per peer and fails without a multicast route.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        // The slave's defaults: a vanished slave's connection fails in 15 s, not webrtc-rs's ~35.
        .with_ice_timeouts(
            Some(crate::slave::DEFAULT_ICE_DISCONNECTED_TIMEOUT),
            Some(crate::slave::DEFAULT_ICE_FAILED_TIMEOUT),
            None,
        )
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECKS_PER_PAIR))
        .build();
    let ice_servers = rtc_ice_servers(&settings.ice_servers);
    let addrs: Vec<SocketAddr> = settings.ice_addresses.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice_servers).build())
        .with_setting_engine(engine)
        .with_handler(Arc::new(Forwarder(signals)))
        // Bounded, so that a bot sending faster than the slave reads waits
        // instead of queueing without limit (as on the slave).
        .with_data_channel_send_buffer_limit(SCTP_SEND_BUFFER)
        .with_udp_addrs(addrs)
        .build()
        .await?;
    Ok(Box::new(pc))
}

/// A channel waiting for the answer to the offer that carries it.
struct Unconfirmed {
    /// Its negotiated stream id; `None` for an in-band channel.
    stream_id: Option<u16>,
    dc: Arc<dyn RtcDataChannel>,
    label: String,
    options: ChannelOptions,
    reply: OpenReply,
    /// Listed in the offer in flight (a renegotiation may carry only some).
    offered: bool,
}

/// The negotiated-channel attribute our offers carry for a channel.
fn channel_attribute(stream_id: u16, label: &str, options: &ChannelOptions) -> String {
    let spec = serde_json::json!({
        "id": stream_id,
        "label": label,
        "ordered": options.ordered,
        "maxRetransmits": options.max_retransmits,
        "maxPacketLifeTime": options.max_packet_life_time,
        "protocol": options.protocol,
    });
    format!("{CHANNEL_ATTRIBUTE}{spec}\r\n")
}

/// One connection's state, owned by its task.
struct Session {
    shared: Arc<Shared>,
    key: SlaveKey,
    /// The slave's id when the session started (for errors).
    slave: u32,
    pc: Box<dyn PeerConnection>,
    signals: mpsc::UnboundedReceiver<Signal>,
    /// The offer's first `a=mid:`, which our candidates refer to.
    mid: String,
    /// Negotiated channels of this session, listed in every offer.
    specs: Vec<String>,
    next_stream_id: u16,
    /// Learnt from the first answer: the slave creates listed channels.
    negotiated_support: Option<bool>,
    unconfirmed: Vec<Unconfirmed>,
    /// An answer is awaited until this instant.
    answer_due: Option<tokio::time::Instant>,
    remote_set: bool,
    /// Another offer is needed once the answer in flight is in.
    again: bool,
    queued_candidates: Vec<Candidate>,
    /// Channel tasks running, and where they say they ended.
    live_channels: usize,
    channel_ended: mpsc::UnboundedSender<()>,
}

async fn run(shared: Arc<Shared>, key: SlaveKey, slave: u32, mut inputs: mpsc::UnboundedReceiver<SessionInput>) {
    let (signal_tx, signals) = mpsc::unbounded_channel();
    let pc = match Box::pin(build_peer(&shared, signal_tx)).await {
        Ok(pc) => pc,
        Err(e) => {
            tracing::warn!(slave, "cannot create a peer connection: {e}");
            // Every channel asked for so far fails with the reason.
            let reason = e.to_string();
            inputs.close();
            while let Ok(input) = inputs.try_recv() {
                if let SessionInput::Create { reply, .. } = input {
                    let _ = reply.send(Err(ClientError::WebRtc(webrtc::error::Error::Other(reason.clone()))));
                }
            }
            forget(&shared, key);
            return;
        }
    };
    let (channel_ended, mut channels_ended) = mpsc::unbounded_channel();
    let mut session = Session {
        shared: shared.clone(),
        key,
        slave,
        pc,
        signals,
        mid: "0".into(),
        specs: Vec::new(),
        next_stream_id: FIRST_NEGOTIATED_STREAM_ID,
        negotiated_support: None,
        unconfirmed: Vec::new(),
        answer_due: None,
        remote_set: false,
        again: false,
        queued_candidates: Vec::new(),
        live_channels: 0,
        channel_ended,
    };
    let shutdown = shared.shutdown.clone();
    loop {
        let answer_due = session.answer_due;
        let keep_going = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => session.take(input).await,
                None => false,
            },
            signal = session.signals.recv() => match signal {
                Some(signal) => session.signal(signal),
                None => false,
            },
            _ = async { tokio::time::sleep_until(answer_due.expect("armed")).await }, if answer_due.is_some() => {
                let after = shared.settings.signalling_timeout;
                tracing::debug!(slave, "no answer within {after:?}");
                session.answer_due = None;
                session.fail_offered(|| ClientError::Timeout { what: "the slave's answer", after });
                session.remote_set
            }
            Some(()) = channels_ended.recv() => {
                // As on the slave (which releases a peer whose channels are all
                // closed): a connection with no channel left and none coming is
                // of no use; the next channel connects afresh. This is also how
                // a slave that closed the connection is noticed at once.
                session.live_channels -= 1;
                session.live_channels > 0 || !session.unconfirmed.is_empty()
            }
            _ = shutdown.cancelled() => false,
        };
        if !keep_going {
            break;
        }
    }
    inputs.close();
    forget(&shared, key);
    session.fail_pending(|| ClientError::ConnectionClosed { slave });
    // Pending Create inputs never reached the loop: they fail too.
    while let Ok(input) = inputs.try_recv() {
        if let SessionInput::Create { reply, .. } = input {
            let _ = reply.send(Err(ClientError::ConnectionClosed { slave }));
        }
    }
    let _ = session.pc.close().await;
    tracing::debug!(slave, "connection to the slave closed");
}

/// Removes a session that ended (its input closed) from the routing table,
/// unless a newer session of the same slave took its place there.
fn forget(shared: &Shared, key: SlaveKey) {
    let mut state = shared.state();
    if state.sessions.get(&key).is_some_and(mpsc::UnboundedSender::is_closed) {
        state.sessions.remove(&key);
    }
}

impl Session {
    /// Handles one input; false ends the session.
    async fn take(&mut self, input: SessionInput) -> bool {
        match input {
            SessionInput::Create { label, options, reply } => self.create(label, options, reply).await,
            SessionInput::Close => false,
            SessionInput::Answer(sdp) => self.answer(sdp).await,
            SessionInput::Candidate(Some(candidate)) if !candidate.candidate.is_empty() => {
                if self.remote_set {
                    self.add_candidate(candidate).await;
                } else {
                    self.queued_candidates.push(candidate);
                }
                true
            }
            SessionInput::Candidate(_) => true,
            SessionInput::Rejected => self.rejected(),
        }
    }

    async fn create(&mut self, label: String, options: ChannelOptions, reply: OpenReply) -> bool {
        let negotiate = options.is_unreliable() && self.negotiated_support != Some(false);
        let stream_id = negotiate.then(|| {
            let id = self.next_stream_id;
            self.next_stream_id = self.next_stream_id.saturating_add(1);
            id
        });
        let dc = match self.pc.create_data_channel(&label, Some(options.to_init(stream_id))).await {
            Ok(dc) => dc,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return true;
            }
        };
        if let Some(id) = stream_id {
            self.specs.push(channel_attribute(id, &label, &options));
        }
        // An in-band channel on an established connection opens by itself.
        if stream_id.is_none() && self.remote_set {
            self.spawn_channel(dc, label, options, reply);
            return true;
        }
        self.unconfirmed.push(Unconfirmed { stream_id, dc, label, options, reply, offered: false });
        if self.answer_due.is_some() {
            self.again = true;
            return true;
        }
        self.offer().await
    }

    fn spawn_channel(&mut self, dc: Arc<dyn RtcDataChannel>, label: String, options: ChannelOptions, reply: OpenReply) {
        let within = self.shared.settings.signalling_timeout;
        self.live_channels += 1;
        let ended = self.channel_ended.clone();
        self.shared.spawn_guarded(channel::run(dc, label, options, reply, within, self.slave, ended));
    }

    /// Sends an offer listing every negotiated channel; false ends the session.
    async fn offer(&mut self) -> bool {
        match self.try_offer().await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(slave = self.slave, "offer not sent: {e}");
                let reason = e.to_string();
                let mut first = Some(e);
                // The first waiting channel gets the error itself, the others its text.
                self.fail_pending(|| {
                    first.take().unwrap_or_else(|| ClientError::WebRtc(webrtc::error::Error::Other(reason.clone())))
                });
                self.remote_set
            }
        }
    }

    async fn try_offer(&mut self) -> Result<(), ClientError> {
        let first = !self.remote_set;
        let offer = self.pc.create_offer(None).await?;
        let mut sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        if first {
            self.mid = first_mid(&sdp);
            let deadline = tokio::time::sleep(GATHER_WAIT);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    signal = self.signals.recv() => match signal {
                        Some(Signal::GatheringComplete) | None => break,
                        // In the description read below.
                        Some(_) => {}
                    },
                    _ = &mut deadline => break,
                }
            }
            if let Some(description) = self.pc.local_description().await {
                sdp = description.sdp;
            }
        }
        if !sdp.ends_with('\n') {
            sdp.push_str("\r\n");
        }
        for spec in &self.specs {
            sdp.push_str(spec);
        }
        self.shared.send_to_slave(self.key, |id| Message::OfferToSlave(SessionDescription { id, sdp }))?;
        for waiting in &mut self.unconfirmed {
            waiting.offered = true;
        }
        self.answer_due = Some(tokio::time::Instant::now() + self.shared.settings.signalling_timeout);
        Ok(())
    }

    async fn answer(&mut self, sdp: String) -> bool {
        if self.answer_due.take().is_none() {
            tracing::debug!(slave = self.slave, "answer with no offer in flight dropped");
            return true;
        }
        let supported = sdp.contains(SUPPORT_LINE);
        let applied = match RTCSessionDescription::answer(sdp) {
            Ok(description) => self.pc.set_remote_description(description).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            tracing::debug!(slave = self.slave, "unusable answer: {e}");
            let reason = e.to_string();
            self.fail_offered(|| ClientError::WebRtc(webrtc::error::Error::Other(reason.clone())));
            return self.remote_set;
        }
        self.remote_set = true;
        self.negotiated_support = Some(supported);
        let (answered, waiting): (Vec<_>, Vec<_>) =
            // In-band channels open by themselves once connected; negotiated
            // ones created after the offer left need the next one.
            std::mem::take(&mut self.unconfirmed).into_iter().partition(|u| u.offered || !supported || u.stream_id.is_none());
        self.unconfirmed = waiting;
        for channel in answered {
            if channel.stream_id.is_some() && !supported {
                // A slave that does not know negotiated channels (0.9.0): in-band instead.
                let _ = channel.dc.close().await;
                let in_band = channel.options.to_init(None);
                match self.pc.create_data_channel(&channel.label, Some(in_band)).await {
                    Ok(dc) => self.spawn_channel(dc, channel.label, channel.options, channel.reply),
                    Err(e) => {
                        let _ = channel.reply.send(Err(e.into()));
                    }
                }
            } else {
                self.spawn_channel(channel.dc, channel.label, channel.options, channel.reply);
            }
        }
        if !supported {
            self.specs.clear();
        }
        for candidate in std::mem::take(&mut self.queued_candidates) {
            self.add_candidate(candidate).await;
        }
        // A 0.9.0 slave makes a new connection for every offer: never send it a second one.
        let again = std::mem::take(&mut self.again) || !self.unconfirmed.is_empty();
        if again && supported {
            return self.offer().await;
        }
        true
    }

    async fn add_candidate(&self, c: Candidate) {
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: Some(c.sdp_mid),
            sdp_mline_index: Some(c.sdp_m_line_index),
            ..Default::default()
        };
        if let Err(e) = self.pc.add_ice_candidate(init).await {
            tracing::debug!(slave = self.slave, "remote candidate refused: {e}");
        }
    }

    /// The offer in flight was refused. On an established connection only the
    /// channels it carried fail; otherwise the connection ends.
    fn rejected(&mut self) -> bool {
        let slave = self.slave;
        self.answer_due = None;
        if !self.remote_set {
            self.fail_pending(|| ClientError::Rejected { slave });
            return false;
        }
        let (refused, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unconfirmed).into_iter().partition(|u| u.offered);
        self.unconfirmed = waiting;
        for channel in refused {
            if let Some(id) = channel.stream_id {
                let attribute = format!("{CHANNEL_ATTRIBUTE}{{\"id\":{id},");
                self.specs.retain(|spec| !spec.starts_with(&attribute));
            }
            let _ = channel.reply.send(Err(ClientError::Rejected { slave }));
            let dc = channel.dc;
            self.shared.spawn_guarded(async move {
                let _ = dc.close().await;
            });
        }
        true
    }

    fn signal(&mut self, signal: Signal) -> bool {
        match signal {
            Signal::Candidate(init) => {
                // The end-of-candidates marker is not sent: 0.9.0 slaves cannot take it.
                if !init.candidate.is_empty() {
                    let candidate = Candidate { sdp_mid: self.mid.clone(), sdp_m_line_index: 0, candidate: init.candidate };
                    let _ = self.shared.send_to_slave(self.key, |id| {
                        Message::IceCandidateToSlave(IceCandidate { id, candidate: Some(candidate) })
                    });
                }
                true
            }
            Signal::GatheringComplete => true,
            Signal::State(state) => {
                tracing::debug!(slave = self.slave, %state, "peer connection state");
                !matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)
            }
        }
    }

    /// Fails the channels the offer in flight carried.
    fn fail_offered(&mut self, mut error: impl FnMut() -> ClientError) {
        let (offered, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unconfirmed).into_iter().partition(|u| u.offered);
        self.unconfirmed = waiting;
        for channel in offered {
            let _ = channel.reply.send(Err(error()));
        }
    }

    /// Fails every channel waiting for an answer.
    fn fail_pending(&mut self, mut error: impl FnMut() -> ClientError) {
        for channel in self.unconfirmed.drain(..) {
            let _ = channel.reply.send(Err(error()));
        }
    }
}
