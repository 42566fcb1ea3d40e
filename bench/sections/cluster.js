'use strict';
// Cluster (#15): masters sharing one lobby through a real redis-server
// (Debian's package, on loopback, no persistence; the tests' __test__/redis.js), each
// master in a process of its own (processes/cluster-master.js), with
// plain `ws` peers speaking the wire protocol (lib/wire.js). This package
// only: 0.9.0 has no clustering, so there is nothing to compare with.
//
// 1. Listing: M clients spread evenly over N masters (N = 1 for reference,
//    2, 3), bare WebSocket clients held by one process per master
//    (processes/cluster-clients.js); a `ws` slave registers with the first
//    master: time from its Register frame to the last client's AddSlaves
//    (every client of every master; also the last of the slave's own
//    master's, and the first of another master's: the Redis hop), and from
//    its close to the last client's RemoveSlaves. One warm-up registration,
//    then REGISTRATIONS measured: p50 and max. The clients' reading shares
//    the machine's cores with the masters and Redis.
// 2. Relayed offers: a `ws` slave on master A answers every offer at once;
//    a `ws` client on A and one on B take turns offering to it, one offer
//    at a time (the masters have no offer rate limit): medians of the
//    offer→answer round trips, the slave on the client's own master or
//    reached through Redis, and their difference.
// 3. Failover: on A, MOVERS of our `Slave`s given [A, B]
//    (processes/cluster-slaves.js) and STAYERS `ws` slaves given A only; a
//    `ws` client on B lists them all; A is SIGKILLed: time until that client
//    lists every mover again (registered with B), and until it has unlisted
//    every stayer. FAILOVER_ROUNDS kills, each with a fresh Redis and masters.
//    The masters' slaveTtl is the default (6 s).
//
// Every wait is bounded, every loop counted; all traffic on 127.0.0.1.

const { execFileSync } = require('node:child_process');
const { ADDRESS } = require('../lib/namespace.js');
const { startRedis } = require('../../__test__/redis.js');
const { start, stop, reply } = require('../lib/procs.js');
const { median, percentile } = require('../lib/stats.js');
const { now, msBetween, register, connect, Lobby, answerEveryOffer } = require('../lib/wire.js');

const MASTER_COUNTS = [1, 2, 3];
const REGISTRATIONS = 5;
const OFFERS = 500;
const OFFER_WARMUP = 50;
const FAILOVER_ROUNDS = 3;
const MOVERS = 10;
const STAYERS = 10;
const DEFAULT_SLAVE_TTL_MS = 6000;
const OPEN_LIMIT_MS = 120_000;
const STEP_LIMIT_MS = 10_000;
const FAILOVER_LIMIT_MS = 3 * DEFAULT_SLAVE_TTL_MS;
const SECTION_LIMIT_MS = 15 * 60_000;
const PAUSE_MS = 300;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The M values (BENCH_CLUSTER_CLIENTS, default 10,1000,10000: 10 shows the Redis hop alone). */
function clusterClientCounts() {
	return (process.env.BENCH_CLUSTER_CLIENTS ?? '10,1000,10000').split(',').map(Number);
}

// A data-channel offer and answer of a realistic size (the masters relay them as they are).
const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0')).join(':');
const sdp = (setup, ufrag) => [
	'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=extmap-allow-mixed', 'a=msid-semantic: WMS',
	'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', `a=ice-ufrag:${ufrag}`, 'a=ice-pwd:Lq5cYLlXvUMV2TBFJ3sgX8eF',
	'a=ice-options:trickle', `a=fingerprint:sha-256 ${FINGERPRINT}`, `a=setup:${setup}`, 'a=mid:0', 'a=sctp-port:5000', 'a=max-message-size:262144', '',
].join('\r\n');
const OFFER_SDP = sdp('actpass', 'q3Zr');
const ANSWER_SDP = sdp('active', 'Ub7o');

/** A clustered master of `impl` in its own process: { child, port, url, node }. */
async function clusterMaster(impl, redis) {
	const { child, ready } = await start('cluster-master', [impl, JSON.stringify({ redis: redis.url, name: 'bench' })]);
	if (ready.error) {
		await stop(child);
		throw new Error(ready.error);
	}
	return { child, port: ready.port, url: `ws://127.0.0.1:${ready.port}`, node: ready.node };
}

/** A Redis and `count` masters of it; `close()` ends them all. */
async function cluster(impl, count) {
	const redis = await startRedis();
	const masters = [];
	const children = [];
	const close = async () => {
		await stop(...children, ...masters.map((m) => m.child));
		await redis.kill();
	};
	try {
		for (let i = 0; i < count; i++) masters.push(await clusterMaster(impl, redis));
	} catch (err) {
		await close();
		throw err;
	}
	return { redis, masters, children, close };
}

