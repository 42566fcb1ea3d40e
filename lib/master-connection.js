'use strict';
// The browser bundle's MasterConnection and SlaveConnection in Node, on the
// engine's native client (Rust, str0m): bots, load tests and
// server-to-server links need neither wrtc nor a browser. Channels have the
// slave side's DataChannel shape.

const { EventEmitter } = require('node:events');
const { NativeMasterConnection } = require('./binding.js');
const { DataChannel } = require('./data-channel.js');
const { Outbox } = require('./outbox.js');
const { authPairs, checkPeerOptions, createWithExtraCa } = require('./peer-options.js');
const { batchHandler, codedError, describe, emitError, masterUrls } = require('./util.js');

const TIMEOUT_OPTIONS = ['connectTimeout', 'signallingTimeout', 'reconnectMaxDelay', 'resyncGrace'];

/**
 * An EventEmitter whose listeners may also be added the browser bundle's way
 * (`addEventListener(type, listener)`, listeners called with plain arguments).
 */
class Emitter extends EventEmitter {
	/** Adds `listener` for `type`, as the browser bundle's classes do. */
	addEventListener(type, listener) {
		if (typeof listener === 'function') this.on(type, listener);
	}

	/** Removes a listener added with `addEventListener`. */
	removeEventListener(type, listener) {
		if (typeof listener === 'function') this.off(type, listener);
	}
}

/** One slave of the list; opens data channels to it. */
class SlaveConnection extends Emitter {
	/** @internal Made by the MasterConnection that lists the slave. */
	constructor(master, uid, id, userData) {
		super();
		this._uid = uid;
		/** The slave's id, given by the master (it changes after a reconnection). */
		this.id = id;
		/** What the slave registered with. */
		this.userData = userData;
		/** The MasterConnection this slave was listed by. */
		this.master = master;
		/** The open data channels, by name. */
		this.dataChannels = {};
	}

	/** Nothing to do ahead of time in Node: the first channel connects. Kept for the browser API. */
	connect() {}

	/** Closes the peer connection and every channel opened from it; a later channel connects again. */
	close() {
		// What was sent before goes first.
		this.master._outbox.flush();
		this.master._native.closeSlave(this._uid);
	}

	/**
	 * Opens a data channel (connecting first if needed). Resolves with the
	 * open channel; rejects if the slave refuses (`err.code === 'REJECTED'`,
	 * and `rejected` fires), if the master is not connected
	 * (`MASTER_UNAVAILABLE`), or if the connection fails or is closed first.
	 */
	async createDataChannel(dataChannelName, dcOptions = {}) {
		if (typeof dataChannelName !== 'string') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `dataChannelName must be a string; received ${describe(dataChannelName)}`);
		}
		if (dcOptions === null || typeof dcOptions !== 'object') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `dcOptions must be an object; received ${describe(dcOptions)}`);
		}
		const { ordered = true, maxRetransmits, maxPacketLifeTime, protocol = '' } = dcOptions;
		for (const [key, value] of [['maxRetransmits', maxRetransmits], ['maxPacketLifeTime', maxPacketLifeTime]]) {
			if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 65535)) {
				throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `dcOptions.${key} must be an integer from 0 to 65535; received ${describe(value)}`);
			}
		}
		const native = this.master._native;
		const opened = await native.createDataChannel(this._uid, this.id, dataChannelName,
			{ ordered: Boolean(ordered), maxRetransmits, maxPacketLifeTime, protocol: String(protocol) });
		if (opened.failure) {
			if (opened.failure.code === 'REJECTED') this.emit('rejected');
			throw codedError(Error, opened.failure.code, opened.failure.message);
		}
		const dc = new DataChannel(native, this.master._outbox, opened.channel, {
			label: dataChannelName, protocol: String(protocol), ordered: Boolean(ordered),
			maxRetransmits: maxRetransmits ?? null, maxPacketLifeTime: maxPacketLifeTime ?? null,
			negotiated: maxRetransmits !== undefined || maxPacketLifeTime !== undefined,
		});
		this.master._channels.set(opened.channel, { dc, slaveCo: this });
		this.dataChannels[dataChannelName] = dc;
		// Messages are delivered from now on: listeners added when this resolves get every one.
		native.startChannel(opened.channel);
		return dc;
	}
}

/**
 * The connection to a master: the live list of slaves, as the browser
 * bundle's `MasterConnection`, with data channels on the engine's WebRTC.
 */
