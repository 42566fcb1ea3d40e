//! Turns UDP generic receive offload off on peer sockets, to save memory per peer.
//!
//! With GRO on (quinn-udp turns it on where the kernel has it), the webrtc-rs
//! 0.21.1 driver (`peer_connection/driver.rs`) sizes two receive buffers per
//! peer connection for 64 coalesced datagrams: 2 × 96,000 bytes on every
//! peer, resident as far as they are touched. A game server's traffic is
//! small datagrams from many peers, which GRO seldom merges; with GRO off the
//! kernel hands over one datagram per read and the driver's buffers are
//! 2,000 bytes. (Measured with the boxed peer setup, `peer.rs`: 387 → 318 kB
//! per extra peer at game load.)

/// Wraps `socket` with `wrap` (which may turn GRO on), then turns GRO off
/// on it. The flag says whether GRO is now off; if not, the socket keeps
/// whatever the kernel and the wrapper set up.
pub(crate) fn wrap_without_gro<T>(
    socket: std::net::UdpSocket,
    wrap: impl FnOnce(std::net::UdpSocket) -> std::io::Result<T>,
) -> std::io::Result<(T, bool)> {
    #[cfg(target_os = "linux")]
    {
        // A second descriptor of the same socket: options set through it apply to the one `wrap` keeps.
        let handle = socket.try_clone()?;
        let wrapped = wrap(socket)?;
        let off = nix::sys::socket::setsockopt(&handle, nix::sys::socket::sockopt::UdpGroSegment, &false).is_ok();
        Ok((wrapped, off))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok((wrap(socket)?, false))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt::UdpGroSegment};

    #[test]
    fn turns_gro_off_after_the_wrapper_turned_it_on() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (socket, off) = super::wrap_without_gro(socket, |s| {
            // As quinn-udp does.
            setsockopt(&s, UdpGroSegment, &true).unwrap();
            assert!(getsockopt(&s, UdpGroSegment).unwrap());
            Ok(s)
        })
        .unwrap();
        assert!(off);
        assert!(!getsockopt(&socket, UdpGroSegment).unwrap());
    }
}
