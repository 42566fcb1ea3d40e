'use strict';
// The native Rust client, through the `bots` example: N bots connect to a
// slave from the master's list, open a channel, send at a fixed rate and time
// the echoes. Against our master and slave, and against enslavism 0.9.0's
// (libwebrtc through @roamhq/wrtc), reliable and unreliable. Everything runs
// inside a network namespace the test makes.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'native client tests')) return;

const { checkSlaves, closeOldSlaves, echoSlave, example, oldMaster, runBots } = require('./client-helpers.js');
const { WAIT_MS, onceWithin } = require('./helpers.js');
const ours = require('..');
const old = require('enslavism-0.9.0');

/** How long client_check may run (its steps, a master restart included, take a few seconds). */
const CHECK_TIMEOUT_MS = 60_000;


/**
 * Runs examples/client_check against the master at `url` (see that file for
 * its steps); calls `restart()` when it asks for the master to restart.
 * Resolves with the steps it passed, in order; rejects, naming the steps
 * passed so far, if it has not finished within CHECK_TIMEOUT_MS.
 */
function runCheck(url, restart) {
	return new Promise((resolve, reject) => {
		const child = spawn(example('client_check'), [url, NETNS_ADDRESS], { stdio: ['ignore', 'pipe', 'pipe'] });
		const passed = [];
		let output = '';
		const timer = setTimeout(() => {
			child.kill('SIGKILL');
			reject(new Error(`client_check did not finish within ${CHECK_TIMEOUT_MS} ms (passed: ${passed.join(', ') || 'nothing'}):\n${output}`));
		}, CHECK_TIMEOUT_MS);
		child.stdout.setEncoding('utf8');
		child.stdout.on('data', (chunk) => {
			output += chunk;
			for (const line of chunk.split('\n')) {
				if (line.startsWith('ok ')) passed.push(line.slice(3));
				if (line === 'restart-master') restart().catch((err) => { child.kill(); reject(err); });
			}
		});
		child.stderr.on('data', (d) => { output += d; });
		child.on('error', reject);
		child.on('close', (code) => {
			clearTimeout(timer);
			if (code === 0) resolve(passed);
			else reject(new Error(`client_check exited with ${code}:\n${output}`));
		});
	});
}

const ALL_STEPS = ['reliable', 'unreliable', 'both', 'rejected', 'reconnected', 'after-restart'];



/** What sane figures for `bots` bots sending for a few seconds are. */
function assertSane(report, bots, { reliable }) {
	assert.equal(report.bots, bots, JSON.stringify(report));
	assert.equal(report.connected, bots, JSON.stringify(report));
	assert.equal(report.failed, 0, JSON.stringify(report));
	assert.ok(report.sent > bots * 10, JSON.stringify(report));
	if (reliable) assert.equal(report.lost, 0, JSON.stringify(report));
	// Loopback in a namespace loses nothing, unreliable or not; a little slack for the last echoes.
	else assert.ok(report.received >= report.sent * 0.95, JSON.stringify(report));
	for (const figure of [report.setup_ms, report.rtt_ms]) {
		assert.ok(figure.p50 > 0 && figure.p50 <= figure.p95 && figure.p95 <= figure.p99, JSON.stringify(report));
	}
}

describe('native client (bots)', { timeout: 270_000 }, () => {
	it('50 bots on our master and slave, reliable, then 20 unreliable', { timeout: 60_000 }, async () => {
		const master = new ours.Master(0, { host: '127.0.0.1' });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		const url = `ws://127.0.0.1:${master.port}`;
		const { slave, labels } = await echoSlave(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		try {
			const reliable = await runBots(url, ['--bots', '50', '--seconds', '3', '--ramp', '200']);
			assertSane(reliable.report, 50, { reliable: true });
			const unreliable = await runBots(url, ['--bots', '20', '--seconds', '2', '--unreliable', '--label', 'state']);
			assertSane(unreliable.report, 20, { reliable: false });
			assert.equal(labels.filter((l) => l === 'echo').length, 50);
			assert.equal(labels.filter((l) => l === 'state').length, 20);
		} finally {
			await slave.close();
			await master.close();
		}
	});

	it('bots replaced while running (churn) all connect', { timeout: 60_000 }, async () => {
		const master = new ours.Master(0, { host: '127.0.0.1' });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		const url = `ws://127.0.0.1:${master.port}`;
		const { slave } = await echoSlave(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		try {
			const { report } = await runBots(url, ['--bots', '10', '--seconds', '3', '--churn', '4']);
			assert.equal(report.failed, 0, JSON.stringify(report));
			assert.ok(report.bots >= 15 && report.connected === report.bots, JSON.stringify(report));
		} finally {
			await slave.close();
			await master.close();
		}
	});

	it('bots on the 0.9.0 master and slave, reliable and unreliable (in-band fallback)', { timeout: 60_000 }, async () => {
		const master = await oldMaster();
		const url = `ws://127.0.0.1:${master.port}`;
		const { slave, labels } = await echoSlave(old.Slave, url);
		try {
			assertSane((await runBots(url, ['--bots', '5', '--seconds', '2'])).report, 5, { reliable: true });
			assertSane((await runBots(url, ['--bots', '5', '--seconds', '2', '--unreliable', '--label', 'state'])).report, 5, { reliable: false });
			assert.deepEqual(labels.sort(), [...Array(5).fill('echo'), ...Array(5).fill('state')]);
		} finally {
			slave.ws.terminate();
			for (const c of slave.connections) c.clientCon.close();
			master.close();
		}
	});

	it('the client against our master and slaves: two channels, rejection, a master restart', { timeout: 90_000 }, async () => {
		let master = new ours.Master(0, { host: '127.0.0.1' });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		const port = master.port;
		const url = `ws://127.0.0.1:${port}`;
		const { echo, refuse } = await checkSlaves(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		try {
			// Our slaves reconnect by themselves.
			const passed = await runCheck(url, async () => {
				await master.close();
				master = new ours.Master(port, { host: '127.0.0.1' });
				await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
			});
			assert.deepEqual(passed, ALL_STEPS);
		} finally {
			await echo.close();
			await refuse.close();
			await master.close();
		}
	});

	it('the client against the 0.9.0 master and slaves: two channels, rejection, a master restart', { timeout: 90_000 }, async () => {
		let master = await oldMaster();
		const url = `ws://127.0.0.1:${master.port}`;
		const slaves = [await checkSlaves(old.Slave, url)];
		const closeOld = () => {
			closeOldSlaves(slaves);
			master.close();
		};
		try {
			// 0.9.0 slaves do not reconnect: new ones register with the new master.
			const passed = await runCheck(url, async () => {
				closeOld();
				master = await oldMaster(master.port);
				slaves.push(await checkSlaves(old.Slave, url));
			});
			assert.deepEqual(passed, ALL_STEPS);
		} finally {
			closeOld();
		}
	});

	it('bad arguments: a usage error, exit code 2', { timeout: 15_000 }, () => {
		const result = require('node:child_process').spawnSync(example('bots'), ['--bots', 'x'], { encoding: 'utf8', timeout: 10_000 });
		assert.equal(result.status, 2);
		assert.match(result.stderr, /--bots: "x" is not a number/);
	});
});
