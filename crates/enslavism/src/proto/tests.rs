use super::*;

fn sd(id: u32, sdp: &str) -> SessionDescription {
    SessionDescription { id, sdp: sdp.to_owned() }
}

fn cand(id: u32, mid: &str, index: u16, line: &str) -> IceCandidate {
    IceCandidate {
        id,
        candidate: Some(Candidate { sdp_mid: mid.to_owned(), sdp_m_line_index: index, candidate: line.to_owned() }),
    }
}

/// One message of every type, with the exact bytes 0.9.0's `shared/proto.js` produces.
fn vectors() -> Vec<(Message, Vec<u8>)> {
    let line = "candidate:1 1 udp 1 127.0.0.1 5000 typ host";
    let ice = |t: u8, m: Message| {
        let mut v = vec![t, 0, 0, 1, 2, 1, b'0', 0, 3];
        v.extend_from_slice(line.as_bytes());
        (m, v)
    };
    vec![
        (Message::Register { user_data: r#"{"a":1}"#.into() }, b"\x00{\"a\":1}".to_vec()),
        (Message::AddSlaves(vec![]), vec![1]),
        (
            Message::AddSlaves(vec![
                SlaveEntry { id: 7, user_data: "1".into() },
                SlaveEntry { id: 0x0102_0304, user_data: r#""é""#.into() },
            ]),
            vec![1, 0, 0, 0, 7, 0, 1, b'1', 1, 2, 3, 4, 0, 4, b'"', 0xc3, 0xa9, b'"'],
        ),
        (Message::RemoveSlaves(vec![]), b"\x02[]".to_vec()),
        (Message::RemoveSlaves(vec![3, 4294967295]), b"\x02[3,4294967295]".to_vec()),
        (Message::OfferToSlave(sd(1, "v=0")), b"\x03\x00\x00\x00\x01v=0".to_vec()),
        (Message::OfferFromClient(sd(2, "")), b"\x04\x00\x00\x00\x02".to_vec()),
        (Message::AnswerToClient(sd(3, "v=0")), b"\x05\x00\x00\x00\x03v=0".to_vec()),
        (Message::AnswerFromSlave(sd(u32::MAX, "x")), b"\x06\xff\xff\xff\xffx".to_vec()),
        ice(7, Message::IceCandidateToSlave(cand(258, "0", 3, line))),
        ice(8, Message::IceCandidateFromClient(cand(258, "0", 3, line))),
        ice(9, Message::IceCandidateToClient(cand(258, "0", 3, line))),
        ice(10, Message::IceCandidateFromSlave(cand(258, "0", 3, line))),
        (Message::IceCandidateToSlave(IceCandidate { id: 5, candidate: None }), vec![7, 0, 0, 0, 5, 0]),
        (Message::IceCandidateFromSlave(IceCandidate { id: 5, candidate: None }), vec![10, 0, 0, 0, 5, 0]),
        (Message::RejectToClient { id: 9 }, vec![11, 0, 0, 0, 9]),
        (Message::RejectFromSlave { id: 10 }, vec![12, 0, 0, 0, 10]),
    ]
}

#[test]
fn every_type_encodes_to_the_bytes_of_0_9_0_and_decodes_back() {
    let vectors = vectors();
    let mut seen = std::collections::HashSet::new();
    for (msg, bytes) in vectors {
        assert_eq!(msg.encode().unwrap(), bytes, "encoding {msg:?}");
        assert_eq!(Message::decode(&bytes).unwrap(), msg, "decoding {bytes:?}");
        seen.insert(msg.message_type() as u8);
    }
    assert_eq!(seen.len(), 13, "a vector for each of the 13 types");
}

/// The five messages of version 2, with their bytes (doc/protocol.md).
fn v2_vectors() -> Vec<(Message, Vec<u8>)> {
    vec![
        (Message::UpdateUserData { seq: 2, user_data: r#"{"p":3}"#.into() }, b"\x0d\x00\x00\x00\x02{\"p\":3}".to_vec()),
        (Message::UserDataResult { seq: 2, refusal: None }, vec![14, 0, 0, 0, 2, 0]),
        (Message::UserDataResult { seq: 3, refusal: Some("too big".into()) }, b"\x0e\x00\x00\x00\x03\x01too big".to_vec()),
        (Message::UpdateSlaves(vec![SlaveEntry { id: 7, user_data: "1".into() }]), vec![15, 0, 0, 0, 7, 0, 1, b'1']),
        (Message::Ping { token: 0x0102_0304 }, vec![16, 1, 2, 3, 4]),
        (Message::Pong { token: 0x0102_0304 }, vec![17, 1, 2, 3, 4]),
    ]
}

#[test]
fn the_version_2_messages_have_their_documented_bytes() {
    let mut seen = std::collections::HashSet::new();
    for (msg, bytes) in v2_vectors() {
        assert_eq!(msg.encode().unwrap(), bytes, "encoding {msg:?}");
        assert_eq!(Message::decode(&bytes).unwrap(), msg, "decoding {bytes:?}");
        assert_eq!(msg.message_type().since(), ProtocolVersion::V2);
        seen.insert(msg.message_type() as u8);
    }
    assert_eq!(seen.len(), 5);
    for (msg, _) in vectors() {
        assert_eq!(msg.message_type().since(), ProtocolVersion::V1);
    }
}

#[test]
fn the_subprotocol_names_version_2() {
    assert_eq!(ProtocolVersion::from_subprotocol(Some(SUBPROTOCOL_V2)), ProtocolVersion::V2);
    assert_eq!(ProtocolVersion::from_subprotocol(Some(SUBPROTOCOL_V1)), ProtocolVersion::V1);
    assert_eq!(OFFERED_SUBPROTOCOLS, format!("{SUBPROTOCOL_V1}, {SUBPROTOCOL_V2}"), "V1 first, for 0.9.0 masters");
    assert_eq!(ProtocolVersion::from_subprotocol(Some("enslavism.3")), ProtocolVersion::V1);
    assert_eq!(ProtocolVersion::from_subprotocol(None), ProtocolVersion::V1);
}

#[test]
fn updates_are_checked_as_registrations_are() {
    let mut frame = vec![13, 0, 0, 0, 1];
    frame.extend_from_slice(b"{not json");
    assert!(matches!(Message::decode(&frame), Err(ProtoError::InvalidJson { .. })));
    let mut frame = vec![13, 0, 0, 0, 1, b'"'];
    frame.extend(std::iter::repeat_n(b'a', MAX_USER_DATA_LEN));
    frame.push(b'"');
    assert!(matches!(Message::decode(&frame), Err(ProtoError::UserDataTooLong { .. })));
    assert!(matches!(Message::decode(&[16, 0, 0]), Err(ProtoError::Truncated { .. })));
    assert!(matches!(Message::decode(&[17, 0, 0, 0, 0, 0]), Err(ProtoError::TrailingBytes { .. })));
}

#[test]
fn type_bytes_round_trip() {
    for b in 0..=255u8 {
        match MessageType::from_byte(b) {
            Some(t) => assert_eq!(t as u8, b),
            None => assert!(b > 17),
        }
    }
}

#[test]
fn an_empty_frame_is_an_error() {
    assert_eq!(Message::decode(&[]), Err(ProtoError::Empty));
}

#[test]
fn unknown_types_are_errors() {
    for b in 18..=255u8 {
        assert_eq!(Message::decode(&[b, 0, 0, 0, 0]), Err(ProtoError::UnknownType(b)));
    }
}

#[test]
fn every_truncation_of_every_vector_is_an_error_never_a_panic() {
    for (msg, bytes) in vectors().into_iter().chain(v2_vectors()) {
        for cut in 0..bytes.len() {
            let res = Message::decode(&bytes[..cut]);
            // Some prefixes are themselves valid frames (an SDP cut short is
            // still an SDP, an AddSlaves without entries is the empty list).
            if let Ok(m) = &res {
                assert_eq!(m.message_type(), msg.message_type());
            }
        }
    }
}

#[test]
fn a_lone_type_byte_is_truncated_for_every_routed_type() {
    // 0.9.0's master died on the single byte [3].
    for t in 3..=12u8 {
        let err = Message::decode(&[t]).unwrap_err();
        assert!(matches!(err, ProtoError::Truncated { needed: 5, got: 1, .. }), "type {t}: {err:?}");
    }
}

#[test]
fn truncated_candidates_are_errors() {
    // sdpMid length says 5 but only 2 bytes follow.
    let err = Message::decode(&[7, 0, 0, 0, 1, 5, b'a', b'b']).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { needed: 11, got: 8, .. }), "{err:?}");
    // sdpMid present but sdpMLineIndex cut in half.
    let err = Message::decode(&[9, 0, 0, 0, 1, 1, b'0', 0]).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { needed: 9, got: 8, .. }), "{err:?}");
    // Missing sdpMid length.
    let err = Message::decode(&[8, 0, 0, 0, 1]).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { needed: 6, got: 5, .. }), "{err:?}");
}

