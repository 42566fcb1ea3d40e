//! Bots: N native clients that each connect to a slave from the master's
//! list, open a channel, send messages at a fixed rate and time their echoes.
//! A load generator far cheaper than a browser tab per peer.
//!
//!     cargo run --release --example bots -- --master ws://127.0.0.1:8081 --bots 50 --seconds 10
//!
//! Options: `--rate HZ` (60), `--size BYTES` (100, at least 16), `--ramp
//! PER_S` (bots started per second, 100; 0 starts all at once), `--churn
//! PER_S` (bots replaced per second, 0), `--unreliable` (unordered, no
//! retransmission), `--slave ID` (all bots to one slave; default round robin
//! over the list), `--ice-address IP` (repeatable; default 0.0.0.0),
//! `--label NAME` (the channel's label, "echo").
//! The slave must echo every message back unchanged. Progress goes to
//! stderr each second; last, one JSON line on stdout:
//! `{"bots","connected","failed","setup_ms":{p50,p95,p99},"rtt_ms":{…},"sent","received","lost"}`.
//!
//! `--game` plays a game instead of counting echoes: each input starts
//! with its send time (wall clock, milliseconds, f64 big-endian) for the
//! slave to time, and the slave's messages (states) are expected to start
//! the same way; the bots time them. `--control` reads commands on stdin:
//! `window FROM TO` (wall-clock milliseconds: count the inputs sent and the
//! states received whose stamps fall inside) and `stop`. The JSON line then
//! also has `"game":{"inputs_in_window","states_in_window","state_ms":{…}}`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enslavism::client::{ChannelOptions, MasterConnection, MasterEvent};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Args {
    master: String,
    bots: usize,
    seconds: f64,
    rate: f64,
    size: usize,
    ramp: f64,
    churn: f64,
    unreliable: bool,
    slave: Option<u32>,
    ice_addresses: Vec<IpAddr>,
    label: String,
    game: bool,
    control: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        master: String::new(),
        bots: 0,
        seconds: 0.0,
        rate: 60.0,
        size: 100,
        ramp: 100.0,
        churn: 0.0,
        unreliable: false,
        slave: None,
        ice_addresses: Vec::new(),
        label: "echo".into(),
        game: false,
        control: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--unreliable" => args.unreliable = true,
            "--game" => args.game = true,
            "--control" => args.control = true,
            _ => {}
        }
        if matches!(flag.as_str(), "--unreliable" | "--game" | "--control") {
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--master" => args.master = value,
            "--label" => args.label = value,
            "--bots" => args.bots = number(&value)? as usize,
            "--seconds" => args.seconds = number(&value)?,
            "--rate" => args.rate = number(&value)?,
            "--size" => args.size = number(&value)? as usize,
            "--ramp" => args.ramp = number(&value)?,
            "--churn" => args.churn = number(&value)?,
            "--slave" => args.slave = Some(value.parse().map_err(|_| format!("--slave: {value:?} is not an id"))?),
            "--ice-address" => {
                args.ice_addresses.push(value.parse().map_err(|_| format!("--ice-address: {value:?} is not an IP"))?)
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.master.is_empty() || args.bots == 0 || !positive(args.seconds) {
        return Err("--master, --bots and --seconds are required".into());
    }
    if !positive(args.rate) || args.size < 16 || !(args.ramp >= 0.0 && args.churn >= 0.0) {
        return Err("--rate must be > 0, --size ≥ 16, --ramp and --churn ≥ 0".into());
    }
    Ok(args)
}

/// Counters every bot adds to, read for progress.
#[derive(Default)]
struct Totals {
    connected: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    /// `--game`: the measuring window's bounds (f64 bits; 0 while unset),
    /// the inputs sent and states received whose stamps fall inside.
    window_from: AtomicU64,
    window_to: AtomicU64,
    inputs_in_window: AtomicU64,
    states_in_window: AtomicU64,
}

impl Totals {
    /// Whether a wall-clock stamp falls inside the measuring window.
    fn in_window(&self, stamp: f64) -> bool {
        let from = f64::from_bits(self.window_from.load(Ordering::Relaxed));
        let to = f64::from_bits(self.window_to.load(Ordering::Relaxed));
        from > 0.0 && stamp >= from && stamp < to
    }
}

/// Wall-clock milliseconds: the stamps the slave's game role reads and writes.
fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// What one bot measured, merged at the end.
#[derive(Default)]
struct Report {
    setup_ms: Vec<f64>,
    rtt_ms: Vec<f64>,
    /// `--game`: one-way latencies of the states stamped inside the window.
    state_ms: Vec<f64>,
}

/// How long a bot waits for the master's list to name a slave, and for the
/// last echoes once sending stopped.
const LIST_WAIT: Duration = Duration::from_secs(10);
const DRAIN_WAIT: Duration = Duration::from_secs(1);

async fn run_bot(index: usize, args: Arc<Args>, totals: Arc<Totals>, stop: CancellationToken) -> Report {
    let mut report = Report::default();
    match bot(index, &args, &totals, &stop, &mut report).await {
        Ok(()) => {}
        Err(e) => {
            totals.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("bot {index}: {e}");
        }
    }
    report
}

async fn bot(
    index: usize,
    args: &Args,
    totals: &Totals,
    stop: &CancellationToken,
    report: &mut Report,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = MasterConnection::builder(args.master.clone()).reconnect(false);
    if !args.ice_addresses.is_empty() {
        builder = builder.ice_addresses(args.ice_addresses.clone());
    }
    let (master, mut events) = builder.connect().await?;
    let slave_id = tokio::time::timeout(LIST_WAIT, async {
        loop {
            let listed = master.slaves();
            let pick = match args.slave {
                Some(id) => listed.iter().find(|s| s.id == id).map(|s| s.id),
                None => (!listed.is_empty()).then(|| listed[index % listed.len()].id),
            };
            if let Some(id) = pick {
                return Ok(id);
            }
            match events.next().await {
                Some(MasterEvent::Disconnected { .. }) | None => return Err("the master closed before listing a slave"),
                Some(_) => {}
            }
        }
    })
    .await
    .map_err(|_| "no slave listed within 10 s")??;
    let slave = master.slave(slave_id)?;
    let options = if args.unreliable { ChannelOptions::unreliable() } else { ChannelOptions::reliable() };
    let started = Instant::now();
    let channel = slave.create_data_channel(&args.label, options).await?;
    report.setup_ms.push(started.elapsed().as_secs_f64() * 1e3);
    totals.connected.fetch_add(1, Ordering::Relaxed);

    let (sender, mut receiver) = channel.split();
    if args.game {
        play(args, totals, stop, report, sender, receiver).await?;
        master.close().await;
        return Ok(());
    }
    // Send times by sequence number, a window of 10 s at the rate.
    let window = ((args.rate * 10.0) as usize).max(64);
    let mut sent_at: Vec<(u64, Instant)> = vec![(u64::MAX, started); window];
    let mut payload = vec![0u8; args.size];
    payload[8..16].copy_from_slice(&(index as u64).to_be_bytes());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let mut received = 0u64;
    // Times one echo against its send time; echoes of another bot or too old are not counted.
    let take = |data: &[u8], sent_at: &[(u64, Instant)], report: &mut Report| -> bool {
        let Some(echoed) = data.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))) else { return false };
        let (expected, at) = sent_at[(echoed % window as u64) as usize];
        if expected != echoed {
            return false;
        }
        report.rtt_ms.push(at.elapsed().as_secs_f64() * 1e3);
        totals.received.fetch_add(1, Ordering::Relaxed);
        true
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                sent_at[(seq % window as u64) as usize] = (seq, Instant::now());
                sender.send(payload.clone()).await?;
                seq += 1;
                totals.sent.fetch_add(1, Ordering::Relaxed);
            }
            message = receiver.recv() => match message {
                Some(message) => received += u64::from(take(&message.data, &sent_at, report)),
                None => return Err("the slave closed the channel".into()),
            },
            _ = stop.cancelled() => break,
        }
    }
    // The last echoes.
    let drain = tokio::time::sleep(DRAIN_WAIT);
    tokio::pin!(drain);
    while received < seq {
        tokio::select! {
            message = receiver.recv() => match message {
                Some(message) => received += u64::from(take(&message.data, &sent_at, report)),
                None => break,
            },
            _ = &mut drain => break,
        }
    }
    sender.close().await;
    master.close().await;
    Ok(())
}

