//! A shard's UDP socket: bound once, read in batches through quinn-udp
//! (recvmmsg and GRO), written a datagram at a time with its source address
//! chosen, with large kernel buffers.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

use crate::transport::is_transient;

/// Kernel buffer asked for each way. With the default 208 KiB, 36–49 of 200
/// DTLS handshakes started together on one socket lost a flight (the
/// `rtc-one-socket` probe); with 4 MiB, none.
const KERNEL_BUFFER: usize = 4 << 20;

/// Datagrams taken per receive call.
pub(super) const RECV_BATCH: usize = 32;
/// Room for one coalesced (GRO) read: 64 KiB is the most the kernel merges.
const RECV_BUFFER: usize = 64 * 1024;

/// One bound UDP socket and its receive buffers.
pub(super) struct ShardSocket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    /// The socket is IPv6 and dual-stack: IPv4 peers appear as mapped addresses.
    dual_stack: bool,
    /// Receive buffers, allocated once.
    buffers: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

/// Where a shard binds: the one address named in `ice_addresses` itself, or
/// else the wildcard of the `announced` addresses' families (dual-stack when
/// any is IPv6); each datagram then names its own source, so a reply leaves
/// from the address its check arrived at.
pub(super) fn bind_address(ice_addresses: &[IpAddr], announced: &[IpAddr]) -> IpAddr {
    match ice_addresses {
        [one] if !one.is_unspecified() => *one,
        _ if announced.iter().all(IpAddr::is_ipv4) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl ShardSocket {
    /// Binds `addr` (port 0: a free one).
    pub(super) fn bind(addr: SocketAddr) -> io::Result<ShardSocket> {
        let std_socket = std::net::UdpSocket::bind(addr)?;
        std_socket.set_nonblocking(true)?;
        let dual_stack = addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let io = tokio::net::UdpSocket::from_std(std_socket)?;
        let state = UdpSocketState::new(UdpSockRef::from(&io))?;
        grow_buffers(&io, &state);
        Ok(ShardSocket {
            io,
            state,
            dual_stack,
            buffers: (0..RECV_BATCH).map(|_| vec![0; RECV_BUFFER]).collect(),
            meta: vec![RecvMeta::default(); RECV_BATCH],
        })
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Waits until a datagram can be read.
    pub(super) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Reads what is there without waiting, and calls `each(from, to, datagram)`
    /// per datagram (GRO batches split). `to` is the local address it arrived
    /// at, when the kernel said. Returns how many datagrams were read.
    pub(super) fn drain(&mut self, mut each: impl FnMut(SocketAddr, Option<IpAddr>, &[u8])) -> io::Result<usize> {
        let ShardSocket { io, state, buffers, meta, .. } = self;
        let mut total = 0;
        loop {
            let mut unused = buffers.iter_mut();
            // On the stack: no allocation per batch.
            let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
                std::array::from_fn(|_| IoSliceMut::new(unused.next().expect("RECV_BATCH buffers")));
            let read = io.try_io(tokio::io::Interest::READABLE, || match state.recv(UdpSockRef::from(&*io), &mut slices, meta) {
                Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
                other => other,
            });
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                // ICMP errors surface here on Linux as a failed read: the next one goes on.
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            };
            for (meta, buffer) in meta.iter().zip(slices.iter()).take(n) {
                let stride = if meta.stride == 0 { meta.len.max(1) } else { meta.stride };
                let from = canonical(meta.addr);
                let to = meta.dst_ip.map(canonical_ip);
                for datagram in buffer[..meta.len].chunks(stride) {
                    each(from, to, datagram);
                    total += 1;
                }
            }
            if n < RECV_BATCH {
                return Ok(total);
            }
        }
    }

    /// Waits until the socket can be written to.
    pub(super) async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// One datagram to the kernel, from `source` when the socket serves
    /// several addresses; false when its buffer is full (anything else is
    /// the network's business and counts as sent).
    pub(super) fn try_send(&self, to: SocketAddr, source: Option<IpAddr>, datagram: &[u8]) -> bool {
        let destination = if self.dual_stack { mapped(to) } else { to };
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: datagram,
            segment_size: None,
            src_ip: source.map(|ip| if self.dual_stack { mapped_ip(ip) } else { ip }),
        };
        match self.io.try_io(tokio::io::Interest::WRITABLE, || self.state.try_send(UdpSockRef::from(&self.io), &transmit)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                tracing::trace!(%to, "datagram not sent: {e}");
                true
            }
        }
    }
}

