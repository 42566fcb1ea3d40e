'use strict';
// Child processes of the benchmark: masters and slaves of either
// implementation (bench/processes/), each killed at the end of its section.

const { fork } = require('node:child_process');
const { once } = require('node:events');
const path = require('node:path');

const { ADDRESS } = require('./namespace.js');
const START_LIMIT_MS = 30_000;

/** Resolves with the child's first IPC message, or rejects if it exits or stays silent. */
function firstMessage(child, what) {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${what}: not ready in ${START_LIMIT_MS} ms`)), START_LIMIT_MS);
		child.once('message', (m) => { clearTimeout(timer); resolve(m); });
		child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited (${code})`)); });
	});
}

/** Forks bench/processes/<name>.js with `args`; resolves with { child, ready } once it reports. */
async function start(name, args) {
	const child = fork(path.join(__dirname, '..', 'processes', `${name}.js`), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
	const ready = await firstMessage(child, `${name} ${args.join(' ')}`);
	return { child, ready };
}

/** A master of `impl` (mode 'page' or 'port'): { child, port, url }. */
async function startMaster(impl, mode) {
	const { child, ready } = await start('master', [impl, mode]);
	return { child, port: ready.port, url: `ws://127.0.0.1:${ready.port}` };
}

/** A slave of `impl` registered with the master at `url`: { child, ask(message) }. */
async function startSlave(impl, url) {
	const { child } = await start('slave', [impl, url, ADDRESS]);
	const ask = (message) => {
		const reply = firstMessage(child, `slave ${impl}, ${message.cmd}`);
		child.send(message);
		return reply;
	};
	return { child, ask };
}

/** Kills the children and waits until they are gone. */
async function stop(...children) {
	await Promise.all(children.filter(Boolean).map(async (child) => {
		if (child.exitCode !== null || child.signalCode !== null) return;
		const gone = once(child, 'exit');
		child.kill('SIGKILL');
		await gone;
	}));
}

module.exports = { startMaster, startSlave, stop };