#[test]
fn truncated_slave_entries_are_errors() {
    // Declared userData length 10, 1 byte present.
    let err = Message::decode(&[1, 0, 0, 0, 1, 0, 10, b'1']).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { needed: 17, got: 8, .. }), "{err:?}");
    // An entry cut inside its id.
    let err = Message::decode(&[1, 0, 0, 0, 1, 0, 1, b'1', 0, 0]).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { .. }), "{err:?}");
}

#[test]
fn trailing_bytes_are_errors() {
    assert_eq!(
        Message::decode(&[11, 0, 0, 0, 1, 0]),
        Err(ProtoError::TrailingBytes { msg_type: MessageType::RejectToClient, extra: 1 })
    );
    assert_eq!(
        Message::decode(&[7, 0, 0, 0, 1, 0, 9]),
        Err(ProtoError::TrailingBytes { msg_type: MessageType::IceCandidateToSlave, extra: 1 })
    );
}

#[test]
fn invalid_utf8_is_an_error() {
    let err = Message::decode(&[3, 0, 0, 0, 1, 0xff, 0xfe]).unwrap_err();
    assert_eq!(err, ProtoError::InvalidUtf8 { msg_type: MessageType::OfferToSlave });
    let err = Message::decode(&[7, 0, 0, 0, 1, 1, 0xc3, 0, 0]).unwrap_err();
    assert_eq!(err, ProtoError::InvalidUtf8 { msg_type: MessageType::IceCandidateToSlave });
}

