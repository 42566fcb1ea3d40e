'use strict';
// Several masters, one lobby (#15): masters in processes of their own
// (so that they can be SIGKILLed) sharing a real redis-server, our slaves,
// and the Node MasterConnection (the native client) connecting through
// WebRTC, inside a network namespace the test makes.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { fork } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'cluster tests')) return;

const { MasterConnection, Slave } = require('..');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');
const { startRedis } = require('./redis.js');

/** The slave TTL of these tests' clusters. */
const TTL_MS = 2000;
const ICE = { iceAddresses: [NETNS_ADDRESS] };

/**
 * A master of the cluster at `redis` in a child process: resolves once it
 * listens and is in sync, with `{ url, port, node, kill(), synced() }`.
 */
async function clusterMaster(redis, port = 0) {
	const child = fork(path.join(__dirname, 'fixtures', 'cluster-master.js'), [JSON.stringify({ redis: redis.url, slaveTtl: TTL_MS, port })]);
	const messages = [];
	let wake = () => {};
	child.on('message', (m) => { messages.push(m); wake(); });
	const next = (key, what) => within(new Promise((resolve, reject) => {
		const look = () => {
			const at = messages.findIndex((m) => key in m || 'error' in m);
			if (at === -1) return;
			const [m] = messages.splice(at, 1);
			if ('error' in m) reject(new Error(m.error)); else resolve(m[key]);
		};
		wake = look;
		look();
	}), 2 * WAIT_MS, what);
	const gone = new Promise((resolve) => child.on('exit', resolve));
	const listening = await next('port', 'the master did not listen');
	const node = await next('node', 'the master did not get in sync with redis');
	return {
		url: `ws://127.0.0.1:${listening}`,
		port: listening,
		node,
		/** The next time it is in sync with Redis again. */
		synced: () => next('node', 'the master did not get back in sync with redis'),
		kill() {
			child.kill('SIGKILL');
			return gone;
		},
	};
}

/** Resolves with the first slave of `masterCon`'s list that `match` selects, once listed. */
function listed(masterCon, match, ms = 2 * WAIT_MS, what = 'the slave was not listed') {
	const found = masterCon.slaves.find((s) => s !== undefined && match(s));
	if (found) return Promise.resolve(found);
	let listener;
	const seen = new Promise((resolve) => {
		listener = (slaveCo) => { if (match(slaveCo)) resolve(slaveCo); };
		masterCon.addEventListener('slaveadded', listener);
		masterCon.addEventListener('slaverelisted', listener);
	});
	return within(seen, ms, what).finally(() => {
		masterCon.removeEventListener('slaveadded', listener);
		masterCon.removeEventListener('slaverelisted', listener);
	});
}

const named = (name) => (s) => s.userData?.name === name;
const names = (masterCon) => masterCon.slaves.filter((s) => s !== undefined).map((s) => s.userData.name).sort();

async function echoSlave(url, name) {
	const slave = await within(new Slave(url, { name }, undefined, ICE), 2 * WAIT_MS, `the slave ${name} did not register`);
	slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
		dc.addEventListener('message', (ev) => dc.send(ev.data));
	}));
	return slave;
}

describe('two masters sharing one lobby through redis', { timeout: 90_000 }, () => {
	let redis;
	let a;
	let b;
	before(async () => {
		redis = await startRedis();
		[a, b] = await Promise.all([clusterMaster(redis), clusterMaster(redis)]);
	});
	after(async () => {
		await a?.kill();
		await b?.kill();
		await redis?.kill();
	});

	it('lists a slave of A on B, connects to it through B and echoes; its removal reaches B within 1 s', async () => {
		assert.notEqual(a.node, b.node);
		const slave = await echoSlave(a.url, 'on A');
		const masterCon = new MasterConnection(b.url, ICE);
		try {
			const slaveCo = await listed(masterCon, named('on A'));
			assert.ok(slaveCo.id < 256, `slave ids stay small across the cluster (got ${slaveCo.id})`);
			const dc = await slaveCo.createDataChannel('echo');
			const echo = onceWithin(dc, 'message', WAIT_MS, 'no echo through B');
			dc.send('across masters');
			assert.equal((await echo)[0].data, 'across masters');

			const removed = onceWithin(masterCon, 'slaveremoved', 1000, 'the slave left A but B still lists it');
			await slave.close();
			assert.equal((await removed)[0].userData.name, 'on A');
			assert.deepEqual(names(masterCon), []);
		} finally {
			masterCon.close();
		}
	});

	it('lists a slave under one id on every master, and no slave twice', async () => {
		const slaves = [await echoSlave(a.url, 'one'), await echoSlave(b.url, 'two')];
		const onA = new MasterConnection(a.url, ICE);
		const onB = new MasterConnection(b.url, ICE);
		try {
			for (const masterCon of [onA, onB]) {
				await listed(masterCon, named('one'));
				await listed(masterCon, named('two'));
				assert.deepEqual(names(masterCon), ['one', 'two']);
			}
			for (const name of ['one', 'two']) {
				assert.equal(onA.slaves.find((s) => s && named(name)(s)).id, onB.slaves.find((s) => s && named(name)(s)).id);
			}
		} finally {
			onA.close();
			onB.close();
			for (const slave of slaves) await slave.close();
		}
	});

	it('redis killed and restarted: service goes on, and the lists converge with no ghost and no duplicate', async () => {
		const stay = await echoSlave(a.url, 'stays');
		const leaves = await echoSlave(a.url, 'leaves');
		const masterCon = new MasterConnection(b.url, ICE);
		try {
			await listed(masterCon, named('stays'));
			await listed(masterCon, named('leaves'));
			await redis.kill();
			// While Redis is away, a slave of A leaves and another registers.
			await leaves.close();
			const late = await echoSlave(a.url, 'late');
			// The remote slave stays listed, and a local one is still served.
			const local = await echoSlave(b.url, 'local');
			const localCo = await listed(masterCon, named('local'));
			const dc = await localCo.createDataChannel('echo');
			const echo = onceWithin(dc, 'message', WAIT_MS, 'no echo from a local slave while redis is away');
			dc.send('still here');
			assert.equal((await echo)[0].data, 'still here');

			redis = await startRedis(redis.port);
			await Promise.all([a.synced(), b.synced()]);
			await listed(masterCon, named('late'), 2 * WAIT_MS, 'a slave registered while redis was away never reached B');
			await within(new Promise((resolve) => {
				const check = () => { if (!names(masterCon).includes('leaves')) resolve(); };
				masterCon.addEventListener('slaveremoved', check);
				check();
			}), 2 * WAIT_MS, 'the slave that left while redis was away is still listed on B');
			assert.deepEqual(names(masterCon), ['late', 'local', 'stays']);
			await Promise.all([late.close(), local.close(), stay.close()]);
		} finally {
			masterCon.close();
		}
	});

	it('A SIGKILLed: its slaves leave B\'s lists within the TTL', async () => {
		const slave = await echoSlave(a.url, 'doomed');
		const masterCon = new MasterConnection(b.url, ICE);
		try {
			await listed(masterCon, named('doomed'));
			const removed = onceWithin(masterCon, 'slaveremoved', TTL_MS, `the slave of a killed master was still listed after the TTL (${TTL_MS} ms)`);
			await a.kill();
			assert.equal((await removed)[0].userData.name, 'doomed');
			a = null;
		} finally {
			masterCon.close();
			await slave.close();
		}
	});
});
