//! A scripted check of the native client against any master and slaves
//! (ours or enslavism 0.9.0's): what `__test__/native-client.test.js` runs
//! to hold the client to both.
//!
//!     cargo run --example client_check -- ws://127.0.0.1:8081 127.0.0.1
//!
//! The master must list a slave with userData `{"name":"echo"}` that echoes
//! every message, and one with `{"name":"refuse"}` that refuses every offer.
//! Steps, each printed on stdout as `ok STEP` (or `failed STEP: why`, exit 1):
//! `reliable` (a text echo), `unreliable` (a second channel on the same
//! connection, binary), `both` (the first channel still works), `rejected`.
//! Then it prints `restart-master` and waits for the master to go and come
//! back: `reconnected`, and `after-restart` (a channel to the echo slave as
//! listed by the new master). Every wait is bounded (10 s, 30 s for the restart).

use std::time::Duration;

use enslavism::client::{ChannelOptions, ClientError, DataChannel, MasterConnection, MasterEvent, MasterEvents, SlaveConnection};

const LIMIT: Duration = Duration::from_secs(10);
const RESTART_LIMIT: Duration = Duration::from_secs(30);

type Failure = Box<dyn std::error::Error>;

async fn within<T>(limit: Duration, what: &str, future: impl std::future::Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout(limit, future).await.map_err(|_| format!("{what}: nothing within {limit:?}").into())
}

/// The id of the slave whose userData has this name, waiting for it to be listed.
async fn listed(master: &MasterConnection, events: &mut MasterEvents, name: &str, limit: Duration) -> Result<u32, Failure> {
    let wanted = serde_json::json!({ "name": name });
    within(limit, &format!("slave {name} listed"), async {
        loop {
            let found = master
                .slaves()
                .into_iter()
                .find(|s| serde_json::from_str::<serde_json::Value>(&s.user_data).ok().as_ref() == Some(&wanted));
            if let Some(slave) = found {
                return Ok(slave.id);
            }
            if events.next().await.is_none() {
                return Err(Failure::from("the master connection closed"));
            }
        }
    })
    .await?
}

async fn echo(channel: &mut DataChannel, payload: &[u8], text: bool) -> Result<(), Failure> {
    if text {
        channel.send_text(std::str::from_utf8(payload)?).await?;
    } else {
        channel.send(payload.to_vec()).await?;
    }
    let reply = within(LIMIT, "the echo", channel.recv()).await?.ok_or("the channel closed")?;
    if &reply.data[..] != payload || reply.is_text != text {
        return Err(format!("echo was {:?} (text {})", reply.data, reply.is_text).into());
    }
    Ok(())
}

/// Opens a channel, within [`LIMIT`].
async fn open(slave: &SlaveConnection, label: &str, options: ChannelOptions) -> Result<DataChannel, Failure> {
    Ok(within(LIMIT, label, slave.create_data_channel(label, options)).await??)
}

async fn run(url: String, ice: Vec<std::net::IpAddr>) -> Result<(), (String, Failure)> {
    let step = |name: &'static str| move |e: Failure| (name.to_owned(), e);
    let mut builder = MasterConnection::builder(url).reconnect_max_delay(Duration::from_millis(500));
    if !ice.is_empty() {
        builder = builder.ice_addresses(ice);
    }
    let (master, mut events) = builder.connect().await.map_err(|e| ("connect".to_owned(), e.into()))?;
    let echo_id = listed(&master, &mut events, "echo", LIMIT).await.map_err(step("reliable"))?;
    let slave = master.slave(echo_id).map_err(|e| ("reliable".to_owned(), e.into()))?;

    let mut chat = open(&slave, "chat", ChannelOptions::reliable()).await.map_err(step("reliable"))?;
    echo(&mut chat, b"What have I wrought!", true).await.map_err(step("reliable"))?;
    println!("ok reliable");
    let mut state = open(&slave, "state", ChannelOptions::unreliable()).await.map_err(step("unreliable"))?;
    echo(&mut state, &[1, 2, 3, 4], false).await.map_err(step("unreliable"))?;
    println!("ok unreliable");
    echo(&mut chat, b"still here", true).await.map_err(step("both"))?;
    println!("ok both");

    let refuse_id = listed(&master, &mut events, "refuse", LIMIT).await.map_err(step("rejected"))?;
    let refused = master.slave(refuse_id).map_err(|e| ("rejected".to_owned(), e.into()))?;
    match within(LIMIT, "the refusal", refused.create_data_channel("x", ChannelOptions::reliable())).await {
        Ok(Err(ClientError::Rejected { .. })) => println!("ok rejected"),
        Ok(Ok(_)) => return Err(("rejected".into(), "the channel opened".into())),
        Ok(Err(e)) => return Err(("rejected".into(), e.into())),
        Err(e) => return Err(("rejected".into(), e)),
    }

    println!("restart-master");
    within(RESTART_LIMIT, "the reconnection", async {
        let mut disconnected = false;
        loop {
            match events.next().await {
                Some(MasterEvent::Disconnected { .. }) => disconnected = true,
                Some(MasterEvent::Reconnected { .. }) if disconnected => return Ok(()),
                Some(_) => {}
                None => return Err(Failure::from("the master connection closed for good")),
            }
        }
    })
    .await
    .and_then(|r| r)
    .map_err(step("reconnected"))?;
    println!("ok reconnected");
    let echo_id = listed(&master, &mut events, "echo", RESTART_LIMIT).await.map_err(step("after-restart"))?;
    let slave = master.slave(echo_id).map_err(|e| ("after-restart".to_owned(), e.into()))?;
    let mut again = open(&slave, "again", ChannelOptions::reliable()).await.map_err(step("after-restart"))?;
    echo(&mut again, b"back", true).await.map_err(step("after-restart"))?;
    println!("ok after-restart");
    master.close().await;
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8081".into());
    let ice = match args.map(|a| a.parse()).collect::<Result<Vec<_>, _>>() {
        Ok(ice) => ice,
        Err(e) => {
            eprintln!("client_check: bad ICE address: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    if let Err((step, e)) = runtime.block_on(run(url, ice)) {
        println!("failed {step}: {e}");
        std::process::exit(1);
    }
}
