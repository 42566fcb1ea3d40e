#!/usr/bin/env node
'use strict';
// `npm run pack:all`: the tarballs a release publishes, for this machine.
//
//   dist/enslavism-<version>.tgz            the main package: JS, types, the
//                                           napi-rs loader, the Rust sources
//                                           (the fallback build), and one
//                                           optionalDependency per platform
//   dist/enslavism-<platform>-<version>.tgz this machine's prebuilt addon
//
// The platform packages are napi-rs's own layout: `napi create-npm-dirs`
// makes one folder per target of package.json's `napi.targets`, `napi
// artifacts` puts each built addon in its folder. Targets this machine cannot
// build (another OS or CPU, or no cross toolchain) are listed and skipped: a
// release builds them on their own machines and gathers them the same way.
//
// The addon is built in release mode; ENSLAVISM_PROFILE=debug packs the
// debug build a checkout already has (what the packaging test does).
// `--out-dir DIR` writes the tarballs there instead of dist/ (emptied first).

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const outDirFlag = process.argv.indexOf('--out-dir');
const DIST = outDirFlag === -1 ? path.join(ROOT, 'dist') : path.resolve(process.argv[outDirFlag + 1]);
const STAGE = path.join(DIST, 'stage');
const ARTIFACTS = path.join(DIST, 'artifacts');
const pkg = require(path.join(ROOT, 'package.json'));
const napiCli = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json', { paths: [ROOT] })), 'dist', 'cli.js');

function run(file, args, cwd) {
	const result = spawnSync(file, args, { cwd, stdio: 'inherit' });
	if (result.status !== 0) {
		console.error(`pack:all: ${path.basename(file)} ${args.join(' ')} failed`);
		process.exit(1);
	}
}

function napi(args, cwd) {
	run(process.execPath, [napiCli, ...args], cwd);
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** `npm pack` of `dir` into DIST; returns the tarball's name. */
function npmPack(dir) {
	const [packed] = JSON.parse(execFileSync(npm, ['pack', '--json', '--pack-destination', DIST], { cwd: dir, encoding: 'utf8' }));
	return packed.filename;
}

// 1. This machine's addon and the napi-rs loader (binding.js).
if (process.env.ENSLAVISM_PROFILE !== 'debug') run(process.execPath, [path.join(__dirname, 'build.js'), '--release'], ROOT);
const built = fs.readdirSync(ROOT).filter((f) => f.startsWith(`${pkg.napi.binaryName}.`) && f.endsWith('.node'));
if (built.length === 0 || !fs.existsSync(path.join(ROOT, 'binding.js'))) {
	console.error('pack:all: no addon was built');
	process.exit(1);
}

fs.rmSync(DIST, { recursive: true, force: true });
fs.mkdirSync(ARTIFACTS, { recursive: true });
for (const file of built) fs.copyFileSync(path.join(ROOT, file), path.join(ARTIFACTS, file));

// 2. The main package as npm would pack it, in a stage of its own.
const [listing] = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json'], { cwd: ROOT, encoding: 'utf8' }));
for (const { path: file } of listing.files) {
	fs.mkdirSync(path.join(STAGE, path.dirname(file)), { recursive: true });
	fs.copyFileSync(path.join(ROOT, file), path.join(STAGE, file));
}

// 3. One folder per platform (napi-rs), each built addon in its own.
napi(['create-npm-dirs', '--npm-dir', 'npm'], STAGE);
const { parseTriple } = require(path.join(path.dirname(napiCli), 'index.cjs'));
const platformOf = (triple) => parseTriple(triple).platformArchABI;
const isBuilt = (triple) => built.includes(`${pkg.napi.binaryName}.${platformOf(triple)}.node`);
// `napi artifacts` wants an addon for every target it is given: give it those built here.
const config = path.join(DIST, 'napi-built.json');
fs.writeFileSync(config, JSON.stringify({ binaryName: pkg.napi.binaryName, targets: pkg.napi.targets.filter(isBuilt) }));
napi(['artifacts', '--output-dir', ARTIFACTS, '--npm-dir', 'npm', '--config-path', config], STAGE);

// 4. The main package depends, optionally, on every platform's package
// (named as napi-rs named its folder): npm installs the one whose os, cpu
// and libc match this machine's.
const staged = JSON.parse(fs.readFileSync(path.join(STAGE, 'package.json'), 'utf8'));
staged.optionalDependencies = Object.fromEntries(pkg.napi.targets.map((triple) => {
	const manifest = JSON.parse(fs.readFileSync(path.join(STAGE, 'npm', platformOf(triple), 'package.json'), 'utf8'));
	return [manifest.name, manifest.version];
}));
fs.writeFileSync(path.join(STAGE, 'package.json'), `${JSON.stringify(staged, null, '\t')}\n`);

const builtTriples = pkg.napi.targets.filter(isBuilt);
const written = [npmPack(STAGE), ...builtTriples.map((triple) => npmPack(path.join(STAGE, 'npm', platformOf(triple))))];
fs.rmSync(STAGE, { recursive: true, force: true });
fs.rmSync(ARTIFACTS, { recursive: true, force: true });
fs.rmSync(config);
console.log(`pack:all: wrote ${written.map((f) => path.relative(process.cwd(), path.join(DIST, f))).join(', ')}`);
const skipped = pkg.napi.targets.filter((triple) => !isBuilt(triple));
if (skipped.length > 0) console.log(`pack:all: not built on this machine (build each where its toolchain is): ${skipped.join(', ')}`);
