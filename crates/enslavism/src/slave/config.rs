//! How a slave's peer connections are set up: [`SlaveConfig`], made by
//! [`SlaveConfig::builder`] and checked once, when built.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::config::{self, ConfigError, Unit};

/// Default time to wait for the master's WebSocket handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the `offer` decision may take before the offer is refused.
pub const DEFAULT_OFFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time after which a peer whose ICE went quiet counts as disconnected.
pub const DEFAULT_ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time after which a disconnected peer counts as failed and is released.
pub const DEFAULT_ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait between two reconnection attempts to the master.
pub const DEFAULT_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Default time between pings to a quiet master.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default silence after which the master counts as gone (half-open link) and
/// the slave reconnects.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest message a data channel carries (RFC 8841's default).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// The smallest `max_message_size`: a message must fit at least a
/// datagram's worth of data (RFC 9260 asks for 1,500 bytes).
pub const MIN_MAX_MESSAGE_SIZE: usize = 1024;
/// The largest `max_message_size`: what str0m takes from a browser.
pub const MAX_MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// Default time a peer has to open its first data channel after its offer.
pub const DEFAULT_PEER_SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default address of the metrics listener ([`SlaveConfigBuilder::metrics_port`]):
/// every IPv4 interface, as Prometheus exporters do, since the scraper is
/// usually another machine. Name `127.0.0.1` to keep the figures local.
pub const DEFAULT_METRICS_HOST: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// How a slave's peer connections are set up. `SlaveConfig::default()` holds
/// the documented defaults; [`SlaveConfig::builder`] changes them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SlaveConfig {
    pub(crate) ice_addresses: Vec<IpAddr>,
    pub(crate) public_addresses: Vec<IpAddr>,
    pub(crate) udp_port: Option<u16>,
    pub(crate) port_range: Option<(u16, u16)>,
    pub(crate) ice_servers: Vec<IceServer>,
    pub(crate) connect_timeout: Duration,
    pub(crate) offer_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) ice_disconnected_timeout: Duration,
    pub(crate) ice_failed_timeout: Duration,
    pub(crate) peer_setup_timeout: Duration,
    pub(crate) reconnect: bool,
    pub(crate) reconnect_max_delay: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) ca: Vec<crate::tls::CertificateDer<'static>>,
    pub(crate) metrics_port: Option<u16>,
    pub(crate) metrics_host: Option<IpAddr>,
    pub(crate) metrics_per_connection: bool,
}

impl Default for SlaveConfig {
    fn default() -> Self {
        SlaveConfig {
            ice_addresses: vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            public_addresses: Vec::new(),
            udp_port: None,
            port_range: None,
            ice_servers: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            offer_timeout: DEFAULT_OFFER_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            ice_disconnected_timeout: DEFAULT_ICE_DISCONNECTED_TIMEOUT,
            ice_failed_timeout: DEFAULT_ICE_FAILED_TIMEOUT,
            peer_setup_timeout: DEFAULT_PEER_SETUP_TIMEOUT,
            reconnect: true,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            ca: Vec::new(),
            metrics_port: None,
            metrics_host: None,
            metrics_per_connection: false,
        }
    }
}

impl SlaveConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> SlaveConfigBuilder {
        SlaveConfigBuilder { config: SlaveConfig::default() }
    }
}

/// Makes a [`SlaveConfig`]; every value is checked by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct SlaveConfigBuilder {
    config: SlaveConfig,
}

impl SlaveConfigBuilder {
    /// Local addresses announced as host candidates (default `0.0.0.0`).
    /// One address is bound itself; several are served by one socket on the
    /// wildcard address. `0.0.0.0` (`::`) stands for every non-loopback,
    /// non-link-local IPv4 (IPv6) address of the host's interfaces, or its
    /// loopback on a host that has no other; loopback must otherwise be
    /// named explicitly (`127.0.0.1`).
    pub fn ice_addresses(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.config.ice_addresses = addresses.into_iter().collect();
        self
    }

    /// Addresses announced in the slave's host candidates in place of the
    /// bound ones of the same family (NAT 1:1: a cloud VM's public IP, a
    /// container's host address). Default none: the bound addresses.
    pub fn public_addresses(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.config.public_addresses = addresses.into_iter().collect();
        self
    }

    /// The one UDP port every peer connection uses: one shard, one core's
    /// worth of WebRTC work (0: one shard on a free port). Without it (and
    /// without [`port_range`](Self::port_range)), one shard per core, each on
    /// a free port chosen once.
    pub fn udp_port(mut self, port: u16) -> Self {
        self.config.udp_port = Some(port);
        self
    }

