//! An in-memory game between K pairs of WebRTC ends, for measuring a
//! sans-I/O stack with no socket, no kernel and no JS: one thread, a
//! virtual clock in 1 ms steps, datagrams carried from one end to the other
//! as soon as they are out. The client of each pair sends an input at
//! `--input-hz`, the server a state at `--state-hz`, both on one data
//! channel; the CPU time of each side's calls and the heap each side holds
//! (`side_heap`) are reported per message and per end. Used by
//! `str0m_cost.rs`; `rtc_cost.rs` measured webrtc-rs's `rtc` with it the
//! same way, until that dependency went.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::side_heap::{as_side, held, CLIENT, SERVER};

/// One end of a pair, as a stack drives it.
pub trait End {
    /// A datagram as the stack hands it out.
    type Datagram;
    /// Runs the timers if `due`, then what `drive` does.
    fn tick(&mut self, now: Instant, due: bool, out: &mut VecDeque<Self::Datagram>, tally: &mut Tally) -> Option<Instant>;
    /// Takes a datagram from `from`.
    fn receive(&mut self, now: Instant, from: SocketAddr, datagram: Self::Datagram);
    /// Takes the events and messages waiting, puts the datagrams to send in
    /// `out`, and returns when its next timer is due.
    fn drive(&mut self, now: Instant, out: &mut VecDeque<Self::Datagram>, tally: &mut Tally) -> Option<Instant>;
    /// Sends a message on the channel if it is open; whether it was taken.
    fn send(&mut self, now: Instant, payload: &[u8]) -> bool;
    /// Whether its channel is open.
    fn is_open(&self) -> bool;
}

/// What one side of every pair adds up.
#[derive(Default)]
pub struct Tally {
    /// CPU time (wall time on a pinned, otherwise idle core) in the side's calls.
    pub busy: Duration,
    /// Messages its channel took.
    pub sent: u64,
    /// Messages it received.
    pub received: u64,
    /// Datagrams it handed out.
    pub datagrams_out: u64,
}

/// The game's settings.
pub struct GameArgs {
    /// Pairs of ends.
    pub pairs: usize,
    /// Virtual seconds of game after every channel is open.
    pub seconds: f64,
    /// The client's inputs: rate and size.
    pub input_hz: f64,
    pub input_size: usize,
    /// The server's states: rate and size.
    pub state_hz: f64,
    pub state_size: usize,
    /// An unordered channel without retransmissions instead of a reliable one.
    pub unreliable: bool,
}

impl GameArgs {
    /// Reads `--pairs K` (200), `--seconds S` of virtual time (10),
    /// `--input-hz` (60), `--input-size` (100), `--state-hz` (30),
    /// `--state-size` (200) and `--unreliable`; a flag it does not know goes
    /// to `extra` with its value.
    pub fn parse(mut extra: impl FnMut(&str, f64) -> Result<(), String>) -> Result<GameArgs, String> {
        let mut args = GameArgs {
            pairs: 200,
            seconds: 10.0,
            input_hz: 60.0,
            input_size: 100,
            state_hz: 30.0,
            state_size: 200,
            unreliable: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--unreliable" {
                args.unreliable = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = value.parse::<f64>().map_err(|_| format!("{flag}: {value:?} is not a number"))?;
            if !(number.is_finite() && number > 0.0) {
                return Err(format!("{flag} must be > 0"));
            }
            match flag.as_str() {
                "--pairs" => args.pairs = number as usize,
                "--seconds" => args.seconds = number,
                "--input-hz" => args.input_hz = number,
                "--input-size" => args.input_size = number as usize,
                "--state-hz" => args.state_hz = number,
                "--state-size" => args.state_size = number as usize,
                _ => extra(&flag, number)?,
            }
        }
        Ok(args)
    }
}

/// The addresses of pair `index`'s client and server (203.0.113.0/24, for
/// documentation: never dialled, the datagrams go in memory).
fn addresses(index: usize) -> [SocketAddr; 2] {
    let port = 10_000 + (index % 50_000) as u16;
    [SocketAddr::from(([203, 0, 113, 1], port)), SocketAddr::from(([203, 0, 113, 2], port))]
}

/// A client (the offerer, as a browser) and a server (the answerer, as the slave).
struct Pair<E> {
    ends: [E; 2],
    addrs: [SocketAddr; 2],
    /// When each end's next timer is due.
    deadlines: [Option<Instant>; 2],
}

