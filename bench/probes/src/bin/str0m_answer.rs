//! Does str0m (pure-Rust crypto) answer a libwebrtc or Chromium peer the way
//! the slave must? A one-connection echo server on one UDP socket: reads
//! an offer (one line of JSON: a string) on stdin, creates the negotiated
//! channels listed as `a=x-negotiated:ID` lines (an id per line), prints the
//! answer (one line of JSON) on stdout, then echoes every message on every
//! channel until stdin closes or 30 s pass. `bench/probes/interop.js`
//! drives it from libwebrtc (`@roamhq/wrtc`).
//!
//!     str0m_answer BIND_ADDRESS     (an IP of the test's namespace)
//!
//! With `RUST_LOG` set (`str0m=debug`), str0m's steps go to stderr.

use std::io::BufRead;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::channel::{ChannelConfig, Reliability};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

fn main() {
    let bind: std::net::IpAddr = std::env::args().nth(1).expect("a bind address").parse().expect("an IP");
    if std::env::var_os("RUST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::from_default_env();
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    str0m::crypto::from_feature_flags().install_process_default();
    let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).expect("a socket");
    let local = socket.local_addr().expect("its address");
    // Made before the offer is read: the time taken (about 48 ms here, most
    // of it the DTLS key made per `Rtc`) is not the connection's; a slave
    // would share one certificate between its peers.
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("a candidate"));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("an offer");
    let offer_sdp: String = serde_json::from_str(&line).expect("a JSON string");
    let negotiated: Vec<u16> =
        offer_sdp.lines().filter_map(|l| l.trim_end().strip_prefix("a=x-negotiated:")).filter_map(|id| id.parse().ok()).collect();
    let offer = SdpOffer::from_sdp_string(&offer_sdp).expect("an offer str0m reads");
    let answer = rtc.sdp_api().accept_offer(offer).expect("an answer");
    for id in &negotiated {
        rtc.direct_api().create_data_channel(ChannelConfig {
            label: format!("negotiated-{id}"),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            negotiated: Some(*id),
            protocol: String::new(),
        });
    }
    println!("{}", serde_json::to_string(&answer.to_sdp_string()).expect("JSON"));
    let closed = Arc::new(AtomicBool::new(false));
    {
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while matches!(std::io::stdin().lock().read_line(&mut sink), Ok(n) if n > 0) {}
            closed.store(true, Ordering::Relaxed);
        });
    }
    let end = Instant::now() + Duration::from_secs(30);
    let mut buffer = vec![0u8; 2048];
    let (mut echoed, mut opened) = (0u64, 0u64);
    while !closed.load(Ordering::Relaxed) && Instant::now() < end {
        let timeout = loop {
            match rtc.poll_output().expect("an output") {
                Output::Timeout(at) => break at,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::ChannelOpen(id, label)) => {
                    opened += 1;
                    eprintln!("str0m_answer: channel {id:?} {label:?} open");
                }
                Output::Event(Event::ChannelData(data)) => {
                    if let Some(mut channel) = rtc.channel(data.id) {
                        if channel.write(data.binary, &data.data).is_ok() {
                            echoed += 1;
                        }
                    }
                }
                Output::Event(Event::IceConnectionStateChange(state)) => eprintln!("str0m_answer: ICE {state:?}"),
                Output::Event(_) => {}
            }
        };
        let wait = timeout.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), Duration::from_millis(100));
        socket.set_read_timeout(Some(wait)).expect("a timeout");
        let input = match socket.recv_from(&mut buffer) {
            Ok((n, source)) => match buffer[..n].try_into() {
                Ok(contents) => {
                    Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents })
                }
                Err(_) => continue,
            },
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).expect("an input taken");
    }
    eprintln!("str0m_answer: {opened} channels opened, {echoed} messages echoed");
}
