//! A server-reflexive address: what a STUN server sees of a socket (a
//! shard's, a client connection's) from outside a NAT, announced as an `srflx` candidate.
//!
//! A shard asks once for all its peers (they share its socket, so they
//! share its mapping too); a client connection asks for its own socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::stun::{self, TransactionId};
use crate::slave::IceServer;

/// Attempts per server, the first at once, then after 250 ms, 500 ms, … (RFC 8489's
/// retransmissions, shortened: a slave that starts should be listed with its
/// candidates within a few seconds).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Asked again this often (answered or not), so that a NAT that changed its
/// mapping is followed for the peers that come later.
const REFRESH: Duration = Duration::from_secs(300);

/// The `host:port` of a `stun:` / `turn:` URL reachable over UDP (TURN
/// servers answer Binding requests too); `None` for TLS or TCP transports.
pub(crate) fn udp_server(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !matches!(scheme, "stun" | "turn") || query.split('&').any(|p| p == "transport=tcp") {
        return None;
    }
    let authority = authority.trim_start_matches("//");
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.matches(':').count() == 1,
    };
    Some(if has_port { authority.to_owned() } else { format!("{authority}:3478") })
}

/// The UDP addresses of `servers`' STUN (and TURN) URLs, each resolved
/// within `limit`; a server that cannot be resolved, or is reachable only
/// over TCP or TLS, is skipped with a warning naming `who`.
pub(crate) async fn resolve(servers: &[IceServer], limit: Duration, who: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for url in servers.iter().flat_map(|s| &s.urls) {
        let Some(server) = udp_server(url) else {
            tracing::warn!(url, "ICE server skipped: {who} asks STUN servers over UDP only");
            continue;
        };
        let resolved = tokio::time::timeout(limit, tokio::net::lookup_host(server.as_str())).await;
        match resolved {
            Ok(Ok(found)) => {
                for addr in found {
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(url, "ICE server skipped: {e}"),
            Err(_) => tracing::warn!(url, "ICE server skipped: not resolved in time"),
        }
    }
    out
}

/// The STUN client of one socket.
pub(crate) struct Reflexive {
    servers: Vec<SocketAddr>,
    /// The requests of the current attempt.
    pending: Vec<(TransactionId, SocketAddr)>,
    attempt: u32,
    next: Option<Instant>,
}

impl Reflexive {
    pub(crate) fn new(servers: Vec<SocketAddr>, now: Instant) -> Self {
        let next = (!servers.is_empty()).then_some(now);
        Reflexive { servers, pending: Vec::new(), attempt: 0, next }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Sends what is due through `send(to, datagram)`.
    pub(crate) fn handle_timeout(&mut self, now: Instant, mut send: impl FnMut(SocketAddr, &[u8])) {
        if self.next.is_none_or(|at| at > now) {
            return;
        }
        self.pending.clear();
        if self.attempt == ATTEMPTS {
            // Unanswered: the server is down or filtered; ask again later.
            self.attempt = 0;
            self.next = Some(now + REFRESH);
            return;
        }
        for server in &self.servers {
            let id = stun::transaction_id();
            send(*server, &stun::binding_request(&id));
            self.pending.push((id, *server));
        }
        self.next = Some(now + FIRST_RETRY * 2u32.pow(self.attempt));
        self.attempt += 1;
    }

    /// Looks at a datagram from `from`; returns the mapped address if it is
    /// the answer to one of our requests.
    pub(crate) fn handle_response(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Option<SocketAddr> {
        if !self.servers.contains(&from) {
            return None;
        }
        let (answered, mapped) = stun::binding_success(datagram)?;
        let index = self.pending.iter().position(|(id, server)| *id == answered && *server == from)?;
        self.pending.swap_remove(index);
        // Answered: ask again only to refresh.
        self.attempt = 0;
        self.next = Some(now + REFRESH);
        Some(mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_servers_are_read_from_ice_urls() {
        assert_eq!(udp_server("stun:stun.example.org").as_deref(), Some("stun.example.org:3478"));
        assert_eq!(udp_server("stun:10.0.0.1:19302").as_deref(), Some("10.0.0.1:19302"));
        assert_eq!(udp_server("turn:[2001:db8::1]:3479?transport=udp").as_deref(), Some("[2001:db8::1]:3479"));
        assert_eq!(udp_server("turn:[2001:db8::1]").as_deref(), Some("[2001:db8::1]:3478"));
        assert_eq!(udp_server("turn:relay.example.org?transport=tcp"), None);
        assert_eq!(udp_server("turns:relay.example.org"), None);
        assert_eq!(udp_server("stun:"), None);
        assert_eq!(udp_server("nonsense"), None);
    }

    #[test]
    fn requests_are_retried_then_answered_with_the_mapped_address() {
        let server: SocketAddr = "10.0.0.9:3478".parse().unwrap();
        let t0 = Instant::now();
        let mut stun = Reflexive::new(vec![server], t0);
        let mut sent = Vec::new();
        stun.handle_timeout(t0, |to, d| sent.push((to, d.to_vec())));
        assert_eq!(sent.len(), 1);
        assert_eq!(stun.poll_timeout(), Some(t0 + FIRST_RETRY));
        stun.handle_timeout(t0 + FIRST_RETRY, |to, d| sent.push((to, d.to_vec())));
        assert_eq!(sent.len(), 2);
        assert_eq!(stun.poll_timeout(), Some(t0 + FIRST_RETRY * 3));
        // Unanswered attempts stop after ATTEMPTS, until the next refresh.
        let mut quiet = Reflexive::new(vec![server], t0);
        let mut sends = 0;
        while let Some(at) = quiet.poll_timeout().filter(|at| *at < t0 + REFRESH) {
            quiet.handle_timeout(at, |_, _| sends += 1);
        }
        assert_eq!(sends, ATTEMPTS);

        // The server's answer to the second request: 203.0.113.7:40000, in
        // a MAPPED-ADDRESS (what the oldest servers send).
        let mut response = vec![0x01, 0x01, 0, 12, 0x21, 0x12, 0xa4, 0x42];
        response.extend_from_slice(&sent[1].1[8..20]);
        response.extend_from_slice(&[0, 1, 0, 8, 0, 1, 0x9c, 0x40, 203, 0, 113, 7]);
        let now = t0 + Duration::from_secs(1);
        assert_eq!(stun.handle_response("10.0.0.8:3478".parse().unwrap(), &response, now), None, "not our server");
        assert_eq!(stun.handle_response(server, &response, now), Some("203.0.113.7:40000".parse().unwrap()));
        assert_eq!(stun.handle_response(server, &response, now), None, "answered once");
        assert_eq!(stun.poll_timeout(), Some(now + REFRESH));
        assert_eq!(stun.handle_response(server, &[1, 1, 0, 0], now), None);
    }
}
