#!/usr/bin/env node
'use strict';
// `npm run bench [-- SECTION…]`: the same workloads against this package and
// enslavism 0.9.0, alternating in one run, inside a private network namespace
// the benchmark creates; prints a table of both, their ratio and the goal,
// then one JSON line (prefixed `BENCH_JSON `; also target/bench/latest.json,
// latest.md, and every run's figures in latest-runs.json). Sections: setup lossy echo
// throughput fanout bots signalling memory idle cluster (all by default). Every loop is bounded.
// A section may be this package's only (`engineOnly`, e.g. cluster: 0.9.0 has
// no clustering): 0.9.0 does not run it and the report says so instead of a ratio.
//
// Environment: BENCH_RUNS (runs per implementation and section, default 3),
// BENCH_FANOUT (K values, default 1,10,50,200,500), BENCH_BOTS (K values of
// the bots section, default 200,500,1000), BENCH_CLIENTS (M values,
// default 1000,5000,10000,50000), BENCH_CLUSTER_CLIENTS (M values of the
// cluster section, default 10,1000,10000), BENCH_NO_BUILD=1 (reuse the last release
// build), BENCH_MAX_FOREIGN (share of the machine others may use in a run
// before it is refused, default 0.1), BENCH_SLAVE_OPTIONS (JSON options
// added to our slave's, to measure a setting; the baseline's get them too),
// BENCH_BASELINE=<git rev> (see below).
//
// Outside the namespace it first builds this package in release mode (the
// addon and the Rust tools in crates/enslavism/examples: master, master_load, bots) and, as root,
// installs Debian's chromium if it is missing.
//
// BENCH_BASELINE=<git rev> (e.g. 86c8910, HEAD~3, a branch) adds a third
// implementation, `baseline`: this package at that revision, to measure what
// a change costs (A/B, same run, alternating with the others). Its tree is
// extracted to target/bench/baseline-src (`git archive`; again when the
// revision's commit changes), with node_modules linked to this checkout's,
// and its addon built in release mode with napi-rs's CLI (as its own
// scripts/build.js does) into this checkout's target/ (CARGO_TARGET_DIR), so
// that the registry crates are reused and only our two crates compile. The
// addon is kept as target/bench/baseline.node and built again only when the
// commit changes (BENCH_NO_BUILD=1 never builds it). The baseline runs every
// section but the figures of this checkout's Rust binaries (signalling's
// `_rust` rows, idle's master without Node); the report adds a second table,
// ours / baseline, with issue #14's goals for the throughput and fanout
// sections (rates ≥ 0.97×, costs ≤ 1.03× of the baseline), and the JSON a
// `baseline` object.

const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { insideNamespace, reexecInNamespace } = require('./lib/namespace.js');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'target', 'bench');
const ALL_SECTIONS = ['setup', 'lossy', 'echo', 'throughput', 'fanout', 'bots', 'signalling', 'memory', 'idle', 'cluster'];
const RUN_LIMIT_MS = 3 * 60 * 60_000;

function fail(message) {
	console.error(`bench: ${message}`);
	process.exit(1);
}

function hostTriple() {
	return /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1] ?? fail('cannot read the host triple from `rustc -vV`');
}

function git(...args) {
	const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
	if (r.status !== 0) fail(`git ${args.join(' ')}: ${(r.stderr || '').trim()}`);
	return r.stdout.trim();
}

// Ours and the baseline build the same two crates into the same target/.
// The addon's file has no hash in its name (target/<triple>/release/
// libenslavism_node.so and deps/), so the baseline's build replaces ours
// there while ours' fingerprint still looks fresh to cargo (it judges by
// modification times): the baseline build therefore puts ours' files back
// afterwards, times included. And cargo hashes a path crate's unit by its
// path inside its workspace, features and dependencies, not its sources, so
// units with the same inputs in both (the build script's compilation, or all
// of them when only sources differ) get the same hashes and the baseline's
// build rewrites ours' fingerprints and files: those fingerprints are
// removed, which makes cargo compile ours' again (once). BASELINE_BUILDING marks a baseline
// build under way; found at start (a run killed during one), all of ours'
// fingerprints of our two crates are removed.
const BASELINE_BUILDING = path.join(OUT, 'baseline-build-in-progress');

