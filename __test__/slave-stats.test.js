'use strict';
// The slave's figures (#14): slave.stats(), dc.stats(), clientCo.getStats()
// and slave.metrics() (OpenMetrics, read with Prometheus' own parser), also
// served over HTTP with metricsPort; a libwebrtc peer (@roamhq/wrtc running
// client/index.mjs) inside the test's own network namespace.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'slave stats tests', { summary: true })) return;

const WebSocket = require('ws');
const wrtc = require('@roamhq/wrtc');
const { Master, Slave } = require('..');
const { parseOpenMetrics, sample } = require('./prometheus.js');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

globalThis.WebSocket = WebSocket;
globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;

const CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const AUTH = { username: 'getkey', password: 'secret' };
/** Messages each way, and their sizes. */
const N = 50;
const B = 100;
const M = 40;
const B_OUT = 300;

describe('slave stats and metrics', { timeout: 90_000 }, () => {
	let master;
	let url;
	let MasterConnection;

	before(async () => {
		({ MasterConnection } = await import('../client/index.mjs'));
		master = new Master(0, { host: '127.0.0.1' });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start');
		url = `ws://127.0.0.1:${master.port}`;
	});

	after(() => master.close());

	/** A slave with `options`, a client that lists it, and a connection with one channel. */
	async function withConnection(name, options, fn) {
		const masterCon = new MasterConnection(url);
		const userData = { name };
		const listed = new Promise((resolve) => masterCon.addEventListener('slaveadded', function handler(slaveCo) {
			if (slaveCo.userData.name !== name) return;
			masterCon.removeEventListener('slaveadded', handler);
			resolve(slaveCo);
		}));
		const slave = await new Slave(url, userData, AUTH, { iceAddresses: [NETNS_ADDRESS], udpPort: 0, ...options });
		const slaveCo = await within(listed, WAIT_MS, `the client did not list the slave ${name}`);
		try {
			const opened = new Promise((resolve) => slave.once('connection', (clientCo) => {
				clientCo.once('datachannel', (dc) => resolve({ clientCo, serverDc: dc }));
			}));
			const dc = await within(slaveCo.createDataChannel('stats'), 2 * WAIT_MS, 'the data channel did not open');
			dc.binaryType = 'arraybuffer';
			const { clientCo, serverDc } = await within(opened, WAIT_MS, 'the slave did not see the channel');
			await fn({ slave, slaveCo, dc, clientCo, serverDc });
		} finally {
			masterCon.close();
			slaveCo.close();
			await slave.close();
		}
	}

	/** Sends N messages of B bytes from the browser; resolves once the slave has them all. */
	async function browserSends(dc, serverDc) {
		let received = 0;
		const all = new Promise((resolve) => serverDc.on('message', () => { if (++received === N) resolve(); }));
		for (let i = 0; i < N; i++) dc.send(new Uint8Array(B).fill(i));
		await within(all, WAIT_MS, `the slave did not get the browser's ${N} messages`);
	}

	/** Sends M text messages of B_OUT bytes from the slave; resolves once the browser has them all. */
	async function slaveSends(dc, serverDc) {
		let received = 0;
		const all = new Promise((resolve) => { dc.onmessage = () => { if (++received === M) resolve(); }; });
		for (let i = 0; i < M; i++) serverDc.send('x'.repeat(B_OUT));
		await within(all, WAIT_MS, `the browser did not get the slave's ${M} messages`);
	}

	it('counts exactly what crossed each way in stats(), dc.stats() and metrics()', () => withConnection('counts', {}, async ({ slave, dc, clientCo, serverDc }) => {
		assert.equal(slave.metricsPort, null, 'no listener without metricsPort');
		await browserSends(dc, serverDc);
		await slaveSends(dc, serverDc);

		const expected = { messagesIn: N, messagesOut: M, bytesIn: N * B, bytesOut: M * B_OUT };
		const stats = slave.stats();
		assert.deepEqual({ ...stats, setupMs: undefined }, { connections: 1, channels: 1, ...expected, setupMs: undefined });
		assert.equal(stats.setupMs.count, 1);
		for (const p of ['p50', 'p95', 'p99']) {
			assert.ok(stats.setupMs[p] > 0 && stats.setupMs[p] < 5000, `setupMs.${p} is plausible: ${stats.setupMs[p]}`);
		}
		assert.deepEqual(serverDc.stats(), expected);

		const families = parseOpenMetrics(slave.metrics());
		assert.equal(sample(families, 'enslavism_slave_connections'), 1);
		assert.equal(sample(families, 'enslavism_slave_channels'), 1);
		assert.equal(sample(families, 'enslavism_slave_messages_total', { direction: 'in' }), N);
		assert.equal(sample(families, 'enslavism_slave_messages_total', { direction: 'out' }), M);
		assert.equal(sample(families, 'enslavism_slave_bytes_total', { direction: 'in' }), N * B);
		assert.equal(sample(families, 'enslavism_slave_bytes_total', { direction: 'out' }), M * B_OUT);
		assert.equal(sample(families, 'enslavism_slave_setup_seconds_count'), 1);
		assert.equal(sample(families, 'enslavism_slave_setup_seconds_bucket', { le: '+Inf' }), 1);
		assert.ok(!families.some((f) => f.name.startsWith('enslavism_slave_connection_')), 'no per-connection series by default');
		assert.equal(families.find((f) => f.name === 'enslavism_slave_setup_seconds').type, 'histogram');

		const co = await clientCo.getStats();
		assert.equal(co.messagesIn, N);
		assert.equal(co.bytesIn, N * B);
		assert.equal(co.messagesOut, M);
		assert.equal(co.bytesOut, M * B_OUT);
		assert.ok(co.transportBytesIn > N * B, `datagrams carry the payload and more: ${co.transportBytesIn}`);
		assert.ok(co.packetsIn > 0 && co.packetsOut > 0);
		assert.equal(co.packetsLost, null, 'str0m 0.24 does not expose SCTP loss');
		assert.equal(co.retransmissions, null);
		assert.ok(typeof co.rttMs === 'number' && co.rttMs > 0 && co.rttMs < 1000, `rttMs is plausible: ${co.rttMs}`);
		assert.equal(co.selectedCandidatePair.local, `${NETNS_ADDRESS}:${slave.udpPorts[0]}`);
		assert.match(co.selectedCandidatePair.remote, /^\d+\.\d+\.\d+\.\d+:\d+$/);

		// The browser closes: the gauges go back to 0, the counters stay.
		const closed = onceWithin(clientCo, 'close', 2 * WAIT_MS, 'the slave did not see the browser close');
		dc.close();
		await closed;
		assert.deepEqual(serverDc.stats(), expected, 'a closed channel keeps its last figures');
		assert.deepEqual({ ...slave.stats(), setupMs: undefined }, { connections: 0, channels: 0, ...expected, setupMs: undefined });
		await assert.rejects(clientCo.getStats(), { code: 'ERR_ENSLAVISM_CLOSED' });
	}));

	it('serves the same metrics on metricsPort, with per-connection series when asked', () => withConnection('served', { metricsPort: 0, metricsPerConnection: true }, async ({ slave, dc, clientCo, serverDc }) => {
		assert.ok(Number.isInteger(slave.metricsPort) && slave.metricsPort > 0);
		await browserSends(dc, serverDc);
		await slaveSends(dc, serverDc);

		const res = await fetch(`http://127.0.0.1:${slave.metricsPort}/metrics`);
		assert.equal(res.status, 200);
		assert.equal(res.headers.get('content-type'), CONTENT_TYPE);
		const families = parseOpenMetrics(await res.text());
		assert.equal(sample(families, 'enslavism_slave_messages_total', { direction: 'in' }), N);
		assert.equal(sample(families, 'enslavism_slave_bytes_total', { direction: 'out' }), M * B_OUT);
		const local = parseOpenMetrics(slave.metrics());
		assert.equal(sample(local, 'enslavism_slave_bytes_total', { direction: 'in' }), N * B);

		// One connection's series, labelled with its session and the client's id.
		const labels = { client: String(clientCo.id) };
		assert.equal(sample(families, 'enslavism_slave_connection_messages_total', { ...labels, direction: 'in' }), N);
		assert.equal(sample(families, 'enslavism_slave_connection_bytes_total', { ...labels, direction: 'out' }), M * B_OUT);
		const connection = families.find((f) => f.name === 'enslavism_slave_connection_messages').samples[0].labels.connection;
		assert.match(connection, /^\d+$/);
		const rtt = families.find((f) => f.name === 'enslavism_slave_connection_rtt_seconds');
		assert.ok(rtt, 'the round-trip time is published once the connection is up');
		assert.ok(rtt.samples[0].value > 0 && rtt.samples[0].value < 1, `rtt is plausible: ${rtt.samples[0].value}`);

		assert.equal((await fetch(`http://127.0.0.1:${slave.metricsPort}/other`)).status, 404);
		assert.equal((await fetch(`http://127.0.0.1:${slave.metricsPort}/metrics`, { method: 'POST' })).status, 405);

		// Never asked while open: after the close, the channel still has its figures (from the close event).
		const closed = onceWithin(serverDc, 'close', 2 * WAIT_MS, 'the slave did not see the channel close');
		dc.close();
		await closed;
		assert.deepEqual(serverDc.stats(), { messagesIn: N, messagesOut: M, bytesIn: N * B, bytesOut: M * B_OUT });
	}));

	it('refuses unusable metrics options with a coded error', async () => {
		const make = (options) => new Slave(url, {}, AUTH, { iceAddresses: [NETNS_ADDRESS], ...options });
		assert.throws(() => make({ metricsPort: 70000 }), {
			name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /options\.metricsPort must be an integer from 0 to 65535.*70000/,
		});
		assert.throws(() => make({ metricsPort: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
		assert.throws(() => make({ metricsPort: '9100' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options\.metricsPort/ });
		assert.throws(() => make({ metricsPerConnection: 1 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => make({ metricsPort: 0, metricsHost: 'localhost' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.metricsHost/ });
		assert.throws(() => make({ metricsHost: '127.0.0.1' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.metricsHost.*metrics port/ });

		const taken = net.createServer().listen(0, '127.0.0.1');
		await onceWithin(taken, 'listening', WAIT_MS, 'the port-taking server did not listen');
		try {
			await assert.rejects(make({ metricsPort: taken.address().port, metricsHost: '127.0.0.1' }), { code: 'EADDRINUSE', message: /metrics/ });
		} finally {
			taken.close();
		}
	});
});
