'use strict';
// The figures the table shows, in order, with the goal each is held to
// (issue #6: ratios to 0.9.0 measured in the same run, or absolute limits).

const { peerCounts } = require('../sections/fanout.js');
const { clientCounts, HTTPS_CLIENTS } = require('../sections/signalling.js');
const { connections } = require('../sections/memory.js');
const { botCounts, burstBotCounts, gameBotCounts, GAME_RELIABLE } = require('../sections/bots.js');
const { LOSSY_SETUPS } = require('../sections/browser.js');
const cluster = require('../sections/cluster.js');

// Rows: [section, key, label, kind, goal, vs]. kind: 'ratio≤' (ours/0.9.0 at most), 'ratio≥' (at least), 'max' (ours at most), 'min' (ours at least), or none.
const base = [
	['setup', 'seq_p50', 'sequential p50 (ms)', 'ratio≤', 2 / 3],
	['setup', 'seq_p95', 'sequential p95 (ms)', 'ratio≤', 2 / 3],
	['setup', 'conc_p50', '10 concurrent p50 (ms)', 'ratio≤', 2 / 3],
	['setup', 'conc_p95', '10 concurrent p95 (ms)', 'ratio≤', 2 / 3],
	['lossy', 'opened', `setups done (of ${LOSSY_SETUPS})`, 'min', LOSSY_SETUPS],
	['lossy', 'p50', 'setup + echo p50 (ms)'],
	['lossy', 'p95', 'setup + echo p95 (ms)'],
	['echo', 'unrel_p50', 'unreliable unordered p50 (ms)', 'ratio≤', 1],
	['echo', 'unrel_p99', 'unreliable unordered p99 (ms)', 'ratio≤', 1],
	['echo', 'unrel_lost', 'unreliable pings lost (of 2,200)'],
	['echo', 'rel_p50', 'reliable ordered p50 (ms)', 'ratio≤', 1],
	['echo', 'rel_p99', 'reliable ordered p99 (ms)', 'ratio≤', 1],
	['throughput', 'down_per_s', 'slave→browser msg/s', 'ratio≥', 15],
	['throughput', 'down_cpu', 'slave→browser: slave CPU (% of a core)'],
	['throughput', 'down_us_per_msg', 'slave→browser: slave CPU µs per message'],
	['throughput', 'up_per_s', 'browser→slave msg/s', 'ratio≥', 1],
	['throughput', 'up_cpu', 'browser→slave: slave CPU (% of a core)'],
	['throughput', 'up_us_per_msg', 'browser→slave: slave CPU µs per message', 'ratio≤', 1 / 3],
];

function fanoutRows() {
	const rows = [];
	for (const k of peerCounts()) {
		const at50 = k === 50;
		rows.push(
			['fanout', `k${k}_connected`, `K=${k}: peers connected`, ...(k === 500 ? ['min', 500] : [])],
			['fanout', `k${k}_cpu`, `K=${k}: slave CPU (% of a core)`, ...(at50 ? ['ratio≤', 1 / 3] : [])],
			['fanout', `k${k}_rss_mb`, `K=${k}: slave RSS (MB)`, ...(at50 ? ['ratio≤', 1 / 3] : [])],
			['fanout', `k${k}_threads`, `K=${k}: slave threads`],
			['fanout', `k${k}_state_p50`, `K=${k}: state latency p50 (ms)`],
			['fanout', `k${k}_state_p99`, `K=${k}: state latency p99 (ms)`, ...(at50 ? ['max', 5] : [])],
			['fanout', `k${k}_input_p50`, `K=${k}: input latency p50 (ms)`],
			['fanout', `k${k}_input_p99`, `K=${k}: input latency p99 (ms)`, ...(at50 ? ['max', 5] : k === 500 ? ['max', 50] : [])],
			['fanout', `k${k}_state_loss`, `K=${k}: state loss (%)`],
			['fanout', `k${k}_input_loss`, `K=${k}: input loss (%)`],
			['fanout', `k${k}_inputs_per_s`, `K=${k}: inputs received/s (game rate: ${(60 * k).toLocaleString('en-US')})`],
		);
	}
	if (peerCounts().includes(10) && peerCounts().includes(50)) {
		rows.push(['fanout', 'peer_cpu', 'per extra peer (K 10→50, peers at game rate): CPU (% of a core)', 'ratio≤', 1 / 3]);
	}
	if (peerCounts().includes(1) && peerCounts().includes(50)) {
		rows.push(['fanout', 'peer_rss_kb_first50', 'per extra peer (K 1→50): RSS (kB)', 'max', 100]);
	}
	if (peerCounts().includes(50) && peerCounts().includes(200)) {
		rows.push(
			['fanout', 'peer_rss_kb', 'per extra peer (K 50→200): RSS (kB)', 'max', 100],
			['fanout', 'peer_threads', 'per extra peer (K 50→200): threads', 'max', 0],
		);
	}
	return rows;
}

