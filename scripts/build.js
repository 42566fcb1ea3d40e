#!/usr/bin/env node
'use strict';
// Builds the native addon from source with @napi-rs/cli.
//
//   node scripts/build.js            build (debug in a git checkout, release otherwise)
//   node scripts/build.js --release  release build
//   node scripts/build.js --if-missing  build only when no addon is present (the npm `install` hook)
//
// ENSLAVISM_PROFILE=debug|release overrides the choice of profile.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);

/** True when napi-rs's loader finds an addon: this platform's prebuilt package, or one built here. */
function addonPresent() {
	try {
		require(path.join(root, 'binding.js'));
		return true;
	} catch {
		return false;
	}
}

if (args.includes('--if-missing') && addonPresent()) {
	console.log('enslavism: native addon present (prebuilt or built; `npm run build` rebuilds from source)');
	process.exit(0);
}

// A development checkout gets fast debug builds for the tests; an installed
// package gets an optimised one.
const inCheckout = fs.existsSync(path.join(root, '.git'));
const profile = process.env.ENSLAVISM_PROFILE
	|| (args.includes('--release') ? 'release' : inCheckout ? 'debug' : 'release');

let cli;
try {
	const manifest = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
	cli = path.join(path.dirname(manifest), require(manifest).bin.napi);
} catch {
	console.error('enslavism: @napi-rs/cli is missing; run `npm install` first');
	process.exit(1);
}

const napiArgs = [cli, 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts', '--output-dir', '.'];
if (profile === 'release') napiArgs.push('--release');
console.log(`enslavism: building the native addon (${profile}) with cargo; the first build takes a few minutes`);
const result = spawnSync(process.execPath, napiArgs, { cwd: root, stdio: 'inherit' });
if (result.error) {
	console.error(`enslavism: cannot run the build: ${result.error.message}`);
	process.exit(1);
}
if (result.status !== 0) {
	console.error('enslavism: the native build failed. It needs a Rust toolchain (cargo, rustc >= 1.88): https://rustup.rs');
}
process.exit(result.status ?? 1);