class MasterConnection extends Emitter {
	/**
	 * Connects to `masterWsUrl + '/enslavism/clients'`; with an array of
	 * URLs, to the first master that answers, and to the next when it goes.
	 */
	constructor(masterWsUrl, options) {
		super();
		const urls = masterUrls(masterWsUrl);
		const native = checkPeerOptions(options, { timeouts: TIMEOUT_OPTIONS, booleans: ['reconnect'], addressLists: ['iceAddresses'] });
		const cookies = authPairs(options?.authData);
		/** The listed slaves, indexed by id. */
		this.slaves = [];
		this._byUid = new Map();
		this._channels = new Map();
		this._closing = null;
		// Messages come as (channel, data), without an event object: they are the hot path.
		const onEvent = batchHandler((event) => this._onNativeEvent(event), (channel, data) => this._channels.get(channel)?.dc._message(data));
		this._native = createWithExtraCa((opts) => NativeMasterConnection.create(urls, opts, cookies, onEvent), native);
		/** What the channels send, handed to the engine once per JS turn. */
		this._outbox = new Outbox(this._native, (err) => emitError(this, 'MasterConnection', err));
		this._native.connect().then((failure) => {
			if (failure === null || failure === undefined || this._closing !== null) return;
			// As in the browser: a connection that never opened closes with 1006.
			const error = codedError(failure.code === 'ERR_INVALID_ARG_VALUE' ? TypeError : Error, failure.code, failure.message);
			this.emit('close', { code: 1006, reason: failure.message, wasClean: false, error });
		});
	}

	/**
	 * The master connected to (or last, while reconnecting), as given to the
	 * constructor; null until the first connection.
	 * @returns {string | null}
	 */
	get masterUrl() {
		return this._native.masterUrl() ?? null;
	}

	/**
	 * Closes the connection to the master for good (no reconnection) and
	 * every connection to a slave. Resolves once done.
	 */
	close() {
		if (this._closing === null) this._outbox.flush();
		this._closing ??= this._native.close().then(() => {
			// The engine delivers nothing once closed: its channels close here.
			for (const { dc } of this._channels.values()) dc._closed();
			this._channels.clear();
		});
		return this._closing;
	}

	_onNativeEvent(event) {
		switch (event.type) {
			case 'slaveadded': {
				const slaveCo = new SlaveConnection(this, event.uid, event.id, JSON.parse(event.userData));
				this._byUid.set(event.uid, slaveCo);
				this.slaves[event.id] = slaveCo;
				this.emit('slaveadded', slaveCo);
				break;
			}
			case 'slaverelisted': {
				// Registered again after a reconnection: the same object, a new id.
				const slaveCo = this._byUid.get(event.uid);
				if (slaveCo === undefined) break;
				slaveCo.id = event.id;
				this.slaves[event.id] = slaveCo;
				this.emit('slaverelisted', slaveCo);
				break;
			}
			case 'slavekept': {
				// Listed again under its id (clustered masters): the same slave, nothing to report.
				const slaveCo = this._byUid.get(event.uid);
				if (slaveCo !== undefined) this.slaves[event.id] = slaveCo;
				break;
			}
			case 'slaveupdated': {
				const slaveCo = this._byUid.get(event.uid);
				if (slaveCo === undefined) break;
				slaveCo.userData = JSON.parse(event.userData);
				this.emit('slaveupdated', slaveCo);
				break;
			}
			case 'slaveremoved': {
				const slaveCo = this._byUid.get(event.uid);
				if (slaveCo === undefined) break;
				this._byUid.delete(event.uid);
				if (this.slaves[event.id] === slaveCo) delete this.slaves[event.id];
				this.emit('slaveremoved', slaveCo);
				break;
			}
			case 'disconnected':
				// Ids meant something to that connection only: the list fills again on reconnection.
				this.slaves = [];
				this.emit('close', { code: event.code, reason: event.reason, wasClean: event.code === 1000 });
				break;
			case 'reconnected':
				this.emit('reconnected', { url: event.url });
				break;
			case 'closed':
				// The connection ended for good (closed, or the master went and reconnection is off).
				this.close().catch((err) => emitError(this, 'MasterConnection', err));
				break;
			case 'bufferedamountlow': {
				// Stale by the time it gets here if JS has queued more since (as on the slave).
				const dc = this._channels.get(event.channel)?.dc;
				if (dc && dc.bufferedAmount <= dc.bufferedAmountLowThreshold) dc._dispatch('bufferedamountlow', {});
				break;
			}
			case 'channelclose': {
				const entry = this._channels.get(event.channel);
				if (entry === undefined) break;
				this._channels.delete(event.channel);
				if (entry.slaveCo.dataChannels[entry.dc.label] === entry.dc) delete entry.slaveCo.dataChannels[entry.dc.label];
				entry.dc._closed();
				break;
			}
		}
	}
}

module.exports = { MasterConnection, SlaveConnection };
