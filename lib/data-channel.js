'use strict';
// A data channel on the slave side. Code written for Node's EventEmitter
// (`dc.on('message', …)`) and for the browser's EventTarget
// (`dc.addEventListener('message', …)`, `dc.onmessage = …`) both work.

const { EventEmitter } = require('node:events');
const { codedError, describe, toBuffer } = require('./util.js');
const { readingEpoch } = require('./outbox.js');

const EVENTS = ['open', 'message', 'close', 'error', 'bufferedamountlow'];

/** A DOM-like event object: `{ type, target, … }`. */
function makeEvent(type, target, fields) {
	return { type, target, currentTarget: target, ...fields };
}

class DataChannel extends EventEmitter {
	/**
	 * @internal Created by the slave when a client opens a channel (or by a
	 * MasterConnection); `outbox` takes what it sends (lib/outbox.js).
	 */
	constructor(native, outbox, channel, info) {
		super();
		this._native = native;
		this._outbox = outbox;
		this._channel = channel;
		/** Bytes of this channel's messages in the outbox, not yet with the engine. */
		this._queued = 0;
		/** The engine's part of bufferedAmount, as read under `_engineEpoch` (lib/outbox.js, `readingEpoch`). */
		this._engineAmount = 0;
		this._engineEpoch = -1;
		this._listenerWrappers = new Map();
		this._lowThreshold = 0;
		/** The engine's figures at the close, once closed (the engine forgets the channel then). */
		this._finalStats = null;
		/** The channel's name. */
		this.label = info.label;
		/** The subprotocol ('' for none). */
		this.protocol = info.protocol ?? '';
		/** Whether messages arrive in order. */
		this.ordered = info.ordered ?? true;
		/** Retransmission limit of an unreliable channel, else null. */
		this.maxRetransmits = info.maxRetransmits ?? null;
		/** Lifetime limit (ms) of an unreliable channel, else null. */
		this.maxPacketLifeTime = info.maxPacketLifeTime ?? null;
		/** The channel's number in its connection. */
		this.id = info.id ?? null;
		/** True for a channel negotiated out of band (how the client opens unreliable channels). */
		this.negotiated = info.negotiated ?? false;
		/** 'open', 'closing' or 'closed': the client opened it before it was announced. */
		this.readyState = 'open';
		this._openDispatched = false;
		/** How binary messages are delivered: only 'arraybuffer' is supported. */
		this.binaryType = 'arraybuffer';
		for (const type of EVENTS) if (type !== 'bufferedamountlow') this[`on${type}`] = null;
		this._onbufferedamountlow = null;
		// The engine reports bufferedamountlow only once somebody listens.
		this.on('newListener', (event) => { if (event === 'bufferedamountlow') this._armLowThreshold(); });
	}

	/** `onbufferedamountlow` handler (setting one starts the reports). */
	get onbufferedamountlow() {
		return this._onbufferedamountlow;
	}

	set onbufferedamountlow(handler) {
		this._onbufferedamountlow = handler;
		if (typeof handler === 'function') this._armLowThreshold();
	}

	_armLowThreshold() {
		if (this.readyState === 'open') this._native.setBufferedAmountLowThreshold(this._channel, this._lowThreshold);
	}

	/**
	 * Bytes queued for sending and not yet handed to the transport. As in a
	 * browser, it grows at each send and falls only from one JS turn to a
	 * later one.
	 */
	get bufferedAmount() {
		if (this.readyState !== 'open') return 0;
		const epoch = readingEpoch();
		if (this._engineEpoch !== epoch) {
			this._engineAmount = this._native.bufferedAmount(this._channel);
			this._engineEpoch = epoch;
		}
		return this._engineAmount + this._queued;
	}

	/** `bufferedamountlow` fires when `bufferedAmount` falls to this many bytes. */
	get bufferedAmountLowThreshold() {
		return this._lowThreshold;
	}

