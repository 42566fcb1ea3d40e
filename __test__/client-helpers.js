'use strict';
// What the native-client tests share: the Rust examples (`bots`,
// `client_check`) as `npm test` builds them (node scripts/test-rust.js), and
// the slaves they talk to (echo, refuse), of either version.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const http = require('node:http');
const { NETNS_ADDRESS } = require('./netns.js');
const { WAIT_MS, within } = require('./helpers.js');

/** `new Slave(…)` of either version, bounded (0.9.0's has no connection timeout of its own). */
function startSlave(Slave, url, userData, options) {
	return within(new Slave(url, userData, undefined, options), 2 * WAIT_MS, `the slave ${JSON.stringify(userData)} did not register`);
}

/**
 * Resolves with the slave named `name` once `masterCon` (either kind of
 * client) lists it: added, or listed again after a reconnection (the slave
 * may register with a restarted master after the client is back). Rejects
 * if that takes `ms`.
 */
function listedSlave(masterCon, name, ms) {
	const found = masterCon.slaves.find((s) => s?.userData?.name === name);
	if (found) return Promise.resolve(found);
	let onListed;
	const seen = new Promise((resolve) => {
		onListed = (slaveCo) => { if (slaveCo.userData?.name === name) resolve(slaveCo); };
		masterCon.addEventListener('slaveadded', onListed);
		masterCon.addEventListener('slaverelisted', onListed);
	});
	return within(seen, ms, `the slave '${name}' was not listed`).finally(() => {
		masterCon.removeEventListener('slaveadded', onListed);
		masterCon.removeEventListener('slaverelisted', onListed);
	});
}

/** An example binary as `npm test` builds it (cargo test builds the examples; CARGO_TARGET_DIR is cargo's). */
function example(name) {
	const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1];
	const target = process.env.CARGO_TARGET_DIR || path.join(__dirname, '..', 'target');
	const file = path.join(target, host, 'debug', 'examples', name);
	assert.ok(fs.existsSync(file), `${file} is missing: \`npm test\` builds it (node scripts/test-rust.js)`);
	return file;
}

/**
 * Runs the bots against the master at `url` to the end; resolves with their
 * JSON report and what they printed on stderr. Bots that have not finished
 * `timeout` ms after their `--seconds` are killed, and this rejects.
 */
function runBots(url, args, { timeout = 30_000 } = {}) {
	const at = args.indexOf('--seconds');
	const bound = (at === -1 ? 0 : Number(args[at + 1]) * 1000) + timeout;
	return new Promise((resolve, reject) => {
		const child = spawn(example('bots'), ['--master', url, '--ice-address', NETNS_ADDRESS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
		let stdout = '';
		let stderr = '';
		const timer = setTimeout(() => {
			child.kill('SIGKILL');
			reject(new Error(`the bots (${args.join(' ')}) did not finish within ${bound} ms:\n${stderr}`));
		}, bound);
		child.stdout.on('data', (d) => { stdout += d; });
		child.stderr.on('data', (d) => { stderr += d; });
		child.on('error', reject);
		child.on('close', (code) => {
			clearTimeout(timer);
			if (code !== 0) return reject(new Error(`bots exited with ${code}:\n${stderr}`));
			try {
				resolve({ report: JSON.parse(stdout.trim().split('\n').pop()), stderr });
			} catch (err) {
				reject(new Error(`no JSON report from the bots: ${err.message}\n${stdout}\n${stderr}`));
			}
		});
	});
}

/** A slave of either version, named "echo", that echoes every message. */
async function echoSlave(Slave, url, options) {
	const slave = await startSlave(Slave, url, { name: 'echo' }, options);
	const labels = [];
	slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
		labels.push(dc.label);
		dc.addEventListener('message', (ev) => dc.send(ev.data));
	}));
	return { slave, labels };
}

/** An echo slave named "echo" and a slave named "refuse" that refuses every offer. */
async function checkSlaves(Slave, url, options) {
	const echo = await echoSlave(Slave, url, options);
	const refuse = await startSlave(Slave, url, { name: 'refuse' }, options);
	refuse.on('offer', (reject) => reject());
	return { echo: echo.slave, refuse };
}

/**
 * A 0.9.0 master on an http.Server on 127.0.0.1:`port` (0: a free one).
 * Upgraded sockets are not the server's any more: its client sockets are
 * kept, and `close()` cuts them as a restart would.
 */
async function oldMaster(port = 0) {
	const old = require('enslavism-0.9.0');
	const server = http.createServer();
	await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
	const clientSockets = new Set();
	new old.Master(server).on('clientconnection', (ws) => clientSockets.add(ws));
	return {
		port: server.address().port,
		close() {
			for (const ws of clientSockets) ws.terminate();
			server.closeAllConnections();
			server.close();
		},
	};
}

/** Cuts 0.9.0 slaves made by `checkSlaves` (they have no `close()`). */
function closeOldSlaves(made) {
	for (const { echo, refuse } of made) {
		for (const slave of [echo, refuse]) {
			slave.ws.terminate();
			for (const c of slave.connections) c.clientCon.close();
		}
	}
}

module.exports = { checkSlaves, closeOldSlaves, echoSlave, example, listedSlave, oldMaster, runBots };
