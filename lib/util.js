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
	if (value === null || value === undefined) return String(value);
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
 * Throws unless `value` is a non-negative integer (a count, a size, a port or
 * milliseconds): the type the engine takes. Its range is the engine's to check.
 */
function checkCount(name, value) {
	if (typeof value !== 'number') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `${name} must be a number; received ${describe(value)}`);
	}
	if (!Number.isSafeInteger(value) || value < 0) {
		throw codedError(RangeError, 'ERR_OUT_OF_RANGE', `${name} must be a non-negative integer; received ${describe(value)}`);
	}
}

/** Copies `options[key]` to `out` when set, after {@link checkCount} (`name`: how errors call `options`). */
function checkInteger(options, key, out, name = 'options') {
	const value = options[key];
	if (value === undefined) return;
	checkCount(`${name}.${key}`, value);
	out[key] = value;
}

/**
 * The callback of a binding object's event batches: in order, each event
 * object goes to `onEvent`, and each channel id followed by its data to
 * `onMessage`. A listener that throws does not cost the rest of the batch:
 * its error is thrown again on its own, as an uncaught listener error is.
 */
function batchHandler(onEvent, onMessage) {
	return (batch) => {
		for (let i = 0; i < batch.length; i++) {
			const entry = batch[i];
			try {
				if (typeof entry === 'number') onMessage(entry, batch[++i]);
				else onEvent(entry);
			} catch (err) {
				process.nextTick(() => { throw err; });
			}
		}
	};
}

/** The JS classes of the errors the engine reports by code. */
const ERROR_CLASSES = { ERR_OUT_OF_RANGE: RangeError, ERR_INVALID_ARG_VALUE: TypeError };

/**
 * `create()` (a constructor of the binding), with the options the engine
 * refuses thrown as Node throws its own: a RangeError for a number out of
 * range, a TypeError for another unusable value, each with its `code`.
 */
function createNative(create) {
	try {
		return create();
	} catch (err) {
		const ErrorClass = ERROR_CLASSES[err?.code];
		if (ErrorClass === undefined) throw err;
		throw codedError(ErrorClass, err.code, err.message);
	}
}

/**
 * The master URLs a constructor was given: one string, or a non-empty array
 * of strings (masters to fail over to, in order of preference). Their format
 * is the engine's to check, once.
 */
function masterUrls(value) {
	const list = typeof value === 'string' ? [value] : value;
	if (!Array.isArray(list) || list.some((url) => typeof url !== 'string')) {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `masterWsUrl must be a string or an array of strings; received ${describe(value)}`);
	}
	if (list.length === 0) throw codedError(TypeError, 'ERR_INVALID_ARG_VALUE', 'masterWsUrl must name at least one master');
	return [...list];
}

/**
 * Emits `err` as an 'error' event when somebody listens; otherwise a process
 * warning (`who` names the emitter): an error of ours never crashes the process.
 */
function emitError(emitter, who, err) {
	if (emitter.listenerCount('error') > 0) emitter.emit('error', err);
	else process.emitWarning(`enslavism ${who}: ${err.message} (listen to 'error' to handle this)`, { code: err.code });
}

module.exports = { batchHandler, checkCount, checkInteger, codedError, createNative, describe, emitError, masterUrls, toBuffer };
