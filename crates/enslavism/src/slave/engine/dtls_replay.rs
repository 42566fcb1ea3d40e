//! Works around a DTLS handshake stall of rtc-dtls 0.21.1.
//!
//! Any handshake datagram clears rtc-dtls' retransmit timer, and a repeated
//! ClientHello does not make the server send its flight again. So when our
//! flight 4 (ServerHello … ServerHelloDone) is lost and the browser's repeated
//! ClientHello arrives before our timer fires, both sides wait forever.
//! (Reproduced with the `rtc-one-socket` probe; 36–49 of 200 handshakes on
//! one socket with default kernel buffers.) The shard keeps a copy of the
//! datagrams of our last flight 4 and sends them again when a ClientHello
//! arrives after it, until the browser's flight 5 shows it has them.

use std::net::SocketAddr;

/// DTLS record: content type (1), version (2), epoch (2), sequence (6), length (2).
const RECORD_HEADER_LEN: usize = 13;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const CLIENT_KEY_EXCHANGE: u8 = 16;
/// How often a flight is sent again for repeated ClientHellos.
const MAX_REPLAYS: u8 = 4;
/// At most this many datagrams are kept (a flight 4 is one to three).
const MAX_FLIGHT_DATAGRAMS: usize = 8;

/// What a datagram's first DTLS record is, as far as the replay cares.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    /// A handshake message at epoch 0 of this type.
    Handshake(u8),
    /// Anything else that is DTLS (a ChangeCipherSpec, an encrypted record).
    OtherDtls,
    NotDtls,
}

fn first_record(datagram: &[u8]) -> Record {
    // RFC 7983: DTLS datagrams start with a byte in 20..=63.
    match datagram.first() {
        Some(20..=63) if datagram.len() >= RECORD_HEADER_LEN => {}
        _ => return Record::NotDtls,
    }
    let epoch = u16::from_be_bytes([datagram[3], datagram[4]]);
    match (datagram[0], epoch, datagram.get(RECORD_HEADER_LEN)) {
        (CONTENT_HANDSHAKE, 0, Some(kind)) => Record::Handshake(*kind),
        _ => Record::OtherDtls,
    }
}

/// One peer's watch over its DTLS handshake.
#[derive(Debug, Default)]
pub(super) struct DtlsReplay {
    flight: Vec<Vec<u8>>,
    replays: u8,
    /// Where to send the flight again, when due.
    due: Option<SocketAddr>,
    /// The browser has our flight 4: nothing more to do.
    done: bool,
}

impl DtlsReplay {
    /// Looks at a datagram we send.
    pub(super) fn sent(&mut self, datagram: &[u8]) {
        if self.done {
            return;
        }
        match first_record(datagram) {
            Record::Handshake(SERVER_HELLO) => {
                self.flight.clear();
                self.flight.push(datagram.to_vec());
            }
            // The rest of the flight (Certificate, ServerKeyExchange, …).
            Record::Handshake(_) if !self.flight.is_empty() && self.flight.len() < MAX_FLIGHT_DATAGRAMS => {
                self.flight.push(datagram.to_vec());
            }
            _ => {}
        }
    }

    /// Looks at a datagram received from `from`.
    pub(super) fn received(&mut self, from: SocketAddr, datagram: &[u8]) {
        if self.done {
            return;
        }
        match first_record(datagram) {
            Record::Handshake(CLIENT_HELLO) if !self.flight.is_empty() && self.replays < MAX_REPLAYS => {
                self.replays += 1;
                tracing::debug!(replays = self.replays, "ClientHello after our flight 4: sending the flight again");
                self.due = Some(from);
            }
            // Flight 5 (or anything encrypted): the browser has our flight.
            Record::Handshake(CERTIFICATE | CLIENT_KEY_EXCHANGE) | Record::OtherDtls => {
                self.done = true;
                self.due = None;
                self.flight = Vec::new();
            }
            _ => {}
        }
    }

    /// The flight to send again now, and where, once per repeated ClientHello.
    pub(super) fn take_due(&mut self) -> Option<(SocketAddr, &[Vec<u8>])> {
        let to = self.due.take()?;
        Some((to, &self.flight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content: u8, epoch: u16, handshake: u8) -> Vec<u8> {
        let mut d = vec![content, 254, 253];
        d.extend_from_slice(&epoch.to_be_bytes());
        d.extend_from_slice(&[0; 6]);
        d.extend_from_slice(&1u16.to_be_bytes());
        d.push(handshake);
        d
    }

    const BROWSER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)), 5000);

    fn due(watch: &mut DtlsReplay) -> Option<Vec<Vec<u8>>> {
        watch.take_due().map(|(to, flight)| {
            assert_eq!(to, BROWSER);
            flight.to_vec()
        })
    }

    #[test]
    fn a_repeated_client_hello_after_flight_4_gets_the_flight_again() {
        let mut watch = DtlsReplay::default();
        let hello = record(22, 0, CLIENT_HELLO);
        watch.received(BROWSER, &hello);
        assert_eq!(due(&mut watch), None, "nothing sent yet");
        let server_hello = record(22, 0, SERVER_HELLO);
        let certificate = record(22, 0, CERTIFICATE);
        watch.sent(&server_hello);
        watch.sent(&certificate);
        watch.sent(&[0, 1, 0, 0]); // STUN is not part of it
        watch.received(BROWSER, &hello);
        assert_eq!(due(&mut watch), Some(vec![server_hello.clone(), certificate.clone()]));
        assert_eq!(due(&mut watch), None, "once per ClientHello");
        // Flight 5 arrives: done.
        watch.received(BROWSER, &record(22, 0, CLIENT_KEY_EXCHANGE));
        watch.received(BROWSER, &hello);
        assert_eq!(due(&mut watch), None);
    }

    #[test]
    fn replays_are_bounded_and_garbage_is_ignored() {
        let mut watch = DtlsReplay::default();
        watch.sent(&record(22, 0, SERVER_HELLO));
        let hello = record(22, 0, CLIENT_HELLO);
        for _ in 0..MAX_REPLAYS {
            watch.received(BROWSER, &hello);
            assert_eq!(due(&mut watch).map(|f| f.len()), Some(1));
        }
        watch.received(BROWSER, &hello);
        assert_eq!(due(&mut watch), None);
        watch.received(BROWSER, &[22, 254]);
        watch.received(BROWSER, &[]);
        assert_eq!(due(&mut watch), None);
        assert_eq!(first_record(&record(23, 1, 0)), Record::OtherDtls);
        assert_eq!(first_record(&[0x80, 0, 0]), Record::NotDtls);
    }
}
