'use strict';
// enslavism 0.9.0's Master over the Rust engine. This file adapts shapes and
// events only: routing, handshakes and sockets all live in Rust, and no JS
// runs per signalling message.

const { EventEmitter } = require('node:events');
const net = require('node:net');
const { NativeMaster, assetNotModified, assets } = require('./binding.js');
const { checkInteger, codedError, createNative, describe, emitError, toBuffer } = require('./util.js');

const PEER_PATHS = new Map([['/enslavism/slaves', 'slave'], ['/enslavism/clients', 'client']]);
const PEER_KINDS = ['slave', 'client'];
/** How long a relayed TLS socket may take to flush its last bytes once the engine closed. */
const RELAY_LINGER_MS = 5000;

/** The files the engine serves on its own port (the bundle, its source map), by path. */
let servedAssets;
/** Serves the asset at `path`, if there is one there, with the engine's validators (304 when the browser's copy is current). */
function serveAsset(path, req, res) {
	servedAssets ??= new Map(assets().map((asset) => [asset.path, asset]));
	const asset = servedAssets.get(path);
	if (asset === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
	const validators = { 'Cache-Control': asset.cacheControl, ETag: asset.etag };
	const ifNoneMatch = req.headers['if-none-match'];
	if (typeof ifNoneMatch === 'string' && assetNotModified(path, ifNoneMatch)) {
		res.writeHead(304, validators);
		res.end();
	} else {
		res.writeHead(200, { 'Content-Type': asset.contentType, ...validators });
		res.end(asset.body);
	}
	return true;
}

/** A slave's userData as the application gave it (the engine checked it is JSON). */
function parseUserData(json) {
	try {
		return JSON.parse(json);
	} catch {
		return json;
	}
}

function pathOf(url) {
	const query = url.indexOf('?');
	return query === -1 ? url : url.slice(0, query);
}

/** Numeric options (their ranges are the engine's to check). */
const NUMERIC_OPTIONS = ['maxMessageSize', 'outboundQueueLength', 'handshakeTimeout', 'authTimeout', 'heartbeatInterval',
	'heartbeatTimeout', 'maxConnections', 'maxUserDataSize', 'maxOffersPerSecond', 'maxCandidatesPerSecond', 'maxUserDataUpdatesPerSecond'];

function checkOptions(options) {
	if (options === undefined) return {};
	if (options === null || typeof options !== 'object') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options must be an object; received ${describe(options)}`);
	}
	const out = {};
	for (const key of NUMERIC_OPTIONS) checkInteger(options, key, out);
	if (options.host !== undefined) {
		if (typeof options.host !== 'string') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.host must be a string; received ${describe(options.host)}`);
		}
		out.host = options.host;
	}
	if (options.tls !== undefined) out.tls = checkTls(options.tls, 'options.tls');
	for (const key of ['metrics', 'status']) {
		if (options[key] === undefined) continue;
		if (typeof options[key] !== 'boolean') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.${key} must be a boolean; received ${describe(options[key])}`);
		}
		out[key] = options[key];
	}
	if (options.cluster !== undefined) out.cluster = checkCluster(options.cluster);
	if (options.metricsAuth !== undefined) {
		if (typeof options.metricsAuth !== 'function') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.metricsAuth must be a function; received ${describe(options.metricsAuth)}`);
		}
		out.monitoringAuth = true;
	}
	return out;
}

/** `{ redis, name?, slaveTtl?, relayTimeout?, redisTimeout? }`: types here, values in the engine. */
function checkCluster(cluster) {
	if (cluster === null || typeof cluster !== 'object') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.cluster must be an object { redis, name? }; received ${describe(cluster)}`);
	}
	const out = {};
	for (const key of ['redis', 'name']) {
		if (cluster[key] === undefined && key === 'name') continue;
		if (typeof cluster[key] !== 'string') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.cluster.${key} must be a string; received ${describe(cluster[key])}`);
		}
		out[key] = cluster[key];
	}
	for (const key of ['slaveTtl', 'relayTimeout', 'redisTimeout']) checkInteger(cluster, key, out, 'options.cluster');
	return out;
}

/** The default of the `authTimeout` option (the engine's), which bounds `metricsAuth` too. */
const DEFAULT_AUTH_TIMEOUT_MS = 10_000;

