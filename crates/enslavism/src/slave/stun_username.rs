//! Reads the USERNAME of a STUN Binding request in place: the shard routes
//! a datagram from an address no peer has used yet by its first half, our
//! ICE ufrag (unique per peer).

/// A STUN header: type (2), length (2), magic cookie (4), transaction id (12).
pub(crate) const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Whether a datagram is STUN (RFC 7983: its first two bits are 0; RFC
/// 5389: the magic cookie), header included.
pub(crate) fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= STUN_HEADER_LEN && packet[0] & 0xc0 == 0 && packet[4..8] == STUN_MAGIC_COOKIE
}
const BINDING_REQUEST: u16 = 0x0001;
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

    const BINDING_SUCCESS: u16 = 0x0101;
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
}
