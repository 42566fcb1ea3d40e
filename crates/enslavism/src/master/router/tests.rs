use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::master::cluster::records::Relayed;
use crate::proto::Candidate;
use crate::proto::ProtocolVersion::{V1, V2};

/// An in-memory peer: what was queued for it, and whether it was asked to close.
#[derive(Clone, Default)]
struct Inbox {
    frames: Rc<RefCell<Vec<Bytes>>>,
    closed: Rc<RefCell<Option<(u16, String)>>>,
    capacity: Option<usize>,
}

impl Inbox {
    fn with_capacity(capacity: usize) -> Self {
        Inbox { capacity: Some(capacity), ..Default::default() }
    }

    fn take(&self) -> Vec<Message> {
        self.frames.borrow_mut().drain(..).map(|f| Message::decode(&f).unwrap()).collect()
    }
}

impl PeerLink for Inbox {
    fn push(&self, frame: Bytes) -> bool {
        let mut frames = self.frames.borrow_mut();
        if self.capacity.is_some_and(|c| frames.len() >= c) {
            return false;
        }
        frames.push(frame);
        true
    }

    fn close(&self, code: u16, reason: &str) {
        *self.closed.borrow_mut() = Some((code, reason.to_owned()));
    }
}

fn register(user_data: &str) -> Message {
    Message::Register { user_data: user_data.to_owned() }
}

fn sd(id: u32, sdp: &str) -> SessionDescription {
    SessionDescription { id, sdp: sdp.to_owned() }
}

fn entry(id: u32, user_data: &str) -> SlaveEntry {
    SlaveEntry { id, user_data: user_data.to_owned() }
}

