'use strict';
// Master signalling: M plain WebSocket clients (the Rust load generator
// crates/enslavism/examples/master_load.rs, one thread), then one slave
// registers and leaves: time until every client has AddSlaves, then
// RemoveSlaves; the master's RSS with M clients; the connect rate. For this
// package, the same again with the master in a process without Node
// (crates/enslavism/examples/master.rs), the figures suffixed `_rust`; and
// M=1,000 with the master attached to an http.Server (`_http`) and to an
// https.Server (`_https`, the clients on wss://), and for this package on
// its own TLS port (`_tls_port`). The baseline (BENCH_BASELINE) runs all of
// it but the `_rust` rows (only this checkout's examples/master.rs is built).

const { spawn } = require('node:child_process');
const { once } = require('node:events');
const path = require('node:path');
const readline = require('node:readline');
const { processMemory } = require('../lib/machine.js');
const { startMaster, stop } = require('../lib/procs.js');
const { isEngine } = require('../lib/impls.js');

const LIMIT_MS = 180_000;

function clientCounts() {
	return (process.env.BENCH_CLIENTS ?? '1000,5000,10000,50000').split(',').map(Number);
}

/** The CA of the test certificate the https master presents. */
const TEST_CA = path.join(__dirname, '..', '..', '__test__', 'fixtures', 'tls', 'ca.pem');
/** Clients of the https row (the master attached to an https.Server, against the http one). */
const HTTPS_CLIENTS = 1000;

/**
 * Runs the load generator against `port` (over wss:// with `ca`); resolves
 * with its two JSON lines and the master's memory between them.
 */
function load(loadBinary, port, clients, masterPid, ca) {
	return new Promise((resolve, reject) => {
		const args = [`127.0.0.1:${port}`, String(clients), ...(ca ? [ca] : [])];
		const child = spawn(loadBinary, args, { stdio: ['pipe', 'pipe', 'inherit'] });
		const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`master_load: no result in ${LIMIT_MS} ms`)); }, LIMIT_MS);
		const lines = [];
		let memory;
		readline.createInterface({ input: child.stdout }).on('line', (line) => {
			lines.push(JSON.parse(line));
			if (lines.length === 1) {
				memory = processMemory(masterPid);
				child.stdin.write('go\n');
			}
		});
		child.on('exit', (code) => {
			clearTimeout(timer);
			if (code !== 0 || lines.length < 2) reject(new Error(`master_load exited with ${code}`));
			else resolve({ connect: lines[0], result: lines[1], memory });
		});
	});
}

/** This package's master without Node (crates/enslavism/examples/master.rs): { child, port }. */
async function startStandaloneMaster(binary) {
	const child = spawn(binary, ['127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'inherit'] });
	const [line] = await once(readline.createInterface({ input: child.stdout }), 'line');
	const port = Number(/^listening .*:(\d+)$/.exec(line)?.[1]);
	if (!port) throw new Error(`examples/master said ${line}`);
	return { child, port };
}

/** Runs M clients against a master; returns its figures, each key suffixed with `suffix`. */
async function measure(ctx, master, m, suffix, ca) {
	const { connect, result, memory } = await load(ctx.loadBinary, master.port, m, master.child.pid, ca);
	if (connect.failed > 0 || !result.all_added || !result.all_removed) {
		throw new Error(`${m} clients${suffix}: ${connect.failed} connections failed, all added: ${result.all_added}, all removed: ${result.all_removed}`);
	}
	return {
		[`m${m}_add_ms${suffix}`]: result.add_all_ms,
		[`m${m}_remove_ms${suffix}`]: result.remove_all_ms,
		[`m${m}_rss_mb${suffix}`]: memory.rss / 2 ** 20,
		[`m${m}_connects_per_s${suffix}`]: connect.connects_per_s,
	};
}

const signalling = {
	name: 'signalling',
	title: 'Master signalling: M WebSocket clients, one slave registers then leaves',
	async run(ctx, impl) {
		const figures = {};
		for (const m of clientCounts()) {
			const master = await startMaster(impl, 'port');
			try {
				Object.assign(figures, await measure(ctx, master, m, ''));
			} finally {
				await stop(master.child);
			}
			// The master without Node is this checkout's binary: `ours` only, not the baseline.
			if (impl !== 'ours') continue;
			const standalone = await startStandaloneMaster(ctx.masterBinary);
			try {
				Object.assign(figures, await measure(ctx, standalone, m, '_rust'));
			} finally {
				standalone.child.kill('SIGKILL');
			}
		}
		// TLS kept by Node (an https.Server), against the same master on http.
		const tlsModes = [['page', '_http', undefined], ['https', '_https', TEST_CA]];
		// 0.9.0 has no TLS of its own: this one is compared with its https.Server.
		if (isEngine(impl)) tlsModes.push(['tls-port', '_tls_port', TEST_CA]);
		for (const [mode, suffix, ca] of tlsModes) {
			const master = await startMaster(impl, mode);
			try {
				Object.assign(figures, await measure(ctx, master, HTTPS_CLIENTS, suffix, ca));
			} finally {
				await stop(master.child);
			}
		}
		return figures;
	},
};

module.exports = { signalling, clientCounts, HTTPS_CLIENTS };
