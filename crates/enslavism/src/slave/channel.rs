//! One data channel opened by a client: its properties, its send queue, and
//! the task that moves messages both ways.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};

use super::{ChannelId, SessionId, SlaveEvent, SlaveShared};

/// A data channel's label and reliability, as the browser asked for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel's name.
    pub label: String,
    /// The subprotocol name ("" for none).
    pub protocol: String,
    /// Whether messages arrive in order.
    pub ordered: bool,
    /// Retransmission limit of an unreliable channel.
    pub max_retransmits: Option<u16>,
    /// Lifetime limit (ms) of an unreliable channel.
    pub max_packet_life_time: Option<u16>,
    /// The channel's number within its peer connection.
    pub id: u16,
    /// True for a channel negotiated out of band (agreed stream id).
    pub negotiated: bool,
}

/// What a channel task tells its peer.
pub(crate) enum ChannelNote {
    /// The channel was announced to the application (it is open).
    Announced,
    /// The channel task ended.
    Closed,
}

/// The low threshold of a channel nobody watches.
const LOW_THRESHOLD_DISARMED: usize = usize::MAX;

/// Bytes a channel may hold for sending (SCTP's share included) before it is
/// closed: libwebrtc's limit, so 0.9.0 slaves behaved the same. A peer that
/// stops reading must not grow the process without bound.
pub const SEND_QUEUE_LIMIT: usize = 16 * 1024 * 1024;

enum Outgoing {
    Message { data: Bytes, is_text: bool },
    Close,
}

/// The slave's handle on a channel: where `send` puts messages.
pub(crate) struct ChannelHandle {
    out: mpsc::UnboundedSender<Outgoing>,
    buffered: Arc<AtomicUsize>,
    low_threshold: Arc<AtomicUsize>,
    /// Cancelled once the queue overflowed: the queue is dropped, the sender
    /// closes the channel once SCTP delivered what it holds, later sends are
    /// dropped.
    overflowed: CancellationToken,
}

impl ChannelHandle {
    /// Queues a message. Over [`SEND_QUEUE_LIMIT`], the message is dropped
    /// and the channel closes with an error, as in libwebrtc (an exception
    /// thrown into a game's send loop would take the whole server down).
    pub(crate) fn send(&self, data: Bytes, is_text: bool) -> Result<(), ()> {
        if self.overflowed.is_cancelled() {
            return Ok(());
        }
        let len = data.len();
        if self.buffered.load(Ordering::Relaxed) + len > SEND_QUEUE_LIMIT {
            self.overflowed.cancel();
            return Ok(());
        }
        self.buffered.fetch_add(len, Ordering::Relaxed);
        self.out.send(Outgoing::Message { data, is_text }).map_err(|_| {
            self.buffered.fetch_sub(len, Ordering::Relaxed);
        })
    }

