'use strict';
// A redis-server (Debian's package) for the cluster section, as the tests
// start theirs (__test__/redis.js): on a free loopback port, no persistence,
// killed when its stdin closes, so that it dies with the benchmark (it would
// otherwise keep the namespace alive). Unlike the tests' one, nothing of it
// reaches the benchmark's output (its shell would print "Killed").

const { spawn } = require('node:child_process');
const net = require('node:net');

const READY_LIMIT_MS = 10_000;

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

/** Starts redis-server; resolves once it accepts connections, with `{ port, url, kill() }`. */
async function startRedis() {
	const port = await freePort();
	const watch = 'exec 3<&0; redis-server "$@" </dev/null & pid=$!; (cat <&3 >/dev/null; kill -9 $pid) & wait $pid';
	const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', ''];
	const child = spawn('sh', ['-c', watch, 'sh', ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
	let log = '';
	const gone = new Promise((resolve) => child.on('exit', resolve));
	let timer;
	await Promise.race([
		new Promise((resolve, reject) => {
			child.on('error', (err) => reject(new Error(`cannot run redis-server (Debian package redis-server): ${err.message}`)));
			child.on('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${log}`)));
			child.stdout.on('data', (chunk) => {
				log += chunk;
				if (log.includes('Ready to accept connections')) resolve();
			});
		}),
		new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`redis-server was not ready within ${READY_LIMIT_MS} ms:\n${log}`)), READY_LIMIT_MS); }),
	]).catch((err) => {
		child.stdin.end();
		throw err;
	}).finally(() => clearTimeout(timer));
	child.stdout.resume();
	return {
		port,
		url: `redis://127.0.0.1:${port}`,
		/** SIGKILLs it; resolves once it is gone. */
		kill() {
			child.stdin.end();
			return gone;
		},
	};
}

module.exports = { startRedis };
