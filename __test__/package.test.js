'use strict';
// The published shape: `npm pack`'s tarball, installed into another folder,
// builds the addon from source and `require('enslavism')` works there.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');
/** How long `npm install` of the tarball may take: it builds the addon (our crates only, the rest is built). */
const INSTALL_TIMEOUT_MS = 13 * 60_000;

/** execFileSync, with a command that outlives its `timeout` reported as such. */
function runSync(file, args, options) {
	try {
		return execFileSync(file, args, options);
	} catch (err) {
		if (err.code === 'ETIMEDOUT') throw new Error(`${file} ${args[0]} did not finish within ${options.timeout} ms:\n${err.stderr ?? ''}`);
		throw err;
	}
}

// Synchronous: each command's own timeout is the real bound.
it('installs from the npm pack tarball, builds, and runs a master', { timeout: 15 * 60_000 }, () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'enslavism-pack-'));
	try {
		const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
		const packed = JSON.parse(runSync(npm, ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8', timeout: 60_000 }));
		const files = packed[0].files.map((f) => f.path);
		for (const needed of ['index.js', 'index.d.ts', 'client/index.mjs', 'client/index.d.ts', 'client/global.d.ts', 'Cargo.lock', 'crates/enslavism/src/lib.rs', 'src/lib.rs']) {
			assert.ok(files.includes(needed), `${needed} is in the tarball`);
		}
		assert.ok(!files.some((f) => f.endsWith('.node') || f.startsWith('target/')), 'no build output in the tarball');

		const app = path.join(dir, 'app');
		fs.mkdirSync(app);
		fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}');
		// Share the checkout's cargo target dir and profile: only our own crates recompile.
		const env = { ...process.env, CARGO_TARGET_DIR: path.join(root, 'target'), ENSLAVISM_PROFILE: 'debug' };
		runSync(npm, ['install', '--no-audit', '--no-fund', path.join(dir, packed[0].filename)], { cwd: app, env, stdio: 'pipe', timeout: INSTALL_TIMEOUT_MS });

		const out = runSync(process.execPath, ['-e', `
			const { Master } = require('enslavism');
			const m = new Master(0, { host: '127.0.0.1' });
			m.on('listening', () => fetch('http://127.0.0.1:' + m.port + '/enslavism/client.js')
				.then((r) => r.text())
				.then((t) => { console.log(t.includes('globalThis.MasterConnection') ? 'bundle ok' : 'bundle missing'); return m.close(); }));
		`], { cwd: app, encoding: 'utf8', timeout: 30_000 });
		assert.equal(out.trim(), 'bundle ok');
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});