function signallingRows() {
	return clientCounts().flatMap((m) => [
		['signalling', `m${m}_add_ms`, `M=${m}: AddSlaves at every client (ms)`, ...(m === 5000 ? ['ratio≤', 1 / 3] : [])],
		['signalling', `m${m}_remove_ms`, `M=${m}: RemoveSlaves at every client (ms)`],
		['signalling', `m${m}_rss_mb`, `M=${m}: master RSS (MB)`, ...(m === 5000 ? ['ratio≤', 1 / 3] : [])],
		['signalling', `m${m}_connects_per_s`, `M=${m}: connects/s`],
		['signalling', `m${m}_add_ms_rust`, `M=${m}, ours without Node: AddSlaves at every client (ms)`, ...(m === 5000 ? ['ratio≤', 1 / 3] : [undefined, undefined]), `m${m}_add_ms`],
		['signalling', `m${m}_rss_mb_rust`, `M=${m}, ours without Node: master RSS (MB)`, ...(m === 5000 ? ['ratio≤', 1 / 3] : [undefined, undefined]), `m${m}_rss_mb`],
	]);
}

const m = HTTPS_CLIENTS;
const httpsRows = [
	['signalling', `m${m}_add_ms_http`, `M=${m}, attached to an http.Server: AddSlaves at every client (ms)`],
	['signalling', `m${m}_add_ms_https`, `M=${m}, attached to an https.Server: AddSlaves at every client (ms)`],
	['signalling', `m${m}_rss_mb_http`, `M=${m}, attached to an http.Server: master RSS (MB)`],
	['signalling', `m${m}_rss_mb_https`, `M=${m}, attached to an https.Server: master RSS (MB)`],
	['signalling', `m${m}_connects_per_s_https`, `M=${m}, attached to an https.Server: connects/s`],
	['signalling', `m${m}_add_ms_tls_port`, `M=${m}, ours on its own TLS port vs 0.9.0 on an https.Server: AddSlaves at every client (ms)`, undefined, undefined, `m${m}_add_ms_https`],
	['signalling', `m${m}_rss_mb_tls_port`, `M=${m}, ours on its own TLS port vs 0.9.0 on an https.Server: master RSS (MB)`, undefined, undefined, `m${m}_rss_mb_https`],
];

const { few, many, rounds } = connections();
const memoryRows = [['port', 'on its own port'], ['page', 'attached to an http.Server']].flatMap(([mode, where]) => [
	['memory', `${mode}_kb_per_client`, `${where}: RSS per idle client (kB; ${few.toLocaleString('en-US')} → ${many.toLocaleString('en-US')} clients)`, 'max', 3],
	['memory', `${mode}_rss_mb_${many}`, `${where}: RSS with ${many.toLocaleString('en-US')} idle clients (MB)`],
	['memory', `${mode}_rounds_growth_mb`, `${where}: RSS growth over ${rounds} rounds of connect/close (MB; medians of rounds 1–3 and ${rounds - 2}–${rounds})`, 'max', 1],
]);

