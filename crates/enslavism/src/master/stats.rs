//! What a master counts, and its metrics.
//!
//! Two kinds of counter, each where it costs nothing extra: traffic (frames
//! and bytes, handshakes refused, peers dropped) in relaxed atomics the
//! peers' tasks add to once per wake-up (whatever was read and written since
//! the last), not per frame; and
//! signalling (offers, answers, candidates, rejections, the offer → answer
//! latency) in the router, under the lock it holds anyway. [`MasterStats`]
//! is a snapshot of both; the metrics are encoded from a snapshot when asked.

use std::sync::atomic::{AtomicU64, Ordering};

use super::pending_offers::PendingOffers;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Why a WebSocket handshake was refused: the `reason` label of
/// `enslavism_master_handshakes_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The application's auth hook said no (401).
    Unauthorized,
    /// `max_connections` were open (503).
    OverLimit,
    /// Not a valid WebSocket handshake (400).
    BadRequest,
    /// Not an enslavism path (404).
    NotFound,
}

impl Refusal {
    /// The refusal an HTTP status answering a handshake stands for.
    pub(crate) fn from_status(status: http::StatusCode) -> Refusal {
        match status {
            http::StatusCode::UNAUTHORIZED => Refusal::Unauthorized,
            http::StatusCode::SERVICE_UNAVAILABLE => Refusal::OverLimit,
            http::StatusCode::NOT_FOUND => Refusal::NotFound,
            _ => Refusal::BadRequest,
        }
    }
}

/// Counted by the peers' tasks, without the router's lock.
#[derive(Debug, Default)]
pub(crate) struct TrafficCounters {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped_peers: AtomicU64,
    /// By [`Refusal`], in its order.
    refused: [AtomicU64; 4],
}

/// What one connection read and wrote since it last added to the master's
/// counters: kept in the connection, added once per wake-up, so that the
/// atomics every peer shares are touched once for many frames.
#[derive(Debug, Default)]
pub(crate) struct PeerTraffic {
    frames_in: u32,
    frames_out: u32,
    bytes_in: u64,
    bytes_out: u64,
}

impl PeerTraffic {
    /// One frame received (text or binary), of `bytes` payload bytes.
    pub(crate) fn received(&mut self, bytes: usize) {
        self.frames_in += 1;
        self.bytes_in += bytes as u64;
    }

    /// One frame handed to the socket, of `bytes` payload bytes.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.frames_out += 1;
        self.bytes_out += bytes as u64;
    }
}

