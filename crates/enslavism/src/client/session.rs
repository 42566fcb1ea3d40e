//! A client's connection to one slave: a str0m peer connection (see
//! `peer.rs`) offered through the master, its channels, renegotiation for
//! negotiated channels added later.
//!
//! One task per live connection owns the peer and takes, in order, what
//! the application asks (new channels, sends, close), what comes back
//! through the master (answer, candidates, rejection) and the peer's
//! datagrams and timers. Every wait is bounded by the client's signalling
//! timeout.

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use tokio::sync::{mpsc, oneshot};

use super::channel::{ChannelOptions, DataChannel, OpenReply};
use super::list::SlaveKey;
use super::peer::{Peer, PeerTiming};
use super::{ClientError, Shared};
use crate::proto::{Candidate, IceCandidate, Message, SessionDescription};
use crate::slave::negotiated::{CHANNEL_ATTRIBUTE, SUPPORT_LINE};

/// Above the ids browsers give in-band channels first (as the browser bundle).
const FIRST_NEGOTIATED_STREAM_ID: u16 = 256;

/// Channel commands taken per wake, so that datagrams and timers are not
/// starved by a sender that never pauses.
const COMMAND_BATCH: usize = 256;

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

/// A channel waiting for the answer to the offer that carries it.
struct Unconfirmed {
    /// Its negotiated stream id; `None` for an in-band channel.
    stream_id: Option<u16>,
    /// Its str0m id, once str0m knows it (the first offer's channels).
    rtc_id: Option<ChannelId>,
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
    peer: Peer,
    /// The first offer as str0m made it: renegotiations send it again
    /// with the negotiated channels listed (str0m needs no new offer for
    /// channels on an established association; the slave needs the list).
    offer_sdp: String,
    /// The first offer, until its answer is in.
    pending_offer: Option<SdpPendingOffer>,
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
}