/**
 * Asks the application's `metricsAuth(req)` hook: resolves true when it
 * returned (or resolved to) a truthy value within `timeoutMs`; false when it
 * said no, threw, rejected or took too long.
 */
function askMetricsAuth(hook, req, timeoutMs) {
	let answer;
	try {
		answer = hook(req);
	} catch {
		return Promise.resolve(false);
	}
	if (answer === null || typeof answer !== 'object' || typeof answer.then !== 'function') return Promise.resolve(Boolean(answer));
	return new Promise((resolve) => {
		const timer = setTimeout(() => resolve(false), timeoutMs);
		timer.unref();
		Promise.resolve(answer).then((ok) => resolve(Boolean(ok)), () => resolve(false)).finally(() => clearTimeout(timer));
	});
}

/** `{ key, cert }` (PEM strings or Buffers) as the binding takes it. */
function checkTls(tls, name) {
	if (tls === null || typeof tls !== 'object') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `${name} must be an object { key, cert }; received ${describe(tls)}`);
	}
	const out = {};
	for (const field of ['key', 'cert']) {
		const value = tls[field];
		if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `${name}.${field} must be a PEM string or Buffer; received ${describe(value)}`);
		}
		out[field] = Buffer.from(value);
	}
	return out;
}

/**
 * A connected slave or client as the master's events show it: a small,
 * ws-like view of a WebSocket owned by the Rust engine.
 */
class PeerSocket extends EventEmitter {
	constructor(native, kind, event) {
		super();
		this._native = native;
		/** The id the master gave this peer (the one clients see for slaves). */
		this.id = event.id;
		/** `'slave'` or `'client'`. */
		this.kind = kind;
		/** Where the peer connects from, like `net.Socket`'s fields. */
		this._socket = Object.freeze({
			remoteAddress: event.remoteAddress,
			remotePort: event.remotePort,
			remoteFamily: event.remoteFamily,
		});
		this.readyState = PeerSocket.OPEN;
	}

	/** Sends `data` to the peer as one binary WebSocket message. */
	send(data, options, callback) {
		if (typeof options === 'function') callback = options;
		const buffer = toBuffer(data);
		let err;
		if (this.readyState !== PeerSocket.OPEN || !this._native.send(this.kind, this.id, buffer)) {
			err = codedError(Error, 'ERR_ENSLAVISM_CLOSED', `the ${this.kind} connection ${this.id} is not open`);
		}
		if (typeof callback === 'function') process.nextTick(callback, err);
		else if (err) throw err;
	}

	/** Closes the WebSocket (code 1000 or 3000–4999; reason up to 123 bytes). */
	close(code = 1000, reason = '') {
		if (this.readyState !== PeerSocket.OPEN) return;
		this.readyState = PeerSocket.CLOSING;
		this._native.disconnect(this.kind, this.id, code, String(reason));
	}

	/** Closes the WebSocket at once (here the same as `close()`). */
	terminate() {
		this.close();
	}
}
PeerSocket.CONNECTING = 0;
PeerSocket.OPEN = 1;
PeerSocket.CLOSING = 2;
PeerSocket.CLOSED = 3;

/**
 * The signalling server: knows every slave and client, keeps each client's
 * slave list in sync and relays WebRTC signalling between them.
 *
 * `new Master(port[, options])` listens on its own HTTP server;
 * `new Master(httpServer[, options])` attaches to an existing `http.Server`.
 */
