//! The enslavism wire format: 0.9.0's thirteen messages bit for bit, and the
//! five that peers speaking [`ProtocolVersion::V2`] add (live userData, an
//! application-level ping). `doc/protocol.md` draws every frame.
//!
//! Every frame is one binary WebSocket message: a type byte, then a body whose
//! shape depends on the type. Integers are big-endian. [`Message::decode`]
//! never panics: every truncated, oversized, unknown or otherwise malformed
//! frame becomes a [`ProtoError`]. [`Message::encode`] refuses what the format
//! cannot carry (0.9.0 silently truncated such lengths).

use thiserror::Error;

/// The largest userData JSON a slave can register: AddSlaves carries its
/// length in a `u16`.
pub const MAX_USER_DATA_LEN: usize = u16::MAX as usize;

/// The largest `sdpMid` an ICE candidate can carry: its length is a `u8`,
/// and length 0 is reserved for the null (end-of-candidates) candidate.
pub const MAX_SDP_MID_LEN: usize = u8::MAX as usize;

/// The WebSocket subprotocol that names [`ProtocolVersion::V1`], 0.9.0's messages.
pub const SUBPROTOCOL_V1: &str = "enslavism.1";

/// The WebSocket subprotocol a peer offers to speak [`ProtocolVersion::V2`].
pub const SUBPROTOCOL_V2: &str = "enslavism.2";

/// What our slaves and clients offer in `Sec-WebSocket-Protocol`. V1 comes
/// first because a 0.9.0 master (its `ws` server) agrees to the first one
/// offered: it then agrees to V1, which it speaks. Our master picks V2.
pub const OFFERED_SUBPROTOCOLS: &str = "enslavism.1, enslavism.2";

/// Which messages a peer understands, agreed in its WebSocket handshake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// enslavism 0.9.0's thirteen messages; no subprotocol.
    #[default]
    V1,
    /// Subprotocol [`SUBPROTOCOL_V2`]: V1 and the five messages after it
    /// (userData updates and their outcome, [`Message::UpdateSlaves`], ping and pong).
    V2,
}

impl ProtocolVersion {
    /// The version a handshake's agreed subprotocol stands for.
    pub fn from_subprotocol(subprotocol: Option<&str>) -> Self {
        match subprotocol {
            Some(SUBPROTOCOL_V2) => ProtocolVersion::V2,
            _ => ProtocolVersion::V1,
        }
    }
}

/// The type byte that starts every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// slave → master: the slave's userData as JSON.
    Register = 0,
    /// master → client: slaves to add to the list.
    AddSlaves = 1,
    /// master → client: ids of slaves to remove, as a JSON array.
    RemoveSlaves = 2,
    /// client → master: an SDP offer for the slave with this id.
    OfferToSlave = 3,
    /// master → slave: an SDP offer from the client with this id.
    OfferFromClient = 4,
    /// slave → master: an SDP answer for the client with this id.
    AnswerToClient = 5,
    /// master → client: an SDP answer from the slave with this id.
    AnswerFromSlave = 6,
    /// client → master: an ICE candidate for the slave with this id.
    IceCandidateToSlave = 7,
    /// master → slave: an ICE candidate from the client with this id.
    IceCandidateFromClient = 8,
    /// slave → master: an ICE candidate for the client with this id.
    IceCandidateToClient = 9,
    /// master → client: an ICE candidate from the slave with this id.
    IceCandidateFromSlave = 10,
    /// slave → master: the slave refuses the client with this id.
    RejectToClient = 11,
    /// master → client: the slave with this id refused the connection.
    RejectFromSlave = 12,
    /// slave → master (V2): new userData for the registered slave.
    UpdateUserData = 13,
    /// master → slave (V2): whether the update with this sequence number was applied.
    UserDataResult = 14,
    /// master → client (V2): listed slaves whose userData changed.
    UpdateSlaves = 15,
    /// peer → master (V2): are you there?
    Ping = 16,
    /// master → peer (V2): the answer to a ping.
    Pong = 17,
}

impl MessageType {
    /// The oldest protocol version that has this message.
    pub fn since(self) -> ProtocolVersion {
        if (self as u8) < MessageType::UpdateUserData as u8 {
            ProtocolVersion::V1
        } else {
            ProtocolVersion::V2
        }
    }
}