    /// Ports (`first..=last`) for the shards, one port each, as many shards
    /// as cores (a port in use is skipped). Not with [`udp_port`](Self::udp_port).
    pub fn port_range(mut self, first: u16, last: u16) -> Self {
        self.config.port_range = Some((first, last));
        self
    }

    /// STUN servers (`stun:` and `turn:` URLs over UDP): each shard asks them
    /// for its server-reflexive address and announces it. The slave does not
    /// relay through TURN (it is the one with a reachable address).
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.config.ice_servers = servers.into_iter().collect();
        self
    }

    /// Time to wait for the master's WebSocket handshake (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Time the offer decision may take before the offer is refused (default 10 s).
    pub fn offer_timeout(mut self, timeout: Duration) -> Self {
        self.config.offer_timeout = timeout;
        self
    }

    /// Largest message a data channel carries each way, announced to the
    /// browser (`a=max-message-size`), from [`MIN_MAX_MESSAGE_SIZE`] to
    /// [`MAX_MAX_MESSAGE_SIZE`] (default 64 KiB). A larger message from the
    /// browser is dropped and its channel closed, with an error event.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Time after which a peer whose ICE went quiet counts as disconnected (default 5 s).
    pub fn ice_disconnected_timeout(mut self, timeout: Duration) -> Self {
        self.config.ice_disconnected_timeout = timeout;
        self
    }

    /// Time after which a disconnected peer counts as failed, and is closed
    /// and reported (default 10 s).
    pub fn ice_failed_timeout(mut self, timeout: Duration) -> Self {
        self.config.ice_failed_timeout = timeout;
        self
    }

    /// Time a peer has to open its first data channel before it is released (default 30 s).
    pub fn peer_setup_timeout(mut self, timeout: Duration) -> Self {
        self.config.peer_setup_timeout = timeout;
        self
    }

    /// No effect since 0.10. It answered a browser's first nominating ICE
    /// check early, around a webrtc-rs 0.21.1 behaviour; the str0m engine
    /// answers it at once (setup p50 6 ms either way, `npm run bench:slave`).
    #[deprecated(since = "0.10.0", note = "no effect: the str0m engine answers the first ICE check at once")]
    pub fn ice_nudge(self, _nudge: bool) -> Self {
        self
    }

    /// Reconnect to the master (and register again) when the link drops (default on).
    pub fn reconnect(mut self, reconnect: bool) -> Self {
        self.config.reconnect = reconnect;
        self
    }

    /// Longest wait between two reconnection attempts (the wait doubles
    /// from 250 ms; default 2 s).
    pub fn reconnect_max_delay(mut self, delay: Duration) -> Self {
        self.config.reconnect_max_delay = delay;
        self
    }

    /// How often the slave pings a quiet master (default 5 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// A master silent this long (no frame, no pong) counts as gone: the
    /// link is dropped, and reconnected unless reconnection is off (default
    /// 10 s; longer than the interval).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// Certificates trusted for a `wss://` master beyond the Mozilla roots
    /// (a private CA, a self-signed master; see
    /// [`crate::tls::trust_anchors_from_pem`]). Adds to those given before.
    pub fn ca(mut self, certificates: impl IntoIterator<Item = crate::tls::CertificateDer<'static>>) -> Self {
        self.config.ca.extend(certificates);
        self
    }

    /// Serves the slave's metrics ([`crate::slave::Slave::metrics`]) over
    /// HTTP on this TCP port, at `GET /metrics` (0: a free port, see
    /// [`crate::slave::Slave::metrics_port`]). Bound when the slave starts,
    /// before the master is dialled: a port in use fails the start. Default:
    /// no listener.
    pub fn metrics_port(mut self, port: u16) -> Self {
        self.config.metrics_port = Some(port);
        self
    }

    /// The address the metrics listener binds (default
    /// [`DEFAULT_METRICS_HOST`], every IPv4 interface); only with
    /// [`metrics_port`](Self::metrics_port).
    pub fn metrics_host(mut self, host: IpAddr) -> Self {
        self.config.metrics_host = Some(host);
        self
    }

    /// Adds per-connection series to the metrics (label `connection`, the
    /// session id, and `client`, the client's id): round-trip time, messages
    /// and bytes. Off by default: one set of series per player makes a
    /// large exposition and a costly one to store (a label per peer is what
    /// Prometheus' documentation warns against). Each peer's round-trip
    /// time is that of its latest answered ICE check (a few seconds apart).
    pub fn metrics_per_connection(mut self, on: bool) -> Self {
        self.config.metrics_per_connection = on;
        self
    }

    /// Checks every setting and returns the configuration.
    pub fn build(self) -> Result<SlaveConfig, ConfigError> {
        let c = self.config;
        if c.ice_addresses.is_empty() {
            return Err(config::invalid("ice_addresses", "name at least one address (0.0.0.0: every interface)"));
        }
        if let Some(bad) = c.public_addresses.iter().find(|ip| ip.is_unspecified()) {
            return Err(config::invalid(
                "public_addresses",
                format!("{bad} cannot be announced (it stands for every address, not one a browser can reach)"),
            ));
        }
        if let Some((first, last)) = c.port_range {
            if c.udp_port.is_some() {
                return Err(config::invalid("port_range", "give either udp_port or port_range, not both"));
            }
            if first == 0 || first > last {
                return Err(config::invalid(
                    "port_range",
                    format!("must run from a first port to a last one, 1 <= first <= last; got {first}..={last}"),
                ));
            }
        }
        for url in c.ice_servers.iter().flat_map(|s| &s.urls) {
            let scheme = url.split_once(':').map(|(scheme, _)| scheme);
            if !matches!(scheme, Some("stun" | "stuns" | "turn" | "turns")) {
                return Err(config::invalid("ice_servers", format!("{url:?} is not a stun:, stuns:, turn: or turns: URL")));
            }
        }
        config::in_range(
            "max_message_size",
            c.max_message_size as u64,
            MIN_MAX_MESSAGE_SIZE as u64,
            MAX_MAX_MESSAGE_SIZE as u64,
            Unit::Bytes,
        )?;
        let one_ms = Duration::from_millis(1);
        for (setting, value) in [
            ("connect_timeout", c.connect_timeout),
            ("offer_timeout", c.offer_timeout),
            ("ice_disconnected_timeout", c.ice_disconnected_timeout),
            ("ice_failed_timeout", c.ice_failed_timeout),
            ("peer_setup_timeout", c.peer_setup_timeout),
            ("reconnect_max_delay", c.reconnect_max_delay),
            ("heartbeat_interval", c.heartbeat_interval),
            ("heartbeat_timeout", c.heartbeat_timeout),
        ] {
            config::duration(setting, value, one_ms)?;
        }
        config::heartbeat(c.heartbeat_interval, c.heartbeat_timeout)?;
        if c.metrics_host.is_some() && c.metrics_port.is_none() {
            return Err(config::invalid("metrics_host", "names the metrics listener's address: set the metrics port too"));
        }
        Ok(c)
    }
}