class Master extends EventEmitter {
	constructor(portOrServer, options) {
		super();
		const nativeOptions = checkOptions(options);
		this._metricsAuth = options?.metricsAuth;
		this._authTimeout = nativeOptions.authTimeout ?? DEFAULT_AUTH_TIMEOUT_MS;
		this._monitoring = nativeOptions.metrics === true || nativeOptions.status === true;
		this._sockets = { slave: new Map(), client: new Map() };
		/**
		 * The registered slaves, by the id clients see: `{ id, userData,
		 * remoteAddress, remotePort }`, the objects the `slave…` events carry.
		 * @type {Map<number, RegisteredSlave>}
		 */
		this.slaves = new Map();
		/**
		 * In a cluster, the slaves of the other masters, listed to this
		 * master's clients too: `{ id, userData, node }` (`node`: their
		 * master's node number), the objects the `remoteslave…` events carry.
		 * @type {Map<number, RemoteSlave>}
		 */
		this.remoteSlaves = new Map();
		this._server = null;
		this._closing = null;
		const onEvent = (event) => this._onNativeEvent(event);

		if (typeof portOrServer === 'number') {
			if (!Number.isInteger(portOrServer) || portOrServer < 0 || portOrServer > 65535) {
				throw codedError(RangeError, 'ERR_SOCKET_BAD_PORT', `port must be an integer from 0 to 65535; received ${portOrServer}`);
			}
			try {
				this._native = createNative(() => NativeMaster.listen(portOrServer, nativeOptions, onEvent));
			} catch (err) {
				// A bad option or certificate is a bad argument, thrown as
				// https.createServer does (createNative made it a RangeError or TypeError).
				if (err.code === 'ERR_ENSLAVISM_CERTIFICATE' || err instanceof RangeError || err instanceof TypeError) throw err;
				// Like net.Server: a bind failure is an 'error' event, not a throw.
				this._native = null;
				process.nextTick(() => this._emitError(err));
				return;
			}
			process.nextTick(() => this.emit('listening'));
		} else if (isHttpServer(portOrServer)) {
			if (nativeOptions.tls !== undefined) {
				throw codedError(TypeError, 'ERR_INVALID_ARG_VALUE',
					'options.tls is for the master\'s own port; an attached server (http or https) keeps its own TLS');
			}
			this._native = createNative(() => NativeMaster.detached(nativeOptions, onEvent));
			this._attach(portOrServer);
		} else {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE',
				`new Master() takes a port number or an http.Server; received ${describe(portOrServer)}`);
		}

