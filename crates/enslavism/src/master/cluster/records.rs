//! What masters of a cluster write to Redis and to each other, in one
//! place: key names, the slave records, the change stream's entries and
//! the relayed frames. Everything read back is checked: a foreign or
//! garbled record is an error, never a panic or a wrong listing.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::master::router::PeerKind;
use crate::proto::{Message, MessageType};

/// Bits of a client id that name the master (node) that gave it: 4,096 masters.
pub const NODE_BITS: u32 = 12;
/// Bits of a client id a master numbers its own clients with: 1,048,576 at a time.
pub const LOCAL_BITS: u32 = 32 - NODE_BITS;
/// Node numbers run from 1 to this (0 is never a node: ids below
/// 2^[`LOCAL_BITS`] are the cluster's slave ids).
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
/// Slave ids given by the cluster's counter are below this (it wraps).
pub const CLUSTER_SLAVE_IDS: u32 = 1 << LOCAL_BITS;

/// The node (master) whose client `id` is: client ids of a clustered master
/// are `node << LOCAL_BITS | n`, so a slave's answer to any client of the
/// cluster is routed by the id alone. (Slave ids are small numbers from a
/// counter the cluster shares, as a lone master's are: browsers keep
/// their slaves in an array indexed by id, where an id of 2^31 costs a
/// pass over 2^31 holes, 28 s in V8, whenever the list is iterated.)
pub fn node_of(id: u32) -> u16 {
    (id >> LOCAL_BITS) as u16
}

/// Names of the cluster's keys and channels. Every name has the cluster's
/// name in braces, a Redis Cluster hash tag: all of a cluster's keys live
/// on one shard, so a pipeline never crosses shards.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The names of cluster `name`'s keys.
    pub fn new(name: &str) -> Keys {
        Keys { prefix: format!("enslavism:{{{name}}}:") }
    }

    /// The counter slave ids are drawn from, in blocks (INCRBY).
    pub fn slave_ids(&self) -> String {
        format!("{}slave-ids", self.prefix)
    }

    /// The claim of one node number: the owning master's token, with a TTL.
    pub fn node(&self, node: u16) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// One slave's record ([`SlaveRecord`]), with a TTL.
    pub fn slave(&self, id: u32) -> String {
        format!("{}slave:{id}", self.prefix)
    }

    /// The pattern every slave key matches (SCAN).
    pub fn slave_pattern(&self) -> String {
        format!("{}slave:*", self.prefix)
    }

    /// The id in a slave key, if it is one of ours.
    pub fn slave_id(&self, key: &[u8]) -> Option<u32> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?.strip_prefix(b"slave:")?;
        let digits = std::str::from_utf8(rest).ok()?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The stream every registry change is appended to.
    pub fn changes(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// The pub/sub channel on which master `node` receives relayed frames.
    pub fn relay_channel(&self, node: u16) -> String {
        format!("{}relay:{node}", self.prefix)
    }
}

/// A record read from Redis that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// A slave record without its node line, or with a bad node number.
    #[error("malformed slave record")]
    MalformedSlave,
    /// The userData is not JSON, or too long.
    #[error("bad userData: {0}")]
    UserData(#[source] crate::proto::ProtoError),
    /// A change stream entry with missing or bad fields.
    #[error("malformed change entry")]
    MalformedChange,
    /// A relayed frame too short, for an unknown kind, or whose message
    /// is not one that may reach that kind of peer.
    #[error("malformed relayed frame")]
    MalformedRelay,
}

/// What a slave key holds: `"<node>\n<userData>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveRecord {
    /// The master the slave is connected to.
    pub node: u16,
    /// Its userData (JSON text).
    pub user_data: String,
}

impl SlaveRecord {
    /// The key's value.
    pub fn encode(node: u16, user_data: &str) -> String {
        format!("{node}\n{user_data}")
    }

