'use strict';
// The native addon, loaded once for every wrapper by napi-rs's loader
// (binding.js): this platform's prebuilt package (enslavism-<platform>), or
// an addon built from source in the package itself. When there is neither,
// the error says what to do.

const { spawnSync } = require('node:child_process');
const { version, optionalDependencies = {} } = require('../package.json');

/** napi-rs's name of this platform (`linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`…). */
function platformName() {
	const base = `${process.platform}-${process.arch}`;
	if (process.platform === 'win32') return `${base}-msvc`;
	if (process.platform !== 'linux') return base;
	const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
	return `${base}-${glibc ? 'gnu' : 'musl'}`;
}

/** Why there is no addon, and the ways to get one. */
function notBuilt(cause) {
	const platform = platformName();
	const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
	const toolchain = cargo.status === 0 ? `${cargo.stdout.trim()} is here` : 'cargo is missing here: https://rustup.rs, Rust >= 1.88';
	// The published package lists a prebuilt package per platform it has one for.
	const prebuilt = `enslavism-${platform}`;
	const install = prebuilt in optionalDependencies
		? `Install the prebuilt one: npm install ${prebuilt}@${version} (npm does so by itself unless optional dependencies are omitted). Or build it`
		: `There is no prebuilt package for ${platform}: build it`;
	const err = new Error(`enslavism: no native addon for ${platform}. ${install} from source, which needs install scripts allowed `
		+ `(npm install-scripts approve enslavism) and a Rust toolchain (${toolchain}): npm rebuild enslavism.`);
	err.code = 'ERR_ENSLAVISM_NOT_BUILT';
	err.cause = cause;
	return err;
}

function load() {
	try {
		return require('../binding.js');
	} catch (err) {
		const loaderMissing = err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('binding.js');
		const addonMissing = /^(Cannot find native binding|Failed to load native binding)/.test(String(err.message));
		if (loaderMissing || addonMissing) throw notBuilt(err);
		throw err;
	}
}

module.exports = load();
