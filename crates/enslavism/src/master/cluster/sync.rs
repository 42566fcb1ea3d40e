//! The cluster's task: keeps this master's slaves in Redis and other
//! masters' slaves in the router, and carries relayed frames both ways.
//!
//! It runs in sessions: a session connects (one connection for commands,
//! one blocked on the change stream, one subscribed to this master's relay
//! channel), claims the node number, writes every local slave, reads the
//! whole registry, then follows the stream. Any Redis error or timeout ends
//! the session: the master goes on serving its own slaves and clients
//! (other masters' slaves stay listed, offers to them are refused) and a
//! new session starts after a backoff, which brings everything back in line.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::records::{Change, Keys, Relayed, SlaveRecord, CLUSTER_SLAVE_IDS, MAX_NODE};
use super::{ClusterConfig, ClusterOutlet, Command, RemoteSlave};
use crate::master::hooks::MasterEvent;
use crate::master::router::{RemoteEvent, CLOSE_ID_TAKEN};
use crate::master::Shared;

/// Entries the change stream keeps (approximately): a master further
/// behind than this reads the whole registry instead (see `refresh`).
const STREAM_LENGTH: usize = 10_000;
/// How long one XREAD waits for new entries.
const STREAM_BLOCK: Duration = Duration::from_millis(1000);
/// Entries read at once.
const STREAM_BATCH: usize = 1000;
/// Commands sent in one pipeline.
const COMMAND_BATCH: usize = 512;
/// Keys asked for per SCAN step.
const SCAN_COUNT: usize = 1000;
/// First wait before a new session; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between sessions.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Node numbers tried before a session gives up claiming one.
const CLAIM_TRIES: usize = 64;
/// Slave ids reserved at once from the cluster's counter.
const SLAVE_ID_BLOCK: u32 = 256;
/// Raises the slave id counter to at least ARGV[1] (after a Redis restart
/// without persistence, the counter starts again below live ids); a value
/// that is not a number is replaced.
const RAISE_COUNTER: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') or -1 \
    if v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 0";
/// Deletes a slave key only if it still holds the record of node ARGV[1]
/// (another master may have taken the id over meanwhile).
const DELETE_IF_NODE: &str = "local v = redis.call('GET', KEYS[1]) \
    if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '\\n' then return redis.call('DEL', KEYS[1]) end return 0";
