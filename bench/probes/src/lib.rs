//! What the probes share.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::{Candidate, Rtc};

/// The two sides' addresses: documentation ones, never dialled (the
/// datagrams go from one `Rtc` to the other in memory).
pub const ADDRS: [SocketAddr; 2] = [
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1)), 5000),
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 2)), 5000),
];

/// Two str0m `Rtc`s made at `start`, negotiated and not yet connected: `[0]`
/// offered a data channel labelled `label` (as a browser does), `[1]`
/// answered (as the slave does).
pub fn negotiated_pair(start: Instant, label: &str) -> [Rtc; 2] {
    let mut offerer = Rtc::builder().build(start);
    offerer.add_local_candidate(Candidate::host(ADDRS[0], "udp").expect("a candidate"));
    let mut change = offerer.sdp_api();
    change.add_channel(label.into());
    let (offer, pending) = change.apply().expect("an offer");
    let mut answerer = Rtc::builder().build(start);
    answerer.add_local_candidate(Candidate::host(ADDRS[1], "udp").expect("a candidate"));
    let answer = answerer.sdp_api().accept_offer(offer).expect("an answer");
    offerer.sdp_api().accept_answer(pending, answer).expect("the answer taken");
    [offerer, answerer]
}
