'use strict';
// Hostile peers at the socket level against a live master: floods, giant
// frames, slow handshakes, ids of other peers, over-limit connections. The
// offender is refused or dropped; every other connection keeps working; the
// master's memory stays bounded.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { fork } = require('node:child_process');
const { T, WAIT_MS, frame, connect, onceWithin, registeredSlave, startMaster, within } = require('./helpers.js');

const CANDIDATE = { sdpMid: '0', sdpMLineIndex: 0, candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host' };
const GIANT = Buffer.alloc(16 * 1024 * 1024, 0);
const UPGRADE = 'GET /enslavism/clients HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
	+ 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

async function withMaster(options, fn) {
	const m = await startMaster('port', options);
	try {
		await fn(m);
	} finally {
		await m.close();
	}
}

/** Resolves once the raw socket is closed by the other side, with what it received. */
function closedBy(socket) {
	let received = '';
	socket.on('data', (d) => { received += d.toString('latin1'); });
	return new Promise((resolve) => socket.on('close', () => resolve(received)));
}

describe('hostile peers against a live master', { timeout: 60_000 }, () => {
	it('answers offers over the rate with rejections and drops candidates over the rate; others are unaffected', { timeout: 10_000 }, () => withMaster(
		{ maxOffersPerSecond: 5, maxCandidatesPerSecond: 20 },
		async ({ url }) => {
			const flooder = await connect(`${url}/enslavism/clients`);
			await flooder.next();
			const { slave, id: slaveId } = await registeredSlave(url, {}, flooder);
			const started = Date.now();
			for (let i = 0; i < 1000; i++) flooder.send(frame.sdp(T.offerToSlave, slaveId, `offer ${i}`));
			for (let i = 0; i < 1000; i++) flooder.send(frame.candidate(T.iceCandidateToSlave, slaveId, CANDIDATE));
			// The flooder's frames are handled in order: this probe's refusal
			// (no such slave) means everything before it was handled.
			flooder.send(frame.sdp(T.offerToSlave, slaveId + 100, 'probe'));
			let refused = 0;
			for (;;) {
				const f = await flooder.next();
				if (f.id === slaveId + 100) break;
				assert.deepEqual(f, { type: T.rejectFromSlave, id: slaveId, length: 5 });
				refused++;
			}
			// Tokens refill while the flood is handled: the bounds allow for that.
			const seconds = (Date.now() - started) / 1000;
			// A well-behaved client is served as usual meanwhile.
			const polite = await connect(`${url}/enslavism/clients`);
			await polite.next();
			polite.send(frame.sdp(T.offerToSlave, slaveId, 'polite'));
			let offers = 0;
			let candidates = 0;
			for (;;) {
				const f = await slave.next();
				if (f.type === T.offerFromClient && f.sdp === 'polite') break;
				if (f.type === T.offerFromClient) offers++;
				else if (f.type === T.iceCandidateFromClient) candidates++;
			}
			assert.equal(offers + refused, 1000, 'every offer is either forwarded or refused');
			assert.ok(offers >= 5 && offers <= 5 + 5 * seconds + 1, `${offers} offers forwarded in ${seconds} s`);
			assert.ok(candidates >= 20 && candidates <= 20 + 20 * seconds + 1, `${candidates} candidates forwarded in ${seconds} s`);
		},
	));

	it('refuses offers to ids that are not listed slaves (an unregistered slave, unknown ids)', { timeout: 10_000 }, () => withMaster({}, async ({ url }) => {
		const client = await connect(`${url}/enslavism/clients`);
		await client.next();
		const other = await connect(`${url}/enslavism/clients`);
		await other.next();
		const unregistered = await connect(`${url}/enslavism/slaves`);
		const { slave, id: slaveId } = await registeredSlave(url, {}, client);
		await other.next();
		// The unregistered slave got id slaveId - 1.
		for (const id of [slaveId - 1, slaveId + 1, 0xffffffff]) {
			client.send(frame.sdp(T.offerToSlave, id, 'x'));
			assert.deepEqual(await client.next(), { type: T.rejectFromSlave, id, length: 5 });
		}
		// A slave answering a client that does not exist: dropped, nobody hears of it.
		slave.send(frame.sdp(T.answerToClient, 12345, 'stray answer'));
		slave.send(frame.reject(T.rejectToClient, 12345));
		// Everything still routes.
		other.send(frame.sdp(T.offerToSlave, slaveId, 'real'));
		const offer = await slave.next();
		assert.equal(offer.sdp, 'real');
		slave.send(frame.sdp(T.answerToClient, offer.id, 'answer'));
		assert.deepEqual(await other.next(), { type: T.answerFromSlave, id: slaveId, sdp: 'answer' });
		unregistered.close();
	}));

	it('closes a connection that sends a 16 MB frame with 1009; the others keep working', { timeout: 10_000 }, () => withMaster({}, async ({ master, url }) => {
		const client = await connect(`${url}/enslavism/clients`);
		await client.next();
		const seen = onceWithin(master, 'slaveconnection', WAIT_MS, 'the master did not report the slave connection');
		const big = await connect(`${url}/enslavism/slaves`);
		const [socket] = await seen;
		big.send(Buffer.alloc(16 * 1024 * 1024, 0));
		// The sender may see 1006 instead: the master stops reading after the
		// frame header, so the rest of its upload meets a reset connection.
		const [code] = await onceWithin(socket, 'close', WAIT_MS, 'the master did not close the connection that sent 16 MB');
		assert.equal(code, 1009);
		await within(big.closed, WAIT_MS, 'the sender of 16 MB did not see its connection close');
		await registeredSlave(url, { after: true }, client);
		assert.equal(master.peerCounts.slaves, 1);
	}));

	it('drops slow-loris handshakes and silent TCP connections after handshakeTimeout; others connect meanwhile', { timeout: 10_000 }, () => withMaster(
		{ handshakeTimeout: 400 },
		async ({ master, url }) => {
			const silent = net.connect(master.port, '127.0.0.1');
			const silentClosed = closedBy(silent);
			const loris = net.connect(master.port, '127.0.0.1');
			const lorisClosed = closedBy(loris);
			await onceWithin(loris, 'connect', WAIT_MS, 'the slow-loris socket did not connect');
			let sent = 0;
			const drip = setInterval(() => { if (!loris.destroyed) loris.write(UPGRADE[sent++ % UPGRADE.length]); }, 20);
			try {
				const client = await connect(`${url}/enslavism/clients`);
				await client.next();
				await within(Promise.all([silentClosed, lorisClosed]), WAIT_MS,
					'the master did not drop the slow-loris and the silent connection (handshakeTimeout 400 ms)');
				assert.ok(sent < UPGRADE.length, 'the handshake never completed');
				assert.equal(master.peerCounts.clients, 1);
			} finally {
				clearInterval(drip);
			}
		},
	));

	it('drops a WebSocket that stops in the middle of a frame (no pong, no frame end)', { timeout: 10_000 }, () => withMaster(
		{ heartbeatInterval: 50, heartbeatTimeout: 300 },
		async ({ master }) => {
			const raw = net.connect(master.port, '127.0.0.1');
			const closed = closedBy(raw);
			await onceWithin(raw, 'connect', WAIT_MS, 'the raw socket did not connect');
			raw.write(UPGRADE);
			await onceWithin(raw, 'data', WAIT_MS, 'the master did not answer the WebSocket handshake');
			// A masked binary frame announcing 100 bytes, of which 3 arrive.
			raw.write(Buffer.from([0x82, 0x80 | 100, 1, 2, 3, 4, 9, 9, 9]));
			await within(closed, WAIT_MS, 'the master did not drop the WebSocket stuck in the middle of a frame (heartbeatTimeout 300 ms)');
			assert.equal(master.peerCounts.clients, 0);
		},
	));

	it('answers connections over maxConnections with 503 and a reason; a slot is free again once a connection ends', { timeout: 10_000 }, () => withMaster({ maxConnections: 2 }, async ({ master, url }) => {
		const firstSocket = onceWithin(master, 'clientconnection', WAIT_MS, 'the master did not report the first client');
		const a = await connect(`${url}/enslavism/clients`);
		await a.next();
		const [aSocket] = await firstSocket;
		const b = await connect(`${url}/enslavism/clients`);
		await b.next();
		await assert.rejects(connect(`${url}/enslavism/clients`), { status: 503, body: 'too many connections (the limit is 2)' });
		const seenClosed = onceWithin(aSocket, 'close', WAIT_MS, 'the master did not see the first client close');
		await a.close();
		await seenClosed; // the master has forgotten it
		const c = await connect(`${url}/enslavism/clients`);
		await c.next();
	}));

	it('closes a slave whose userData is over maxUserDataSize, with the reason, and never lists it', { timeout: 10_000 }, () => withMaster(
		{ maxUserDataSize: 100 },
		async ({ url }) => {
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const slave = await connect(`${url}/enslavism/slaves`);
			slave.send(frame.register({ name: 'x'.repeat(200) }));
			const { code, reason } = await within(slave.closed, WAIT_MS, 'the master did not close the slave with too much userData');
			assert.equal(code, 1009);
			assert.equal(reason, 'userData of 211 bytes is over this master\'s limit of 100 bytes');
			const { added } = await registeredSlave(url, { small: true }, client);
			assert.deepEqual(added.slaves.map((s) => s.userData), [{ small: true }]);
		},
	));

	it('keeps its memory bounded under garbage, 16 MB frames and connection churn (master in its own process)', { timeout: 30_000 }, async () => {
		const child = fork(path.join(__dirname, 'fixtures', 'master-process.js'), ['{}'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
		const ask = async (request) => {
			child.send(request);
			const [reply] = await onceWithin(child, 'message', WAIT_MS, `the master process did not answer '${request}'`);
			return reply;
		};
		try {
			const [{ port }] = await onceWithin(child, 'message', 2 * WAIT_MS, 'the master process did not start');
			const url = `ws://127.0.0.1:${port}`;
			const round = async () => {
				const peers = await Promise.all(Array.from({ length: 50 }, () => connect(`${url}/enslavism/clients`)));
				for (const [i, p] of peers.entries()) {
					for (let t = 0; t < 256; t++) p.send(Buffer.from([t, 1, 2, 3]));
					// Over the 256 KiB limit: closed; the 16 MB ones after their header.
					p.send(i % 10 === 0 ? GIANT : Buffer.alloc(300 * 1024, 7));
				}
				await within(Promise.all(peers.map((p) => p.closed)), 2 * WAIT_MS, 'the master did not close every connection that sent an oversized frame');
			};
			await round(); // warm-up: allocator pools, tasks
			const before = (await ask('rss')).rss;
			for (let i = 0; i < 5; i++) await round();
			const after = (await ask('rss')).rss;
			const { counts } = await ask('counts');
			assert.deepEqual(counts, { slaves: 0, clients: 0 });
			// 250 connections sent 25 frames of 16 MB and 225 of 300 KiB (about
			// 470 MB); a master that buffered them before refusing would show it.
			assert.ok(after - before < 20 * 1024 * 1024, `RSS grew by ${((after - before) / 1048576).toFixed(1)} MB`);
			child.send('close');
			await onceWithin(child, 'exit', WAIT_MS, 'the master process did not exit once closed');
		} finally {
			child.kill();
		}
	});
});
