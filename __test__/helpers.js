'use strict';
// Test helpers: plain `ws` sockets as slaves and clients, a frame queue that
// waits on events (never on timers), an independent encoder of the 0.9.0
// wire format (so the tests do not trust the engine's own codec), and
// bounded waits: a regression fails in seconds, saying what did not happen.

const { once } = require('node:events');
const http = require('node:http');
const WebSocket = require('ws');
const { Master } = require('..');

/** How long a wait on loopback may take before the test fails (a frame, a close, an event). */
const WAIT_MS = 5_000;

/**
 * `promise`, bounded: rejects once `ms` have passed with an Error saying
 * `what` did not happen (written as the failure, e.g. 'the master did not
 * drop the silent client'), followed by "within N ms". The timer goes as
 * soon as `promise` settles. A wait is often armed before the step that
 * should end it: if that step fails first, its rejection is not reported a
 * second time as unhandled (awaiting it still throws).
 */
function within(promise, ms, what) {
	let timer;
	const late = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
	});
	return handled(Promise.race([promise, late]).finally(() => clearTimeout(timer)));
}

/**
 * The arguments of the next `event` of `emitter`, within `ms` (else an
 * Error saying `what` did not happen). An EventEmitter is listened to as
 * `events.once` does (its 'error' event rejects too); an object with only
 * addEventListener (the browser bundle's classes) with that, the listener
 * removed once it fired or the time is up.
 */
function onceWithin(emitter, event, ms, what = `no '${event}' event`) {
	if (typeof emitter.on === 'function') {
		const abort = new AbortController();
		return handled(within(once(emitter, event, { signal: abort.signal }), ms, what).finally(() => abort.abort()));
	}
	let listener;
	const fired = new Promise((resolve) => {
		listener = (...args) => resolve(args);
		emitter.addEventListener(event, listener);
	});
	return handled(within(fired, ms, what).finally(() => emitter.removeEventListener(event, listener)));
}

/** `promise`, with its rejection marked as handled (see {@link within}). */
function handled(promise) {
	promise.catch(() => {});
	return promise;
}

const T = Object.freeze({
	register: 0, addSlaves: 1, removeSlaves: 2, offerToSlave: 3, offerFromClient: 4,
	answerToClient: 5, answerFromSlave: 6, iceCandidateToSlave: 7, iceCandidateFromClient: 8,
	iceCandidateToClient: 9, iceCandidateFromSlave: 10, rejectToClient: 11, rejectFromSlave: 12,
});

const frame = {
	register: (userData) => Buffer.concat([Buffer.from([T.register]), Buffer.from(JSON.stringify(userData))]),
	sdp(type, id, sdp) {
		const b = Buffer.alloc(5);
		b[0] = type;
		b.writeUInt32BE(id, 1);
		return Buffer.concat([b, Buffer.from(sdp)]);
	},
	candidate(type, id, c) {
		const head = Buffer.alloc(6);
		head[0] = type;
		head.writeUInt32BE(id, 1);
		if (c === null) return head;
		const mid = Buffer.from(c.sdpMid);
		head[5] = mid.length;
		const index = Buffer.alloc(2);
		index.writeUInt16BE(c.sdpMLineIndex);
		return Buffer.concat([head, mid, index, Buffer.from(c.candidate)]);
	},
	reject(type, id) {
		const b = Buffer.alloc(5);
		b[0] = type;
		b.writeUInt32BE(id, 1);
		return b;
	},
};

/** Decodes the master → peer frames the tests look at. */
function decode(buf) {
	const type = buf[0];
	switch (type) {
		case T.addSlaves: {
			const slaves = [];
			for (let o = 1; o < buf.length;) {
				const id = buf.readUInt32BE(o);
				const len = buf.readUInt16BE(o + 4);
				slaves.push({ id, userData: JSON.parse(buf.subarray(o + 6, o + 6 + len).toString()) });
				o += 6 + len;
			}
			return { type, slaves };
		}
		case T.removeSlaves:
			return { type, ids: JSON.parse(buf.subarray(1).toString()) };
		case T.offerFromClient:
		case T.answerFromSlave:
			return { type, id: buf.readUInt32BE(1), sdp: buf.subarray(5).toString() };
		case T.iceCandidateFromClient:
		case T.iceCandidateFromSlave: {
			const id = buf.readUInt32BE(1);
			const midLen = buf[5];
			if (midLen === 0) return { type, id, candidate: null };
			return {
				type, id, candidate: {
					sdpMid: buf.subarray(6, 6 + midLen).toString(),
					sdpMLineIndex: buf.readUInt16BE(6 + midLen),
					candidate: buf.subarray(8 + midLen).toString(),
				},
			};
		}
		case T.rejectFromSlave:
			return { type, id: buf.readUInt32BE(1), length: buf.length };
		default:
			return { type, raw: buf };
	}
}

