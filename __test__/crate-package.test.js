'use strict';
// The Rust crate stands on its own: `cargo package` packs it (the browser
// bundle's source included, through the crate's link to client/index.mjs)
// and builds the packed crate outside this workspace's sources.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');

it('cargo package -p enslavism packs the bundle source and builds the packed crate', { timeout: 15 * 60_000 }, () => {
	const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1];
	const list = execFileSync('cargo', ['package', '-p', 'enslavism', '--list', '--allow-dirty'], { cwd: ROOT, encoding: 'utf8' });
	assert.ok(list.split('\n').includes('client/index.mjs'), list);
	// The same target triple as the other builds, so that their compiled dependencies are reused.
	const packed = spawnSync('cargo', ['package', '-p', 'enslavism', '--allow-dirty', '--target', host], { cwd: ROOT, encoding: 'utf8' });
	assert.equal(packed.status, 0, packed.stderr);
	assert.match(packed.stderr, /Verifying enslavism/);
});
