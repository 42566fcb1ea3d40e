//! Takes ~50 ms off every browser connection's setup, and reads the STUN
//! fields the shard routes first packets by.
//!
//! The browser (ICE controlling side) sends its first connectivity check with
//! USE-CANDIDATE at once. webrtc-rs 0.21.1 (rtc-ice, controlled side) ignores
//! a nominating check on a pair that has not succeeded yet, and does not
//! answer it; the browser only retries after its ~50 ms check interval, and
//! ICE, then DTLS and SCTP, wait for it.
//!
//! Each peer remembers the first USE-CANDIDATE binding request its browser
//! sends, and when the first binding success response arrives from that
//! address (the pair has succeeded on our side), the shard hands the peer an
//! identical copy of the remembered request right after it. The agent then
//! nominates the pair and answers at once. It fires at most once per peer, is
//! a STUN retransmission as far as both agents are concerned, and does
//! nothing once the crate answers such checks itself.

use std::net::SocketAddr;

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_USERNAME: u16 = 0x0006;

/// What a datagram is, as far as the nudge cares.
#[derive(Debug, PartialEq, Eq)]
enum Stun {
    NominatingRequest,
    SuccessResponse,
    Other,
}

/// Classifies a datagram; anything that is not well-formed STUN is `Other`.
fn classify(packet: &[u8]) -> Stun {
    if packet.len() < STUN_HEADER_LEN || packet[4..8] != STUN_MAGIC_COOKIE || packet[0] & 0xc0 != 0 {
        return Stun::Other;
    }
    let msg_type = u16::from_be_bytes([packet[0], packet[1]]);
    let body_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let Some(body) = packet.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len) else {
        return Stun::Other;
    };
    match msg_type {
        BINDING_SUCCESS => Stun::SuccessResponse,
        BINDING_REQUEST if has_attribute(body, ATTR_USE_CANDIDATE) => Stun::NominatingRequest,
        _ => Stun::Other,
    }
}

fn has_attribute(attrs: &[u8], wanted: u16) -> bool {
    attribute(attrs, wanted).is_some()
}

