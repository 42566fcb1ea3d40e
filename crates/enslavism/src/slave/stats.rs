//! What a slave counts as it runs, and the snapshots the application reads:
//! [`SlaveStats`] ([`super::Slave::stats`]), [`ChannelStats`]
//! ([`super::Slave::channel_stats`]) and [`ConnectionStats`]
//! ([`super::Connection::stats`]).
//!
//! Counting happens in the shards, per message; reading happens when asked.
//! Every counter has one writer (the shard that owns the peer), so a count
//! is a relaxed load and store of an atomic: no lock, no read-modify-write,
//! no allocation on the hot path, and readers on other threads see a value
//! that is at most a few messages old.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::SessionId;

/// A slave's figures: counters since it started, gauges now.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SlaveStats {
    /// Peer connections held now (from the offer accepted to the release).
    pub connections: usize,
    /// Data channels open now.
    pub channels: usize,
    /// Data-channel messages received from clients.
    pub messages_in: u64,
    /// Data-channel messages handed to SCTP for clients.
    pub messages_out: u64,
    /// Payload bytes of [`messages_in`](Self::messages_in).
    pub bytes_in: u64,
    /// Payload bytes of [`messages_out`](Self::messages_out).
    pub bytes_out: u64,
    /// How long connections took to set up (see [`SetupTimes`]).
    pub setup: SetupTimes,
}

/// Setup times of the connections set up so far: from the offer's arrival
/// at the slave (the application's `offer` decision included) to the
/// connection's first data channel open. Percentiles are estimated from a
/// fixed-bucket histogram ([`SETUP_BUCKETS`]): linear within the bucket the
/// rank falls in, so within that bucket's bounds.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SetupTimes {
    /// Connections set up so far.
    pub count: u64,
    /// Median (`None` before the first setup).
    pub p50: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
}

/// One data channel's traffic since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStats {
    /// Messages received from the client.
    pub messages_in: u64,
    /// Messages handed to SCTP for the client.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes handed to SCTP.
    pub bytes_out: u64,
}

/// One client connection's figures, as its shard counts them at its socket.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Round-trip time of the latest ICE connectivity check on the selected
    /// candidate pair (a STUN request and its response; ICE checks the pair
    /// every few seconds), `None` before one completed. SCTP's smoothed RTT
    /// would be steadier, but str0m 0.24 does not expose it.
    pub rtt: Option<Duration>,
    /// Data-channel messages received, every channel of the connection.
    pub messages_in: u64,
    /// Data-channel messages handed to SCTP.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes handed to SCTP.
    pub bytes_out: u64,
    /// UDP datagrams received for this connection (STUN, DTLS, SCTP), counted at the socket.
    pub packets_in: u64,
    /// UDP datagrams sent.
    pub packets_out: u64,
    /// Bytes of those datagrams received (headers and retransmissions included).
    pub transport_bytes_in: u64,
    /// Bytes of those datagrams sent.
    pub transport_bytes_out: u64,
    /// SCTP packets lost: `None`, as str0m 0.24 keeps its association's
    /// figures private.
    pub packets_lost: Option<u64>,
    /// SCTP retransmissions: `None`, for the same reason.
    pub retransmissions: Option<u64>,
    /// The candidate pair ICE selected, once it has.
    pub selected_candidate_pair: Option<CandidatePair>,
}

/// The two ends of a candidate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CandidatePair {
    /// Our end (the shard's address as announced in the candidate).
    pub local: SocketAddr,
    /// The client's end.
    pub remote: SocketAddr,
}

impl CandidatePair {
    /// A pair from its two ends.
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        CandidatePair { local, remote }
    }
}

/// Adds `n` to a counter that only the calling shard writes: a plain load
/// and store (no locked instruction), safe because there is one writer.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Messages and bytes each way, written by one shard.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Traffic {
    /// Counts a message received (called by the owning shard only).
    #[inline]
    pub(crate) fn received(&self, bytes: usize) {
        bump(&self.messages_in, 1);
        bump(&self.bytes_in, bytes as u64);
    }

    /// Counts a message handed to SCTP (called by the owning shard only).
    #[inline]
    pub(crate) fn sent(&self, bytes: usize) {
        bump(&self.messages_out, 1);
        bump(&self.bytes_out, bytes as u64);
    }

    /// The figures now.
    pub(crate) fn read(&self) -> ChannelStats {
        ChannelStats {
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// One shard's figures. Each shard has its own, aligned to a cache line, so
/// that shards on different cores never write the same line; a read sums them.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct ShardStats {
    /// Peers the shard holds: new peers go to the shard with the fewest,
    /// and their sum is the `connections` gauge.
    pub(crate) peers: AtomicUsize,
    pub(crate) traffic: Traffic,
    /// Channels announced and not closed yet.
    pub(crate) channels: AtomicUsize,
}

/// Upper bounds (ms) of the setup-time buckets, the last one open-ended.
/// About a third apart from 3 ms on, so that an interpolated percentile is
/// within ~15% of the truth; round numbers, so that the Prometheus
/// histogram's `le` labels read well.
pub const SETUP_BUCKETS: [f64; 34] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0,
    250.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0, 10000.0, 30000.0,
];

