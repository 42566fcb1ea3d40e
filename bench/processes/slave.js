'use strict';
// A slave of either implementation in a process of its own (argv: IMPL
// MASTER_URL ADDRESS), doing what the browser asks by channel label:
//   echo    sends every message back;
//   sink    counts messages until the text "end:N", then answers with JSON
//           { count, seconds, cpu } (cpu: share of one core, first message to end);
//   source  on "go:MS" sends 100-byte messages as fast as the channel takes
//           them for MS ms, then the text JSON { sent, seconds, cpu };
//   game    fan-out: a 200-byte state at 30 Hz, stamped; stamped inputs are
//           counted and timed inside the window the parent sets over IPC.
// Exits when the parent goes.

const { performance } = require('node:perf_hooks');
const { loadImpl, slaveOptions } = require('../lib/impls.js');

const [impl, masterUrl, address] = process.argv.slice(2);
const { Slave } = loadImpl(impl);
const now = () => performance.timeOrigin + performance.now();
const BUFFER_LIMIT = 1 << 20;
const BURST = 256;

process.on('disconnect', () => process.exit(0));

/** A DataView over a message's bytes, whatever type the implementation delivers. */
function view(data) {
	if (data instanceof ArrayBuffer) return new DataView(data);
	return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/** CPU share of one core since `start` (from `cpuStart`). */
function cpuSince(cpuStart, start) {
	const used = process.cpuUsage(cpuStart);
	return (used.user + used.system) / 1000 / (now() - start);
}

function sink(dc) {
	let count = 0;
	let start;
	let cpuStart;
	dc.addEventListener('message', (ev) => {
		if (typeof ev.data === 'string') {
			const expected = Number(ev.data.slice(4));
			dc.send(JSON.stringify({ count, expected, seconds: (now() - start) / 1000, cpu: cpuSince(cpuStart, start) }));
			count = 0;
			return;
		}
		if (count++ === 0) { start = now(); cpuStart = process.cpuUsage(); }
	});
}

function source(dc) {
	const payload = Buffer.alloc(100, 7);
	dc.addEventListener('message', (ev) => {
		const ms = Number(String(ev.data).slice(3));
		const start = now();
		const cpuStart = process.cpuUsage();
		let sent = 0;
		const pump = () => {
			if (dc.readyState !== 'open') {
				// Seen once in ~10 runs against Chromium: say which side saw it first.
				console.error(`bench slave (${impl}): the source channel closed after ${sent} messages, before the report`);
				return;
			}
			for (let i = 0; i < BURST && dc.bufferedAmount < BUFFER_LIMIT; i++) { dc.send(payload); sent++; }
			if (now() - start < ms) { setImmediate(pump); return; }
			dc.send(JSON.stringify({ sent, seconds: (now() - start) / 1000, cpu: cpuSince(cpuStart, start) }));
		};
		pump();
	});
}

/** Fan-out state: every game channel, and what happened inside the window. */
const game = { channels: new Set(), from: Infinity, to: -Infinity, inputs: 0, latencies: [], statesSent: 0 };

function gamePeer(dc) {
	game.channels.add(dc);
	dc.addEventListener('close', () => game.channels.delete(dc));
	dc.addEventListener('message', (ev) => {
		const at = now();
		const stamp = view(ev.data).getFloat64(0);
		if (stamp >= game.from && stamp < game.to) {
			game.inputs++;
			game.latencies.push(at - stamp);
		}
	});
}

const state = Buffer.alloc(200, 1);
setInterval(() => {
	const stamp = now();
	state.writeDoubleBE(stamp, 0);
	for (const dc of game.channels) {
		if (dc.readyState !== 'open') continue;
		dc.send(state);
		if (stamp >= game.from && stamp < game.to) game.statesSent++;
	}
}, 1000 / 30);

const roles = { echo: (dc) => dc.addEventListener('message', (ev) => dc.send(ev.data)), sink, source, game: gamePeer };

(async () => {
	const slave = await new Slave(masterUrl, { bench: impl }, undefined, slaveOptions(impl, address));
	slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => roles[dc.label]?.(dc)));
	process.on('message', (m) => {
		if (m.cmd === 'window') {
			Object.assign(game, { from: m.from, to: m.to, inputs: 0, latencies: [], statesSent: 0 });
			process.send({ ok: true });
		}
		if (m.cmd === 'report') process.send({ inputs: game.inputs, latencies: game.latencies, statesSent: game.statesSent, channels: game.channels.size });
	});
	process.send({ ready: true });
})();
