'use strict';
// Bare WebSocket clients (lib/wire.js bareConnect: the least JS per frame)
// of one master of a cluster (argv: URL), held by this process so that the
// masters and the benchmark do not read their frames. IPC:
//   { cmd: 'open', count }  opens that many (200 at a time), each once it has
//                           its first list; answers { open: total };
//   { cmd: 'expect', name } watches for the slave named `name`; answers
//                           { expecting: name }, then sends by itself
//                           { listed: { first, last } } once every client has
//                           it in an AddSlaves frame, and { unlisted: … }
//                           once every client has it in a RemoveSlaves frame
//                           (process.hrtime.bigint() as strings: the arrival
//                           of the first and of the last client's frame;
//                           cpuMs: this process's CPU time since `expect`).
// Exits when the parent goes.

const { ADD_SLAVES, REMOVE_SLAVES, now, addedSlaves, removedSlaves, bareConnect } = require('../lib/wire.js');

const [url] = process.argv.slice(2);
const port = Number(new URL(url).port);
const BATCH = 200;
const clients = [];
let expected = null; // { name, listed: { first, last, count }, unlisted: { … }, cpu }

function onFrame(client, frame) {
	if (expected === null) return;
	if (frame[0] === ADD_SLAVES && client.id === null) {
		const entry = addedSlaves(frame).find((e) => e.userData?.name === expected.name);
		if (entry === undefined) return;
		client.id = entry.id;
		arrived(expected.listed, 'listed');
	} else if (frame[0] === REMOVE_SLAVES && client.id !== null && !client.unlisted) {
		if (!removedSlaves(frame).includes(client.id)) return;
		client.unlisted = true;
		arrived(expected.unlisted, 'unlisted');
	}
}

function arrived(tally, key) {
	const at = now();
	tally.first ??= at;
	tally.last = at;
	if (++tally.count < clients.length) return;
	const cpu = process.cpuUsage(expected.cpu);
	send({ [key]: { first: String(tally.first), last: String(tally.last), cpuMs: (cpu.user + cpu.system) / 1000 } });
}

async function open(count) {
	for (let done = 0; done < count; done += BATCH) {
		await Promise.all(Array.from({ length: Math.min(BATCH, count - done) }, async () => {
			const client = { id: null, unlisted: false, frames: 0 };
			let listed;
			const first = new Promise((resolve) => { listed = resolve; });
			// The first frame is the list as it is now.
			const socket = await bareConnect(port, '/enslavism/clients', {
				limitMs: 30_000,
				onFrame: (frame) => (client.frames++ === 0 ? listed() : onFrame(client, frame)),
			});
			socket.on('error', () => {});
			let timer;
			await Promise.race([first, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no list from ${url} within 30 s`)), 30_000); })])
				.finally(() => clearTimeout(timer));
			socket.on('close', () => { if (expected !== null) send({ error: `a client of ${url} was closed` }); });
			clients.push(client);
		}));
	}
}

/** To the parent, unless it is gone. */
function send(message) {
	if (process.connected) process.send(message);
}

process.on('disconnect', () => process.exit(0));
process.on('message', async (message) => {
	try {
		if (message.cmd === 'open') {
			await open(message.count);
			process.send({ open: clients.length });
		} else if (message.cmd === 'expect') {
			for (const client of clients) {
				client.id = null;
				client.unlisted = false;
			}
			expected = { name: message.name, listed: { count: 0 }, unlisted: { count: 0 }, cpu: process.cpuUsage() };
			process.send({ expecting: message.name });
		}
	} catch (err) {
		process.send({ error: err.message });
	}
});
process.send({ ready: true });
