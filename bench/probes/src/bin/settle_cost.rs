//! What a slave pays per message when it drains str0m's output after every
//! received datagram, or only every N of them (`transport::settle_due`).
//!
//! Two str0m `Rtc`s in memory (`negotiated_pair`), one reliable
//! ordered channel. One side (the sender) writes 100-byte messages as fast as
//! str0m takes them; the other (the measured side, the slave) takes each
//! datagram that arrives and drains its output after every N. Only the
//! measured side's calls are timed. Two directions:
//! - `up`: the browser sends, the slave receives (its datagrams carry DATA);
//! - `down`: the slave sends, the browser receives (the slave's datagrams in
//!   are SACKs; it writes while str0m takes, draining after its writes).
//!
//! Prints one JSON line: per N, the slave's CPU µs per message.
//!
//! str0m 0.24.1, 2026-12-07, 200,000 messages, three runs on one core
//! (`taskset -c 1`), and one of 100,000: up 1.0–1.6 µs whatever N; down 3.8–4.7 µs drained
//! after every datagram (each drain walks SCTP's chunks in flight), 2.7–3.2
//! every 4, 1.9–2.3 every 16 (the shard's `RECEIVE_SETTLE`).
//!
//!     CARGO_TARGET_DIR=../../target/probes cargo run --release --bin settle_cost [-- MESSAGES [up|down [N]]]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enslavism_probes::{negotiated_pair, ADDRS};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};

const SLAVE: usize = 1;
const BROWSER: usize = 0;
const MESSAGE: [u8; 100] = [7; 100];
/// Messages the sender writes per turn at most: about 30 datagrams, what one
/// read of the slave's socket takes (32).
const BATCH: usize = 330;

struct Pair {
    rtcs: [Rtc; 2],
    addrs: [SocketAddr; 2],
    channel: [Option<ChannelId>; 2],
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let start = Instant::now();
        // The browser offers, the slave answers.
        Pair { rtcs: negotiated_pair(start, "probe"), addrs: ADDRS, channel: [None, None], now: start }
    }
}

/// Drains one side's output: datagrams onto `wire` (to the other side),
/// received messages counted; returns str0m's next timeout.
fn drain(pair: &mut Pair, side: usize, wire: &mut VecDeque<Vec<u8>>, received: &mut u64) -> Instant {
    loop {
        match pair.rtcs[side].poll_output().expect("an output") {
            Output::Timeout(at) => return at,
            Output::Transmit(t) => wire.push_back(t.contents.to_vec()),
            Output::Event(Event::ChannelOpen(id, _)) => pair.channel[side] = Some(id),
            Output::Event(Event::ChannelData(_)) => *received += 1,
            Output::Event(_) => {}
        }
    }
}

fn receive(pair: &mut Pair, to: usize, datagram: &[u8]) {
    let receive = Receive {
        proto: Protocol::Udp,
        source: pair.addrs[1 - to],
        destination: pair.addrs[to],
        contents: datagram.try_into().expect("a datagram str0m reads"),
    };
    pair.rtcs[to].handle_input(Input::Receive(pair.now, receive)).expect("a datagram taken");
}

/// Runs `messages` from `sender` to the other side; the slave drains after
/// every `every` datagrams it takes. Returns the slave's CPU µs per message.
fn run(sender: usize, every: usize, messages: u64) -> f64 {
    let mut pair = Pair::new();
    // wires[side]: datagrams on their way to `side`.
    let mut wires: [VecDeque<Vec<u8>>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut received = [0u64; 2];
    let mut written = 0u64;
    let mut slave_time = Duration::ZERO;
    let mut deadlines = [pair.now; 2];
    let mut steps = 0u64;
    let receiver = 1 - sender;
    while received[receiver] < messages {
        steps += 1;
        assert!(steps < 50_000_000, "no progress");
        for side in [BROWSER, SLAVE] {
            let timed = Instant::now();
            let mut out = VecDeque::new();
            // The sender writes while str0m takes (a bounded batch per turn).
            if side == sender && written < messages {
                if let Some(id) = pair.channel[side] {
                    let mut dc = pair.rtcs[side].channel(id).expect("the channel");
                    for _ in 0..BATCH {
                        if written == messages || dc.buffered_amount() > 32 * 1024 || !dc.write(true, &MESSAGE).expect("a write")
                        {
                            break;
                        }
                        written += 1;
                    }
                }
            }
            // What arrived, N datagrams per drain on the slave (1 on the browser).
            let n = if side == SLAVE { every } else { 1 };
            let mut taken = 0;
            while let Some(datagram) = wires[side].pop_front() {
                receive(&mut pair, side, &datagram);
                taken += 1;
                if taken % n == 0 {
                    deadlines[side] = drain(&mut pair, side, &mut out, &mut received[side]);
                }
            }
            deadlines[side] = drain(&mut pair, side, &mut out, &mut received[side]);
            if side == SLAVE {
                slave_time += timed.elapsed();
            }
            wires[1 - side].extend(out);
        }
        if wires.iter().all(VecDeque::is_empty) {
            // Nothing on the wire: on to the next timer (virtual time).
            pair.now = pair.now.max(*deadlines.iter().min().expect("two")).max(pair.now + Duration::from_micros(100));
            for rtc in &mut pair.rtcs {
                rtc.handle_input(Input::Timeout(pair.now)).expect("a timeout");
            }
        } else {
            pair.now += Duration::from_micros(50);
            for side in [BROWSER, SLAVE] {
                if deadlines[side] <= pair.now {
                    pair.rtcs[side].handle_input(Input::Timeout(pair.now)).expect("a timeout");
                }
            }
        }
    }
    slave_time.as_secs_f64() * 1e6 / messages as f64
}

fn main() {
    str0m::crypto::from_feature_flags().install_process_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let messages: u64 = args.first().map_or(200_000, |a| a.parse().expect("a count"));
    // Optional: one direction (`up` or `down`) and one N, to profile one case.
    let only = args.get(1).map(String::as_str);
    let everies: Vec<usize> = args.get(2).map_or(vec![1, 4, 16], |n| vec![n.parse().expect("N")]);
    let mut out = serde_json::Map::new();
    for (name, sender) in [("up", BROWSER), ("down", SLAVE)] {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let mut row = serde_json::Map::new();
        for &every in &everies {
            let us = run(sender, every, messages);
            row.insert(format!("every_{every}"), serde_json::json!((us * 100.0).round() / 100.0));
        }
        out.insert(name.into(), serde_json::Value::Object(row));
    }
    println!("{}", serde_json::Value::Object(out));
}
