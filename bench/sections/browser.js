'use strict';
// Sections driven from headless Chromium against one slave: connection
// setup (on a clean and on a lossy network), echo round-trip times, and
// reliable throughput both ways.

const { execFileSync } = require('node:child_process');
const { percentile } = require('../lib/stats.js');
const { startMaster, startSlave, stop } = require('../lib/procs.js');

const THROUGHPUT_MS = 2000;

/** Runs `body(page, url)` against a fresh master and slave of `impl` in a new page. */
async function withSlave(ctx, impl, body) {
	const master = await startMaster(impl, 'page');
	let slave;
	const page = await ctx.browser.newPage();
	try {
		slave = await startSlave(impl, master.url);
		await page.goto(`http://127.0.0.1:${master.port}/`);
		return await body(page, master.url, slave);
	} finally {
		await page.close();
		await stop(slave?.child, master.child);
	}
}

const setup = {
	name: 'setup',
	title: 'Connection setup (createDataChannel → open)',
	async run(ctx, impl) {
		const r = await withSlave(ctx, impl, (page, url) => page.evaluate(([u, o]) => window.bench.setup(u, o),
			[url, { warmup: 3, sequential: 30, concurrent: 10, rounds: 3 }]));
		return {
			seq_p50: percentile(r.sequential, 0.5), seq_p95: percentile(r.sequential, 0.95),
			conc_p50: percentile(r.concurrent, 0.5), conc_p95: percentile(r.concurrent, 0.95),
		};
	},
};

/** Setups under loss: how many, of how many, each within how long. */
const LOSSY_SETUPS = 100;
const LOSSY_LIMIT_MS = 5000;
const LOSS_PERCENT = 10;

/**
 * Runs `body()` while every UDP datagram sent in the benchmark's namespace
 * (both ends are in it) is dropped with probability `percent`/100 (nftables).
 */
async function withUdpLoss(percent, body) {
	const table = 'bench_loss';
	execFileSync('nft', ['add', 'table', 'inet', table]);
	try {
		execFileSync('nft', ['add', 'chain', 'inet', table, 'out', '{ type filter hook output priority 0; }']);
		execFileSync('nft', ['add', 'rule', 'inet', table, 'out', 'meta', 'l4proto', 'udp', 'numgen', 'random', 'mod', '100', '<', String(percent), 'drop']);
		return await body();
	} finally {
		execFileSync('nft', ['delete', 'table', 'inet', table]);
	}
}

const lossy = {
	name: 'lossy',
	title: `Connection setup under ${LOSS_PERCENT}% random UDP loss (open and one echo within ${LOSSY_LIMIT_MS / 1000} s, ${LOSSY_SETUPS} sequential)`,
	async run(ctx, impl) {
		const r = await withSlave(ctx, impl, (page, url) => withUdpLoss(LOSS_PERCENT, () => page.evaluate(([u, o]) => window.bench.lossySetup(u, o),
			[url, { count: LOSSY_SETUPS, limitMs: LOSSY_LIMIT_MS }])));
		return { opened: r.times.length, p50: percentile(r.times, 0.5), p95: percentile(r.times, 0.95) };
	},
};

const echo = {
	name: 'echo',
	title: 'Echo round trip, 100 bytes',
	async run(ctx, impl) {
		return withSlave(ctx, impl, async (page, url) => {
			const counts = { warmup: 200, count: 2000 };
			const unreliable = await page.evaluate(([u, o, c]) => window.bench.echo(u, o, c), [url, { ordered: false, maxRetransmits: 0 }, counts]);
			const reliable = await page.evaluate(([u, o, c]) => window.bench.echo(u, o, c), [url, {}, counts]);
			return {
				unrel_p50: percentile(unreliable.rtts, 0.5), unrel_p99: percentile(unreliable.rtts, 0.99), unrel_lost: unreliable.lost,
				rel_p50: percentile(reliable.rtts, 0.5), rel_p99: percentile(reliable.rtts, 0.99),
			};
		});
	},
};

const throughput = {
	name: 'throughput',
	title: 'Throughput, reliable ordered, 100-byte messages',
	async run(ctx, impl) {
		return withSlave(ctx, impl, async (page, url) => {
			const down = await page.evaluate(([u, ms]) => window.bench.download(u, ms), [url, THROUGHPUT_MS]);
			const up = await page.evaluate(([u, ms]) => window.bench.upload(u, ms), [url, THROUGHPUT_MS]);
			if (down.received !== down.sent || up.received !== up.sent) {
				throw new Error(`${impl}: messages lost on a reliable channel (down ${down.received}/${down.sent}, up ${up.received}/${up.sent})`);
			}
			return {
				down_per_s: down.perSecond, down_cpu: down.slaveCpu * 100,
				down_us_per_msg: (down.slaveCpu * down.slaveSeconds * 1e6) / down.sent,
				up_per_s: up.perSecond, up_cpu: up.slaveCpu * 100,
				up_us_per_msg: (up.slaveCpu * up.slaveSeconds * 1e6) / up.received,
			};
		});
	},
};

module.exports = { setup, lossy, echo, throughput, LOSSY_SETUPS };