    /// A slave key's value, checked: a node number, and the userData what
    /// a slave may register.
    pub fn decode(value: &[u8]) -> Result<SlaveRecord, RecordError> {
        let text = std::str::from_utf8(value).map_err(|_| RecordError::MalformedSlave)?;
        let (node, user_data) = text.split_once('\n').ok_or(RecordError::MalformedSlave)?;
        let node = parse_node(node).ok_or(RecordError::MalformedSlave)?;
        crate::proto::check_user_data(user_data).map_err(RecordError::UserData)?;
        Ok(SlaveRecord { node, user_data: user_data.to_owned() })
    }
}

fn parse_node(text: &str) -> Option<u16> {
    let node: u16 = text.parse().ok()?;
    ((1..=MAX_NODE).contains(&node) && !text.starts_with('+')).then_some(node)
}

/// One entry of the change stream: a slave listed (or its userData
/// changed), or gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Slave `id` of master `node` is listed with this userData.
    Set {
        /// The slave's id.
        id: u32,
        /// Its master.
        node: u16,
        /// Its userData.
        user_data: String,
    },
    /// Slave `id` of master `node` is gone.
    Remove {
        /// The slave's id.
        id: u32,
        /// Its master.
        node: u16,
    },
}

impl Change {
    /// The entry's fields (XADD).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Change::Set { id, node, user_data } => {
                vec![("op", "set".into()), ("id", id.to_string()), ("node", node.to_string()), ("data", user_data.clone())]
            }
            Change::Remove { id, node } => vec![("op", "remove".into()), ("id", id.to_string()), ("node", node.to_string())],
        }
    }

    /// The change an entry's fields describe, checked like a slave record.
    pub fn decode<'a>(mut field: impl FnMut(&str) -> Option<&'a [u8]>) -> Result<Change, RecordError> {
        let text = |v: Option<&'a [u8]>| v.and_then(|v| std::str::from_utf8(v).ok()).ok_or(RecordError::MalformedChange);
        let id: u32 = text(field("id"))?.parse().map_err(|_| RecordError::MalformedChange)?;
        let node = parse_node(text(field("node"))?).ok_or(RecordError::MalformedChange)?;
        match text(field("op"))? {
            "set" => {
                let user_data = text(field("data"))?;
                crate::proto::check_user_data(user_data).map_err(RecordError::UserData)?;
                Ok(Change::Set { id, node, user_data: user_data.to_owned() })
            }
            "remove" => Ok(Change::Remove { id, node }),
            _ => Err(RecordError::MalformedChange),
        }
    }
}

/// A 0.9.0 frame on its way to a peer of another master: `S` or `C` (the
/// kind), the peer's id (4 bytes, big-endian), then the frame exactly as
/// the peer will receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// Slave or client.
    pub kind: PeerKind,
    /// The peer's id.
    pub id: u32,
    /// The frame, ids already rewritten for the peer.
    pub frame: Bytes,
}