impl MessageType {
    /// The type for a type byte, if the byte names one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        use MessageType::*;
        Some(match byte {
            0 => Register,
            1 => AddSlaves,
            2 => RemoveSlaves,
            3 => OfferToSlave,
            4 => OfferFromClient,
            5 => AnswerToClient,
            6 => AnswerFromSlave,
            7 => IceCandidateToSlave,
            8 => IceCandidateFromClient,
            9 => IceCandidateToClient,
            10 => IceCandidateFromSlave,
            11 => RejectToClient,
            12 => RejectFromSlave,
            13 => UpdateUserData,
            14 => UserDataResult,
            15 => UpdateSlaves,
            16 => Ping,
            17 => Pong,
            _ => return None,
        })
    }
}

/// Why a frame could not be decoded or a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// The frame had no bytes at all.
    #[error("empty frame: every frame starts with a type byte")]
    Empty,
    /// The type byte names no message of the protocol.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The frame ended before a field it must hold.
    #[error("{msg_type:?} frame truncated: {needed} bytes needed, {got} present")]
    Truncated {
        /// The type of the truncated frame.
        msg_type: MessageType,
        /// How many bytes the frame needed at least.
        needed: usize,
        /// How many bytes it had.
        got: usize,
    },
    /// The frame went on after its last field.
    #[error("{msg_type:?} frame has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The type of the frame.
        msg_type: MessageType,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A text field was not valid UTF-8.
    #[error("{msg_type:?} frame holds text that is not valid UTF-8")]
    InvalidUtf8 {
        /// The type of the frame.
        msg_type: MessageType,
    },
    /// A JSON field was not valid JSON (or not the JSON shape required).
    #[error("{msg_type:?} frame holds invalid JSON: {reason}")]
    InvalidJson {
        /// The type of the frame.
        msg_type: MessageType,
        /// What the JSON parser said.
        reason: String,
    },
    /// userData is longer than AddSlaves can carry.
    #[error("userData is {len} bytes of JSON; the protocol carries at most {MAX_USER_DATA_LEN}")]
    UserDataTooLong {
        /// The length of the JSON text, in bytes.
        len: usize,
    },
    /// An ICE candidate's sdpMid is empty or longer than 255 bytes.
    #[error("sdpMid is {len} bytes; the protocol carries 1 to {MAX_SDP_MID_LEN} (empty means the null candidate)")]
    BadSdpMid {
        /// The length of the sdpMid, in bytes.
        len: usize,
    },
}

/// A slave as listed to clients: its id and its userData as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveEntry {
    /// The slave's id, given by the master.
    pub id: u32,
    /// The slave's userData, JSON text of at most [`MAX_USER_DATA_LEN`] bytes.
    pub user_data: String,
}

/// An SDP offer or answer addressed to, or coming from, a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The other peer's id (destination on the way in, sender on the way out).
    pub id: u32,
    /// The SDP text.
    pub sdp: String,
}

/// A trickled ICE candidate, as the browser's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The media stream identification tag, 1 to 255 bytes.
    pub sdp_mid: String,
    /// The index of the m-line the candidate belongs to.
    pub sdp_m_line_index: u16,
    /// The candidate line (`candidate:…`), possibly empty.
    pub candidate: String,
}

/// An ICE candidate addressed to, or coming from, a peer. `None` is the null
/// candidate that ends gathering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    /// The other peer's id (destination on the way in, sender on the way out).
    pub id: u32,
    /// The candidate, or `None` for end of candidates.
    pub candidate: Option<Candidate>,
}