/// Setup times in fixed buckets: bounded memory however many connections,
/// one atomic increment per setup (rare: a lock would do, but none is needed).
#[derive(Debug)]
pub(crate) struct SetupHistogram {
    /// Counts per bucket of [`SETUP_BUCKETS`], then the overflow bucket.
    buckets: [AtomicU64; SETUP_BUCKETS.len() + 1],
    /// Sum of every setup time, in microseconds.
    sum_micros: AtomicU64,
}

impl Default for SetupHistogram {
    fn default() -> Self {
        SetupHistogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: AtomicU64::new(0) }
    }
}

/// A histogram's figures at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetupSnapshot {
    /// Count per bucket (not cumulative), the overflow bucket last.
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum: Duration,
}

impl SetupHistogram {
    /// Records one setup (any shard may call it).
    pub(crate) fn record(&self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        let index = SETUP_BUCKETS.iter().position(|&bound| ms <= bound).unwrap_or(SETUP_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SetupSnapshot {
        SetupSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

impl SetupSnapshot {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0 < q ≤ 1), interpolated within its bucket; in
    /// the open-ended bucket, its lower bound.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // The rank of the sample wanted, 1-based (nearest-rank definition).
        let rank = (q * count as f64).ceil().max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 || ((below + n) as f64) < rank {
                below += n;
                continue;
            }
            let lower = if i == 0 { 0.0 } else { SETUP_BUCKETS[i - 1] };
            let Some(&upper) = SETUP_BUCKETS.get(i) else {
                return Some(Duration::from_secs_f64(lower / 1000.0));
            };
            let within = (rank - below as f64) / n as f64;
            return Some(Duration::from_secs_f64((lower + (upper - lower) * within) / 1000.0));
        }
        None
    }

    pub(crate) fn times(&self) -> SetupTimes {
        SetupTimes { count: self.count(), p50: self.quantile(0.50), p95: self.quantile(0.95), p99: self.quantile(0.99) }
    }
}

/// "Not measured yet" in [`PeerStats::rtt_micros`].
const NO_RTT: u64 = u64::MAX;

/// One connection's counters: written by its shard, read by the metrics.
#[derive(Debug)]
pub(crate) struct PeerStats {
    pub(crate) client_id: u32,
    pub(crate) traffic: Traffic,
    /// The latest ICE round trip, published by the shard at each turn of the
    /// peer (from its own checks' answers, `engine/link.rs`).
    rtt_micros: AtomicU64,
}

impl PeerStats {
    pub(crate) fn new(client_id: u32) -> Self {
        PeerStats { client_id, traffic: Traffic::default(), rtt_micros: AtomicU64::new(NO_RTT) }
    }

    pub(crate) fn set_rtt(&self, rtt: Option<Duration>) {
        let micros = rtt.map_or(NO_RTT, |d| u64::try_from(d.as_micros()).unwrap_or(NO_RTT - 1));
        self.rtt_micros.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn rtt(&self) -> Option<Duration> {
        let micros = self.rtt_micros.load(Ordering::Relaxed);
        (micros != NO_RTT).then(|| Duration::from_micros(micros))
    }
}

/// A connection as the slave finds it by session: its shard, its counters.
pub(crate) struct Registered {
    pub(crate) shard: tokio::sync::mpsc::UnboundedSender<super::engine::Command>,
    pub(crate) stats: Arc<PeerStats>,
}

/// The slave-wide part of the figures (the per-shard part lives in the engine).
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) setup: SetupHistogram,
    /// Live connections by session: taken on open and release, never per message.
    connections: Mutex<HashMap<SessionId, Registered>>,
}

impl Stats {
    pub(crate) fn connections(&self) -> MutexGuard<'_, HashMap<SessionId, Registered>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> f64 {
        d.unwrap().as_secs_f64() * 1000.0
    }

    #[test]
    fn quantiles_fall_within_their_bucket() {
        let h = SetupHistogram::default();
        assert_eq!(h.snapshot().times(), SetupTimes::default());
        for _ in 0..90 {
            h.record(Duration::from_millis(9));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(140));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        let t = s.times();
        assert!((8.0..=10.0).contains(&ms(t.p50)), "{t:?}");
        assert!((120.0..=150.0).contains(&ms(t.p95)), "{t:?}");
        assert!((120.0..=150.0).contains(&ms(t.p99)), "{t:?}");
        assert_eq!(s.sum, Duration::from_millis(90 * 9 + 10 * 140));
    }

    #[test]
    fn one_sample_and_the_open_bucket() {
        let h = SetupHistogram::default();
        h.record(Duration::from_secs(100));
        assert_eq!(h.snapshot().times().p50, Some(Duration::from_secs(30)));
        let h = SetupHistogram::default();
        h.record(Duration::from_micros(500));
        let p = ms(h.snapshot().times().p99);
        assert!(p > 0.0 && p <= 1.0, "{p}");
    }

    #[test]
    fn traffic_counts_messages_and_bytes() {
        let t = Traffic::default();
        t.received(10);
        t.received(5);
        t.sent(7);
        assert_eq!(t.read(), ChannelStats { messages_in: 2, messages_out: 1, bytes_in: 15, bytes_out: 7 });
        let p = PeerStats::new(3);
        assert_eq!(p.rtt(), None);
        p.set_rtt(Some(Duration::from_micros(1500)));
        assert_eq!(p.rtt(), Some(Duration::from_micros(1500)));
    }
}