/// The value of the first attribute of type `wanted`.
fn attribute(mut attrs: &[u8], wanted: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        if kind == wanted {
            return attrs.get(4..4 + len);
        }
        let padded = 4 + len.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

/// The local ufrag (before ':') of a STUN Binding request's USERNAME: whose
/// check this is, for a datagram from an address no peer has used yet. Read
/// in place; `None` for anything else.
pub(crate) fn binding_request_ufrag(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < STUN_HEADER_LEN || packet[4..8] != STUN_MAGIC_COOKIE || packet[0] & 0xc0 != 0 {
        return None;
    }
    if u16::from_be_bytes([packet[0], packet[1]]) != BINDING_REQUEST {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let username = attribute(packet.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?, ATTR_USERNAME)?;
    username.split(|b| *b == b':').next()
}

/// One peer's nudge.
#[derive(Debug, Default)]
pub(crate) struct NudgeState {
    /// The peer's first nominating check, not answered yet.
    remembered: Option<(SocketAddr, Vec<u8>)>,
    /// The copy to hand the driver on its next receive.
    ready: Option<(SocketAddr, Vec<u8>)>,
    done: bool,
}

impl NudgeState {
    /// Looks at one received datagram; true when a replay is ready (take it with [`NudgeState::take_replay`]).
    pub(crate) fn observe(&mut self, from: SocketAddr, packet: &[u8]) -> bool {
        if self.done {
            return false;
        }
        match classify(packet) {
            Stun::NominatingRequest if self.remembered.is_none() => {
                tracing::trace!(%from, "remembering the first nominating check");
                self.remembered = Some((from, packet.to_vec()));
                false
            }
            Stun::SuccessResponse if self.remembered.as_ref().is_some_and(|(addr, _)| *addr == from) => {
                tracing::trace!(%from, "replaying the nominating check");
                self.ready = self.remembered.take();
                self.done = true;
                true
            }
            _ => false,
        }
    }
}

impl NudgeState {
    /// The copy of the nominating check to hand the peer now, once.
    pub(crate) fn take_replay(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.ready.take()
    }
}

/// Feeds datagrams from one of two senders through a fresh nudge state and
/// checks what must hold for any traffic: at most one replay, and only of a
/// nominating check, to the sender it came from. For the fuzz targets.
#[cfg(any(test, fuzzing))]
pub(crate) fn observe_sequence(datagrams: &[(bool, &[u8])]) {
    let senders: [SocketAddr; 2] = [([127, 0, 0, 1], 1000).into(), ([127, 0, 0, 2], 2000).into()];
    let mut state = NudgeState::default();
    let mut replays = 0;
    for (from_second, packet) in datagrams {
        let from = senders[usize::from(*from_second)];
        if let Some(ufrag) = binding_request_ufrag(packet) {
            assert!(ufrag.len() < packet.len(), "the ufrag is read inside the datagram");
        }
        if state.observe(from, packet) {
            replays += 1;
            let (to, replay) = state.ready.take().expect("a replay is ready when observe says so");
            assert_eq!(to, from, "replayed to another sender");
            assert_eq!(classify(&replay), Stun::NominatingRequest);
        }
    }
    assert!(replays <= 1, "replayed {replays} times");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(msg_type: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut packet = msg_type.to_be_bytes().to_vec();
        packet.extend_from_slice(&(body.len() as u16).to_be_bytes());
        packet.extend_from_slice(&STUN_MAGIC_COOKIE);
        packet.extend_from_slice(&[7; 12]);
        packet.extend_from_slice(&body);
        packet
    }

    const USERNAME: u16 = ATTR_USERNAME;

    #[test]
    fn the_local_ufrag_is_read_from_binding_requests_only() {
        let request = stun(BINDING_REQUEST, &[(ATTR_USE_CANDIDATE, b""), (USERNAME, b"ours:theirs")]);
        assert_eq!(binding_request_ufrag(&request), Some(&b"ours"[..]));
        assert_eq!(binding_request_ufrag(&stun(BINDING_SUCCESS, &[(USERNAME, b"ours:theirs")])), None);
        assert_eq!(binding_request_ufrag(&stun(BINDING_REQUEST, &[])), None);
        assert_eq!(binding_request_ufrag(&request[..request.len() - 2]), None);
        assert_eq!(binding_request_ufrag(&[22, 254, 253]), None);
    }

    #[test]
    fn stun_packets_are_classified() {
        let nominating = stun(BINDING_REQUEST, &[(USERNAME, b"abc:def"), (ATTR_USE_CANDIDATE, b"")]);
        assert_eq!(classify(&nominating), Stun::NominatingRequest);
        assert_eq!(classify(&stun(BINDING_REQUEST, &[(USERNAME, b"abc:def")])), Stun::Other);
        assert_eq!(classify(&stun(BINDING_SUCCESS, &[])), Stun::SuccessResponse);
        // DTLS, SCTP and garbage are not STUN.
        assert_eq!(classify(&[22, 254, 253, 0, 0]), Stun::Other);
        assert_eq!(classify(&nominating[..nominating.len() - 1]), Stun::Other);
        let mut bad_cookie = nominating.clone();
        bad_cookie[5] = 0;
        assert_eq!(classify(&bad_cookie), Stun::Other);
        // An attribute length running past the end.
        let mut overlong = stun(BINDING_REQUEST, &[(USERNAME, b"abcd")]);
        overlong[22..24].copy_from_slice(&400u16.to_be_bytes());
        assert_eq!(classify(&overlong), Stun::Other);
    }

    #[test]
    fn the_first_nominating_check_is_replayed_once_after_the_first_response_from_its_peer() {
        let browser: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let other: SocketAddr = "10.0.0.3:5000".parse().unwrap();
        let request = stun(BINDING_REQUEST, &[(ATTR_USE_CANDIDATE, b"")]);
        let second = stun(BINDING_REQUEST, &[(USERNAME, b"x"), (ATTR_USE_CANDIDATE, b"")]);
        let response = stun(BINDING_SUCCESS, &[]);
        let mut state = NudgeState::default();
        assert!(!state.observe(browser, &response), "nothing remembered yet");
        assert!(!state.observe(browser, &request));
        assert!(!state.observe(browser, &second), "only the first is remembered");
        assert!(!state.observe(other, &response), "a response from elsewhere does not count");
        assert!(state.observe(browser, &response));
        assert_eq!(state.ready, Some((browser, request.clone())));
        state.ready = None;
        assert!(!state.observe(browser, &request));
        assert!(!state.observe(browser, &response), "at most once per peer");
        assert_eq!(state.ready, None);
    }
}
