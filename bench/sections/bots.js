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

const { spawn, execFileSync } = require('node:child_process');
const { once } = require('node:events');
const { cpuWindow, processMemory, CORES } = require('../lib/machine.js');
const { startMaster, startSlave, stop } = require('../lib/procs.js');
const { ADDRESS } = require('../lib/namespace.js');
const { percentile } = require('../lib/stats.js');

const RAMP_PER_S = 100;
const SETTLE_MS = 2000;
const WINDOW_MS = Number(process.env.BENCH_BOTS_WINDOW_MS ?? 5000);
const DRAIN_MS = 1000;
/** How long the game bots may take to connect before the step gives up. */
const GAME_CONNECT_LIMIT_MS = 120_000;
// Reliable by default: the issue asks for no loss on reliable channels.
const GAME_RELIABLE = (process.env.BENCH_BOTS_GAME_CHANNEL ?? 'reliable') !== 'unreliable';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The K values to run (BENCH_BOTS=200,500 narrows them). */
function botCounts() {
	return (process.env.BENCH_BOTS ?? '200,500,1000').split(',').filter(Boolean).map(Number);
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

async function runK(ctx, impl, k) {
	const master = await startMaster(impl, 'port');
	const slave = await startSlave(impl, master.url).catch(async (err) => { await stop(master.child); throw err; });
	pin(slave.child.pid, 0);
	// Long enough to ramp up, settle and measure; the bots stop by themselves.
	const seconds = k / RAMP_PER_S + (SETTLE_MS + WINDOW_MS) / 1000 + 2;
	const bots = spawn('taskset', ['-c', CORES < 2 ? '0' : '1', ctx.botsBinary, '--master', master.url, '--bots', String(k),
		'--seconds', String(seconds), '--ramp', String(RAMP_PER_S), '--rate', '60', '--size', '100', '--unreliable',
		'--label', 'echo', '--ice-address', ADDRESS], { stdio: ['ignore', 'pipe', 'pipe'] });
	let stdout = '';
	let connected = 0;
	let settled = 0;
	const allConnected = new Promise((resolve) => {
		bots.stderr.on('data', (chunk) => {
			for (const line of String(chunk).split('\n')) {
				const m = / connected (\d+) failed (\d+)/.exec(line);
				if (!m) continue;
				connected = Number(m[1]);
				settled = connected + Number(m[2]);
				if (settled >= k) resolve();
			}
		});
	});
	bots.stdout.on('data', (d) => { stdout += d; });
	const exited = once(bots, 'exit');
	const slaveDied = once(slave.child, 'exit').then(([code, signal]) => { throw new Error(`the ${impl} slave exited (${signal ?? code}) with ${connected} peers`); });
	slaveDied.catch(() => {});
	try {
		await Promise.race([slaveDied, allConnected, exited.then(() => { throw new Error(`the bots ended with ${settled} of ${k} settled`); })]);
		await sleep(SETTLE_MS);
		const cpu = cpuWindow(slave.child.pid);
		await Promise.race([slaveDied, sleep(WINDOW_MS)]);
		const slaveCpu = cpu.end();
		const memory = processMemory(slave.child.pid);
		const [code] = await Promise.race([slaveDied, exited]);
		if (code !== 0) throw new Error(`the bots exited with ${code}`);
		const report = JSON.parse(stdout.trim().split('\n').pop());
		return {
			[`b${k}_connected`]: report.connected,
			[`b${k}_cpu`]: slaveCpu * 100,
			[`b${k}_rss_mb`]: memory.rss / 2 ** 20,
			[`b${k}_threads`]: memory.threads,
			[`b${k}_setup_p50`]: report.setup_ms.p50,
			[`b${k}_rtt_p50`]: report.rtt_ms.p50,
			[`b${k}_rtt_p99`]: report.rtt_ms.p99,
			[`b${k}_loss`]: report.sent ? (100 * report.lost) / report.sent : null,
		};
	} finally {
		bots.kill('SIGKILL');
		await stop(slave.child, master.child);
	}
}

/** Issue #17's game load with K bots (see the top of this file). */
async function runGame(ctx, impl, k) {
	const master = await startMaster(impl, 'port');
	const slave = await startSlave(impl, master.url).catch(async (err) => { await stop(master.child); throw err; });
	pin(slave.child.pid, 0);
	// The bots stop on "stop" (below); --seconds is only the last guard.
	const seconds = (GAME_CONNECT_LIMIT_MS + SETTLE_MS + WINDOW_MS + DRAIN_MS) / 1000 + 30;
	const bots = spawn('taskset', ['-c', CORES < 2 ? '0' : '1', ctx.botsBinary, '--master', master.url, '--bots', String(k),
		'--seconds', String(seconds), '--ramp', String(RAMP_PER_S), '--rate', '60', '--size', '100', '--game', '--control',
		'--label', 'game', '--ice-address', ADDRESS, ...(GAME_RELIABLE ? [] : ['--unreliable'])], { stdio: ['pipe', 'pipe', 'pipe'] });
	let stdout = '';
	let connected = 0;
	const allConnected = new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${connected} of ${k} bots connected within ${GAME_CONNECT_LIMIT_MS} ms`)), GAME_CONNECT_LIMIT_MS);
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
	try {
		await Promise.race([slaveDied, allConnected, exited.then(() => { throw new Error(`the bots ended with ${connected} of ${k} connected`); })]);
		await sleep(SETTLE_MS);
		const from = performance.timeOrigin + performance.now() + 200;
		const to = from + WINDOW_MS;
		await slave.ask({ cmd: 'window', from, to });
		bots.stdin.write(`window ${from} ${to}\n`);
		await sleep(from - (performance.timeOrigin + performance.now()));
		const cpu = cpuWindow(slave.child.pid);
		await Promise.race([slaveDied, sleep(WINDOW_MS)]);
		const slaveCpu = cpu.end();
		const memory = processMemory(slave.child.pid);
		await sleep(DRAIN_MS);
		const slaveReport = await slave.ask({ cmd: 'report' });
		bots.stdin.end('stop\n');
		const [code] = await Promise.race([slaveDied, exited]);
		if (code !== 0) throw new Error(`the bots exited with ${code}`);
		const report = JSON.parse(stdout.trim().split('\n').pop());
		return {
			[`g${k}_connected`]: report.connected,
			[`g${k}_cpu`]: slaveCpu * 100,
			[`g${k}_rss_mb`]: memory.rss / 2 ** 20,
			[`g${k}_threads`]: memory.threads,
			[`g${k}_input_p50`]: percentile(slaveReport.latencies, 0.5),
			[`g${k}_input_p99`]: percentile(slaveReport.latencies, 0.99),
			[`g${k}_state_p50`]: report.game.state_ms.p50,
			[`g${k}_state_p99`]: report.game.state_ms.p99,
			[`g${k}_input_loss`]: 100 * (1 - slaveReport.inputs / report.game.inputs_in_window),
			[`g${k}_state_loss`]: 100 * (1 - report.game.states_in_window / slaveReport.statesSent),
			[`g${k}_inputs_per_s`]: slaveReport.inputs / (WINDOW_MS / 1000),
		};
	} finally {
		bots.kill('SIGKILL');
		await stop(slave.child, master.child);
	}
}

const bots = {
	name: 'bots',
	title: 'Fan-out with native bots: K peers, 100-byte inputs at 60 Hz each, echoed (unreliable)',
	async run(ctx, impl) {
		if (!ctx.botsBinary) throw new Error('no bots binary (BENCH_BOTS_BINARY)');
		const figures = {};
		for (const k of botCounts()) {
			try {
				Object.assign(figures, await runK(ctx, impl, k));
			} catch (err) {
				// Larger K would fail the same way: keep what was measured, say where it stopped.
				figures[`b${k}_connected`] = 0;
				console.log(`bench: bots ${impl}, K=${k}: ${err.message}`);
				break;
			}
		}
		for (const k of gameBotCounts()) {
			try {
				Object.assign(figures, await runGame(ctx, impl, k));
			} catch (err) {
				figures[`g${k}_connected`] = 0;
				console.log(`bench: bots ${impl}, game K=${k}: ${err.message}`);
				break;
			}
		}
		return figures;
	},
};

module.exports = { bots, botCounts, gameBotCounts, GAME_RELIABLE };