impl TrafficCounters {
    /// Adds what `peer` counted, if anything, and starts it again from zero.
    pub(crate) fn add(&self, peer: &mut PeerTraffic) {
        let PeerTraffic { frames_in, frames_out, bytes_in, bytes_out } = std::mem::take(peer);
        if frames_in > 0 {
            self.frames_in.fetch_add(u64::from(frames_in), Ordering::Relaxed);
            self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        }
        if frames_out > 0 {
            self.frames_out.fetch_add(u64::from(frames_out), Ordering::Relaxed);
            self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }

    /// A connection ended because of its peer (see [`MasterStats::dropped_peers`]).
    pub(crate) fn dropped(&self) {
        self.dropped_peers.fetch_add(1, Ordering::Relaxed);
    }

    /// A handshake refused.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Offers, answers, candidates and rejections relayed, counted by the
/// router (under its lock).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignallingCounts {
    /// Offers relayed from clients to slaves.
    pub offers: u64,
    /// Answers relayed from slaves to clients.
    pub answers: u64,
    /// ICE candidates relayed, both ways.
    pub candidates: u64,
    /// Offers refused: by the slave, or by the master on its behalf (the
    /// slave is gone, or the client sends offers too fast).
    pub rejections: u64,
}

/// Offers waiting for their answer, at most this many (later ones are not
/// timed): a client that offers to slaves that never answer must not grow
/// the master without bound.
const MAX_PENDING_OFFERS: usize = 65_536;

/// Upper bounds (seconds) of the offer → answer latency buckets: from a
/// slave on the same host (~1 ms) to one far away and busy.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The router's signalling counts and the time from each offer received to
/// its answer sent.
#[derive(Debug)]
pub(crate) struct SignallingTally {
    pub(crate) counts: SignallingCounts,
    /// The offers waiting for their answer, to time them.
    pending: PendingOffers,
    latency: Histogram,
}

impl Default for SignallingTally {
    fn default() -> Self {
        SignallingTally {
            counts: SignallingCounts::default(),
            pending: PendingOffers::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl SignallingTally {
    pub(crate) fn offer_relayed(&mut self, client: u32, slave: u32) {
        self.counts.offers += 1;
        self.pending.offered(client, slave, MAX_PENDING_OFFERS);
    }

    pub(crate) fn answer_relayed(&mut self, client: u32, slave: u32) {
        self.counts.answers += 1;
        if let Some(offered) = self.pending.take(client, slave) {
            self.latency.observe(offered.elapsed().as_secs_f64());
        }
    }

    pub(crate) fn rejected(&mut self, client: u32, slave: u32) {
        self.counts.rejections += 1;
        self.pending.take(client, slave);
    }

    /// A peer left: its offers will not be answered.
    pub(crate) fn forget(&mut self, kind: super::PeerKind, id: u32) {
        match kind {
            super::PeerKind::Client => self.pending.forget_client(id),
            super::PeerKind::Slave => drop(self.pending.take_where(|slave, _| slave == id)),
        }
    }

    /// The latency histogram (a handle on the same buckets).
    pub(crate) fn latency(&self) -> Histogram {
        self.latency.clone()
    }
}

/// Handshakes a master refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedHandshakes {
    /// The application's auth hook refused them (HTTP 401).
    pub unauthorized: u64,
    /// `max_connections` were open (HTTP 503; any connection, since the
    /// master answers before reading the request).
    pub over_limit: u64,
    /// They were not valid WebSocket handshakes (HTTP 400).
    pub bad_request: u64,
    /// They asked for another path than the two enslavism ones (HTTP 404).
    pub not_found: u64,
}

impl RefusedHandshakes {
    /// Every refusal.
    pub fn total(&self) -> u64 {
        self.unauthorized + self.over_limit + self.bad_request + self.not_found
    }
}

/// The router's counts of peers, read together.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub(crate) slaves: usize,
    pub(crate) registered_slaves: usize,
    pub(crate) remote_slaves: usize,
    pub(crate) clients: usize,
}

/// A master's figures: gauges as they are now, counters since it started.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MasterStats {
    /// Connected slaves, registered or not.
    pub slaves: usize,
    /// Slaves registered with this master, listed to clients.
    pub registered_slaves: usize,
    /// Slaves registered with other masters of the cluster, listed to this
    /// master's clients too (0 for a master alone).
    pub remote_slaves: usize,
    /// Connected clients.
    pub clients: usize,
    /// WebSocket messages received (text or binary; not pings).
    pub frames_in: u64,
    /// WebSocket messages written (not pings).
    pub frames_out: u64,
    /// Payload bytes of `frames_in`.
    pub bytes_in: u64,
    /// Payload bytes of `frames_out`.
    pub bytes_out: u64,
    /// Offers, answers, candidates and rejections relayed.
    pub signalling: SignallingCounts,
    /// Handshakes refused.
    pub refused_handshakes: RefusedHandshakes,
    /// Connections the master ended because of their peer: silent past the
    /// heartbeat timeout, not reading, over their outbound queue, sending
    /// frames that break the protocol, or gone without a close.
    pub dropped_peers: u64,
}

impl MasterStats {
    /// The counters of `traffic` and `signalling`, with the gauges given.
    pub(crate) fn read(traffic: &TrafficCounters, signalling: SignallingCounts, gauges: Gauges) -> Self {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let refused = |why: Refusal| get(&traffic.refused[why as usize]);
        MasterStats {
            slaves: gauges.slaves,
            registered_slaves: gauges.registered_slaves,
            remote_slaves: gauges.remote_slaves,
            clients: gauges.clients,
            frames_in: get(&traffic.frames_in),
            frames_out: get(&traffic.frames_out),
            bytes_in: get(&traffic.bytes_in),
            bytes_out: get(&traffic.bytes_out),
            signalling,
            refused_handshakes: RefusedHandshakes {
                unauthorized: refused(Refusal::Unauthorized),
                over_limit: refused(Refusal::OverLimit),
                bad_request: refused(Refusal::BadRequest),
                not_found: refused(Refusal::NotFound),
            },
            dropped_peers: get(&traffic.dropped_peers),
        }
    }

