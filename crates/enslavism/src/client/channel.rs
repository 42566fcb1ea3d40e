//! A client's data channel: its options, and the task that takes webrtc-rs's
//! events for it (until the channel opens, then its messages).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use webrtc::data_channel::{DataChannel as RtcDataChannel, DataChannelEvent, RTCDataChannelInit, RTCDataChannelState};

use super::ClientError;
use crate::slave::SEND_QUEUE_LIMIT;

/// How a data channel delivers: reliable and ordered by default, as in the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOptions {
    /// Messages arrive in the order they were sent (default true).
    pub ordered: bool,
    /// Give up on a message after this many retransmissions.
    pub max_retransmits: Option<u16>,
    /// Give up on a message after this many milliseconds.
    pub max_packet_life_time: Option<u16>,
    /// The subprotocol name ("" for none).
    pub protocol: String,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions { ordered: true, max_retransmits: None, max_packet_life_time: None, protocol: String::new() }
    }
}

impl ChannelOptions {
    /// Reliable and ordered (TCP-like): the default.
    pub fn reliable() -> Self {
        ChannelOptions::default()
    }

    /// Unordered, never retransmitted (UDP-like): what game state wants.
    pub fn unreliable() -> Self {
        ChannelOptions { ordered: false, max_retransmits: Some(0), ..ChannelOptions::default() }
    }

    /// Sets whether messages arrive in order.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Sets the retransmission limit.
    pub fn max_retransmits(mut self, limit: u16) -> Self {
        self.max_retransmits = Some(limit);
        self
    }

    /// Sets the lifetime limit, in milliseconds.
    pub fn max_packet_life_time(mut self, ms: u16) -> Self {
        self.max_packet_life_time = Some(ms);
        self
    }

    /// Sets the subprotocol name.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = protocol.into();
        self
    }

    /// True when a message may be given up on: such channels are negotiated
    /// (the slave creates them from the offer), as the browser bundle does.
    pub(crate) fn is_unreliable(&self) -> bool {
        self.max_retransmits.is_some() || self.max_packet_life_time.is_some()
    }

    pub(crate) fn to_init(&self, negotiated: Option<u16>) -> RTCDataChannelInit {
        RTCDataChannelInit {
            ordered: self.ordered,
            max_packet_life_time: self.max_packet_life_time,
            max_retransmits: self.max_retransmits,
            protocol: self.protocol.clone(),
            negotiated,
        }
    }
}

/// A message received on a data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMessage {
    /// The payload.
    pub data: Bytes,
    /// True for a text message, false for binary.
    pub is_text: bool,
}

/// Messages a channel holds for a reader that is behind; past this, webrtc-rs
/// is not read from until the reader catches up (which holds back the
/// connection's other channels too).
const RECEIVE_QUEUE: usize = 4096;

/// The sending half of a [`DataChannel`]; cheap to clone.
#[derive(Clone)]
pub struct ChannelSender {
    dc: Arc<dyn RtcDataChannel>,
}

impl ChannelSender {
    /// Sends a binary message; waits while the slave has 128 KiB unacknowledged.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.dc.send(BytesMut::from(data.into())).await.map_err(|_| ClientError::ChannelClosed)
    }

    /// Sends a text message; waits as [`ChannelSender::send`] does.
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        self.dc.send_text(text).await.map_err(|_| ClientError::ChannelClosed)
    }

    /// Bytes sent and not yet acknowledged by the slave.
    pub async fn buffered_amount(&self) -> usize {
        self.dc.outstanding_bytes().await.unwrap_or(0)
    }

    /// Closes the channel (both halves).
    pub async fn close(&self) {
        let _ = self.dc.close().await;
    }

    /// This sender as one that queues instead of waiting (see
    /// [`QueuedSender`]); `on_low` is called, from the queue's task, each
    /// time the queue falls to its low threshold. Needs a tokio runtime.
    pub fn queued(self, on_low: impl Fn() + Send + Sync + 'static) -> QueuedSender {
        QueuedSender::start(self, Box::new(on_low))
    }
}

/// What a [`QueuedSender`] hands its task.
enum Outgoing {
    Message { data: Bytes, is_text: bool },
    Close,
}

