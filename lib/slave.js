'use strict';
// enslavism 0.9.0's Slave and ClientConnection over the Rust engine (str0m).
// Signalling and WebRTC run in Rust; this file turns engine events into the
// 0.9.0 objects and events.

const { EventEmitter } = require('node:events');
const { NativeSlave } = require('./binding.js');
const { DataChannel } = require('./data-channel.js');
const { Outbox } = require('./outbox.js');
const { authPairs, checkPeerOptions, createWithExtraCa } = require('./peer-options.js');
const { batchHandler, checkCount, checkInteger, codedError, describe, emitError, masterUrls } = require('./util.js');

const TIMEOUT_OPTIONS = ['connectTimeout', 'offerTimeout', 'iceDisconnectedTimeout', 'iceFailedTimeout', 'peerSetupTimeout', 'reconnectMaxDelay', 'heartbeatInterval', 'heartbeatTimeout'];
const BOOLEAN_OPTIONS = ['iceNudge', 'reconnect', 'metricsPerConnection'];

/** The options as the engine's slave takes them (see lib/peer-options.js). */
function nativeOptions(options) {
	const out = checkPeerOptions(options, { timeouts: TIMEOUT_OPTIONS, booleans: BOOLEAN_OPTIONS, addressLists: ['iceAddresses', 'publicAddresses'] });
	if (options !== undefined) {
		checkInteger(options, 'udpPort', out);
		checkInteger(options, 'maxMessageSize', out);
		checkInteger(options, 'metricsPort', out);
		if (options.metricsHost !== undefined) {
			if (typeof options.metricsHost !== 'string') {
				throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.metricsHost must be an IP address string; received ${describe(options.metricsHost)}`);
			}
			out.metricsHost = options.metricsHost;
		}
		if (options.portRange !== undefined) {
			const r = options.portRange;
			if (!Array.isArray(r) || r.length !== 2) {
				throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.portRange must be an array [first, last]; received ${describe(r)}`);
			}
			r.forEach((port, i) => checkCount(`options.portRange[${i}]`, port));
			out.portRange = r;
		}
	}
	return out;
}

/** The Error of a failed engine call. */
function failureError(failure) {
	return codedError(failure.code === 'ERR_INVALID_ARG_VALUE' ? TypeError : Error, failure.code, failure.message);
}

/** One client connected to this slave; emits `datachannel` and `close`. */
class ClientConnection extends EventEmitter {
	/** @internal */
	constructor(slave, id, session) {
		super();
		this._session = session;
		/** The client's id, given by the master. */
		this.id = id;
		/** The slave this client is connected to. */
		this.slave = slave;
		/** The client's open data channels, by label. */
		this.dataChannels = {};
	}

	/**
	 * The connection's figures, asked of the engine: `{ rttMs, messagesIn,
	 * messagesOut, bytesIn, bytesOut, packetsIn, packetsOut, transportBytesIn,
	 * transportBytesOut, packetsLost, retransmissions, selectedCandidatePair }`
	 * (see doc/api.md for what each is, and which the engine cannot give).
	 * Rejects with `ERR_ENSLAVISM_CLOSED` once the connection is gone.
	 * @returns {Promise<object>}
	 */
	getStats() {
		return this.slave._native.connectionStats(this._session).then(({ stats, failure }) => {
			if (failure) throw codedError(Error, failure.code, failure.message);
			return {
				rttMs: stats.rttMs ?? null,
				messagesIn: stats.messagesIn,
				messagesOut: stats.messagesOut,
				bytesIn: stats.bytesIn,
				bytesOut: stats.bytesOut,
				packetsIn: stats.packetsIn,
				packetsOut: stats.packetsOut,
				transportBytesIn: stats.transportBytesIn,
				transportBytesOut: stats.transportBytesOut,
				packetsLost: stats.packetsLost ?? null,
				retransmissions: stats.retransmissions ?? null,
				selectedCandidatePair: stats.selectedCandidatePair ?? null,
			};
		});
	}
}

