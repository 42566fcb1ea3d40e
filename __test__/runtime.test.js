'use strict';
// ENSLAVISM_THREADS: the engine's tokio runtime gets that many worker threads.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

/** tokio's worker threads in napi-rs's default runtime are named so (15 characters of a thread name). */
const DEFAULT_NAME = 'tokio-rt-worker';
/** How long one master process may take to start, count its threads and exit. */
const CHILD_TIMEOUT_MS = 30_000;

/**
 * Starts a master in a fresh Node process with `env`, and returns the names
 * of its engine worker threads (ours or the default runtime's) once there
 * are `expected` of them.
 */
function engineThreads(env, expected) {
	let out;
	try {
		out = runMaster(env, expected);
	} catch (err) {
		if (err.code === 'ETIMEDOUT') throw new Error(`a master process (${JSON.stringify(env)}) did not report its threads within ${CHILD_TIMEOUT_MS} ms`);
		throw err;
	}
	return JSON.parse(out);
}

/** Runs that master process; returns what it printed (its engine threads, as JSON). */
function runMaster(env, expected) {
	return execFileSync(process.execPath, ['-e', `
		const fs = require('node:fs');
		const { Master } = require(${JSON.stringify(path.join(__dirname, '..'))});
		const m = new Master(0, { host: '127.0.0.1' });
		// A new thread names itself once it runs, a moment after the runtime
		// spawned it; no event says when, so look again (bounded) until all are named.
		const threads = () => fs.readdirSync('/proc/self/task')
			.map((t) => { try { return fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim(); } catch { return ''; } })
			.filter((n) => n === 'enslavism' || n === ${JSON.stringify(DEFAULT_NAME)});
		m.on('listening', async () => {
			const deadline = Date.now() + 5000;
			while (threads().length < ${expected} && Date.now() < deadline) {
				await new Promise((r) => setTimeout(r, 10));
			}
			console.log(JSON.stringify(threads().sort()));
			await m.close();
		});
	`], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: CHILD_TIMEOUT_MS });
}

// Synchronous: each child's CHILD_TIMEOUT_MS is the real bound; the test's timeout adds them up.
it('ENSLAVISM_THREADS sets the number of engine worker threads', { skip: process.platform !== 'linux' && 'reads /proc', timeout: 3 * CHILD_TIMEOUT_MS }, () => {
	assert.deepEqual(engineThreads({ ENSLAVISM_THREADS: '3' }, 3), ['enslavism', 'enslavism', 'enslavism']);
	// Unset or unusable: the default runtime, one worker per core.
	const cores = os.availableParallelism();
	const defaults = Array(cores).fill(DEFAULT_NAME);
	assert.deepEqual(engineThreads({ ENSLAVISM_THREADS: '' }, cores), defaults);
	assert.deepEqual(engineThreads({ ENSLAVISM_THREADS: 'many' }, cores), defaults);
});
