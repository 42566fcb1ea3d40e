//! A slave that echoes every message back on the channel it came from: the
//! peer the `bots` example measures, as a process of its own.
//!
//!     cargo run --release --example echo_slave -- ws://127.0.0.1:8081 127.0.0.1
//!
//! Arguments: the master URL, then the addresses ICE binds (default
//! `0.0.0.0`). Prints `registered` once the master has it; stops when stdin
//! closes.

use std::sync::{Arc, OnceLock};

use enslavism::slave::{Slave, SlaveConfig, SlaveEvent, SlaveHooks};

/// Sends each message back; the slave is set once connected (no message can
/// arrive before: no client can reach an unregistered slave).
struct Echo(Arc<OnceLock<Slave>>);

impl SlaveHooks for Echo {
    fn on_event(&self, event: SlaveEvent) {
        if let (SlaveEvent::Message { channel, data, is_text }, Some(slave)) = (event, self.0.get()) {
            let _ = slave.send(channel, data, is_text);
        }
    }
}

mod support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8081".into());
    let addresses = args.map(|a| a.parse()).collect::<Result<Vec<_>, _>>()?;
    let mut config = SlaveConfig::builder();
    if !addresses.is_empty() {
        config = config.ice_addresses(addresses);
    }
    let config = config.build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let cell = Arc::new(OnceLock::new());
        let slave = Slave::builder(url)
            .user_data(r#"{"name":"echo"}"#)
            .config(config)
            .hooks(Arc::new(Echo(cell.clone())))
            .connect()
            .await?;
        let _ = cell.set(slave);
        println!("registered");
        support::stdin_closed().await;
        if let Some(slave) = cell.get() {
            slave.close().await;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