/// Counters a [`QueuedSender`] and its task share, without a lock.
struct QueueCounters {
    /// Bytes queued and not yet taken by SCTP.
    buffered: AtomicUsize,
    /// `on_low` is called when `buffered` falls to this (never while it is `usize::MAX`).
    low_threshold: AtomicUsize,
    /// Set once the queue went over [`SEND_QUEUE_LIMIT`].
    overflowed: AtomicBool,
}

/// A channel's sending half for callers that cannot wait (a game loop, the
/// Node binding): [`QueuedSender::send`] queues and returns at once, and a
/// task hands the queue to SCTP in order, waiting while the slave has
/// 128 KiB unacknowledged. Past [`SEND_QUEUE_LIMIT`] queued bytes the message
/// and the queue are dropped and the channel closes, as a browser's does.
/// Clones share the queue; it ends when the channel closes or every clone is
/// dropped.
#[derive(Clone)]
pub struct QueuedSender {
    queue: mpsc::UnboundedSender<Outgoing>,
    counters: Arc<QueueCounters>,
}

impl QueuedSender {
    fn start(sender: ChannelSender, on_low: Box<dyn Fn() + Send + Sync>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(QueueCounters {
            buffered: AtomicUsize::new(0),
            low_threshold: AtomicUsize::new(usize::MAX),
            overflowed: AtomicBool::new(false),
        });
        tokio::spawn(drain_queue(sender, rx, counters.clone(), on_low));
        QueuedSender { queue, counters }
    }

    /// Queues a message (`is_text`: a text message, which must be UTF-8).
    /// Fails only once the channel is closed; a message over the queue's
    /// limit closes the channel instead.
    pub fn send(&self, data: Bytes, is_text: bool) -> Result<(), ClientError> {
        let counters = &self.counters;
        if counters.overflowed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let len = data.len();
        if counters.buffered.load(Ordering::Relaxed) + len > SEND_QUEUE_LIMIT {
            counters.overflowed.store(true, Ordering::Relaxed);
            let _ = self.queue.send(Outgoing::Close);
            return Ok(());
        }
        counters.buffered.fetch_add(len, Ordering::Relaxed);
        self.queue.send(Outgoing::Message { data, is_text }).map_err(|_| {
            counters.buffered.fetch_sub(len, Ordering::Relaxed);
            ClientError::ChannelClosed
        })
    }

    /// Bytes queued and not yet taken by SCTP.
    pub fn buffered_amount(&self) -> usize {
        self.counters.buffered.load(Ordering::Relaxed)
    }

    /// Calls the `on_low` given to [`ChannelSender::queued`] whenever the
    /// buffered amount falls to `threshold` (not before a threshold is set).
    pub fn set_low_threshold(&self, threshold: usize) {
        self.counters.low_threshold.store(threshold, Ordering::Relaxed);
    }

    /// Closes the channel once what was queued before is handed to SCTP.
    pub fn close(&self) {
        let _ = self.queue.send(Outgoing::Close);
    }
}

impl std::fmt::Debug for QueuedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedSender").field("buffered", &self.buffered_amount()).finish_non_exhaustive()
    }
}

/// Hands a [`QueuedSender`]'s messages to SCTP, in order, until the channel
/// closes or the queue is closed (overflow, `close`, every sender dropped).
async fn drain_queue(
    sender: ChannelSender,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    counters: Arc<QueueCounters>,
    on_low: Box<dyn Fn() + Send + Sync>,
) {
    while let Some(outgoing) = rx.recv().await {
        let Outgoing::Message { data, is_text } = outgoing else { break };
        if counters.overflowed.load(Ordering::Relaxed) {
            break;
        }
        let len = data.len();
        let sent = match is_text.then(|| std::str::from_utf8(&data).ok()).flatten() {
            Some(text) => sender.send_text(text).await,
            None => sender.send(data).await,
        };
        let before = counters.buffered.fetch_sub(len, Ordering::Relaxed);
        let threshold = counters.low_threshold.load(Ordering::Relaxed);
        if threshold != usize::MAX && before > threshold && before - len <= threshold {
            on_low();
        }
        if sent.is_err() {
            break;
        }
    }
    // What is still queued is dropped (after an overflow, up to the limit at once).
    rx.close();
    while rx.try_recv().is_ok() {}
    counters.buffered.store(0, Ordering::Relaxed);
    sender.close().await;
}

