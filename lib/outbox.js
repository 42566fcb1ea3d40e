'use strict';
// What the data channels of one slave (or one MasterConnection) send during
// a JS turn, handed to the engine in one call when the turn ends (a
// microtask) instead of one call per message: a call cost 1.2–1.3 µs of the
// JS thread (napi-rs's per-call checks and the channel look-up), a send now
// 0.14–0.56 µs (bench/probes/send_cost.js). Each message is copied in at
// send(), as a browser does, so a Buffer reused for the next message sends
// what it held.

/** Bytes held before a batch goes out without waiting for the turn's end. */
const FLUSH_BYTES = 1 << 20;
/** The buffer's size at first, and again after a message made it grow past 2 × FLUSH_BYTES. */
const INITIAL_BYTES = 64 * 1024;
/** Numbers per message in `meta`: channel, byte length, 1 for text. */
const STRIDE = 3;

/**
 * Changes once at the end of each JS turn in which it was read. A channel's
 * bufferedAmount read from the engine under one value is what a browser
 * shows for the rest of the turn: the engine's part grows only through a
 * flush, which adds what it hands over to the figure kept (see `flush`),
 * and what the engine sends meanwhile a browser too shows only from its
 * next task. A read then crosses to the engine once per turn, not at every
 * call of a send loop (0.36–0.59 µs each).
 */
let epoch = 0;
let epochEnds = false;
const endEpoch = () => {
	epochEnds = false;
	epoch++;
};

/** The current value (see `epoch`). */
function readingEpoch() {
	if (!epochEnds) {
		epochEnds = true;
		queueMicrotask(endEpoch);
	}
	return epoch;
}

class Outbox {
	/**
	 * `native` takes the batches (`sendBatch(bytes, meta)`); `onError(err)`
	 * hears of a batch the engine refused (a bug of ours: it must not crash
	 * the process, nor be thrown at a send or a close that did nothing wrong).
	 */
	constructor(native, onError) {
		this._native = native;
		this._onError = onError;
		this._bytes = Buffer.allocUnsafe(INITIAL_BYTES);
		this._used = 0;
		this._meta = new Float64Array(STRIDE * 256);
		this._count = 0;
		/** The channels with bytes here (their `_queued` is cleared at the flush). */
		this._channels = new Set();
		this._scheduled = false;
		this._flushLater = () => {
			this._scheduled = false;
			this.flush();
		};
	}

	/**
	 * Copies a message of `dc` (engine channel `channel`) in: `data` is a
	 * string (sent as UTF-8 text) or a Uint8Array.
	 */
	push(dc, channel, data) {
		const isText = typeof data === 'string';
		// A string takes at most 3 bytes per UTF-16 unit; what it took is known once written.
		const room = isText ? data.length * 3 : data.length;
		if (this._used + room > FLUSH_BYTES && this._count > 0) this.flush();
		this._reserve(room);
		let len;
		if (isText) {
			len = this._bytes.write(data, this._used, 'utf8');
		} else {
			this._bytes.set(data, this._used);
			len = data.length;
		}
		this._used += len;
		if (STRIDE * (this._count + 1) > this._meta.length) {
			const meta = new Float64Array(this._meta.length * 2);
			meta.set(this._meta);
			this._meta = meta;
		}
		const at = STRIDE * this._count++;
		this._meta[at] = channel;
		this._meta[at + 1] = len;
		this._meta[at + 2] = isText ? 1 : 0;
		dc._queued += len;
		this._channels.add(dc);
		if (!this._scheduled) {
			this._scheduled = true;
			queueMicrotask(this._flushLater);
		}
	}

	/** Hands what is held to the engine now (before a close, which must come after). */
	flush() {
		if (this._count === 0) return;
		const bytes = this._bytes.subarray(0, this._used);
		const meta = this._meta.subarray(0, STRIDE * this._count);
		this._used = 0;
		this._count = 0;
		for (const dc of this._channels) {
			// Handed over: a figure kept for this turn now counts it as the engine's.
			if (dc._engineEpoch === epoch) dc._engineAmount += dc._queued;
			dc._queued = 0;
		}
		this._channels.clear();
		try {
			// The engine copies the messages out before it returns.
			this._native.sendBatch(bytes, meta);
		} catch (err) {
			this._onError(err);
		}
		// One huge message must not pin its size for the slave's lifetime.
		if (this._bytes.length > 2 * FLUSH_BYTES) this._bytes = Buffer.allocUnsafe(INITIAL_BYTES);
	}

	_reserve(room) {
		if (this._used + room <= this._bytes.length) return;
		let size = this._bytes.length * 2;
		while (size < this._used + room) size *= 2;
		const bytes = Buffer.allocUnsafe(size);
		this._bytes.copy(bytes, 0, 0, this._used);
		this._bytes = bytes;
	}
}

module.exports = { Outbox, readingEpoch };
