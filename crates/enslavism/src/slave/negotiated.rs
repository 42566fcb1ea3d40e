//! Unreliable channels that really are unreliable on the slave side.
//!
//! webrtc-rs 0.21 (the slave's engine until 0.10) accepts a channel opened
//! in-band by the browser (DCEP) as fully reliable whatever the browser
//! asked for, but a channel created on its side with the same parameters is
//! what was asked. (str0m keeps what the DCEP OPEN asked.) So our browser
//! client opens unreliable channels as *negotiated* (an agreed stream id),
//! and lists them in the offer it sends through the master, one SDP attribute
//! each:
//!
//! ```text
//! a=x-enslavism-channel:{"id":256,"label":"state","ordered":false,"maxRetransmits":0,"maxPacketLifeTime":null,"protocol":""}
//! ```
//!
//! The slave creates the matching channels before answering and marks its
//! answer with `a=x-enslavism-negotiated:1`, so that the client knows it can
//! rely on this (a 0.9.0 slave ignores the attributes and does not mark its
//! answer; the client then falls back to in-band channels). The attributes
//! never reach str0m or the browser's own SDP machinery: they exist only
//! in the signalling text.

use super::channel::ChannelInfo;

/// The offer line listing one negotiated channel, followed by its JSON.
pub(crate) const CHANNEL_ATTRIBUTE: &str = "a=x-enslavism-channel:";
/// The line a slave adds to its answer to say it created the listed channels.
pub(crate) const SUPPORT_LINE: &str = "a=x-enslavism-negotiated:1";

/// A channel the client opened as negotiated, with its agreed stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NegotiatedChannel {
    /// The SCTP stream id both sides use.
    pub stream_id: u16,
    /// Its label and reliability.
    pub info: ChannelInfo,
}

/// Splits an offer into the SDP for str0m (our attributes removed) and
/// the negotiated channels it lists. Malformed attributes are skipped.
pub(crate) fn split_offer(sdp: &str) -> (String, Vec<NegotiatedChannel>) {
    let mut clean = String::with_capacity(sdp.len());
    let mut channels = Vec::new();
    for line in sdp.split_inclusive('\n') {
        match line.trim_end().strip_prefix(CHANNEL_ATTRIBUTE) {
            Some(json) => match parse_channel(json) {
                Some(channel) if !channels.iter().any(|c: &NegotiatedChannel| c.stream_id == channel.stream_id) => {
                    channels.push(channel)
                }
                _ => {
                    tracing::debug!("ignoring a malformed or repeated negotiated-channel attribute")
                }
            },
            None => clean.push_str(line),
        }
    }
    (clean, channels)
}

fn parse_channel(json: &str) -> Option<NegotiatedChannel> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let u16_field = |name: &str| -> Option<Option<u16>> {
        match value.get(name) {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(v) => v.as_u64().and_then(|n| u16::try_from(n).ok()).map(Some),
        }
    };
    let stream_id = u16::try_from(value.get("id")?.as_u64()?).ok()?;
    let info = ChannelInfo {
        label: value.get("label")?.as_str()?.to_owned(),
        protocol: value.get("protocol").and_then(|p| p.as_str()).unwrap_or("").to_owned(),
        ordered: value.get("ordered").and_then(|o| o.as_bool()).unwrap_or(true),
        max_retransmits: u16_field("maxRetransmits")?,
        max_packet_life_time: u16_field("maxPacketLifeTime")?,
        id: stream_id,
        negotiated: true,
    };
    Some(NegotiatedChannel { stream_id, info })
}

/// The answer as sent to the client: marked as supporting negotiated channels.
pub(crate) fn mark_answer(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + SUPPORT_LINE.len() + 2);
    out.push_str(sdp);
    if !out.ends_with('\n') {
        out.push_str("\r\n");
    }
    out.push_str(SUPPORT_LINE);
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_channels_are_taken_out_of_the_offer() {
        let offer = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
            a=x-enslavism-channel:{\"id\":256,\"label\":\"state\",\"ordered\":false,\"maxRetransmits\":0,\"maxPacketLifeTime\":null,\"protocol\":\"p\"}\r\n\
            a=x-enslavism-channel:{\"id\":257,\"label\":\"fx\",\"maxPacketLifeTime\":150}\r\n";
        let (clean, channels) = split_offer(offer);
        assert_eq!(clean, "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n");
        assert_eq!(channels.len(), 2);
        assert_eq!(channels[0].stream_id, 256);
        assert_eq!(
            channels[0].info,
            ChannelInfo {
                label: "state".into(),
                protocol: "p".into(),
                ordered: false,
                max_retransmits: Some(0),
                max_packet_life_time: None,
                id: 256,
                negotiated: true
            }
        );
        assert_eq!(channels[1].info.max_packet_life_time, Some(150));
        assert!(channels[1].info.ordered);
    }

    #[test]
    fn malformed_and_repeated_attributes_are_skipped() {
        let offer = "v=0\r\na=x-enslavism-channel:{\r\na=x-enslavism-channel:{\"id\":70000,\"label\":\"x\"}\r\n\
            a=x-enslavism-channel:{\"id\":1,\"label\":\"a\"}\r\na=x-enslavism-channel:{\"id\":1,\"label\":\"b\"}\r\n\
            a=x-enslavism-channel:{\"id\":2,\"label\":\"c\",\"maxRetransmits\":-1}\r\n";
        let (clean, channels) = split_offer(offer);
        assert_eq!(clean, "v=0\r\n");
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].info.label, "a");
    }

    #[test]
    fn an_offer_without_attributes_is_unchanged() {
        let offer = "v=0\r\na=mid:0\r\n";
        assert_eq!(split_offer(offer), (offer.to_owned(), vec![]));
    }

    #[test]
    fn answers_are_marked() {
        assert_eq!(mark_answer("v=0\r\n"), "v=0\r\na=x-enslavism-negotiated:1\r\n");
        assert_eq!(mark_answer("v=0"), "v=0\r\na=x-enslavism-negotiated:1\r\n");
    }
}
