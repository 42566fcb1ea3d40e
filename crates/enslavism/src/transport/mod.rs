//! What the slave's shards and the client's connections share to drive
//! str0m: host addresses, one crypto and certificate, the drain of str0m's
//! output, and asking STUN servers for a server-reflexive address.

mod dtls;
pub(crate) mod host;
pub(crate) mod reflexive;
pub(crate) mod stun;

use std::sync::Arc;
use std::time::Instant;

use str0m::config::{CryptoProvider, DtlsCert};
use str0m::{Output, Rtc, RtcConfig, RtcError};

/// What every peer connection of a slave (or of a client) shares: its
/// crypto (str0m's `rust-crypto` backend: no system library to install) and
/// its DTLS certificate (str0m makes one per peer otherwise: a key
/// generation per connection, 48 ms measured), with its DTLS configured
/// once ([`dtls`]).
#[derive(Clone)]
pub(crate) struct SharedCrypto {
    provider: Arc<CryptoProvider>,
    certificate: Option<DtlsCert>,
}

impl SharedCrypto {
    pub(crate) fn new() -> Self {
        let provider = dtls::with_prebuilt_dtls(str0m::crypto::from_feature_flags());
        let certificate = provider.dtls_provider.generate_certificate();
        if certificate.is_none() {
            // Each peer connection then makes its own.
            tracing::warn!("cannot make a shared DTLS certificate");
        }
        SharedCrypto { provider: Arc::new(provider), certificate }
    }

    /// str0m's settings with this crypto and certificate.
    pub(crate) fn rtc_config(&self) -> RtcConfig {
        let config = RtcConfig::new().set_crypto_provider(self.provider.clone());
        match &self.certificate {
            Some(certificate) => config.set_dtls_cert(certificate.clone()),
            None => config,
        }
    }
}

/// Drains what the last mutation of `rtc` produced into `pending`, up to its
/// next timeout, which it returns. str0m's one contract: every mutation
/// (an input, a write, a negotiation step, a candidate) is followed by a
/// full drain of `poll_output` before the next one; skipping it loses
/// datagrams (dimpl keeps 30 received DTLS records, and hands them on only
/// when polled).
pub(crate) fn settle(rtc: &mut Rtc, pending: &mut Vec<Output>) -> Result<Instant, RtcError> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(at) => return Ok(at),
            output => pending.push(output),
        }
    }
}

/// Received datagrams a set-up connection hands str0m before its output
/// is drained, within one read of the socket. Drained after each datagram,
/// as the contract asks, a shard spent more on the drains than they saved
/// (each walks SCTP's chunks in flight: in memory, a sender of 100-byte
/// messages spent 3.8–4.7 µs per message against 1.9–2.3, and a receiver
/// the same either way; `bench/probes/src/bin/settle_cost.rs`); past 30
/// DTLS records dimpl drops the next ones.
const RECEIVE_SETTLE: u16 = 16;

/// Whether the datagrams handed to str0m since the last drain (`unsettled`)
/// call for a drain now. Until the connection is `set_up`, after each one:
/// a DTLS flight and its copy (a retransmission, or one of ours) taken in
/// one batch stalled the handshake until a flight timer, 2.5–10 s
/// (`bench/probes/src/bin/dimpl_repeat.rs` shows it on str0m alone).
pub(crate) fn settle_due(unsettled: u16, set_up: bool) -> bool {
    !set_up || unsettled >= RECEIVE_SETTLE
}

/// Says once per process that an empty message was dropped: given one,
/// str0m asks sctp-proto to send zero bytes, which makes no chunk (RFC 8831
/// wants one zero byte) but takes a stream sequence number, so an ordered
/// channel waited for it forever (doc/upstream.md); the engines drop it
/// instead. A message the other end never gets should not go unheard of;
/// once is enough to find the cause.
pub(crate) fn empty_message_dropped() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!("an empty message was dropped (the WebRTC stack cannot send one yet); later ones are not reported")
    });
}

