//! Entry points for the fuzz targets (`fuzz/`, built with `--cfg fuzzing`)
//! and the corpus replay below: every decoder that reads bytes a stranger can
//! send us. Not part of the addon or of the crate's API.
//!
//! Each function takes arbitrary bytes, must never panic, and checks the
//! invariants that hold for any input (a decoded frame encodes back to the
//! same frame, a cleaned offer has no attribute of ours left…), panicking
//! only when one is broken, so that the fuzzer reports it.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::master::handshake;
use crate::proto::Message;
use crate::slave::{negotiated, peer};
use crate::transport::stun;

/// The wire format: decode, and a decoded message encodes to a frame that
/// decodes to the same message.
pub fn wire_frame(data: &[u8]) {
    let Ok(msg) = Message::decode(data) else {
        return;
    };
    let frame = msg.encode().expect("a decoded message encodes");
    let again = Message::decode(&frame).expect("an encoded message decodes");
    assert_eq!(again, msg, "round trip changed the message");
}

/// HTTP request headers as the master reads them during a WebSocket
/// handshake: the input is split into `name: value` lines.
pub fn handshake_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(trim(&line[colon + 1..])))
        else {
            continue;
        };
        headers.append(name, value);
    }
    let cookies = handshake::parse_cookies(&headers);
    assert!(cookies.keys().all(|name| !name.is_empty()), "a cookie without a name");
    let _ = handshake::is_websocket_upgrade(&headers);
    let _ = handshake::choose_protocol(&headers);
    if let Some(key) = headers.get(http::header::SEC_WEBSOCKET_KEY) {
        let _ = handshake::is_valid_key(key.as_bytes());
    }
}

/// An offer's text as the slave reads it: our negotiated-channel attributes
/// are taken out, the ICE credentials and first mid are read, and an answer marked.
pub fn offer_text(data: &[u8]) {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let (clean, channels) = negotiated::split_offer(sdp);
    assert!(clean.len() <= sdp.len());
    let mut ids: Vec<u16> = channels.iter().map(|c| c.stream_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), channels.len(), "a stream id listed twice");
    let _ = peer::ice_session(sdp);
    let marked = negotiated::mark_answer(sdp);
    assert!(marked.contains(negotiated::SUPPORT_LINE));
}

/// UDP datagrams as the shard reads their STUN USERNAME to route them. The
/// input is a sequence of records: one byte (ignored: it picked a sender
/// for an earlier target, and the corpus keeps it), a big-endian u16
/// length, then that many bytes.
pub fn ice_datagrams(mut data: &[u8]) {
    let mut datagrams = Vec::new();
    while data.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([data[1], data[2]])).min(data.len() - 3);
        datagrams.push(&data[3..3 + len]);
        data = &data[3 + len..];
    }
    stun::read_usernames(&datagrams);
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Replays the seed corpus and every input that once made a target fail
/// (`fuzz/regressions/<target>/`), so that `cargo test` guards them without a fuzzer.
#[cfg(test)]
mod corpus {
    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut replayed = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let input = std::fs::read(&path).expect("readable corpus file");
                run(&input);
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no seed inputs for {target}");
    }

    #[test]
    fn every_target_replays_its_corpus() {
        /// A fuzz target's name (its corpus folder) and entry point.
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 4] = [
            ("wire_frame", super::wire_frame),
            ("handshake_headers", super::handshake_headers),
            ("offer_text", super::offer_text),
            ("ice_datagrams", super::ice_datagrams),
        ];
        for (target, run) in targets {
            replay(target, run);
        }
    }
}