/// `--game`: stamped inputs at the rate; states timed against their stamps.
async fn play(
    args: &Args,
    totals: &Totals,
    stop: &CancellationToken,
    report: &mut Report,
    sender: enslavism::client::ChannelSender,
    mut receiver: enslavism::client::ChannelReceiver,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut payload = vec![0u8; args.size];
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let stamp = wall_ms();
                payload[..8].copy_from_slice(&stamp.to_be_bytes());
                sender.send(payload.clone()).await?;
                totals.sent.fetch_add(1, Ordering::Relaxed);
                if totals.in_window(stamp) {
                    totals.inputs_in_window.fetch_add(1, Ordering::Relaxed);
                }
            }
            message = receiver.recv() => match message {
                Some(message) => {
                    let Some(stamp) = message.data.get(..8).map(|b| f64::from_be_bytes(b.try_into().expect("8 bytes"))) else { continue };
                    totals.received.fetch_add(1, Ordering::Relaxed);
                    if totals.in_window(stamp) {
                        totals.states_in_window.fetch_add(1, Ordering::Relaxed);
                        report.state_ms.push(wall_ms() - stamp);
                    }
                }
                None => return Err("the slave closed the channel".into()),
            },
            _ = stop.cancelled() => break,
        }
    }
    sender.close().await;
    Ok(())
}

