#!/usr/bin/env node
'use strict';
// `npm run bench [-- SECTION…]`: the same workloads against this package and
// enslavism 0.9.0, alternating in one run, inside a private network namespace
// the benchmark creates; prints a table of both, their ratio and the goal,
// then one JSON line (prefixed `BENCH_JSON `). Sections: setup lossy echo
// throughput fanout bots signalling memory idle (all by default). Every loop is bounded.
//
// Environment: BENCH_RUNS (runs per implementation and section, default 3),
// BENCH_FANOUT (K values, default 1,10,50,200,500), BENCH_BOTS (K values of
// the bots section, default 200,500,1000), BENCH_CLIENTS (M values,
// default 1000,5000,10000,50000), BENCH_NO_BUILD=1 (reuse the last release
// build), BENCH_MAX_FOREIGN (share of the machine others may use in a run
// before it is refused, default 0.1), BENCH_SLAVE_OPTIONS (JSON options
// added to our slave's, to measure a setting).
//
// Outside the namespace it first builds this package in release mode (the
// addon and the Rust tools in crates/enslavism/examples: master, master_load, bots) and, as root,
// installs Debian's chromium if it is missing.

const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { insideNamespace, reexecInNamespace } = require('./lib/namespace.js');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'target', 'bench');
const ALL_SECTIONS = ['setup', 'lossy', 'echo', 'throughput', 'fanout', 'bots', 'signalling', 'memory', 'idle'];
const RUN_LIMIT_MS = 3 * 60 * 60_000;

function fail(message) {
	console.error(`bench: ${message}`);
	process.exit(1);
}

function hostTriple() {
	return /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1] ?? fail('cannot read the host triple from `rustc -vV`');
}

/** Builds the release addon and tools; returns their paths. */
function prepare() {
	const triple = hostTriple();
	const release = path.join(ROOT, 'target', triple, 'release');
	if (process.env.BENCH_NO_BUILD !== '1') {
		console.log('bench: building the release addon and tools (cargo build --release)…');
		const r = spawnSync('cargo', ['build', '--release', '--target', triple, '-p', 'enslavism-node', '-p', 'enslavism', '--lib', '--examples'],
			{ cwd: ROOT, stdio: 'inherit' });
		if (r.status !== 0) fail('the release build failed');
	}
	fs.mkdirSync(OUT, { recursive: true });
	const addon = path.join(OUT, 'enslavism.node');
	const built = path.join(release, process.platform === 'darwin' ? 'libenslavism_node.dylib' : 'libenslavism_node.so');
	if (!fs.existsSync(built)) fail(`no release build at ${built}; run without BENCH_NO_BUILD`);
	fs.copyFileSync(built, addon);
	const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
	if (!fs.existsSync(chromium)) {
		if (process.getuid?.() !== 0) fail(`${chromium} is missing: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`);
		console.log('bench: installing Debian\'s chromium…');
		const r = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'], { stdio: 'inherit' });
		if (r.status !== 0) fail('apt-get install chromium failed');
	}
	return {
		NAPI_RS_NATIVE_LIBRARY_PATH: addon,
		BENCH_LOAD_BINARY: path.join(release, 'examples', 'master_load'),
		BENCH_MASTER_BINARY: path.join(release, 'examples', 'master'),
		BENCH_BOTS_BINARY: path.join(release, 'examples', 'bots'),
	};
}

if (!insideNamespace()) {
	if (process.platform !== 'linux') fail('the benchmark needs Linux network namespaces');
	reexecInNamespace(__filename, process.argv.slice(2), { env: prepare(), timeoutMs: RUN_LIMIT_MS });
}

// --- inside the namespace ---------------------------------------------------

const { median, formatFigure } = require('./lib/stats.js');
const { loadWindow, CORES } = require('./lib/machine.js');
const { IMPLS } = require('./lib/impls.js');
const goals = require('./lib/goals.js');
const browserSections = require('./sections/browser.js');
const { fanout } = require('./sections/fanout.js');
const { bots } = require('./sections/bots.js');
const { signalling, clientCounts } = require('./sections/signalling.js');
const { idle } = require('./sections/idle.js');
const { memory } = require('./sections/memory.js');

const SECTIONS = { ...browserSections, fanout, bots, signalling, memory, idle };
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const MAX_FOREIGN = Number(process.env.BENCH_MAX_FOREIGN ?? 0.1);

function fdLimit() {
	return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
}

