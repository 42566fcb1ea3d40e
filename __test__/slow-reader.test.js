'use strict';
// Peers that stop reading: their TCP window closes and every write to them
// stalls. The master must drop such a peer within its heartbeatTimeout and
// free its slot, while everybody else keeps getting every update. Raw TCP
// sockets play the peers that never read (a `ws` client reads by itself).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');
const { T, WAIT_MS, frame, connect, onceWithin, startMaster, within } = require('./helpers.js');

/** A masked client → server binary WebSocket frame (RFC 6455, section 5.2). */
function clientFrame(payload) {
	const length = payload.length;
	const head = length < 126 ? Buffer.from([0x82, 0x80 | length])
		: length < 65536 ? Buffer.from([0x82, 0x80 | 126, length >> 8, length & 0xff])
			: Buffer.concat([Buffer.from([0x82, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(length)); return b; })()]);
	const mask = crypto.randomBytes(4);
	const masked = Buffer.from(payload);
	for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3];
	return Buffer.concat([head, mask, masked]);
}

/**
 * A WebSocket over a raw socket that completes the handshake on `path`,
 * writes `frames`, then never reads again.
 */
async function neverReading(port, path, frames = []) {
	const socket = net.connect(port, '127.0.0.1');
	await onceWithin(socket, 'connect', WAIT_MS, 'the raw socket did not connect');
	socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
		+ 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
	let head = '';
	while (!head.includes('\r\n\r\n')) {
		const [chunk] = await onceWithin(socket, 'data', WAIT_MS, 'the master did not answer the WebSocket handshake');
		head += chunk.toString('latin1');
	}
	assert.match(head, /^HTTP\/1\.1 101/);
	socket.pause();
	for (const f of frames) socket.write(clientFrame(f));
	return socket;
}

// Big enough that the frames for one peer overflow both kernel buffers of a
// loopback connection (a few MB each), small enough to stay under the
// outbound queue length: the writes stall, the queue does not overflow.
const SLAVES = 250;
const BIG_USER_DATA = { name: 'x'.repeat(60_000) };
const OPTIONS = { heartbeatInterval: 300, heartbeatTimeout: 1500 };

/** How long the master may take to drop a peer that does not read (heartbeatTimeout + heartbeatInterval, and margin). */
const DROP_MS = 10_000;

describe('peers that stop reading', { timeout: 60_000 }, () => {
	it('a client that never reads while the list grows by megabytes is dropped, and the others get every update', { timeout: 30_000 }, async () => {
		const { master, url, close } = await startMaster('port', OPTIONS);
		const slaves = [];
		try {
			const watcher = await connect(`${url}/enslavism/clients`);
			assert.equal((await watcher.next()).type, T.addSlaves);
			const closes = [];
			master.on('clientconnection', (socket) => closes.push(onceWithin(socket, 'close', DROP_MS + WAIT_MS,
				'the master did not drop the client that never reads')));
			const slow = await neverReading(master.port, '/enslavism/clients');
			if (closes.length < 1) await onceWithin(master, 'clientconnection', WAIT_MS, 'the master did not report the client that never reads');
			for (let i = 0; i < SLAVES; i++) {
				const slave = await connect(`${url}/enslavism/slaves`);
				slave.send(frame.register(BIG_USER_DATA));
				slaves.push(slave);
			}
			let listed = 0;
			while (listed < SLAVES) {
				const update = await watcher.next();
				assert.equal(update.type, T.addSlaves);
				listed += update.slaves.length;
			}
			const [code, reason] = await closes[0];
			assert.equal(code, 1006);
			assert.match(reason, /write timeout|heartbeat timeout/);
			assert.equal(master.peerCounts.clients, 1, 'the slow client\'s slot is free');
			// The master goes on: one more slave reaches the reading client.
			const last = await connect(`${url}/enslavism/slaves`);
			last.send(frame.register({ name: 'after' }));
			slaves.push(last);
			assert.deepEqual((await watcher.next()).slaves.map((s) => s.userData), [{ name: 'after' }]);
			slow.destroy();
			watcher.close();
		} finally {
			for (const s of slaves) s.ws.terminate();
			await close();
		}
	});

	it('a slave that never reads while clients send it megabytes of offers is dropped and leaves every list', { timeout: 30_000 }, async () => {
		const { master, url, close } = await startMaster('port', { ...OPTIONS, maxOffersPerSecond: 0 });
		try {
			const watcher = await connect(`${url}/enslavism/clients`);
			assert.equal((await watcher.next()).type, T.addSlaves);
			const slaveClosed = onceWithin(master, 'slaveconnection', WAIT_MS, 'the master did not report the slave that never reads')
				.then(([socket]) => onceWithin(socket, 'close', DROP_MS + WAIT_MS, 'the master did not drop the slave that never reads'));
			const slow = await neverReading(master.port, '/enslavism/slaves', [frame.register({ name: 'deaf' })]);
			const { slaves: [{ id }] } = await watcher.next();
			const sdp = `v=0 ${'a'.repeat(200_000)}`;
			for (let i = 0; i < 80; i++) watcher.send(frame.sdp(T.offerToSlave, id, sdp));
			const [code, reason] = await slaveClosed;
			assert.equal(code, 1006);
			assert.match(reason, /write timeout|heartbeat timeout/);
			const removed = await watcher.next();
			assert.equal(removed.type, T.removeSlaves);
			assert.deepEqual(removed.ids, [id]);
			assert.equal(master.peerCounts.slaves, 0);
			slow.destroy();
			watcher.close();
		} finally {
			await close();
		}
	});
});
