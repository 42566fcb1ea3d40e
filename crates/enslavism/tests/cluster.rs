//! Two masters sharing one lobby through a real `redis-server` (started on
//! a free loopback port by each test, without persistence), driven by
//! tokio-tungstenite peers speaking the 0.9.0 wire format.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enslavism::master::cluster::ClusterConfig;
use enslavism::master::{Master, MasterConfig, MasterEvent, MasterHooks};
use enslavism::proto::{Message, SessionDescription, SlaveEntry};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every wait of these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A `redis-server` of the test's own, on loopback; killed when dropped.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    async fn start_on(port: u16) -> Redis {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", ""])
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        // Its log is read on a thread (std's process API, so that the tests
        // need no tokio feature the engine does not: one build of the tree).
        let stdout = child.stdout.take().unwrap();
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
            }
        });
        timeout(WAIT, is_ready).await.expect("redis-server ready in time").expect("redis-server running");
        Redis { child, port }
    }

    async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Redis::start_on(port).await
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards the master's events to the test.
struct Events(Mutex<mpsc::UnboundedSender<MasterEvent>>);

impl MasterHooks for Events {
    fn on_event(&self, event: MasterEvent) {
        let _ = self.0.lock().unwrap().send(event);
    }
}

struct Node {
    master: Master,
    events: mpsc::UnboundedReceiver<MasterEvent>,
}

impl Node {
    fn start(redis: &str, ttl: Duration) -> Node {
        Node::start_with(ClusterConfig::builder(redis).name("test").slave_ttl(ttl).build().unwrap())
    }

    fn start_with(cluster: ClusterConfig) -> Node {
        let config = MasterConfig::builder().cluster(cluster).build().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let master = Master::bind("127.0.0.1:0".parse().unwrap(), config, Arc::new(Events(Mutex::new(tx)))).unwrap();
        Node { master, events }
    }

    fn addr(&self) -> SocketAddr {
        self.master.local_addr().unwrap()
    }

    /// The next event that `pick` selects.
    async fn event<T>(&mut self, mut pick: impl FnMut(MasterEvent) -> Option<T>) -> T {
        timeout(WAIT, async {
            loop {
                if let Some(found) = pick(self.events.recv().await.expect("master running")) {
                    return found;
                }
            }
        })
        .await
        .expect("event within the wait")
    }

    async fn in_sync(&mut self) -> u16 {
        self.event(|e| match e {
            MasterEvent::ClusterConnected { node } => Some(node),
            _ => None,
        })
        .await
    }
}

async fn open(addr: SocketAddr, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.unwrap().0
}

async fn send(ws: &mut Ws, msg: Message) {
    ws.send(WsMessage::Binary(msg.encode().unwrap().into())).await.unwrap();
}

