'use strict';
// The typings are checked by TypeScript itself: `tsc --strict --noEmit` on
// usage files (__test__/types/) that exercise every documented API and
// hold `// @ts-expect-error` lines for misuse that must not compile. The Node
// API (index.d.ts), the browser client as a bundler imports it
// (client/index.d.ts), its globals for a page loading /enslavism/client.js
// as a classic script (client/global.d.ts), and the three as an application
// that installed the package reaches them (package.json "exports").

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const TYPES_DIR = path.join(__dirname, 'types');
const TSC = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
/** One tsc run takes 2-4 s on two cores. */
const TSC_TIMEOUT_MS = 60_000;

/** Runs the local tsc on the tsconfig.json `config`; fails with what tsc printed. */
function typeCheck(config) {
	return new Promise((resolve, reject) => {
		const args = [TSC, '--project', config, '--strict', '--noEmit', '--pretty', 'false'];
		execFile(process.execPath, args, { cwd: path.dirname(config), timeout: TSC_TIMEOUT_MS }, (error, stdout, stderr) => {
			if (error === null) return resolve();
			if (error.killed) return reject(new Error(`tsc did not finish checking ${config} within ${TSC_TIMEOUT_MS} ms`));
			reject(new assert.AssertionError({ message: `tsc --strict --noEmit -p ${config} failed:\n${stdout}${stderr}` }));
		});
	});
}

/**
 * An application folder (removed after `fn`) whose node_modules holds this
 * checkout as `enslavism` and its @types, with installed-usage.ts and a
 * tsconfig.json for it, resolving modules as Node does (nodenext).
 */
async function withInstalledPackage(fn) {
	const app = fs.mkdtempSync(path.join(os.tmpdir(), 'enslavism-types-'));
	try {
		fs.mkdirSync(path.join(app, 'node_modules'));
		fs.symlinkSync(path.join(__dirname, '..'), path.join(app, 'node_modules', 'enslavism'), 'dir');
		fs.symlinkSync(path.join(__dirname, '..', 'node_modules', '@types'), path.join(app, 'node_modules', '@types'), 'dir');
		fs.copyFileSync(path.join(TYPES_DIR, 'installed-usage.ts'), path.join(app, 'installed-usage.ts'));
		fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
			compilerOptions: {
				strict: true, noEmit: true, skipLibCheck: false, target: 'es2022', lib: ['es2022', 'dom'],
				module: 'nodenext', moduleResolution: 'nodenext', types: ['node'],
			},
			files: ['installed-usage.ts'],
		}));
		await fn(path.join(app, 'tsconfig.json'));
	} finally {
		fs.rmSync(app, { recursive: true, force: true });
	}
}

describe('typings, checked by tsc --strict', { timeout: 4 * TSC_TIMEOUT_MS }, () => {
	it('index.d.ts: the Node API (node-usage.ts)', () => typeCheck(path.join(TYPES_DIR, 'tsconfig.json')));
	it('client/index.d.ts: the browser client imported from enslavism/client (client-usage.ts)', () => typeCheck(path.join(TYPES_DIR, 'tsconfig.client.json')));
	it('client/global.d.ts: the globals of /enslavism/client.js (global-usage.ts)', () => typeCheck(path.join(TYPES_DIR, 'tsconfig.global.json')));
	it('the three, as an installed package reaches them through "exports" (installed-usage.ts)', () => withInstalledPackage(typeCheck));
});
