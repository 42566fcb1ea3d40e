//! What the socket carried for one peer connection, counted by its shard as
//! the datagrams pass: datagrams and bytes each way, the ICE round trip and
//! the candidate pair in use. str0m reports the last two only in a periodic
//! stats event; read here, they are known from the first check on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::slave::stats::{CandidatePair, ConnectionStats};
use crate::transport::stun::{is_stun, transaction_of, TransactionId, BINDING_REQUEST, BINDING_SUCCESS};

/// Our checks remembered while their answers are awaited: a connecting
/// agent checks a few pairs at once; once connected, one every few seconds.
const PENDING_CHECKS: usize = 4;

/// One peer connection's transport figures.
#[derive(Debug, Default)]
pub(super) struct LinkFigures {
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// Our latest ICE checks, and when they left.
    pending: [Option<(TransactionId, Instant)>; PENDING_CHECKS],
    next_slot: usize,
    rtt: Option<Duration>,
    pair: Option<CandidatePair>,
}

impl LinkFigures {
    /// A datagram from the browser; the answer to one of our checks gives
    /// the round trip.
    pub(super) fn received(&mut self, datagram: &[u8], now: Instant) {
        self.packets_in += 1;
        self.bytes_in += datagram.len() as u64;
        let Some(id) = transaction_of(datagram, BINDING_SUCCESS) else { return };
        if let Some(slot) = self.pending.iter_mut().find(|p| p.is_some_and(|(sent, _)| sent == id)) {
            let (_, at) = slot.take().expect("found above");
            self.rtt = Some(now.saturating_duration_since(at));
        }
    }

    /// A datagram to the browser, from `local`. What is not STUN travels
    /// only on the pair ICE selected.
    pub(super) fn sent(&mut self, datagram: &[u8], local: SocketAddr, remote: SocketAddr, now: Instant) {
        self.packets_out += 1;
        self.bytes_out += datagram.len() as u64;
        if let Some(id) = transaction_of(datagram, BINDING_REQUEST) {
            self.pending[self.next_slot] = Some((id, now));
            self.next_slot = (self.next_slot + 1) % PENDING_CHECKS;
        } else if !is_stun(datagram) {
            self.pair = Some(CandidatePair::new(local, remote));
        }
    }

    /// The latest ICE round trip, once one of our checks was answered.
    pub(super) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The figures kept here (the message counters are the channels').
    pub(super) fn connection_stats(&self) -> ConnectionStats {
        ConnectionStats {
            rtt: self.rtt,
            packets_in: self.packets_in,
            packets_out: self.packets_out,
            transport_bytes_in: self.bytes_in,
            transport_bytes_out: self.bytes_out,
            selected_candidate_pair: self.pair,
            ..ConnectionStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(kind: u16, id: u8) -> Vec<u8> {
        let mut packet = kind.to_be_bytes().to_vec();
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        packet.extend_from_slice(&[id; 12]);
        packet
    }

    #[test]
    fn an_answered_check_gives_the_round_trip_and_data_the_pair() {
        let (local, remote) = ("10.0.0.1:5000".parse().unwrap(), "10.0.0.2:6000".parse().unwrap());
        let t0 = Instant::now();
        let mut link = LinkFigures::default();
        link.sent(&stun(BINDING_REQUEST, 1), local, remote, t0);
        link.sent(&stun(BINDING_REQUEST, 2), local, remote, t0);
        assert_eq!(link.rtt(), None);
        assert_eq!(link.connection_stats().selected_candidate_pair, None, "checks do not select a pair");
        link.received(&stun(BINDING_SUCCESS, 9), t0 + Duration::from_millis(3));
        assert_eq!(link.rtt(), None, "an answer to no check of ours");
        link.received(&stun(BINDING_SUCCESS, 2), t0 + Duration::from_millis(7));
        assert_eq!(link.rtt(), Some(Duration::from_millis(7)));
        link.received(&stun(BINDING_SUCCESS, 2), t0 + Duration::from_millis(50));
        assert_eq!(link.rtt(), Some(Duration::from_millis(7)), "a repeated answer is not timed again");
        // DTLS (first byte 20..=63) travels on the selected pair.
        link.sent(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], local, remote, t0);
        let stats = link.connection_stats();
        assert_eq!(stats.selected_candidate_pair, Some(CandidatePair::new(local, remote)));
        assert_eq!((stats.packets_out, stats.packets_in), (3, 3));
        assert_eq!(stats.transport_bytes_in, 60);
        // Truncated and garbage datagrams are only counted.
        link.received(&[0, 1, 0], t0);
        link.sent(&[1], local, remote, t0);
    }
}
