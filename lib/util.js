'use strict';
// Small helpers shared by the JS wrappers: coded errors and argument checks.

/** An error of `ErrorClass` with a Node-style `code`. */
function codedError(ErrorClass, code, message) {
	const err = new ErrorClass(message);
	err.code = code;
	return err;
}

/** How a received value is named in an error message. */
function describe(value) {
	if (value === null) return 'null';
	if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
	return `${typeof value} ${String(value)}`;
}

/** The bytes of anything `send()` accepts; throws a TypeError otherwise. */
function toBuffer(data) {
	if (Buffer.isBuffer(data)) return data;
	if (typeof data === 'string') return Buffer.from(data, 'utf8');
	if (data instanceof ArrayBuffer) return Buffer.from(data);
	if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
	throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE',
		`data must be a string, Buffer, ArrayBuffer, TypedArray or DataView; received ${describe(data)}`);
}

/**
 * Copies `options[key]` to `out` when set, after checking that it is an
 * integer from `min` to `max` (`unit` is named in the message).
 */
function checkInteger(options, key, min, max, out, unit = '') {
	const value = options[key];
	if (value === undefined) return;
	if (!Number.isInteger(value) || value < min || value > max) {
		throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `options.${key} must be an integer from ${min} to ${max}${unit}; received ${describe(value)}`);
	}
	out[key] = value;
}

/**
 * Emits `err` as an 'error' event when somebody listens; otherwise a process
 * warning (`who` names the emitter): an error of ours never crashes the process.
 */
function emitError(emitter, who, err) {
	if (emitter.listenerCount('error') > 0) emitter.emit('error', err);
	else process.emitWarning(`enslavism ${who}: ${err.message} (listen to 'error' to handle this)`, { code: err.code });
}

module.exports = { checkInteger, codedError, describe, emitError, toBuffer };