	set bufferedAmountLowThreshold(value) {
		if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
			throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `bufferedAmountLowThreshold must be a non-negative integer; received ${describe(value)}`);
		}
		this._lowThreshold = value;
		this._native.setBufferedAmountLowThreshold(this._channel, value);
	}

	/**
	 * Sends a message: a string as text; a Buffer, ArrayBuffer, TypedArray or
	 * DataView as binary. Throws if `readyState` is not 'open'; once the
	 * channel is gone but before its 'close' event, the message is dropped
	 * (the engine saw the close first and its 'close' event is on the way: as
	 * in a browser, that is no error, and a game loop sending to many channels
	 * must not die of that race). The bytes are copied at once; they reach
	 * the engine with the rest of this JS turn's messages (lib/outbox.js).
	 */
	send(data) {
		if (this.readyState !== 'open') {
			throw codedError(Error, 'ERR_ENSLAVISM_CHANNEL_CLOSED', `data channel "${this.label}" is ${this.readyState}, not open`);
		}
		this._outbox.push(this, this._channel, typeof data === 'string' ? data : toBuffer(data));
	}

	/**
	 * `{ messagesIn, messagesOut, bytesIn, bytesOut }` since the channel
	 * opened, counted by the engine (payload bytes; out: handed to SCTP).
	 * Once the channel closed, its figures at the close. A slave's channels
	 * only: the Node MasterConnection's do not count (ERR_ENSLAVISM_UNSUPPORTED).
	 */
	stats() {
		if (typeof this._native.channelStats !== 'function') {
			throw codedError(Error, 'ERR_ENSLAVISM_UNSUPPORTED', 'dc.stats() counts a slave\'s channels; the Node MasterConnection\'s channels are not counted');
		}
		const read = this._finalStats ?? this._native.channelStats(this._channel);
		if (!read) return { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
		return { messagesIn: read.messagesIn, messagesOut: read.messagesOut, bytesIn: read.bytesIn, bytesOut: read.bytesOut };
	}

	/** Closes the channel; `close` follows. */
	close() {
		if (this.readyState === 'closing' || this.readyState === 'closed') return;
		this.readyState = 'closing';
		// What was sent before goes first.
		this._outbox.flush();
		this._native.closeChannel(this._channel);
	}

	/** EventTarget-style listener (`{ once: true }` supported). */
	addEventListener(type, listener, options) {
		if (typeof listener !== 'function' && typeof listener?.handleEvent !== 'function') return;
		const key = `${type}\0`;
		let byType = this._listenerWrappers.get(key);
		if (byType === undefined) this._listenerWrappers.set(key, (byType = new Map()));
		if (byType.has(listener)) return;
		const call = typeof listener === 'function' ? listener : (ev) => listener.handleEvent(ev);
		const wrapper = (ev) => {
			if (options?.once) this.removeEventListener(type, listener);
			call.call(this, ev);
		};
		byType.set(listener, wrapper);
		this.on(type, wrapper);
	}

	/** Removes a listener added with `addEventListener`. */
	removeEventListener(type, listener) {
		const byType = this._listenerWrappers.get(`${type}\0`);
		const wrapper = byType?.get(listener);
		if (wrapper === undefined) return;
		byType.delete(listener);
		this.off(type, wrapper);
	}

	/** Delivers one event to `on<type>` and to every listener. */
	_dispatch(type, fields) {
		const ev = makeEvent(type, this, fields);
		const handler = this[`on${type}`];
		try {
			if (typeof handler === 'function') handler.call(this, ev);
		} finally {
			// An 'error' without listeners must not throw, as on an EventTarget.
			if (type !== 'error' || this.listenerCount('error') > 0) this.emit(type, ev);
		}
	}

	/** 0.9.0 emitted 'open' right after 'datachannel', on an already open channel. */
	_opened() {
		if (this._openDispatched || this.readyState !== 'open') return;
		this._openDispatched = true;
		this._dispatch('open', {});
	}

	/** `data` is an ArrayBuffer (binary) or a string (text), as `ev.data` shows it. */
	_message(data) {
		this._dispatch('message', { data });
	}

	_closed(finalStats = null) {
		if (this.readyState === 'closed') return;
		this._finalStats = finalStats;
		this.readyState = 'closed';
		this._dispatch('close', {});
	}
}

module.exports = { DataChannel };
