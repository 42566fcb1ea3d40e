'use strict';
// The two implementations the benchmark compares, loaded by name in the
// benchmark's child processes. `ours` is this package with the release build
// the benchmark made (NAPI_RS_NATIVE_LIBRARY_PATH), `0.9.0` the registry's
// enslavism 0.9.0 (devDependency `enslavism-0.9.0`, its wrtc replaced by
// @roamhq/wrtc through npm overrides).

const IMPLS = ['0.9.0', 'ours'];

/** The package of implementation `name`. */
function loadImpl(name) {
	if (name === 'ours') return require('../..');
	if (name === '0.9.0') return require('enslavism-0.9.0');
	throw new Error(`unknown implementation ${JSON.stringify(name)}`);
}

/** The fourth Slave argument: ours binds ICE to the namespace's address; 0.9.0 takes none. */
/**
 * Our slave's options: its ICE address, plus `BENCH_SLAVE_OPTIONS` (JSON,
 * e.g. '{"maxMessageSize":16384}') to measure a setting against 0.9.0.
 */
function slaveOptions(name, address) {
	if (name !== 'ours') return undefined;
	return { iceAddresses: [address], ...JSON.parse(process.env.BENCH_SLAVE_OPTIONS || '{}') };
}

/** Master options: no per-client offer limit (0.9.0 has none, and the setup loop offers quickly). */
function masterOptions(name, extra = {}) {
	return name === 'ours' ? { maxOffersPerSecond: 0, maxCandidatesPerSecond: 0, maxConnections: 200_000, ...extra } : undefined;
}

module.exports = { IMPLS, loadImpl, slaveOptions, masterOptions };