#[test]
fn a_new_client_gets_the_registered_slaves_only() {
    let mut router = SignallingRouter::new();
    let (a, b) = (Inbox::default(), Inbox::default());
    let sa = router.add_slave(a, V1).unwrap();
    let _sb = router.add_slave(b, V1).unwrap(); // never registers
    router.route(PeerKind::Slave, sa, register(r#"{"name":"a"}"#)).unwrap();

    let c = Inbox::default();
    router.add_client(c.clone(), V1).unwrap();
    assert_eq!(c.take(), vec![Message::AddSlaves(vec![entry(sa, r#"{"name":"a"}"#)])]);
}

#[test]
fn an_empty_list_is_a_bare_type_byte() {
    let mut router = SignallingRouter::new();
    let c = Inbox::default();
    router.add_client(c.clone(), V1).unwrap();
    assert_eq!(c.frames.borrow().as_slice(), &[Bytes::from_static(&[1])]);
}

#[test]
fn register_and_disconnect_are_broadcast_to_every_client() {
    let mut router = SignallingRouter::new();
    let clients: Vec<Inbox> = (0..3).map(|_| Inbox::default()).collect();
    for c in &clients {
        router.add_client(c.clone(), V1).unwrap();
        c.take();
    }
    let s = router.add_slave(Inbox::default(), V1).unwrap();
    router.route(PeerKind::Slave, s, register("[1,2]")).unwrap();
    router.remove(PeerKind::Slave, s);
    for c in &clients {
        assert_eq!(c.take(), vec![Message::AddSlaves(vec![entry(s, "[1,2]")]), Message::RemoveSlaves(vec![s])]);
    }
}

#[test]
fn an_unregistered_slave_leaves_silently() {
    let mut router = SignallingRouter::new();
    let c = Inbox::default();
    router.add_client(c.clone(), V1).unwrap();
    c.take();
    let s = router.add_slave(Inbox::default(), V1).unwrap();
    router.remove(PeerKind::Slave, s);
    assert!(c.take().is_empty());
}

#[test]
fn registering_again_replaces_the_slave_in_every_list() {
    let mut router = SignallingRouter::new();
    let c = Inbox::default();
    router.add_client(c.clone(), V1).unwrap();
    let s = router.add_slave(Inbox::default(), V1).unwrap();
    router.route(PeerKind::Slave, s, register("1")).unwrap();
    router.route(PeerKind::Slave, s, register("2")).unwrap();
    assert_eq!(
        c.take(),
        vec![
            Message::AddSlaves(vec![]),
            Message::AddSlaves(vec![entry(s, "1")]),
            Message::RemoveSlaves(vec![s]),
            Message::AddSlaves(vec![entry(s, "2")]),
        ]
    );
    let late = Inbox::default();
    router.add_client(late.clone(), V1).unwrap();
    assert_eq!(late.take(), vec![Message::AddSlaves(vec![entry(s, "2")])]);
}

fn update(user_data: &str) -> Message {
    Message::UpdateUserData { seq: 1, user_data: user_data.to_owned() }
}

#[test]
fn an_update_reaches_v2_clients_in_place_and_leaves_v1_clients_alone() {
    let mut router = SignallingRouter::new();
    let (old, new) = (Inbox::default(), Inbox::default());
    router.add_client(old.clone(), V1).unwrap();
    router.add_client(new.clone(), V2).unwrap();
    let s = router.add_slave(Inbox::default(), V2).unwrap();
    router.route(PeerKind::Slave, s, register("1")).unwrap();
    router.route(PeerKind::Slave, s, update("2")).unwrap();
    assert_eq!(old.take(), vec![Message::AddSlaves(vec![]), Message::AddSlaves(vec![entry(s, "1")])]);
    assert_eq!(
        new.take(),
        vec![Message::AddSlaves(vec![]), Message::AddSlaves(vec![entry(s, "1")]), Message::UpdateSlaves(vec![entry(s, "2")])]
    );
    // Registering again is an update too; V1 clients see the slave replaced.
    router.route(PeerKind::Slave, s, register("3")).unwrap();
    assert_eq!(new.take(), vec![Message::UpdateSlaves(vec![entry(s, "3")])]);
    assert_eq!(old.take(), vec![Message::RemoveSlaves(vec![s]), Message::AddSlaves(vec![entry(s, "3")])]);
    // Whoever connects later gets the latest.
    let late = Inbox::default();
    router.add_client(late.clone(), V1).unwrap();
    assert_eq!(late.take(), vec![Message::AddSlaves(vec![entry(s, "3")])]);
    assert_eq!(router.registered_slave(s).map(|e| e.user_data.as_str()), Some("3"));
}

#[test]
fn bad_updates_are_refused_and_change_nothing() {
    let mut router = SignallingRouter::new();
    router.set_max_user_data_len(10);
    let c = Inbox::default();
    router.add_client(c.clone(), V2).unwrap();
    let (v1_link, v2_link) = (Inbox::default(), Inbox::default());
    let v1 = router.add_slave(v1_link.clone(), V1).unwrap();
    let v2 = router.add_slave(v2_link.clone(), V2).unwrap();
    assert_eq!(router.route(PeerKind::Slave, v2, update("1")), Err(RoutingError::NotRegistered { id: v2 }));
    router.route(PeerKind::Slave, v1, register("1")).unwrap();
    router.route(PeerKind::Slave, v2, register("1")).unwrap();
    assert!(matches!(router.route(PeerKind::Slave, v1, update("2")), Err(RoutingError::NotNegotiated { .. })));
    let big = format!("\"{}\"", "x".repeat(20));
    assert!(matches!(router.route(PeerKind::Slave, v2, update(&big)), Err(RoutingError::UserDataTooLarge { len: 22, max: 10 })));
    // Not a reason to close the slave, unlike a registration over the limit.
    assert_eq!(*v2_link.closed.borrow(), None);
    assert_eq!(
        c.take(),
        vec![Message::AddSlaves(vec![]), Message::AddSlaves(vec![entry(v1, "1")]), Message::AddSlaves(vec![entry(v2, "1")])]
    );
    assert!(matches!(router.route(PeerKind::Client, 0, update("1")), Err(RoutingError::WrongDirection { .. })));
}

#[test]
fn signalling_is_routed_with_ids_rewritten() {
    let mut router = SignallingRouter::new();
    let (slave, client) = (Inbox::default(), Inbox::default());
    // Offset the id spaces so that a mix-up of ids shows.
    router.add_client(Inbox::default(), V1).unwrap();
    let s = router.add_slave(slave.clone(), V1).unwrap();
    let c = router.add_client(client.clone(), V1).unwrap();
    assert_ne!(s, c);
    router.route(PeerKind::Slave, s, register("{}")).unwrap();
    client.take();

    let candidate = Some(Candidate { sdp_mid: "0".into(), sdp_m_line_index: 0, candidate: "candidate:x".into() });
    router.route(PeerKind::Client, c, Message::OfferToSlave(sd(s, "offer"))).unwrap();
    router
        .route(PeerKind::Client, c, Message::IceCandidateToSlave(IceCandidate { id: s, candidate: candidate.clone() }))
        .unwrap();
    router.route(PeerKind::Client, c, Message::IceCandidateToSlave(IceCandidate { id: s, candidate: None })).unwrap();
    assert_eq!(
        slave.take(),
        vec![
            Message::OfferFromClient(sd(c, "offer")),
            Message::IceCandidateFromClient(IceCandidate { id: c, candidate: candidate.clone() }),
            Message::IceCandidateFromClient(IceCandidate { id: c, candidate: None }),
        ]
    );

    router.route(PeerKind::Slave, s, Message::AnswerToClient(sd(c, "answer"))).unwrap();
    router
        .route(PeerKind::Slave, s, Message::IceCandidateToClient(IceCandidate { id: c, candidate: candidate.clone() }))
        .unwrap();
    router.route(PeerKind::Slave, s, Message::RejectToClient { id: c }).unwrap();
    assert_eq!(
        client.take(),
        vec![
            Message::AnswerFromSlave(sd(s, "answer")),
            Message::IceCandidateFromSlave(IceCandidate { id: s, candidate }),
            Message::RejectFromSlave { id: s },
        ]
    );
}

#[test]
fn wrong_direction_messages_are_refused_and_nothing_is_sent() {
    let mut router = SignallingRouter::new();
    let (slave, client) = (Inbox::default(), Inbox::default());
    let s = router.add_slave(slave.clone(), V1).unwrap();
    let c = router.add_client(client.clone(), V1).unwrap();
    router.route(PeerKind::Slave, s, register("{}")).unwrap();
    client.take();

    let from_client = [
        register("{}"),
        Message::AddSlaves(vec![]),
        Message::RemoveSlaves(vec![s]),
        Message::OfferFromClient(sd(s, "x")),
        Message::AnswerToClient(sd(c, "x")),
        Message::AnswerFromSlave(sd(s, "x")),
        Message::IceCandidateFromClient(IceCandidate { id: s, candidate: None }),
        Message::IceCandidateToClient(IceCandidate { id: c, candidate: None }),
        Message::IceCandidateFromSlave(IceCandidate { id: s, candidate: None }),
        Message::RejectToClient { id: c },
        Message::RejectFromSlave { id: s },
    ];
    for msg in from_client {
        let t = msg.message_type();
        assert_eq!(
            router.route(PeerKind::Client, c, msg),
            Err(RoutingError::WrongDirection { kind: PeerKind::Client, msg_type: t })
        );
    }
    let from_slave = [
        Message::AddSlaves(vec![]),
        Message::RemoveSlaves(vec![]),
        Message::OfferToSlave(sd(s, "x")),
        Message::OfferFromClient(sd(c, "x")),
        Message::AnswerFromSlave(sd(c, "x")),
        Message::IceCandidateToSlave(IceCandidate { id: s, candidate: None }),
        Message::IceCandidateFromClient(IceCandidate { id: c, candidate: None }),
        Message::IceCandidateFromSlave(IceCandidate { id: c, candidate: None }),
        Message::RejectFromSlave { id: c },
    ];
    for msg in from_slave {
        let t = msg.message_type();
        assert_eq!(
            router.route(PeerKind::Slave, s, msg),
            Err(RoutingError::WrongDirection { kind: PeerKind::Slave, msg_type: t })
        );
    }
    assert!(slave.take().is_empty());
    assert!(client.take().is_empty());
}

#[test]
fn unknown_destinations_are_refused() {
    let mut router = SignallingRouter::new();
    let client = Inbox::default();
    let c = router.add_client(client.clone(), V1).unwrap();
    client.take(); // the (empty) slave list
    let unregistered = router.add_slave(Inbox::default(), V1).unwrap();
    let s = router.add_slave(Inbox::default(), V1).unwrap();
    assert_eq!(
        router.route(PeerKind::Client, c, Message::OfferToSlave(sd(unregistered, "x"))),
        Err(RoutingError::UnknownDestination { kind: PeerKind::Slave, id: unregistered })
    );
    assert_eq!(
        router.route(PeerKind::Client, c, Message::OfferToSlave(sd(99, "x"))),
        Err(RoutingError::UnknownDestination { kind: PeerKind::Slave, id: 99 })
    );
    // The client is told at once, rather than wait for an answer forever.
    assert_eq!(client.take(), vec![Message::RejectFromSlave { id: unregistered }, Message::RejectFromSlave { id: 99 }]);
    router.route(PeerKind::Client, c, Message::IceCandidateToSlave(IceCandidate { id: 99, candidate: None })).unwrap_err();
    assert!(client.take().is_empty(), "a stray candidate needs no answer");
    assert_eq!(
        router.route(PeerKind::Slave, s, Message::RejectToClient { id: 42 }),
        Err(RoutingError::UnknownDestination { kind: PeerKind::Client, id: 42 })
    );
    router.remove(PeerKind::Client, c);
    assert_eq!(
        router.route(PeerKind::Client, c, Message::OfferToSlave(sd(s, "x"))),
        Err(RoutingError::UnknownSender { kind: PeerKind::Client, id: c })
    );
}

#[test]
fn ids_wrap_around_and_skip_ids_in_use() {
    let mut router = SignallingRouter::with_allocators(IdAllocator::starting_at(u32::MAX - 1), IdAllocator::default());
    let a = router.add_slave(Inbox::default(), V1).unwrap();
    let b = router.add_slave(Inbox::default(), V1).unwrap();
    let c = router.add_slave(Inbox::default(), V1).unwrap();
    assert_eq!((a, b, c), (u32::MAX - 1, u32::MAX, 0));
    router.remove(PeerKind::Slave, b);
    // Two full turns later the allocator meets a, c (in use) and b (free).
    let mut alloc = IdAllocator::starting_at(u32::MAX - 1);
    let in_use = [a, c];
    assert_eq!(alloc.allocate(2, |id| in_use.contains(&id)), Some(u32::MAX));
    assert_eq!(alloc.allocate(2, |id| in_use.contains(&id)), Some(1));
}

#[test]
fn ids_are_not_reused_while_in_use() {
    let mut router = SignallingRouter::new();
    let ids: Vec<u32> = (0..100).map(|_| router.add_client(Inbox::default(), V1).unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 100);
    router.remove(PeerKind::Client, ids[5]);
    let next = router.add_client(Inbox::default(), V1).unwrap();
    assert!(!ids[..5].contains(&next) && !ids[6..].contains(&next));
}

#[test]
fn a_client_whose_queue_overflows_is_closed_and_others_still_get_messages() {
    let mut router = SignallingRouter::new();
    let slow = Inbox::with_capacity(2);
    let fast = Inbox::default();
    router.add_client(slow.clone(), V1).unwrap();
    router.add_client(fast.clone(), V1).unwrap();
    for i in 0..3 {
        let s = router.add_slave(Inbox::default(), V1).unwrap();
        router.route(PeerKind::Slave, s, register(&i.to_string())).unwrap();
    }
    assert_eq!(slow.closed.borrow().as_ref().map(|c| c.0), Some(CLOSE_SLOW_CONSUMER));
    assert_eq!(fast.take().len(), 4);
    assert!(fast.closed.borrow().is_none());
}

#[test]
fn raw_sends_and_closes_reach_only_their_peer() {
    let mut router = SignallingRouter::new();
    let (a, b) = (Inbox::default(), Inbox::default());
    let ia = router.add_slave(a.clone(), V1).unwrap();
    router.add_slave(b.clone(), V1).unwrap();
    assert!(router.send_raw(PeerKind::Slave, ia, Bytes::from_static(b"hi")));
    assert!(!router.send_raw(PeerKind::Client, ia, Bytes::from_static(b"hi")));
    assert!(router.close(PeerKind::Slave, ia, 4000, "bye"));
    assert_eq!(a.frames.borrow().as_slice(), &[Bytes::from_static(b"hi")]);
    assert_eq!(*a.closed.borrow(), Some((4000, "bye".to_owned())));
    assert!(b.frames.borrow().is_empty() && b.closed.borrow().is_none());
}

#[test]
fn user_data_over_the_limit_closes_the_slave_unlisted() {
    let mut router = SignallingRouter::new();
    router.set_max_user_data_len(16);
    let client = Inbox::default();
    router.add_client(client.clone(), V1).unwrap();
    client.take();
    let slave = Inbox::default();
    let s = router.add_slave(slave.clone(), V1).unwrap();
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(20));
    assert_eq!(router.route(PeerKind::Slave, s, register(&big)), Err(RoutingError::UserDataTooLarge { len: big.len(), max: 16 }));
    assert_eq!(
        slave.closed.borrow().clone(),
        Some((CLOSE_TOO_BIG, format!("userData of {} bytes is over this master's limit of 16 bytes", big.len())))
    );
    assert!(client.take().is_empty(), "never listed");
    router.route(PeerKind::Slave, s, register(r#"{"a":1}"#)).unwrap();
    assert_eq!(client.take(), vec![Message::AddSlaves(vec![entry(s, r#"{"a":1}"#)])]);
}

#[test]
fn signalling_is_counted_once_delivered() {
    let mut router = SignallingRouter::new();
    let (slave, client) = (Inbox::default(), Inbox::default());
    let s = router.add_slave(slave, V2).unwrap();
    let c = router.add_client(client, V2).unwrap();
    router.route(PeerKind::Slave, s, register("{}")).unwrap();
    router.route(PeerKind::Client, c, Message::OfferToSlave(sd(s, "offer"))).unwrap();
    router.route(PeerKind::Client, c, Message::IceCandidateToSlave(IceCandidate { id: s, candidate: None })).unwrap();
    router.route(PeerKind::Slave, s, Message::AnswerToClient(sd(c, "answer"))).unwrap();
    router.route(PeerKind::Slave, s, Message::IceCandidateToClient(IceCandidate { id: c, candidate: None })).unwrap();
    router.route(PeerKind::Slave, s, Message::RejectToClient { id: c }).unwrap();
    // Not delivered: to nobody, or refused on the slave's behalf.
    assert!(router.route(PeerKind::Slave, s, Message::AnswerToClient(sd(c + 1, "answer"))).is_err());
    assert!(router.route(PeerKind::Client, c, Message::OfferToSlave(sd(s + 1, "offer"))).is_err());
    router.reject_offer(c, s);
    let counts = router.signalling_counts();
    assert_eq!((counts.offers, counts.answers, counts.candidates, counts.rejections), (1, 1, 2, 3));
    assert_eq!(router.registered_slave_count(), 1);
}

/// A router of cluster node 1, with what it hands to the cluster's task.
fn clustered(connected: bool) -> (SignallingRouter<Inbox>, tokio::sync::mpsc::UnboundedReceiver<Command>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(connected));
    let mut router = SignallingRouter::new();
    router.join_cluster(ClusterOutlet::new(1, tx, flag));
    (router, rx)
}

#[test]
fn a_clustered_router_numbers_in_its_node_and_lists_remote_slaves() {
    let (mut router, mut commands) = clustered(true);
    let client = Inbox::default();
    let client_id = router.add_client(client.clone(), V2).unwrap();
    assert_eq!(client_id, 1 << 20);
    client.take();
    // Slave ids: small ones reserved from the cluster, asked for when low.
    router.stock_slave_ids([7, 8], false);
    let slave = router.add_slave(Inbox::default(), V2).unwrap();
    assert_eq!(slave, 7);
    assert!(matches!(commands.try_recv(), Ok(Command::NeedSlaveIds)));
    router.route(PeerKind::Slave, slave, register("[1]")).unwrap();
    assert!(matches!(commands.try_recv(), Ok(Command::Listed { id, .. }) if id == slave));
    client.take();

    let remote = 5;
    let set = Change::Set { id: remote, node: 2, user_data: "[2]".into() };
    assert!(matches!(router.apply_changes([set.clone()]).as_slice(), [RemoteEvent::Listed { .. }]));
    assert_eq!(router.apply_changes([set]), vec![], "a repeat changes nothing");
    assert_eq!(client.take(), vec![Message::AddSlaves(vec![entry(remote, "[2]")])]);
    // Our own change coming back from the stream is ignored.
    assert_eq!(router.apply_changes([Change::Remove { id: slave, node: 1 }]), vec![]);

    // An offer to it is relayed to node 2, as the frame its slave will get.
    router.route(PeerKind::Client, client_id, Message::OfferToSlave(sd(remote, "o"))).unwrap();
    let Ok(Command::Relay { node: 2, message, offer: Some((c, s)) }) = commands.try_recv() else { panic!("relay expected") };
    assert_eq!((c, s), (client_id, remote));
    let (relayed, decoded) = Relayed::decode(message).unwrap();
    assert_eq!((relayed.kind, relayed.id), (PeerKind::Slave, remote));
    assert_eq!(decoded, Message::OfferFromClient(sd(client_id, "o")));

    // A full read of the registry without it leaves it to the caller, which unlists it:
    // the pending offer is refused, then it is unlisted.
    let (events, missing) = router.reconcile(HashMap::new());
    assert_eq!((events, missing.clone()), (vec![], vec![remote]));
    let events = router.unlist_remote(&missing);
    assert!(matches!(events.as_slice(), [RemoteEvent::Unlisted { id, .. }] if *id == remote));
    assert_eq!(client.take(), vec![Message::RejectFromSlave { id: remote }, Message::RemoveSlaves(vec![remote])]);
}

#[test]
fn a_slave_id_held_by_a_lower_node_is_given_up() {
    let (mut router, mut commands) = clustered(true);
    let ours = Inbox::default();
    router.stock_slave_ids([3], true);
    let id = router.add_slave(ours.clone(), V2).unwrap();
    router.route(PeerKind::Slave, id, register("{}")).unwrap();
    while commands.try_recv().is_ok() {}
    // Node 2 is above ours (1): ours keeps the id, and is written again.
    assert_eq!(router.apply_changes([Change::Set { id, node: 2, user_data: "[]".into() }]), vec![]);
    assert_eq!(*ours.closed.borrow(), None);
    assert!(matches!(commands.try_recv(), Ok(Command::Listed { id: listed, .. }) if listed == id));
    // As node 3, node 2 is below: ours is asked to reconnect for another id.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    router.join_cluster(ClusterOutlet::new(3, tx, flag));
    assert_eq!(router.apply_changes([Change::Set { id, node: 2, user_data: "[]".into() }]), vec![]);
    assert_eq!(ours.closed.borrow().as_ref().map(|c| c.0), Some(1012));
}

#[test]
fn a_batch_of_remote_changes_reaches_clients_in_one_frame_per_kind_in_order() {
    let (mut router, _commands) = clustered(true);
    let client = Inbox::default();
    router.add_client(client.clone(), V2).unwrap();
    client.take();
    let set = |id, user_data: &str| Change::Set { id, node: 2, user_data: user_data.into() };
    let events = router.apply_changes([set(12, "[\"a\"]"), set(10, "[\"b\"]"), set(11, "[\"c\"]")]);
    assert_eq!(events.len(), 3);
    assert_eq!(client.take(), vec![Message::AddSlaves(vec![entry(10, "[\"b\"]"), entry(11, "[\"c\"]"), entry(12, "[\"a\"]")])]);
    // Updates and removals of several slaves, one frame each; a slave
    // changed twice in the batch keeps its order (its second change waits
    // for the frames before it).
    let remove = |id| Change::Remove { id, node: 2 };
    router.apply_changes([set(10, "[\"b2\"]"), remove(11), remove(12), set(11, "[\"c2\"]"), set(13, "[\"d\"]")]);
    assert_eq!(
        client.take(),
        vec![
            Message::UpdateSlaves(vec![entry(10, "[\"b2\"]")]),
            Message::RemoveSlaves(vec![11, 12]),
            Message::AddSlaves(vec![entry(11, "[\"c2\"]"), entry(13, "[\"d\"]")]),
        ]
    );
    // Another master holds it now, unchanged: the application hears of the
    // new node, clients hear nothing.
    let moved = router.apply_changes([Change::Set { id: 10, node: 3, user_data: "[\"b2\"]".into() }]);
    assert_eq!(moved, vec![RemoteEvent::Updated { id: 10, node: 3, user_data: "[\"b2\"]".into() }]);
    assert_eq!(client.take(), vec![]);
}

#[test]
fn without_redis_offers_to_remote_slaves_are_refused_at_once() {
    let (mut router, mut commands) = clustered(false);
    let client = Inbox::default();
    let client_id = router.add_client(client.clone(), V2).unwrap();
    let remote = 9;
    router.reconcile(HashMap::from([(remote, RemoteSlave { node: 2, user_data: "{}".into() })]));
    client.take();
    let err = router.route(PeerKind::Client, client_id, Message::OfferToSlave(sd(remote, "o"))).unwrap_err();
    assert_eq!(err, RoutingError::Unreachable { id: remote });
    assert_eq!(client.take(), vec![Message::RejectFromSlave { id: remote }]);
    assert!(commands.try_recv().is_err(), "nothing relayed");
}

#[test]
fn relayed_frames_reach_local_peers_and_offers_to_gone_slaves_come_back_refused() {
    let (mut router, _commands) = clustered(true);
    let slave = Inbox::default();
    // Without reserved ids, a slave's id is from the node's range.
    let slave_id = router.add_slave(slave.clone(), V2).unwrap();
    assert_eq!(slave_id, 1 << 20);
    router.route(PeerKind::Slave, slave_id, register("{}")).unwrap();
    let remote_client = (2 << 20) | 3;
    let offer = Message::OfferFromClient(sd(remote_client, "o"));
    let frame = offer.encode().unwrap();
    let (relayed, decoded) = Relayed::decode(Relayed::encode(PeerKind::Slave, slave_id, &frame)).unwrap();
    assert_eq!(router.deliver(relayed, &decoded), None);
    assert_eq!(slave.take(), vec![offer.clone()]);

    router.remove(PeerKind::Slave, slave_id);
    let (relayed, decoded) = Relayed::decode(Relayed::encode(PeerKind::Slave, slave_id, &frame)).unwrap();
    let (node, back) = router.deliver(relayed, &decoded).expect("refusal sent back");
    assert_eq!(node, 2);
    let (back, decoded) = Relayed::decode(back).unwrap();
    assert_eq!((back.kind, back.id), (PeerKind::Client, remote_client));
    assert_eq!(decoded, Message::RejectFromSlave { id: slave_id });
}
