//! Takes ~50 ms off every browser connection's setup.
//!
//! The browser (ICE controlling side) sends its first connectivity check with
//! USE-CANDIDATE at once. webrtc-rs 0.21.1 (rtc-ice, controlled side) ignores
//! a nominating check on a pair that has not succeeded yet, and does not
//! answer it; the browser only retries after its ~50 ms check interval, and
//! ICE, then DTLS and SCTP, wait for it.
//!
//! This runtime is tokio's, except that each UDP socket remembers the first
//! USE-CANDIDATE binding request a peer sends, and when the first binding
//! success response arrives from that peer (the pair has succeeded on our
//! side), hands the driver an identical copy of the remembered request right
//! after it. The agent then nominates the pair and answers at once. It fires
//! at most once per socket (each peer connection has its own), is a STUN
//! retransmission as far as both agents are concerned, and does nothing once
//! the crate answers such checks itself.

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime, TokioRuntime, Transmit,
};

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USE_CANDIDATE: u16 = 0x0025;

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

fn has_attribute(mut attrs: &[u8], wanted: u16) -> bool {
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        if kind == wanted {
            return true;
        }
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let padded = 4 + len.div_ceil(4) * 4;
        let Some(rest) = attrs.get(padded..) else {
            return false;
        };
        attrs = rest;
    }
    false
}

#[derive(Debug, Default)]
struct NudgeState {
    /// The peer's first nominating check, not answered yet.
    remembered: Option<(SocketAddr, Vec<u8>)>,
    /// The copy to hand the driver on its next receive.
    ready: Option<(SocketAddr, Vec<u8>)>,
    done: bool,
}

impl NudgeState {
    /// Looks at one received datagram.
    fn observe(&mut self, from: SocketAddr, packet: &[u8]) -> bool {
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
        if state.observe(from, packet) {
            replays += 1;
            let (to, replay) = state.ready.take().expect("a replay is ready when observe says so");
            assert_eq!(to, from, "replayed to another sender");
            assert_eq!(classify(&replay), Stun::NominatingRequest);
        }
    }
    assert!(replays <= 1, "replayed {replays} times");
}

/// A UDP socket of tokio's runtime with the nudge on its receive path.
#[derive(Debug)]
struct NudgingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    state: Mutex<NudgeState>,
    /// GRO was turned off (see [`super::gro`]): one datagram per read.
    single_datagrams: bool,
}

impl NudgingSocket {
    fn state(&self) -> std::sync::MutexGuard<'_, NudgeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AsyncUdpSocket for NudgingSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        {
            let mut state = self.state();
            if let Some((from, packet)) = state.ready.take() {
                if let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) {
                    if packet.len() <= buf.len() {
                        buf[..packet.len()].copy_from_slice(&packet);
                        let mut copy = RecvMeta::default();
                        copy.addr = from;
                        copy.len = packet.len();
                        copy.stride = packet.len().max(1);
                        *m = copy;
                        return Poll::Ready(Ok(1));
                    }
                }
            }
        }
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = polled {
            let mut state = self.state();
            if !state.done {
                for (buf, m) in bufs.iter().zip(meta.iter()).take(n) {
                    // STUN is never coalesced with other datagrams: look at the first segment.
                    let first = m.len.min(m.stride.max(1)).min(buf.len());
                    if state.observe(m.addr, &buf[..first]) {
                        // Make sure the driver comes back for the copy.
                        cx.waker().wake_by_ref();
                    }
                }
            }
        }
        polled
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        if self.single_datagrams {
            1
        } else {
            self.inner.max_gro_segments()
        }
    }
}

/// tokio's runtime for webrtc-rs, with [`NudgingSocket`]s, GRO off on each.
#[derive(Debug)]
pub(crate) struct NudgingRuntime {
    inner: TokioRuntime,
}

impl NudgingRuntime {
    pub(crate) fn new() -> Self {
        NudgingRuntime { inner: TokioRuntime }
    }
}

impl Runtime for NudgingRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(&self, reactor_pool_size: usize, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        // quinn-udp turns GRO on while wrapping; turn it off after.
        let (inner, single_datagrams) = super::gro::wrap_without_gro(socket, |s| self.inner.wrap_udp_socket(s))?;
        Ok(Arc::new(NudgingSocket { inner, state: Mutex::new(NudgeState::default()), single_datagrams }))
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio+ice-nudge"
    }
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

    const USERNAME: u16 = 0x0006;

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
        assert!(!state.observe(browser, &response), "at most once per socket");
        assert_eq!(state.ready, None);
    }
}
