'use strict';
// Options shared by the classes that make WebRTC peers (Slave, and the Node
// MasterConnection): their JS types are checked here; values are validated
// by the engine.

const fs = require('node:fs');
const { checkInteger, codedError, createNative, describe } = require('./util.js');

/**
 * Checks the types of `options` and copies what the engine takes: the
 * `timeouts` (integers of ms), the `booleans`, the `addressLists` (arrays
 * of IP strings), `iceServers` and `ca`; adds the NODE_EXTRA_CA_CERTS file.
 */
function checkPeerOptions(options, { timeouts, booleans, addressLists }) {
	const out = {};
	const extra = extraCaCerts();
	if (extra !== null) out.extraCaCerts = extra;
	if (options === undefined) return out;
	if (options === null || typeof options !== 'object') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options must be an object; received ${describe(options)}`);
	}
	for (const key of timeouts) checkInteger(options, key, out);
	for (const key of booleans) {
		const value = options[key];
		if (value === undefined) continue;
		if (typeof value !== 'boolean') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.${key} must be a boolean; received ${describe(value)}`);
		}
		out[key] = value;
	}
	for (const key of addressLists) {
		const list = options[key];
		if (list === undefined) continue;
		if (!Array.isArray(list) || !list.every((a) => typeof a === 'string')) {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.${key} must be an array of IP address strings`);
		}
		out[key] = list;
	}
	if (options.iceServers !== undefined) {
		if (!Array.isArray(options.iceServers)) {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', 'options.iceServers must be an array of RTCIceServer objects');
		}
		out.iceServers = options.iceServers.map((s) => ({
			urls: Array.isArray(s?.urls) ? s.urls.map(String) : [String(s?.urls)],
			username: s?.username === undefined ? undefined : String(s.username),
			credential: s?.credential === undefined ? undefined : String(s.credential),
		}));
	}
	if (options.ca !== undefined) {
		const list = Array.isArray(options.ca) ? options.ca : [options.ca];
		out.ca = list.map((pem, i) => {
			if (typeof pem !== 'string' && !Buffer.isBuffer(pem)) {
				throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE',
					`options.ca must be a PEM string, a Buffer, or an array of them; received ${describe(pem)}${Array.isArray(options.ca) ? ` at index ${i}` : ''}`);
			}
			return Buffer.from(pem);
		});
	}
	return out;
}

let extraCaCache;
/**
 * The file named by NODE_EXTRA_CA_CERTS, read once as Node does; an
 * unreadable file is a warning and is skipped, as Node does too.
 */
function extraCaCerts() {
	if (extraCaCache !== undefined) return extraCaCache;
	extraCaCache = null;
	const file = process.env.NODE_EXTRA_CA_CERTS;
	if (file) {
		try {
			extraCaCache = fs.readFileSync(file);
		} catch (err) {
			process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${err.message}`);
		}
	}
	return extraCaCache;
}

/**
 * `create(options)`, the engine's constructor. An unusable NODE_EXTRA_CA_CERTS
 * file is, as in Node, a warning, and the file is ignored from then on.
 */
function createWithExtraCa(create, options) {
	try {
		return createNative(() => create(options));
	} catch (err) {
		if (options.extraCaCerts === undefined || err.code !== 'ERR_ENSLAVISM_CERTIFICATE' || !err.message.includes('NODE_EXTRA_CA_CERTS')) throw err;
		process.emitWarning(`Ignoring extra certs from \`${process.env.NODE_EXTRA_CA_CERTS}\`, load failed: ${err.message}`);
		extraCaCache = null;
		const { extraCaCerts: _ignored, ...rest } = options;
		return createNative(() => create(rest));
	}
}

/** `authData` (an object of strings, sent as cookies) as `[name, value, …]`. */
function authPairs(authData) {
	if (authData === undefined || authData === null) return [];
	if (typeof authData !== 'object' || Array.isArray(authData)) {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `authData must be an object of strings; received ${describe(authData)}`);
	}
	const pairs = [];
	for (const [name, value] of Object.entries(authData)) {
		if (typeof value !== 'string') {
			throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `authData.${name} must be a string; received ${describe(value)}`);
		}
		pairs.push(name, value);
	}
	return pairs;
}

module.exports = { authPairs, checkPeerOptions, createWithExtraCa };