async fn recv(ws: &mut Ws) -> Message {
    timeout(WAIT, async {
        loop {
            match ws.next().await.expect("connection open").expect("no error") {
                WsMessage::Binary(data) => return Message::decode(&data).expect("valid frame"),
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("a frame within the wait")
}

async fn listed_slave(client: &mut Ws) -> SlaveEntry {
    match recv(client).await {
        Message::AddSlaves(list) if list.len() == 1 => list[0].clone(),
        other => panic!("one slave listed expected, got {other:?}"),
    }
}

/// The one slave a newly connected client lists: in its first list, or
/// just after (the slave's master may not have published it yet).
async fn first_slave(client: &mut Ws) -> SlaveEntry {
    match recv(client).await {
        Message::AddSlaves(list) if list.len() == 1 => list[0].clone(),
        Message::AddSlaves(list) if list.is_empty() => listed_slave(client).await,
        other => panic!("one slave listed expected, got {other:?}"),
    }
}

/// Both masters in sync, a slave registered on A with `user_data`, and a
/// client of B that lists it: (slave, client, the client's entry).
async fn slave_on_a_listed_on_b(a: &mut Node, b: &mut Node, user_data: &str) -> (Ws, Ws, SlaveEntry) {
    a.in_sync().await;
    b.in_sync().await;
    let mut slave = open(a.addr(), "/enslavism/slaves").await;
    send(&mut slave, Message::Register { user_data: user_data.into() }).await;
    let mut client = open(b.addr(), "/enslavism/clients").await;
    let entry = first_slave(&mut client).await;
    (slave, client, entry)
}

#[tokio::test]
async fn a_slave_of_one_master_is_listed_and_reached_through_another() {
    let redis = Redis::start().await;
    let mut a = Node::start(&redis.url(), Duration::from_secs(2));
    let mut b = Node::start(&redis.url(), Duration::from_secs(2));
    let (node_a, node_b) = (a.in_sync().await, b.in_sync().await);
    assert_ne!(node_a, node_b);

    let mut client = open(b.addr(), "/enslavism/clients").await;
    assert_eq!(recv(&mut client).await, Message::AddSlaves(vec![]));
    let mut slave = open(a.addr(), "/enslavism/slaves").await;
    send(&mut slave, Message::Register { user_data: r#"{"name":"on A"}"#.into() }).await;
    let entry = listed_slave(&mut client).await;
    assert_eq!(entry.user_data, r#"{"name":"on A"}"#);
    assert!(entry.id < 1024, "slave ids are small numbers from the cluster's counter (got {})", entry.id);

    // A client arriving later gets it in its first list, with the same id.
    let mut late = open(b.addr(), "/enslavism/clients").await;
    assert_eq!(listed_slave(&mut late).await, entry);

    // Offer, answer and candidates cross masters with ids rewritten.
    send(&mut client, Message::OfferToSlave(SessionDescription { id: entry.id, sdp: "offer".into() })).await;
    let Message::OfferFromClient(offer) = recv(&mut slave).await else { panic!("offer expected") };
    assert_eq!(offer.sdp, "offer");
    assert_eq!(u32::from(node_b), offer.id >> 20);
    send(&mut slave, Message::AnswerToClient(SessionDescription { id: offer.id, sdp: "answer".into() })).await;
    assert_eq!(recv(&mut client).await, Message::AnswerFromSlave(SessionDescription { id: entry.id, sdp: "answer".into() }));
    send(&mut slave, Message::RejectToClient { id: offer.id }).await;
    assert_eq!(recv(&mut client).await, Message::RejectFromSlave { id: entry.id });
    assert_eq!(b.master.stats().remote_slaves, 1);
    assert_eq!(a.master.stats().registered_slaves, 1);

    // Its userData changes reach B (V1 clients, as here, see them when they
    // next connect), and its departure reaches B's clients.
    send(&mut slave, Message::Register { user_data: r#"{"name":"on A","round":2}"#.into() }).await;
    let changed = b
        .event(|e| match e {
            MasterEvent::RemoteSlaveUpdated { id, node, user_data } => Some((id, node, user_data)),
            _ => None,
        })
        .await;
    assert_eq!(changed, (entry.id, node_a, r#"{"name":"on A","round":2}"#.to_owned()));
    let mut newcomer = open(b.addr(), "/enslavism/clients").await;
    assert_eq!(listed_slave(&mut newcomer).await.user_data, r#"{"name":"on A","round":2}"#);
    slave.close(None).await.unwrap();
    assert_eq!(recv(&mut client).await, Message::RemoveSlaves(vec![entry.id]));
    b.event(|e| matches!(e, MasterEvent::RemoteSlaveUnlisted { .. }).then_some(())).await;
    assert_eq!(b.master.stats().remote_slaves, 0);
}

#[tokio::test]
async fn a_master_gone_without_a_word_leaves_the_lists_within_the_ttl() {
    let redis = Redis::start().await;
    let ttl = Duration::from_millis(800);
    // A runs on a runtime of its own, shut down below with every task
    // dropped unpolled: nothing of A says goodbye, as when it is killed.
    let runtime_a = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut a = {
        let _entered = runtime_a.enter();
        Node::start(&redis.url(), ttl)
    };
    let mut b = Node::start(&redis.url(), ttl);
    let (mut slave, mut client, entry) = slave_on_a_listed_on_b(&mut a, &mut b, "{}").await;
    // An offer reaches the slave, which never answers: its master dies mid-relay.
    send(&mut client, Message::OfferToSlave(SessionDescription { id: entry.id, sdp: "offer".into() })).await;
    assert!(matches!(recv(&mut slave).await, Message::OfferFromClient(_)));
    runtime_a.shutdown_background();
    let killed = tokio::time::Instant::now();
    // The browser is told the slave refused, rather than left waiting; then it is unlisted.
    assert_eq!(recv(&mut client).await, Message::RejectFromSlave { id: entry.id });
    assert_eq!(recv(&mut client).await, Message::RemoveSlaves(vec![entry.id]));
    let took = killed.elapsed();
    assert!(took <= ttl + ttl / 4, "unlisted after {took:?}");
    drop(a);
}

#[tokio::test]
async fn redis_lost_and_back_the_lists_converge_and_offers_meanwhile_are_refused() {
    let redis = Redis::start().await;
    let mut a = Node::start(&redis.url(), Duration::from_secs(2));
    let mut b = Node::start(&redis.url(), Duration::from_secs(2));
    let (mut slave, mut client, first) = slave_on_a_listed_on_b(&mut a, &mut b, r#""first""#).await;

    // An offer relayed and not yet answered when Redis goes: refused then.
    send(&mut client, Message::OfferToSlave(SessionDescription { id: first.id, sdp: "pending".into() })).await;
    assert!(matches!(recv(&mut slave).await, Message::OfferFromClient(_)));
    let port = redis.kill();
    assert_eq!(recv(&mut client).await, Message::RejectFromSlave { id: first.id });
    b.event(|e| matches!(e, MasterEvent::ClusterDisconnected { .. }).then_some(())).await;
    // The remote slave stays listed (players on it keep playing), but it
    // cannot be reached: an offer is refused at once.
    send(&mut client, Message::OfferToSlave(SessionDescription { id: first.id, sdp: "offer".into() })).await;
    assert_eq!(recv(&mut client).await, Message::RejectFromSlave { id: first.id });
    // Meanwhile the slave leaves A and another registers.
    slave.close(None).await.unwrap();
    let mut second = open(a.addr(), "/enslavism/slaves").await;
    send(&mut second, Message::Register { user_data: r#""second""#.into() }).await;

    let _redis = Redis::start_on(port).await;
    a.in_sync().await;
    b.in_sync().await;
    // B's client ends up with exactly the second slave: no ghost, no twin.
    let mut listed = std::collections::BTreeMap::from([(first.id, first.user_data.clone())]);
    while listed.len() != 1 || listed.values().next().map(String::as_str) != Some(r#""second""#) {
        match recv(&mut client).await {
            Message::AddSlaves(list) => listed.extend(list.into_iter().map(|e| (e.id, e.user_data))),
            Message::RemoveSlaves(ids) => ids.iter().for_each(|id| drop(listed.remove(id))),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(b.master.stats().remote_slaves, 1);
}

#[tokio::test]
async fn garbage_in_redis_is_ignored_and_hurts_nothing() {
    let redis = Redis::start().await;
    let mut b = Node::start(&redis.url(), Duration::from_secs(2));
    let node_b = b.in_sync().await;
    let mut con = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Foreign and malformed slave keys, stream entries and relayed frames.
    let garbage: &[&[&str]] = &[
        &["SET", "enslavism:{test}:slave:77", "not a record"],
        &["SET", "enslavism:{test}:slave:78", "5\nnot json"],
        &["SET", "enslavism:{test}:slave:notanumber", "5\n{}"],
        &["SET", "enslavism:{test}:slave-ids", "banana"],
        &["XADD", "enslavism:{test}:changes", "*", "op", "set", "id", "79", "node", "0", "data", "{}"],
        &["XADD", "enslavism:{test}:changes", "*", "op", "explode", "id", "80", "node", "5"],
        &["XADD", "enslavism:{test}:changes", "*", "unrelated", "field"],
    ];
    for command in garbage {
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(arg.replace("\\n", "\n"));
        }
        let _: redis::Value = cmd.query_async(&mut con).await.unwrap();
    }
    for junk in [&b""[..], b"S", b"X\0\0\0\x01\x04", b"C\0\0\0\x01\x03not an answer"] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(format!("enslavism:{{test}}:relay:{node_b}"))
            .arg(junk)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    // A master that joins now reads all of it (its full read lists none of
    // it); B, following the stream, lists none either.
    let mut a = Node::start(&redis.url(), Duration::from_secs(2));
    a.in_sync().await;
    let mut on_a = open(a.addr(), "/enslavism/clients").await;
    assert_eq!(recv(&mut on_a).await, Message::AddSlaves(vec![]), "no garbage listed by the master that read it all");
    let mut client = open(b.addr(), "/enslavism/clients").await;
    assert_eq!(recv(&mut client).await, Message::AddSlaves(vec![]), "no garbage listed");
    let mut slave = open(a.addr(), "/enslavism/slaves").await;
    send(&mut slave, Message::Register { user_data: "{}".into() }).await;
    let entry = listed_slave(&mut client).await;
    assert!(entry.id < 1024, "the garbage id counter was reset to small numbers (got {})", entry.id);
    send(&mut client, Message::OfferToSlave(SessionDescription { id: entry.id, sdp: "o".into() })).await;
    assert!(matches!(recv(&mut slave).await, Message::OfferFromClient(_)), "relays still work");
    assert_eq!(b.master.stats().remote_slaves, 1);
}

#[tokio::test]
async fn a_redis_that_answers_slowly_costs_a_resync_not_a_crash() {
    let redis = Redis::start().await;
    let slow = |url: &str| {
        let config = ClusterConfig::builder(url).name("test").slave_ttl(Duration::from_secs(2));
        Node::start_with(config.redis_timeout(Duration::from_millis(300)).build().unwrap())
    };
    let (mut a, mut b) = (slow(&redis.url()), slow(&redis.url()));
    let (mut slave, mut client, entry) = slave_on_a_listed_on_b(&mut a, &mut b, "{}").await;
    // Redis stops answering for longer than the masters wait.
    let mut con = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(1000).arg("ALL").query_async(&mut con).await.unwrap();
    b.event(|e| matches!(e, MasterEvent::ClusterDisconnected { .. }).then_some(())).await;
    b.in_sync().await;
    // Back in sync: the same list, and relays work.
    send(&mut client, Message::OfferToSlave(SessionDescription { id: entry.id, sdp: "o".into() })).await;
    assert!(matches!(recv(&mut slave).await, Message::OfferFromClient(_)));
    assert_eq!(b.master.stats().remote_slaves, 1);
}
