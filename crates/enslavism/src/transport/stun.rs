//! The little of STUN we read and write ourselves, in place: the USERNAME
//! of a Binding request (the shard routes a datagram from an address no peer
//! has used yet by its first half, our ICE ufrag, unique per peer), and the
//! Binding request and answer that ask a STUN server for our
//! server-reflexive address (str0m's parser wants MESSAGE-INTEGRITY, which
//! a STUN server's answer does not have).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A STUN header: type (2), length (2), magic cookie (4), transaction id (12).
pub(crate) const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Whether a datagram is STUN (RFC 7983: its first two bits are 0; RFC
/// 5389: the magic cookie), header included.
pub(crate) fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= STUN_HEADER_LEN && packet[0] & 0xc0 == 0 && packet[4..8] == STUN_MAGIC_COOKIE
}
/// Message types: a Binding request, and its success response.
pub(crate) const BINDING_REQUEST: u16 = 0x0001;
pub(crate) const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;

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
    if !is_stun(packet) {
        return None;
    }
    if u16::from_be_bytes([packet[0], packet[1]]) != BINDING_REQUEST {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let username = attribute(packet.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?, ATTR_USERNAME)?;
    username.split(|b| *b == b':').next()
}

const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// A STUN transaction id.
pub(crate) type TransactionId = [u8; 12];