/// Deletes a key only if it holds ARGV[1] (our node claim, not another's).
const DELETE_IF_HOLDER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Why a session ended.
#[derive(Debug, Error)]
enum SessionEnd {
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(#[from] redis::ParsingError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the pub/sub connection closed")]
    PubSubClosed,
    #[error("this master's node claim is gone from redis (restarted or flushed)")]
    ClaimLost,
    #[error("no free node number after {CLAIM_TRIES} tries")]
    NoFreeNode,
    #[error("the master is closing")]
    Shutdown,
}

/// The cluster's state kept across sessions.
pub(crate) struct ClusterTask {
    shared: Arc<Shared>,
    config: ClusterConfig,
    keys: Keys,
    /// This master's claim on its node number.
    token: String,
    node: u16,
    /// Whether `node` was ever claimed (a first claim may pick another number freely).
    claimed_once: bool,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The sending end the router holds (given again when it renumbers).
    outlet: mpsc::UnboundedSender<Command>,
    connected: Arc<AtomicBool>,
    /// This master's registered slaves, as the router last told.
    local: HashMap<u32, String>,
    /// The change stream's last entry read.
    stream_position: String,
    /// Other masters' slaves found missing (key gone, or their master
    /// unsubscribed), since when: unlisted once missing for `missing_grace`.
    suspects: HashMap<u32, Instant>,
}

/// Makes the router a node of the cluster and returns the task that keeps
/// it in sync (to spawn).
pub(crate) fn join(shared: &Arc<Shared>, config: ClusterConfig) -> ClusterTask {
    let (tx, commands) = mpsc::unbounded_channel();
    let connected = Arc::new(AtomicBool::new(false));
    // A first guess, taken if free once Redis answers: random rather than
    // counted, because a Redis restarted without persistence would count
    // from zero again while older masters still hold the low numbers.
    let node = random_node(0);
    shared.router().join_cluster(ClusterOutlet::new(node, tx.clone(), connected.clone()));
    ClusterTask {
        shared: shared.clone(),
        keys: Keys::new(&config.name),
        config,
        token: format!("{:016x}-{}", random_u64(1), std::process::id()),
        node,
        claimed_once: false,
        commands,
        outlet: tx,
        connected,
        local: HashMap::new(),
        stream_position: "0-0".to_owned(),
        suspects: HashMap::new(),
    }
}

impl ClusterTask {
    /// Runs sessions until the master closes.
    pub(crate) async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let ended = self.session().await;
            // Nothing relayed can be answered now: the browsers are told at once.
            self.shared.router().refuse_all_relayed();
            if self.connected.swap(false, Ordering::Relaxed) && !matches!(ended, Err(SessionEnd::Shutdown)) {
                let reason = ended.as_ref().err().map(ToString::to_string).unwrap_or_default();
                self.shared.hooks.on_event(MasterEvent::ClusterDisconnected { reason });
            }
            match ended {
                Err(SessionEnd::Shutdown) => return,
                Err(SessionEnd::ClaimLost) => {
                    tracing::warn!(node = self.node, "cluster: {}; claiming it again", SessionEnd::ClaimLost);
                    continue;
                }
                Err(e) => tracing::warn!(node = self.node, "cluster: {e}; this master serves its own peers until redis is back"),
                Ok(()) => {}
            }
            if started.elapsed() > MAX_BACKOFF * 4 {
                backoff = FIRST_BACKOFF;
            }
            if self.wait_offline(backoff).await.is_err() {
                return;
            }
            // Within a quarter TTL of each other after a Redis restart: every
            // master is back before the others count it gone (see `missing_grace`).
            backoff = (backoff * 2).min(MAX_BACKOFF).min(self.config.slave_ttl / 4);
        }
    }

    /// Waits out a backoff while Redis is away: the local list is kept up
    /// to date and relayed offers are refused at once.
    async fn wait_offline(&mut self, backoff: Duration) -> Result<(), SessionEnd> {
        let until = tokio::time::sleep(backoff);
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return Ok(()),
                _ = self.shared.shutdown.cancelled() => return Err(SessionEnd::Shutdown),
                // The task holds a sender too: this never ends with None.
                Some(command) = self.commands.recv() => self.offline(command),
            }
        }
    }

    fn offline(&mut self, command: Command) {
        match command {
            Command::Listed { id, user_data } => {
                self.local.insert(id, user_data);
            }
            Command::Unlisted { id } | Command::Displaced { id } => {
                self.local.remove(&id);
            }
            Command::Relay { offer: Some((client, slave)), .. } => self.shared.router().refuse_relayed(client, slave),
            Command::Relay { offer: None, .. } | Command::NeedSlaveIds => {}
        }
    }

    async fn session(&mut self) -> Result<(), SessionEnd> {
        let shutdown = self.shared.shutdown.clone();
        let (mut con, reader, mut relayed) = tokio::select! {
            ready = self.sync_up() => ready?,
            _ = shutdown.cancelled() => return Err(SessionEnd::Shutdown),
        };
        self.connected.store(true, Ordering::Relaxed);
        tracing::info!(node = self.node, cluster = %self.config.name, "cluster: in sync with redis");
        self.shared.hooks.on_event(MasterEvent::ClusterConnected { node: self.node });
        self.follow(&mut con, reader, &mut relayed).await
    }

    /// Connects, claims the node, writes our slaves, reads everyone's.
    async fn sync_up(&mut self) -> Result<(MultiplexedConnection, MultiplexedConnection, redis::aio::PubSubStream), SessionEnd> {
        let timeout = self.config.redis_timeout;
        let client = redis::Client::open(self.config.redis_url.as_str())?;
        let settings = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let mut con = within(timeout, client.get_multiplexed_async_connection_with_config(&settings)).await??;
        let reader_settings = settings.clone().set_response_timeout(Some(STREAM_BLOCK + timeout));
        let reader = within(timeout, client.get_multiplexed_async_connection_with_config(&reader_settings)).await??;
        let mut pubsub = within(timeout, client.get_async_pubsub()).await??;

        self.claim(&mut con).await?;
        // Subscribed before anything of ours is listed: no answer can
        // arrive before we listen.
        within(timeout, pubsub.subscribe(self.keys.relay_channel(self.node))).await??;
        let relayed = pubsub.into_on_message();

        // The stream's end before the registry is read: whatever changes
        // after the read is in the stream from here on.
        let tail: redis::streams::StreamRangeReply =
            redis::cmd("XREVRANGE").arg(self.keys.changes()).arg("+").arg("-").arg("COUNT").arg(1).query_async(&mut con).await?;
        self.stream_position = tail.ids.into_iter().next().map(|entry| entry.id).unwrap_or_else(|| "0-0".to_owned());
        self.publish_all(&mut con).await?;
        // Slave ids: the counter above every id in use (Redis may have
        // restarted without it), then a fresh block. Before the registry is
        // read: slaves missing from it may still be live elsewhere.
        let highest = self.shared.router().highest_cluster_slave_id();
        if let Some(highest) = highest {
            let _: i64 = redis::cmd("EVAL")
                .arg(RAISE_COUNTER)
                .arg(1)
                .arg(self.keys.slave_ids())
                .arg(highest + 1)
                .query_async(&mut con)
                .await?;
        }
        self.reserve_slave_ids(&mut con, true).await?;
        self.resync(&mut con).await?;
        Ok((con, reader, relayed))
    }

    /// Reads the whole registry: new slaves are listed, changed ones
    /// updated; those missing become suspects (unlisted only if still
    /// missing after `missing_grace`: after a Redis restart, the other
    /// masters may not have written theirs again yet).
    async fn resync(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionEnd> {
        let live = self.read_registry(con).await?;
        let (events, missing) = self.shared.router().reconcile(live);
        let now = Instant::now();
        for id in missing {
            self.suspects.entry(id).or_insert(now);
        }
        self.report(events);
        Ok(())
    }

    /// Follows the stream, the relay channel and the router's commands
    /// until Redis fails or the master closes.
    async fn follow(
        &mut self,
        con: &mut MultiplexedConnection,
        reader: MultiplexedConnection,
        relayed: &mut redis::aio::PubSubStream,
    ) -> Result<(), SessionEnd> {
        let period = self.config.slave_ttl / 4;
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reading = read_changes(reader.clone(), self.keys.changes(), self.stream_position.clone());
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        loop {
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => {
                    self.retire(con).await;
                    return Err(SessionEnd::Shutdown);
                }
                // The task holds a sender too: this never ends with 0.
                _ = self.commands.recv_many(&mut batch, COMMAND_BATCH) => self.send_commands(con, &mut batch).await?,
                message = relayed.next() => {
                    let message = message.ok_or(SessionEnd::PubSubClosed)?;
                    self.on_relayed(con, Bytes::copy_from_slice(message.get_payload_bytes())).await?;
                }
                read = &mut reading => {
                    let (position, changes) = read?;
                    self.stream_position = position;
                    let events = self.shared.router().apply_changes(changes);
                    self.report(events);
                    reading = read_changes(reader.clone(), self.keys.changes(), self.stream_position.clone());
                }
                _ = tick.tick() => self.refresh(con).await?,
            }
        }
    }

    /// Claims `self.node` (or, when another master holds it, another
    /// number; this master's peers, numbered in the lost range, are then
    /// asked to connect again).
    async fn claim(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionEnd> {
        let ttl = self.ttl_ms();
        for attempt in 0..CLAIM_TRIES {
            let key = self.keys.node(self.node);
            let set: Option<String> =
                redis::cmd("SET").arg(&key).arg(&self.token).arg("NX").arg("PX").arg(ttl).query_async(con).await?;
            let ours = match set {
                Some(_) => true,
                None => {
                    let holder: Option<String> = redis::cmd("GET").arg(&key).query_async(con).await?;
                    holder.as_deref() == Some(self.token.as_str())
                }
            };
            if ours {
                self.claimed_once = true;
                return Ok(());
            }
            let lost = self.node;
            self.node = random_node(attempt as u64 + 2);
            self.renumber(lost);
        }
        Err(SessionEnd::NoFreeNode)
    }

    /// Takes `self.node` in the router. Peers already numbered in the
    /// `lost` range would collide with the other master's: they are closed
    /// (1012) and connect again with new ids.
    fn renumber(&mut self, lost: u16) {
        let mut router = self.shared.router();
        router.join_cluster(ClusterOutlet::new(self.node, self.outlet.clone(), self.connected.clone()));
        if self.claimed_once {
            tracing::error!(
                lost,
                node = self.node,
                "cluster: another master took this master's node number while redis was away; its peers reconnect under new ids"
            );
        } else {
            tracing::info!(taken = lost, node = self.node, "cluster: node number taken, using another");
        }
        if self.local.is_empty() && router.slave_count() + router.client_count() == 0 {
            return;
        }
        for link in router.links() {
            crate::master::PeerLink::close(link, CLOSE_ID_TAKEN, "the master renumbers its peers");
        }
        self.local.clear();
    }

    /// Writes every local slave's key and a `set` entry for each (after a
    /// Redis restart, the others learn them again from the stream).
    async fn publish_all(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionEnd> {
        let mut pipe = redis::pipe();
        for (&id, user_data) in &self.local {
            self.write_change(&mut pipe, &Change::Set { id, node: self.node, user_data: user_data.clone() });
        }
        if !self.local.is_empty() {
            let _: () = pipe.query_async(con).await?;
        }
        Ok(())
    }

    /// Every slave key of the cluster: other masters' slaves, checked.
    async fn read_registry(&self, con: &mut MultiplexedConnection) -> Result<HashMap<u32, RemoteSlave>, SessionEnd> {
        let mut ids = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys.slave_pattern())
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(con)
                .await?;
            ids.extend(keys.iter().filter_map(|k| self.keys.slave_id(k)));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut live = HashMap::new();
        for chunk in ids.chunks(SCAN_COUNT) {
            let keys: Vec<String> = chunk.iter().map(|&id| self.keys.slave(id)).collect();
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query_async(con).await?;
            for (&id, value) in chunk.iter().zip(values) {
                let Some(value) = value else { continue };
                match SlaveRecord::decode(&value) {
                    Ok(record) if record.node != self.node => {
                        live.insert(id, RemoteSlave { node: record.node, user_data: record.user_data });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(id, "cluster: slave key ignored: {e}"),
                }
            }
        }
        Ok(live)
    }

    /// Reserves a block of slave ids for the router (`fresh`: in place of
    /// those it has, which Redis may have given again after a restart).
    async fn reserve_slave_ids(&mut self, con: &mut MultiplexedConnection, fresh: bool) -> Result<(), SessionEnd> {
        let reserve = redis::cmd("INCRBY").arg(self.keys.slave_ids()).arg(SLAVE_ID_BLOCK).clone();
        let reserved: Result<i64, RedisError> = reserve.query_async(con).await;
        let garbage = match &reserved {
            Ok(end) => *end < i64::from(SLAVE_ID_BLOCK),
            // "not an integer", WRONGTYPE: an answer, not a lost connection.
            Err(e) => matches!(e.kind(), redis::ErrorKind::Server(_)),
        };
        let end = if garbage {
            // Not a counter of ours any more (written by hand, or by
            // something else): start it again above every id in use here.
            tracing::warn!(key = %self.keys.slave_ids(), "cluster: the slave id counter held something else; it starts again above the ids in use");
            let above = self.shared.router().highest_cluster_slave_id().map_or(0, |id| id + 1);
            let _: () = redis::cmd("SET").arg(self.keys.slave_ids()).arg(above).query_async(con).await?;
            reserve.query_async(con).await?
        } else {
            reserved?
        };
        // The counter wraps below 2^20: ids stay small, and ids still in use
        // are skipped by the router.
        let end = u64::try_from(end).unwrap_or(0).max(u64::from(SLAVE_ID_BLOCK));
        let ids = (end - u64::from(SLAVE_ID_BLOCK)..end).map(|n| (n % u64::from(CLUSTER_SLAVE_IDS)) as u32);
        self.shared.router().stock_slave_ids(ids, fresh);
        Ok(())
    }

    /// Sends a batch of the router's commands in one pipeline; relayed
    /// offers that reach no master are refused back to their client.
    async fn send_commands(&mut self, con: &mut MultiplexedConnection, batch: &mut Vec<Command>) -> Result<(), SessionEnd> {
        let mut pipe = redis::pipe();
        let mut offers = Vec::new();
        let (mut need_ids, mut resync) = (false, false);
        let mut registered = Vec::new();
        for command in batch.drain(..) {
            match command {
                Command::NeedSlaveIds => need_ids = true,
                Command::Displaced { id } => {
                    self.local.remove(&id);
                    resync = true;
                }
                Command::Listed { id, user_data } => {
                    self.write_change(&mut pipe, &Change::Set { id, node: self.node, user_data: user_data.clone() });
                    if self.local.insert(id, user_data.clone()).is_none() {
                        registered.push(user_data);
                    }
                }
                // Only slaves of ours: after a renumbering, an old id may be another master's now.
                Command::Unlisted { id } => {
                    if self.local.remove(&id).is_some() {
                        self.write_change(&mut pipe, &Change::Remove { id, node: self.node });
                    }
                }
                Command::Relay { node, message, offer } => {
                    pipe.cmd("PUBLISH").arg(self.keys.relay_channel(node)).arg(&message[..]);
                    offers.push(offer);
                }
            }
        }
        let receivers: Vec<i64> = match pipe.is_empty() {
            true => Vec::new(),
            false => match pipe.query_async(con).await {
                Ok(receivers) => receivers,
                Err(e) => {
                    let mut router = self.shared.router();
                    for (client, slave) in offers.into_iter().flatten() {
                        router.refuse_relayed(client, slave);
                    }
                    return Err(e.into());
                }
            },
        };
        tracing::trace!(relayed = receivers.len(), "cluster: commands sent");
        if need_ids {
            self.reserve_slave_ids(con, false).await?;
        }
        if !registered.is_empty() {
            // Perhaps a slave failing over from a master that just died:
            // its entry from there goes now, not at expiry.
            self.unlist_twins(con, &registered).await?;
        }
        if resync {
            self.resync(con).await?;
        }
        {
            let mut router = None;
            for (offer, receivers) in offers.into_iter().zip(receivers) {
                if let (Some((client, slave)), 0) = (offer, receivers) {
                    // Nobody listens on that channel: its master is gone.
                    router.get_or_insert_with(|| self.shared.router()).refuse_relayed(client, slave);
                }
            }
        }
        Ok(())
    }

    /// A frame relayed to this master: handed to its peer, or, for an offer
    /// to a slave that left, refused back.
    async fn on_relayed(&mut self, con: &mut MultiplexedConnection, message: Bytes) -> Result<(), SessionEnd> {
        let (relayed, decoded) = match Relayed::decode(message) {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!("cluster: relayed message dropped: {e}");
                return Ok(());
            }
        };
        tracing::trace!(kind = relayed.kind.name(), id = relayed.id, msg_type = ?decoded.message_type(), "cluster: relayed frame in");
        let refusal = self.shared.router().deliver(relayed, &decoded);
        if let Some((node, message)) = refusal {
            let _: i64 = redis::cmd("PUBLISH").arg(self.keys.relay_channel(node)).arg(&message[..]).query_async(con).await?;
        }
        Ok(())
    }

    /// A quarter of a TTL has passed: our node and slaves are refreshed;
    /// other masters' slaves found missing (key gone, master unsubscribed)
    /// for `missing_grace` are unlisted; relayed offers that waited too long
    /// are refused; a stream trimmed past our position means a full read.
    async fn refresh(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionEnd> {
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.keys.node(self.node));
        pipe.cmd("PEXPIRE").arg(self.keys.node(self.node)).arg(ttl).ignore();
        let local: Vec<u32> = self.local.keys().copied().collect();
        for &id in &local {
            pipe.cmd("PEXPIRE").arg(self.keys.slave(id)).arg(ttl);
        }
        let remote = self.shared.router().remote_slave_ids();
        for &id in &remote {
            pipe.cmd("EXISTS").arg(self.keys.slave(id));
        }
        let (holder, replies): (Option<String>, Vec<i64>) = {
            let mut values: Vec<Value> = pipe.query_async(con).await?;
            let holder = redis::from_redis_value(values.remove(0))?;
            let replies = values.into_iter().map(redis::from_redis_value).collect::<Result<_, _>>()?;
            (holder, replies)
        };
        if holder.as_deref() != Some(self.token.as_str()) {
            return Err(SessionEnd::ClaimLost);
        }
        let (refreshed, exists) = replies.split_at(local.len());
        // A key of ours that vanished (evicted, deleted by hand) is written again.
        let mut rewrite = redis::pipe();
        for (&id, _) in local.iter().zip(refreshed).filter(|(_, &ok)| ok == 0) {
            let user_data = self.local[&id].clone();
            self.write_change(&mut rewrite, &Change::Set { id, node: self.node, user_data });
        }
        if !rewrite.is_empty() {
            let _: () = rewrite.query_async(con).await?;
        }

        let unsubscribed = self.missing_masters(con).await?;
        let mut missing: Vec<(u32, Option<u16>)> =
            remote.iter().zip(exists).filter(|(_, &n)| n == 0).map(|(&id, _)| (id, None)).collect();
        missing.extend(self.shared.router().remote_slaves_of(&unsubscribed, None).into_iter().map(|(id, node)| (id, Some(node))));
        let now = Instant::now();
        let grace = self.missing_grace();
        // Checks are a quarter TTL apart, the grace two of them: a slave goes
        // at the third check that misses it. (Compared exactly, the third
        // check lost the race with the grace by microseconds, and the slave
        // waited for a fourth: 5.6 s of a 6 s TTL in the benchmark.)
        let due_after = grace.saturating_sub(self.config.slave_ttl / 16);
        self.suspects.retain(|id, _| missing.iter().any(|(m, _)| m == id));
        let due: Vec<(u32, Option<u16>)> = missing
            .into_iter()
            .filter(|(id, _)| now.duration_since(*self.suspects.entry(*id).or_insert(now)) >= due_after)
            .collect();
        if !due.is_empty() {
            let ids: Vec<u32> = due.iter().map(|(id, _)| *id).collect();
            tracing::info!(count = ids.len(), "cluster: other masters' slaves missing from redis for {grace:?} are unlisted");
            let events = self.shared.router().unlist_remote(&ids);
            for id in &ids {
                self.suspects.remove(id);
            }
            let gone: Vec<(u32, u16)> = due.iter().filter_map(|&(id, node)| Some((id, node?))).collect();
            self.clean_up(con, &gone).await?;
            self.report(events);
        }
        if let Some(deadline) = now.checked_sub(self.config.relay_timeout) {
            self.shared.router().expire_relayed(deadline);
        }

        // Entries we have not read trimmed from the stream: read everything.
        let first: redis::streams::StreamRangeReply =
            redis::cmd("XRANGE").arg(self.keys.changes()).arg("-").arg("+").arg("COUNT").arg(1).query_async(con).await?;
        let trimmed = first
            .ids
            .first()
            .is_some_and(|entry| self.stream_position != "0-0" && stream_id(&entry.id) > stream_id(&self.stream_position));
        if trimmed {
            tracing::warn!("cluster: the change stream was trimmed past this master's position; reading the whole registry");
            self.resync(con).await?;
        }
        Ok(())
    }

    /// How long another master's slave may be missing from Redis before it
    /// is unlisted: half the TTL. Unlisting closes players' connections to
    /// it in browsers, and after a Redis restart every master is missing
    /// until it has reconnected (its backoff is at most a quarter TTL).
    fn missing_grace(&self) -> Duration {
        self.config.slave_ttl / 2
    }

    /// The other masters (with slaves listed here) no longer subscribed to
    /// their relay channel: a master's subscription ends with its process
    /// (the kernel closes its connection to Redis at once) or with its
    /// Redis session; nothing can reach its slaves then.
    async fn missing_masters(&mut self, con: &mut MultiplexedConnection) -> Result<Vec<u16>, SessionEnd> {
        let nodes = self.shared.router().remote_nodes();
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let channels: Vec<String> = nodes.iter().map(|&n| self.keys.relay_channel(n)).collect();
        let reply: Vec<Value> = redis::cmd("PUBSUB").arg("NUMSUB").arg(&channels).query_async(con).await?;
        // [channel, subscribers, channel, subscribers, …], in the order asked.
        Ok(nodes
            .iter()
            .zip(reply.chunks(2))
            .filter(|(_, pair)| matches!(pair.get(1), Some(Value::Int(0))))
            .map(|(&node, _)| node)
            .collect())
    }

    /// Slaves just registered here (`user_data`) may be slaves failing over
    /// from a master that died: a slave of a missing master with the same
    /// userData is unlisted at once, so that it is never listed twice.
    async fn unlist_twins(&mut self, con: &mut MultiplexedConnection, user_data: &[String]) -> Result<(), SessionEnd> {
        let unsubscribed = self.missing_masters(con).await?;
        if unsubscribed.is_empty() {
            return Ok(());
        }
        let (gone, events) = {
            let mut router = self.shared.router();
            let gone = router.remote_slaves_of(&unsubscribed, Some(user_data));
            let ids: Vec<u32> = gone.iter().map(|&(id, _)| id).collect();
            (gone, router.unlist_remote(&ids))
        };
        if gone.is_empty() {
            return Ok(());
        }
        tracing::info!(slaves = gone.len(), "cluster: slaves that failed over from a master gone from redis are unlisted there");
        self.clean_up(con, &gone).await?;
        self.report(events);
        Ok(())
    }

    /// Deletes the keys of gone masters' slaves (if still theirs) and adds
    /// their removal to the stream: every master unlists them now rather
    /// than at expiry. A master that was only away writes them again when back.
    async fn clean_up(&mut self, con: &mut MultiplexedConnection, gone: &[(u32, u16)]) -> Result<(), SessionEnd> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for &(id, node) in gone {
            self.write_change(&mut pipe, &Change::Remove { id, node });
        }
        let _: () = pipe.query_async(con).await?;
        Ok(())
    }

    /// The master closes: its slaves leave every list now, not at expiry.
    async fn retire(&mut self, con: &mut MultiplexedConnection) {
        let mut pipe = redis::pipe();
        for &id in self.local.keys() {
            self.write_change(&mut pipe, &Change::Remove { id, node: self.node });
        }
        pipe.cmd("EVAL").arg(DELETE_IF_HOLDER).arg(1).arg(self.keys.node(self.node)).arg(&self.token).ignore();
        let retired: Result<Result<(), RedisError>, _> =
            tokio::time::timeout(self.config.redis_timeout.min(Duration::from_secs(1)), pipe.query_async(con)).await;
        if !matches!(retired, Ok(Ok(()))) {
            tracing::warn!("cluster: could not remove this master's slaves from redis; they expire within the TTL");
        }
    }

    /// Adds a change to a pipeline: the slave key, then the stream entry
    /// (in that order: whoever reads the entry finds the key).
    fn write_change(&self, pipe: &mut redis::Pipeline, change: &Change) {
        match change {
            Change::Set { id, node, user_data } => {
                pipe.cmd("SET")
                    .arg(self.keys.slave(*id))
                    .arg(SlaveRecord::encode(*node, user_data))
                    .arg("PX")
                    .arg(self.ttl_ms())
                    .ignore();
            }
            Change::Remove { id, node } => {
                pipe.cmd("EVAL").arg(DELETE_IF_NODE).arg(1).arg(self.keys.slave(*id)).arg(*node).ignore();
            }
        }
        let xadd = pipe.cmd("XADD").arg(self.keys.changes()).arg("MAXLEN").arg("~").arg(STREAM_LENGTH).arg("*");
        for (field, value) in change.fields() {
            xadd.arg(field).arg(value);
        }
        xadd.ignore();
    }

    fn report(&self, events: Vec<RemoteEvent>) {
        for event in events {
            self.shared.hooks.on_event(match event {
                RemoteEvent::Listed { id, node, user_data } => MasterEvent::RemoteSlaveListed { id, node, user_data },
                RemoteEvent::Updated { id, node, user_data } => MasterEvent::RemoteSlaveUpdated { id, node, user_data },
                RemoteEvent::Unlisted { id, node, user_data } => MasterEvent::RemoteSlaveUnlisted { id, node, user_data },
            });
        }
    }

    /// The TTL of our keys: two thirds of the slave TTL. Refreshed every
    /// quarter, a key outlives a refresh late by more than a period; and
    /// since others check every quarter too, a master that dies is off
    /// every list within the slave TTL: its keys expire at most ⅔ TTL after
    /// its last refresh, and are seen gone at most ¼ TTL later (a twelfth
    /// to spare for round trips).
    fn ttl_ms(&self) -> u64 {
        (self.config.slave_ttl.as_millis() * 2 / 3) as u64
    }
}