/** Fingerprint directories of our two crates under target/ (host and target units): path → newest file time. */
function ourFingerprints(triple) {
	const found = new Map();
	for (const dir of [path.join(ROOT, 'target', triple, 'release', '.fingerprint'), path.join(ROOT, 'target', 'release', '.fingerprint')]) {
		if (!fs.existsSync(dir)) continue;
		for (const name of fs.readdirSync(dir)) {
			if (!/^enslavism-(node-)?[0-9a-f]+$/.test(name)) continue;
			const unit = path.join(dir, name);
			found.set(unit, Math.max(0, ...fs.readdirSync(unit).map((f) => fs.statSync(path.join(unit, f)).mtimeMs)));
		}
	}
	return found;
}

function addonOf(release) {
	return path.join(release, process.platform === 'darwin' ? 'libenslavism_node.dylib' : 'libenslavism_node.so');
}

/** Runs `build()` (the baseline's cargo build into our target/), leaving ours' files and fingerprints as cargo needs them. */
function buildBesideOurs(triple, build) {
	const release = path.join(ROOT, 'target', triple, 'release');
	const shared = [addonOf(release), addonOf(path.join(release, 'deps'))];
	const saved = path.join(OUT, 'ours-addon-saved');
	fs.rmSync(saved, { recursive: true, force: true });
	fs.mkdirSync(saved, { recursive: true });
	const kept = shared.filter((file) => fs.existsSync(file)).map((file, i) => {
		const copy = path.join(saved, String(i));
		fs.copyFileSync(file, copy);
		return { file, copy, stat: fs.statSync(file) };
	});
	const before = ourFingerprints(triple);
	fs.writeFileSync(BASELINE_BUILDING, '');
	let ok;
	try {
		ok = build();
	} finally {
		for (const [unit, time] of ourFingerprints(triple)) {
			if (before.has(unit) && before.get(unit) !== time) fs.rmSync(unit, { recursive: true, force: true });
		}
		for (const file of shared) fs.rmSync(file, { force: true });
		for (const { file, copy, stat } of kept) {
			fs.copyFileSync(copy, file);
			fs.utimesSync(file, stat.atime, stat.mtime);
		}
		fs.rmSync(saved, { recursive: true, force: true });
		fs.rmSync(BASELINE_BUILDING, { force: true });
	}
	return ok;
}

/**
 * BENCH_BASELINE: this package at that revision in target/bench/baseline-src,
 * its release addon copied to target/bench/baseline.node; returns what the
 * run inside the namespace needs to load it (impls.js), or nothing.
 */
