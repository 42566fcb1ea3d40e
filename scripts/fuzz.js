#!/usr/bin/env node
'use strict';
// Runs the engine's fuzz targets (crates/enslavism/fuzz) with cargo-fuzz and
// libFuzzer, one after another: `npm run fuzz [-- RUNS [TARGET...]]`
// (default: 10 million inputs each, every target). Needs `cargo install
// cargo-fuzz`. cargo-fuzz passes compiler flags that only nightly Rust
// accepts; RUSTC_BOOTSTRAP lets the stable toolchain take them. No sanitizer
// is used: the engine forbids unsafe code, so what we look for is panics.
// New inputs go to target/fuzz/corpus/<target>; crashes to
// target/fuzz/artifacts/<target>: copy those to
// crates/enslavism/fuzz/regressions/<target>/ and `npm test` replays them.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const TARGETS = ['wire_frame', 'handshake_headers', 'offer_text', 'ice_datagrams'];
const root = path.join(__dirname, '..');
const fuzzDir = path.join(root, 'crates', 'enslavism', 'fuzz');
const work = path.join(root, 'target', 'fuzz');
const [runsArg, ...names] = process.argv.slice(2);
const runs = Number(runsArg ?? 10_000_000);
const targets = names.length > 0 ? names : TARGETS;
if (!Number.isInteger(runs) || runs < 1 || targets.some((t) => !TARGETS.includes(t))) {
	console.error(`usage: npm run fuzz -- [RUNS] [${TARGETS.join('|')}...]`);
	process.exit(2);
}

const env = { ...process.env, RUSTC_BOOTSTRAP: '1' };
let failed = false;
for (const target of targets) {
	const corpus = path.join(work, 'corpus', target);
	const artifacts = path.join(work, 'artifacts', target);
	fs.mkdirSync(corpus, { recursive: true });
	fs.mkdirSync(artifacts, { recursive: true });
	const started = Date.now();
	const result = spawnSync('cargo', [
		'fuzz', 'run', '--sanitizer', 'none', '--target-dir', work, target,
		corpus, path.join(fuzzDir, 'corpus', target),
		'--', `-runs=${runs}`, '-max_len=4096', `-artifact_prefix=${artifacts}/`, '-print_final_stats=1',
	], { cwd: path.join(root, 'crates', 'enslavism'), env, stdio: 'inherit' });
	const seconds = ((Date.now() - started) / 1000).toFixed(0);
	console.log(`enslavism fuzz: ${target}: ${result.status === 0 ? 'no crash' : 'FAILED'} in ${runs} inputs, ${seconds} s`);
	failed ||= result.status !== 0;
}
process.exit(failed ? 1 : 0);
