'use strict';
// Plain `ws` peers speaking enslavism's V1 wire protocol (doc/protocol.md),
// for the cluster section: cheap clients and slaves with no WebRTC behind
// them. Times are process.hrtime.bigint() (CLOCK_MONOTONIC, the same clock in
// every process of the machine), so that processes can compare them.

const net = require('node:net');
const WebSocket = require('ws');

const REGISTER = 0;
const ADD_SLAVES = 1;
const REMOVE_SLAVES = 2;
const OFFER_TO_SLAVE = 3;
const OFFER_FROM_CLIENT = 4;
const ANSWER_TO_CLIENT = 5;
const ANSWER_FROM_SLAVE = 6;
const REJECT_FROM_SLAVE = 12;

const now = () => process.hrtime.bigint();
/** Milliseconds from hrtime `from` to hrtime `to` (bigints, or their decimal strings). */
const msBetween = (from, to) => Number(BigInt(to) - BigInt(from)) / 1e6;

/** A Register frame: the slave's userData as JSON. */
function register(userData) {
	return Buffer.concat([Buffer.from([REGISTER]), Buffer.from(JSON.stringify(userData))]);
}

/** A frame of `type` with a body `id: u32` then `text` (offers, answers). */
function withId(type, id, text) {
	const frame = Buffer.allocUnsafe(5 + Buffer.byteLength(text));
	frame[0] = type;
	frame.writeUInt32BE(id, 1);
	frame.write(text, 5);
	return frame;
}

/** The entries of an AddSlaves frame: [{ id, userData }] (userData parsed). */
function addedSlaves(frame) {
	const entries = [];
	for (let at = 1; at + 6 <= frame.length;) {
		const id = frame.readUInt32BE(at);
		const length = frame.readUInt16BE(at + 4);
		entries.push({ id, userData: JSON.parse(frame.toString('utf8', at + 6, at + 6 + length)) });
		at += 6 + length;
	}
	return entries;
}

/** The ids of a RemoveSlaves frame (a JSON array). */
function removedSlaves(frame) {
	return JSON.parse(frame.toString('utf8', 1));
}

/**
 * Opens a WebSocket to master `url` as a client or a slave (`role`),
 * `onFrame(frame)` listening from the start (a client's first list may come
 * with the handshake's answer); resolves once open.
 */
function connect(url, role, { limitMs = 10_000, onFrame } = {}) {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`${url}/enslavism/${role}`, { perMessageDeflate: false });
		ws.binaryType = 'nodebuffer';
		if (onFrame) ws.on('message', onFrame);
		const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${role} socket to ${url}: not open within ${limitMs} ms`)); }, limitMs);
		ws.once('open', () => { clearTimeout(timer); resolve(ws); });
		ws.once('error', (err) => { clearTimeout(timer); reject(err); });
	});
}

// RFC 6455's sample key (16 bytes in base64): the client does not check the server's Sec-WebSocket-Accept.
const HANDSHAKE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const READ_BUFFER = Buffer.alloc(64 * 1024);

/**
 * A bare WebSocket client on a TCP socket, for the cluster section's
 * thousands of clients: the least JS per frame it can be (a read into a
 * shared buffer, a header parsed; no stream, no Buffer per read), so that
 * their reading costs the two cores as little as possible. Connects to 127.0.0.1:`port` at `path`; `onFrame(payload)` gets
 * every binary message from the start (the master sends each in one frame),
 * pings are answered (masked with a zero key). Resolves with the socket once
 * the master answered 101.
 */
function bareConnect(port, path, { limitMs = 10_000, onFrame }) {
	return new Promise((resolve, reject) => {
		// Reads land in one buffer shared by every bare client (no Buffer per read, no stream events).
		const socket = net.connect({ host: '127.0.0.1', port, onread: { buffer: READ_BUFFER, callback: (n, buffer) => { onData(buffer.subarray(0, n)); } } });
		socket.setNoDelay(true);
		let upgraded = false;
		let buffered = null;
		const timer = setTimeout(() => fail(new Error(`client socket to port ${port}: not upgraded within ${limitMs} ms`)), limitMs);
		function fail(err) {
			clearTimeout(timer);
			socket.destroy();
			reject(err);
		}
		socket.once('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
			+ `Sec-WebSocket-Key: ${HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
		socket.on('error', (err) => { if (!upgraded) fail(err); });
		function onData(chunk) {
			let data = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
			buffered = null;
			if (!upgraded) {
				const end = data.indexOf('\r\n\r\n');
				if (end === -1) {
					buffered = data;
					return;
				}
				const status = data.toString('latin1', 0, data.indexOf('\r\n'));
				if (!status.startsWith('HTTP/1.1 101')) return fail(new Error(`client socket to port ${port}: ${status}`));
				upgraded = true;
				clearTimeout(timer);
				resolve(socket);
				data = data.subarray(end + 4);
			}
			while (data.length >= 2) {
				let length = data[1] & 0x7f;
				let at = 2;
				if (length === 126) {
					if (data.length < 4) break;
					length = data.readUInt16BE(2);
					at = 4;
				} else if (length === 127) {
					if (data.length < 10) break;
					length = Number(data.readBigUInt64BE(2));
					at = 10;
				}
				if (data.length < at + length) break;
				const opcode = data[0] & 0x0f;
				const payload = data.subarray(at, at + length);
				data = data.subarray(at + length);
				if (opcode === 0x2) onFrame(payload);
				else if (opcode === 0x9) socket.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
				else if (opcode === 0x8) socket.end();
			}
			// The rest of a frame, copied out of the shared buffer.
			if (data.length > 0) buffered = Buffer.from(data);
		}
	});
}