// Issue #17: 1,000 peers at game rate with input p99 ≤ 50 ms and no loss on reliable channels
// (the g rows; the b rows time echoes, in and out, on unreliable channels).
const botRows = () => burstBotCounts().flatMap((k) => [
	['bots', `c${k}_connected`, `${k} bots at once: setups done (of ${k})`, ...(k === 200 ? ['min', 200] : [])],
	['bots', `c${k}_setup_p50`, `${k} bots at once: setup p50 (ms)`],
	['bots', `c${k}_setup_p99`, `${k} bots at once: setup p99 (ms)`],
]).concat(botCounts().flatMap((k) => [
	['bots', `b${k}_connected`, `K=${k} bots: peers connected`, ...(k === 1000 ? ['min', 1000] : [])],
	['bots', `b${k}_cpu`, `K=${k} bots: slave CPU (% of a core)`],
	['bots', `b${k}_rss_mb`, `K=${k} bots: slave RSS (MB)`],
	['bots', `b${k}_threads`, `K=${k} bots: slave threads`],
	['bots', `b${k}_setup_p50`, `K=${k} bots: setup p50 (ms, during the ramp)`],
	['bots', `b${k}_rtt_p50`, `K=${k} bots: echo RTT p50 (ms)`],
	['bots', `b${k}_rtt_p99`, `K=${k} bots: echo RTT p99 (ms)`, ...(k === 1000 ? ['max', 50] : [])],
	['bots', `b${k}_loss`, `K=${k} bots: echoes lost (%)`],
])).concat(gameBotCounts().flatMap((k) => {
	const at1000 = k === 1000;
	const who = `K=${k} bots at game rate, ${GAME_RELIABLE ? 'reliable' : 'unreliable'}`;
	return [
		['bots', `g${k}_connected`, `${who}: peers connected`, ...(at1000 ? ['min', 1000] : [])],
		['bots', `g${k}_cpu`, `${who}: slave CPU (% of a core)`],
		['bots', `g${k}_rss_mb`, `${who}: slave RSS (MB)`],
		['bots', `g${k}_threads`, `${who}: slave threads`],
		['bots', `g${k}_input_p50`, `${who}: input latency p50 (ms)`],
		['bots', `g${k}_input_p99`, `${who}: input latency p99 (ms)`, ...(at1000 ? ['max', 50] : [])],
		['bots', `g${k}_state_p50`, `${who}: state latency p50 (ms)`],
		['bots', `g${k}_state_p99`, `${who}: state latency p99 (ms)`],
		['bots', `g${k}_input_loss`, `${who}: inputs lost (%)`, ...(at1000 && GAME_RELIABLE ? ['max', 0] : [])],
		['bots', `g${k}_state_loss`, `${who}: states lost (%)`, ...(at1000 && GAME_RELIABLE ? ['max', 0] : [])],
		['bots', `g${k}_inputs_per_s`, `${who}: inputs received/s (game rate: ${(60 * k).toLocaleString('en-US')})`],
	];
})).concat(gameBotRssRows());

/**
 * Memory per extra peer with bots at game rate (BENCH_BOTS_GAME=1,50,200):
 * the fan-out rows' measure with a load generator that keeps up. At K=200,
 * Chromium on the same two cores falls behind (latencies of seconds), and
 * the slave's RSS then counts the states queued for it. Also without the
 * pages of files, which can grow with the load alone (the node binary's
 * code, paged in as more of it runs: 3.9 MB from 1 to 50 peers in one
 * stand-alone run, doc/performance.md).
 */
function gameBotRssRows() {
	const ks = gameBotCounts();
	const rows = [];
	if (ks.includes(1) && ks.includes(50)) {
		rows.push(
			['bots', 'g_peer_rss_kb_first50', 'per extra peer, bots at game rate (K 1→50): RSS (kB)', 'max', 100],
			['bots', 'g_peer_anon_kb_first50', 'per extra peer, bots at game rate (K 1→50): RSS without file pages (kB)'],
		);
	}
	if (ks.includes(50) && ks.includes(200)) {
		rows.push(
			['bots', 'g_peer_rss_kb', 'per extra peer, bots at game rate (K 50→200): RSS (kB)', 'max', 100],
			['bots', 'g_peer_anon_kb', 'per extra peer, bots at game rate (K 50→200): RSS without file pages (kB)'],
		);
	}
	return rows;
}

const idleRows = [
	['idle', 'master_rss_mb', 'master-only process in Node (MB)'],
	['idle', 'rust_master_rss_mb', 'master-only process, ours without Node (examples/master.rs) (MB)', 'max', 20, 'master_rss_mb'],
	['idle', 'slave_rss_mb', 'slave without peers (MB)'],
];

