'use strict';
// Leak check: 1,000 connect/echo/close cycles of a libwebrtc peer against one
// slave (in its own process, so that its memory is measured alone). After a
// warm-up, its file descriptors, engine tasks and connections go back to their
// baseline exactly, and its RSS grows by at most 15%. The goal is 5%: today
// the slave's native memory grows by ~4.8 kB per cycle (6-8% over 900 cycles,
// JS heap flat); until that is found, the bound catches anything worse.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const path = require('node:path');
const { fork } = require('node:child_process');
const { NETNS_ADDRESS, insideNamespace, runInNamespace } = require('./netns.js');

if (!insideNamespace()) {
	it('leak tests pass inside a private network namespace', () => {
		const { status, output } = runInNamespace(__filename);
		assert.equal(status, 0, output);
		process.stdout.write(output.split('\n').filter((l) => /^\s*(✔|✖|ℹ|#)/.test(l)).join('\n') + '\n');
	});
	return;
}

const WebSocket = require('ws');
const wrtc = require('@roamhq/wrtc');
const { Master } = require('..');

globalThis.WebSocket = WebSocket;
globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;

const WARM_UP = 100;
const CYCLES = 1000;

describe('slave memory and resources over many connections', () => {
	let master;
	let child;
	let MasterConnection;

	before(async () => {
		({ MasterConnection } = await import('../client/index.mjs'));
		master = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 0 });
		await once(master, 'listening');
		child = fork(path.join(__dirname, 'fixtures', 'slave-process.js'),
			[`ws://127.0.0.1:${master.port}`, JSON.stringify({ iceAddresses: [NETNS_ADDRESS] })],
			{ stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] });
		await once(child, 'message');
	});

	after(async () => {
		child.send('close');
		await once(child, 'exit');
		await master.close();
	});

	async function ask(request, key) {
		child.send(request);
		for (;;) {
			const [reply] = await once(child, 'message');
			if (key in reply) return reply[key];
		}
	}

	async function settledStats() {
		await ask('when-idle', 'idle');
		return ask('stats', 'stats');
	}

	it(`${CYCLES} connect/echo/close cycles: RSS within 15% after warm-up, fds and engine tasks back to baseline`, async () => {
		const masterCon = new MasterConnection(`ws://127.0.0.1:${master.port}`);
		const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
		const cycle = async (i) => {
			const dc = await slaveCo.createDataChannel('echo');
			const reply = new Promise((resolve) => { dc.onmessage = (ev) => resolve(ev.data); });
			dc.send(`ping ${i}`);
			assert.equal(await reply, `ping ${i}`);
			slaveCo.close();
		};
		for (let i = 0; i < WARM_UP; i++) await cycle(i);
		const base = await settledStats();
		for (let i = WARM_UP; i < CYCLES; i++) await cycle(i);
		const end = await settledStats();
		masterCon.close();
		const growth = (end.rss - base.rss) / base.rss;
		console.log(`# leak check: RSS ${(base.rss / 1048576).toFixed(1)} → ${(end.rss / 1048576).toFixed(1)} MB (${(growth * 100).toFixed(1)}%), `
			+ `JS heap ${(base.heap / 1048576).toFixed(1)} → ${(end.heap / 1048576).toFixed(1)} MB, fds ${base.fds} → ${end.fds}, engine tasks ${base.tasks} → ${end.tasks}, after ${CYCLES} cycles`);
		assert.equal(end.connections, 0);
		assert.ok(growth <= 0.15, `RSS grew by ${(growth * 100).toFixed(1)}%`);
		assert.equal(end.fds, base.fds, 'file descriptors back to the baseline');
		assert.equal(end.tasks, base.tasks, 'engine tasks back to the baseline');
	});
});
