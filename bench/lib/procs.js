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

/** Forks bench/processes/<name>.js with `args` (and Node flags `execArgv`); resolves with { child, ready } once it reports. */
async function start(name, args, execArgv = []) {
	const child = fork(path.join(__dirname, '..', 'processes', `${name}.js`), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
	const ready = await firstMessage(child, `${name} ${args.join(' ')}`);
	return { child, ready };
}

/** A master of `impl` (mode 'page' or 'port'; see processes/master.js), with Node flags `execArgv`: { child, port, url }. */
async function startMaster(impl, mode, execArgv) {
	const { child, ready } = await start('master', [impl, mode], execArgv);
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

/**
 * Sends `message` to the child and resolves with its next reply holding
 * `key`, or rejects after `limitMs`.
 */
function ask(child, message, key, limitMs) {
	const answer = reply(child, key, limitMs);
	child.send(message);
	return answer;
}

/** Resolves with the child's next message holding `key` (sent by itself), or rejects after `limitMs`. */
function reply(child, key, limitMs) {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => done(new Error(`no ${key} from the child within ${limitMs} ms`)), limitMs);
		const onMessage = (m) => {
			if (m?.error) done(new Error(m.error));
			else if (m && key in m) done(null, m[key]);
		};
		const onExit = (code) => done(new Error(`the child exited (${code})`));
		function done(err, value) {
			clearTimeout(timer);
			child.off('message', onMessage).off('exit', onExit);
			if (err) reject(err);
			else resolve(value);
		}
		child.on('message', onMessage).once('exit', onExit);
	});
}

module.exports = { start, startMaster, startSlave, stop, ask, reply };
