'use strict';
// The implementations the benchmark compares, loaded by name in the
// benchmark's child processes. `ours` is this package with the release build
// the benchmark made (NAPI_RS_NATIVE_LIBRARY_PATH), `0.9.0` the registry's
// enslavism 0.9.0 (devDependency `enslavism-0.9.0`, its wrtc replaced by
// @roamhq/wrtc through npm overrides), and, when BENCH_BASELINE names a git
// revision, `baseline`: this package at that revision (its tree in
// target/bench/baseline-src, its own release addon; run.js builds both).

const fs = require('node:fs');

const IMPLS = process.env.BENCH_BASELINE ? ['0.9.0', 'ours', 'baseline'] : ['0.9.0', 'ours'];

/** Whether implementation `name` is this package (now, or at the baseline revision): same API, same options. */
function isEngine(name) {
	return name === 'ours' || name === 'baseline';
}

/**
 * The package of implementation `name`. A child process loads one
 * implementation only; for `baseline` it points napi-rs's generated loader
 * (binding.js, which honours NAPI_RS_NATIVE_LIBRARY_PATH before anything
 * else) at the baseline's addon, then checks that this addon, and not ours,
 * is the one that got loaded.
 */
function loadImpl(name) {
	if (name === 'ours') return require('../..');
	if (name === '0.9.0') return require('enslavism-0.9.0');
	if (name === 'baseline') {
		const dir = process.env.BENCH_BASELINE_DIR;
		const addon = process.env.BENCH_BASELINE_ADDON;
		if (!dir || !addon) throw new Error('baseline: BENCH_BASELINE_DIR and BENCH_BASELINE_ADDON are not set (run.js sets them when BENCH_BASELINE is)');
		const ours = process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
		process.env.NAPI_RS_NATIVE_LIBRARY_PATH = addon;
		const pkg = require(dir);
		const loaded = Object.keys(require.cache);
		const real = (file) => fs.realpathSync(file);
		if (!loaded.includes(real(addon)) || (ours && real(ours) !== real(addon) && loaded.includes(real(ours)))) {
			throw new Error(`baseline: ${dir} did not load its addon ${addon}`);
		}
		return pkg;
	}
	throw new Error(`unknown implementation ${JSON.stringify(name)}`);
}

/**
 * This package's slave options (now or at the baseline): its ICE address,
 * plus `BENCH_SLAVE_OPTIONS` (JSON, e.g. '{"maxMessageSize":16384}') to
 * measure a setting against 0.9.0 (the baseline gets them too). 0.9.0 takes none.
 */
function slaveOptions(name, address) {
	if (!isEngine(name)) return undefined;
	return { iceAddresses: [address], ...JSON.parse(process.env.BENCH_SLAVE_OPTIONS || '{}') };
}

/** Master options: no per-client offer limit (0.9.0 has none, and the setup loop offers quickly). */
function masterOptions(name, extra = {}) {
	return isEngine(name) ? { maxOffersPerSecond: 0, maxCandidatesPerSecond: 0, maxConnections: 200_000, ...extra } : undefined;
}

module.exports = { IMPLS, isEngine, loadImpl, slaveOptions, masterOptions };
