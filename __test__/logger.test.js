'use strict';
// setLogger: the engine's logs reach the application's logger, chosen by a
// filter, in batches, and stop when it is unset; a logger never keeps the
// process alive. Loopback only: a master and a slave with no WebRTC peer.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Master, Slave, setLogger } = require('..');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

/** A master and a slave on loopback, started and stopped: what the engine logs on the way. */
async function masterAndSlave() {
	const master = new Master(0, { host: '127.0.0.1' });
	await onceWithin(master, 'listening', WAIT_MS, 'the master did not start');
	const slave = await new Slave(`ws://127.0.0.1:${master.port}`, { name: 'logged' }, undefined, { iceAddresses: ['127.0.0.1'] });
	await slave.close();
	await master.close();
	return slave;
}

/** A logger that keeps what it gets; `next(test)` resolves with the first record that passes `test`. */
function recorder() {
	const records = [];
	const waiters = [];
	const logger = (level, target, message, fields) => {
		const record = { level, target, message, fields };
		records.push(record);
		for (const w of waiters.filter((w) => w.test(record))) {
			waiters.splice(waiters.indexOf(w), 1);
			w.resolve(record);
		}
	};
	const next = (test, what) => within(new Promise((resolve) => {
		const found = records.find(test);
		if (found) resolve(found);
		else waiters.push({ test, resolve });
	}), WAIT_MS, what);
	return { logger, records, next };
}

describe('setLogger', { timeout: 30_000 }, () => {
	afterEach(() => setLogger(null));

	it('gives the engine\'s info lines to the logger by default, with their target and fields', async () => {
		const { logger, records, next } = recorder();
		setLogger(logger);
		const slave = await masterAndSlave();
		const line = await next((r) => r.message === 'the slave\'s host candidates', 'no log line about the host candidates');
		assert.equal(line.level, 'info');
		assert.equal(line.target, 'enslavism::slave::engine');
		assert.equal(line.fields.announced, '[127.0.0.1]');
		assert.equal(line.fields.ports, `[${slave.udpPorts.join(', ')}]`);
		// The default filter lets no debug line through.
		assert.deepEqual(records.filter((r) => r.level === 'debug' || r.level === 'trace'), []);
	});

	it('takes a filter, and stops when unset', async () => {
		const { logger, records, next } = recorder();
		setLogger(logger, { filter: 'enslavism::master=debug' });
		await masterAndSlave();
		const connected = await next((r) => r.message === 'peer connected', 'no debug line of the master');
		assert.equal(connected.level, 'debug');
		assert.equal(connected.fields.kind, 'slave');
		assert.ok(records.every((r) => r.target.startsWith('enslavism::master')), JSON.stringify(records));

		setLogger(null);
		// A batch already on its way arrives on the next turn; nothing after it.
		await new Promise((resolve) => setImmediate(resolve));
		const seen = records.length;
		await masterAndSlave();
		assert.equal(records.length, seen, 'no record after setLogger(null)');
	});

	it('refuses a bad logger, options or filter, and keeps the logger it had', async () => {
		const { logger, next } = recorder();
		setLogger(logger);
		assert.throws(() => setLogger('console'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /logger must be a function or null/ });
		assert.throws(() => setLogger(() => {}, { filter: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => setLogger(() => {}, { filter: '==nonsense==' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /is not a log filter/ });
		await masterAndSlave();
		await next((r) => r.message === 'the slave\'s host candidates', 'the first logger lost its records');
	});

	it('survives a logger that throws: that line is lost, with a warning, and the next ones arrive', async () => {
		const { logger, next } = recorder();
		let thrown = 0;
		setLogger((level, target, message, fields) => {
			if (message === 'peer connected' && thrown++ === 0) throw new Error('logger broke');
			logger(level, target, message, fields);
		}, { filter: 'enslavism::master=debug' });
		const warned = onceWithin(process, 'warning', WAIT_MS, 'no warning about the throwing logger');
		await masterAndSlave();
		const [warning] = await warned;
		assert.equal(warning.code, 'ERR_ENSLAVISM_LOGGER');
		assert.match(warning.message, /logger broke/);
		await next((r) => r.message === 'peer closed', 'the lines after the throw were lost');
		assert.equal(require('..').diagnostics().droppedLogRecords, 0);
	});

	it('does not keep the process alive', async () => {
		const script = `require(${JSON.stringify(path.join(__dirname, '..'))}).setLogger(() => {}); console.log('set');`;
		const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
		let out = '';
		child.stdout.on('data', (d) => { out += d; });
		const [code] = await onceWithin(child, 'exit', WAIT_MS, 'the process did not exit with a logger set');
		assert.equal(code, 0);
		assert.equal(out, 'set\n');
	});
});
