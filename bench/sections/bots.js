'use strict';
// Fan-out with native bots (crates/enslavism/examples/bots.rs) instead of
// Chromium, so that K = 200, 500, 1,000 peers fit on the machine: each bot
// sends 100-byte inputs at 60 Hz on an unreliable unordered channel and the
// slave echoes each one (so 60 Hz out per peer too). The bots run in their own
// process pinned to one core (taskset), the slave is pinned to the other.
// Measured once every bot is connected, over a window: slave CPU, RSS and
// threads; from the bots: echo RTT over the whole run, and loss.
//
// Then issue #17's game load (BENCH_BOTS_GAME, K=1000): the slave sends each
// bot a stamped 200-byte state at 30 Hz, each bot sends stamped 100-byte
// inputs at 60 Hz, on reliable ordered channels; inside a window that starts
// once every bot is connected, the slave times the inputs (one-way, the
// wall clock of one machine) and the bots time the states; loss counts the
// messages stamped inside the window that never arrived.
//
// First, a burst (BENCH_BOTS_BURST, K=200): K bots started at once, each
// opening one channel, which issue #17 asks to complete all; their setup
// times run from each bot's createDataChannel to its channel's open, so
// the p99 is about how long the last of them took.

const { spawn, execFileSync } = require('node:child_process');
const { once } = require('node:events');
const { processLoad, CORES } = require('../lib/machine.js');
const { startMaster, startSlave, stop } = require('../lib/procs.js');
const { ADDRESS } = require('../lib/namespace.js');
const { percentile } = require('../lib/stats.js');

const RAMP_PER_S = 100;
const SETTLE_MS = 2000;
const WINDOW_MS = Number(process.env.BENCH_BOTS_WINDOW_MS ?? 5000);
const DRAIN_MS = 1000;
/** How long the bots may take to connect before the step gives up. */
const CONNECT_LIMIT_MS = 120_000;
// Reliable by default: the issue asks for no loss on reliable channels.
const GAME_RELIABLE = (process.env.BENCH_BOTS_GAME_CHANNEL ?? 'reliable') !== 'unreliable';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The K values to run (BENCH_BOTS=200,500 narrows them). */
function botCounts() {
	return (process.env.BENCH_BOTS ?? '200,500,1000').split(',').filter(Boolean).map(Number);
}

/** The K values of the burst (BENCH_BOTS_BURST=200; empty for none). */
function burstBotCounts() {
	return (process.env.BENCH_BOTS_BURST ?? '200').split(',').filter(Boolean).map(Number);
}

/** The K values of the game load (BENCH_BOTS_GAME=200,1000; empty for none). */
function gameBotCounts() {
	return (process.env.BENCH_BOTS_GAME ?? '1000').split(',').filter(Boolean).map(Number);
}

/** Pins process `pid` (all its threads) to `core`, when the machine has two cores or more. */
function pin(pid, core) {
	if (CORES < 2) return;
	execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
}

/**
 * Runs K bots (`botArgs` added to the common ones) against a master and a
 * slave of `impl`, the slave pinned to core 0 and the bots to core 1; once
 * every bot has connected or failed (within CONNECT_LIMIT_MS) and SETTLE_MS
 * more, resolves with what `measure(run)` returns. `run` has `slave`
 * ({ child, ask }), `bots` (the child; stdin is a pipe), `during(promise)`
 * (rejects if the slave dies first) and `report()` (waits for the bots to
 * exit and parses their JSON line). Everything is killed at the end.
 */