#[test]
fn invalid_json_is_an_error() {
    for frame in [&b"\x00{"[..], b"\x00", b"\x00{} {}", b"\x02[1,", b"\x02[-1]", b"\x02[\"a\"]", b"\x02{}"] {
        let err = Message::decode(frame).unwrap_err();
        assert!(matches!(err, ProtoError::InvalidJson { .. }), "{frame:?}: {err:?}");
    }
    let err = Message::decode(&[1, 0, 0, 0, 1, 0, 1, b'{']).unwrap_err();
    assert!(matches!(err, ProtoError::InvalidJson { msg_type: MessageType::AddSlaves, .. }), "{err:?}");
}

#[test]
fn user_data_over_65535_bytes_is_refused_both_ways() {
    let big = format!("\"{}\"", "x".repeat(MAX_USER_DATA_LEN - 1));
    assert_eq!(big.len(), MAX_USER_DATA_LEN + 1);
    let fits = format!("\"{}\"", "x".repeat(MAX_USER_DATA_LEN - 2));
    assert_eq!(fits.len(), MAX_USER_DATA_LEN);

    assert!(Message::Register { user_data: fits.clone() }.encode().is_ok());
    assert!(Message::AddSlaves(vec![SlaveEntry { id: 1, user_data: fits }]).encode().is_ok());

    let too_long = ProtoError::UserDataTooLong { len: MAX_USER_DATA_LEN + 1 };
    assert_eq!(Message::Register { user_data: big.clone() }.encode(), Err(too_long.clone()));
    assert_eq!(Message::AddSlaves(vec![SlaveEntry { id: 1, user_data: big.clone() }]).encode(), Err(too_long.clone()));
    let mut frame = vec![0];
    frame.extend_from_slice(big.as_bytes());
    assert_eq!(Message::decode(&frame), Err(too_long));
}

#[test]
fn sdp_mid_must_fit_in_one_byte_and_not_be_empty() {
    let empty = Message::IceCandidateToSlave(cand(1, "", 0, "c"));
    assert_eq!(empty.encode(), Err(ProtoError::BadSdpMid { len: 0 }));
    let long = Message::IceCandidateToSlave(cand(1, &"m".repeat(256), 0, "c"));
    assert_eq!(long.encode(), Err(ProtoError::BadSdpMid { len: 256 }));
    let max = Message::IceCandidateToSlave(cand(1, &"m".repeat(255), 0, "c"));
    let bytes = max.encode().unwrap();
    assert_eq!(Message::decode(&bytes).unwrap(), max);
}

