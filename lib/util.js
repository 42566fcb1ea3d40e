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

module.exports = { codedError, describe, toBuffer };