/** Every bound is counted from here too: the section stops by itself. */
function checkDeadline(deadline) {
	if (Date.now() > deadline) throw new Error(`the cluster section took longer than ${SECTION_LIMIT_MS / 60_000} min`);
}

/** 1. M clients over `n` masters, REGISTRATIONS (+1) registrations: listing and unlisting times. */
async function listing(impl, n, m, deadline) {
	const c = await cluster(impl, n);
	try {
		const holders = [];
		for (let i = 0; i < n; i++) {
			const count = Math.floor(m / n) + (i < m % n ? 1 : 0);
			const { child } = await start('cluster-clients', [c.masters[i].url]);
			c.children.push(child);
			holders.push(child);
			const open = reply(child, 'open', OPEN_LIMIT_MS);
			child.send({ cmd: 'open', count });
			if (await open !== count) throw new Error(`${count} clients of master ${i}: not all open`);
		}
		await sleep(PAUSE_MS);
		const listed = [];
		const local = [];
		const remoteFirst = [];
		const clientsCpu = [];
		const unlisted = [];
		for (let r = 0; r <= REGISTRATIONS; r++) {
			checkDeadline(deadline);
			const name = `n${n}-m${m}-r${r}`;
			await Promise.all(holders.map((h) => {
				const armed = reply(h, 'expecting', STEP_LIMIT_MS);
				h.send({ cmd: 'expect', name });
				return armed;
			}));
			const slave = await connect(c.masters[0].url, 'slaves');
			slave.on('error', () => {});
			const everyListed = Promise.all(holders.map((h) => reply(h, 'listed', STEP_LIMIT_MS)));
			const everyUnlisted = Promise.all(holders.map((h) => reply(h, 'unlisted', 2 * STEP_LIMIT_MS)));
			everyUnlisted.catch(() => {});
			const registered = now();
			slave.send(register({ name }));
			const lists = await everyListed.catch((err) => { throw new Error(`not every client listed the slave (${n} masters, M=${m}): ${err.message}`); });
			await sleep(PAUSE_MS);
			const closed = now();
			slave.close();
			const removals = await everyUnlisted.catch((err) => { throw new Error(`not every client unlisted the slave (${n} masters, M=${m}): ${err.message}`); });
			if (r > 0) {
				listed.push(Math.max(...lists.map((l) => msBetween(registered, l.last))));
				local.push(msBetween(registered, lists[0].last));
				clientsCpu.push(lists.reduce((sum, l) => sum + l.cpuMs, 0));
				if (n > 1) remoteFirst.push(Math.min(...lists.slice(1).map((l) => msBetween(registered, l.first))));
				unlisted.push(Math.max(...removals.map((l) => msBetween(closed, l.last))));
			}
			await sleep(PAUSE_MS);
		}
		const key = `n${n}_m${m}`;
		return {
			[`${key}_listed_p50`]: median(listed),
			[`${key}_listed_max`]: Math.max(...listed),
			...(n > 1 ? { [`${key}_local_p50`]: median(local), [`${key}_remote_first_p50`]: median(remoteFirst) } : {}),
			[`${key}_clients_cpu_p50`]: median(clientsCpu),
			[`${key}_unlisted_p50`]: median(unlisted),
		};
	} finally {
		await c.close();
	}
}

/** 2. Offer→answer round trips to a slave on the client's master and on another one. */
async function offers(impl, deadline) {
	const c = await cluster(impl, 2);
	const peers = [];
	try {
		const [a, b] = c.masters;
		const slave = await connect(a.url, 'slaves');
		peers.push(slave);
		slave.on('error', () => {});
		answerEveryOffer(slave, ANSWER_SDP);
		slave.send(register({ name: 'answers' }));
		const onA = await Lobby.open(a.url);
		peers.push(onA);
		const onB = await Lobby.open(b.url);
		peers.push(onB);
		for (const lobby of [onA, onB]) await lobby.waitUntil(() => lobby.listed('answers'), STEP_LIMIT_MS, 'the answering slave was not listed');
		const id = onA.byName.get('answers').id;
		if (onB.byName.get('answers').id !== id) throw new Error('the slave has two ids in the cluster');
		const local = [];
		const relayed = [];
		for (let i = 0; i < OFFER_WARMUP + OFFERS; i++) {
			if (i % 50 === 0) checkDeadline(deadline);
			// Alternating which goes first, so that neither always follows the other.
			const order = i % 2 === 0 ? [[onA, local], [onB, relayed]] : [[onB, relayed], [onA, local]];
			for (const [lobby, times] of order) {
				const rtt = await lobby.offerRoundTrip(id, OFFER_SDP, STEP_LIMIT_MS);
				if (i >= OFFER_WARMUP) times.push(rtt);
			}
		}
		return {
			offer_local_p50: median(local),
			offer_relayed_p50: median(relayed),
			offer_extra_p50: median(relayed) - median(local),
			offer_local_p99: percentile(local, 0.99),
			offer_relayed_p99: percentile(relayed, 0.99),
		};
	} finally {
		for (const peer of peers) peer.close?.();
		for (const peer of peers) peer.terminate?.();
		await c.close();
	}
}