		// Tell the engine which events JS listens to, so that nobody's events cost nothing.
		this.on('newListener', (event) => this._syncObserved(event, 1));
		this.on('removeListener', (event) => this._syncObserved(event, 0));
	}

	/** The port the master listens on (its own or the attached server's); null if none. */
	get port() {
		if (this._native?.port != null) return this._native.port;
		const address = this._server?.address();
		return address && typeof address === 'object' ? address.port : null;
	}

	/**
	 * Presents a new certificate (`{ key, cert }`, PEM) from the next TLS
	 * handshake on; open connections are kept. Only for a master started
	 * with the `tls` option.
	 */
	setTLS(tls) {
		const checked = checkTls(tls, 'tls');
		if (this._native === null) throw codedError(Error, 'ERR_ENSLAVISM_CLOSED', 'the master failed to start');
		this._native.setTLS(checked);
	}

	/** Connected peers: `{ slaves, clients }` (slaves counted before they register too). */
	get peerCounts() {
		if (this._native === null) return { slaves: 0, clients: 0 };
		const [slaves, clients] = this._native.peerCounts();
		return { slaves, clients };
	}

	/**
	 * The master's figures: `{ slaves, registeredSlaves, clients }` now,
	 * and since it started `{ framesIn, framesOut, bytesIn, bytesOut, offers,
	 * answers, candidates, rejections, refusedHandshakes, droppedPeers }`.
	 * Counted in the engine; reading them costs one call.
	 */
	stats() {
		if (this._native === null) throw codedError(Error, 'ERR_ENSLAVISM_CLOSED', 'the master failed to start');
		return this._native.stats();
	}

	/** The master's metrics, as an OpenMetrics text exposition (what `/enslavism/metrics` serves). */
	metrics() {
		if (this._native === null) throw codedError(Error, 'ERR_ENSLAVISM_CLOSED', 'the master failed to start');
		return this._native.metrics();
	}

	/**
	 * Closes every connection and stops listening (an attached server is left
	 * open, with its own listeners restored). Resolves once the port is free.
	 */
	close() {
		if (this._closing === null) {
			this._detach();
			this._closing = this._native === null ? Promise.resolve() : this._native.close();
		}
		return this._closing;
	}

	_syncObserved(event, adding) {
		if (this._native === null) return;
		for (const kind of PEER_KINDS) {
			if (event !== `${kind}auth` && event !== `${kind}connection`) continue;
			// 'newListener' fires before the listener is added.
			const auth = this.listenerCount(`${kind}auth`) + (event === `${kind}auth` ? adding : 0) > 0;
			const connections = this.listenerCount(`${kind}connection`) + (event === `${kind}connection` ? adding : 0) > 0;
			this._native.setObserved(kind, auth, connections);
		}
	}

	_emitError(err) {
		emitError(this, 'master', err);
	}

	/**
	 * Runs the auth listeners as 0.9.0 did (each gets the cookies and
	 * `reject`), adding the peer's `{ remoteAddress, remotePort, headers }`.
	 * Synchronous listeners decide at once; if any returns a Promise, the
	 * decision waits for all of them (the engine bounds it by `authTimeout`):
	 * `reject` called before then, or a rejected Promise, refuses.
	 */
	_authorize(kind, event) {
		let rejected = false;
		let reason = null;
		let settled = false;
		const resolve = (refuse, why) => {
			if (settled) return;
			settled = true;
			this._native.resolveAuth(event.ticket, refuse, why);
		};
		const reject = (why) => {
			if (settled) return;
			rejected = true;
			reason = why === undefined || why === null ? null : String(why);
		};
		const info = { remoteAddress: event.remoteAddress, remotePort: event.remotePort, headers: event.headers ?? {} };
		const pending = [];
		try {
			for (const listener of this.rawListeners(`${kind}auth`)) {
				const result = Reflect.apply(listener, this, [event.cookies, reject, info]);
				if (result !== null && typeof result === 'object' && typeof result.then === 'function') pending.push(result);
			}
		} catch (err) {
			// A throwing listener refuses, and the error goes on as in 0.9.0.
			resolve(true, 'internal error');
			throw err;
		}
		if (pending.length === 0 || rejected) {
			resolve(rejected, reason);
			return;
		}
		Promise.all(pending).then(() => resolve(rejected, reason), () => resolve(true, null));
	}

	/** A request for the metrics or status page on the master's own port: `metricsAuth` decides. */
	_authorizeMonitoring(event) {
		const req = {
			method: 'GET', // or HEAD: the engine answers both alike
			url: event.path,
			headers: event.headers ?? {},
			socket: { remoteAddress: event.remoteAddress, remotePort: event.remotePort },
		};
		// The engine bounds the wait by authTimeout itself.
		askMetricsAuth(this._metricsAuth, req, this._authTimeout).then((ok) => this._native?.resolveAuth(event.ticket, !ok, null));
	}

	/** Serves a monitoring path on an attached server, if it is one that is on; true if it was. */
	_serveMonitoring(path, req, res) {
		// Other requests of the server's own do not cross into the engine.
		if (!this._monitoring || !path.startsWith('/enslavism/') || !this._native.monitoringEnabled(path)) return false;
		const allowed = this._metricsAuth === undefined ? Promise.resolve(true) : askMetricsAuth(this._metricsAuth, req, this._authTimeout);
		allowed.then((ok) => {
			const page = ok ? this._native.monitoringPage(path) : null;
			if (page === null) {
				res.writeHead(403, { 'Content-Type': 'text/plain' });
				res.end('403\nForbidden');
				return;
			}
			res.writeHead(200, { 'Content-Type': page.contentType, 'Cache-Control': 'no-store' });
			res.end(page.body);
		}).catch((err) => {
			// The master closed meanwhile, or the engine failed: no page.
			if (!res.headersSent) res.writeHead(503, { 'Content-Type': 'text/plain' });
			res.end(`503\n${err.message}`);
		});
		return true;
	}

	_onNativeEvent(event) {
		const { kind } = event;
		switch (event.type) {
			case 'auth':
				this._authorize(kind, event);
				break;
			case 'monitoringauth':
				this._authorizeMonitoring(event);
				break;
			case 'connection': {
				const socket = new PeerSocket(this._native, kind, event);
				this._sockets[kind].set(event.id, socket);
				this.emit(`${kind}connection`, socket);
				break;
			}
			case 'close': {
				const socket = this._sockets[kind].get(event.id);
				if (socket === undefined) break;
				this._sockets[kind].delete(event.id);
				socket.readyState = PeerSocket.CLOSED;
				socket.emit('close', event.code, event.reason);
				break;
			}
			case 'slaveregister':
			case 'slaveupdate':
			case 'slaveunregister':
				this._slaveEvent(this.slaves, event, { remoteAddress: event.remoteAddress, remotePort: event.remotePort });
				break;
			case 'remoteslaveregister':
			case 'remoteslaveupdate':
			case 'remoteslaveunregister':
				this._slaveEvent(this.remoteSlaves, event, { node: event.node });
				break;
			case 'clusterconnect':
				this.emit('clusterconnect', event.node);
				break;
			case 'clusterdisconnect':
				this.emit('clusterdisconnect', event.reason);
				break;
			case 'error':
				// A bug in the engine, caught: one peer was dropped, the rest goes on.
				this._emitError(codedError(Error, 'ERR_ENSLAVISM_INTERNAL', event.reason));
				break;
		}
	}

	/**
	 * A slave's `…register`, `…update` or `…unregister` event, for `map`
	 * (`this.slaves`, or `this.remoteSlaves` for other masters' slaves in a
	 * cluster): one object per slave, with `fields` from its registration,
	 * changed in place by updates (its userData, and for a remote slave its node).
	 */
	_slaveEvent(map, event, fields) {
		let slave = map.get(event.id);
		if (event.type.endsWith('unregister')) {
			if (slave === undefined) return;
			map.delete(event.id);
		} else if (event.type.endsWith('register')) {
			slave = { id: event.id, userData: parseUserData(event.userData), ...fields };
			map.set(event.id, slave);
		} else {
			if (slave === undefined) return;
			slave.userData = parseUserData(event.userData);
			if (fields.node !== undefined) slave.node = fields.node;
		}
		this.emit(event.type, slave);
	}

	_attach(server) {
		this._server = server;
		this._userRequestListeners = server.listeners('request');
		server.removeAllListeners('request');
		this._onRequest = (req, res) => {
			const path = pathOf(req.url);
			if (serveAsset(path, req, res)) return;
			if ((req.method === 'GET' || req.method === 'HEAD') && this._serveMonitoring(path, req, res)) return;
			for (const listener of this._userRequestListeners) listener.call(server, req, res);
		};
		server.on('request', this._onRequest);

		this._onUpgrade = (req, socket, head) => {
			const path = pathOf(req.url);
			if (!PEER_PATHS.has(path)) {
				// Other paths belong to other listeners; alone, we refuse them.
				if (server.listenerCount('upgrade') === 1) socket.destroy();
				return;
			}
			if (socket.encrypted) {
				this._relay(path, req, socket, head);
				return;
			}
			const fd = socket._handle?.fd;
			if (typeof fd !== 'number' || fd < 0) {
				socket.end('HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
				this._emitError(codedError(Error, 'ERR_ENSLAVISM_UNSUPPORTED_SOCKET',
					'enslavism can take over TCP and TLS sockets only: attach the master to an http.Server or https.Server, or give it its own port'));
				return;
			}
			try {
				// The engine duplicates the descriptor synchronously; Node's copy is then dropped.
				this._native.adoptUpgrade(fd, path, req.rawHeaders, head);
			} catch (err) {
				this._emitError(err);
			}
			socket.destroy();
		};
		server.on('upgrade', this._onUpgrade);
	}

	/**
	 * A TLS upgrade: Node keeps the TLS, and the plaintext goes to the engine
	 * through a socket pair, piped both ways (no JS per message beyond the
	 * streams' own).
	 */
	_relay(path, req, socket, head) {
		let relay;
		try {
			const fd = this._native.adoptRelayed(path, req.rawHeaders, head, socket.remoteAddress ?? '', socket.remotePort ?? 0);
			relay = new net.Socket({ fd, readable: true, writable: true });
		} catch (err) {
			socket.destroy();
			this._emitError(err);
			return;
		}
		socket.setNoDelay(true);
		// The client gone: the engine sees its end close.
		socket.on('error', () => relay.destroy()).on('close', () => relay.destroy());
		relay.on('error', () => socket.destroy()).on('close', () => {
			// The engine is done: `pipe` ends the TLS socket once what it
			// wrote (the close frame) is out; a client that reads nothing
			// does not keep it longer than this.
			setTimeout(() => socket.destroy(), RELAY_LINGER_MS).unref();
		});
		socket.pipe(relay);
		relay.pipe(socket);
	}

	_detach() {
		const server = this._server;
		if (server === null) return;
		server.removeListener('upgrade', this._onUpgrade);
		server.removeListener('request', this._onRequest);
		for (const listener of this._userRequestListeners) server.on('request', listener);
		this._server = null;
	}
}

function isHttpServer(value) {
	return value !== null && typeof value === 'object' && typeof value.on === 'function'
		&& typeof value.listeners === 'function' && typeof value.removeAllListeners === 'function';
}

module.exports = { Master, PeerSocket };
