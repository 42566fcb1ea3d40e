'use strict';
// Game fan-out: the slave sends a stamped 200-byte state at 30 Hz to each of
// K Chromium peers, each peer sends stamped 100-byte inputs at 60 Hz, over
// unreliable unordered channels. Measured over a window once all are
// connected: slave CPU, RSS and threads, one-way latency both ways (the stamps
// are wall-clock times of one machine), and loss.

const { once } = require('node:events');
const { percentile } = require('../lib/stats.js');
const { processLoad } = require('../lib/machine.js');
const { startMaster, startSlave, stop } = require('../lib/procs.js');

const PEERS_PER_PAGE = 50;
const CONNECTS_IN_FLIGHT_PER_PAGE = 5;
const SETTLE_MS = 2000;
const WINDOW_MS = Number(process.env.BENCH_FANOUT_WINDOW_MS ?? 5000);
const DRAIN_MS = 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The K values to run (BENCH_FANOUT=1,10,50 narrows them). */
function peerCounts() {
	return (process.env.BENCH_FANOUT ?? '1,10,50,200,500').split(',').map(Number);
}

async function runK(ctx, impl, k) {
	const master = await startMaster(impl, 'page');
	const slave = await startSlave(impl, master.url).catch(async (err) => { await stop(master.child); throw err; });
	const contexts = [];
	try {
		// Pages of at most 50 peers, each in its own browser context (its own
		// renderer): Chromium allows a few hundred peer connections per renderer.
		const pages = [];
		for (let left = k; left > 0; left -= PEERS_PER_PAGE) {
			const context = await ctx.browser.newContext();
			contexts.push(context);
			const page = await context.newPage();
			await page.goto(`http://127.0.0.1:${master.port}/`);
			pages.push({ page, count: Math.min(PEERS_PER_PAGE, left) });
		}
		// A slave that dies (0.9.0 runs out of file descriptors at a few hundred peers) ends the step at once.
		const died = once(slave.child, 'exit').then(([code, signal]) => { throw new Error(`the ${impl} slave exited (${signal ?? code}) with ${k} peers`); });
		died.catch(() => {}); // it also settles when the slave is stopped below
		const started = await Promise.race([died, Promise.all(pages.map(({ page, count }) => page.evaluate(([u, n, p]) => window.bench.fanout.start(u, n, p),
			[master.url, count, CONNECTS_IN_FLIGHT_PER_PAGE])))]);
		const connected = started.reduce((sum, s) => sum + s.connected, 0);
		await sleep(SETTLE_MS);
		const from = performance.timeOrigin + performance.now() + 200;
		const to = from + WINDOW_MS;
		await slave.ask({ cmd: 'window', from, to });
		await Promise.all(pages.map(({ page }) => page.evaluate(([f, t]) => window.bench.fanout.window(f, t), [from, to])));
		await sleep(from - (performance.timeOrigin + performance.now()));
		const { cpu: slaveCpu, memory } = await processLoad(slave.child.pid, Promise.race([died, sleep(WINDOW_MS)]));
		await sleep(DRAIN_MS);
		const slaveReport = await slave.ask({ cmd: 'report' });
		const pageReports = await Promise.all(pages.map(({ page }) => page.evaluate(() => window.bench.fanout.report())));
		await Promise.all(pages.map(({ page }) => page.evaluate(() => window.bench.fanout.stop())));
		const stateLatencies = pageReports.flatMap((r) => r.latencies);
		const inputsSent = pageReports.reduce((sum, r) => sum + r.inputsSent, 0);
		const statesReceived = pageReports.reduce((sum, r) => sum + r.statesReceived, 0);
		return {
			[`k${k}_connected`]: connected,
			[`k${k}_cpu`]: slaveCpu * 100,
			[`k${k}_rss_mb`]: memory.rss / 2 ** 20,
			[`k${k}_threads`]: memory.threads,
			[`k${k}_state_p50`]: percentile(stateLatencies, 0.5),
			[`k${k}_state_p99`]: percentile(stateLatencies, 0.99),
			[`k${k}_input_p50`]: percentile(slaveReport.latencies, 0.5),
			[`k${k}_input_p99`]: percentile(slaveReport.latencies, 0.99),
			[`k${k}_state_loss`]: 100 * (1 - statesReceived / slaveReport.statesSent),
			[`k${k}_input_loss`]: 100 * (1 - slaveReport.inputs / inputsSent),
			// Below 60 × K, the peers (Chromium on the same cores) could not send at game rate.
			[`k${k}_inputs_per_s`]: slaveReport.inputs / (WINDOW_MS / 1000),
		};
	} finally {
		await Promise.all(contexts.map((c) => c.close()));
		await stop(slave.child, master.child);
	}
}

const fanout = {
	name: 'fanout',
	title: 'Game fan-out: 200-byte state at 30 Hz to K peers, 100-byte inputs at 60 Hz from each',
	async run(ctx, impl) {
		const figures = {};
		for (const k of peerCounts()) {
			try {
				Object.assign(figures, await runK(ctx, impl, k));
			} catch (err) {
				// Larger K would fail the same way: keep what was measured, say where it stopped.
				figures[`k${k}_connected`] = 0;
				console.log(`bench: fanout ${impl}, K=${k}: ${err.message}`);
				break;
			}
		}
		return figures;
	},
};

module.exports = { fanout, peerCounts };