/// Datagrams waiting for the socket's full kernel buffer to drain, in order.
/// Dropped, they would cost SCTP a retransmission timeout each (a bulk send
/// stalled for 30 s when they were). Past [`MAX_BACKLOG`] bytes they are
/// dropped, as a full network would.
#[derive(Default)]
pub(super) struct Backlog {
    datagrams: std::collections::VecDeque<(SocketAddr, Option<IpAddr>, Vec<u8>)>,
    bytes: usize,
}

impl Backlog {
    /// Sends a datagram through `socket`, or keeps it while the kernel's buffer is full.
    pub(super) fn send(&mut self, socket: &ShardSocket, to: SocketAddr, source: Option<IpAddr>, datagram: &[u8]) {
        if self.datagrams.is_empty() && socket.try_send(to, source, datagram) {
            return;
        }
        if self.bytes + datagram.len() > MAX_BACKLOG {
            tracing::trace!(%to, "datagram dropped: the send backlog is full");
            return;
        }
        self.bytes += datagram.len();
        self.datagrams.push_back((to, source, datagram.to_vec()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Sends what waits, as far as the kernel takes it.
    pub(super) fn flush(&mut self, socket: &ShardSocket) {
        while let Some((to, source, datagram)) = self.datagrams.front() {
            if !socket.try_send(*to, *source, datagram) {
                return;
            }
            self.bytes -= datagram.len();
            self.datagrams.pop_front();
        }
    }
}

/// Most bytes kept waiting for the kernel (as much again as its buffer).
const MAX_BACKLOG: usize = KERNEL_BUFFER;

/// Asks for [`KERNEL_BUFFER`] each way: past `rmem_max` when the process may
/// (root, or CAP_NET_ADMIN), within it otherwise.
fn grow_buffers(io: &tokio::net::UdpSocket, state: &UdpSocketState) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        use std::os::fd::AsFd;
        let fd = io.as_fd();
        if setsockopt(&fd, sockopt::RcvBufForce, &KERNEL_BUFFER).is_ok()
            && setsockopt(&fd, sockopt::SndBufForce, &KERNEL_BUFFER).is_ok()
        {
            return;
        }
    }
    let _ = state.set_recv_buffer_size(UdpSockRef::from(io), KERNEL_BUFFER);
    let _ = state.set_send_buffer_size(UdpSockRef::from(io), KERNEL_BUFFER);
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for: what the
/// ICE agent and the candidates speak.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mapped(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(mapped_ip(addr.ip()), addr.port())
}

fn mapped_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_bound_itself_several_through_the_wildcard() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert_eq!(bind_address(&[lo], &[lo]), lo);
        assert_eq!(bind_address(&[lo, other], &[lo, other]), any4);
        assert_eq!(bind_address(&[lo, v6], &[lo, v6]), any6);
        // The default wildcard: its family's, or dual-stack when loopback stood in for it with ::1.
        assert_eq!(bind_address(&[any4], &[other]), any4);
        assert_eq!(bind_address(&[any4], &[lo, v6]), any6);
    }

    #[test]
    fn mapped_addresses_round_trip() {
        let v4: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(canonical(mapped(v4)), v4);
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        assert_eq!(mapped(v6), v6);
    }

    #[tokio::test]
    async fn datagrams_are_read_in_batches_with_their_sender() {
        let mut socket = ShardSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = socket.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            peer.send_to(&[i; 10], to).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 5 {
            tokio::time::timeout(std::time::Duration::from_secs(5), socket.readable()).await.unwrap().unwrap();
            socket
                .drain(|from, _, datagram| {
                    assert_eq!(from, peer.local_addr().unwrap());
                    got.push(datagram.to_vec());
                })
                .unwrap();
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 10]).collect::<Vec<_>>());
        let mut backlog = Backlog::default();
        backlog.send(&socket, peer.local_addr().unwrap(), None, b"back");
        assert!(backlog.is_empty());
        let mut buf = [0; 16];
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(peer.recv(&mut buf).unwrap(), 4);
    }
}
