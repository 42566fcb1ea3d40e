//! The master on real sockets (loopback, port 0), driven by tokio-tungstenite
//! peers, in both modes: its own port and upgrades handed over by another
//! HTTP server.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use enslavism::master::{
    AuthDecision, AuthRequest, Master, MasterConfig, MasterEvent, MasterHooks, NoHooks, PeerKind, Rejection,
};
use enslavism::proto::{Message, SessionDescription, SlaveEntry};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn open(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

async fn send(ws: &mut Ws, msg: Message) {
    ws.send(WsMessage::Binary(msg.encode().unwrap().into())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> Message {
    loop {
        match ws.next().await.expect("connection open").expect("no error") {
            WsMessage::Binary(data) => return Message::decode(&data).expect("valid frame"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The scenario both modes must pass: list, register, route, remove.
async fn signalling_scenario(addr: SocketAddr) {
    let mut client = open(addr, "/enslavism/clients", None).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::AddSlaves(vec![]));

    let mut slave = open(addr, "/enslavism/slaves", None).await.unwrap();
    send(&mut slave, Message::Register { user_data: r#"{"name":"rust"}"#.into() }).await;
    let Message::AddSlaves(list) = recv(&mut client).await else { panic!("AddSlaves expected") };
    let [SlaveEntry { id: slave_id, user_data }] = list.as_slice() else { panic!("one slave expected") };
    assert_eq!(user_data, r#"{"name":"rust"}"#);

    // A malformed frame changes nothing.
    client.send(WsMessage::Binary(vec![3u8].into())).await.unwrap();
    send(&mut client, Message::OfferToSlave(SessionDescription { id: *slave_id, sdp: "offer".into() })).await;
    let Message::OfferFromClient(offer) = recv(&mut slave).await else { panic!("offer expected") };
    assert_eq!(offer.sdp, "offer");
    send(&mut slave, Message::AnswerToClient(SessionDescription { id: offer.id, sdp: "answer".into() })).await;
    assert_eq!(recv(&mut client).await, Message::AnswerFromSlave(SessionDescription { id: *slave_id, sdp: "answer".into() }));

    slave.close(None).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::RemoveSlaves(vec![*slave_id]));
}

#[tokio::test]
async fn own_port_signalling_and_close_frees_the_port() {
    let master = Master::bind(loopback(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    let addr = master.local_addr().unwrap();
    signalling_scenario(addr).await;

    let mut lingering = open(addr, "/enslavism/clients", None).await.unwrap();
    recv(&mut lingering).await;
    master.close().await;
    match lingering.next().await {
        Some(Ok(WsMessage::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    // The port is free again.
    std::net::TcpListener::bind(addr).unwrap();
}

#[tokio::test]
async fn the_bundle_and_404() {
    let master = Master::bind(loopback(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    let addr = master.local_addr().unwrap();
    let get = |path: &'static str, extra: String| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let bundle = get("/enslavism/client.js", String::new()).await;
    assert!(bundle.starts_with("HTTP/1.1 200 OK\r\n"), "{bundle}");
    assert!(bundle.contains("content-type: application/javascript; charset=utf-8\r\n"), "{bundle}");
    assert!(bundle.contains("cache-control: no-cache\r\n"));
    let etag = enslavism::assets::CLIENT_SCRIPT.etag;
    assert!(bundle.contains(&format!("etag: {etag}\r\n")));
    assert!(bundle.contains("globalThis.MasterConnection="));
    assert!(bundle.ends_with("\n//# sourceMappingURL=client.js.map\n"));
    // The browser's copy is current: 304, no body.
    let cached = get("/enslavism/client.js", format!("If-None-Match: {etag}\r\n")).await;
    assert!(cached.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{cached}");
    assert!(!cached.contains("MasterConnection"));
    let map = get("/enslavism/client.js.map", String::new()).await;
    assert!(map.starts_with("HTTP/1.1 200 OK\r\n"), "{map}");
    assert!(map.contains("content-type: application/json; charset=utf-8\r\n"), "{map}");
    assert!(map.contains(&format!("etag: {}\r\n", enslavism::assets::CLIENT_SOURCE_MAP.etag)));
    assert!(map.contains("\"sources\":[\"index.mjs\"]"), "{map}");
    assert!(get("/nothing", String::new()).await.starts_with("HTTP/1.1 404 Not Found\r\n"));
    master.close().await;
}

/// Refuses slaves without the right cookie; records every event.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl MasterHooks for Recorder {
    fn authorize(&self, request: AuthRequest) -> AuthDecision {
        let ok = request.kind == PeerKind::Client || request.cookies.get("token").map(String::as_str) == Some("s3cret");
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err(Rejection { reason: Some("bad token".into()) })
            }
        })
    }

    fn on_event(&self, event: MasterEvent) {
        let line = match event {
            MasterEvent::Connected { kind, .. } => format!("connected {}", kind.name()),
            MasterEvent::Closed { kind, code, .. } => format!("closed {} {code}", kind.name()),
            MasterEvent::SlaveRegistered { user_data, remote_addr, .. } => format!("registered {user_data} {}", remote_addr.ip()),
            MasterEvent::SlaveUpdated { user_data, .. } => format!("updated {user_data}"),
            MasterEvent::SlaveUnregistered { user_data, .. } => format!("unregistered {user_data}"),
            other => format!("{other:?}"),
        };
        self.events.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn auth_refusal_is_a_401_with_the_reason_and_events_are_reported() {
    let hooks = Arc::new(Recorder::default());
    let master = Master::bind(loopback(), MasterConfig::default(), hooks.clone()).unwrap();
    let addr = master.local_addr().unwrap();
    match open(addr, "/enslavism/slaves", Some("token=nope")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert_eq!(response.body().as_deref(), Some(&b"bad token"[..]));
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let mut slave = open(addr, "/enslavism/slaves", Some("token=s3cret")).await.unwrap();
    for user_data in [r#"{"players":0}"#, r#"{"players":1}"#] {
        let register = Message::Register { user_data: user_data.into() }.encode().unwrap();
        slave.send(WsMessage::Binary(register.into())).await.unwrap();
    }
    slave.close(None).await.unwrap();
    while slave.next().await.is_some() {}
    master.close().await;
    assert_eq!(
        *hooks.events.lock().unwrap(),
        [
            "connected slave",
            r#"registered {"players":0} 127.0.0.1"#,
            r#"updated {"players":1}"#,
            r#"unregistered {"players":1}"#,
            "closed slave 1005"
        ]
    );
}

/// Stands in for Node's http.Server: parses the request head with httparse
/// and hands the socket over, as the N-API binding does.
fn hand_over(master: &Master, mut stream: std::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let mut raw_headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut raw_headers);
    request.parse(&buf).unwrap();
    let mut headers = http::HeaderMap::new();
    for h in request.headers.iter() {
        headers.append(http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(), http::HeaderValue::from_bytes(h.value).unwrap());
    }
    let path = request.path.unwrap().to_owned();
    master.adopt_upgrade(stream, &path, headers, buf[head_end..].to_vec()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopted_connections_signal_like_our_own() {
    let master = Arc::new(Master::detached(MasterConfig::default(), Arc::new(NoHooks)).unwrap());
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = {
        let master = master.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                hand_over(&master, stream.unwrap());
            }
        })
    };
    signalling_scenario(addr).await;
    acceptor.join().unwrap();
    let elsewhere = std::net::TcpListener::bind(loopback()).unwrap();
    let stream = std::net::TcpStream::connect(elsewhere.local_addr().unwrap()).unwrap();
    assert!(matches!(
        master.adopt_upgrade(stream, "/other", http::HeaderMap::new(), vec![]),
        Err(enslavism::master::MasterError::NotOurPath(_))
    ));
    master.close().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_with_503_and_the_rest_keep_working() {
    let config = MasterConfig::builder().max_connections(2).build().unwrap();
    let master = Master::bind(loopback(), config, Arc::new(NoHooks)).unwrap();
    let addr = master.local_addr().unwrap();
    let mut first = open(addr, "/enslavism/clients", None).await.unwrap();
    assert_eq!(recv(&mut first).await, Message::AddSlaves(vec![]));
    let mut slave = open(addr, "/enslavism/slaves", None).await.unwrap();
    match open(addr, "/enslavism/clients", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.body().as_deref(), Some(&b"too many connections (the limit is 2)"[..]));
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    // The two admitted connections still work.
    send(&mut slave, Message::Register { user_data: "{}".into() }).await;
    assert!(matches!(recv(&mut first).await, Message::AddSlaves(list) if list.len() == 1));
    // A slot is free again once a connection ends.
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    // Once the master has forgotten it, the next connection is admitted at once.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while master.peer_counts().1 != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the closed client is forgotten");
    let mut again = open(addr, "/enslavism/clients", None).await.unwrap();
    assert!(matches!(recv(&mut again).await, Message::AddSlaves(list) if list.len() == 1));
    master.close().await;
}

#[tokio::test]
async fn offers_over_the_rate_are_rejected_and_candidates_dropped() {
    let config = MasterConfig::builder().max_offers_per_second(3).max_candidates_per_second(5).build().unwrap();
    let master = Master::bind(loopback(), config, Arc::new(NoHooks)).unwrap();
    let addr = master.local_addr().unwrap();
    let mut slave = open(addr, "/enslavism/slaves", None).await.unwrap();
    send(&mut slave, Message::Register { user_data: "{}".into() }).await;
    let mut client = open(addr, "/enslavism/clients", None).await.unwrap();
    let Message::AddSlaves(list) = recv(&mut client).await else { panic!("AddSlaves expected") };
    let slave_id = list[0].id;
    for i in 0..10 {
        send(&mut client, Message::OfferToSlave(SessionDescription { id: slave_id, sdp: format!("offer {i}") })).await;
    }
    let candidate = |i: u32| {
        let line = format!("candidate:{i} 1 udp 1 127.0.0.1 {} typ host", 5000 + i);
        enslavism::proto::IceCandidate {
            id: slave_id,
            candidate: Some(enslavism::proto::Candidate { sdp_mid: "0".into(), sdp_m_line_index: 0, candidate: line }),
        }
    };
    for i in 0..20 {
        send(&mut client, Message::IceCandidateToSlave(candidate(i))).await;
    }
    // A client's frames are handled in order: once this offer to a slave that
    // does not exist is refused, everything before it was handled.
    send(&mut client, Message::OfferToSlave(SessionDescription { id: 999, sdp: "probe".into() })).await;
    let mut refused = 0;
    loop {
        match recv(&mut client).await {
            Message::RejectFromSlave { id: 999 } => break,
            Message::RejectFromSlave { id } if id == slave_id => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, 7, "the offers over the rate are refused by the master");
    // Frames queued for the slave go out before a requested close.
    assert!(master.disconnect(PeerKind::Slave, slave_id, 1000, "done"));
    let (mut offers, mut candidates) = (0, 0);
    while let Some(Ok(msg)) = slave.next().await {
        let WsMessage::Binary(data) = msg else { continue };
        match Message::decode(&data).unwrap() {
            Message::OfferFromClient(_) => offers += 1,
            Message::IceCandidateFromClient(_) => candidates += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((offers, candidates), (3, 5));
    master.close().await;
}

/// Panics when a client connects (a stand-in for a bug in the engine).
#[derive(Default)]
struct PanicOnClient {
    errors: Mutex<Vec<String>>,
}

impl MasterHooks for PanicOnClient {
    fn on_event(&self, event: MasterEvent) {
        match event {
            MasterEvent::Connected { kind: PeerKind::Client, .. } => panic!("a bug"),
            MasterEvent::InternalError { message } => self.errors.lock().unwrap().push(message),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_panic_while_serving_a_peer_drops_that_peer_only() {
    let hooks = Arc::new(PanicOnClient::default());
    let master = Master::bind(loopback(), MasterConfig::default(), hooks.clone()).unwrap();
    let addr = master.local_addr().unwrap();
    let mut slave = open(addr, "/enslavism/slaves", None).await.unwrap();
    send(&mut slave, Message::Register { user_data: "{}".into() }).await;
    let mut client = open(addr, "/enslavism/clients", None).await.unwrap();
    let close_code = loop {
        match client.next().await {
            Some(Ok(WsMessage::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(close_code, Some(1011));
    assert_eq!(hooks.errors.lock().unwrap().as_slice(), ["internal error while serving client 0: a bug"]);
    // The slave is still connected and served, and the client was forgotten.
    while master.peer_counts() != (1, 0) {
        tokio::task::yield_now().await;
    }
    slave.send(WsMessage::Ping(Default::default())).await.unwrap();
    assert!(matches!(slave.next().await, Some(Ok(WsMessage::Pong(_)))));
    master.close().await;
}

/// Opens a WebSocket offering these subprotocols; returns it and the one agreed.
async fn open_offering(addr: SocketAddr, path: &str, offer: &str) -> (Ws, Option<String>) {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", offer.parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let agreed = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
    (ws, agreed)
}

#[tokio::test]
async fn enslavism_2_is_agreed_and_its_messages_reach_only_peers_that_agreed() {
    let master = Master::bind(loopback(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    let addr = master.local_addr().unwrap();
    let (mut v2_client, agreed) = open_offering(addr, "/enslavism/clients", "chat, enslavism.2").await;
    assert_eq!(agreed.as_deref(), Some("enslavism.2"));
    assert_eq!(recv(&mut v2_client).await, Message::AddSlaves(vec![]));
    let mut v1_client = open(addr, "/enslavism/clients", None).await.unwrap();
    assert_eq!(recv(&mut v1_client).await, Message::AddSlaves(vec![]));
    // A later version this master does not know: no subprotocol, so the peer
    // (by RFC 6455) gives up and may dial again offering an older one.
    let mut request = format!("ws://{addr}/enslavism/clients").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "enslavism.9".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err(), "no agreement on enslavism.9");

    // Ping: answered for a V2 peer, ignored (like any unknown type) for a V1 one.
    send(&mut v1_client, Message::Ping { token: 1 }).await;
    send(&mut v2_client, Message::Ping { token: 7 }).await;
    assert_eq!(recv(&mut v2_client).await, Message::Pong { token: 7 });

    let (mut slave, agreed) = open_offering(addr, "/enslavism/slaves", "enslavism.2").await;
    assert_eq!(agreed.as_deref(), Some("enslavism.2"));
    // An update before registering is refused, the list untouched.
    send(&mut slave, Message::UpdateUserData { seq: 1, user_data: "1".into() }).await;
    let Message::UserDataResult { seq: 1, refusal: Some(reason) } = recv(&mut slave).await else { panic!("a refusal expected") };
    assert!(reason.contains("regist"), "{reason}");
    send(&mut slave, Message::Register { user_data: r#"{"n":0}"#.into() }).await;
    let Message::AddSlaves(list) = recv(&mut v2_client).await else { panic!("AddSlaves expected") };
    let id = list[0].id;
    assert_eq!(recv(&mut v1_client).await, Message::AddSlaves(list));
    send(&mut slave, Message::UpdateUserData { seq: 2, user_data: r#"{"n":1}"#.into() }).await;
    assert_eq!(recv(&mut slave).await, Message::UserDataResult { seq: 2, refusal: None });
    assert_eq!(recv(&mut v2_client).await, Message::UpdateSlaves(vec![SlaveEntry { id, user_data: r#"{"n":1}"#.into() }]));
    // The V1 client got nothing since: its next frame is the slave's removal.
    slave.close(None).await.unwrap();
    assert_eq!(recv(&mut v1_client).await, Message::RemoveSlaves(vec![id]));
    assert_eq!(recv(&mut v2_client).await, Message::RemoveSlaves(vec![id]));
    master.close().await;
}
