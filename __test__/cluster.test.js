'use strict';
// Several masters, one lobby (#15): masters in processes of their own
// (so that they can be SIGKILLed) sharing a real redis-server, our slaves,
// and the Node MasterConnection (the native client) connecting through
// WebRTC, inside a network namespace the test makes.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { fork } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'cluster tests')) return;

const { MasterConnection, Slave } = require('..');
const { launchChromium } = require('./chromium.js');
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

/** Resolves once a slave that `match` selects leaves `masterCon`'s list. */
function removed(masterCon, match, ms, what) {
	let listener;
	const gone = new Promise((resolve) => {
		listener = (slaveCo) => { if (match(slaveCo)) resolve(); };
		masterCon.addEventListener('slaveremoved', listener);
	});
	return within(gone, ms, what).finally(() => masterCon.removeEventListener('slaveremoved', listener));
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
			assert.ok(slaveCo.id < 1024, `slave ids stay small across the cluster (got ${slaveCo.id})`);
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
			const stayCo = await listed(masterCon, named('stays'));
			await listed(masterCon, named('leaves'));
			const removals = [];
			masterCon.addEventListener('slaveremoved', (slaveCo) => removals.push(slaveCo.userData.name));
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
			// The remote slave stayed listed throughout: never removed, the same object.
			assert.deepEqual(removals, ['leaves']);
			assert.equal(masterCon.slaves.find((s) => s !== undefined && named('stays')(s)), stayCo);
			await Promise.all([late.close(), local.close(), stay.close()]);
		} finally {
			masterCon.close();
		}
	});

	it('A SIGKILLed: its slaves leave B\'s lists within the TTL, and a slave given both URLs is listed again through B within 5 s, once', async () => {
		const doomed = await echoSlave(a.url, 'doomed');
		const mover = await echoSlave([a.url, b.url], 'mover');
		const masterCon = new MasterConnection(b.url, ICE);
		try {
			await listed(masterCon, named('doomed'));
			const before = await listed(masterCon, named('mover'));
			const doomedGone = removed(masterCon, named('doomed'), TTL_MS, `the slave of a killed master was still listed after the TTL (${TTL_MS} ms)`);
			const moved = onceWithin(mover, 'reconnected', 5000, 'the slave given both URLs did not register with B');
			const settled = within(new Promise((resolve) => {
				const check = () => {
					const listedNames = names(masterCon);
					if (listedNames.length === 1 && listedNames[0] === 'mover' && masterCon.slaves.find((s) => s?.userData.name === 'mover') !== before) resolve();
				};
				for (const type of ['slaveadded', 'slaveremoved', 'slaverelisted']) masterCon.addEventListener(type, check);
			}), 5000, 'B did not list the slave that moved, exactly once, within 5 s');
			await a.kill();
			a = null;
			await doomedGone;
			assert.deepEqual((await moved)[0], { url: b.url });
			await settled;
			const dc = await masterCon.slaves.find((s) => s?.userData.name === 'mover').createDataChannel('echo');
			const echo = onceWithin(dc, 'message', WAIT_MS, 'no echo from the slave that moved');
			dc.send('moved');
			assert.equal((await echo)[0].data, 'moved');
		} finally {
			masterCon.close();
			await doomed.close();
			await mover.close();
		}
	});
});

const PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>enslavism cluster test</title></head><body></body></html>`;

describe('a browser on a killed master moves to another of the cluster', { timeout: 90_000 }, () => {
	it('keeps the slaves listed under their ids, without a duplicate, and its channel goes on', { timeout: 80_000 }, async () => {
		const redis = await startRedis();
		const [a, b] = await Promise.all([clusterMaster(redis), clusterMaster(redis)]);
		// The page comes from a server of the test's, which outlives A.
		const server = http.createServer((req, res) => {
			res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
			res.end(PAGE);
		});
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		const fixed = await echoSlave(b.url, 'fixed');
		const mover = await echoSlave([a.url, b.url], 'mover');
		const browser = await launchChromium();
		try {
			const page = await browser.newPage();
			await page.goto(`http://127.0.0.1:${server.address().port}/`);
			await page.addScriptTag({ url: `http://127.0.0.1:${b.port}/enslavism/client.js` });
			const first = await within(page.evaluate(async (urls) => {
				const masterCon = new MasterConnection(urls, { reconnectMaxDelay: 200 });
				const byName = (name) => masterCon.slaves.find((s) => s?.userData.name === name);
				while (!byName('fixed') || !byName('mover')) await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve, { once: true }));
				const fixedCo = byName('fixed');
				// Signalling relayed from A to the slave on B.
				const dc = await fixedCo.createDataChannel('live');
				const events = [];
				for (const type of ['slaveadded', 'slaveremoved', 'slaverelisted', 'slaveupdated']) {
					masterCon.addEventListener(type, (slaveCo) => events.push(`${type} ${slaveCo.userData.name}`));
				}
				const reconnected = new Promise((resolve) => masterCon.addEventListener('reconnected', resolve));
				window.cluster = { masterCon, byName, fixedCo, dc, events, reconnected };
				return { url: masterCon.masterUrl, fixedId: fixedCo.id };
			}, [a.url, b.url]), 20_000, 'the page did not list both slaves through A and open a channel');
			assert.equal(first.url, a.url);

			await a.kill();
			const after = await within(page.evaluate(async () => {
				const { masterCon, byName, fixedCo, dc, events, reconnected } = window.cluster;
				const info = await reconnected;
				// The slave that moved registers with B in its own time.
				const names = () => masterCon.slaves.filter(Boolean).map((s) => s.userData.name).sort().join();
				while (names() !== 'fixed,mover') {
					await new Promise((resolve) => {
						for (const type of ['slaveadded', 'slaveremoved', 'slaverelisted']) masterCon.addEventListener(type, resolve, { once: true });
					});
				}
				const echo = new Promise((resolve) => dc.addEventListener('message', (ev) => resolve(ev.data), { once: true }));
				dc.send('after the move');
				const state = { info, names: names(), fixedKept: byName('fixed') === fixedCo && fixedCo.id === masterCon.slaves.indexOf(fixedCo), events, echo: await echo };
				masterCon.close();
				return state;
			}), 20_000, 'the page did not move to B, list both slaves once and get an echo');
			assert.deepEqual(after.info, { url: b.url });
			assert.equal(after.names, 'fixed,mover', 'each slave listed once');
			assert.ok(after.fixedKept, 'the slave on B is the same object under the same id');
			assert.ok(after.events.every((e) => !e.endsWith(' fixed')), `nothing happened to the slave on B: ${after.events}`);
			assert.equal(after.echo, 'after the move');
		} finally {
			await browser.close();
			await fixed.close();
			await mover.close();
			await a.kill();
			await b.kill();
			await redis.kill();
			server.closeAllConnections();
			server.close();
		}
	});
});