/// One frame of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// slave → master: register with this userData (JSON text).
    Register {
        /// The slave's userData, JSON text of at most [`MAX_USER_DATA_LEN`] bytes.
        user_data: String,
    },
    /// master → client: slaves to add (possibly none).
    AddSlaves(Vec<SlaveEntry>),
    /// master → client: ids of slaves that are gone.
    RemoveSlaves(Vec<u32>),
    /// client → master: offer for a slave.
    OfferToSlave(SessionDescription),
    /// master → slave: offer from a client.
    OfferFromClient(SessionDescription),
    /// slave → master: answer for a client.
    AnswerToClient(SessionDescription),
    /// master → client: answer from a slave.
    AnswerFromSlave(SessionDescription),
    /// client → master: candidate for a slave.
    IceCandidateToSlave(IceCandidate),
    /// master → slave: candidate from a client.
    IceCandidateFromClient(IceCandidate),
    /// slave → master: candidate for a client.
    IceCandidateToClient(IceCandidate),
    /// master → client: candidate from a slave.
    IceCandidateFromSlave(IceCandidate),
    /// slave → master: refuse the client with this id.
    RejectToClient {
        /// The refused client's id.
        id: u32,
    },
    /// master → client: the slave with this id refused.
    RejectFromSlave {
        /// The refusing slave's id.
        id: u32,
    },
    /// slave → master (V2): replace the registered slave's userData.
    UpdateUserData {
        /// Numbers the slave's updates, so that their results can be told apart.
        seq: u32,
        /// The new userData, JSON text of at most [`MAX_USER_DATA_LEN`] bytes.
        user_data: String,
    },
    /// master → slave (V2): the outcome of the update numbered `seq` (and of
    /// every earlier one still waiting: the master keeps only the latest).
    UserDataResult {
        /// The update's number.
        seq: u32,
        /// `None` when applied; otherwise why it was refused.
        refusal: Option<String>,
    },
    /// master → client (V2): these listed slaves have new userData.
    UpdateSlaves(Vec<SlaveEntry>),
    /// peer → master (V2): asks for a [`Message::Pong`] with the same token.
    Ping {
        /// Chosen by the peer, sent back as is.
        token: u32,
    },
    /// master → peer (V2): answers the [`Message::Ping`] with this token.
    Pong {
        /// The ping's token.
        token: u32,
    },
}

impl Message {
    /// The type byte of this message.
    pub fn message_type(&self) -> MessageType {
        use MessageType as T;
        match self {
            Message::Register { .. } => T::Register,
            Message::AddSlaves(_) => T::AddSlaves,
            Message::RemoveSlaves(_) => T::RemoveSlaves,
            Message::OfferToSlave(_) => T::OfferToSlave,
            Message::OfferFromClient(_) => T::OfferFromClient,
            Message::AnswerToClient(_) => T::AnswerToClient,
            Message::AnswerFromSlave(_) => T::AnswerFromSlave,
            Message::IceCandidateToSlave(_) => T::IceCandidateToSlave,
            Message::IceCandidateFromClient(_) => T::IceCandidateFromClient,
            Message::IceCandidateToClient(_) => T::IceCandidateToClient,
            Message::IceCandidateFromSlave(_) => T::IceCandidateFromSlave,
            Message::RejectToClient { .. } => T::RejectToClient,
            Message::RejectFromSlave { .. } => T::RejectFromSlave,
            Message::UpdateUserData { .. } => T::UpdateUserData,
            Message::UserDataResult { .. } => T::UserDataResult,
            Message::UpdateSlaves(_) => T::UpdateSlaves,
            Message::Ping { .. } => T::Ping,
            Message::Pong { .. } => T::Pong,
        }
    }