async function withBots(ctx, impl, k, botArgs, measure) {
	const master = await startMaster(impl, 'port');
	const slave = await startSlave(impl, master.url).catch(async (err) => { await stop(master.child); throw err; });
	pin(slave.child.pid, 0);
	const bots = spawn('taskset', ['-c', CORES < 2 ? '0' : '1', ctx.botsBinary, '--master', master.url, '--bots', String(k),
		'--ramp', String(RAMP_PER_S), '--rate', '60', '--size', '100', '--ice-address', ADDRESS, ...botArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
	let stdout = '';
	let connected = 0;
	const allSettled = new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${connected} of ${k} bots connected within ${CONNECT_LIMIT_MS} ms`)), CONNECT_LIMIT_MS);
		bots.stderr.on('data', (chunk) => {
			for (const line of String(chunk).split('\n')) {
				const m = / connected (\d+) failed (\d+)/.exec(line);
				if (!m) continue;
				connected = Number(m[1]);
				if (connected + Number(m[2]) >= k) { clearTimeout(timer); resolve(); }
			}
		});
	});
	bots.stdout.on('data', (d) => { stdout += d; });
	const exited = once(bots, 'exit');
	const slaveDied = once(slave.child, 'exit').then(([code, signal]) => { throw new Error(`the ${impl} slave exited (${signal ?? code}) with ${connected} peers`); });
	slaveDied.catch(() => {});
	const during = (promise) => Promise.race([slaveDied, promise]);
	const report = async () => {
		const [code] = await during(exited);
		if (code !== 0) throw new Error(`the bots exited with ${code}`);
		return JSON.parse(stdout.trim().split('\n').pop());
	};
	try {
		await during(Promise.race([allSettled, exited.then(() => { throw new Error(`the bots ended with ${connected} of ${k} connected`); })]));
		await sleep(SETTLE_MS);
		return await measure({ slave, bots, during, report });
	} finally {
		bots.kill('SIGKILL');
		await stop(slave.child, master.child);
	}
}

/** K bots started at once, one channel each (see the top of this file). */
function runBurst(ctx, impl, k) {
	// The bots stop on "stop" once all are settled; --seconds is only the last guard.
	const seconds = CONNECT_LIMIT_MS / 1000 + 30;
	const args = ['--seconds', String(seconds), '--ramp', '0', '--rate', '1', '--unreliable', '--control', '--label', 'echo'];
	return withBots(ctx, impl, k, args, async ({ bots, report }) => {
		bots.stdin.end('stop\n');
		const result = await report();
		return {
			[`c${k}_connected`]: result.connected,
			[`c${k}_setup_p50`]: result.setup_ms.p50,
			[`c${k}_setup_p99`]: result.setup_ms.p99,
		};
	});
}

/** K bots echoing 100-byte inputs at 60 Hz (see the top of this file). */
function runEcho(ctx, impl, k) {
	// Long enough to ramp up, settle and measure; the bots stop by themselves.
	const seconds = k / RAMP_PER_S + (SETTLE_MS + WINDOW_MS) / 1000 + 2;
	return withBots(ctx, impl, k, ['--seconds', String(seconds), '--unreliable', '--label', 'echo'], async ({ slave, during, report }) => {
		const { cpu, memory } = await processLoad(slave.child.pid, during(sleep(WINDOW_MS)));
		const bots = await report();
		return {
			[`b${k}_connected`]: bots.connected,
			[`b${k}_cpu`]: cpu * 100,
			[`b${k}_rss_mb`]: memory.rss / 2 ** 20,
			[`b${k}_threads`]: memory.threads,
			[`b${k}_setup_p50`]: bots.setup_ms.p50,
			[`b${k}_rtt_p50`]: bots.rtt_ms.p50,
			[`b${k}_rtt_p99`]: bots.rtt_ms.p99,
			[`b${k}_loss`]: bots.sent ? (100 * bots.lost) / bots.sent : null,
		};
	});
}

/** Issue #17's game load with K bots (see the top of this file). */
function runGame(ctx, impl, k) {
	// The bots stop on "stop" (below); --seconds is only the last guard.
	const seconds = (CONNECT_LIMIT_MS + SETTLE_MS + WINDOW_MS + DRAIN_MS) / 1000 + 30;
	const args = ['--seconds', String(seconds), '--game', '--control', '--label', 'game', ...(GAME_RELIABLE ? [] : ['--unreliable'])];
	return withBots(ctx, impl, k, args, async ({ slave, bots, during, report }) => {
		const from = performance.timeOrigin + performance.now() + 200;
		const to = from + WINDOW_MS;
		await slave.ask({ cmd: 'window', from, to });
		bots.stdin.write(`window ${from} ${to}\n`);
		await sleep(from - (performance.timeOrigin + performance.now()));
		const { cpu, memory } = await processLoad(slave.child.pid, during(sleep(WINDOW_MS)));
		await sleep(DRAIN_MS);
		const slaveReport = await slave.ask({ cmd: 'report' });
		bots.stdin.end('stop\n');
		const { connected, game } = await report();
		return {
			[`g${k}_connected`]: connected,
			[`g${k}_cpu`]: cpu * 100,
			[`g${k}_rss_mb`]: memory.rss / 2 ** 20,
			...(memory.rssAnon === undefined ? {} : { [`g${k}_anon_mb`]: memory.rssAnon / 2 ** 20 }),
			[`g${k}_threads`]: memory.threads,
			[`g${k}_input_p50`]: percentile(slaveReport.latencies, 0.5),
			[`g${k}_input_p99`]: percentile(slaveReport.latencies, 0.99),
			[`g${k}_state_p50`]: game.state_ms.p50,
			[`g${k}_state_p99`]: game.state_ms.p99,
			[`g${k}_input_loss`]: 100 * (1 - slaveReport.inputs / game.inputs_in_window),
			[`g${k}_state_loss`]: 100 * (1 - game.states_in_window / slaveReport.statesSent),
			[`g${k}_inputs_per_s`]: slaveReport.inputs / (WINDOW_MS / 1000),
		};
	});
}

const bots = {
	name: 'bots',
	title: 'Native bots: K setups at once; fan-out to K peers, 100-byte inputs at 60 Hz each, echoed (unreliable); then the game load (states at 30 Hz out, inputs at 60 Hz in)',
	async run(ctx, impl) {
		if (!ctx.botsBinary) throw new Error('no bots binary (BENCH_BOTS_BINARY)');
		const figures = {};
		const steps = [['c', 'burst ', burstBotCounts(), runBurst], ['b', '', botCounts(), runEcho], ['g', 'game ', gameBotCounts(), runGame]];
		for (const [prefix, what, counts, runStep] of steps) {
			for (const k of counts) {
				try {
					Object.assign(figures, await runStep(ctx, impl, k));
				} catch (err) {
					// Larger K would fail the same way: keep what was measured, say where it stopped.
					figures[`${prefix}${k}_connected`] = 0;
					console.log(`bench: bots ${impl}, ${what}K=${k}: ${err.message}`);
					break;
				}
			}
		}
		return figures;
	},
};

module.exports = { bots, botCounts, burstBotCounts, gameBotCounts, GAME_RELIABLE };
