'use strict';
// A quick measurement of the Rust slave against libwebrtc peers
// (@roamhq/wrtc running the browser client): messages per second both ways
// (100-byte messages, reliable ordered channel) and the slave's RSS per
// connected peer. Runs inside a private network namespace it creates; every
// loop is bounded in count and time. Not part of `npm test`.
//
//   node bench/quick-slave.js            (root, or unprivileged user namespaces)

const { fork } = require('node:child_process');
const { once } = require('node:events');
const path = require('node:path');

const { ADDRESS, insideNamespace, reexecInNamespace } = require('./lib/namespace.js');
const MESSAGES = 20_000;
const PEERS = 20;
const SETUPS = 30;
const DEADLINE_MS = 60_000;

if (!insideNamespace() && process.argv[2] !== 'slave') {
	reexecInNamespace(__filename, [], { timeoutMs: 5 * 60_000 });
}

const { Master, Slave } = require('..');

if (process.argv[2] === 'slave') {
	// The slave process: echo-free sink and source, reporting its RSS on request.
	(async () => {
		const slave = await new Slave(process.env.MASTER_URL, { bench: true }, undefined, { iceAddresses: [ADDRESS] });
		let received = 0;
		slave.on('connection', (c) => c.on('datachannel', (dc) => {
			dc.on('message', (ev) => {
				if (ev.data === 'start-sending') {
					const payload = Buffer.alloc(100, 7);
					let sent = 0;
					const pump = () => {
						while (sent < MESSAGES && dc.bufferedAmount < 1 << 20) { dc.send(payload); sent++; }
						if (sent < MESSAGES) setImmediate(pump);
					};
					pump();
				} else if (++received === MESSAGES) process.send({ received });
			});
		}));
		// The bench died (deadline, error): do not outlive it.
		process.on('disconnect', () => process.exit(1));
		process.on('message', (m) => {
			if (m === 'rss') process.send({ rss: process.memoryUsage().rss, connections: slave.connections.length });
			if (m === 'exit') slave.close().then(() => process.exit(0));
		});
		process.send({ ready: true });
	})();
	return;
}

function ask(child, message, key) {
	return new Promise((resolve) => {
		const onMessage = (m) => { if (m[key] !== undefined) { child.off('message', onMessage); resolve(m); } };
		child.on('message', onMessage);
		if (message) child.send(message);
	});
}

(async () => {
	const timer = setTimeout(() => { console.error('deadline reached'); process.exit(1); }, DEADLINE_MS);
	globalThis.WebSocket = require('ws');
	globalThis.RTCPeerConnection = require('@roamhq/wrtc').RTCPeerConnection;
	const { MasterConnection } = await import('../client/index.mjs');
	const master = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 0 });
	await once(master, 'listening');
	const url = `ws://127.0.0.1:${master.port}`;
	const masterCon = new MasterConnection(url);
	const listed = new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
	const child = fork(__filename, ['slave'], { env: { ...process.env, MASTER_URL: url } });
	await ask(child, null, 'ready');
	const slaveCo = await listed;
	const rss0 = (await ask(child, 'rss', 'rss')).rss;

	// Connection setup: createDataChannel() → open, sequential, fresh peer connection each time.
	const setups = [];
	for (let i = 0; i < SETUPS; i++) {
		const t0 = process.hrtime.bigint();
		await slaveCo.createDataChannel('setup');
		setups.push(Number(process.hrtime.bigint() - t0) / 1e6);
		slaveCo.close();
	}
	setups.sort((a, b) => a - b);
	const pct = (p) => setups[Math.min(setups.length - 1, Math.floor(p * setups.length))];
	let t = process.hrtime.bigint();
	const dc = await slaveCo.createDataChannel('bench');

	// peer → slave.
	const payload = new Uint8Array(100).fill(3);
	const done = ask(child, null, 'received');
	t = process.hrtime.bigint();
	for (let sent = 0; sent < MESSAGES;) {
		while (sent < MESSAGES && dc.bufferedAmount < 1 << 20) { dc.send(payload); sent++; }
		if (sent < MESSAGES) await new Promise((r) => setImmediate(r));
	}
	await done;
	const upRate = MESSAGES / (Number(process.hrtime.bigint() - t) / 1e9);

	// slave → peer.
	let got = 0;
	const allIn = new Promise((resolve) => { dc.onmessage = () => { if (++got === MESSAGES) resolve(); }; });
	t = process.hrtime.bigint();
	dc.send('start-sending');
	await allIn;
	const downRate = MESSAGES / (Number(process.hrtime.bigint() - t) / 1e9);

	// RSS per connected peer.
	const rss1 = (await ask(child, 'rss', 'rss')).rss;
	const others = [];
	for (let i = 0; i < PEERS; i++) {
		const mc = new MasterConnection(url);
		const co = await new Promise((resolve) => mc.addEventListener('slaveadded', resolve));
		others.push({ mc, co, dc: await co.createDataChannel('idle') });
	}
	const after = await ask(child, 'rss', 'rss');
	const perPeerKb = (after.rss - rss1) / PEERS / 1024;

	console.log(JSON.stringify({
		setup_ms_p50: +pct(0.5).toFixed(1),
		setup_ms_p95: +pct(0.95).toFixed(1),
		peer_to_slave_msg_per_s: Math.round(upRate),
		slave_to_peer_msg_per_s: Math.round(downRate),
		slave_rss_idle_mb: +(rss0 / 2 ** 20).toFixed(1),
		slave_rss_per_peer_kb: Math.round(perPeerKb),
		peers: after.connections,
	}));
	for (const o of others) { o.co.close(); o.mc.close(); }
	slaveCo.close();
	masterCon.close();
	child.send('exit');
	await once(child, 'exit');
	await master.close();
	clearTimeout(timer);
	process.exit(0);
})();
