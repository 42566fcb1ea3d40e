//! Signalling load on a master: connects M plain WebSocket clients, registers
//! one slave, and measures how long the master takes to tell every client
//! about it (AddSlaves) and about its departure (RemoveSlaves). Speaks only
//! the wire protocol, so it measures any 0.9.0-compatible master. Used by
//! `npm run bench` (section "signalling").
//!
//!     cargo run --release --example master_load -- 127.0.0.1:8081 5000 [CA.pem]
//!
//! With a CA file, the clients and the slave speak `wss://`, trusting it.
//!
//! Prints one JSON line when every client is connected, waits for a line on
//! stdin (the benchmark samples the master's memory meanwhile), then prints
//! one JSON line of results. Every wait is bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

const CONNECTS_IN_FLIGHT: usize = 256;
const WAIT_LIMIT: Duration = Duration::from_secs(120);
const ADD_SLAVES: u8 = 1;
const REMOVE_SLAVES: u8 = 2;

/// Arrival times (ns after `start`, 0 = not yet) of each client's AddSlaves and RemoveSlaves.
struct Arrivals {
    start: Instant,
    added: Vec<AtomicU64>,
    removed: Vec<AtomicU64>,
    added_count: AtomicUsize,
    removed_count: AtomicUsize,
    connected: AtomicUsize,
    failed: AtomicUsize,
    changed: Notify,
}

impl Arrivals {
    fn mark(&self, slots: &[AtomicU64], count: &AtomicUsize, client: usize) {
        let ns = self.start.elapsed().as_nanos() as u64;
        if slots[client].compare_exchange(0, ns.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    async fn until(&self, what: impl Fn() -> bool) -> bool {
        tokio::time::timeout(WAIT_LIMIT, async {
            while !what() {
                self.changed.notified().await;
            }
        })
        .await
        .is_ok()
    }
}

/// One client: connects from a loopback address of its own (so that 50,000
/// connections do not run out of ephemeral ports), then records the frames.
async fn client(index: usize, master: SocketAddr, tls: Option<Connector>, arrivals: Arc<Arrivals>, permits: Arc<Semaphore>) {
    let permit = permits.acquire_owned().await;
    let local = SocketAddr::from((Ipv4Addr::new(127, 0, 1 + (index / 20_000) as u8, 1 + (index % 250) as u8), 0));
    let connected = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(local)?;
        let stream = socket.connect(master).await?;
        stream.set_nodelay(true)?;
        let url = format!("{}://{master}/enslavism/clients", if tls.is_some() { "wss" } else { "ws" });
        // A small read buffer: tungstenite zeroes all of it before each read.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        tokio_tungstenite::client_async_tls_with_config(url, stream, Some(config), tls).await.map_err(std::io::Error::other)
    };
    let mut ws = match connected.await {
        Ok((ws, _)) => ws,
        Err(_) => {
            arrivals.failed.fetch_add(1, Ordering::Relaxed);
            arrivals.changed.notify_one();
            return;
        }
    };
    drop(permit);
    arrivals.connected.fetch_add(1, Ordering::Relaxed);
    arrivals.changed.notify_one();
    // Reading also answers the master's pings.
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Binary(frame) = message {
            // A master greets each client with the current list, empty here.
            match frame.first() {
                Some(&ADD_SLAVES) if frame.len() > 1 => arrivals.mark(&arrivals.added, &arrivals.added_count, index),
                Some(&REMOVE_SLAVES) => arrivals.mark(&arrivals.removed, &arrivals.removed_count, index),
                _ => {}
            }
        }
    }
}

fn percentile_ms(slots: &[AtomicU64], from_ns: u64, p: f64) -> f64 {
    let mut v: Vec<u64> = slots.iter().map(|s| s.load(Ordering::Relaxed)).filter(|&t| t > 0).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].saturating_sub(from_ns) as f64 / 1e6
}

/// A rustls connector that trusts the CA certificates in the PEM file `path`.
fn tls_connector(path: &str) -> Result<Connector, Box<dyn std::error::Error>> {
    use enslavism::tls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in enslavism::tls::certificates_from_pem(&std::fs::read(path)?, "CA file")? {
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let master: SocketAddr = args.next().ok_or("usage: master_load HOST:PORT CLIENTS")?.parse()?;
    let clients: usize = args.next().ok_or("usage: master_load HOST:PORT CLIENTS")?.parse()?;
    let tls = args.next().map(|ca| tls_connector(&ca)).transpose()?;
    // One thread: the other core is the master's.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let arrivals = Arc::new(Arrivals {
            start: Instant::now(),
            added: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            removed: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            added_count: AtomicUsize::new(0),
            removed_count: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let permits = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
        let connect_start = Instant::now();
        for index in 0..clients {
            tokio::spawn(client(index, master, tls.clone(), arrivals.clone(), permits.clone()));
        }
        let a = arrivals.clone();
        a.until(|| a.connected.load(Ordering::Relaxed) + a.failed.load(Ordering::Relaxed) >= clients).await;
        let connect_s = connect_start.elapsed().as_secs_f64();
        let connected = arrivals.connected.load(Ordering::Relaxed);
        println!(
            r#"{{"connected":{connected},"failed":{},"connect_s":{connect_s:.3},"connects_per_s":{:.0}}}"#,
            arrivals.failed.load(Ordering::Relaxed),
            connected as f64 / connect_s
        );
        // The benchmark reads the master's memory now, then says go.
        tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await??;

        // No Nagle: the close frame must not wait for the ACK of the register frame.
        let slave_socket = tokio::net::TcpStream::connect(master).await?;
        slave_socket.set_nodelay(true)?;
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let (mut slave, _) =
            tokio_tungstenite::client_async_tls_with_config(format!("{scheme}://{master}/enslavism/slaves"), slave_socket, None, tls.clone())
                .await?;
        let mut register = vec![0u8];
        register.extend_from_slice(br#"{"name":"bench"}"#);
        let registered_at = arrivals.start.elapsed().as_nanos() as u64;
        slave.send(Message::Binary(register.into())).await?;
        let all_added = a.until(|| a.added_count.load(Ordering::Relaxed) >= connected).await;
        let add_all_ms = percentile_ms(&arrivals.added, registered_at, 1.0);

        let leaving_at = arrivals.start.elapsed().as_nanos() as u64;
        slave.close(None).await?;
        // Read the master's close reply, so that the connection really ends.
        tokio::spawn(async move { while let Some(Ok(_)) = slave.next().await {} });
        let all_removed = a.until(|| a.removed_count.load(Ordering::Relaxed) >= connected).await;
        println!(
            r#"{{"clients":{connected},"all_added":{all_added},"add_all_ms":{add_all_ms:.2},"add_first_ms":{:.2},"add_p50_ms":{:.2},"all_removed":{all_removed},"remove_all_ms":{:.2},"remove_first_ms":{:.2},"remove_p50_ms":{:.2}}}"#,
            percentile_ms(&arrivals.added, registered_at, 0.0),
            percentile_ms(&arrivals.added, registered_at, 0.5),
            percentile_ms(&arrivals.removed, leaving_at, 1.0),
            percentile_ms(&arrivals.removed, leaving_at, 0.0),
            percentile_ms(&arrivals.removed, leaving_at, 0.5),
        );
        Ok(())
    })
}
