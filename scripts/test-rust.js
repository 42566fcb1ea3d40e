#!/usr/bin/env node
'use strict';
// Runs the workspace's Rust tests for the same target triple that `napi build`
// compiles the addon for, and over the same package graph (so with the same
// features), so that both share one set of compiled dependencies in target/
// instead of building the tree twice.

const { execFileSync, spawnSync } = require('node:child_process');

const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1];
if (!host) {
	console.error('enslavism: cannot read the host triple from `rustc -vV`');
	process.exit(1);
}
const result = spawnSync('cargo', ['test', '--workspace', '--target', host, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
