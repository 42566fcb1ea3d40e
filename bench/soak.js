'use strict';
// A bounded soak of the Rust slave at game load, with churn: PEERS libwebrtc
// peers (@roamhq/wrtc running the browser client) each get a 200-byte state at
// 30 Hz from the slave and send 100-byte inputs at 60 Hz; every CHURN_MS a
// tenth of them disconnect and connect again. Every REPORT_MS it prints the
// slave's RSS, CPU and connections, and the messages delivered both ways.
// Runs inside a private network namespace it creates; stops by itself after
// SOAK_SECONDS (default 600). Not part of `npm test`.
//
//   node bench/soak.js                   (SOAK_SECONDS=60 node bench/soak.js for a short run)

const { fork } = require('node:child_process');
const { once } = require('node:events');

const { ADDRESS, insideNamespace, reexecInNamespace } = require('./lib/namespace.js');
const PEERS = Number(process.env.SOAK_PEERS ?? 50);
const SECONDS = Math.min(Number(process.env.SOAK_SECONDS ?? 600), 3600);
const CHURN_MS = 10_000;
const REPORT_MS = 30_000;

if (!insideNamespace() && process.argv[2] !== 'slave') {
	reexecInNamespace(__filename, [], { timeoutMs: (SECONDS + 120) * 1000 });
}

const { Master, Slave } = require('..');

if (process.argv[2] === 'slave') {
	// The slave process: 30 Hz state to every channel, counts inputs.
	(async () => {
		const slave = await new Slave(process.env.MASTER_URL, { soak: true }, undefined, { iceAddresses: [ADDRESS] });
		const channels = new Set();
		let inputs = 0;
		slave.on('connection', (c) => c.on('datachannel', (dc) => {
			channels.add(dc);
			dc.on('message', () => { inputs++; });
			dc.on('close', () => channels.delete(dc));
		}));
		const state = Buffer.alloc(200, 1);
		const tick = setInterval(() => {
			for (const dc of channels) if (dc.readyState === 'open') dc.send(state);
		}, 1000 / 30);
		let lastCpu = process.cpuUsage();
		let lastAt = process.hrtime.bigint();
		process.on('message', (m) => {
			if (m === 'report') {
				const cpu = process.cpuUsage(lastCpu);
				const now = process.hrtime.bigint();
				const wallMicros = Number(now - lastAt) / 1000;
				lastCpu = process.cpuUsage();
				lastAt = now;
				process.send({ rss: process.memoryUsage.rss(), cpu: (cpu.user + cpu.system) / wallMicros, connections: slave.connections.length, inputs });
			}
			if (m === 'exit') {
				clearInterval(tick);
				slave.close().then(() => process.exit(0));
			}
		});
		process.send({ ready: true });
	})();
	return;
}

(async () => {
	const WebSocket = require('ws');
	const wrtc = require('@roamhq/wrtc');
	globalThis.WebSocket = WebSocket;
	globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;
	const { MasterConnection } = await import('../client/index.mjs');

	const master = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 0 });
	await once(master, 'listening');
	const url = `ws://127.0.0.1:${master.port}`;
	const child = fork(__filename, ['slave'], { env: { ...process.env, MASTER_URL: url } });
	await once(child, 'message');
	const ask = async (m) => { child.send(m); return (await once(child, 'message'))[0]; };

	let states = 0;
	const input = Buffer.alloc(100, 2);
	/** One browser: its own MasterConnection, one unreliable channel, inputs at 60 Hz. */
	async function startPeer() {
		const masterCon = new MasterConnection(url);
		const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
		const dc = await slaveCo.createDataChannel('game', { ordered: false, maxRetransmits: 0 });
		dc.onmessage = () => { states++; };
		const timer = setInterval(() => { if (dc.readyState === 'open') dc.send(input); }, 1000 / 60);
		return () => { clearInterval(timer); slaveCo.close(); masterCon.close(); };
	}

	const peers = [];
	for (let i = 0; i < PEERS; i++) peers.push(await startPeer());
	console.log(`soak: ${PEERS} peers connected; ${SECONDS} s, churn of ${Math.ceil(PEERS / 10)} peers every ${CHURN_MS / 1000} s`);
	await ask('report'); // starts the CPU window
	const started = Date.now();
	const churn = setInterval(async () => {
		for (let i = 0; i < Math.ceil(PEERS / 10); i++) {
			const k = Math.floor(Math.random() * peers.length);
			peers[k]();
			peers[k] = await startPeer();
		}
	}, CHURN_MS);
	let lastStates = 0;
	let lastInputs = 0;
	let lastReport = Date.now();
	while (Date.now() - started < SECONDS * 1000) {
		await new Promise((resolve) => setTimeout(resolve, Math.min(REPORT_MS, SECONDS * 1000 - (Date.now() - started))));
		const r = await ask('report');
		const window = (Date.now() - lastReport) / 1000;
		lastReport = Date.now();
		console.log(`t=${((Date.now() - started) / 1000).toFixed(0)} s  slave RSS ${(r.rss / 1048576).toFixed(1)} MB  CPU ${(r.cpu * 100).toFixed(1)}%  `
			+ `connections ${r.connections}  states/s ${((states - lastStates) / window).toFixed(0)}  inputs/s ${((r.inputs - lastInputs) / window).toFixed(0)}`);
		lastStates = states;
		lastInputs = r.inputs;
	}
	clearInterval(churn);
	for (const stop of peers) stop();
	child.send('exit');
	await once(child, 'exit');
	await master.close();
	process.exit(0);
})();