/// An XREAD under way: the stream's new position and the changes read.
type ChangesRead = Pin<Box<dyn Future<Output = Result<(String, Vec<Change>), SessionEnd>> + Send>>;

/// One XREAD of the change stream after `position`: the new position and
/// the changes read (malformed entries are logged and skipped).
fn read_changes(mut con: MultiplexedConnection, key: String, position: String) -> ChangesRead {
    Box::pin(async move {
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(STREAM_BATCH)
            .arg("BLOCK")
            .arg(STREAM_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&key)
            .arg(&position)
            .query_async(&mut con)
            .await?;
        let mut last = position;
        let mut changes = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let decoded = Change::decode(|name| match entry.map.get(name) {
                Some(Value::BulkString(bytes)) => Some(bytes.as_slice()),
                _ => None,
            });
            match decoded {
                Ok(change) => changes.push(change),
                Err(e) => tracing::warn!(entry = %entry.id, "cluster: change entry ignored: {e}"),
            }
            last = entry.id;
        }
        Ok((last, changes))
    })
}

/// A stream entry id (`<ms>-<seq>`) as numbers, to compare.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

async fn within<F: Future>(limit: Duration, future: F) -> Result<F::Output, SessionEnd> {
    tokio::time::timeout(limit, future).await.map_err(|_| SessionEnd::Timeout(limit))
}

/// A pseudo-random u64 (std's per-process random hash keys, mixed with the
/// time and `salt`): enough to spread node numbers and tell masters apart.
fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    hasher.finish()
}

fn random_node(salt: u64) -> u16 {
    1 + (random_u64(salt) % u64::from(MAX_NODE)) as u16
}