    /// These figures as the JSON object the status page reads (the names of
    /// the Node API's `master.stats()`).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "slaves": self.slaves,
            "registeredSlaves": self.registered_slaves,
            "remoteSlaves": self.remote_slaves,
            "clients": self.clients,
            "framesIn": self.frames_in,
            "framesOut": self.frames_out,
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "offers": self.signalling.offers,
            "answers": self.signalling.answers,
            "candidates": self.signalling.candidates,
            "rejections": self.signalling.rejections,
            "refusedHandshakes": self.refused_handshakes.total(),
            "droppedPeers": self.dropped_peers,
        })
        .to_string()
    }

    /// These figures and the offer → answer latency as an OpenMetrics text
    /// exposition, names prefixed `enslavism_master_`.
    pub(crate) fn metrics(&self, latency: Histogram) -> String {
        let mut registry = Registry::with_prefix("enslavism_master");
        let gauge = |value: usize| {
            let gauge: Gauge = Gauge::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge
        };
        registry.register("slaves", "Connected slaves, registered or not", gauge(self.slaves));
        registry.register("registered_slaves", "Slaves registered with this master", gauge(self.registered_slaves));
        registry.register("remote_slaves", "Slaves of other masters of the cluster, listed here too", gauge(self.remote_slaves));
        registry.register("clients", "Connected clients", gauge(self.clients));
        let by_direction = |inbound: u64, outbound: u64| {
            let family = Family::<[(&'static str, &'static str); 1], Counter>::default();
            family.get_or_create(&[("direction", "in")]).inc_by(inbound);
            family.get_or_create(&[("direction", "out")]).inc_by(outbound);
            family
        };
        registry.register("frames", "WebSocket messages, pings excepted", by_direction(self.frames_in, self.frames_out));
        registry.register("bytes", "Payload bytes of those messages", by_direction(self.bytes_in, self.bytes_out));
        let signalling = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let s = &self.signalling;
        for (kind, n) in [("offer", s.offers), ("answer", s.answers), ("candidate", s.candidates), ("rejection", s.rejections)] {
            signalling.get_or_create(&[("kind", kind)]).inc_by(n);
        }
        registry.register("signalling_messages", "Offers, answers, ICE candidates and rejections relayed", signalling);
        let refused = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let r = &self.refused_handshakes;
        for (reason, n) in [
            ("unauthorized", r.unauthorized),
            ("over_limit", r.over_limit),
            ("bad_request", r.bad_request),
            ("not_found", r.not_found),
        ] {
            refused.get_or_create(&[("reason", reason)]).inc_by(n);
        }
        registry.register("handshakes_refused", "WebSocket handshakes refused, by reason", refused);
        let dropped: Counter = Counter::default();
        dropped.inc_by(self.dropped_peers);
        registry.register("dropped_peers", "Connections ended because of their peer (silent, not reading, broken)", dropped);
        registry.register_with_unit(
            "signalling_latency",
            "Time from a client's offer received to the slave's answer sent on",
            prometheus_client::registry::Unit::Seconds,
            latency,
        );
        crate::metrics::encode(&registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_offer_is_timed_once_and_forgotten_with_its_peer() {
        let mut tally = SignallingTally::default();
        tally.offer_relayed(1, 7);
        tally.offer_relayed(2, 7);
        tally.offer_relayed(3, 8);
        tally.answer_relayed(1, 7);
        // A second answer (renegotiation without an offer) times nothing.
        tally.answer_relayed(1, 7);
        tally.forget(crate::master::PeerKind::Slave, 7);
        assert_eq!(tally.pending.len(), 1);
        tally.rejected(3, 8);
        assert!(tally.pending.len() == 0);
        tally.offer_relayed(4, 8);
        tally.offer_relayed(4, 9);
        tally.forget(crate::master::PeerKind::Client, 4);
        assert!(tally.pending.len() == 0);
        assert_eq!(tally.counts, SignallingCounts { offers: 5, answers: 2, candidates: 0, rejections: 1 });
        let text = MasterStats::default().metrics(tally.latency());
        assert!(text.contains("enslavism_master_signalling_latency_seconds_count 1\n"), "{text}");
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let traffic = TrafficCounters::default();
        for status in [401, 401, 503, 400, 404] {
            traffic.refused(Refusal::from_status(http::StatusCode::from_u16(status).unwrap()));
        }
        let stats = MasterStats::read(&traffic, SignallingCounts::default(), Gauges::default());
        assert_eq!(stats.refused_handshakes, RefusedHandshakes { unauthorized: 2, over_limit: 1, bad_request: 1, not_found: 1 });
        assert_eq!(stats.refused_handshakes.total(), 5);
        let text = stats.metrics(SignallingTally::default().latency());
        assert!(text.contains("enslavism_master_handshakes_refused_total{reason=\"unauthorized\"} 2\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
