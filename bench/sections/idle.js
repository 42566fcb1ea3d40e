'use strict';
// Idle footprint: RSS of a process running only a master, and of a slave
// registered with a master and without peers, once they have settled.
// For this package, also the master without Node (examples/master.rs; this
// checkout's only, so not for the baseline of BENCH_BASELINE).

const { spawn } = require('node:child_process');
const { once } = require('node:events');
const readline = require('node:readline');
const { processMemory } = require('../lib/machine.js');
const { startMaster, startSlave, stop } = require('../lib/procs.js');

const SETTLE_MS = 3000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** RSS (MB) of the Rust-only master binary once it listens and has settled. */
async function standaloneMasterRss(binary) {
	const child = spawn(binary, ['127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'inherit'] });
	try {
		const [line] = await once(readline.createInterface({ input: child.stdout }), 'line');
		if (!line.startsWith('listening')) throw new Error(`examples/master said ${line}`);
		await sleep(SETTLE_MS);
		return processMemory(child.pid).rss / 2 ** 20;
	} finally {
		child.stdin.end();
		child.kill('SIGKILL');
	}
}

const idle = {
	name: 'idle',
	title: 'Idle footprint (RSS)',
	async run(ctx, impl) {
		const master = await startMaster(impl, 'port');
		let slave;
		try {
			slave = await startSlave(impl, master.url);
			await sleep(SETTLE_MS);
			const figures = {
				master_rss_mb: processMemory(master.child.pid).rss / 2 ** 20,
				slave_rss_mb: processMemory(slave.child.pid).rss / 2 ** 20,
			};
			if (impl === 'ours') figures.rust_master_rss_mb = await standaloneMasterRss(ctx.masterBinary);
			return figures;
		} finally {
			await stop(slave?.child, master.child);
		}
	},
};

module.exports = { idle };
