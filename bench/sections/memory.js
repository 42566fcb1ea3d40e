'use strict';
// Memory of a master per idle client, in both of its modes: on its own port
// (`port`; 0.9.0 makes an http.Server for a port) and attached to an
// http.Server (`page`, as JumpSuit runs it). Plain WebSocket clients on
// /enslavism/clients, held by another process (processes/clients.js).
//
// Per client: RSS with 8,000 clients minus RSS with 2,000, over 6,000, each
// read once the master has settled (processes/master.js: V8's young
// generation back to its size at start, then full collections), after one
// warm-up round. Growth over 10 rounds of 2,000 clients connecting and
// closing: the median RSS after the last three rounds minus after the first three.

const { ask, start, startMaster, stop } = require('../lib/procs.js');
const { median } = require('../lib/stats.js');

const FEW = 2000;
const MANY = 8000;
const ROUNDS = 10;
/** The longest wait for V8 to give its young generation back (processes/master.js). */
const SETTLE_MS = 30_000;
const STEP_LIMIT_MS = 120_000;

function connections() {
	return { few: FEW, many: MANY, rounds: ROUNDS };
}

async function settledRss(master) {
	const { rss } = await ask(master.child, { cmd: 'memory', settleMs: SETTLE_MS }, 'memory', SETTLE_MS + STEP_LIMIT_MS);
	return rss;
}

/** The figures of one master mode, keys prefixed with `mode`. */
async function measureMode(impl, mode) {
	const master = await startMaster(impl, mode, ['--expose-gc']);
	let clients;
	try {
		({ child: clients } = await start('clients', [master.url]));
		const open = (count) => ask(clients, { cmd: 'open', count }, 'open', STEP_LIMIT_MS);
		const closeAll = () => ask(clients, { cmd: 'close' }, 'open', STEP_LIMIT_MS);
		// Every path once (and V8's heap sized) before anything is measured.
		await open(FEW);
		await closeAll();
		await open(FEW);
		const few = await settledRss(master);
		await open(MANY - FEW);
		const many = await settledRss(master);
		await closeAll();
		const rounds = [];
		for (let round = 1; round <= ROUNDS; round++) {
			await open(FEW);
			await closeAll();
			rounds.push(await settledRss(master));
		}
		// One reading moves by ±1 MB (V8's pages and the engine threads'
		// arenas, given back to the system or not): medians of three.
		const first = median(rounds.slice(0, 3));
		const last = median(rounds.slice(-3));
		return {
			[`${mode}_kb_per_client`]: (many - few) / (MANY - FEW) / 1024,
			[`${mode}_rss_mb_${MANY}`]: many / 2 ** 20,
			[`${mode}_rounds_growth_mb`]: (last - first) / 2 ** 20,
		};
	} finally {
		await stop(clients, master.child);
	}
}

const memory = {
	name: 'memory',
	title: `Master memory: idle WebSocket clients, and ${ROUNDS} rounds of ${FEW.toLocaleString('en-US')} connecting and closing`,
	async run(ctx, impl) {
		return { ...await measureMode(impl, 'port'), ...await measureMode(impl, 'page') };
	},
};

module.exports = { memory, connections };