    pub(crate) fn buffered_amount(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    pub(crate) fn set_low_threshold(&self, threshold: usize) {
        self.low_threshold.store(threshold, Ordering::Relaxed);
    }

    pub(crate) fn close(&self) {
        let _ = self.out.send(Outgoing::Close);
    }
}

/// Reads the properties of a channel the browser opened in-band; errors mean
/// the channel is already gone.
async fn channel_info(dc: &dyn DataChannel) -> webrtc::error::Result<ChannelInfo> {
    Ok(ChannelInfo {
        label: dc.label().await?,
        protocol: dc.protocol().await?,
        ordered: dc.ordered().await?,
        max_retransmits: dc.max_retransmits().await?,
        max_packet_life_time: dc.max_packet_life_time().await?,
        id: u16::try_from(dc.id()).unwrap_or(u16::MAX),
        negotiated: false,
    })
}

/// Runs one channel from its announcement to its close. `known` carries the
/// properties of a channel we created from signalling (negotiated): it is
/// announced once open. A channel the browser opened in-band is announced at once.
pub(crate) async fn run_channel(
    shared: Arc<SlaveShared>,
    (client_id, session): (u32, SessionId),
    dc: Arc<dyn DataChannel>,
    known: Option<ChannelInfo>,
    notes: mpsc::UnboundedSender<ChannelNote>,
) {
    let (info, announce_now) = match known {
        Some(info) => (info, false),
        None => match channel_info(&*dc).await {
            Ok(info) => (info, true),
            Err(e) => {
                tracing::debug!(client_id, "data channel gone before it could be announced: {e}");
                let _ = notes.send(ChannelNote::Closed);
                return;
            }
        },
    };
    let channel: ChannelId = shared.next_channel.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let buffered = Arc::new(AtomicUsize::new(0));
    // Disarmed until the application sets a threshold: most games never
    // listen, and a drain to 0 after every send would be an event each time.
    let low_threshold = Arc::new(AtomicUsize::new(LOW_THRESHOLD_DISARMED));
    let overflowed = CancellationToken::new();
    shared.channels().insert(
        channel,
        ChannelHandle {
            out: out_tx,
            buffered: buffered.clone(),
            low_threshold: low_threshold.clone(),
            overflowed: overflowed.clone(),
        },
    );
    tracing::debug!(client_id, channel, label = %info.label, "data channel");
    let mut end = ChannelEnd { shared: &shared, ids: (client_id, session), channel, notes: &notes, pending_info: Some(info) };
    if announce_now || matches!(dc.ready_state().await, Ok(RTCDataChannelState::Open)) {
        end.announce();
    }

    // Sending has its own task: a send waits while SCTP is full, and events
    // (messages, buffered-amount changes) must still be taken meanwhile, or
    // webrtc-rs holds back every channel of the connection.
    let done = CancellationToken::new();
    let sender = Sender { dc: dc.clone(), buffered, low_threshold, overflowed: overflowed.clone(), done: done.clone() };
    shared.spawn_guarded("a data channel's sender", sender.run(shared.clone(), channel, out_rx));
    // The sender stops with this task, however it ends.
    let _stop_sender = done.clone().drop_guard();

    // Made once: a fresh wait per event would register and unregister with each token every time.
    let closed_here = done.cancelled();
    let overflow = overflowed.cancelled();
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(closed_here, overflow, shutdown);
    let mut overflow_reported = false;
    loop {
        tokio::select! {
            event = dc.poll() => match event {
                Some(DataChannelEvent::OnOpen) => end.announce(),
                Some(DataChannelEvent::OnMessage(msg)) => {
                    end.announce();
                    shared.hooks.on_event(SlaveEvent::Message { channel, data: msg.data.freeze(), is_text: msg.is_string });
                }
                Some(DataChannelEvent::OnError) => shared.hooks.on_event(SlaveEvent::ChannelError {
                    channel,
                    message: "data channel error".into(),
                }),
                Some(DataChannelEvent::OnClose) | None => break,
                Some(_) => {}
            },
            // Closed by the application (the sender closed it after what was queued before).
            _ = &mut closed_here => break,
            // The sender closes the channel; events are still taken meanwhile,
            // or webrtc-rs would hold back the connection's other channels.
            _ = &mut overflow, if !overflow_reported => {
                overflow_reported = true;
                tracing::debug!(client_id, channel, "send queue over its limit; closing the channel");
                shared.hooks.on_event(SlaveEvent::ChannelError {
                    channel,
                    message: format!("send queue full ({SEND_QUEUE_LIMIT} bytes the peer has not taken); the channel closes"),
                });
            }
            _ = &mut shutdown => break,
        }
    }
    // `end` does the bookkeeping as it drops.
}

/// A channel's sending side: hands queued messages to SCTP, in order.
struct Sender {
    dc: Arc<dyn DataChannel>,
    buffered: Arc<AtomicUsize>,
    low_threshold: Arc<AtomicUsize>,
    overflowed: CancellationToken,
    /// Cancelled when the channel's task ends, or by this sender once it closed the channel.
    done: CancellationToken,
}

impl Sender {
    async fn run(self, shared: Arc<SlaveShared>, channel: ChannelId, mut out_rx: mpsc::UnboundedReceiver<Outgoing>) {
        // Made once, as in `run_channel`; looked at only when there is nothing
        // else to do. True when the queue overflowed.
        let stopped = async {
            tokio::select! {
                _ = self.done.cancelled() => false,
                _ = self.overflowed.cancelled() => true,
            }
        };
        tokio::pin!(stopped);
        loop {
            let outgoing = tokio::select! {
                biased;
                outgoing = out_rx.recv() => outgoing,
                overflowed = &mut stopped => return self.stop(overflowed, &mut out_rx).await,
            };
            match outgoing {
                Some(Outgoing::Message { data, is_text }) => {
                    if self.overflowed.is_cancelled() {
                        return self.stop(true, &mut out_rx).await;
                    }
                    let len = data.len();
                    let dc = &*self.dc;
                    let send = async move {
                        match is_text.then(|| std::str::from_utf8(&data).ok()).flatten() {
                            Some(text) => dc.send_text(text).await,
                            // A uniquely owned buffer (what the binding passes) converts without a copy.
                            None => dc.send(BytesMut::from(data)).await,
                        }
                    };
                    // SCTP takes nothing while the peer does not read: stop waiting once the channel ends.
                    let sent = tokio::select! {
                        biased;
                        sent = send => sent,
                        overflowed = &mut stopped => return self.stop(overflowed, &mut out_rx).await,
                    };
                    let before = self.buffered.fetch_sub(len, Ordering::Relaxed);
                    let threshold = self.low_threshold.load(Ordering::Relaxed);
                    if threshold != LOW_THRESHOLD_DISARMED && before > threshold && before - len <= threshold {
                        shared.hooks.on_event(SlaveEvent::BufferedAmountLow { channel });
                    }
                    if let Err(e) = sent {
                        tracing::debug!(channel, "send failed: {e}");
                    }
                }
                Some(Outgoing::Close) => return self.close_when_delivered().await,
                // The channel's task ended: nothing left to do.
                None => return,
            }
        }
    }