/// A Binding request with no attribute (RFC 8489 §5): what a STUN server
/// answers with the address it saw us from.
pub(crate) fn binding_request(id: &TransactionId) -> [u8; STUN_HEADER_LEN] {
    let mut request = [0; STUN_HEADER_LEN];
    request[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    request[4..8].copy_from_slice(&STUN_MAGIC_COOKIE);
    request[8..].copy_from_slice(id);
    request
}

/// A fresh transaction id from the system's random source, so that an
/// off-path sender cannot guess it (RFC 8489 §5).
pub(crate) fn transaction_id() -> TransactionId {
    let mut id = [0; 12];
    // The system's source fails only on a kernel without getrandom(2) and /dev/urandom.
    getrandom::fill(&mut id).expect("the system's random source");
    id
}

/// The transaction id of a STUN message of type `kind` (header checked);
/// `None` for anything else.
pub(crate) fn transaction_of(packet: &[u8], kind: u16) -> Option<TransactionId> {
    if !is_stun(packet) || u16::from_be_bytes([packet[0], packet[1]]) != kind {
        return None;
    }
    packet[8..STUN_HEADER_LEN].try_into().ok()
}

/// The transaction id and mapped address (XOR-MAPPED-ADDRESS, or else the
/// older MAPPED-ADDRESS) of a Binding success response; `None` for anything else.
pub(crate) fn binding_success(packet: &[u8]) -> Option<(TransactionId, SocketAddr)> {
    let id = transaction_of(packet, BINDING_SUCCESS)?;
    let body_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let body = packet.get(STUN_HEADER_LEN..STUN_HEADER_LEN + body_len)?;
    let address = match attribute(body, ATTR_XOR_MAPPED_ADDRESS) {
        Some(value) => {
            // XORed with the magic cookie, then (IPv6) the transaction id.
            let mut mask = [0; 16];
            mask[..4].copy_from_slice(&STUN_MAGIC_COOKIE);
            mask[4..].copy_from_slice(&id);
            address(value, &mask)?
        }
        None => address(attribute(body, ATTR_MAPPED_ADDRESS)?, &[0; 16])?,
    };
    Some((id, address))
}

/// A (XOR-)MAPPED-ADDRESS value: reserved (1), family (1), port (2), address (4 or 16).
fn address(value: &[u8], mask: &[u8; 16]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([value.get(2)? ^ mask[0], value.get(3)? ^ mask[1]]);
    let ip: IpAddr = match value.get(1)? {
        1 => {
            let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|i| raw[i] ^ mask[i])).into()
        }
        2 => {
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|i| raw[i] ^ mask[i])).into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Reads the ufrag of every datagram, checking that it always lies inside
/// the datagram. For the fuzz target.
#[cfg(any(test, fuzzing))]
pub(crate) fn read_usernames(datagrams: &[&[u8]]) {
    for packet in datagrams {
        if let Some(ufrag) = binding_request_ufrag(packet) {
            assert!(ufrag.len() < packet.len(), "the ufrag is read inside the datagram");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTR_USE_CANDIDATE: u16 = 0x0025;

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

    #[test]
    fn the_local_ufrag_is_read_from_binding_requests_only() {
        let request = stun(BINDING_REQUEST, &[(ATTR_USE_CANDIDATE, b""), (ATTR_USERNAME, b"ours:theirs")]);
        assert_eq!(binding_request_ufrag(&request), Some(&b"ours"[..]));
        assert_eq!(binding_request_ufrag(&stun(BINDING_SUCCESS, &[(ATTR_USERNAME, b"ours:theirs")])), None);
        assert_eq!(binding_request_ufrag(&stun(BINDING_REQUEST, &[])), None);
        assert_eq!(binding_request_ufrag(&request[..request.len() - 2]), None);
        assert_eq!(binding_request_ufrag(&[22, 254, 253]), None);
        // An attribute length running past the end.
        let mut overlong = stun(BINDING_REQUEST, &[(ATTR_USERNAME, b"abcd")]);
        overlong[22..24].copy_from_slice(&400u16.to_be_bytes());
        assert_eq!(binding_request_ufrag(&overlong), None);
        read_usernames(&[&request, &overlong, &[0, 1]]);
    }

    #[test]
    fn a_binding_success_gives_its_transaction_and_mapped_address() {
        // RFC 5769 §2.2: a response with SOFTWARE, XOR-MAPPED-ADDRESS
        // (192.0.2.1:32853), MESSAGE-INTEGRITY and FINGERPRINT.
        let id = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];
        let mut packet = vec![0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42];
        packet.extend_from_slice(&id);
        packet
            .extend_from_slice(&[0x80, 0x22, 0x00, 0x0b, b't', b'e', b's', b't', b' ', b'v', b'e', b'c', b't', b'o', b'r', b' ']);
        packet.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
        packet.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        packet.extend_from_slice(&[0x2b; 20]);
        packet.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96]);
        assert_eq!(binding_success(&packet), Some((id, "192.0.2.1:32853".parse().unwrap())));
        // IPv6, XORed with the cookie and the id; and the older MAPPED-ADDRESS.
        let v6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let mut value = vec![0, 2];
        let mut mask = STUN_MAGIC_COOKIE.to_vec();
        mask.extend_from_slice(&id);
        value.extend(40000u16.to_be_bytes().iter().zip(&mask).map(|(b, m)| b ^ m));
        let IpAddr::V6(ip) = v6.ip() else { unreachable!() };
        value.extend(ip.octets().iter().zip(&mask).map(|(b, m)| b ^ m));
        let mut response = stun(BINDING_SUCCESS, &[(ATTR_XOR_MAPPED_ADDRESS, &value)]);
        response[8..20].copy_from_slice(&id);
        assert_eq!(binding_success(&response), Some((id, v6)));
        let plain = stun(BINDING_SUCCESS, &[(ATTR_MAPPED_ADDRESS, &[0, 1, 0x0b, 0xb8, 10, 0, 0, 9])]);
        assert_eq!(binding_success(&plain).map(|(_, a)| a), Some("10.0.0.9:3000".parse().unwrap()));
        // Not a success, truncated, or a request of ours.
        assert_eq!(binding_success(&packet[..40]), None);
        assert_eq!(binding_success(&binding_request(&id)), None);
        assert_eq!(binding_success(&stun(BINDING_SUCCESS, &[(ATTR_XOR_MAPPED_ADDRESS, &[0, 3, 0, 0])])), None);
    }

    #[test]
    fn requests_carry_fresh_transaction_ids() {
        let (a, b) = (transaction_id(), transaction_id());
        assert_ne!(a, b);
        let request = binding_request(&a);
        assert!(is_stun(&request));
        assert_eq!(&request[8..], &a);
        assert_eq!(binding_request_ufrag(&request), None, "no USERNAME");
    }
}
