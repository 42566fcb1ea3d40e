'use strict';
// Leak check: 1,000 connect/echo/close cycles of a libwebrtc peer against one
// slave (in its own process, so that its memory is measured alone), after 500
// cycles of warm-up. Its RSS may grow by 5% at most, and its file
// descriptors, engine tasks and connections come back to their baseline
// exactly. (Measured over 3,000 cycles: RSS within 63.2-63.9 MB from cycle
// 750 on; a single reading can be 4 MB lower, hence the medians below.)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { fork } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'leak tests', { summary: true })) return;

const WebSocket = require('ws');
const wrtc = require('@roamhq/wrtc');
const { Master } = require('..');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

globalThis.WebSocket = WebSocket;
globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;

const WARM_UP = 500;
const CYCLES = Number(process.env.LEAK_CYCLES ?? 1000);
/** One connect/echo/close cycle takes ~20 ms; a cycle that hangs fails after this. */
const CYCLE_MS = 15_000;
/** The whole check: 1,500 cycles took 33 s (debug build, two cores); three times as long per cycle, and margin. */
const CHECK_MS = 30_000 + (WARM_UP + CYCLES) * 60;
// libwebrtc frees a closed RTCPeerConnection only when its JS object is
// collected; without collections, this process slows to a crawl after ~1,500.
const collectGarbage = (() => {
	require('node:v8').setFlagsFromString('--expose-gc');
	return require('node:vm').runInNewContext('gc');
})();

describe('slave memory and resources over many connections', { timeout: CHECK_MS + 30_000 }, () => {
	let master;
	let child;
	let MasterConnection;

	before(async () => {
		({ MasterConnection } = await import('../client/index.mjs'));
		master = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 0 });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		child = fork(path.join(__dirname, 'fixtures', 'slave-process.js'),
			[`ws://127.0.0.1:${master.port}`, JSON.stringify({ iceAddresses: [NETNS_ADDRESS] })],
			{ stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] });
		await onceWithin(child, 'message', 2 * WAIT_MS, 'the slave process did not start');
	}, { timeout: 4 * WAIT_MS });

	after(async () => {
		try {
			const exited = onceWithin(child, 'exit', WAIT_MS, 'the slave process did not exit once closed');
			child.send('close');
			await exited;
		} finally {
			child.kill('SIGKILL');
			await master.close();
		}
	}, { timeout: 4 * WAIT_MS });

	/** Sends `request` to the slave process; resolves with the `key` of its reply, within `ms`. */
	function ask(request, key, ms = WAIT_MS) {
		let onReply;
		const answered = new Promise((resolve) => {
			onReply = (reply) => { if (key in reply) resolve(reply[key]); };
			child.on('message', onReply);
		});
		child.send(request);
		return within(answered, ms, `the slave process did not answer '${request}'`).finally(() => child.off('message', onReply));
	}

	async function settledStats() {
		await ask('when-idle', 'idle', 2 * WAIT_MS);
		return ask('stats', 'stats');
	}

	it(`${CYCLES} connect/echo/close cycles: RSS within 5% after warm-up, fds and engine tasks back to baseline`, { timeout: CHECK_MS }, async () => {
		const masterCon = new MasterConnection(`ws://127.0.0.1:${master.port}`);
		const [slaveCo] = await onceWithin(masterCon, 'slaveadded', WAIT_MS, 'the browser client did not list the slave');
		const cycle = (i) => within((async () => {
			const dc = await slaveCo.createDataChannel('echo');
			const reply = new Promise((resolve) => { dc.onmessage = (ev) => resolve(ev.data); });
			dc.send(`ping ${i}`);
			assert.equal(await reply, `ping ${i}`);
			slaveCo.close();
		})(), CYCLE_MS, `cycle ${i} (connect, echo, close) did not complete`);
		for (let i = 0; i < WARM_UP; i++) {
			await cycle(i);
			if (i % 100 === 99) collectGarbage();
		}
		// RSS read once varies by a few MB (memory is handed back to the
		// system in its own time): compare the medians of the first and the
		// last three of ten samples, one every 100 cycles, each taken with no
		// peer connected.
		const samples = [];
		for (let i = 0; i < CYCLES; i++) {
			await cycle(WARM_UP + i);
			if (i % 100 === 99) {
				collectGarbage();
				samples.push(await settledStats());
			}
		}
		masterCon.close();
		const median = (list) => list.map((x) => x.rss).sort((a, b) => a - b)[Math.floor(list.length / 2)];
		const before = median(samples.slice(0, 3));
		const after = median(samples.slice(-3));
		const [first, last] = [samples[0], samples[samples.length - 1]];
		const growth = (after - before) / before;
		const mb = (bytes) => (bytes / 1048576).toFixed(1);
		console.log(`# leak check: RSS ${mb(before)} → ${mb(after)} MB (${(growth * 100).toFixed(1)}%; samples ${samples.map((x) => mb(x.rss)).join(' ')}), `
			+ `JS heap ${mb(first.heap)} → ${mb(last.heap)} MB, fds ${first.fds} → ${last.fds}, engine tasks ${first.tasks} → ${last.tasks}, `
			+ `${CYCLES} cycles after ${WARM_UP} of warm-up`);
		assert.equal(last.connections, 0);
		assert.ok(growth <= 0.05, `RSS grew by ${(growth * 100).toFixed(1)}%`);
		assert.equal(last.fds, first.fds, 'file descriptors back to the baseline');
		assert.equal(last.tasks, first.tasks, 'engine tasks back to the baseline');
	});
});
