//! A data channel as the application sees it: its properties, and the handle
//! [`super::Slave::send`] goes through to the shard that owns the channel.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::engine::{Command, PeerKey};
use super::stats::{ChannelStats, Traffic};

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
    /// The channel's SCTP stream id within its peer connection (the browser's `dc.id`).
    pub id: u16,
    /// True for a channel negotiated out of band (agreed stream id).
    pub negotiated: bool,
}

/// Bytes a channel may hold for sending (SCTP's share included) before it is
/// closed: libwebrtc's limit, so 0.9.0 slaves behaved the same. A peer that
/// stops reading must not grow the process without bound.
pub const SEND_QUEUE_LIMIT: usize = 16 * 1024 * 1024;

/// The low threshold of a channel nobody watches.
pub(crate) const LOW_THRESHOLD_DISARMED: usize = usize::MAX;

/// What a channel's handle and its shard both see: kept in step without a
/// lock, so that `send` and `bufferedAmount` never wait for the shard.
#[derive(Debug)]
pub(crate) struct ChannelCounters {
    /// Bytes given to `send` and not yet released by SCTP (acknowledged or
    /// abandoned): those still on their way to the shard plus SCTP's
    /// outstanding bytes.
    pub buffered: AtomicUsize,
    /// `BufferedAmountLow` fires when `buffered` falls to this.
    pub low_threshold: AtomicUsize,
    /// Set once the queue went over [`SEND_QUEUE_LIMIT`]: later sends are dropped.
    pub overflowed: AtomicBool,
    /// Messages and bytes each way, counted by the shard.
    pub traffic: Traffic,
}

impl Default for ChannelCounters {
    fn default() -> Self {
        ChannelCounters {
            buffered: AtomicUsize::new(0),
            // Disarmed until the application sets a threshold: most games never
            // listen, and a drain to 0 after every send would be an event each time.
            low_threshold: AtomicUsize::new(LOW_THRESHOLD_DISARMED),
            overflowed: AtomicBool::new(false),
            traffic: Traffic::default(),
        }
    }
}

/// The slave's handle on a channel.
pub(crate) struct ChannelHandle {
    pub(crate) shard: mpsc::UnboundedSender<Command>,
    pub(crate) peer: PeerKey,
    /// The channel's handle inside its peer connection (str0m's id).
    pub(crate) rtc_id: super::engine::ChannelKey,
    pub(crate) counters: Arc<ChannelCounters>,
}

impl ChannelHandle {
    /// Queues a message. Over [`SEND_QUEUE_LIMIT`], the message is dropped
    /// and the channel closes with an error, as in libwebrtc (an exception
    /// thrown into a game's send loop would take the whole server down).
    pub(crate) fn send(&self, data: Bytes, is_text: bool) -> Result<(), ()> {
        let counters = &self.counters;
        if counters.overflowed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let len = data.len();
        if counters.buffered.load(Ordering::Relaxed) + len > SEND_QUEUE_LIMIT {
            if !counters.overflowed.swap(true, Ordering::Relaxed) {
                let _ = self.shard.send(Command::Overflowed { peer: self.peer, channel: self.rtc_id });
            }
            return Ok(());
        }
        counters.buffered.fetch_add(len, Ordering::Relaxed);
        self.shard.send(Command::Send { peer: self.peer, channel: self.rtc_id, data, is_text }).map_err(|_| {
            counters.buffered.fetch_sub(len, Ordering::Relaxed);
        })
    }

    pub(crate) fn buffered_amount(&self) -> usize {
        self.counters.buffered.load(Ordering::Relaxed)
    }

    pub(crate) fn set_low_threshold(&self, threshold: usize) {
        self.counters.low_threshold.store(threshold, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> ChannelStats {
        self.counters.traffic.read()
    }

    pub(crate) fn close(&self) {
        let _ = self.shard.send(Command::CloseChannel { peer: self.peer, channel: self.rtc_id });
    }
}