impl<E: End> Pair<E> {
    /// Runs the due timers and the kicked sides, then carries datagrams both
    /// ways until none is left, timing each side's calls.
    fn settle(&mut self, now: Instant, tallies: &mut [Tally; 2], kick: [bool; 2]) {
        let mut queues = [VecDeque::new(), VecDeque::new()];
        for side in [CLIENT, SERVER] {
            let (end, deadline) = (&mut self.ends[side], &mut self.deadlines[side]);
            let due = deadline.is_some_and(|at| at <= now);
            if kick[side] || due {
                let started = Instant::now();
                *deadline = as_side(side, || end.tick(now, due, &mut queues[side], &mut tallies[side]));
                tallies[side].busy += started.elapsed();
            }
        }
        // Bounded: a pair that kept talking forever would be a bug here.
        for _ in 0..64 {
            if queues.iter().all(VecDeque::is_empty) {
                return;
            }
            for from in [CLIENT, SERVER] {
                let to = 1 - from;
                if queues[from].is_empty() {
                    continue;
                }
                let source = self.addrs[from];
                let datagrams = std::mem::take(&mut queues[from]);
                let (receiver, queue, tally) = (&mut self.ends[to], &mut queues[to], &mut tallies[to]);
                let started = Instant::now();
                self.deadlines[to] = as_side(to, || {
                    for datagram in datagrams {
                        receiver.receive(now, source, datagram);
                    }
                    receiver.drive(now, queue, tally)
                });
                tally.busy += started.elapsed();
            }
        }
    }
}

/// Makes the pairs (`make(index, now, [client, server addresses])` gives a
/// client and a server that have exchanged offer and answer, each made in
/// an `as_side` call of its own), connects them, plays the game and returns
/// the figures as JSON.
pub fn play<E: End>(args: &GameArgs, mut make: impl FnMut(usize, Instant, [SocketAddr; 2]) -> [E; 2]) -> serde_json::Value {
    let start = Instant::now();
    let mut now = start;
    let mut pairs: Vec<Pair<E>> = (0..args.pairs)
        .map(|i| {
            let addrs = addresses(i);
            Pair { ends: make(i, now, addrs), addrs, deadlines: [None; 2] }
        })
        .collect();
    let step = Duration::from_millis(1);
    let mut setup = [Tally::default(), Tally::default()];
    let all_open = |pairs: &[Pair<E>]| pairs.iter().filter(|p| p.ends.iter().all(End::is_open)).count();
    for pair in &mut pairs {
        pair.settle(now, &mut setup, [true, true]);
    }
    // Ten virtual seconds at most.
    for _ in 0..10_000 {
        if all_open(&pairs) == pairs.len() {
            break;
        }
        now += step;
        for pair in &mut pairs {
            pair.settle(now, &mut setup, [false, false]);
        }
    }
    let open = all_open(&pairs);
    let connected_in = now - start;
    // The game: client inputs, server states, pairs staggered over the input period.
    let payloads = [vec![7u8; args.input_size], vec![9u8; args.state_size]];
    let every = [Duration::from_secs_f64(1.0 / args.input_hz), Duration::from_secs_f64(1.0 / args.state_hz)];
    let game_start = now;
    let mut next: Vec<[Instant; 2]> = (0..pairs.len())
        .map(|i| {
            let offset = every[CLIENT].mul_f64(i as f64 / pairs.len() as f64);
            [game_start + offset; 2]
        })
        .collect();
    let mut tallies = [Tally::default(), Tally::default()];
    let end = game_start + Duration::from_secs_f64(args.seconds);
    while now < end {
        now += step;
        for (pair, next) in pairs.iter_mut().zip(&mut next) {
            let mut kick = [false, false];
            for side in [CLIENT, SERVER] {
                if next[side] <= now {
                    let (end, payload) = (&mut pair.ends[side], &payloads[side]);
                    let started = Instant::now();
                    if as_side(side, || end.send(now, payload)) {
                        tallies[side].sent += 1;
                    }
                    tallies[side].busy += started.elapsed();
                    next[side] += every[side];
                    kick[side] = true;
                }
            }
            pair.settle(now, &mut tallies, kick);
        }
    }
    let figures = |side: usize| {
        let t = &tallies[side];
        let messages = (t.sent + t.received).max(1);
        let held = held(side) as f64 / pairs.len() as f64;
        serde_json::json!({
            "heap_kb_per_end": (held / 102.4).round() / 10.0,
            "sent": t.sent,
            "received": t.received,
            "datagrams_out": t.datagrams_out,
            "cpu_ms": (t.busy.as_secs_f64() * 1e4).round() / 10.0,
            "us_per_message": (t.busy.as_secs_f64() * 1e7 / messages as f64).round() / 10.0,
        })
    };
    serde_json::json!({
        "pairs": args.pairs,
        "open": open,
        "channel": if args.unreliable { "unreliable" } else { "reliable" },
        "virtual_connect_ms": connected_in.as_millis() as u64,
        "virtual_seconds": args.seconds,
        "client": figures(CLIENT),
        "server": figures(SERVER),
    })
}
