'use strict';
// The master's figures against traffic the test makes itself with plain `ws`
// peers: master.stats(), the metrics at /enslavism/metrics (read with
// Prometheus' own OpenMetrics parser), status.json, and who may read them.
// Both modes: the master's own port and an attached http.Server.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { T, WAIT_MS, frame, connect, onceWithin, startMaster } = require('./helpers.js');
const { parseOpenMetrics, sample } = require('./prometheus.js');

const CANDIDATE = { sdpMid: '0', sdpMLineIndex: 0, candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host' };

/** Counts what `peer` receives (call it before taking any frame): frames and payload bytes. */
function tally(peer) {
	// Those that came before this was called wait in the peer's queue.
	const seen = { frames: peer.frames.length, bytes: peer.frames.reduce((sum, f) => sum + f.length, 0) };
	peer.ws.on('message', (data) => {
		seen.frames += 1;
		seen.bytes += data.length;
	});
	return seen;
}

for (const mode of ['port', 'server']) {
	describe(`master figures (${mode === 'port' ? 'own port' : 'attached to an http.Server'})`, { timeout: 30_000 }, () => {
		it('counts every frame, byte, offer, answer, candidate, rejection, refusal and drop it saw', async () => {
			const m = await startMaster(mode, { metrics: true, status: true });
			m.master.on('clientauth', (cookies, reject) => {
				if (cookies.deny) reject('no');
			});
			try {
				let framesIn = 0;
				let bytesIn = 0;
				const send = (peer, buf) => {
					framesIn += 1;
					bytesIn += buf.length;
					peer.send(buf);
				};
				const slave = await connect(`${m.url}/enslavism/slaves`);
				const slaveSeen = tally(slave);
				const client = await connect(`${m.url}/enslavism/clients`);
				const clientSeen = tally(client);
				assert.equal((await client.next()).type, T.addSlaves, 'the empty list');
				send(slave, frame.register({ name: 'counted' }));
				const { slaves: [{ id: slaveId }] } = await client.next();

				// N offers of B bytes, each answered, with two candidates each way.
				const N = 7;
				const sdp = 'v=0 '.repeat(50);
				for (let i = 0; i < N; i++) {
					send(client, frame.sdp(T.offerToSlave, slaveId, sdp));
					const offer = await slave.next();
					assert.equal(offer.type, T.offerFromClient);
					for (let c = 0; c < 2; c++) send(client, frame.candidate(T.iceCandidateToSlave, slaveId, CANDIDATE));
					send(slave, frame.sdp(T.answerToClient, offer.id, sdp));
					for (let c = 0; c < 2; c++) send(slave, frame.candidate(T.iceCandidateToClient, offer.id, CANDIDATE));
					assert.equal((await slave.next()).type, T.iceCandidateFromClient);
					assert.equal((await slave.next()).type, T.iceCandidateFromClient);
					assert.equal((await client.next()).type, T.answerFromSlave);
					assert.equal((await client.next()).type, T.iceCandidateFromSlave);
					assert.equal((await client.next()).type, T.iceCandidateFromSlave);
				}
				// An offer to a slave that is not there: the master rejects it.
				send(client, frame.sdp(T.offerToSlave, slaveId + 1000, sdp));
				assert.equal((await client.next()).type, T.rejectFromSlave);

				// A refused handshake, and a client that vanishes without a close.
				await assert.rejects(connect(`${m.url}/enslavism/clients`, { cookie: 'deny=1' }), { status: 401 });
				const connected = onceWithin(m.master, 'clientconnection', WAIT_MS, 'the master did not report the client');
				const vanishing = await connect(`${m.url}/enslavism/clients`);
				const [vanishingSocket] = await connected;
				const vanishingSeen = tally(vanishing);
				await vanishing.next();
				const gone = onceWithin(vanishingSocket, 'close', WAIT_MS, 'the master did not notice the vanished client');
				vanishing.ws.terminate();
				await gone;

				const stats = m.master.stats();
				const framesOut = slaveSeen.frames + clientSeen.frames + vanishingSeen.frames;
				const bytesOut = slaveSeen.bytes + clientSeen.bytes + vanishingSeen.bytes;
				assert.deepEqual(stats, {
					slaves: 1,
					registeredSlaves: 1,
					remoteSlaves: 0,
					clients: 1,
					framesIn,
					framesOut,
					bytesIn,
					bytesOut,
					offers: N,
					answers: N,
					candidates: 4 * N,
					rejections: 1,
					refusedHandshakes: 1,
					droppedPeers: 1,
				});

				// The metrics say the same, in a format Prometheus reads.
				const res = await fetch(`${m.httpUrl}/enslavism/metrics`);
				assert.equal(res.status, 200);
				assert.equal(res.headers.get('content-type'), 'application/openmetrics-text; version=1.0.0; charset=utf-8');
				const families = parseOpenMetrics(await res.text());
				assert.equal(sample(families, 'enslavism_master_slaves'), 1);
				assert.equal(sample(families, 'enslavism_master_clients'), 1);
				assert.equal(sample(families, 'enslavism_master_frames_total', { direction: 'in' }), framesIn);
				assert.equal(sample(families, 'enslavism_master_frames_total', { direction: 'out' }), framesOut);
				assert.equal(sample(families, 'enslavism_master_bytes_total', { direction: 'in' }), bytesIn);
				assert.equal(sample(families, 'enslavism_master_bytes_total', { direction: 'out' }), bytesOut);
				assert.equal(sample(families, 'enslavism_master_signalling_messages_total', { kind: 'offer' }), N);
				assert.equal(sample(families, 'enslavism_master_signalling_messages_total', { kind: 'candidate' }), 4 * N);
				assert.equal(sample(families, 'enslavism_master_handshakes_refused_total', { reason: 'unauthorized' }), 1);
				assert.equal(sample(families, 'enslavism_master_dropped_peers_total'), 1);
				// Every answer followed its offer: each was timed.
				assert.equal(sample(families, 'enslavism_master_signalling_latency_seconds_count'), N);
				assert.equal(sample(families, 'enslavism_master_signalling_latency_seconds_bucket', { le: '+Inf' }), N);

				// status.json: the same figures, by the same names.
				const status = await (await fetch(`${m.httpUrl}/enslavism/status.json`)).json();
				assert.deepEqual(Object.keys(status).sort(), Object.keys(stats).sort());
				assert.equal(status.offers, N);
				assert.match(await (await fetch(`${m.httpUrl}/enslavism/status`)).text(), /<title>enslavism master status<\/title>/);
				await slave.close();
				await client.close();
			} finally {
				await m.close();
			}
		});

		it('serves no monitoring path unless asked', async () => {
			const m = await startMaster(mode);
			try {
				for (const path of ['/enslavism/metrics', '/enslavism/status', '/enslavism/status.json']) {
					const res = await fetch(`${m.httpUrl}${path}`);
					assert.equal(res.status, mode === 'port' ? 404 : 200, path);
					if (mode === 'server') assert.equal(await res.text(), `user handler: ${path}`);
				}
				assert.match(m.master.metrics(), /^enslavism_master_clients 0$/m, 'metrics() works all the same');
			} finally {
				await m.close();
			}
		});

		it('lets metricsAuth decide who reads the metrics and the status page, sync or async, within authTimeout', async () => {
			const asked = [];
			const m = await startMaster(mode, {
				metrics: true,
				status: true,
				authTimeout: 300,
				metricsAuth(req) {
					asked.push({ url: req.url, token: req.headers['x-token'], from: req.socket.remoteAddress });
					const token = req.headers['x-token'];
					if (token === 'later') return new Promise((resolve) => setTimeout(resolve, 10, true));
					if (token === 'never') return new Promise(() => {});
					if (token === 'throws') throw new Error('boom');
					return token === 'yes';
				},
			});
			try {
				const get = (path, token) => fetch(`${m.httpUrl}${path}`, { headers: token ? { 'x-token': token } : {} });
				assert.equal((await get('/enslavism/metrics', 'yes')).status, 200);
				assert.equal((await get('/enslavism/metrics', 'later')).status, 200);
				assert.equal((await get('/enslavism/metrics')).status, 403);
				assert.equal((await get('/enslavism/metrics', 'never')).status, 403);
				assert.equal((await get('/enslavism/metrics', 'throws')).status, 403);
				assert.equal((await get('/enslavism/status.json', 'no')).status, 403);
				assert.equal((await get('/enslavism/status', 'yes')).status, 200);
				// The client bundle is never behind the hook.
				assert.equal((await get('/enslavism/client.js')).status, 200);
				assert.deepEqual(asked[0], { url: '/enslavism/metrics', token: 'yes', from: '127.0.0.1' });
				assert.equal(asked.length, 7);
			} finally {
				await m.close();
			}
		});

		it('refuses monitoring options of the wrong type', () => {
			const { Master } = require('..');
			assert.throws(() => new Master(0, { metrics: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options.metrics must be a boolean/ });
			assert.throws(() => new Master(0, { metricsAuth: true }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options.metricsAuth must be a function/ });
		});
	});
}