/** A WebSocket whose incoming frames are awaited one by one. */
class Peer {
	constructor(ws) {
		this.ws = ws;
		this.frames = [];
		this.waiters = [];
		/** Resolves with `{ code, reason }` once the WebSocket is closed (unbounded: wrap it in `within`). */
		this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
		ws.on('message', (data, isBinary) => {
			const item = isBinary ? Buffer.from(data) : { text: data.toString() };
			const waiter = this.waiters.shift();
			if (waiter) waiter(item);
			else this.frames.push(item);
		});
	}

	/** The next frame, decoded; rejects if none comes within `ms`. */
	async next(ms = WAIT_MS) {
		if (this.frames.length > 0) return decode(this.frames.shift());
		let waiter;
		const arrived = new Promise((resolve) => {
			waiter = resolve;
			this.waiters.push(resolve);
		});
		try {
			return decode(await within(arrived, ms, `no frame came on ${this.ws.url}`));
		} finally {
			// A wait that timed out must not take the next frame.
			const i = this.waiters.indexOf(waiter);
			if (i !== -1) this.waiters.splice(i, 1);
		}
	}

	send(buf) {
		this.ws.send(buf);
	}

	/** Closes the WebSocket; resolves with `{ code, reason }` once closed, within `ms`. */
	close(ms = WAIT_MS) {
		this.ws.close();
		return within(this.closed, ms, `the WebSocket on ${this.ws.url} did not close`);
	}
}

/**
 * Opens a WebSocket; resolves with a Peer once open, rejects with the HTTP
 * refusal, or once `timeout` ms have passed.
 */
function connect(url, { cookie, timeout = 2 * WAIT_MS } = {}) {
	const ws = new WebSocket(url, cookie ? { headers: { Cookie: cookie } } : undefined);
	const peer = new Peer(ws);
	return within(new Promise((resolve, reject) => {
		ws.once('open', () => resolve(peer));
		ws.once('unexpected-response', (req, res) => {
			let body = '';
			res.on('data', (d) => { body += d; });
			res.on('end', () => {
				const err = new Error(`refused with ${res.statusCode}`);
				err.status = res.statusCode;
				err.body = body;
				reject(err);
			});
		});
		ws.once('error', reject);
	}), timeout, `the WebSocket to ${url} did not open`).catch((err) => {
		ws.terminate();
		throw err;
	});
}

/**
 * Starts a master on loopback, either on its own port or attached to an
 * http.Server; `mode` is 'port' or 'server'. Resolves with
 * `{ master, url, httpUrl, server, close }`.
 */
async function startMaster(mode, options = {}) {
	if (mode === 'port') {
		const master = new Master(0, { host: '127.0.0.1', ...options });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		const { port } = master;
		return {
			master,
			url: `ws://127.0.0.1:${port}`,
			httpUrl: `http://127.0.0.1:${port}`,
			close: () => master.close(),
		};
	}
	const server = http.createServer((req, res) => {
		res.writeHead(200, { 'Content-Type': 'text/plain' });
		res.end(`user handler: ${req.url}`);
	});
	await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
	const master = new Master(server, options);
	const { port } = server.address();
	return {
		master,
		server,
		url: `ws://127.0.0.1:${port}`,
		httpUrl: `http://127.0.0.1:${port}`,
		close: async () => {
			await master.close();
			server.closeAllConnections();
			await new Promise((resolve) => server.close(resolve));
		},
	};
}

/** A slave socket that has registered `userData`, and a client that saw it. */
async function registeredSlave(url, userData, watcher) {
	const slave = await connect(`${url}/enslavism/slaves`);
	slave.send(frame.register(userData));
	const added = await watcher.next();
	return { slave, id: added.slaves[0].id, added };
}

module.exports = { T, WAIT_MS, frame, decode, Peer, connect, onceWithin, registeredSlave, startMaster, within };
