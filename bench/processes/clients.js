'use strict';
// Idle WebSocket clients of a master (argv: URL), held by this process so
// that the master's memory is measured alone. IPC: { cmd: 'open', count }
// opens that many more (200 at a time) and answers { open: total };
// { cmd: 'close' } closes them all and answers { open: 0 } once each has
// seen its close. Exits when the parent goes.

const WebSocket = require('ws');

const [url] = process.argv.slice(2);
const BATCH = 200;
const sockets = new Set();

function connect() {
	return new Promise((resolve, reject) => {
		const socket = new WebSocket(`${url}/enslavism/clients`);
		socket.on('open', () => { sockets.add(socket); resolve(); });
		socket.on('error', reject);
		socket.on('message', () => {});
	});
}

async function open(count) {
	for (let done = 0; done < count; done += BATCH) {
		await Promise.all(Array.from({ length: Math.min(BATCH, count - done) }, connect));
	}
}

async function closeAll() {
	const closing = [...sockets].map((socket) => new Promise((resolve) => {
		socket.once('close', resolve);
		socket.close();
	}));
	sockets.clear();
	await Promise.all(closing);
}

process.on('disconnect', () => process.exit(0));
process.on('message', async (message) => {
	try {
		if (message.cmd === 'open') await open(message.count);
		else if (message.cmd === 'close') await closeAll();
		process.send({ open: sockets.size });
	} catch (err) {
		process.send({ error: err.message });
	}
});
process.send({ ready: true });
