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
		// A new thread names itself once it runs, a moment after the runtime
		// spawned it; no event says when, so look again (bounded) until the
		// count settles at what was asked for.
		const workers = () => fs.readdirSync('/proc/self/task')
			.map((t) => { try { return fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim(); } catch { return ''; } })
			.filter((n) => n === 'enslavism');
		m.on('listening', async () => {
			const deadline = Date.now() + 5000;
			while (workers().length < ${JSON.stringify(Number(env.ENSLAVISM_THREADS) || 0)} && Date.now() < deadline) {
				await new Promise((r) => setTimeout(r, 10));
			}
			console.log(JSON.stringify(workers()));
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
