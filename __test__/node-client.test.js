'use strict';
// `require('enslavism').MasterConnection`: the browser API in Node on the
// engine's native client, against our master and slaves and against 0.9.0's
// (libwebrtc through @roamhq/wrtc): reliable and unreliable channels, two on
// one connection, a refusal, a master restart. Inside a network namespace
// the test makes.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'Node MasterConnection tests')) return;

const ours = require('..');
const old = require('enslavism-0.9.0');
const { checkSlaves, closeOldSlaves, listedSlave, oldMaster } = require('./client-helpers.js');
const { WAIT_MS, onceWithin } = require('./helpers.js');

const { MasterConnection } = ours;
/** How long a data channel may take to open, or a restarted master to be back (with margin). */
const SLOW_MS = 15_000;

/** The slave named `name` once `masterCon` lists it (see client-helpers.js), within SLOW_MS. */
const listed = (masterCon, name) => listedSlave(masterCon, name, SLOW_MS);

/** Sends `data` on `dc` and resolves with the echo, within WAIT_MS. */
async function echoed(dc, data) {
	const reply = onceWithin(dc, 'message', WAIT_MS, `no echo on channel '${dc.label}'`);
	dc.send(data);
	const [ev] = await reply;
	return ev.data;
}

/**
 * The steps a Node client goes through against the master at `url` (with an
 * "echo" and a "refuse" slave); `restart()` restarts the master and its
 * slaves. Resolves with the steps passed.
 */
async function exercise(url, restart) {
	const passed = [];
	const masterCon = new MasterConnection(url, { iceAddresses: [NETNS_ADDRESS] });
	try {
		const echo = await listed(masterCon, 'echo');
		assert.equal(masterCon.slaves[echo.id], echo);

		const reliable = await echo.createDataChannel('reliable');
		assert.equal(reliable.readyState, 'open');
		assert.throws(() => reliable.stats(), { code: 'ERR_ENSLAVISM_UNSUPPORTED' }, 'the client side does not count');
		assert.equal(await echoed(reliable, 'text stays text'), 'text stays text');
		assert.deepEqual([...new Uint8Array(await echoed(reliable, new Uint8Array([1, 2, 250])))], [1, 2, 250]);
		passed.push('reliable');

		const state = await echo.createDataChannel('state', { ordered: false, maxRetransmits: 0 });
		assert.equal(state.ordered, false);
		assert.equal(state.maxRetransmits, 0);
		assert.equal(await echoed(state, 'fast'), 'fast');
		passed.push('unreliable');

		assert.deepEqual(Object.keys(echo.dataChannels).sort(), ['reliable', 'state']);
		assert.equal(await echoed(reliable, 'still here'), 'still here');
		passed.push('both');

		const refuse = await listed(masterCon, 'refuse');
		const rejected = onceWithin(refuse, 'rejected', SLOW_MS, 'no rejected event from the refusing slave');
		await assert.rejects(refuse.createDataChannel('nope'), { code: 'REJECTED' });
		await rejected;
		passed.push('rejected');

		const closed = onceWithin(state, 'close', SLOW_MS, 'the closed channel did not fire close');
		state.close();
		await closed;
		assert.equal(state.readyState, 'closed');
		assert.deepEqual(Object.keys(echo.dataChannels), ['reliable']);
		passed.push('channel-closed');

		const down = onceWithin(masterCon, 'close', SLOW_MS, 'the client did not see the master go');
		const back = onceWithin(masterCon, 'reconnected', 2 * SLOW_MS, 'the client did not reconnect to the restarted master');
		await restart();
		await down;
		await back;
		// A channel opened before the restart goes on (it never touches the master).
		assert.equal(await echoed(reliable, 'through the restart'), 'through the restart');
		const again = await listed(masterCon, 'echo');
		const after = await again.createDataChannel('after');
		assert.equal(await echoed(after, 'new master'), 'new master');
		passed.push('after-restart');
	} finally {
		await masterCon.close();
	}
	return passed;
}

const ALL_STEPS = ['reliable', 'unreliable', 'both', 'rejected', 'channel-closed', 'after-restart'];

describe('MasterConnection in Node', { timeout: 110_000 }, () => {
	it('on our master and slaves', { timeout: 60_000 }, async () => {
		let master = new ours.Master(0, { host: '127.0.0.1' });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		const port = master.port;
		const url = `ws://127.0.0.1:${port}`;
		const { echo, refuse } = await checkSlaves(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		try {
			const passed = await exercise(url, async () => {
				await master.close();
				master = new ours.Master(port, { host: '127.0.0.1' });
				await onceWithin(master, 'listening', WAIT_MS, 'the restarted master did not start listening');
			});
			assert.deepEqual(passed, ALL_STEPS);
		} finally {
			await echo.close();
			await refuse.close();
			await master.close();
		}
	});

	it('on the 0.9.0 master and slaves (unreliable channels fall back to in-band)', { timeout: 60_000 }, async () => {
		let master = await oldMaster();
		const url = `ws://127.0.0.1:${master.port}`;
		const slaves = [await checkSlaves(old.Slave, url)];
		try {
			// 0.9.0 slaves do not reconnect: new ones register with the new
			// master (the first echo slave keeps serving its open channel).
			const passed = await exercise(url, async () => {
				master.close();
				master = await oldMaster(master.port);
				slaves.push(await checkSlaves(old.Slave, url));
			});
			assert.deepEqual(passed, ALL_STEPS);
		} finally {
			closeOldSlaves(slaves);
			master.close();
		}
	});

	it('bad arguments are TypeErrors and RangeErrors with codes; an unreachable master closes with 1006', { timeout: 20_000 }, async () => {
		assert.throws(() => new MasterConnection(8081), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new MasterConnection('ws://127.0.0.1:1', { reconnect: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new MasterConnection('ws://127.0.0.1:1', { resyncGrace: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
		assert.throws(() => new MasterConnection('ws://127.0.0.1:1', { connectTimeout: 0 }), {
			name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: 'options.connectTimeout must be an integer from 1 to 4294967295 (ms); received number 0',
		});
		assert.throws(() => new MasterConnection('ws://127.0.0.1:1', { iceAddresses: ['not an ip'] }), { code: 'ERR_INVALID_ARG_VALUE' });
		assert.throws(() => new MasterConnection('ws://127.0.0.1:1', { authData: { token: 5 } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		const masterCon = new MasterConnection('ws://127.0.0.1:1', { connectTimeout: 2000 });
		const [event] = await onceWithin(masterCon, 'close', 2 * WAIT_MS, 'an unreachable master was not reported as a close');
		assert.equal(event.code, 1006);
		assert.equal(event.error.code, 'ERR_ENSLAVISM_UNREACHABLE');
		await masterCon.close();
	});
});