/// A failed socket read or write that says nothing of the socket itself:
/// an ICMP error for an earlier datagram (Linux reports them on the next
/// call), or an interruption. The next call goes on.
pub(crate) fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::Interrupted)
        || e.raw_os_error() == Some(113) // EHOSTUNREACH
        || e.raw_os_error() == Some(101) // ENETUNREACH
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::time::Duration;
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input};

    /// Two `Rtc`s in memory on a virtual clock; every DTLS datagram of the
    /// offerer (the DTLS client, as a browser) arrives twice, and the
    /// answerer (the slave) takes what has arrived as a shard does,
    /// draining when `settle_due` says. Returns the virtual time until the
    /// answerer's channel opened. (Drained every 16 datagrams from the
    /// start, it took 2.7 s in `bench/probes/src/bin/dimpl_repeat.rs`.)
    fn answerer_open_with_doubled_offerer() -> Duration {
        const OFFERER: usize = 0;
        const ANSWERER: usize = 1;
        let crypto = SharedCrypto::new();
        let start = Instant::now();
        let addrs: [SocketAddr; 2] = ["203.0.113.1:5000".parse().unwrap(), "203.0.113.2:5000".parse().unwrap()];
        let mut offerer = crypto.rtc_config().build(start);
        offerer.add_local_candidate(Candidate::host(addrs[OFFERER], "udp").unwrap());
        let mut change = offerer.sdp_api();
        change.add_channel("setup".into());
        let (offer, pending) = change.apply().unwrap();
        let mut answerer = crypto.rtc_config().build(start);
        answerer.add_local_candidate(Candidate::host(addrs[ANSWERER], "udp").unwrap());
        let answer = answerer.sdp_api().accept_offer(offer).unwrap();
        offerer.sdp_api().accept_answer(pending, answer).unwrap();
        let mut rtcs = [offerer, answerer];
        let mut now = start;
        // Datagrams on their way to each side, and each side's next timer.
        let mut wire: [VecDeque<Vec<u8>>; 2] = Default::default();
        let mut next = [start, start];
        let opened = std::cell::Cell::new(false);
        // Drains a side into the wire (the offerer's DTLS datagrams twice).
        let drain = |side: usize, rtc: &mut Rtc, wire: &mut [VecDeque<Vec<u8>>; 2], next: &mut [Instant; 2]| {
            let mut out = Vec::new();
            next[side] = settle(rtc, &mut out).unwrap();
            for output in out {
                match output {
                    Output::Transmit(t) => {
                        let copies = if side == OFFERER && (20..=63).contains(&t.contents[0]) { 2 } else { 1 };
                        (0..copies).for_each(|_| wire[1 - side].push_back(t.contents.to_vec()));
                    }
                    Output::Event(Event::ChannelOpen(..)) if side == ANSWERER => opened.set(true),
                    _ => {}
                }
            }
        };
        for (side, rtc) in rtcs.iter_mut().enumerate() {
            drain(side, rtc, &mut wire, &mut next);
        }
        while now - start < Duration::from_secs(30) {
            if wire.iter().all(VecDeque::is_empty) {
                now = now.max(next[OFFERER].min(next[ANSWERER]));
                for (side, rtc) in rtcs.iter_mut().enumerate() {
                    rtc.handle_input(Input::Timeout(now)).unwrap();
                    drain(side, rtc, &mut wire, &mut next);
                }
                continue;
            }
            // The offerer is drained after each datagram; the answerer takes
            // all that has arrived, as from one socket read, and is drained
            // when `settle_due` says, and at the end of the read.
            for side in [OFFERER, ANSWERER] {
                let from = addrs[1 - side];
                let mut unsettled = 0;
                for datagram in std::mem::take(&mut wire[side]) {
                    let receive = Receive::new(Protocol::Udp, from, addrs[side], &datagram).unwrap();
                    rtcs[side].handle_input(Input::Receive(now, receive)).unwrap();
                    unsettled += 1;
                    if side == OFFERER || settle_due(unsettled, false) {
                        unsettled = 0;
                        drain(side, &mut rtcs[side], &mut wire, &mut next);
                    }
                }
                drain(side, &mut rtcs[side], &mut wire, &mut next);
            }
            if opened.get() {
                return now - start;
            }
        }
        Duration::MAX
    }

    #[test]
    fn a_flight_and_its_copy_do_not_stall_a_setup() {
        let open = answerer_open_with_doubled_offerer();
        assert!(open < Duration::from_millis(100), "the channel opened after {open:?} of virtual time");
    }
}
