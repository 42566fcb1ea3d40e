//! Making one `rtc` peer connection: its settings, its host candidates (the
//! shard's socket), the answer to an offer and the negotiated channels it lists.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rtc::data_channel::RTCDataChannelInit;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::setting_engine::{SctpMaxMessageSize, SettingEngine, SettingEngineBuilder};
use rtc::peer_connection::configuration::{RTCConfiguration, RTCConfigurationBuilder};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{RTCDtlsRole, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::shared::error::Result;
use rtc::statistics::report::RTCStatsReport;
use rtc::statistics::StatsSelector;

use crate::slave::channel::ChannelInfo;
use crate::slave::stats::{CandidatePair, ConnectionStats};
use crate::slave::{nat, negotiated, SlaveConfig};

/// The addresses a shard announces for `ice_addresses`: each named one, and
/// for a wildcard every address of that family on the host's interfaces,
/// loopback and link-local ones excepted (name those to use them).
pub(super) fn host_addresses(ice_addresses: &[IpAddr]) -> Vec<IpAddr> {
    expand(ice_addresses, &interface_addresses())
}

/// [`host_addresses`] with the interfaces' addresses given. A wildcard on a
/// host with no other address of its family (a container, CI, a laptop
/// offline) stands for loopback, as 0.9.0's libwebrtc did: announcing
/// nothing, or `0.0.0.0`, leaves browsers nothing to reach. An IPv4 wildcard
/// (the default) then announces `::1` too where the host has it, as 0.9.0 did.
fn expand(ice_addresses: &[IpAddr], interfaces: &[IpAddr]) -> Vec<IpAddr> {
    fn push(ip: IpAddr, out: &mut Vec<IpAddr>) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    let mut out = Vec::new();
    for ip in ice_addresses {
        if !ip.is_unspecified() {
            push(*ip, &mut out);
            continue;
        }
        let outside: Vec<IpAddr> = interfaces
            .iter()
            .filter(|found| found.is_ipv4() == ip.is_ipv4() && !found.is_loopback() && !is_link_local(found))
            .copied()
            .collect();
        if !outside.is_empty() {
            outside.into_iter().for_each(|found| push(found, &mut out));
        } else if ip.is_ipv4() {
            push(Ipv4Addr::LOCALHOST.into(), &mut out);
            if interfaces.contains(&Ipv6Addr::LOCALHOST.into()) {
                push(Ipv6Addr::LOCALHOST.into(), &mut out);
            }
        } else {
            push(Ipv6Addr::LOCALHOST.into(), &mut out);
        }
    }
    out
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn interface_addresses() -> Vec<IpAddr> {
    #[cfg(target_os = "linux")]
    {
        let Ok(interfaces) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
        interfaces
            .filter_map(|i| i.address)
            .filter_map(|a| {
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                }
            })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// The DTLS certificate every peer of the slave shares: making one per peer
/// (webrtc-rs' default) is a key generation per connection.
pub(super) fn certificate() -> Result<RTCCertificate> {
    let provider = rtc::crypto::default_provider().map_err(|e| rtc::shared::error::Error::Crypto(e.to_string()))?;
    let params =
        CertificateParams::new(vec!["enslavism".to_owned()]).map_err(|e| rtc::shared::error::Error::Crypto(e.to_string()))?;
    RTCCertificate::generate(provider.crypto(), rtc::crypto::SignatureScheme::EcdsaP256Sha256, params)
}

/// What every peer of a shard is built with.
pub(super) struct PeerTemplate {
    settings: SettingEngine,
    configuration: RTCConfiguration,
    /// Our candidates, as `rtc` takes them: one host candidate per announced
    /// address, then the server-reflexive ones learned since.
    candidates: Vec<String>,
    /// The host candidates' addresses (the reflexive ones' base is the first).
    hosts: Vec<SocketAddr>,
    reflexive: Vec<SocketAddr>,
}

impl PeerTemplate {
    pub(super) fn new(config: &SlaveConfig, announced: &[IpAddr], port: u16, certificate: Option<RTCCertificate>) -> Self {
        let settings = SettingEngineBuilder::new()
            // The default role costs 140–340 ms per browser connection (DTLS and SCTP retries).
            .with_answering_dtls_role(RTCDtlsRole::Server)
            // Candidates are ours (the shard's socket); no multicast socket either.
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_timeouts(Some(config.ice_disconnected_timeout), Some(config.ice_failed_timeout), None)
            // Checked by `SlaveConfigBuilder::build`: at most 256 KiB.
            .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(config.max_message_size as u32))
            .build();
        let mut configuration = RTCConfigurationBuilder::new();
        if let Some(certificate) = certificate {
            configuration = configuration.with_certificates(vec![certificate]);
        }
        let hosts: Vec<SocketAddr> = announced.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        let candidates =
            hosts.iter().enumerate().map(|(i, addr)| candidate(i + 1, HOST_TYPE_PREFERENCE, *addr, "host")).collect();
        PeerTemplate { settings, configuration: configuration.build(), candidates, hosts, reflexive: Vec::new() }
    }

    /// Announces `mapped` (what a STUN server saw) to the peers created from
    /// now on, unless it is one of our host addresses (no NAT in between).
    pub(super) fn add_reflexive(&mut self, mapped: SocketAddr) {
        if self.hosts.contains(&mapped) || self.reflexive.contains(&mapped) {
            return;
        }
        let Some(base) = self.hosts.iter().find(|h| h.is_ipv4() == mapped.is_ipv4()).copied() else { return };
        tracing::info!(%mapped, "server-reflexive address");
        let foundation = self.candidates.len() + 1;
        let line = candidate(foundation, SRFLX_TYPE_PREFERENCE, mapped, "srflx");
        self.candidates.push(format!("{line} raddr {} rport {}", base.ip(), base.port()));
        self.reflexive.push(mapped);
    }

    /// A peer connection answering `offer_sdp`.
    pub(super) fn answer(
        &self,
        now: Instant,
        offer_sdp: &str,
        config: &SlaveConfig,
        known_streams: &mut HashSet<u16>,
    ) -> Result<Answered> {
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(self.configuration.clone())
            .with_setting_engine(self.settings.clone())
            .build(now)?;
        for candidate in &self.candidates {
            pc.add_local_candidate(RTCIceCandidateInit { candidate: candidate.clone(), ..Default::default() })?;
        }
        // End of candidates: gathering is complete at once.
        pc.add_local_candidate(RTCIceCandidateInit::default())?;
        let mut created = Vec::new();
        let sdp = apply_offer(&mut pc, now, offer_sdp, known_streams, &mut created, config)?;
        Ok(Answered { pc, sdp, created })
    }
}

/// A new peer connection and its answer.
pub(super) struct Answered {
    pub pc: RTCPeerConnection,
    /// The answer as the browser gets it (negotiated channels marked, every
    /// candidate in it, public addresses in place of bound ones).
    pub sdp: String,
    /// The negotiated channels it created: `rtc`'s id and what was asked.
    pub created: Vec<(usize, ChannelInfo)>,
}

/// RFC 8445's recommended type preferences.
const HOST_TYPE_PREFERENCE: u32 = 126;
const SRFLX_TYPE_PREFERENCE: u32 = 100;

/// `candidate:…` for a candidate of component 1 on `addr` (RFC 8445 priority).
fn candidate(foundation: usize, type_preference: u32, addr: SocketAddr, kind: &str) -> String {
    let priority: u32 = (type_preference << 24) | ((65535 - foundation.min(65535) as u32) << 8) | 255;
    format!("candidate:{foundation} 1 udp {priority} {} {} typ {kind}", addr.ip(), addr.port())
}

/// The ICE ufrag of our answer: what the browser's checks name us by.
pub(super) fn local_ufrag(answer_sdp: &str) -> Option<&str> {
    answer_sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// Applies an offer (the first or a renegotiation): creates the negotiated
/// channels it newly lists (`created` gains them; `known_streams` holds the
/// stream ids negotiated so far), answers, and returns the
/// answer as the browser gets it.
pub(super) fn apply_offer(
    pc: &mut RTCPeerConnection,
    now: Instant,
    offer_sdp: &str,
    known_streams: &mut HashSet<u16>,
    created: &mut Vec<(usize, ChannelInfo)>,
    config: &SlaveConfig,
) -> Result<String> {
    let (clean, listed) = negotiated::split_offer(offer_sdp);
    pc.set_remote_description(now, RTCSessionDescription::offer(clean)?)?;
    for channel in listed {
        if !known_streams.insert(channel.stream_id) {
            continue;
        }
        let stream = Some(channel.stream_id);
        let init = RTCDataChannelInit {
            ordered: channel.info.ordered,
            max_packet_life_time: channel.info.max_packet_life_time,
            max_retransmits: channel.info.max_retransmits,
            protocol: channel.info.protocol.clone(),
            negotiated: stream,
        };
        let dc = pc.create_data_channel(&channel.info.label, Some(init))?;
        created.push((dc.id(), channel.info));
    }
    let answer = pc.create_answer(None)?;
    pc.set_local_description(now, answer)?;
    let sdp = pc.local_description().map(|d| d.sdp).unwrap_or_default();
    Ok(nat::announced_sdp(&negotiated::mark_answer(&sdp), &config.public_addresses))
}

/// The connection's figures that `rtc` keeps: the ICE round trip, the
/// transport's datagrams, the selected pair. (The data-channel counters are
/// the shard's own.) Builds a whole `rtc` stats report: for reads on demand.
pub(super) fn connection_stats(pc: &mut RTCPeerConnection, now: Instant) -> ConnectionStats {
    let report = pc.get_stats(now, StatsSelector::None);
    let mut stats = ConnectionStats { rtt: selected_rtt(&report), ..ConnectionStats::default() };
    if let Some(transport) = report.transport() {
        stats.packets_in = transport.packets_received;
        stats.packets_out = transport.packets_sent;
        stats.transport_bytes_in = transport.bytes_received;
        stats.transport_bytes_out = transport.bytes_sent;
    }
    stats.selected_candidate_pair = selected_pair(pc);
    stats
}

/// The latest ICE round trip on the selected pair, if one was measured.
pub(super) fn round_trip(pc: &mut RTCPeerConnection, now: Instant) -> Option<Duration> {
    selected_rtt(&pc.get_stats(now, StatsSelector::None))
}

/// `rtc` 0.21.1 keeps figures for the selected pair only (it copies the ICE
/// agent's into its report for that pair alone); 0 s means "not measured".
fn selected_rtt(report: &RTCStatsReport) -> Option<Duration> {
    report
        .candidate_pairs()
        .map(|pair| pair.current_round_trip_time)
        .find(|rtt| rtt.is_finite() && *rtt > 0.0)
        .map(Duration::from_secs_f64)
}

/// The pair ICE selected, as socket addresses.
fn selected_pair(pc: &RTCPeerConnection) -> Option<CandidatePair> {
    let pair = pc.sctp()?.transport().ice_transport().get_selected_candidate_pair()?;
    let end = |c: &rtc::peer_connection::transport::RTCIceCandidate| {
        c.address.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, c.port))
    };
    Some(CandidatePair::new(end(pair.local())?, end(pair.remote())?))
}

#[cfg(test)]
mod tests {
    use super::expand;
    use std::net::IpAddr;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_wildcard_is_every_outside_address_or_else_loopback() {
        let host = ips(&["127.0.0.1", "10.1.2.3", "169.254.1.1", "::1", "fe80::1"]);
        assert_eq!(expand(&ips(&["0.0.0.0"]), &host), ips(&["10.1.2.3"]));
        // Loopback only: 0.9.0 announced 127.0.0.1 and ::1 there too.
        assert_eq!(expand(&ips(&["0.0.0.0"]), &ips(&["127.0.0.1", "::1"])), ips(&["127.0.0.1", "::1"]));
        assert_eq!(expand(&ips(&["0.0.0.0"]), &ips(&["127.0.0.1"])), ips(&["127.0.0.1"]));
        assert_eq!(expand(&ips(&["0.0.0.0", "::"]), &ips(&["127.0.0.1", "::1"])), ips(&["127.0.0.1", "::1"]));
        assert_eq!(expand(&ips(&["::"]), &host), ips(&["::1"]));
        assert_eq!(expand(&ips(&["127.0.0.1", "10.1.2.3"]), &host), ips(&["127.0.0.1", "10.1.2.3"]));
    }
}
