//! Making one str0m peer connection (an `Rtc`) of the slave: its settings,
//! its host candidates (the shard's socket), the answer to an offer and the
//! negotiated channels it lists.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::{Candidate, Output, Rtc, RtcConfig, RtcError};

use crate::transport::{settle, SharedCrypto};

use crate::slave::channel::ChannelInfo;
use crate::slave::{nat, negotiated, SlaveConfig};

/// Bytes str0m may buffer for sending over all channels of a connection.
/// Each channel keeps its own bound (the shard's `SCTP_SEND_BUFFER`); this
/// only has to hold the largest message on top of those. A message larger
/// than this can never be written (the shard refuses it).
pub(super) const SCTP_BUFFER: usize = crate::slave::config::MAX_MAX_MESSAGE_SIZE + 512 * 1024;

/// What every peer of a shard is built with.
pub(super) struct PeerTemplate {
    rtc_config: RtcConfig,
    /// Our candidates: one host candidate per announced address, then the
    /// server-reflexive ones learned since.
    candidates: Vec<Candidate>,
    /// The host candidates' addresses (the reflexive ones' base is the first).
    hosts: Vec<SocketAddr>,
    reflexive: Vec<SocketAddr>,
}

impl PeerTemplate {
    pub(super) fn new(announced: &[IpAddr], port: u16, crypto: SharedCrypto) -> Self {
        let rtc_config = crypto
            .rtc_config()
            // Data channels only: no codec to offer or accept.
            .clear_codecs()
            .set_sctp_max_buffered_amount(SCTP_BUFFER);
        let hosts: Vec<SocketAddr> = announced.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        let candidates = hosts
            .iter()
            .filter_map(|addr| {
                Candidate::host(*addr, "udp").map_err(|e| tracing::warn!(%addr, "host candidate refused: {e}")).ok()
            })
            .collect();
        PeerTemplate { rtc_config, candidates, hosts, reflexive: Vec::new() }
    }

    /// Announces `mapped` (what a STUN server saw) to the peers created from
    /// now on, unless it is one of our host addresses (no NAT in between).
    pub(super) fn add_reflexive(&mut self, mapped: SocketAddr) {
        if self.hosts.contains(&mapped) || self.reflexive.contains(&mapped) {
            return;
        }
        let Some(base) = self.hosts.iter().find(|h| h.is_ipv4() == mapped.is_ipv4()).copied() else { return };
        match Candidate::server_reflexive(mapped, base, "udp") {
            Ok(candidate) => {
                tracing::info!(%mapped, "server-reflexive address");
                self.candidates.push(candidate);
                self.reflexive.push(mapped);
            }
            Err(e) => tracing::warn!(%mapped, "server-reflexive candidate refused: {e}"),
        }
    }

    /// A peer connection answering `offer_sdp`.
    pub(super) fn answer(
        &self,
        now: Instant,
        offer_sdp: &str,
        config: &SlaveConfig,
        known_streams: &mut HashSet<u16>,
    ) -> Result<Answered, RtcError> {
        let mut rtc = self.rtc_config.clone().build(now);
        let mut pending = Vec::new();
        for candidate in &self.candidates {
            rtc.add_local_candidate(candidate.clone());
            settle(&mut rtc, &mut pending)?;
        }
        let mut created = Vec::new();
        let sdp = apply_offer(&mut rtc, offer_sdp, known_streams, &mut created, &mut pending, config)?;
        Ok(Answered { rtc, sdp, created, pending })
    }
}

/// A new peer connection and its answer.
pub(super) struct Answered {
    pub rtc: Rtc,
    /// The answer as the browser gets it (negotiated channels marked, every
    /// candidate in it, public addresses in place of bound ones).
    pub sdp: String,
    /// The negotiated channels it created: str0m's id and what was asked.
    pub created: Vec<(ChannelId, ChannelInfo)>,
    /// What str0m produced meanwhile (see [`settle`]).
    pub pending: Vec<Output>,
}

/// The ICE ufrag of our answer: what the browser's checks name us by.
pub(super) fn local_ufrag(answer_sdp: &str) -> Option<&str> {
    answer_sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// What str0m takes for a channel's reliability.
fn reliability(info: &ChannelInfo) -> Reliability {
    match (info.max_retransmits, info.max_packet_life_time) {
        (Some(retransmits), _) => Reliability::MaxRetransmits { retransmits },
        (None, Some(lifetime)) => Reliability::MaxPacketLifetime { lifetime },
        (None, None) => Reliability::Reliable,
    }
}

/// A channel's properties as str0m reports them (a channel the browser
/// opened in-band, known once its DCEP open arrived).
pub(super) fn channel_info(config: &ChannelConfig, stream_id: u16) -> ChannelInfo {
    let (max_retransmits, max_packet_life_time) = match config.reliability {
        Reliability::Reliable => (None, None),
        Reliability::MaxRetransmits { retransmits } => (Some(retransmits), None),
        Reliability::MaxPacketLifetime { lifetime } => (None, Some(lifetime)),
    };
    ChannelInfo {
        label: config.label.clone(),
        protocol: config.protocol.clone(),
        ordered: config.ordered,
        max_retransmits,
        max_packet_life_time,
        id: stream_id,
        negotiated: config.negotiated.is_some(),
    }
}

/// Applies an offer (the first or a renegotiation): creates the negotiated
/// channels it newly lists (`created` gains them; `known_streams` holds the
/// stream ids negotiated so far), answers, and returns the answer as the
/// browser gets it; what str0m produced meanwhile goes to `pending`.
pub(super) fn apply_offer(
    rtc: &mut Rtc,
    offer_sdp: &str,
    known_streams: &mut HashSet<u16>,
    created: &mut Vec<(ChannelId, ChannelInfo)>,
    pending: &mut Vec<Output>,
    config: &SlaveConfig,
) -> Result<String, RtcError> {
    let (clean, listed) = negotiated::split_offer(offer_sdp);
    let offer = SdpOffer::from_sdp_string(&clean)?;
    let answer = rtc.sdp_api().accept_offer(offer)?;
    settle(rtc, pending)?;
    for channel in listed {
        if !known_streams.insert(channel.stream_id) {
            continue;
        }
        let id = rtc.direct_api().create_data_channel(ChannelConfig {
            label: channel.info.label.clone(),
            ordered: channel.info.ordered,
            reliability: reliability(&channel.info),
            negotiated: Some(channel.stream_id),
            protocol: channel.info.protocol.clone(),
        });
        settle(rtc, pending)?;
        created.push((id, channel.info));
    }
    let sdp = with_max_message_size(&answer.to_sdp_string(), config.max_message_size);
    Ok(nat::announced_sdp(&negotiated::mark_answer(&sdp), &config.public_addresses))
}

/// The answer with our `a=max-message-size` (RFC 8841): str0m announces its
/// own receive limit (256 KiB); the slave keeps to the configured one and
/// drops larger messages itself (see the shard).
fn with_max_message_size(sdp: &str, max_message_size: usize) -> String {
    let line = format!("a=max-message-size:{max_message_size}");
    let mut out = String::with_capacity(sdp.len() + line.len() + 2);
    let mut placed = false;
    for l in sdp.split_inclusive('\n') {
        let bare = l.trim_end();
        if bare.starts_with("a=max-message-size:") {
            continue;
        }
        out.push_str(l);
        // After the SCTP port of the data section, where browsers put it.
        if !placed && bare.starts_with("a=sctp-port:") {
            out.push_str(&line);
            out.push_str("\r\n");
            placed = true;
        }
    }
    if !placed {
        if !out.ends_with('\n') {
            out.push_str("\r\n");
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}