/// `--control`: applies the commands read on stdin (on a thread of its
/// own: the runtime has no stdin); `stop`, or the end of stdin, cancels `stop`.
fn follow_control(totals: Arc<Totals>, stop: CancellationToken) {
    use std::io::BufRead;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["window", from, to] => match (from.parse::<f64>(), to.parse::<f64>()) {
                (Ok(from), Ok(to)) => {
                    totals.window_to.store(to.to_bits(), Ordering::Relaxed);
                    totals.window_from.store(from.to_bits(), Ordering::Relaxed);
                }
                _ => eprintln!("bots: bad window {line:?}"),
            },
            ["stop"] => break,
            _ => eprintln!("bots: unknown command {line:?}"),
        }
    }
    stop.cancel();
}

fn percentiles(values: &mut [f64]) -> serde_json::Value {
    if values.is_empty() {
        return serde_json::json!({ "p50": null, "p95": null, "p99": null });
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        (values[rank.clamp(1, values.len()) - 1] * 1000.0).round() / 1000.0
    };
    serde_json::json!({ "p50": at(50.0), "p95": at(95.0), "p99": at(99.0) })
}

fn main() {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("bots: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let output = runtime.block_on(run(args));
    println!("{output}");
}

async fn run(args: Arc<Args>) -> serde_json::Value {
    let totals = Arc::new(Totals::default());
    let stop = CancellationToken::new();
    let mut bots = tokio::task::JoinSet::new();
    let mut live: Vec<CancellationToken> = Vec::new();
    let mut started = 0usize;
    let begin = Instant::now();
    let end = begin + Duration::from_secs_f64(args.seconds);
    let spawn = |bots: &mut tokio::task::JoinSet<Report>, live: &mut Vec<CancellationToken>, started: &mut usize| {
        let token = stop.child_token();
        live.push(token.clone());
        bots.spawn(run_bot(*started, args.clone(), totals.clone(), token));
        *started += 1;
    };
    if args.control {
        let (totals, stop) = (totals.clone(), stop.clone());
        std::thread::spawn(move || follow_control(totals, stop));
    }
    let ramp_step = if args.ramp > 0.0 { Duration::from_secs_f64(1.0 / args.ramp) } else { Duration::ZERO };
    let churn_step = (args.churn > 0.0).then(|| Duration::from_secs_f64(1.0 / args.churn));
    let mut next_start = begin;
    let mut next_churn = churn_step.map(|step| begin + step);
    let mut next_progress = begin + Duration::from_secs(1);
    let mut retired = 0usize;
    loop {
        let now = Instant::now();
        if now >= end || stop.is_cancelled() {
            break;
        }
        while started < args.bots && Instant::now() >= next_start {
            spawn(&mut bots, &mut live, &mut started);
            next_start += ramp_step;
        }
        if let (Some(at), Some(step)) = (next_churn, churn_step) {
            if now >= at && started >= args.bots {
                // The oldest bot leaves, a new one takes its place.
                if let Some(token) = live.get(retired) {
                    token.cancel();
                    retired += 1;
                    spawn(&mut bots, &mut live, &mut started);
                }
                next_churn = Some(at + step);
            }
        }
        if now >= next_progress {
            eprintln!(
                "bots: {:.0}s started {started} connected {} failed {} sent {} received {}",
                begin.elapsed().as_secs_f64(),
                totals.connected.load(Ordering::Relaxed),
                totals.failed.load(Ordering::Relaxed),
                totals.sent.load(Ordering::Relaxed),
                totals.received.load(Ordering::Relaxed)
            );
            next_progress += Duration::from_secs(1);
        }
        let mut wake = end.min(next_progress);
        if started < args.bots {
            wake = wake.min(next_start);
        }
        if let Some(at) = next_churn {
            wake = wake.min(at);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.cancelled() => {}
        }
    }
    stop.cancel();
    // Every bot's waits are bounded (connect, list, setup, drain); this is the last guard.
    let mut report = Report::default();
    let collect = async {
        while let Some(done) = bots.join_next().await {
            if let Ok(bot) = done {
                report.setup_ms.extend(bot.setup_ms);
                report.rtt_ms.extend(bot.rtt_ms);
                report.state_ms.extend(bot.state_ms);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), collect).await.is_err() {
        eprintln!("bots: some bots did not stop within 60 s");
    }
    let sent = totals.sent.load(Ordering::Relaxed);
    let received = totals.received.load(Ordering::Relaxed);
    let mut output = serde_json::json!({
        "bots": started,
        "connected": totals.connected.load(Ordering::Relaxed),
        "failed": totals.failed.load(Ordering::Relaxed),
        "setup_ms": percentiles(&mut report.setup_ms),
        "rtt_ms": percentiles(&mut report.rtt_ms),
        "sent": sent,
        "received": received,
        "lost": sent.saturating_sub(received),
    });
    if args.game {
        output["game"] = serde_json::json!({
            "inputs_in_window": totals.inputs_in_window.load(Ordering::Relaxed),
            "states_in_window": totals.states_in_window.load(Ordering::Relaxed),
            "state_ms": percentiles(&mut report.state_ms),
        });
    }
    output
}