    /// Decodes one frame. Never panics; anything malformed is an error.
    pub fn decode(frame: &[u8]) -> Result<Message, ProtoError> {
        let (&type_byte, _) = frame.split_first().ok_or(ProtoError::Empty)?;
        let msg_type = MessageType::from_byte(type_byte).ok_or(ProtoError::UnknownType(type_byte))?;
        let mut r = Reader { frame, pos: 1, msg_type };
        use MessageType as T;
        let msg = match msg_type {
            T::Register => {
                let user_data = r.rest_str()?;
                check_user_data(&user_data)?;
                Message::Register { user_data }
            }
            T::AddSlaves => Message::AddSlaves(r.slave_entries()?),
            T::RemoveSlaves => {
                let text = r.rest_str()?;
                let ids: Vec<u32> = serde_json::from_str(&text).map_err(|e| r.json_error(e))?;
                Message::RemoveSlaves(ids)
            }
            T::OfferToSlave => Message::OfferToSlave(r.session_description()?),
            T::OfferFromClient => Message::OfferFromClient(r.session_description()?),
            T::AnswerToClient => Message::AnswerToClient(r.session_description()?),
            T::AnswerFromSlave => Message::AnswerFromSlave(r.session_description()?),
            T::IceCandidateToSlave => Message::IceCandidateToSlave(r.ice_candidate()?),
            T::IceCandidateFromClient => Message::IceCandidateFromClient(r.ice_candidate()?),
            T::IceCandidateToClient => Message::IceCandidateToClient(r.ice_candidate()?),
            T::IceCandidateFromSlave => Message::IceCandidateFromSlave(r.ice_candidate()?),
            T::RejectToClient => Message::RejectToClient { id: r.u32()? },
            T::RejectFromSlave => Message::RejectFromSlave { id: r.u32()? },
            T::UpdateUserData => {
                let seq = r.u32()?;
                let user_data = r.rest_str()?;
                check_user_data_len(&user_data)?;
                r.check_json(&user_data)?;
                Message::UpdateUserData { seq, user_data }
            }
            T::UserDataResult => {
                let seq = r.u32()?;
                let refusal = match r.u8()? {
                    0 => None,
                    _ => Some(r.rest_str()?),
                };
                Message::UserDataResult { seq, refusal }
            }
            T::UpdateSlaves => Message::UpdateSlaves(r.slave_entries()?),
            T::Ping => Message::Ping { token: r.u32()? },
            T::Pong => Message::Pong { token: r.u32()? },
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes this message into one frame.
    ///
    /// Fails where the format cannot carry a field: userData over
    /// [`MAX_USER_DATA_LEN`] bytes, an sdpMid that is empty or over
    /// [`MAX_SDP_MID_LEN`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.push(self.message_type() as u8);
        match self {
            Message::Register { user_data } => {
                check_user_data_len(user_data)?;
                out.extend_from_slice(user_data.as_bytes());
            }
            Message::AddSlaves(slaves) | Message::UpdateSlaves(slaves) => {
                for slave in slaves {
                    check_user_data_len(&slave.user_data)?;
                    out.extend_from_slice(&slave.id.to_be_bytes());
                    out.extend_from_slice(&(slave.user_data.len() as u16).to_be_bytes());
                    out.extend_from_slice(slave.user_data.as_bytes());
                }
            }
            Message::RemoveSlaves(ids) => {
                // A JSON array of integers; written directly, it cannot fail.
                out.push(b'[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(id.to_string().as_bytes());
                }
                out.push(b']');
            }
            Message::OfferToSlave(d) | Message::OfferFromClient(d) | Message::AnswerToClient(d) | Message::AnswerFromSlave(d) => {
                out.extend_from_slice(&d.id.to_be_bytes());
                out.extend_from_slice(d.sdp.as_bytes());
            }
            Message::IceCandidateToSlave(c)
            | Message::IceCandidateFromClient(c)
            | Message::IceCandidateToClient(c)
            | Message::IceCandidateFromSlave(c) => {
                out.extend_from_slice(&c.id.to_be_bytes());
                match &c.candidate {
                    None => out.push(0),
                    Some(cand) => {
                        let mid_len = cand.sdp_mid.len();
                        if mid_len == 0 || mid_len > MAX_SDP_MID_LEN {
                            return Err(ProtoError::BadSdpMid { len: mid_len });
                        }
                        out.push(mid_len as u8);
                        out.extend_from_slice(cand.sdp_mid.as_bytes());
                        out.extend_from_slice(&cand.sdp_m_line_index.to_be_bytes());
                        out.extend_from_slice(cand.candidate.as_bytes());
                    }
                }
            }
            Message::RejectToClient { id } | Message::RejectFromSlave { id } => {
                out.extend_from_slice(&id.to_be_bytes());
            }
            Message::UpdateUserData { seq, user_data } => {
                check_user_data_len(user_data)?;
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(user_data.as_bytes());
            }
            Message::UserDataResult { seq, refusal } => {
                out.extend_from_slice(&seq.to_be_bytes());
                match refusal {
                    None => out.push(0),
                    Some(reason) => {
                        out.push(1);
                        out.extend_from_slice(reason.as_bytes());
                    }
                }
            }
            Message::Ping { token } | Message::Pong { token } => out.extend_from_slice(&token.to_be_bytes()),
        }
        Ok(out)
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            Message::Register { user_data } => 1 + user_data.len(),
            Message::AddSlaves(s) | Message::UpdateSlaves(s) => 1 + s.iter().map(|e| 6 + e.user_data.len()).sum::<usize>(),
            Message::RemoveSlaves(ids) => 3 + ids.len() * 11,
            Message::OfferToSlave(d) | Message::OfferFromClient(d) | Message::AnswerToClient(d) | Message::AnswerFromSlave(d) => {
                5 + d.sdp.len()
            }
            Message::IceCandidateToSlave(c)
            | Message::IceCandidateFromClient(c)
            | Message::IceCandidateToClient(c)
            | Message::IceCandidateFromSlave(c) => 8 + c.candidate.as_ref().map_or(0, |c| c.sdp_mid.len() + c.candidate.len()),
            Message::RejectToClient { .. } | Message::RejectFromSlave { .. } => 5,
            Message::UpdateUserData { user_data, .. } => 5 + user_data.len(),
            Message::UserDataResult { refusal, .. } => 6 + refusal.as_ref().map_or(0, String::len),
            Message::Ping { .. } | Message::Pong { .. } => 5,
        }
    }
}

