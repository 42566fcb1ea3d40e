'use strict';
// The native client's `bots` example (crates/enslavism/examples/bots.rs), as
// the tests run it: built by `npm test` (node scripts/test-rust.js), inside
// the test's network namespace.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { NETNS_ADDRESS } = require('./netns.js');

/** An example binary as `npm test` builds it (cargo test builds the examples). */
function example(name) {
	const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1];
	const file = path.join(__dirname, '..', 'target', host, 'debug', 'examples', name);
	assert.ok(fs.existsSync(file), `${file} is missing: \`npm test\` builds it (node scripts/test-rust.js)`);
	return file;
}

/**
 * Runs the bots against the master at `url` to the end; resolves with their
 * JSON report and what they printed on stderr.
 */
function runBots(url, args) {
	return new Promise((resolve, reject) => {
		const child = spawn(example('bots'), ['--master', url, '--ice-address', NETNS_ADDRESS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
		let stdout = '';
		let stderr = '';
		child.stdout.on('data', (d) => { stdout += d; });
		child.stderr.on('data', (d) => { stderr += d; });
		child.on('error', reject);
		child.on('close', (code) => {
			if (code !== 0) return reject(new Error(`bots exited with ${code}:\n${stderr}`));
			try {
				resolve({ report: JSON.parse(stdout.trim().split('\n').pop()), stderr });
			} catch (err) {
				reject(new Error(`no JSON report from the bots: ${err.message}\n${stdout}\n${stderr}`));
			}
		});
	});
}

module.exports = { example, runBots };
