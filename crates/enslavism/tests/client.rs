//! The native client against our master and slave (Rust alone, loopback
//! only): channels of both kinds, rejection, the live list, a restarted
//! master, and a master that lies or stays silent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enslavism::client::{ChannelOptions, ClientError, MasterConnection, MasterEvent, MasterEvents};
use enslavism::dial::DialError;
use enslavism::master::{Master, MasterConfig, NoHooks};
use enslavism::proto::{Message, SlaveEntry};
use enslavism::slave::{ChannelInfo, OfferDecision, Slave, SlaveConfig, SlaveError, SlaveEvent, SlaveHooks};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Every wait of these tests.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future).await.unwrap_or_else(|_| panic!("{what} within {LIMIT:?}"))
}

/// A slave's hooks: accept (or refuse) offers, hand events to the echo task.
struct Hooks {
    accept: bool,
    events: mpsc::UnboundedSender<SlaveEvent>,
}

impl SlaveHooks for Hooks {
    fn on_offer(&self, _client_id: u32) -> OfferDecision {
        Box::pin(std::future::ready(self.accept))
    }

    fn on_event(&self, event: SlaveEvent) {
        let _ = self.events.send(event);
    }
}

/// A slave on loopback that echoes every message and records its channels;
/// the receiver gets each closed connection's client id.
async fn echo_slave(
    url: &str,
    user_data: &str,
    accept: bool,
) -> (Arc<Slave>, Arc<Mutex<Vec<ChannelInfo>>>, mpsc::UnboundedReceiver<u32>) {
    let (events, mut rx) = mpsc::unbounded_channel();
    let config = SlaveConfig::builder().ice_addresses(["127.0.0.1".parse().unwrap()]).build().unwrap();
    let slave = Slave::builder(url).user_data(user_data).config(config).hooks(Arc::new(Hooks { accept, events }));
    let slave = Arc::new(slave.connect().await.unwrap());
    let channels = Arc::new(Mutex::new(Vec::new()));
    let (echo, seen) = (slave.clone(), channels.clone());
    let (closed_tx, closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                SlaveEvent::DataChannel { info, .. } => seen.lock().unwrap().push(info),
                SlaveEvent::Message { channel, data, is_text } => {
                    let _ = echo.send(channel, data, is_text);
                }
                SlaveEvent::ConnectionClose { client_id, .. } => {
                    let _ = closed_tx.send(client_id);
                }
                _ => {}
            }
        }
    });
    (slave, channels, closed)
}

fn client(url: &str) -> enslavism::client::MasterConnectionBuilder {
    MasterConnection::builder(url).ice_addresses(["127.0.0.1".parse().unwrap()])
}

/// The id of the first listed slave, waiting for one to be added.
async fn first_slave(master: &MasterConnection, events: &mut MasterEvents) -> u32 {
    within("a listed slave", async {
        loop {
            if let Some(listed) = master.slaves().first() {
                return listed.id;
            }
            events.next().await.expect("events open");
        }
    })
    .await
}

