//! What the WebRTC stack alone costs (str0m, the slave's and the native
//! client's, with its `rust-crypto` backend; `rtc_cost.rs`, its counterpart
//! for webrtc-rs's `rtc`, is in the history): K pairs of str0m `Rtc`s wired to each other
//! in memory on one thread, playing the same game with the same harness
//! (`support/pair_game.rs`); prints the CPU each side's calls take per
//! message and the heap each end holds, as one JSON line.
//!
//!     cargo run --release --example str0m_cost -- --pairs 200 --seconds 10 [--unreliable]
//!
//! `--unreliable` opens the channel in-band (DCEP), unordered, with no
//! retransmission; rtc_cost negotiated it (the slave's way).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

#[path = "support/pair_game.rs"]
mod pair_game;
#[path = "support/side_heap.rs"]
mod side_heap;

use pair_game::{GameArgs, Tally};
use side_heap::{as_side, CLIENT, SERVER};

/// One end: a str0m `Rtc` and what the harness needs of it.
struct Str0mEnd {
    rtc: Rtc,
    addr: SocketAddr,
    /// Its channel, once open.
    channel: Option<ChannelId>,
}

impl pair_game::End for Str0mEnd {
    type Datagram = Vec<u8>;

    /// str0m takes the time as an input whether or not a timer is due.
    fn tick(&mut self, now: Instant, _due: bool, out: &mut VecDeque<Vec<u8>>, tally: &mut Tally) -> Option<Instant> {
        self.rtc.handle_input(Input::Timeout(now)).expect("a timeout taken");
        self.drive(now, out, tally)
    }

    fn receive(&mut self, now: Instant, source: SocketAddr, datagram: Vec<u8>) {
        let contents = datagram.as_slice().try_into().expect("a datagram str0m knows");
        let receive = Receive { proto: Protocol::Udp, source, destination: self.addr, contents };
        self.rtc.handle_input(Input::Receive(now, receive)).expect("a datagram taken");
    }

    /// Polls until str0m asks for a timeout.
    fn drive(&mut self, _now: Instant, out: &mut VecDeque<Vec<u8>>, tally: &mut Tally) -> Option<Instant> {
        loop {
            match self.rtc.poll_output().expect("an output") {
                Output::Timeout(at) => return Some(at),
                Output::Transmit(t) => {
                    tally.datagrams_out += 1;
                    out.push_back(t.contents.to_vec());
                }
                Output::Event(Event::ChannelOpen(id, _)) => self.channel = Some(id),
                Output::Event(Event::ChannelData(_)) => tally.received += 1,
                Output::Event(_) => {}
            }
        }
    }

    fn send(&mut self, now: Instant, payload: &[u8]) -> bool {
        // str0m takes the time as an input of its own before a write.
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            return false;
        }
        let Some(mut channel) = self.channel.and_then(|id| self.rtc.channel(id)) else { return false };
        channel.write(true, payload).unwrap_or(false)
    }

    fn is_open(&self) -> bool {
        self.channel.is_some()
    }
}

/// A client (offering, as a browser) and a server (answering, as the slave).
fn pair(now: Instant, [client_addr, server_addr]: [SocketAddr; 2], args: &GameArgs) -> [Str0mEnd; 2] {
    let (mut client, offer, pending) = as_side(CLIENT, || {
        let mut client = Rtc::builder().build(now);
        client.add_local_candidate(Candidate::host(client_addr, "udp").expect("a candidate"));
        let mut change = client.sdp_api();
        if args.unreliable {
            change.add_channel_with_config(ChannelConfig {
                label: "game".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                negotiated: None,
                protocol: String::new(),
            });
        } else {
            change.add_channel("game".into());
        }
        let (offer, pending) = change.apply().expect("an offer");
        (client, offer, pending)
    });
    let (server, answer) = as_side(SERVER, || {
        let mut server = Rtc::builder().build(now);
        server.add_local_candidate(Candidate::host(server_addr, "udp").expect("a candidate"));
        let answer = server.sdp_api().accept_offer(offer).expect("an answer");
        (server, answer)
    });
    as_side(CLIENT, || client.sdp_api().accept_answer(pending, answer).expect("the answer taken"));
    let end = |rtc, addr| Str0mEnd { rtc, addr, channel: None };
    [end(client, client_addr), end(server, server_addr)]
}

fn main() {
    let args = GameArgs::parse(|flag, _| Err(format!("unknown option {flag}"))).unwrap_or_else(|e| {
        eprintln!("str0m_cost: {e}");
        std::process::exit(2);
    });
    str0m::crypto::from_feature_flags().install_process_default();
    let figures = pair_game::play(&args, |_, now, addrs| pair(now, addrs, &args));
    println!("{figures}");
}