/// The receiving half of a [`DataChannel`].
pub struct ChannelReceiver {
    incoming: mpsc::Receiver<ChannelMessage>,
}

impl ChannelReceiver {
    /// The next message; `None` once the channel is closed.
    pub async fn recv(&mut self) -> Option<ChannelMessage> {
        self.incoming.recv().await
    }
}

/// An open data channel to a slave.
pub struct DataChannel {
    label: String,
    options: ChannelOptions,
    sender: ChannelSender,
    receiver: ChannelReceiver,
}

impl DataChannel {
    /// The channel's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Its delivery options, as created.
    pub fn options(&self) -> &ChannelOptions {
        &self.options
    }

    /// Sends a binary message (see [`ChannelSender::send`]).
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.sender.send(data).await
    }

    /// Sends a text message.
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        self.sender.send_text(text).await
    }

    /// The next message; `None` once the channel is closed.
    pub async fn recv(&mut self) -> Option<ChannelMessage> {
        self.receiver.recv().await
    }

    /// Bytes sent and not yet acknowledged by the slave.
    pub async fn buffered_amount(&self) -> usize {
        self.sender.buffered_amount().await
    }

    /// Closes the channel.
    pub async fn close(&self) {
        self.sender.close().await
    }

    /// A sender (cloneable) and the receiver, to send and read from different tasks.
    pub fn split(self) -> (ChannelSender, ChannelReceiver) {
        (self.sender, self.receiver)
    }
}

impl std::fmt::Debug for DataChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataChannel").field("label", &self.label).field("options", &self.options).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChannelSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSender").field("id", &self.dc.id()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChannelReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelReceiver").field("queued", &self.incoming.len()).finish()
    }
}

/// What a channel's opening resolves with.
pub(crate) type OpenReply = oneshot::Sender<Result<DataChannel, ClientError>>;

/// Takes a channel's events from its creation: replies once it is open (or
/// failed to open within `open_within`), then forwards its messages until it
/// closes, and then sends on `ended`. `slave` names the slave in errors.
pub(crate) async fn run(
    dc: Arc<dyn RtcDataChannel>,
    label: String,
    options: ChannelOptions,
    reply: OpenReply,
    open_within: Duration,
    slave: u32,
    ended: mpsc::UnboundedSender<()>,
) {
    // Tells the session however this task ends.
    struct Ended(mpsc::UnboundedSender<()>);
    impl Drop for Ended {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let _ended = Ended(ended);
    let (tx, incoming) = mpsc::channel(RECEIVE_QUEUE);
    let handle = DataChannel { label, options, sender: ChannelSender { dc: dc.clone() }, receiver: ChannelReceiver { incoming } };
    let mut pending = Some((reply, handle));
    let open = |pending: &mut Option<(OpenReply, DataChannel)>| {
        if let Some((reply, handle)) = pending.take() {
            let _ = reply.send(Ok(handle));
        }
    };
    // A negotiated channel on an established association is open at once, with no event.
    if matches!(dc.ready_state().await, Ok(RTCDataChannelState::Open)) {
        open(&mut pending);
    }
    let deadline = tokio::time::sleep(open_within);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = dc.poll() => match event {
                Some(DataChannelEvent::OnOpen) => open(&mut pending),
                Some(DataChannelEvent::OnMessage(msg)) => {
                    open(&mut pending);
                    // A reader that dropped its half gets nothing; the channel is still drained.
                    let _ = tx.send(ChannelMessage { data: msg.data.freeze(), is_text: msg.is_string }).await;
                }
                Some(DataChannelEvent::OnClose) | None => break,
                Some(_) => {}
            },
            _ = &mut deadline, if pending.is_some() => {
                if let Some((reply, _)) = pending.take() {
                    let _ = reply.send(Err(ClientError::Timeout { what: "the data channel's opening", after: open_within }));
                }
                let _ = dc.close().await;
                return;
            }
        }
    }
    if let Some((reply, _)) = pending.take() {
        let _ = reply.send(Err(ClientError::ConnectionClosed { slave }));
    }
}