#[test]
fn pseudo_random_frames_never_panic() {
    // A cheap, deterministic sweep; the fuzz targets go much further.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(first) = frame.first_mut() {
            *first %= 14;
        }
        if let Ok(msg) = Message::decode(&frame) {
            // Whatever decodes must encode back to the same bytes.
            assert_eq!(msg.encode().unwrap(), frame);
        }
    }
}

mod properties {
    //! Round trips over generated messages: whatever a peer can legally say
    //! is encoded and decoded back unchanged, and every prefix of a frame
    //! that is not itself a valid frame is refused without a panic.

    use super::*;
    use proptest::prelude::*;

    /// JSON text as slaves register it: a flat object of short strings and numbers.
    fn user_data() -> impl Strategy<Value = String> {
        prop::collection::btree_map(
            "[a-z]{1,8}",
            prop_oneof![any::<i64>().prop_map(|n| n.to_string()), ".{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap())],
            0..6,
        )
        .prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap())).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    fn description() -> impl Strategy<Value = SessionDescription> {
        (any::<u32>(), ".{0,200}").prop_map(|(id, sdp)| SessionDescription { id, sdp })
    }

    fn candidate() -> impl Strategy<Value = IceCandidate> {
        // At most 40 characters of at most 4 bytes: always within MAX_SDP_MID_LEN.
        let some = ("[^\u{0}]{1,40}", any::<u16>(), ".{0,120}")
            .prop_map(|(sdp_mid, sdp_m_line_index, candidate)| Some(Candidate { sdp_mid, sdp_m_line_index, candidate }));
        (any::<u32>(), prop_oneof![Just(None), some]).prop_map(|(id, candidate)| IceCandidate { id, candidate })
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            user_data().prop_map(|user_data| Message::Register { user_data }),
            prop::collection::vec((any::<u32>(), user_data()).prop_map(|(id, user_data)| SlaveEntry { id, user_data }), 0..5)
                .prop_map(Message::AddSlaves),
            prop::collection::vec(any::<u32>(), 0..20).prop_map(Message::RemoveSlaves),
            description().prop_map(Message::OfferToSlave),
            description().prop_map(Message::OfferFromClient),
            description().prop_map(Message::AnswerToClient),
            description().prop_map(Message::AnswerFromSlave),
            candidate().prop_map(Message::IceCandidateToSlave),
            candidate().prop_map(Message::IceCandidateFromClient),
            candidate().prop_map(Message::IceCandidateToClient),
            candidate().prop_map(Message::IceCandidateFromSlave),
            any::<u32>().prop_map(|id| Message::RejectToClient { id }),
            any::<u32>().prop_map(|id| Message::RejectFromSlave { id }),
            (any::<u32>(), user_data()).prop_map(|(seq, user_data)| Message::UpdateUserData { seq, user_data }),
            (any::<u32>(), prop::option::of(".{0,40}")).prop_map(|(seq, refusal)| Message::UserDataResult { seq, refusal }),
            prop::collection::vec((any::<u32>(), user_data()).prop_map(|(id, user_data)| SlaveEntry { id, user_data }), 0..5)
                .prop_map(Message::UpdateSlaves),
            any::<u32>().prop_map(|token| Message::Ping { token }),
            any::<u32>().prop_map(|token| Message::Pong { token }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn every_message_round_trips(msg in message()) {
            let frame = msg.encode().unwrap();
            prop_assert_eq!(frame[0], msg.message_type() as u8);
            prop_assert_eq!(Message::decode(&frame).unwrap(), msg);
        }

        #[test]
        fn truncated_frames_never_panic(msg in message(), cut in any::<prop::sample::Index>()) {
            let frame = msg.encode().unwrap();
            let prefix = &frame[..cut.index(frame.len())];
            // A prefix may be a valid frame itself (a shorter SDP); then it re-encodes to itself.
            if let Ok(decoded) = Message::decode(prefix) {
                prop_assert_eq!(decoded.encode().unwrap(), prefix.to_vec());
            }
        }
    }
}