/// Checks that `user_data` is JSON text a slave can register: valid JSON of at
/// most [`MAX_USER_DATA_LEN`] bytes.
pub fn check_user_data(user_data: &str) -> Result<(), ProtoError> {
    check_user_data_len(user_data)?;
    serde_json::from_str::<serde::de::IgnoredAny>(user_data)
        .map(|_| ())
        .map_err(|e| ProtoError::InvalidJson { msg_type: MessageType::Register, reason: e.to_string() })
}

fn check_user_data_len(user_data: &str) -> Result<(), ProtoError> {
    if user_data.len() > MAX_USER_DATA_LEN {
        return Err(ProtoError::UserDataTooLong { len: user_data.len() });
    }
    Ok(())
}

/// A bounds-checked cursor over one frame.
struct Reader<'a> {
    frame: &'a [u8],
    pos: usize,
    msg_type: MessageType,
}

impl Reader<'_> {
    fn at_end(&self) -> bool {
        self.pos == self.frame.len()
    }

    fn take(&mut self, n: usize) -> Result<&[u8], ProtoError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.frame.len()).ok_or(ProtoError::Truncated {
            msg_type: self.msg_type,
            needed: self.pos.saturating_add(n),
            got: self.frame.len(),
        })?;
        let bytes = &self.frame[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ProtoError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str(&mut self, n: usize) -> Result<String, ProtoError> {
        let msg_type = self.msg_type;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| ProtoError::InvalidUtf8 { msg_type })
    }

    fn rest_str(&mut self) -> Result<String, ProtoError> {
        self.str(self.frame.len() - self.pos)
    }

    fn json_error(&self, e: serde_json::Error) -> ProtoError {
        ProtoError::InvalidJson { msg_type: self.msg_type, reason: e.to_string() }
    }

    fn check_json(&self, text: &str) -> Result<(), ProtoError> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ()).map_err(|e| self.json_error(e))
    }

    /// AddSlaves' and UpdateSlaves' body: (id, length, JSON) until the end.
    fn slave_entries(&mut self) -> Result<Vec<SlaveEntry>, ProtoError> {
        let mut slaves = Vec::new();
        while !self.at_end() {
            let id = self.u32()?;
            let len = self.u16()? as usize;
            let user_data = self.str(len)?;
            self.check_json(&user_data)?;
            slaves.push(SlaveEntry { id, user_data });
        }
        Ok(slaves)
    }

    fn session_description(&mut self) -> Result<SessionDescription, ProtoError> {
        let id = self.u32()?;
        let sdp = self.rest_str()?;
        Ok(SessionDescription { id, sdp })
    }

    fn ice_candidate(&mut self) -> Result<IceCandidate, ProtoError> {
        let id = self.u32()?;
        let mid_len = self.u8()? as usize;
        if mid_len == 0 {
            return Ok(IceCandidate { id, candidate: None });
        }
        let sdp_mid = self.str(mid_len)?;
        let sdp_m_line_index = self.u16()?;
        let candidate = self.rest_str()?;
        Ok(IceCandidate { id, candidate: Some(Candidate { sdp_mid, sdp_m_line_index, candidate }) })
    }

    fn finish(&self) -> Result<(), ProtoError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes { msg_type: self.msg_type, extra: self.frame.len() - self.pos })
        }
    }
}

#[cfg(test)]
mod tests;