/// A STUN or TURN server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: String,
    /// TURN credential.
    pub credential: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_every_setting_once() {
        assert!(SlaveConfig::builder().build().is_ok());
        let e = SlaveConfig::builder().max_message_size(100).build().unwrap_err();
        assert_eq!(e.to_string(), "max_message_size must be from 1024 to 262144 bytes; got 100");
        let e = SlaveConfig::builder().udp_port(4000).port_range(5000, 5001).build().unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { setting: "port_range", .. }), "{e}");
        assert!(SlaveConfig::builder().port_range(10, 5).build().is_err());
        assert!(SlaveConfig::builder().public_addresses(["0.0.0.0".parse().unwrap()]).build().is_err());
        assert!(SlaveConfig::builder().ice_addresses([]).build().is_err());
        let servers = [IceServer { urls: vec!["http://x".into()], ..IceServer::default() }];
        assert!(SlaveConfig::builder().ice_servers(servers).build().is_err());
        let e = SlaveConfig::builder().offer_timeout(Duration::ZERO).build().unwrap_err();
        assert!(matches!(e, ConfigError::OutOfRange { setting: "offer_timeout", .. }), "{e}");
        let e = SlaveConfig::builder().heartbeat_timeout(Duration::from_secs(1)).build().unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { setting: "heartbeat_timeout", .. }), "{e}");
        let e = SlaveConfig::builder().metrics_host("127.0.0.1".parse().unwrap()).build().unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { setting: "metrics_host", .. }), "{e}");
        assert!(SlaveConfig::builder().metrics_port(0).metrics_host("::1".parse().unwrap()).build().is_ok());
    }
}