// Issue #15: a slave registered on one master listed at 10,000 clients of 2 or 3 masters
// within 100 ms; a relayed offer at most 1 ms slower than a local one. No 0.9.0 figures.
function clusterRows() {
	const { REGISTRATIONS, OFFERS, FAILOVER_ROUNDS, MOVERS, STAYERS, DEFAULT_SLAVE_TTL_MS } = cluster;
	const rows = [];
	for (const m of cluster.clusterClientCounts()) {
		const goal = m === 10000 ? ['max', 100] : [];
		for (const n of cluster.MASTER_COUNTS) {
			const who = n === 1 ? `M=${m} on 1 master (reference)` : `M=${m} over ${n} masters`;
			rows.push(
				['cluster', `n${n}_m${m}_listed_p50`, `${who}: slave listed at every client, p50 of ${REGISTRATIONS} (ms)`, ...(n > 1 ? goal : [])],
				['cluster', `n${n}_m${m}_listed_max`, `${who}: slave listed at every client, max of ${REGISTRATIONS} (ms)`, ...(n > 1 ? goal : [])],
			);
			if (n > 1) {
				rows.push(
					['cluster', `n${n}_m${m}_local_p50`, `${who}: slave listed at every client of its own master, p50 (ms)`],
					['cluster', `n${n}_m${m}_remote_first_p50`, `${who}: slave listed at the first client of another master, p50 (ms)`],
				);
			}
			rows.push(['cluster', `n${n}_m${m}_clients_cpu_p50`, `${who}: CPU the clients' processes spent reading it, p50 (ms)`]);
			rows.push(['cluster', `n${n}_m${m}_unlisted_p50`, `${who}: slave unlisted at every client after it closed, p50 (ms)`]);
		}
	}
	rows.push(
		['cluster', 'offer_local_p50', `offer→answer, slave on the client's master, p50 of ${OFFERS} (ms)`],
		['cluster', 'offer_relayed_p50', `offer→answer, slave on another master (relayed through Redis), p50 of ${OFFERS} (ms)`],
		['cluster', 'offer_extra_p50', 'relayed offer: extra setup latency (difference of the p50s, ms)', 'max', 1],
		['cluster', 'offer_local_p99', 'offer→answer, slave on the client\'s master, p99 (ms)'],
		['cluster', 'offer_relayed_p99', 'offer→answer, slave on another master, p99 (ms)'],
		['cluster', 'failover_reconnected_p50', `master SIGKILLed: its ${MOVERS} Slaves given 2 URLs 'reconnected' to the other, p50 (ms)`],
		['cluster', 'failover_relisted_p50', `master SIGKILLed: all ${MOVERS} listed again at a client of the other, p50 of ${FAILOVER_ROUNDS} kills (ms)`],
		['cluster', 'failover_relisted_max', `master SIGKILLed: all ${MOVERS} listed again at a client of the other, max of ${FAILOVER_ROUNDS} (ms)`],
		['cluster', 'failover_unlisted_p50', `master SIGKILLed: its ${STAYERS} slaves without a 2nd URL unlisted there, p50 (ms; slaveTtl ${DEFAULT_SLAVE_TTL_MS / 1000} s)`],
		['cluster', 'failover_unlisted_max', `master SIGKILLed: its ${STAYERS} slaves without a 2nd URL unlisted there, max (ms)`],
	);
	return rows;
}

/** Every row: { section, key, label, kind, goal, vs (the 0.9.0 figure it is compared with, when not `key`) }. */
function rows() {
	return [...base, ...fanoutRows(), ...botRows(), ...signallingRows(), ...httpsRows, ...memoryRows, ...idleRows, ...clusterRows()]
		.map(([section, key, label, kind, goal, vs]) => ({ section, key, label, kind, goal, vs: vs ?? key }));
}

/**
 * Per-peer increments of one implementation's fan-out figures: CPU from K=10
 * to 50 (beyond 50, Chromium on the same two cores no longer sends at game
 * rate, so CPU would be understated), RSS from K=1 to 50 and from 50 to
 * 200, threads from 50 to 200; and RSS with bots at game rate. Each is
 * divided by the peers that connected between the two steps.
 */
