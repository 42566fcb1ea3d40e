//! The slave from Rust alone: a Rust master, a Rust slave, and a str0m
//! peer of the test's own playing the browser (`support/browser.rs`),
//! speaking the wire protocol over a WebSocket to the master. Everything
//! binds 127.0.0.1 only.

#[path = "support/browser.rs"]
mod browser;

use std::sync::Arc;
use std::time::Duration;

use browser::{Browser, BrowserEvent};
use enslavism::master::{Master, MasterConfig, NoHooks};
use enslavism::proto::{Candidate, IceCandidate, Message, SessionDescription};
use enslavism::slave::{Slave, SlaveConfig, SlaveEvent, SlaveHooks};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Forwards every slave event to the test.
struct Events(mpsc::UnboundedSender<SlaveEvent>);

impl SlaveHooks for Events {
    fn on_event(&self, event: SlaveEvent) {
        let _ = self.0.send(event);
    }
}

type ClientSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A master on loopback, and its URL.
async fn master() -> (Master, String) {
    let master = Master::bind("127.0.0.1:0".parse().unwrap(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    let url = format!("ws://{}", master.local_addr().unwrap());
    (master, url)
}

/// A slave's settings with ICE on loopback only.
fn loopback() -> enslavism::slave::SlaveConfigBuilder {
    SlaveConfig::builder().ice_addresses(["127.0.0.1".parse().unwrap()])
}

/// The slave `builder` makes with `config`, connected; its events come out of the receiver.
async fn slave_with_events(
    builder: enslavism::slave::SlaveBuilder,
    config: SlaveConfig,
) -> (Slave, mpsc::UnboundedReceiver<SlaveEvent>) {
    let (events_tx, events) = mpsc::unbounded_channel();
    (builder.config(config).hooks(Arc::new(Events(events_tx))).connect().await.unwrap(), events)
}

async fn next_frame(ws: &mut ClientSocket) -> Message {
    loop {
        if let WsMessage::Binary(data) = ws.next().await.expect("socket open").expect("no error") {
            return Message::decode(&data).expect("a valid frame");
        }
    }
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<SlaveEvent>) -> SlaveEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("an event in time").expect("events open")
}

/// The session and channel of the slave's first two events: a connection, then its channel.
async fn connection_and_channel(
    events: &mut mpsc::UnboundedReceiver<SlaveEvent>,
) -> (enslavism::slave::SessionId, enslavism::slave::ChannelId) {
    let session = match next_event(events).await {
        SlaveEvent::Connection { session, .. } => session,
        other => panic!("expected a connection, got {other:?}"),
    };
    let channel = match next_event(events).await {
        SlaveEvent::DataChannel { channel, .. } => channel,
        other => panic!("expected a data channel, got {other:?}"),
    };
    (session, channel)
}

/// Plays a browser: a client socket on the master (kept open, returned) and a
/// peer that offers a channel `label` to the only listed slave; returns once
/// the channel is open.
async fn open_channel(url: &str, label: &str) -> (Browser, ClientSocket) {
    open_channel_with(url, label, |sdp| sdp).await
}

/// [`open_channel`], with the slave's answer passed through `edit` before
/// the peer takes it (a peer that ignores part of what the slave said).
async fn open_channel_with(url: &str, label: &str, edit: impl Fn(String) -> String) -> (Browser, ClientSocket) {
    let (mut peer, mut ws, slave_id) = send_offer(url, label).await;

    // Signalling back: the answer, then trickled candidates, until the channel opens.
    loop {
        tokio::select! {
            msg = next_frame(&mut ws) => match msg {
                Message::AnswerFromSlave(SessionDescription { id, sdp }) => {
                    assert_eq!(id, slave_id);
                    peer.answer(edit(sdp));
                }
                Message::IceCandidateFromSlave(IceCandidate { candidate: Some(Candidate { candidate, .. }), .. }) => {
                    peer.candidate(candidate);
                }
                other => panic!("unexpected {other:?}"),
            },
            event = peer.next_event() => match event {
                BrowserEvent::Open => break,
                other => panic!("expected the channel to open, got {other:?}"),
            },
        }
    }
    (peer, ws)
}

/// The first steps of [`open_channel`]: returns once the offer is sent, with
/// the slave's id.
async fn send_offer(url: &str, label: &str) -> (Browser, ClientSocket, u32) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/enslavism/clients")).await.unwrap();
    // The registration may reach the master after this client: then it comes
    // as a second AddSlaves.
    let slave_id = loop {
        match next_frame(&mut ws).await {
            Message::AddSlaves(list) if list.is_empty() => continue,
            Message::AddSlaves(list) => {
                assert_eq!(list.len(), 1);
                break list[0].id;
            }
            other => panic!("expected the slave list, got {other:?}"),
        }
    };
    let (peer, sdp) = Browser::offer(label).await;
    let frame = Message::OfferToSlave(SessionDescription { id: slave_id, sdp }).encode().unwrap();
    ws.send(WsMessage::Binary(frame.into())).await.unwrap();
    (peer, ws, slave_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_connects_through_the_master_and_talks_to_the_slave() {
    let (master, url) = master().await;
    let (slave, mut events) =
        slave_with_events(Slave::builder(&url).user_data(r#"{"name":"rust"}"#), loopback().build().unwrap()).await;

    let (mut peer, _ws) = open_channel(&url, "echo").await;

    let client_id = match next_event(&mut events).await {
        SlaveEvent::Connection { client_id, .. } => client_id,
        other => panic!("expected a connection, got {other:?}"),
    };
    let channel = match next_event(&mut events).await {
        SlaveEvent::DataChannel { client_id: c, channel, info, .. } => {
            assert_eq!(c, client_id);
            assert_eq!(info.label, "echo");
            assert!(info.ordered);
            channel
        }
        other => panic!("expected a data channel, got {other:?}"),
    };

    // Text one way, binary the other.
    peer.send(b"hello", false);
    match next_event(&mut events).await {
        SlaveEvent::Message { channel: c, data, is_text } => {
            assert_eq!((c, &data[..], is_text), (channel, &b"hello"[..], true));
        }
        other => panic!("expected a message, got {other:?}"),
    }
    slave.send(channel, bytes::Bytes::from_static(&[1, 2, 3]), false).unwrap();
    assert_eq!(peer.next_message().await, (vec![1, 2, 3], true));
    // An empty message is dropped (given to str0m, it stalled the ordered
    // channel for good; doc/upstream.md): the next one comes through.
    slave.send(channel, bytes::Bytes::new(), false).unwrap();
    slave.send(channel, bytes::Bytes::from_static(&[4]), false).unwrap();
    assert_eq!(peer.next_message().await, (vec![4], true));
    // Several at once, in order; one for a channel that is not open is
    // dropped and counted.
    let unknown = channel + 1000;
    let batch = [
        (channel, bytes::Bytes::from_static(&[5]), false),
        (unknown, bytes::Bytes::from_static(&[6]), false),
        (channel, bytes::Bytes::from_static(b"7"), true),
    ];
    assert_eq!(slave.send_many(batch), 1);
    assert_eq!(peer.next_message().await, (vec![5], true));
    assert_eq!(peer.next_message().await, (b"7".to_vec(), false));

    // The peer goes away: the slave closes the channel, then forgets the client.
    peer.close().await;
    let closing = [next_event(&mut events).await, next_event(&mut events).await];
    assert!(matches!(closing[0], SlaveEvent::ChannelClose { channel: c, .. } if c == channel), "{closing:?}");
    assert!(matches!(closing[1], SlaveEvent::ConnectionClose { client_id: c, .. } if c == client_id), "{closing:?}");
    assert!(slave.send(channel, bytes::Bytes::new(), false).is_err());

    slave.close().await;
    master.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_size_closes_its_channel_with_an_error() {
    let (master, url) = master().await;
    let (slave, mut events) = slave_with_events(Slave::builder(&url), loopback().max_message_size(1024).build().unwrap()).await;
    // A peer that does not take the announced limit (str0m then allows 64 KiB).
    let ignore_limit =
        |sdp: String| sdp.split_inclusive('\n').filter(|l| !l.starts_with("a=max-message-size:")).collect::<String>();
    let (peer, _ws) = open_channel_with(&url, "big", ignore_limit).await;
    assert!(matches!(next_event(&mut events).await, SlaveEvent::Connection { .. }));
    let channel = match next_event(&mut events).await {
        SlaveEvent::DataChannel { channel, .. } => channel,
        other => panic!("expected the channel, got {other:?}"),
    };

    peer.send(&[7u8; 1000], true);
    assert!(matches!(next_event(&mut events).await, SlaveEvent::Message { data, .. } if data.len() == 1000));
    peer.send(&[7u8; 2000], true);
    match next_event(&mut events).await {
        SlaveEvent::ChannelError { channel: c, message } => {
            assert_eq!(c, channel);
            assert_eq!(message, "a 2000-byte message is over maxMessageSize (1024); the channel closes");
        }
        other => panic!("expected the channel's error, got {other:?}"),
    }
    assert!(matches!(next_event(&mut events).await, SlaveEvent::ChannelClose { channel: c, .. } if c == channel));

    slave.close().await;
    master.close().await;
}

/// Forwards every slave event to the test, and panics (a stand-in for a bug
/// in the engine) when a data channel is announced.
struct PanicOnChannel(mpsc::UnboundedSender<SlaveEvent>);

impl SlaveHooks for PanicOnChannel {
    fn on_event(&self, event: SlaveEvent) {
        if matches!(event, SlaveEvent::DataChannel { .. }) {
            panic!("a bug");
        }
        let _ = self.0.send(event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_engine_is_reported_and_leaves_nothing_behind() {
    let (master, url) = master().await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let config = loopback().build().unwrap();
    let slave = Slave::builder(&url).config(config).hooks(Arc::new(PanicOnChannel(events_tx))).connect().await.unwrap();
    let (_peer, _ws) = open_channel(&url, "doomed").await;

    let client_id = match next_event(&mut events).await {
        SlaveEvent::Connection { client_id, .. } => client_id,
        other => panic!("expected a connection, got {other:?}"),
    };
    // The panic is reported, and that peer (whose state it may have broken) is
    // released like any other: its channel closes and is forgotten, then the connection.
    match next_event(&mut events).await {
        SlaveEvent::InternalError { message } => assert_eq!(message, "internal error in a peer connection: a bug"),
        other => panic!("expected the internal error, got {other:?}"),
    }
    let channel = match next_event(&mut events).await {
        SlaveEvent::ChannelClose { channel, .. } => channel,
        other => panic!("expected the channel's close, got {other:?}"),
    };
    assert!(slave.send(channel, bytes::Bytes::new(), false).is_err(), "the channel handle is gone");
    assert!(matches!(next_event(&mut events).await, SlaveEvent::ConnectionClose { client_id: c, .. } if c == client_id));

    slave.close().await;
    master.close().await;
}

/// A STUN server on 127.0.0.1 that says every request came from 203.0.113.7
/// (a documentation address: it only ever appears in SDP text), as a server
/// outside a NAT would; reports each request it answered.
async fn stun_server_behind_a_nat() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<std::net::SocketAddr>) {
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (asked_tx, asked) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            // A Binding request (RFC 8489): type 0x0001, then the magic cookie.
            if len < 20 || buf[..2] != [0, 1] || buf[4..8] != COOKIE {
                continue;
            }
            // The Binding success: the request's transaction id, and an
            // XOR-MAPPED-ADDRESS (port and address XORed with the cookie).
            let mut response = vec![0x01, 0x01, 0, 12];
            response.extend_from_slice(&buf[4..20]);
            response.extend_from_slice(&[0, 0x20, 0, 8, 0, 1]);
            response.extend(from.port().to_be_bytes().iter().zip(&COOKIE).map(|(b, c)| b ^ c));
            response.extend([203u8, 0, 113, 7].iter().zip(&COOKIE).map(|(b, c)| b ^ c));
            socket.send_to(&response, from).await.unwrap();
            let _ = asked_tx.send(from);
        }
    });
    (addr, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stun_server_gives_each_shard_a_server_reflexive_candidate() {
    let (master, url) = master().await;
    let (stun, mut asked) = stun_server_behind_a_nat().await;
    let config = SlaveConfig::builder()
        .ice_addresses(["127.0.0.1".parse().unwrap()])
        .udp_port(0)
        .ice_servers([enslavism::slave::IceServer { urls: vec![format!("stun:{stun}")], ..Default::default() }])
        .build()
        .unwrap();
    let (slave, _events) = slave_with_events(Slave::builder(&url), config).await;
    let port = slave.udp_ports()[0];
    let from = tokio::time::timeout(Duration::from_secs(5), asked.recv()).await.expect("asked in time").unwrap();
    assert_eq!(from.port(), port, "asked from the shard's socket");

    let (_peer, mut ws, _) = send_offer(&url, "srflx").await;
    let sdp = loop {
        if let Message::AnswerFromSlave(SessionDescription { sdp, .. }) = next_frame(&mut ws).await {
            break sdp;
        }
    };
    // (str0m gives a reflexive candidate's base as `raddr 0.0.0.0 rport 0`,
    // as browsers do: RFC 8839 lets it be hidden.)
    let srflx = format!(" 203.0.113.7 {port} typ srflx ");
    assert!(sdp.lines().any(|l| l.starts_with("a=candidate:") && l.contains(&srflx)), "{sdp}");
    assert!(sdp.lines().any(|l| l.contains(&format!(" 127.0.0.1 {port} typ host"))), "{sdp}");

    slave.close().await;
    master.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_announces_the_configured_max_message_size() {
    let (master, url) = master().await;
    let config = loopback().max_message_size(16 * 1024).build().unwrap();
    let (slave, _events) = slave_with_events(Slave::builder(&url), config).await;
    let (_peer, mut ws, _) = send_offer(&url, "small").await;
    let sdp = loop {
        if let Message::AnswerFromSlave(SessionDescription { sdp, .. }) = next_frame(&mut ws).await {
            break sdp;
        }
    };
    assert!(sdp.lines().any(|l| l.trim_end() == "a=max-message-size:16384"), "{sdp}");
    slave.close().await;
    master.close().await;
}

/// A GET over a plain TCP socket: the status line, the headers and the body, as text.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await.unwrap().unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slave_counts_what_it_carries_and_serves_it_as_metrics() {
    let (master, url) = master().await;
    let localhost: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let config = loopback().udp_port(0).metrics_port(0).metrics_host(localhost).metrics_per_connection(true).build().unwrap();
    let (slave, mut events) = slave_with_events(Slave::builder(&url), config).await;
    assert_eq!(slave.stats().connections, 0);

    let (mut peer, _ws) = open_channel(&url, "stats").await;
    let (session, channel) = connection_and_channel(&mut events).await;
    for _ in 0..5 {
        peer.send(b"hello", false);
    }
    for _ in 0..5 {
        assert!(matches!(next_event(&mut events).await, SlaveEvent::Message { .. }));
    }
    slave.send(channel, bytes::Bytes::from_static(&[7; 30]), false).unwrap();
    peer.next_message().await;

    let stats = slave.stats();
    assert_eq!((stats.connections, stats.channels), (1, 1));
    assert_eq!((stats.messages_in, stats.bytes_in, stats.messages_out, stats.bytes_out), (5, 25, 1, 30));
    assert_eq!(stats.setup.count, 1);
    assert!(stats.setup.p50.is_some_and(|p| p > Duration::ZERO && p < Duration::from_secs(10)), "{stats:?}");
    let ch = slave.channel_stats(channel).unwrap();
    assert_eq!((ch.messages_in, ch.bytes_in, ch.messages_out, ch.bytes_out), (5, 25, 1, 30));

    let co = slave.connection(session).expect("a live connection").stats().await.unwrap();
    assert_eq!((co.messages_in, co.bytes_in, co.messages_out, co.bytes_out), (5, 25, 1, 30));
    let pair = co.selected_candidate_pair.expect("a selected pair");
    assert_eq!(pair.local, std::net::SocketAddr::new(localhost, slave.udp_ports()[0]));
    assert_eq!(pair.remote.ip(), localhost);
    assert!(co.rtt.is_some_and(|rtt| rtt < Duration::from_secs(1)), "{co:?}");
    assert_eq!((co.packets_lost, co.retransmissions), (None, None));

    let text = slave.metrics();
    assert!(text.contains("enslavism_slave_messages_total{direction=\"in\"} 5\n"), "{text}");
    assert!(text.contains(&format!("enslavism_slave_connection_bytes_total{{connection=\"{session}\",")), "{text}");
    let port = slave.metrics_port().expect("a metrics listener");
    let served = http_get(std::net::SocketAddr::new(localhost, port), "/metrics").await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(served.to_ascii_lowercase().contains(&format!("content-type: {}", enslavism::metrics::CONTENT_TYPE)), "{served}");
    assert!(served.contains("enslavism_slave_bytes_total{direction=\"out\"} 30\n"), "{served}");
    assert!(http_get(std::net::SocketAddr::new(localhost, port), "/").await.starts_with("HTTP/1.1 404"));

    // A taken metrics port fails the start.
    let taken = SlaveConfig::builder().ice_addresses([localhost]).metrics_port(port).metrics_host(localhost).build().unwrap();
    let refused = Slave::builder(&url).config(taken).connect().await.err().expect("the port is taken");
    assert!(
        matches!(&refused, enslavism::slave::SlaveError::MetricsBind(e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "{refused}"
    );

    slave.close().await;
    master.close().await;
}

/// The slave sends its handshake flights twice against loss, and a
/// browser may retransmit its own: a flight and its copy read from the
/// socket in one batch stalled the DTLS handshake until a flight timer
/// (1 s at least; 2.5–10 s in most setups) when str0m was not
/// polled between them. A setup takes milliseconds here; a second is a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setups_never_wait_on_a_dtls_flight_timer() {
    let (master, url) = master().await;
    let (slave, mut events) = slave_with_events(Slave::builder(&url), loopback().build().unwrap()).await;
    const SETUPS: u64 = 5;
    for _ in 0..SETUPS {
        let (peer, _ws) = open_channel(&url, "setup").await;
        // The slave reports the channel once its setup is counted.
        while !matches!(next_event(&mut events).await, SlaveEvent::DataChannel { .. }) {}
        peer.close().await;
    }
    let setup = slave.stats().setup;
    assert_eq!(setup.count, SETUPS);
    assert!(setup.p99.is_some_and(|p| p < Duration::from_secs(1)), "{setup:?}");
    slave.close().await;
    master.close().await;
}

/// A game often sends a burst the moment a channel opens (a snapshot of
/// the world). The slave sends its first 16 DTLS datagrams twice against
/// setup loss; a burst must not be: its copies halved the slave's
/// throughput. 200 kB out, counted on the wire (426 kB with unbounded copies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_right_after_the_setup_goes_out_once() {
    let (master, url) = master().await;
    let (slave, mut events) = slave_with_events(Slave::builder(&url), loopback().build().unwrap()).await;
    let (mut peer, _ws) = open_channel(&url, "burst").await;
    let (session, channel) = connection_and_channel(&mut events).await;

    const COUNT: usize = 200;
    const SIZE: usize = 1_000;
    let before = slave.connection(session).expect("a live connection").stats().await.unwrap().transport_bytes_out;
    for i in 0..COUNT {
        slave.send(channel, bytes::Bytes::from(vec![i as u8; SIZE]), false).unwrap();
    }
    for i in 0..COUNT {
        assert_eq!(peer.next_message().await, (vec![i as u8; SIZE], true));
    }
    let sent = slave.connection(session).expect("a live connection").stats().await.unwrap().transport_bytes_out - before;
    // Once: payload plus SCTP, DTLS and a few acknowledgements' worth of headers.
    let payload = (COUNT * SIZE) as u64;
    assert!(sent < payload * 23 / 20, "{sent} bytes on the wire for {payload} bytes of messages");

    slave.close().await;
    master.close().await;
}

/// Records, for each event, whether it came inside a batch that
/// `begin_batch` began on the same thread; counts the batches.
struct Batches {
    events: mpsc::UnboundedSender<(SlaveEvent, bool)>,
    begun: std::sync::atomic::AtomicUsize,
    ended: std::sync::atomic::AtomicUsize,
    /// `begin_batch` twice, or `end_batch` without it, on one thread.
    unbalanced: std::sync::atomic::AtomicUsize,
}

thread_local! {
    static IN_BATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl SlaveHooks for Batches {
    fn on_event(&self, event: SlaveEvent) {
        let _ = self.events.send((event, IN_BATCH.get()));
    }

    fn begin_batch(&self) {
        if IN_BATCH.replace(true) {
            self.unbalanced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.begun.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn end_batch(&self) {
        if !IN_BATCH.replace(false) {
            self.unbalanced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.ended.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_brackets_the_events_of_each_wake_up_in_one_batch() {
    use std::sync::atomic::Ordering::Relaxed;
    let (master, url) = master().await;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let hooks = Arc::new(Batches {
        events: events_tx,
        begun: Default::default(),
        ended: Default::default(),
        unbalanced: Default::default(),
    });
    let config = loopback().build().unwrap();
    let slave = Slave::builder(&url).config(config).hooks(hooks.clone()).connect().await.unwrap();
    let (peer, _ws) = open_channel(&url, "batches").await;
    for i in 0..20u8 {
        peer.send(&[i; 10], true);
    }
    // Everything the peer's packets cause comes from a shard's wake-up.
    let mut messages = 0;
    while messages < 20 {
        let (event, inside) = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap();
        if matches!(event, SlaveEvent::Message { .. } | SlaveEvent::DataChannel { .. } | SlaveEvent::Connection { .. }) {
            assert!(inside, "{event:?} came outside a batch");
        }
        messages += usize::from(matches!(event, SlaveEvent::Message { .. }));
    }
    peer.close().await;
    loop {
        let (event, inside) = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap();
        if let SlaveEvent::ChannelClose { .. } = event {
            assert!(inside, "the close came outside a batch");
            break;
        }
    }
    slave.close().await;
    master.close().await;
    assert!(hooks.begun.load(Relaxed) > 0);
    assert_eq!(hooks.begun.load(Relaxed), hooks.ended.load(Relaxed), "every batch begun is ended");
    assert_eq!(hooks.unbalanced.load(Relaxed), 0, "batches neither nest nor end unbegun on a thread");
}