    /// Stops sending. After an overflow, what is still queued is dropped (up
    /// to [`SEND_QUEUE_LIMIT`] freed at once) and the channel closes once SCTP
    /// delivered what it already holds, so that the browser sees the close.
    async fn stop(&self, overflowed: bool, out_rx: &mut mpsc::UnboundedReceiver<Outgoing>) {
        if overflowed {
            out_rx.close();
            while out_rx.try_recv().is_ok() {}
            self.close_when_delivered().await;
        }
    }

    /// Closes the channel after [`Sender::drain`], then tells the channel's task.
    async fn close_when_delivered(&self) {
        self.drain().await;
        let _ = self.dc.close().await;
        self.done.cancel();
    }

    /// Waits, for at most [`CLOSE_DRAIN_LIMIT`], until SCTP has delivered what
    /// this channel gave it, as a browser's `close()` does. webrtc-rs 0.21.1
    /// resets the stream at once instead, and libwebrtc then neither gets the
    /// rest nor reports the close (1.2 MB sent then closed: 776 kB arrived
    /// and the browser's channel stayed open). No event says "all
    /// acknowledged", so this looks again every [`CLOSE_DRAIN_POLL`].
    async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + CLOSE_DRAIN_LIMIT;
        while matches!(self.dc.outstanding_bytes().await, Ok(n) if n > 0) && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(CLOSE_DRAIN_POLL) => {}
                _ = self.done.cancelled() => return,
            }
        }
    }
}

/// How long a closing channel waits for its data to be delivered.
const CLOSE_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a closing channel looks whether its data was delivered.
const CLOSE_DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// A channel's bookkeeping, done when its task ends in any way (a panic
/// included): the handle leaves the map, the application hears of the close
/// (if it heard of the channel), and the peer counts one channel less.
struct ChannelEnd<'a> {
    shared: &'a SlaveShared,
    ids: (u32, SessionId),
    channel: ChannelId,
    notes: &'a mpsc::UnboundedSender<ChannelNote>,
    /// The properties to announce; `None` once announced.
    pending_info: Option<ChannelInfo>,
}

impl ChannelEnd<'_> {
    /// Announces the channel, once.
    fn announce(&mut self) {
        if let Some(info) = self.pending_info.take() {
            let _ = self.notes.send(ChannelNote::Announced);
            let (client_id, session) = self.ids;
            self.shared.hooks.on_event(SlaveEvent::DataChannel { client_id, session, channel: self.channel, info });
        }
    }
}

impl Drop for ChannelEnd<'_> {
    fn drop(&mut self) {
        self.shared.channels().remove(&self.channel);
        // A channel never announced closes silently.
        if self.pending_info.is_none() {
            self.shared.hooks.on_event(SlaveEvent::ChannelClose { channel: self.channel });
        }
        let _ = self.notes.send(ChannelNote::Closed);
    }
}