async function main() {
	// Killing the outer process must end this one too (it would keep its namespace alive).
	const parent = process.ppid;
	setInterval(() => { if (process.ppid !== parent) process.exit(1); }, 500).unref();
	const deadline = setTimeout(() => fail('the run took longer than its limit'), RUN_LIMIT_MS);
	const chosen = process.argv.slice(2).length ? process.argv.slice(2) : ALL_SECTIONS;
	for (const name of chosen) if (!SECTIONS[name]) fail(`unknown section ${name} (sections: ${ALL_SECTIONS.join(' ')})`);
	const limit = fdLimit();
	const clients = clientCounts();
	const fitting = clients.filter((m) => m + 1000 <= limit);
	if (fitting.length < clients.length) {
		console.log(`bench: file-descriptor limit ${limit}: skipping M = ${clients.filter((m) => !fitting.includes(m)).join(', ')} (raising it needs root with CAP_SYS_RESOURCE)`);
		process.env.BENCH_CLIENTS = fitting.join(',');
	}
	const { launchChromium } = require('../__test__/chromium.js');
	const ctx = {
		browser: chosen.some((s) => ['setup', 'lossy', 'echo', 'throughput', 'fanout'].includes(s)) ? await launchChromium(BROWSER_FLAGS) : null,
		loadBinary: process.env.BENCH_LOAD_BINARY,
		masterBinary: process.env.BENCH_MASTER_BINARY,
		botsBinary: process.env.BENCH_BOTS_BINARY,
	};
	console.log(`bench: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, `
		+ `Node ${process.version}, ${RUNS} runs per section and implementation, alternating`);

	// results[impl][section] = [{ figures, load }] per run
	const results = Object.fromEntries(IMPLS.map((impl) => [impl, {}]));
	for (const name of chosen) {
		const section = SECTIONS[name];
		for (let run = 0; run < RUNS; run++) {
			const order = run % 2 === 0 ? IMPLS : [...IMPLS].reverse();
			for (const impl of order) {
				const window = loadWindow();
				const started = Date.now();
				let figures = {};
				let error;
				try {
					figures = await section.run(ctx, impl);
				} catch (err) {
					error = err.message;
				}
				const load = window.end();
				(results[impl][name] ??= []).push({ figures, load, error });
				console.log(`bench: ${name} run ${run + 1} ${impl}: ${((Date.now() - started) / 1000).toFixed(1)} s, machine busy ${(load.busy * 100).toFixed(0)}% `
					+ `(others ${(load.others * 100).toFixed(1)}%)${error ? `, FAILED: ${error}` : ''}`);
			}
		}
	}
	await ctx.browser?.close();
	report(chosen, results);
	clearTimeout(deadline);
}

/** Medians of the clean runs of one implementation's section, and how many runs were refused. */
function summarise(runs = []) {
	const clean = runs.filter((r) => !r.error && r.load.others <= MAX_FOREIGN);
	const keys = new Set(clean.flatMap((r) => Object.keys(r.figures)));
	const figures = {};
	for (const key of keys) figures[key] = median(clean.map((r) => r.figures[key]));
	return {
		figures,
		clean: clean.length,
		refused: runs.filter((r) => !r.error && r.load.others > MAX_FOREIGN).length,
		failed: runs.filter((r) => r.error).map((r) => r.error),
		busy: median(runs.map((r) => r.load.busy)),
		others: Math.max(0, ...runs.map((r) => r.load.others)),
	};
}

function report(chosen, results) {
	const summaries = {};
	for (const impl of IMPLS) {
		summaries[impl] = {};
		for (const name of chosen) summaries[impl][name] = summarise(results[impl][name]);
		if (summaries[impl].fanout) Object.assign(summaries[impl].fanout.figures, goals.derivePerPeer(summaries[impl].fanout.figures));
	}
	const rows = [];
	const lines = [];
	const date = new Date().toISOString().slice(0, 10);
	lines.push(`Benchmark of ${date}, ${CORES} cores; medians of ${RUNS} alternating runs; ratio = ours / 0.9.0.`, '');
	lines.push('| figure | 0.9.0 | ours | ratio | goal | met |', '|---|---:|---:|---:|---|---|');
	for (const name of chosen) {
		const old = summaries['0.9.0'][name];
		const ours = summaries.ours[name];
		const comparable = old.clean > 0 && ours.clean > 0;
		lines.push(`| **${SECTIONS[name].title}** (machine busy ${(old.busy * 100).toFixed(0)}% / ${(ours.busy * 100).toFixed(0)}%, others at most `
			+ `${(Math.max(old.others, ours.others) * 100).toFixed(1)}%; clean runs ${old.clean} / ${ours.clean}) | | | | | |`);
		for (const row of goals.rows().filter((r) => r.section === name)) {
			const a = old.figures[row.vs];
			const b = ours.figures[row.key];
			if (a === undefined && b === undefined) continue;
			const ratio = comparable && Number.isFinite(a) && Number.isFinite(b) && a !== 0 ? b / a : NaN;
			const met = comparable ? goals.meets(row, a, b) : undefined;
			rows.push({ section: name, key: row.key, label: row.label, old: a ?? null, ours: b ?? null, ratio: Number.isFinite(ratio) ? ratio : null,
				goal: row.kind ? goals.goalText(row) : null, met: met ?? null });
			lines.push(`| ${row.label} | ${formatFigure(a)} | ${formatFigure(b)} | ${Number.isFinite(ratio) ? `${formatFigure(ratio)}×` : '—'} `
				+ `| ${row.kind ? goals.goalText(row) : ''} | ${met === undefined ? '' : met ? 'yes' : '**no**'} |`);
		}
		for (const impl of IMPLS) {
			const s = summaries[impl][name];
			if (s.refused) lines.push(`| ${impl}: ${s.refused} run(s) refused: other processes used over ${MAX_FOREIGN * 100}% of the machine | | | | | |`);
			for (const error of s.failed) lines.push(`| ${impl}: a run failed: ${error.replace(/[|\n]+/g, ' ')} | | | | | |`);
		}
	}
	console.log(`\n${lines.join('\n')}\n`);
	const json = { date, cores: CORES, node: process.version, runs: RUNS, rows,
		load: Object.fromEntries(IMPLS.map((impl) => [impl, Object.fromEntries(chosen.map((n) => [n, { busy: summaries[impl][n].busy, others: summaries[impl][n].others, clean: summaries[impl][n].clean }]))])) };
	fs.writeFileSync(path.join(OUT, 'latest.json'), `${JSON.stringify(json, null, '\t')}\n`);
	fs.writeFileSync(path.join(OUT, 'latest.md'), `${lines.join('\n')}\n`);
	console.log(`BENCH_JSON ${JSON.stringify(json)}`);
}

// Peers in background pages must not be throttled: every page here is "in the background".
const BROWSER_FLAGS = ['--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

main().catch((err) => fail(err.stack));
