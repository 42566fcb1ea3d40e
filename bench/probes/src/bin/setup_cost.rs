//! What a data-channel setup costs the answering side (the slave) in
//! str0m, step by step: making the `Rtc` (a shared certificate, as the
//! slave has), taking the offer, then the handshakes (ICE, DTLS, SCTP and
//! the channel's DCEP) until its channel opens. Two `Rtc`s in memory, the
//! real clock, each datagram handed over at once; only the time inside the
//! answerer's own calls counts. Prints medians over SETUPS setups as one
//! JSON line (µs).
//!
//!     CARGO_TARGET_DIR=../../target/probes cargo run --release --bin setup_cost [-- SETUPS]
//!
//! str0m 0.24.1 / dimpl 0.7.6, 2026-12-07, 2-core AMD EPYC: making the
//! `Rtc` 1,040–1,550 µs, the offer 6–27 µs, the handshakes 200–310 µs
//! (medians of 30, over four runs).
//! Under `perf`, the making is dimpl's `Config::build`, which checks its
//! crypto provider (a key exchange on each of P-256, P-384 and X25519, and
//! a signature check) on every build, and str0m's `rust-crypto` backend
//! builds one per connection (doc/upstream.md). The engine builds it once
//! (`crates/enslavism/src/transport/dtls.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use enslavism_probes::ADDRS;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, RtcConfig};

const OFFERER: usize = 0;
const ANSWERER: usize = 1;

/// What one setup cost the answerer, per step.
#[derive(Default)]
struct Steps {
    build: Duration,
    offer: Duration,
    handshakes: Duration,
}

fn setup(config: &RtcConfig) -> Steps {
    let start = Instant::now();
    let mut offerer = config.clone().build(start);
    offerer.add_local_candidate(Candidate::host(ADDRS[OFFERER], "udp").expect("a candidate"));
    let mut change = offerer.sdp_api();
    change.add_channel("setup".into());
    let (offer, pending) = change.apply().expect("an offer");

    let mut steps = Steps::default();
    let t = Instant::now();
    let mut answerer = config.clone().build(start);
    answerer.add_local_candidate(Candidate::host(ADDRS[ANSWERER], "udp").expect("a candidate"));
    steps.build = t.elapsed();
    let t = Instant::now();
    let answer = answerer.sdp_api().accept_offer(offer).expect("an answer");
    steps.offer = t.elapsed();
    offerer.sdp_api().accept_answer(pending, answer).expect("the answer taken");

    let mut rtcs = [offerer, answerer];
    let mut open = [false, false];
    let mut wire: Vec<(usize, Vec<u8>)> = Vec::new();
    while !(open[OFFERER] && open[ANSWERER]) {
        for side in [OFFERER, ANSWERER] {
            let t = Instant::now();
            loop {
                match rtcs[side].poll_output().expect("an output") {
                    Output::Timeout(_) => break,
                    Output::Transmit(x) => wire.push((1 - side, x.contents.to_vec())),
                    Output::Event(Event::ChannelOpen(..)) => open[side] = true,
                    Output::Event(_) => {}
                }
            }
            if side == ANSWERER {
                steps.handshakes += t.elapsed();
            }
        }
        let now = Instant::now();
        if wire.is_empty() {
            for side in [OFFERER, ANSWERER] {
                let t = Instant::now();
                rtcs[side].handle_input(Input::Timeout(now)).expect("a timeout taken");
                if side == ANSWERER {
                    steps.handshakes += t.elapsed();
                }
            }
            continue;
        }
        for (to, contents) in std::mem::take(&mut wire) {
            let t = Instant::now();
            let receive = Receive {
                proto: Protocol::Udp,
                source: ADDRS[1 - to],
                destination: ADDRS[to],
                contents: contents.as_slice().try_into().expect("a datagram str0m reads"),
            };
            rtcs[to].handle_input(Input::Receive(now, receive)).expect("a datagram taken");
            if to == ANSWERER {
                steps.handshakes += t.elapsed();
            }
        }
    }
    steps
}

fn main() {
    let setups: usize = std::env::args().nth(1).map_or(30, |a| a.parse().expect("a number of setups"));
    let provider = str0m::crypto::from_feature_flags();
    let cert = provider.dtls_provider.generate_certificate().expect("a certificate");
    let config = RtcConfig::new().set_crypto_provider(Arc::new(provider)).set_dtls_cert(cert);
    let mut runs: Vec<Steps> = (0..setups).map(|_| setup(&config)).collect();
    let median = |runs: &mut Vec<Steps>, f: fn(&Steps) -> Duration| {
        runs.sort_by_key(f);
        f(&runs[runs.len() / 2]).as_secs_f64() * 1e6
    };
    let build = median(&mut runs, |s| s.build);
    let offer = median(&mut runs, |s| s.offer);
    let handshakes = median(&mut runs, |s| s.handshakes);
    println!(
        "{}",
        serde_json::json!({ "setups": setups, "build_us": build.round(), "offer_us": offer.round(), "handshakes_us": handshakes.round() })
    );
}
