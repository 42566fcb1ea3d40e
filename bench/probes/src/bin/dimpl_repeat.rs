//! Does a DTLS record delivered twice stall str0m's handshake (dimpl)?
//! (doc/upstream.md, "dimpl (str0m's DTLS): a flight and its copy taken
//! before a poll stall the handshake".)
//!
//! Two str0m `Rtc`s in memory on a virtual clock (nothing is sent on a
//! network: the addresses are documentation ones), with a one-way delay:
//! one offers a data channel, the other answers. Each case delivers every
//! datagram once, except that the DTLS datagrams (first byte 20..=63) of
//! one side arrive twice, back to back. Everything that has arrived is
//! handed in before the receiver is polled again, as from a socket read in
//! batches. It prints, per case, the virtual time until the channel opens
//! on each side, as one JSON line.
//!
//!     CARGO_TARGET_DIR=../../target/probes cargo run --release --bin dimpl_repeat [-- DELAY_MS]
//!
//! str0m 0.24.1 / dimpl 0.7.6, 2026-12-07, delays 0, 0.1 and 1 ms: with
//! the offerer's datagrams doubled, 2,734 / 3,465 / 3,366 ms to open;
//! otherwise 0 / 1 / 12 ms. Polled after each datagram instead, no case
//! stalls.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enslavism_probes::{negotiated_pair, ADDRS};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};

/// Virtual time a case may take before it counts as stalled for good.
const LIMIT: Duration = Duration::from_secs(30);

const OFFERER: usize = 0;
const ANSWERER: usize = 1;

/// When each side saw its channel open, counted from the start (the offer and
/// answer take no virtual time).
struct Outcome {
    open: [Option<Duration>; 2],
}

/// Connects an offerer and an answerer; `repeat` names the side whose
/// handshake datagrams arrive twice.
fn run(repeat: Option<usize>, delay: Duration) -> Outcome {
    let start = Instant::now();
    let addrs = ADDRS;
    let mut rtcs = negotiated_pair(start, "repro");

    let mut now = start;
    let mut open = [None, None];
    // Datagrams on their way: (arrival, to, from, contents), in order.
    let mut wire: VecDeque<(Instant, usize, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut deadlines = [start, start];
    while now - start < LIMIT && open.iter().any(Option::is_none) {
        for side in [OFFERER, ANSWERER] {
            loop {
                match rtcs[side].poll_output().expect("an output") {
                    Output::Timeout(at) => {
                        deadlines[side] = at;
                        break;
                    }
                    Output::Transmit(t) => {
                        let copies =
                            if repeat == Some(side) && t.contents.first().is_some_and(|b| (20..=63).contains(b)) { 2 } else { 1 };
                        for _ in 0..copies {
                            wire.push_back((now + delay, 1 - side, addrs[side], t.contents.to_vec()));
                        }
                    }
                    Output::Event(Event::ChannelOpen(..)) => {
                        open[side].get_or_insert(now - start);
                    }
                    Output::Event(_) => {}
                }
            }
        }
        let next_timer = *deadlines.iter().min().expect("two sides");
        if wire.front().is_some_and(|(at, ..)| *at <= next_timer) {
            // Everything that has arrived by then is read before either side
            // is polled again, as from a socket read in batches.
            now = now.max(wire.front().expect("checked").0);
            while wire.front().is_some_and(|(at, ..)| *at <= now) {
                let (_, to, from, contents) = wire.pop_front().expect("checked");
                let receive = Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: addrs[to],
                    contents: contents.as_slice().try_into().expect("a datagram str0m reads"),
                };
                rtcs[to].handle_input(Input::Receive(now, receive)).expect("a datagram taken");
            }
            continue;
        }
        // Nothing arrives before it: on to the next timer.
        now = now.max(next_timer);
        for rtc in &mut rtcs {
            rtc.handle_input(Input::Timeout(now)).expect("a timeout taken");
        }
    }
    Outcome { open }
}

fn main() {
    str0m::crypto::from_feature_flags().install_process_default();
    let ms = |d: Option<Duration>| d.map_or(serde_json::Value::Null, |d| serde_json::json!(d.as_millis()));
    let mut cases = serde_json::Map::new();
    // One-way delay of the in-memory link (ms, fractional), default 0.1.
    let delay_ms: f64 = std::env::args().nth(1).map_or(0.1, |a| a.parse().expect("a delay in ms"));
    let delay = Duration::from_secs_f64(delay_ms / 1000.0);
    for (name, repeat) in [("once", None), ("offerer_repeated", Some(OFFERER)), ("answerer_repeated", Some(ANSWERER))] {
        let outcome = run(repeat, delay);
        cases.insert(
            name.into(),
            serde_json::json!({ "offerer_open_ms": ms(outcome.open[OFFERER]), "answerer_open_ms": ms(outcome.open[ANSWERER]) }),
        );
    }
    println!("{}", serde_json::Value::Object(cases));
}
