'use strict';
// The Rust crate stands on its own: `cargo package` packs it (the browser
// bundle's source included, through the crate's link to client/index.mjs)
// and builds the packed crate outside this workspace's sources.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');
/** How long building the packed crate may take (its dependencies are mostly built already). */
const BUILD_TIMEOUT_MS = 14 * 60_000;

// Synchronous: each command's own timeout is the real bound.
it('cargo package -p enslavism packs the bundle source and builds the packed crate', { timeout: 15 * 60_000 }, () => {
	const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8', timeout: 30_000 }))[1];
	const list = execFileSync('cargo', ['package', '-p', 'enslavism', '--list', '--allow-dirty'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
	assert.ok(list.split('\n').includes('client/index.mjs'), list);
	// The same target triple as the other builds, so that their compiled dependencies are reused.
	const packed = spawnSync('cargo', ['package', '-p', 'enslavism', '--allow-dirty', '--target', host], { cwd: ROOT, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
	if (packed.error?.code === 'ETIMEDOUT') assert.fail(`cargo package did not finish within ${BUILD_TIMEOUT_MS} ms:\n${packed.stderr}`);
	assert.equal(packed.status, 0, packed.stderr);
	assert.match(packed.stderr, /Verifying enslavism/);
});