impl Relayed {
    /// The pub/sub message.
    pub fn encode(kind: PeerKind, id: u32, frame: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + frame.len());
        out.put_u8(match kind {
            PeerKind::Slave => b'S',
            PeerKind::Client => b'C',
        });
        out.put_u32(id);
        out.put_slice(frame);
        out.freeze()
    }

    /// The relayed frame in a pub/sub message, with its decoded message:
    /// only offers and candidates may go to a slave, only answers,
    /// candidates and rejections to a client.
    pub fn decode(message: Bytes) -> Result<(Relayed, Message), RecordError> {
        if message.len() < 6 {
            return Err(RecordError::MalformedRelay);
        }
        let kind = match message[0] {
            b'S' => PeerKind::Slave,
            b'C' => PeerKind::Client,
            _ => return Err(RecordError::MalformedRelay),
        };
        let id = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
        let frame = message.slice(5..);
        let decoded = Message::decode(&frame).map_err(|_| RecordError::MalformedRelay)?;
        use MessageType as T;
        let allowed = match kind {
            PeerKind::Slave => matches!(decoded.message_type(), T::OfferFromClient | T::IceCandidateFromClient),
            PeerKind::Client => {
                matches!(decoded.message_type(), T::AnswerFromSlave | T::IceCandidateFromSlave | T::RejectFromSlave)
            }
        };
        if !allowed {
            return Err(RecordError::MalformedRelay);
        }
        Ok((Relayed { kind, id, frame }, decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::SessionDescription;

    #[test]
    fn ids_carry_their_node() {
        assert_eq!(node_of(CLUSTER_SLAVE_IDS - 1), 0);
        assert_eq!(node_of((7 << LOCAL_BITS) | 12), 7);
        assert_eq!(node_of(u32::MAX), MAX_NODE);
    }

    #[test]
    fn keys_are_namespaced_and_slave_ids_read_back() {
        let keys = Keys::new("eu");
        assert_eq!(keys.slave(42), "enslavism:{eu}:slave:42");
        assert_eq!(keys.slave_id(b"enslavism:{eu}:slave:42"), Some(42));
        assert_eq!(keys.slave_id(b"enslavism:{us}:slave:42"), None);
        assert_eq!(keys.slave_id(b"enslavism:{eu}:slave:-1"), None);
        assert_eq!(keys.slave_id(b"enslavism:{eu}:slave:99999999999"), None);
        assert_eq!(keys.relay_channel(3), "enslavism:{eu}:relay:3");
    }

    #[test]
    fn slave_records_are_checked() {
        let value = SlaveRecord::encode(5, r#"{"name":"a"}"#);
        assert_eq!(SlaveRecord::decode(value.as_bytes()), Ok(SlaveRecord { node: 5, user_data: r#"{"name":"a"}"#.into() }));
        assert_eq!(SlaveRecord::decode(b"5{}"), Err(RecordError::MalformedSlave));
        assert_eq!(SlaveRecord::decode(b"0\n{}"), Err(RecordError::MalformedSlave), "0 is never a node");
        assert_eq!(SlaveRecord::decode(b"99999\n{}"), Err(RecordError::MalformedSlave));
        assert!(matches!(SlaveRecord::decode(b"5\nnot json"), Err(RecordError::UserData(_))));
        assert_eq!(SlaveRecord::decode(b"\xff\n{}"), Err(RecordError::MalformedSlave));
    }

    #[test]
    fn changes_round_trip_and_garbage_is_refused() {
        let id = 9;
        for change in [Change::Set { id, node: 2, user_data: "[1]".into() }, Change::Remove { id, node: 2 }] {
            let fields = change.fields();
            let decoded = Change::decode(|name| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes()));
            assert_eq!(decoded, Ok(change));
        }
        let bad = [("op", "drop"), ("id", "1"), ("node", "0")];
        let decoded = Change::decode(|name| bad.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes()));
        assert_eq!(decoded, Err(RecordError::MalformedChange));
        assert_eq!(Change::decode(|_| None), Err(RecordError::MalformedChange));
    }

    #[test]
    fn relayed_frames_round_trip_and_only_the_right_types_pass() {
        let offer = Message::OfferFromClient(SessionDescription { id: 7, sdp: "v=0".into() }).encode().unwrap();
        let message = Relayed::encode(PeerKind::Slave, 3, &offer);
        let (relayed, decoded) = Relayed::decode(message).unwrap();
        assert_eq!((relayed.kind, relayed.id, &relayed.frame[..]), (PeerKind::Slave, 3, &offer[..]));
        assert_eq!(decoded.message_type(), MessageType::OfferFromClient);
        // An offer is never for a client.
        assert_eq!(Relayed::decode(Relayed::encode(PeerKind::Client, 3, &offer)), Err(RecordError::MalformedRelay));
        assert_eq!(Relayed::decode(Bytes::from_static(b"X\0\0\0\x01\x05")), Err(RecordError::MalformedRelay));
        assert_eq!(Relayed::decode(Bytes::from_static(b"S\0")), Err(RecordError::MalformedRelay));
    }
}
