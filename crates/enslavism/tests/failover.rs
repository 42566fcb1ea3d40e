//! Several masters (Rust alone, loopback only): a slave and a native client
//! given two URLs connect to the first that answers, and when their master
//! goes, move to the other one; the client keeps the slave and its channel.

use std::sync::Arc;
use std::time::Duration;

use enslavism::client::{ChannelOptions, ClientError, MasterConnection, MasterEvent};
use enslavism::dial::DialError;
use enslavism::master::{Master, MasterConfig, NoHooks};
use enslavism::slave::{Slave, SlaveConfig, SlaveError, SlaveEvent, SlaveHooks};
use tokio::sync::mpsc;

/// Every wait of these tests.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future).await.unwrap_or_else(|_| panic!("{what} within {LIMIT:?}"))
}

/// Hands a slave's events to the test.
struct Events(mpsc::UnboundedSender<SlaveEvent>);

impl SlaveHooks for Events {
    fn on_event(&self, event: SlaveEvent) {
        let _ = self.0.send(event);
    }
}

async fn master() -> (Master, String) {
    let master = Master::bind("127.0.0.1:0".parse().unwrap(), MasterConfig::default(), Arc::new(NoHooks)).unwrap();
    let url = format!("ws://{}", master.local_addr().unwrap());
    (master, url)
}

/// A URL nothing listens on (a port just freed).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ws://{}", listener.local_addr().unwrap())
}

fn loopback() -> enslavism::slave::SlaveConfigBuilder {
    SlaveConfig::builder().ice_addresses(["127.0.0.1".parse().unwrap()])
}

/// A slave that echoes every message; its other events come out of the receiver.
async fn echo_slave(
    builder: enslavism::slave::SlaveBuilder,
    config: SlaveConfig,
) -> (Arc<Slave>, mpsc::UnboundedReceiver<SlaveEvent>) {
    let (events, mut rx) = mpsc::unbounded_channel();
    let slave = Arc::new(builder.config(config).hooks(Arc::new(Events(events))).connect().await.unwrap());
    let (echo, (forward, others)) = (slave.clone(), mpsc::unbounded_channel());
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                SlaveEvent::Message { channel, data, is_text } => {
                    let _ = echo.send(channel, data, is_text);
                }
                other => {
                    let _ = forward.send(other);
                }
            }
        }
    });
    (slave, others)
}

/// The first slave the client hears of. A slave's registration and a
/// client's first list race on the master (the 0.9.0 protocol acknowledges
/// no registration), so it may come after the first list.
async fn first_listed(events: &mut enslavism::client::MasterEvents) -> enslavism::client::SlaveInfo {
    within("a slave listed", async {
        loop {
            if let MasterEvent::SlaveAdded(listed) = events.next().await.expect("events open") {
                return listed;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_master_that_answers_is_used_and_a_bad_url_is_named() {
    let (master, url) = master().await;
    let dead = dead_url();
    let (slave, _) = echo_slave(Slave::builder(&dead).fallback_url(&url).user_data("\"s\""), loopback().build().unwrap()).await;
    assert_eq!(slave.master_url(), url);
    let (client, mut events) = MasterConnection::builder(&dead).fallback_url(&url).connect().await.unwrap();
    assert_eq!(client.master_url(), url);
    first_listed(&mut events).await;
    assert_eq!(client.slaves().len(), 1);

    let bad = Slave::builder(&url).fallback_url("http://elsewhere").connect().await.err().unwrap();
    assert!(matches!(&bad, SlaveError::Dial(DialError::BadUrl { url, .. }) if url == "http://elsewhere"), "{bad}");
    let bad = MasterConnection::builder(&url).fallback_url("nope").connect().await.err().unwrap();
    assert!(matches!(&bad, ClientError::Dial(DialError::BadUrl { url, .. }) if url == "nope"), "{bad}");
    // None answers: the first master's error.
    let other_dead = dead_url();
    let none = MasterConnection::builder(&dead).fallback_url(&other_dead).connect().await.err().unwrap();
    assert!(matches!(&none, ClientError::Dial(DialError::Unreachable { url, .. }) if url.starts_with(&dead)), "{none}");
    client.close().await;
    slave.close().await;
    master.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_master_goes_the_slave_and_the_client_move_to_the_next() {
    let (a, url_a) = master().await;
    let (b, url_b) = master().await;
    let fast = loopback().reconnect_max_delay(Duration::from_millis(300)).build().unwrap();
    let (slave, mut slave_events) = echo_slave(Slave::builder(&url_a).fallback_url(&url_b).user_data("\"game\""), fast).await;
    assert_eq!(slave.master_url(), url_a);
    let (client, mut events) = MasterConnection::builder(&url_a)
        .fallback_url(&url_b)
        .ice_addresses(["127.0.0.1".parse().unwrap()])
        .reconnect_max_delay(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let listed = first_listed(&mut events).await;
    let mut chat = within("a channel", client.slave(listed.id).unwrap().create_data_channel("chat", ChannelOptions::reliable()))
        .await
        .unwrap();

    a.close().await;
    let url = within("the slave on B", async {
        loop {
            if let Some(SlaveEvent::MasterReconnect { url, .. }) = slave_events.recv().await {
                return url;
            }
        }
    })
    .await;
    assert_eq!((url.as_str(), slave.master_url()), (url_b.as_str(), url_b.clone()));
    // Either may come first: the slave can reach B before the client does.
    let (reconnected_to, back) = within("the client on B, the slave listed", async {
        let (mut reconnected_to, mut back) = (None, None);
        while reconnected_to.is_none() || back.is_none() {
            match events.next().await.expect("events open") {
                MasterEvent::Reconnected { url, .. } => reconnected_to = Some(url),
                MasterEvent::SlaveKept(info) | MasterEvent::SlaveRelisted(info) => back = Some(info),
                MasterEvent::Disconnected { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (reconnected_to.unwrap(), back.unwrap())
    })
    .await;
    assert_eq!(reconnected_to, url_b);
    assert_eq!((back.uid, back.user_data.as_str()), (listed.uid, "\"game\""), "the same slave");
    assert_eq!(client.master_url(), url_b);
    chat.send_text("still here").await.unwrap();
    assert_eq!(&within("the echo", chat.recv()).await.unwrap().data[..], b"still here");
    client.close().await;
    slave.close().await;
    b.close().await;
}