function derivePerPeer(f) {
	const perPeer = {};
	// Every step records the peers connected: it goes on when some failed.
	const per = (prefix, key, from, to, scale) => {
		const a = f[`${prefix}${from}_${key}`];
		const b = f[`${prefix}${to}_${key}`];
		const peers = f[`${prefix}${to}_connected`] - f[`${prefix}${from}_connected`];
		return a === undefined || b === undefined || !(peers > 0) ? undefined : ((b - a) * scale) / peers;
	};
	const figures = [
		['peer_cpu', 'k', 'cpu', 10, 50, 1],
		['peer_rss_kb_first50', 'k', 'rss_mb', 1, 50, 1024],
		['peer_rss_kb', 'k', 'rss_mb', 50, 200, 1024],
		['peer_threads', 'k', 'threads', 50, 200, 1],
		['g_peer_rss_kb_first50', 'g', 'rss_mb', 1, 50, 1024],
		['g_peer_anon_kb_first50', 'g', 'anon_mb', 1, 50, 1024],
		['g_peer_rss_kb', 'g', 'rss_mb', 50, 200, 1024],
		['g_peer_anon_kb', 'g', 'anon_mb', 50, 200, 1024],
	];
	for (const [name, prefix, key, from, to, scale] of figures) {
		const value = per(prefix, key, from, to, scale);
		if (value !== undefined) perPeer[name] = value;
	}
	return perPeer;
}

/** Whether `ours` meets the row's goal given `old`; undefined when the row has none or a figure is missing. */
function meets(row, old, ours) {
	if (!row.kind || !Number.isFinite(ours)) return undefined;
	switch (row.kind) {
		case 'ratio≤': return Number.isFinite(old) ? ours / old <= row.goal : undefined;
		case 'ratio≥': return Number.isFinite(old) ? ours / old >= row.goal : undefined;
		case 'max': return ours <= row.goal;
		case 'min': return ours >= row.goal;
		default: return undefined;
	}
}

// Against the baseline of BENCH_BASELINE (this package at an earlier revision),
// issue #14's cost of counting: in the throughput and fanout sections every
// rate (and peers connected) at least 0.97× of the baseline's, every cost
// (CPU, CPU per message, RSS, threads, latency) at most 1.03×. Losses are
// shown without a goal: they are near zero, so a ratio of them says nothing.
const BASELINE_SECTIONS = new Set(['throughput', 'fanout']);
const BASELINE_HIGHER = /(_per_s|_connected)$/;
const BASELINE_LOWER = /(_cpu|_us_per_msg|_rss_mb|_rss_kb(_first50)?|_threads|_p50|_p99)$/;
/** Figures only `ours` has (this checkout's Rust binaries measured), left out of the baseline table. */
const OURS_ONLY = /(_rust|^rust_master_rss_mb)$/;

/**
 * The rows of the table against the baseline: every figure of `section`
 * compared with the same figure of the baseline, and its goal where issue
 * #14 sets one.
 */
function baselineRows(section) {
	return rows().filter((row) => row.section === section && !OURS_ONLY.test(row.key)).map((row) => {
		// Against the baseline a figure is compared with the same one (not with another of 0.9.0's).
		const plain = { section: row.section, key: row.key, label: row.label.replace(/ vs 0\.9\.0 [^:]*/, ''), vs: row.key };
		if (!BASELINE_SECTIONS.has(section)) return plain;
		if (BASELINE_HIGHER.test(row.key)) return { ...plain, kind: 'ratio≥', goal: 0.97 };
		if (BASELINE_LOWER.test(row.key)) return { ...plain, kind: 'ratio≤', goal: 1.03 };
		return plain;
	});
}

/** The goal as the table prints it. */
function goalText(row) {
	const value = row.goal < 1 && row.kind.startsWith('ratio') ? (Math.abs(row.goal - 2 / 3) < 1e-9 ? '⅔' : Math.abs(row.goal - 1 / 3) < 1e-9 ? '⅓' : row.goal) : row.goal;
	switch (row.kind) {
		case 'ratio≤': return `≤ ${value}×`;
		case 'ratio≥': return `≥ ${value}×`;
		case 'max': return `≤ ${value}`;
		case 'min': return `≥ ${value}`;
		default: return '';
	}
}

module.exports = { rows, baselineRows, derivePerPeer, meets, goalText };