function prepareBaseline(triple) {
	const rev = process.env.BENCH_BASELINE;
	if (!rev) return {};
	const commit = git('rev-parse', '--verify', '--end-of-options', `${rev}^{commit}`);
	const src = path.join(OUT, 'baseline-src');
	const srcStamp = path.join(src, '.bench-baseline-commit');
	const addon = path.join(OUT, 'baseline.node');
	const addonStamp = path.join(OUT, 'baseline.node.commit');
	const read = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '');
	if (read(srcStamp) !== commit) {
		console.log(`bench: baseline ${rev} (${commit.slice(0, 12)}): extracting its tree to ${path.relative(ROOT, src)}…`);
		fs.rmSync(src, { recursive: true, force: true });
		fs.mkdirSync(src, { recursive: true });
		const r = spawnSync('sh', ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'sh', commit, src], { cwd: ROOT, stdio: 'inherit' });
		if (r.status !== 0) fail(`cannot extract ${rev} into ${src}`);
		fs.writeFileSync(srcStamp, `${commit}\n`);
	}
	const modules = path.join(src, 'node_modules');
	if (fs.lstatSync(modules, { throwIfNoEntry: false })?.isSymbolicLink() && !fs.existsSync(modules)) fs.rmSync(modules);
	if (!fs.existsSync(modules)) fs.symlinkSync(path.join(ROOT, 'node_modules'), modules, 'dir');
	if (read(addonStamp) !== commit || !fs.existsSync(addon)) {
		if (process.env.BENCH_NO_BUILD === '1') fail(`no baseline addon built for ${rev} (${commit.slice(0, 12)}); run without BENCH_NO_BUILD`);
		console.log(`bench: building baseline ${rev}'s release addon (napi build --release, CARGO_TARGET_DIR=${path.join(ROOT, 'target')})…`);
		fs.rmSync(addonStamp, { force: true });
		// Its sources newer than anything built before, so that cargo compiles
		// its two crates whatever their hashes (see buildBesideOurs).
		const touched = spawnSync('find', [src, '-path', modules, '-prune', '-o', '-type', 'f', '-exec', 'touch', '{}', '+'], { stdio: 'inherit' });
		if (touched.status !== 0) fail(`cannot touch the files of ${src}`);
		const manifest = require.resolve('@napi-rs/cli/package.json', { paths: [ROOT] });
		const cli = path.join(path.dirname(manifest), require(manifest).bin.napi);
		const built = buildBesideOurs(triple, () => {
			const r = spawnSync(process.execPath, [cli, 'build', '--platform', '--release', '--target', triple, '--js', 'binding.js', '--dts', 'binding.d.ts', '--output-dir', '.'],
				{ cwd: src, stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: path.join(ROOT, 'target') } });
			if (r.status !== 0) return false;
			fs.copyFileSync(addonOf(path.join(ROOT, 'target', triple, 'release')), addon);
			return true;
		});
		if (!built) fail(`the baseline's release build failed (${rev})`);
		fs.writeFileSync(addonStamp, `${commit}\n`);
	}
	return { BENCH_BASELINE: rev, BENCH_BASELINE_COMMIT: commit, BENCH_BASELINE_DIR: src, BENCH_BASELINE_ADDON: addon };
}

/** Builds the release addon and tools (and the baseline's addon, BENCH_BASELINE); returns their paths. */
function prepare() {
	const triple = hostTriple();
	const release = path.join(ROOT, 'target', triple, 'release');
	fs.mkdirSync(OUT, { recursive: true });
	if (fs.existsSync(BASELINE_BUILDING)) {
		// A run was killed during a baseline build: ours' files may be the baseline's.
		if (process.env.BENCH_NO_BUILD === '1') fail('a baseline build was interrupted: run without BENCH_NO_BUILD');
		for (const unit of ourFingerprints(triple).keys()) fs.rmSync(unit, { recursive: true, force: true });
		for (const file of [addonOf(release), addonOf(path.join(release, 'deps'))]) fs.rmSync(file, { force: true });
		fs.rmSync(BASELINE_BUILDING, { force: true });
	}
	const baseline = prepareBaseline(triple);
	if (process.env.BENCH_NO_BUILD !== '1') {
		console.log('bench: building the release addon and tools (cargo build --release)…');
		const r = spawnSync('cargo', ['build', '--release', '--target', triple, '-p', 'enslavism-node', '-p', 'enslavism', '--lib', '--examples'],
			{ cwd: ROOT, stdio: 'inherit' });
		if (r.status !== 0) fail('the release build failed');
	}
	const addon = path.join(OUT, 'enslavism.node');
	const built = addonOf(release);
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
		...baseline,
	};
}

if (!insideNamespace()) {
	if (process.platform !== 'linux') fail('the benchmark needs Linux network namespaces');
	reexecInNamespace(__filename, process.argv.slice(2), { env: prepare(), timeoutMs: RUN_LIMIT_MS });
}