/** 3. One failover round: A SIGKILLed; times from the kill, in ms. */
async function failoverRound(impl, round) {
	const c = await cluster(impl, 2);
	const stayers = [];
	let watcher;
	try {
		const [a, b] = c.masters;
		const movers = Array.from({ length: MOVERS }, (_, i) => `mover-${round}-${i}`);
		const { child, ready } = await start('cluster-slaves', [impl, JSON.stringify({ urls: [a.url, b.url], names: movers, address: ADDRESS })]);
		c.children.push(child);
		if (ready.error) throw new Error(ready.error);
		const reconnected = new Map();
		child.on('message', (msg) => { if (msg.reconnected) reconnected.set(msg.reconnected.name, msg.reconnected); });
		const stayerNames = Array.from({ length: STAYERS }, (_, i) => `stayer-${round}-${i}`);
		for (const name of stayerNames) {
			const ws = await connect(a.url, 'slaves');
			ws.on('error', () => {});
			stayers.push(ws);
			ws.send(register({ name }));
		}
		watcher = await Lobby.open(b.url);
		await watcher.waitUntil(() => [...movers, ...stayerNames].every((name) => watcher.listed(name)), STEP_LIMIT_MS, 'B\'s client did not list every slave of A');
		await sleep(PAUSE_MS);
		const killed = now();
		a.child.kill('SIGKILL');
		const relisted = watcher.waitUntil(() => movers.every((name) => watcher.listed(name) && watcher.byName.get(name).listedAt > killed),
			FAILOVER_LIMIT_MS, `B's client did not list the ${MOVERS} slaves given both URLs again`);
		const gone = watcher.waitUntil(() => stayerNames.every((name) => !watcher.listed(name)),
			FAILOVER_LIMIT_MS, `B's client still listed slaves of the killed master`);
		await Promise.all([relisted, gone]);
		if (movers.some((name) => reconnected.get(name)?.url !== b.url)) throw new Error('a slave given both URLs did not report reconnecting to B');
		return {
			reconnected: movers.map((name) => msBetween(killed, reconnected.get(name).at)),
			relisted: Math.max(...movers.map((name) => msBetween(killed, watcher.byName.get(name).listedAt))),
			unlisted: Math.max(...stayerNames.map((name) => msBetween(killed, watcher.byName.get(name).unlistedAt))),
		};
	} finally {
		watcher?.close();
		for (const ws of stayers) ws.terminate();
		await c.close();
	}
}

async function failover(impl, deadline) {
	const rounds = [];
	for (let round = 0; round < FAILOVER_ROUNDS; round++) {
		checkDeadline(deadline);
		rounds.push(await failoverRound(impl, round));
	}
	const relisted = rounds.map((r) => r.relisted);
	const unlisted = rounds.map((r) => r.unlisted);
	return {
		failover_reconnected_p50: median(rounds.flatMap((r) => r.reconnected)),
		failover_relisted_p50: median(relisted),
		failover_relisted_max: Math.max(...relisted),
		failover_unlisted_p50: median(unlisted),
		failover_unlisted_max: Math.max(...unlisted),
	};
}

/** The soft limit of open files (each process holds up to M sockets). */
function fdLimit() {
	return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
}

const clusterSection = {
	name: 'cluster',
	title: 'Cluster (#15): masters in processes of their own sharing one lobby through Redis; WebSocket clients and slaves speaking the wire protocol, on loopback',
	/** Why 0.9.0 does not run this section (the report says so instead of a ratio). */
	engineOnly: '0.9.0 has no clustering',
	async run(ctx, impl) {
		const deadline = Date.now() + SECTION_LIMIT_MS;
		const figures = {};
		const limit = fdLimit();
		for (const m of clusterClientCounts()) {
			if (m + 1000 > limit) {
				console.log(`bench: cluster: file-descriptor limit ${limit}: skipping M = ${m}`);
				continue;
			}
			for (const n of MASTER_COUNTS) Object.assign(figures, await listing(impl, n, m, deadline));
		}
		Object.assign(figures, await offers(impl, deadline));
		Object.assign(figures, await failover(impl, deadline));
		return figures;
	},
};

module.exports = {
	cluster: clusterSection, clusterClientCounts, MASTER_COUNTS, REGISTRATIONS, OFFERS, FAILOVER_ROUNDS, MOVERS, STAYERS, DEFAULT_SLAVE_TTL_MS,
};