/**
 * A game server registered with a master. `new Slave(masterWsUrl, userData[, authData[, options]])`
 * returns a Promise of the Slave, as in 0.9.0. `masterWsUrl` may be an array
 * of URLs: masters to fail over to, in order of preference.
 */
class Slave extends EventEmitter {
	constructor(masterWsUrl, userData, authData, options) {
		super();
		const urls = masterUrls(masterWsUrl);
		const json = JSON.stringify(userData);
		if (json === undefined) {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `userData must be a JSON value; received ${describe(userData)}`);
		}
		const pairs = authPairs(authData);
		// The latest userData set, and the last one the master took (a refused
		// update falls back to it).
		this._userData = userData;
		this._acceptedUserData = userData;
		/** The connected clients. */
		this.connections = [];
		// By session: a reconnecting client keeps its id but gets a new session.
		this._clients = new Map();
		this._channels = new Map();
		this._closing = null;
		// Messages come as (channel, data), without an event object: they are the hot path.
		const onEvent = batchHandler((event) => this._onNativeEvent(event), (channel, data) => this._channels.get(channel)?.dc._message(data));
		this._native = createWithExtraCa((native) => NativeSlave.create(native, onEvent), nativeOptions(options));
		/** What the channels send, handed to the engine once per JS turn. */
		this._outbox = new Outbox(this._native, (err) => emitError(this, 'slave', err));
		this.on('newListener', (event) => { if (event === 'offer') this._native.setOffersObserved(true); });
		this.on('removeListener', (event) => {
			if (event === 'offer') this._native.setOffersObserved(this.listenerCount('offer') > 0);
		});
		// 0.9.0's constructor returned a Promise of the slave; so does this one.
		return this._native.connect(urls, json, pairs).then((failure) => {
			if (failure === null || failure === undefined) return this;
			const err = failureError(failure);
			const status = /HTTP (\d{3})/.exec(failure.message);
			if (status) err.status = Number(status[1]);
			throw err;
		});
	}

	/**
	 * The master the slave is registered with (or was last, while it
	 * reconnects), as given to the constructor.
	 * @returns {string}
	 */
	get masterUrl() {
		return this._native.masterUrl();
	}

	/** The latest userData set (by the constructor or `setUserData`). */
	get userData() {
		return this._userData;
	}

	/**
	 * Replaces the userData every client's list shows. Resolves once the
	 * master has it (a master of ours then has it in every client's list);
	 * rejects with `ERR_ENSLAVISM_USERDATA_REFUSED` if the master refused it
	 * (`userData` is then the previous value again). On a 0.9.0 master the
	 * slave registers again: see doc/api.md.
	 * @param {*} userData any JSON value
	 * @returns {Promise<void>}
	 */
	setUserData(userData) {
		const json = JSON.stringify(userData);
		if (json === undefined) {
			return Promise.reject(codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `userData must be a JSON value; received ${describe(userData)}`));
		}
		this._userData = userData;
		return this._native.setUserData(json).then((failure) => {
			if (failure === null || failure === undefined) {
				if (this._userData === userData) this._acceptedUserData = userData;
				return;
			}
			if (this._userData === userData) this._userData = this._acceptedUserData;
			throw failureError(failure);
		});
	}

	/**
	 * The UDP ports the slave's peer connections arrive on: one per shard
	 * (`udpPort` gives one; by default one per core). Empty until connected.
	 * @returns {number[]}
	 */
	get udpPorts() {
		return this._native.udpPorts();
	}

	/**
	 * The slave's figures, read from the engine's counters (no JS runs per
	 * message): `{ connections, channels, messagesIn, messagesOut, bytesIn,
	 * bytesOut, setupMs: { count, p50, p95, p99 } }`. Gauges are now, counters
	 * since the slave started; setupMs runs from an offer's arrival to the
	 * connection's first open channel (null before the first).
	 * @returns {object}
	 */
	stats() {
		const s = this._native.stats();
		const { count, p50, p95, p99 } = s.setupMs;
		return {
			connections: s.connections,
			channels: s.channels,
			messagesIn: s.messagesIn,
			messagesOut: s.messagesOut,
			bytesIn: s.bytesIn,
			bytesOut: s.bytesOut,
			setupMs: { count, p50: p50 ?? null, p95: p95 ?? null, p99: p99 ?? null },
		};
	}

	/**
	 * The same figures as Prometheus metrics: OpenMetrics text, names prefixed
	 * `enslavism_slave_` (what `metricsPort` serves at `/metrics`).
	 * @returns {string}
	 */
	metrics() {
		return this._native.metrics();
	}

	/**
	 * The port the metrics listener is bound to (`metricsPort`; 0 there gives
	 * a free one), or null without one.
	 * @returns {number | null}
	 */
	get metricsPort() {
		return this._native.metricsPort() ?? null;
	}

	/**
	 * Closes every client connection and the link to the master. Resolves once
	 * done; the process can then exit by itself.
	 */
	close() {
		if (this._closing === null) {
			// What was sent before goes first.
			this._outbox.flush();
			this._closing = this._native.close();
		}
		return this._closing;
	}

	_onNativeEvent(event) {
		switch (event.type) {
			case 'offer': {
				let accept = true;
				let threw = true;
				try {
					this.emit('offer', () => { accept = false; }, { clientId: event.clientId });
					threw = false;
				} finally {
					this._native.resolveOffer(event.ticket, accept && !threw);
				}
				break;
			}
			case 'connection': {
				const client = new ClientConnection(this, event.clientId, event.session);
				this._clients.set(event.session, client);
				this.connections.push(client);
				this.emit('connection', client);
				break;
			}
			case 'datachannel': {
				const client = this._clients.get(event.session);
				const dc = new DataChannel(this._native, this._outbox, event.channel, event);
				this._channels.set(event.channel, { dc, client });
				if (client) {
					client.dataChannels[dc.label] = dc;
					client.emit('datachannel', dc);
				}
				// As in 0.9.0: 'open' right after 'datachannel', on an already open
				// channel, so that listeners added in 'datachannel' get it.
				dc._opened();
				break;
			}
			case 'bufferedamountlow': {
				// The engine drains while JS runs: a drop to the threshold between
				// two sends of one loop is stale by the time it gets here. The next
				// drop to the threshold is reported again.
				const dc = this._channels.get(event.channel)?.dc;
				if (dc && dc.bufferedAmount <= dc.bufferedAmountLowThreshold) dc._dispatch('bufferedamountlow', {});
				break;
			}
			case 'error': {
				const entry = this._channels.get(event.channel);
				if (entry) entry.dc._dispatch('error', { error: codedError(Error, 'ERR_ENSLAVISM_CHANNEL', event.reason) });
				break;
			}
			case 'channelclose': {
				const entry = this._channels.get(event.channel);
				if (entry === undefined) break;
				this._channels.delete(event.channel);
				if (entry.client && entry.client.dataChannels[entry.dc.label] === entry.dc) delete entry.client.dataChannels[entry.dc.label];
				entry.dc._closed(event.stats);
				break;
			}
			case 'connectionclose': {
				const client = this._clients.get(event.session);
				if (client === undefined) break;
				this._clients.delete(event.session);
				const i = this.connections.indexOf(client);
				if (i !== -1) this.connections.splice(i, 1);
				client.emit('close');
				break;
			}
			case 'masterclose':
				this.emit('disconnected', { code: event.code, reason: event.reason });
				break;
			case 'masterreconnect':
				this.emit('reconnected', { url: event.url });
				break;
			case 'internalerror': {
				// A bug in the engine, caught: one peer (or the master link) is lost, the rest goes on.
				emitError(this, 'slave', codedError(Error, 'ERR_ENSLAVISM_INTERNAL', event.reason));
				break;
			}
		}
	}
}

module.exports = { Slave, ClientConnection };
