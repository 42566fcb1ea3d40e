'use strict';
// The published shape, installed into fresh folders as a user would:
// - `npm run pack:all`'s two tarballs (the main package and this platform's
//   prebuilt addon) with install scripts ignored (npm 12's default): works;
// - the main tarball alone, scripts ignored: require() says what to do;
// - `npm pack`'s tarball with scripts: builds the addon from source.
// The tarballs' dependencies (@napi-rs/cli) come from npm's cache where it
// has them, else from the registry: a fresh machine's cache holds the
// tarballs `npm install` fetched by the lockfile, but not the registry's
// metadata that resolving a tarball's own dependencies needs (--offline
// failed there with ENOTCACHED).

const { describe, it, before, after } = require('node:test');
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

/** A fresh project in `dir` with the tarballs installed, scripts ignored; returns its folder. */
function installIgnoringScripts(dir, name, tarballs) {
	const app = path.join(dir, name);
	fs.mkdirSync(app);
	fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}');
	const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
	runSync(npm, ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs], { cwd: app, stdio: 'pipe', timeout: 120_000 });
	return app;
}

/** Runs `code` with Node in `cwd`; returns what it printed. */
function node(cwd, code) {
	return runSync(process.execPath, ['-e', code], { cwd, encoding: 'utf8', timeout: 30_000 }).trim();
}

const RUN_A_MASTER = `
	const { Master } = require('enslavism');
	const m = new Master(0, { host: '127.0.0.1' });
	m.on('listening', () => fetch('http://127.0.0.1:' + m.port + '/enslavism/client.js')
		.then((r) => r.text())
		.then((t) => { console.log(t.includes('globalThis.MasterConnection') ? 'bundle ok' : 'bundle missing'); return m.close(); }));
`;

describe('prebuilt packages (npm run pack:all)', { timeout: 10 * 60_000 }, () => {
	let dist;
	let dir;
	let mainTarball;
	let platformTarball;

	before(() => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), 'enslavism-prebuilt-'));
		dist = path.join(dir, 'dist');
		// The debug addon `npm test` built: the packing is what is tested, not the optimiser.
		const out = runSync(process.execPath, [path.join(root, 'scripts', 'pack-all.js'), '--out-dir', dist],
			{ cwd: root, env: { ...process.env, ENSLAVISM_PROFILE: 'debug' }, encoding: 'utf8', stdio: 'pipe', timeout: 5 * 60_000 });
		const { version } = require('../package.json');
		mainTarball = path.join(dist, `enslavism-${version}.tgz`);
		platformTarball = fs.readdirSync(dist).map((f) => path.join(dist, f)).find((f) => f !== mainTarball && f.endsWith(`-${version}.tgz`));
		assert.ok(fs.existsSync(mainTarball) && platformTarball, `pack:all wrote both tarballs:\n${out}`);
	}, { timeout: 5 * 60_000 });

	after(() => {
		if (dir) fs.rmSync(dir, { recursive: true, force: true });
	});

	it('the main package and this platform\'s, scripts ignored: require(\'enslavism\') works', { timeout: 3 * 60_000 }, () => {
		const app = installIgnoringScripts(dir, 'both', [mainTarball, platformTarball]);
		const manifest = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'enslavism', 'package.json'), 'utf8'));
		const platformPackage = path.basename(platformTarball).replace(/-\d+\.\d+\.\d+\.tgz$/, '');
		assert.ok(Object.keys(manifest.optionalDependencies).includes(platformPackage), JSON.stringify(manifest.optionalDependencies));
		assert.ok(Object.keys(manifest.optionalDependencies).length >= 7, 'one optional dependency per platform of napi.targets');
		// Nothing was built: the addon is the platform package's.
		assert.deepEqual(fs.readdirSync(path.join(app, 'node_modules', 'enslavism')).filter((f) => f.endsWith('.node')), []);
		assert.equal(node(app, RUN_A_MASTER), 'bundle ok');
	});

	it('the main package alone, scripts ignored: require(\'enslavism\') says what to do', { timeout: 3 * 60_000 }, () => {
		const app = installIgnoringScripts(dir, 'alone', [mainTarball]);
		const out = node(app, `
			try { require('enslavism'); console.log('loaded?!'); }
			catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })); }
		`);
		const { code, message } = JSON.parse(out);
		assert.equal(code, 'ERR_ENSLAVISM_NOT_BUILT');
		const platformPackage = path.basename(platformTarball).replace(/\.tgz$/, '').replace(/-(\d+\.\d+\.\d+)$/, '@$1');
		assert.ok(message.includes(`npm install ${platformPackage}`), message);
		assert.match(message, /npm rebuild enslavism/);
		assert.match(message, /npm install-scripts approve enslavism/);
		assert.match(message, /cargo/);
	});
});

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