async fn run(shared: Arc<Shared>, key: SlaveKey, slave: u32, mut inputs: mpsc::UnboundedReceiver<SessionInput>) {
    let (command_tx, mut commands) = mpsc::unbounded_channel();
    let settings = &shared.settings;
    let stun_servers =
        crate::transport::reflexive::resolve(&settings.ice_servers, settings.signalling_timeout, "the client").await;
    let timing = PeerTiming {
        // The slave's defaults: a vanished slave's connection fails in 15 s.
        silence: crate::slave::DEFAULT_ICE_DISCONNECTED_TIMEOUT + crate::slave::DEFAULT_ICE_FAILED_TIMEOUT,
        open_within: settings.signalling_timeout,
    };
    let peer = match Peer::new(&shared.crypto, &shared.announced, stun_servers, timing, command_tx, slave) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(slave, "cannot open a socket for the connection: {e}");
            // Every channel asked for so far fails with the reason.
            let reason = e.to_string();
            inputs.close();
            while let Ok(input) = inputs.try_recv() {
                if let SessionInput::Create { reply, .. } = input {
                    let _ = reply.send(Err(ClientError::Peer(format!("cannot open a socket: {reason}"))));
                }
            }
            forget(&shared, key);
            return;
        }
    };
    let mut session = Session {
        shared: shared.clone(),
        key,
        slave,
        peer,
        offer_sdp: String::new(),
        pending_offer: None,
        mid: "0".into(),
        specs: Vec::new(),
        next_stream_id: FIRST_NEGOTIATED_STREAM_ID,
        negotiated_support: None,
        unconfirmed: Vec::new(),
        answer_due: None,
        remote_set: false,
        again: false,
        queued_candidates: Vec::new(),
    };
    let shutdown = shared.shutdown.clone();
    loop {
        let news = session.peer.turn().await;
        for candidate in news.candidates {
            session.trickle(candidate.to_sdp_string());
        }
        if let Some(why) = session.peer.ended() {
            tracing::debug!(slave, "connection ended: {why}");
            break;
        }
        // As on the slave (which releases a peer whose channels are all
        // closed): a connection with no channel left and none coming is of
        // no use; the next channel connects afresh. This is also how a slave
        // that closed its channels is noticed at once.
        if news.channel_closed && session.peer.channel_count() == 0 && session.unconfirmed.is_empty() {
            break;
        }
        let wake = tokio::time::Instant::from_std(session.peer.wake_at());
        let answer_due = session.answer_due;
        let keep_going = tokio::select! {
            biased;
            _ = shutdown.cancelled() => false,
            readable = session.peer.readable() => {
                if readable.is_ok() {
                    session.peer.read();
                }
                true
            }
            command = commands.recv() => {
                // The peer keeps a sender: this never ends while it lives.
                if let Some(command) = command {
                    session.peer.command(command);
                    for _ in 1..COMMAND_BATCH {
                        match commands.try_recv() {
                            Ok(command) => session.peer.command(command),
                            Err(_) => break,
                        }
                    }
                }
                true
            }
            input = inputs.recv() => match input {
                Some(input) => session.take(input),
                None => false,
            },
            _ = tokio::time::sleep_until(wake) => true,
            _ = async { tokio::time::sleep_until(answer_due.expect("armed")).await }, if answer_due.is_some() => {
                let after = shared.settings.signalling_timeout;
                tracing::debug!(slave, "no answer within {after:?}");
                session.answer_due = None;
                session.fail_offered(|| ClientError::Timeout { what: "the slave's answer", after });
                session.remote_set
            }
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
    session.peer.close();
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
    fn take(&mut self, input: SessionInput) -> bool {
        match input {
            SessionInput::Create { label, options, reply } => self.create(label, options, reply),
            SessionInput::Close => false,
            SessionInput::Answer(sdp) => self.answer(sdp),
            SessionInput::Candidate(Some(candidate)) if !candidate.candidate.is_empty() => {
                if self.remote_set {
                    self.peer.add_remote_candidate(&candidate.candidate);
                } else {
                    self.queued_candidates.push(candidate);
                }
                true
            }
            SessionInput::Candidate(_) => true,
            SessionInput::Rejected => self.rejected(),
        }
    }

    fn create(&mut self, label: String, options: ChannelOptions, reply: OpenReply) -> bool {
        let negotiate = options.is_unreliable() && self.negotiated_support != Some(false);
        let stream_id = negotiate.then(|| {
            let id = self.next_stream_id;
            self.next_stream_id = self.next_stream_id.saturating_add(1);
            id
        });
        if let Some(id) = stream_id {
            self.specs.push(channel_attribute(id, &label, &options));
        }
        // An in-band channel on an established connection opens by itself.
        if stream_id.is_none() && self.remote_set {
            let rtc_id = self.peer.add_channel(options.to_config(&label, None));
            self.expect(rtc_id, label, options, reply);
            return true;
        }
        self.unconfirmed.push(Unconfirmed { stream_id, rtc_id: None, label, options, reply, offered: false });
        if self.answer_due.is_some() {
            self.again = true;
            return true;
        }
        self.offer()
    }

    fn expect(&mut self, rtc_id: ChannelId, label: String, options: ChannelOptions, reply: OpenReply) {
        let open_by = Instant::now() + self.shared.settings.signalling_timeout;
        self.peer.expect(rtc_id, label, options, reply, open_by);
    }

    /// Sends an offer listing every negotiated channel; false ends the session.
    fn offer(&mut self) -> bool {
        match self.try_offer() {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(slave = self.slave, "offer not sent: {e}");
                let reason = e.to_string();
                let mut first = Some(e);
                // The first waiting channel gets the error itself, the others its text.
                self.fail_pending(|| first.take().unwrap_or_else(|| ClientError::Peer(reason.clone())));
                self.remote_set
            }
        }
    }

    fn try_offer(&mut self) -> Result<(), ClientError> {
        if !self.remote_set && self.pending_offer.is_none() {
            let configs = self.unconfirmed.iter().map(|u| u.options.to_config(&u.label, u.stream_id)).collect();
            let (sdp, pending, ids) = self.peer.offer(configs)?;
            for (waiting, id) in self.unconfirmed.iter_mut().zip(ids) {
                waiting.rtc_id = Some(id);
            }
            self.mid = first_mid(&sdp);
            self.offer_sdp = sdp;
            self.pending_offer = Some(pending);
        }
        let mut sdp = self.offer_sdp.clone();
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

    fn answer(&mut self, sdp: String) -> bool {
        if self.answer_due.take().is_none() {
            tracing::debug!(slave = self.slave, "answer with no offer in flight dropped");
            return true;
        }
        let supported = sdp.contains(SUPPORT_LINE);
        // A renegotiation's answer only confirms the channels it lists.
        if let Some(pending) = self.pending_offer.take() {
            if let Err(e) = self.peer.accept_answer(pending, &sdp) {
                tracing::debug!(slave = self.slave, "unusable answer: {e}");
                let reason = e.to_string();
                self.fail_offered(|| ClientError::Peer(format!("unusable answer: {reason}")));
                return false;
            }
        }
        self.remote_set = true;
        self.negotiated_support = Some(supported);
        let (answered, waiting): (Vec<_>, Vec<_>) =
            // In-band channels open by themselves once connected; negotiated
            // ones created after the offer left need the next one.
            std::mem::take(&mut self.unconfirmed).into_iter().partition(|u| u.offered || !supported || u.stream_id.is_none());
        self.unconfirmed = waiting;
        for channel in answered {
            let rtc_id = match (channel.rtc_id, channel.stream_id) {
                // A slave that does not know negotiated channels (0.9.0): in-band instead.
                (Some(negotiated), Some(_)) if !supported => {
                    self.peer.drop_channel(negotiated);
                    self.peer.add_channel(channel.options.to_config(&channel.label, None))
                }
                (Some(id), _) => id,
                (None, stream_id) => {
                    let stream_id = stream_id.filter(|_| supported);
                    self.peer.add_channel(channel.options.to_config(&channel.label, stream_id))
                }
            };
            self.expect(rtc_id, channel.label, channel.options, channel.reply);
        }
        if !supported {
            self.specs.clear();
        }
        for candidate in std::mem::take(&mut self.queued_candidates) {
            self.peer.add_remote_candidate(&candidate.candidate);
        }
        // A 0.9.0 slave makes a new connection for every offer: never send it a second one.
        let again = std::mem::take(&mut self.again) || !self.unconfirmed.is_empty();
        if again && supported {
            return self.offer();
        }
        true
    }

    /// Trickles one of our candidates to the slave.
    fn trickle(&self, candidate: String) {
        let candidate = Candidate { sdp_mid: self.mid.clone(), sdp_m_line_index: 0, candidate };
        let _ = self
            .shared
            .send_to_slave(self.key, |id| Message::IceCandidateToSlave(IceCandidate { id, candidate: Some(candidate) }));
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
        }
        true
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