// --- inside the namespace ---------------------------------------------------

const { median, formatFigure } = require('./lib/stats.js');
const { loadWindow, CORES } = require('./lib/machine.js');
const { IMPLS, isEngine } = require('./lib/impls.js');
const goals = require('./lib/goals.js');
const browserSections = require('./sections/browser.js');
const { fanout } = require('./sections/fanout.js');
const { bots } = require('./sections/bots.js');
const { signalling, clientCounts } = require('./sections/signalling.js');
const { idle } = require('./sections/idle.js');
const { memory } = require('./sections/memory.js');
const { cluster } = require('./sections/cluster.js');

const SECTIONS = { ...browserSections, fanout, bots, signalling, memory, idle, cluster };
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
	if (IMPLS.includes('baseline')) {
		console.log(`bench: implementations ${IMPLS.join(', ')}; baseline = ${process.env.BENCH_BASELINE} (${process.env.BENCH_BASELINE_COMMIT}), `
			+ `${process.env.BENCH_BASELINE_DIR} with ${process.env.BENCH_BASELINE_ADDON}`);
	}

	// results[impl][section] = [{ figures, load }] per run
	const results = Object.fromEntries(IMPLS.map((impl) => [impl, {}]));
	for (const name of chosen) {
		const section = SECTIONS[name];
		for (let run = 0; run < RUNS; run++) {
			const order = run % 2 === 0 ? IMPLS : [...IMPLS].reverse();
			for (const impl of order) {
				if (section.engineOnly && !isEngine(impl)) continue;
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

/** A load line for a section: the machine's load and clean runs of each implementation in `impls`. */
function loadLine(title, summaries, impls) {
	const s = impls.map((impl) => summaries[impl]);
	return `| **${title}** (machine busy ${s.map((x) => `${(x.busy * 100).toFixed(0)}%`).join(' / ')}, others at most `
		+ `${(Math.max(...s.map((x) => x.others)) * 100).toFixed(1)}%; clean runs ${s.map((x) => x.clean).join(' / ')}) | | | | | |`;
}

/** Lines for refused and failed runs of `impls` in one section. */
function troubleLines(name, summaries, impls) {
	const lines = [];
	for (const impl of impls) {
		const s = summaries[impl][name];
		if (s.refused) lines.push(`| ${impl}: ${s.refused} run(s) refused: other processes used over ${MAX_FOREIGN * 100}% of the machine | | | | | |`);
		for (const error of s.failed) lines.push(`| ${impl}: a run failed: ${error.replace(/[|\n]+/g, ' ')} | | | | | |`);
	}
	return lines;
}

/**
 * One table: `ours` against implementation `other` for the sections
 * `chosen`, rows from `rowsOf(section)`; returns its lines and its rows for
 * the JSON (`old` is `other`'s figure).
 */
function table(chosen, summaries, other, rowsOf, { equalMeets = false } = {}) {
	const rows = [];
	const lines = [`| figure | ${other} | ours | ratio | goal | met |`, '|---|---:|---:|---:|---|---|'];
	for (const name of chosen) {
		const old = summaries[other][name];
		const ours = summaries.ours[name];
		// A section 0.9.0 cannot run (engineOnly): ours alone, saying why there is no ratio.
		const absent = other === '0.9.0' && SECTIONS[name].engineOnly ? `no 0.9.0 equivalent (${SECTIONS[name].engineOnly})` : null;
		const comparable = old.clean > 0 && ours.clean > 0;
		lines.push(absent ? loadLine(`${SECTIONS[name].title}** — **${absent}`, { ours }, ['ours'])
			: loadLine(SECTIONS[name].title, { [other]: old, ours }, [other, 'ours']));
		for (const row of rowsOf(name)) {
			const a = old.figures[row.vs];
			const b = ours.figures[row.key];
			if (a === undefined && b === undefined) continue;
			// With `equalMeets` (against the baseline), two equal figures (0 threads per extra peer, say) meet a ratio goal.
			const same = equalMeets && Number.isFinite(a) && a === b;
			const ratio = comparable && Number.isFinite(a) && Number.isFinite(b) && a !== 0 ? b / a : same ? 1 : NaN;
			const met = absent ? (ours.clean > 0 ? goals.meets(row, undefined, b) : undefined)
				: comparable ? (same && row.kind?.startsWith('ratio') ? true : goals.meets(row, a, b)) : undefined;
			rows.push({ section: name, key: row.key, label: row.label, old: a ?? null, ours: b ?? null, ratio: Number.isFinite(ratio) ? ratio : null,
				goal: row.kind ? goals.goalText(row) : null, met: met ?? null, ...(absent ? { note: absent } : {}) });
			const ratioText = absent ? 'no 0.9.0 equivalent' : Number.isFinite(ratio) ? `${formatFigure(ratio)}×` : '—';
			lines.push(`| ${row.label} | ${formatFigure(a)} | ${formatFigure(b)} | ${ratioText} `
				+ `| ${row.kind ? goals.goalText(row) : ''} | ${met === undefined ? '' : met ? 'yes' : '**no**'} |`);
		}
		lines.push(...troubleLines(name, summaries, absent ? ['ours'] : [other, 'ours']));
	}
	return { lines, rows };
}

function report(chosen, results) {
	const summaries = {};
	for (const impl of IMPLS) {
		summaries[impl] = {};
		for (const name of chosen) summaries[impl][name] = summarise(results[impl][name]);
		for (const section of ['fanout', 'bots']) {
			if (summaries[impl][section]) Object.assign(summaries[impl][section].figures, goals.derivePerPeer(summaries[impl][section].figures));
		}
	}
	const date = new Date().toISOString().slice(0, 10);
	const lines = [`Benchmark of ${date}, ${CORES} cores; medians of ${RUNS} alternating runs; ratio = ours / 0.9.0.`, ''];
	const main = table(chosen, summaries, '0.9.0', (name) => goals.rows().filter((r) => r.section === name));
	lines.push(...main.lines);
	const json = { date, cores: CORES, node: process.version, runs: RUNS, rows: main.rows };
	if (IMPLS.includes('baseline')) {
		const rev = process.env.BENCH_BASELINE;
		const commit = process.env.BENCH_BASELINE_COMMIT ?? '';
		const against = table(chosen, { ...summaries, [`baseline ${rev}`]: summaries.baseline }, `baseline ${rev}`, goals.baselineRows, { equalMeets: true });
		lines.push('', `ours vs baseline ${rev} (${commit.slice(0, 12)}), same runs; ratio = ours / baseline; goals (issue #14, throughput and fanout): rates ≥ 0.97×, costs ≤ 1.03× of the baseline.`, '');
		lines.push(...against.lines);
		json.baseline = { rev, commit, rows: against.rows.map(({ old, ...row }) => ({ ...row, baseline: old })) };
	}
	json.load = Object.fromEntries(IMPLS.map((impl) => [impl, Object.fromEntries(chosen.map((n) => [n, { busy: summaries[impl][n].busy, others: summaries[impl][n].others, clean: summaries[impl][n].clean }]))]));
	console.log(`\n${lines.join('\n')}\n`);
	fs.writeFileSync(path.join(OUT, 'latest.json'), `${JSON.stringify(json, null, '\t')}\n`);
	fs.writeFileSync(path.join(OUT, 'latest.md'), `${lines.join('\n')}\n`);
	// Every run's figures, to see how far apart the runs behind a median were.
	fs.writeFileSync(path.join(OUT, 'latest-runs.json'), `${JSON.stringify(results, null, '\t')}\n`);
	console.log(`BENCH_JSON ${JSON.stringify(json)}`);
}

// Peers in background pages must not be throttled: every page here is "in the background".
const BROWSER_FLAGS = ['--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

main().catch((err) => fail(err.stack));
