//! A client's data channel: its options, and the handles the application
//! holds (sending half, receiving half). The connection's task (`peer.rs`)
//! owns the channel in str0m; the handles reach it through a command queue
//! and share a few counters with it, without a lock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use tokio::sync::{mpsc, oneshot, Notify};

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

    /// The channel as str0m takes it (`negotiated`: its stream id, for a
    /// channel both ends create from the offer).
    pub(crate) fn to_config(&self, label: &str, negotiated: Option<u16>) -> ChannelConfig {
        let reliability = match (self.max_retransmits, self.max_packet_life_time) {
            (Some(retransmits), _) => Reliability::MaxRetransmits { retransmits },
            (None, Some(lifetime)) => Reliability::MaxPacketLifetime { lifetime },
            (None, None) => Reliability::Reliable,
        };
        ChannelConfig { label: label.to_owned(), ordered: self.ordered, reliability, negotiated, protocol: self.protocol.clone() }
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

/// Messages a channel holds for a reader that is behind; past this, the
/// connection's task waits for the reader (which holds back the
/// connection's other channels too).
pub(crate) const RECEIVE_QUEUE: usize = 4096;

/// Bytes a channel may hold (queued for SCTP and unacknowledged by the
/// slave) before [`ChannelSender::send`] waits. Loopback needs ~64 KiB for
/// full speed; Chromium aborted associations more often with 256 KiB and
/// more in flight.
pub(crate) const SEND_BUFFER: usize = 128 * 1024;

/// `low_threshold` while no threshold is set.
const LOW_THRESHOLD_UNSET: usize = usize::MAX;

/// What a channel's handles ask of its connection's task.
pub(crate) enum ChannelCommand {
    /// Send a message (its bytes are already counted in `buffered`).
    Write { channel: ChannelId, data: Bytes, is_text: bool },
    /// Close the channel once what was queued before is handed to SCTP.
    Close { channel: ChannelId },
}

/// What a channel's handles and its connection's task share. Each side
/// only adds or subtracts its own part of `buffered`, so neither overwrites
/// the other's.
pub(crate) struct ChannelState {
    pub(crate) id: ChannelId,
    /// Bytes the application sent that SCTP has not had acknowledged yet
    /// (queued in the task, or in SCTP).
    buffered: AtomicUsize,
    /// `on_low` runs when `buffered` falls to this.
    low_threshold: AtomicUsize,
    on_low: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Set once a [`QueuedSender`] went over [`SEND_QUEUE_LIMIT`].
    overflowed: AtomicBool,
    /// Set once the channel is closed (by either end, or with its connection).
    closed: AtomicBool,
    /// Wakes senders waiting for room, and for the close.
    room: Notify,
}

impl ChannelState {
    pub(crate) fn new(id: ChannelId) -> Self {
        ChannelState {
            id,
            buffered: AtomicUsize::new(0),
            low_threshold: AtomicUsize::new(LOW_THRESHOLD_UNSET),
            on_low: OnceLock::new(),
            overflowed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// `bytes` left the channel (acknowledged by the slave, or dropped):
    /// wakes waiting senders and calls `on_low` as the count crosses their marks.
    pub(crate) fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let before = self.buffered.fetch_sub(bytes, Ordering::Relaxed);
        let after = before - bytes;
        if before >= SEND_BUFFER && after < SEND_BUFFER {
            self.room.notify_waiters();
        }
        let threshold = self.low_threshold.load(Ordering::Relaxed);
        if threshold != LOW_THRESHOLD_UNSET && before > threshold && after <= threshold {
            if let Some(on_low) = self.on_low.get() {
                on_low();
            }
        }
    }

    /// The channel closed: senders stop waiting, and later sends fail.
    pub(crate) fn set_closed(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.room.notify_waiters();
    }

    pub(crate) fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// The sending half of a [`DataChannel`]; cheap to clone.
#[derive(Clone)]
pub struct ChannelSender {
    state: Arc<ChannelState>,
    commands: mpsc::UnboundedSender<ChannelCommand>,
}

impl ChannelSender {
    /// Sends a binary message; waits while the channel holds 128 KiB not
    /// yet acknowledged by the slave. An empty message is dropped, with a
    /// warning logged once per process: str0m cannot send one yet
    /// (doc/upstream.md).
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), ClientError> {
        self.send_message(data.into(), false).await
    }

    /// Sends a text message; waits as [`ChannelSender::send`] does.
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        self.send_message(Bytes::copy_from_slice(text.as_bytes()), true).await
    }

    async fn send_message(&self, data: Bytes, is_text: bool) -> Result<(), ClientError> {
        let state = &self.state;
        loop {
            let room = state.room.notified();
            tokio::pin!(room);
            // Registered before the check, so that a release in between wakes it.
            room.as_mut().enable();
            if state.closed.load(Ordering::Relaxed) {
                return Err(ClientError::ChannelClosed);
            }
            if state.buffered.load(Ordering::Relaxed) < SEND_BUFFER {
                break;
            }
            room.await;
        }
        self.hand_over(data, is_text)
    }

    /// Counts the message and hands it to the connection's task.
    fn hand_over(&self, data: Bytes, is_text: bool) -> Result<(), ClientError> {
        let len = data.len();
        self.state.buffered.fetch_add(len, Ordering::Relaxed);
        self.commands.send(ChannelCommand::Write { channel: self.state.id, data, is_text }).map_err(|_| {
            self.state.buffered.fetch_sub(len, Ordering::Relaxed);
            ClientError::ChannelClosed
        })
    }

    /// Bytes sent and not yet acknowledged by the slave.
    pub async fn buffered_amount(&self) -> usize {
        self.state.buffered.load(Ordering::Relaxed)
    }

    /// Closes the channel (both halves) once what was sent before is handed to SCTP.
    pub async fn close(&self) {
        let _ = self.commands.send(ChannelCommand::Close { channel: self.state.id });
    }

    /// This sender as one that queues instead of waiting (see
    /// [`QueuedSender`]); `on_low` is called, from the connection's task,
    /// each time the buffered amount falls to its low threshold. One
    /// `on_low` per channel: a second call keeps the first.
    pub fn queued(self, on_low: impl Fn() + Send + Sync + 'static) -> QueuedSender {
        let _ = self.state.on_low.set(Box::new(on_low));
        QueuedSender { sender: self }
    }
}

/// A channel's sending half for callers that cannot wait (a game loop, the
/// Node binding): [`QueuedSender::send`] queues and returns at once, and the
/// connection's task hands the queue to SCTP in order, at most 128 KiB
/// unacknowledged at a time. Past [`SEND_QUEUE_LIMIT`] bytes the message
/// and the queue are dropped and the channel closes, as a browser's does.
/// Clones share the queue.
#[derive(Clone)]
pub struct QueuedSender {
    sender: ChannelSender,
}

impl QueuedSender {
    /// Queues a message (`is_text`: a text message, which must be UTF-8).
    /// Fails only once the channel is closed; a message over the queue's
    /// limit closes the channel instead. An empty message is dropped (see
    /// [`ChannelSender::send`]).
    pub fn send(&self, data: Bytes, is_text: bool) -> Result<(), ClientError> {
        let state = &self.sender.state;
        if state.closed.load(Ordering::Relaxed) {
            return Err(ClientError::ChannelClosed);
        }
        if state.overflowed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if state.buffered.load(Ordering::Relaxed) + data.len() > SEND_QUEUE_LIMIT {
            state.overflowed.store(true, Ordering::Relaxed);
            let _ = self.sender.commands.send(ChannelCommand::Close { channel: state.id });
            return Ok(());
        }
        self.sender.hand_over(data, is_text)
    }

    /// Bytes queued or in SCTP, not yet acknowledged by the slave.
    pub fn buffered_amount(&self) -> usize {
        self.sender.state.buffered.load(Ordering::Relaxed)
    }

    /// Calls the `on_low` given to [`ChannelSender::queued`] whenever the
    /// buffered amount falls to `threshold` (not before a threshold is set).
    pub fn set_low_threshold(&self, threshold: usize) {
        self.sender.state.low_threshold.store(threshold, Ordering::Relaxed);
    }

    /// Closes the channel once what was queued before is handed to SCTP.
    pub fn close(&self) {
        let _ = self.sender.commands.send(ChannelCommand::Close { channel: self.sender.state.id });
    }
}

impl std::fmt::Debug for QueuedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedSender").field("buffered", &self.buffered_amount()).finish_non_exhaustive()
    }
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
    /// The handles of a channel: what the connection's task keeps (its
    /// state, the sending end of its messages) and what the application gets.
    pub(crate) fn new(
        label: String,
        options: ChannelOptions,
        state: Arc<ChannelState>,
        commands: mpsc::UnboundedSender<ChannelCommand>,
    ) -> (DataChannel, mpsc::Sender<ChannelMessage>) {
        let (incoming_tx, incoming) = mpsc::channel(RECEIVE_QUEUE);
        let channel =
            DataChannel { label, options, sender: ChannelSender { state, commands }, receiver: ChannelReceiver { incoming } };
        (channel, incoming_tx)
    }

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
        f.debug_struct("ChannelSender").field("buffered", &self.state.buffered.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChannelReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelReceiver").field("queued", &self.incoming.len()).finish()
    }
}

/// What a channel's opening resolves with.
pub(crate) type OpenReply = oneshot::Sender<Result<DataChannel, ClientError>>;
