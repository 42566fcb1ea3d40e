'use strict';
// Misuse from JS: wrong argument types and values, calls on closed objects,
// and a Rust panic inside a binding call. Each is an Error with a clear
// message and a `code`; none takes the process down.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { Master, Slave } = require('..');
const binding = require('../lib/binding.js');
const { WAIT_MS, connect, onceWithin, startMaster, within } = require('./helpers.js');

describe('misuse from JS', { timeout: 60_000 }, () => {
	it('a listener that throws costs none of the other events of its batch; its error is still thrown', { timeout: 5_000 }, () => {
		const { batchHandler } = require('../lib/util.js');
		const seen = [];
		const rethrown = [];
		const nextTick = process.nextTick;
		process.nextTick = (fn) => { try { fn(); } catch (err) { rethrown.push(err.message); } };
		try {
			batchHandler((event) => { seen.push(event.type); if (event.type === 'bad') throw new Error('listener bug'); },
				(channel, data) => seen.push(`${channel}:${data}`))([{ type: 'a' }, 7, 'x', { type: 'bad' }, 8, 'y', { type: 'b' }]);
		} finally {
			process.nextTick = nextTick;
		}
		assert.deepEqual(seen, ['a', '7:x', 'bad', '8:y', 'b']);
		assert.deepEqual(rethrown, ['listener bug']);
	});

	it('a panic inside the engine is an Error with code ERR_ENSLAVISM_INTERNAL, and the process goes on', { timeout: 10_000 }, async () => {
		assert.throws(() => binding.__panicForTests(), {
			name: 'Error',
			code: 'ERR_ENSLAVISM_INTERNAL',
			message: /internal error in enslavism \(please report it\): a panic raised on purpose by a test/,
		});
		// The engine still works after it.
		const { url, close } = await startMaster('port');
		const client = await connect(`${url}/enslavism/clients`);
		await client.next();
		await close();
	});

	it('master options out of range are RangeErrors naming the option and its range (checked by the engine)', { timeout: 5_000 }, () => {
		assert.throws(() => new Master(0, { maxUserDataSize: 65536 }), {
			name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: 'options.maxUserDataSize must be an integer from 1 to 65535 (bytes); received number 65536',
		});
		assert.throws(() => new Master(0, { maxConnections: 0 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /options.maxConnections must be an integer from 1 to/ });
		assert.throws(() => new Master(0, { heartbeatInterval: 5 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /options.heartbeatInterval must be an integer from 10 to 4294967295 \(ms\)/ });
		assert.throws(() => new Master(0, { maxOffersPerSecond: 2 ** 32 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /options.maxOffersPerSecond must be an integer from 0 to 4294967295/ });
		// The cluster option: types in JS, values in the engine, every one named.
		assert.throws(() => new Master(0, { cluster: 'redis://x' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options.cluster must be an object/ });
		assert.throws(() => new Master(0, { cluster: {} }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: 'options.cluster.redis must be a string; received undefined' });
		assert.throws(() => new Master(0, { cluster: { redis: 'http://x' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /^options.cluster.redis: "http:\/\/x" is not a Redis URL/ });
		assert.throws(() => new Master(0, { cluster: { redis: 'redis://x', name: 'a b' } }), { code: 'ERR_INVALID_ARG_VALUE', message: /^options.cluster.name: must be 1 to 64 letters/ });
		assert.throws(() => new Master(0, { cluster: { redis: 'redis://x', slaveTtl: 10 } }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: 'options.cluster.slaveTtl must be an integer from 400 to 4294967295 (ms); received number 10' });
		assert.throws(() => new Master(0, { cluster: { redis: 'redis://x', relayTimeout: '1s' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options.cluster.relayTimeout/ });
		assert.throws(() => new Master(0, { heartbeatInterval: 1000, heartbeatTimeout: 1000 }), {
			name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: 'options.heartbeatTimeout: must be longer than heartbeat_interval (1000 ms); got 1000 ms',
		});
		// Types are the wrapper's to check: a non-integer, a string.
		assert.throws(() => new Master(0, { maxOffersPerSecond: 1.5 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /must be a non-negative integer; received number 1.5/ });
		assert.throws(() => new Master(0, { heartbeatTimeout: '10s' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options.heartbeatTimeout must be a number; received string 10s/ });
	});

	it('a peer socket of a closed master refuses send() with ERR_ENSLAVISM_CLOSED', { timeout: 10_000 }, async () => {
		const { master, url, close } = await startMaster('port');
		const seen = onceWithin(master, 'clientconnection', WAIT_MS, 'the master did not report the client');
		const client = await connect(`${url}/enslavism/clients`);
		const [socket] = await seen;
		await close();
		await within(client.closed, WAIT_MS, 'the client did not see the closed master close its connection');
		assert.throws(() => socket.send('late'), { code: 'ERR_ENSLAVISM_CLOSED', message: /client connection 0 is not open/ });
		const [err] = await within(new Promise((resolve) => socket.send('late', (...args) => resolve(args))), WAIT_MS,
			'send() on a closed socket did not call its callback');
		assert.equal(err.code, 'ERR_ENSLAVISM_CLOSED');
		assert.throws(() => socket.send(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.deepEqual(master.peerCounts, { slaves: 0, clients: 0 });
		await master.close(); // twice is fine
	});

	it('new Slave() checks its arguments: TypeErrors and RangeErrors with codes, bad URLs rejected', { timeout: 20_000 }, async () => {
		assert.throws(() => new Slave(8081, {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /masterWsUrl must be a string or an array of strings; received number 8081/ });
		assert.throws(() => new Slave('ws://127.0.0.1:1', undefined), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, 'password'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, { password: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { reconnect: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { offerTimeout: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { portRange: [10, 5] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options.portRange: must run from a first port to a last one/ });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { portRange: [10] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { udpPort: 4000, portRange: [5000, 5001] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /not both/ });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { udpPort: 70000 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /options.udpPort must be an integer from 0 to 65535; received number 70000/ });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { udpPort: '40000' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { maxMessageSize: 100 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /options.maxMessageSize must be an integer from 1024 to 262144 \(bytes\); received number 100/ });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { publicAddresses: ['0.0.0.0'] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options.publicAddresses: 0.0.0.0 cannot be announced/ });
		assert.throws(() => new Slave('ws://127.0.0.1:1', {}, {}, { iceServers: [{ urls: 'http://stun.example' }] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options.iceServers: "http:\/\/stun.example" is not a stun:/ });
		// A udpPort in use: the slave binds before it dials, and says so.
		const taken = require('node:dgram').createSocket('udp4');
		taken.bind(0, '127.0.0.1');
		await onceWithin(taken, 'listening', WAIT_MS, 'the UDP socket did not bind');
		try {
			await assert.rejects(new Slave('ws://127.0.0.1:1', {}, {}, { iceAddresses: ['127.0.0.1'], udpPort: taken.address().port }),
				{ code: 'EADDRINUSE', message: /cannot bind the slave's UDP socket/ });
		} finally {
			taken.close();
		}
		await assert.rejects(new Slave('http://127.0.0.1:1', {}), { code: 'ERR_INVALID_URL', message: /must start with ws:\/\/ or wss:\/\// });
		await assert.rejects(new Slave('ws://', {}), { code: 'ERR_INVALID_URL' });
		await assert.rejects(new Slave('ws://127.0.0.1:1', { big: 'x'.repeat(70000) }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
	});

	it('a closed slave can be closed again, lists no connection, and its master forgets it', { timeout: 10_000 }, async () => {
		const { master, url, close } = await startMaster('port');
		try {
			const seen = onceWithin(master, 'slaveconnection', WAIT_MS, 'the master did not report the slave');
			const slave = await new Slave(url, { name: 'short-lived' }, {}, { iceAddresses: ['127.0.0.1'] });
			const [socket] = await seen;
			const gone = onceWithin(socket, 'close', WAIT_MS, 'the master did not see the closed slave go');
			await within(slave.close(), WAIT_MS, 'slave.close() did not resolve');
			await within(slave.close(), WAIT_MS, 'a second slave.close() did not resolve');
			assert.deepEqual(slave.connections, []);
			await gone;
			assert.equal(master.peerCounts.slaves, 0);
		} finally {
			await close();
		}
	});
});
