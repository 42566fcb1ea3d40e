'use strict';
// A real redis-server (Debian's package) of the test's own: on a free
// loopback port, without persistence, killed by the test.

const { spawn } = require('node:child_process');
const net = require('node:net');
const { within } = require('./helpers.js');

/** A free TCP port on 127.0.0.1 (bound then released). */
function freePort() {
	return new Promise((resolve, reject) => {
		const server = net.createServer();
		server.on('error', reject);
		server.listen(0, '127.0.0.1', () => {
			const { port } = server.address();
			server.close(() => resolve(port));
		});
	});
}

/**
 * Starts redis-server on 127.0.0.1:`port` (default: a free one); resolves
 * once it accepts connections, with `{ port, url, kill() }`.
 */
async function startRedis(port) {
	port ??= await freePort();
	// Through a shell that kills it once our end of its stdin closes: when
	// the test process dies, SIGKILLed or not, redis-server goes too (it
	// would otherwise keep the test's network namespace alive).
	const watch = 'exec 3<&0; redis-server "$@" </dev/null & pid=$!; (cat <&3 >/dev/null; kill -9 $pid) & wait $pid';
	const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', ''];
	// (Its stderr is dropped: the shell reports the kill there.)
	const child = spawn('sh', ['-c', watch, 'sh', ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
	let log = '';
	const ready = new Promise((resolve, reject) => {
		child.on('error', (err) => reject(new Error(`cannot run redis-server (Debian package redis-server): ${err.message}`)));
		child.on('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${log}`)));
		child.stdout.on('data', (chunk) => {
			log += chunk;
			if (log.includes('Ready to accept connections')) resolve();
		});
	});
	await within(ready, 10_000, 'redis-server was not ready');
	const gone = new Promise((resolve) => child.on('exit', resolve));
	return {
		port,
		url: `redis://127.0.0.1:${port}`,
		/** SIGKILLs it; resolves once it is gone (its port free). */
		kill() {
			child.stdin.end();
			return gone;
		},
	};
}

module.exports = { startRedis };
