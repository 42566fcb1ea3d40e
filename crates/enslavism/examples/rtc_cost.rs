//! What webrtc-rs's sans-I/O core (`rtc`, the slave engine's stack until
//! 0.10; the native client's, through `webrtc`) costs
//! per data-channel message and holds per connection, with no socket, no
//! kernel and no JS: K pairs of `rtc` peer connections wired to each other
//! in memory on one thread, playing a game on a virtual clock
//! (`support/pair_game.rs`). Each end is driven as the slave's shard drives
//! a peer (events, then messages, then datagrams out). The floor under any
//! engine built on `rtc`; `str0m_cost` measures str0m the same way.
//!
//!     cargo run --release --example rtc_cost -- --pairs 200 --seconds 10
//!
//! Options: `--pairs K` (200), `--seconds S` of virtual time (10),
//! `--input-hz` (60) and `--input-size` (100) of the client's inputs,
//! `--state-hz` (30) and `--state-size` (200) of the server's states,
//! `--unreliable` (a negotiated channel, unordered, no retransmission;
//! default ordered and reliable), `--max-message-size` of the server end
//! (65536, the slave's default). Prints one JSON line: per side, the µs of
//! CPU per message sent or received, the datagrams sent, and the heap each
//! end holds once the game ran.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::data_channel::{RTCDataChannelId, RTCDataChannelInit};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::setting_engine::{SctpMaxMessageSize, SettingEngineBuilder};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

#[path = "support/pair_game.rs"]
mod pair_game;
#[path = "support/side_heap.rs"]
mod side_heap;

use pair_game::{GameArgs, Tally};
use side_heap::{as_side, CLIENT, SERVER};

/// One end: an `rtc` peer connection and what the harness needs of it.
struct RtcEnd {
    pc: RTCPeerConnection,
    addr: SocketAddr,
    /// Its channel, once open.
    channel: Option<RTCDataChannelId>,
}

impl pair_game::End for RtcEnd {
    type Datagram = BytesMut;

    fn tick(&mut self, now: Instant, due: bool, out: &mut VecDeque<BytesMut>, tally: &mut Tally) -> Option<Instant> {
        if due {
            let _ = self.pc.handle_timeout(now);
        }
        self.drive(now, out, tally)
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, message: BytesMut) {
        let transport =
            TransportContext { local_addr: self.addr, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP };
        let _ = self.pc.handle_read(TaggedBytesMut { now, transport, message });
    }

    /// One round, as `shard::drive`: events, messages, datagrams out.
    fn drive(&mut self, _now: Instant, out: &mut VecDeque<BytesMut>, tally: &mut Tally) -> Option<Instant> {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) = event {
                self.channel = Some(id);
            }
        }
        while let Some(message) = self.pc.poll_read() {
            if let RTCMessage::DataChannelMessage(..) = message.message {
                tally.received += 1;
            }
        }
        while let Some(datagram) = self.pc.poll_write() {
            tally.datagrams_out += 1;
            out.push_back(datagram.message);
        }
        self.pc.poll_timeout()
    }

    fn send(&mut self, now: Instant, payload: &[u8]) -> bool {
        let Some(mut dc) = self.channel.and_then(|id| self.pc.data_channel(id)) else { return false };
        dc.send(now, BytesMut::from(payload)).is_ok()
    }

    fn is_open(&self) -> bool {
        self.channel.is_some()
    }
}

fn host_candidate(addr: SocketAddr) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: format!("candidate:1 1 udp 2130706431 {} {} typ host", addr.ip(), addr.port()),
        ..Default::default()
    }
}

/// A client (offering, as a browser) and a server (answering, set up as the
/// slave sets its peers up: DTLS server, no mDNS, its max message size).
fn pair(
    now: Instant,
    [client_addr, server_addr]: [SocketAddr; 2],
    args: &GameArgs,
    max_message_size: u32,
) -> Result<[RtcEnd; 2], Error> {
    let build = |server: bool| {
        let mut settings = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled);
        if server {
            settings = settings
                .with_answering_dtls_role(RTCDtlsRole::Server)
                .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(max_message_size));
        }
        RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings.build())
            .build(now)
    };
    let init = args.unreliable.then(|| RTCDataChannelInit {
        ordered: false,
        max_retransmits: Some(0),
        negotiated: Some(256),
        ..Default::default()
    });
    let (mut client, offer) = as_side(CLIENT, || -> Result<_, Error> {
        let mut client = build(false)?;
        client.add_local_candidate(host_candidate(client_addr))?;
        client.add_local_candidate(RTCIceCandidateInit::default())?;
        client.create_data_channel("game", init.clone())?;
        let offer = client.create_offer(None)?;
        client.set_local_description(now, offer.clone())?;
        Ok((client, offer))
    })?;
    let (server, answer) = as_side(SERVER, || -> Result<_, Error> {
        let mut server = build(true)?;
        server.add_local_candidate(host_candidate(server_addr))?;
        server.add_local_candidate(RTCIceCandidateInit::default())?;
        server.set_remote_description(now, offer)?;
        if let Some(init) = init {
            server.create_data_channel("game", Some(init))?;
        }
        let answer = server.create_answer(None)?;
        server.set_local_description(now, answer.clone())?;
        Ok((server, answer))
    })?;
    as_side(CLIENT, || client.set_remote_description(now, answer))?;
    let end = |pc, addr| RtcEnd { pc, addr, channel: None };
    Ok([end(client, client_addr), end(server, server_addr)])
}

fn main() {
    let mut max_message_size = 65536u32;
    let args = GameArgs::parse(|flag, value| match flag {
        "--max-message-size" => {
            max_message_size = value as u32;
            Ok(())
        }
        _ => Err(format!("unknown option {flag}")),
    });
    let args = args.unwrap_or_else(|e| {
        eprintln!("rtc_cost: {e}");
        std::process::exit(2);
    });
    let figures = pair_game::play(&args, |index, now, addrs| {
        pair(now, addrs, &args, max_message_size).unwrap_or_else(|e| panic!("pair {index}: {e}"))
    });
    println!("{figures}");
}