/**
 * A client's view of the lobby by slave name (userData.name): when each was
 * last listed and unlisted, and its id. `waitUntil(test, ms, what)` resolves
 * once `test()` holds (checked after every frame), or rejects after `ms`.
 */
class Lobby {
	/** A client of the master at `url`; resolves once it has its first list. */
	static async open(url) {
		const lobby = new Lobby();
		lobby.ws = await connect(url, 'clients', { onFrame: (frame) => lobby.onFrame(frame) });
		lobby.ws.on('error', () => {});
		await lobby.waitUntil(() => lobby.frames > 0, 10_000, `no list from ${url}`);
		return lobby;
	}

	constructor() {
		this.ws = null;
		this.frames = 0;
		this.byName = new Map(); // name → { id, listedAt, unlistedAt }
		this.nameOf = new Map(); // id → name
		this.waiters = new Set();
		this.answers = null; // the pending offer's { resolve, reject }
	}

	close() {
		this.ws?.terminate();
	}

	onFrame(frame) {
		const at = now();
		this.frames++;
		switch (frame[0]) {
			case ADD_SLAVES:
				for (const { id, userData } of addedSlaves(frame)) {
					const name = userData?.name;
					if (typeof name !== 'string') continue;
					this.byName.set(name, { id, listedAt: at, unlistedAt: null });
					this.nameOf.set(id, name);
				}
				break;
			case REMOVE_SLAVES:
				for (const id of removedSlaves(frame)) {
					const name = this.nameOf.get(id);
					const slave = name === undefined ? undefined : this.byName.get(name);
					if (slave?.id === id) slave.unlistedAt = at;
					this.nameOf.delete(id);
				}
				break;
			case ANSWER_FROM_SLAVE:
				this.answers?.resolve(at);
				break;
			case REJECT_FROM_SLAVE:
				this.answers?.reject(new Error(`offer refused (slave ${frame.readUInt32BE(1)})`));
				break;
			default:
		}
		for (const waiter of this.waiters) waiter();
	}

	/** Whether slave `name` is listed now. */
	listed(name) {
		const slave = this.byName.get(name);
		return slave !== undefined && slave.unlistedAt === null;
	}

	waitUntil(test, ms, what) {
		return new Promise((resolve, reject) => {
			const check = () => {
				if (!test()) return;
				done();
				resolve();
			};
			const timer = setTimeout(() => { done(); reject(new Error(`${what} within ${ms} ms`)); }, ms);
			const done = () => { clearTimeout(timer); this.waiters.delete(check); };
			this.waiters.add(check);
			check();
		});
	}

	/** Sends an offer to slave `id` and resolves with the round trip (ms) once its answer is back. */
	offerRoundTrip(id, sdp, ms) {
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => settle(new Error(`no answer to an offer within ${ms} ms`)), ms);
			const settle = (err, at) => {
				clearTimeout(timer);
				this.answers = null;
				if (err) reject(err);
				else resolve(msBetween(sent, at));
			};
			this.answers = { resolve: (at) => settle(null, at), reject: settle };
			const sent = now();
			this.ws.send(withId(OFFER_TO_SLAVE, id, sdp));
		});
	}
}

/** A slave on `ws` that answers every offer at once with `sdp`. */
function answerEveryOffer(ws, sdp) {
	ws.on('message', (frame) => {
		if (frame[0] === OFFER_FROM_CLIENT) ws.send(withId(ANSWER_TO_CLIENT, frame.readUInt32BE(1), sdp));
	});
}

module.exports = {
	ADD_SLAVES, REMOVE_SLAVES, now, msBetween, register, addedSlaves, removedSlaves, connect, bareConnect, Lobby, answerEveryOffer,
};