async fn master() -> (Master, String) {
    let master = Master::bind("127.0.0.1:0".parse().unwrap(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    let url = format!("ws://{}", master.local_addr().unwrap());
    (master, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_and_unreliable_channels_to_our_slave() {
    let (master, url) = master().await;
    let (slave, channels, mut closed) = echo_slave(&url, r#"{"name":"echo"}"#, true).await;
    let (client, mut events) = client(&url).connect().await.unwrap();
    let id = first_slave(&client, &mut events).await;
    assert_eq!(client.slaves()[0].user_data, r#"{"name":"echo"}"#);
    let connection = client.slave(id).unwrap();

    let mut chat = within("chat open", connection.create_data_channel("chat", ChannelOptions::reliable())).await.unwrap();
    chat.send_text("hello").await.unwrap();
    let echoed = within("the text echo", chat.recv()).await.unwrap();
    assert_eq!((&echoed.data[..], echoed.is_text), (&b"hello"[..], true));

    // Added to the live connection: a renegotiation lists it for the slave.
    let mut state = within("state open", connection.create_data_channel("state", ChannelOptions::unreliable())).await.unwrap();
    state.send(vec![1u8, 2, 3]).await.unwrap();
    let echoed = within("the binary echo", state.recv()).await.unwrap();
    assert_eq!((&echoed.data[..], echoed.is_text), (&[1u8, 2, 3][..], false));
    // An empty message is dropped (it would stall the ordered channel; doc/upstream.md).
    chat.send_text("").await.unwrap();
    chat.send_text("still here").await.unwrap();
    assert_eq!(&within("the second text echo", chat.recv()).await.unwrap().data[..], b"still here");

    let seen = channels.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].ordered && seen[0].max_retransmits.is_none() && !seen[0].negotiated, "{seen:?}");
    assert_eq!(
        (seen[1].label.as_str(), seen[1].ordered, seen[1].max_retransmits, seen[1].negotiated),
        ("state", false, Some(0), true)
    );

    connection.close();
    assert!(within("the channel's close", chat.recv()).await.is_none());
    // The client says it is going (SCTP shutdown, DTLS close_notify): the
    // slave releases the connection at once, well within the 15 s after
    // which silence would end it.
    within("the slave's release of the connection", closed.recv()).await.unwrap();
    client.close().await;
    slave.close().await;
    master.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_a_rejection_and_unknown_ids_are_errors() {
    let (master, url) = master().await;
    let (slave, _, _) = echo_slave(&url, "{}", false).await;
    let (client, mut events) = client(&url).connect().await.unwrap();
    let id = first_slave(&client, &mut events).await;
    let refused = within("the refusal", client.slave(id).unwrap().create_data_channel("x", ChannelOptions::reliable())).await;
    assert!(matches!(refused, Err(ClientError::Rejected { slave }) if slave == id), "{refused:?}");
    assert!(matches!(client.slave(id + 1000), Err(ClientError::UnknownSlave(_))));
    client.close().await;
    assert!(matches!(client.slave(id), Err(ClientError::Closed)));
    slave.close().await;
    master.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_follows_slaves_and_survives_a_master_restart() {
    let (master, url) = master().await;
    let addr: SocketAddr = master.local_addr().unwrap();
    let (client, mut events) = client(&url).reconnect_max_delay(Duration::from_millis(300)).connect().await.unwrap();
    assert!(client.slaves().is_empty());

    let (slave, _, _) = echo_slave(&url, r#"{"n":1}"#, true).await;
    let Some(MasterEvent::SlaveAdded(added)) = within("SlaveAdded", events.next()).await else { panic!("SlaveAdded expected") };
    assert_eq!(added.user_data, r#"{"n":1}"#);
    let connection = client.slave(added.id).unwrap();
    let mut chat = within("chat open", connection.create_data_channel("chat", ChannelOptions::reliable())).await.unwrap();

    // The master restarts on the same port: the client and the slave come back,
    // the slave is known again (the fresh master gives it id 0 again, as a
    // cluster would: kept, not relisted nor added), the channel is untouched.
    master.close().await;
    let Some(MasterEvent::Disconnected { .. }) = within("Disconnected", events.next()).await else {
        panic!("Disconnected expected")
    };
    let master = Master::bind(addr, MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    // The slave may register again before the client is back (it is then in
    // the first list, reported before Reconnected) or after.
    let (mut reconnected, mut kept) = (false, None);
    within("the reconnection and the slave listed again", async {
        while !reconnected || kept.is_none() {
            match events.next().await.expect("events open") {
                MasterEvent::Reconnected { url: back, .. } => {
                    assert_eq!(back, url);
                    reconnected = true
                }
                MasterEvent::SlaveKept(info) => kept = Some(info),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    let kept = kept.unwrap();
    assert_eq!((kept.id, kept.uid), (added.id, added.uid), "the same id, the same slave");
    assert_eq!(client.slaves(), vec![kept]);
    assert_eq!(client.slave(client.slaves()[0].id).unwrap().id(), connection.id(), "the same SlaveConnection");
    chat.send_text("after").await.unwrap();
    assert_eq!(&within("an echo after the restart", chat.recv()).await.unwrap().data[..], b"after");
    let mut state =
        within("a channel through the new master", connection.create_data_channel("state", ChannelOptions::unreliable()))
            .await
            .unwrap();
    state.send_text("new").await.unwrap();
    assert_eq!(&within("its echo", state.recv()).await.unwrap().data[..], b"new");

    // The slave leaves: it is removed, and its connection closed.
    slave.close().await;
    let removed = within("SlaveRemoved", async {
        loop {
            if let Some(MasterEvent::SlaveRemoved(info)) = events.next().await {
                return info;
            }
        }
    })
    .await;
    assert_eq!(removed.user_data, r#"{"n":1}"#);
    assert!(client.slaves().is_empty());
    client.close().await;
    master.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_updates_its_user_data_live_and_open_channels_stay() {
    let config = MasterConfig::builder().max_user_data_size(64).build().unwrap();
    let master = Master::bind("127.0.0.1:0".parse().unwrap(), config, Arc::new(NoHooks)).unwrap();
    let url = format!("ws://{}", master.local_addr().unwrap());
    let (slave, _, _) = echo_slave(&url, r#"{"players":0}"#, true).await;
    let (client, mut events) = client(&url).connect().await.unwrap();
    let id = first_slave(&client, &mut events).await;
    let mut chat =
        within("chat open", client.slave(id).unwrap().create_data_channel("chat", ChannelOptions::reliable())).await.unwrap();

    within("the update", slave.set_user_data(r#"{"players":1}"#)).await.unwrap();
    assert_eq!(slave.user_data(), r#"{"players":1}"#);
    let updated = within("SlaveUpdated", async {
        loop {
            match events.next().await.expect("events open") {
                MasterEvent::SlaveUpdated(info) => return info,
                MasterEvent::SlaveAdded(_) => {} // the first list's
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!((updated.id, updated.user_data.as_str()), (id, r#"{"players":1}"#), "in place, under the same id");
    assert_eq!(client.slaves(), vec![updated]);
    chat.send_text("still open").await.unwrap();
    assert_eq!(&within("an echo after the update", chat.recv()).await.unwrap().data[..], b"still open");

    // Over the master's limit: refused, and the slave keeps what it had.
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100));
    let refused = within("the refusal", slave.set_user_data(big)).await;
    assert!(matches!(&refused, Err(SlaveError::UserDataRefused(reason)) if reason.contains("64")), "{refused:?}");
    assert_eq!(slave.user_data(), r#"{"players":1}"#);
    assert!(matches!(slave.set_user_data("not json").await, Err(SlaveError::UserData(_))));
    // A burst is merged: every call settles, the list ends on the latest.
    let burst: Vec<_> = (2..7).map(|n| slave.set_user_data(format!(r#"{{"players":{n}}}"#))).collect();
    for outcome in within("the burst", futures_util::future::join_all(burst)).await {
        outcome.unwrap();
    }
    within("the latest listed", async {
        while client.slaves()[0].user_data != r#"{"players":6}"# {
            events.next().await.expect("events open");
        }
    })
    .await;
    client.close().await;
    slave.close().await;
    master.close().await;
}

/// A master that speaks garbage and lies: every frame below is dropped with
/// an event or ignored, an offer never answered fails in time, nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_or_silent_master_gives_errors_and_events_never_a_hang() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // Like 0.9.0's `ws` server, it agrees to the first subprotocol offered (V1).
        #[allow(clippy::result_large_err)]
        let first_offered = |request: &Request, mut response: Response| {
            let offered = request.headers()["sec-websocket-protocol"].to_str().unwrap();
            let first = offered.split(',').next().unwrap().trim().parse().unwrap();
            response.headers_mut().insert("sec-websocket-protocol", first);
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, first_offered).await.unwrap();
        let frame = |m: Message| WsMessage::Binary(m.encode().unwrap().into());
        ws.send(WsMessage::Binary(vec![99u8].into())).await.unwrap();
        ws.send(frame(Message::AddSlaves(vec![SlaveEntry { id: 7, user_data: "{}".into() }]))).await.unwrap();
        ws.send(WsMessage::Binary(vec![1u8, 0, 0].into())).await.unwrap();
        ws.send(frame(Message::RejectFromSlave { id: 12345 })).await.unwrap();
        ws.send(frame(Message::Register { user_data: "{}".into() })).await.unwrap();
        // Offers are read and never answered.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let (client, mut events) = client(&url).signalling_timeout(Duration::from_millis(500)).connect().await.unwrap();
    let mut bad = 0;
    while bad < 3 {
        match within("the bad-frame events", events.next()).await {
            Some(MasterEvent::BadFrame { .. }) => bad += 1,
            Some(MasterEvent::SlaveAdded(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(client.slaves().len(), 1);
    let unanswered =
        within("the answer timeout", client.slave(7).unwrap().create_data_channel("x", ChannelOptions::reliable())).await;
    assert!(matches!(unanswered, Err(ClientError::Timeout { .. })), "{unanswered:?}");
    client.close().await;
    fake.abort();
}

#[tokio::test]
async fn bad_urls_and_settings_are_refused_before_connecting() {
    let bad = MasterConnection::builder("http://127.0.0.1:1").connect().await;
    assert!(matches!(bad, Err(ClientError::Dial(DialError::BadUrl { .. }))), "{:?}", bad.err());
    let zero = MasterConnection::builder("ws://127.0.0.1:1").signalling_timeout(Duration::ZERO).connect().await;
    assert!(matches!(zero, Err(ClientError::Config(_))), "{:?}", zero.err());
    let closed = MasterConnection::builder("ws://127.0.0.1:1").connect().await;
    assert!(matches!(closed, Err(ClientError::Dial(DialError::Unreachable { .. }))), "{:?}", closed.err());
}
