'use strict';
// ENSLAVISM_THREADS: the engine's tokio runtime gets that many worker threads.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

/** Starts a master in a fresh Node process with `env`; returns the names of its engine worker threads. */
function engineWorkers(env) {
	const out = execFileSync(process.execPath, ['-e', `
		const fs = require('node:fs');
		const { Master } = require(${JSON.stringify(path.join(__dirname, '..'))});
		const m = new Master(0, { host: '127.0.0.1' });
		m.on('listening', async () => {
			const names = fs.readdirSync('/proc/self/task').map((t) => fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim());
			console.log(JSON.stringify(names.filter((n) => n === 'enslavism')));
			await m.close();
		});
	`], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
	return JSON.parse(out);
}

it('ENSLAVISM_THREADS sets the number of engine worker threads', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
	assert.deepEqual(engineWorkers({ ENSLAVISM_THREADS: '3' }), ['enslavism', 'enslavism', 'enslavism']);
	// Unset or unusable: the default runtime, whose threads have napi-rs's name.
	assert.deepEqual(engineWorkers({ ENSLAVISM_THREADS: '' }), []);
	assert.deepEqual(engineWorkers({ ENSLAVISM_THREADS: 'many' }), []);
});
