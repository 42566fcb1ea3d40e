'use strict';
// A master of either implementation in a process of its own (argv: IMPL MODE).
// MODE `page`: attached to an http.Server that also serves the benchmark's
// browser page (/ and /bench-page.js); MODE `port`: the master's own port on
// loopback. Sends { port } to the parent once accepting; exits when the parent goes.

const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const { loadImpl, masterOptions } = require('../lib/impls.js');

const [impl, mode] = process.argv.slice(2);
const { Master } = loadImpl(impl);
const PAGE = '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
	+ '<script src="/enslavism/client.js"></script><script src="/bench-page.js"></script></body></html>';
const PAGE_SCRIPT = fs.readFileSync(path.join(__dirname, '..', 'lib', 'page.js'));

process.on('disconnect', () => process.exit(0));

/** Calls `done` once something accepts TCP connections on `port` (bounded). */
function whenAccepting(port, done, attempts = 500) {
	const socket = net.connect(port, '127.0.0.1');
	socket.once('connect', () => { socket.destroy(); done(); });
	socket.once('error', () => {
		if (attempts === 0) throw new Error(`nothing listens on port ${port}`);
		setTimeout(() => whenAccepting(port, done, attempts - 1), 10);
	});
}

if (mode === 'port') {
	// 0.9.0 cannot report the port it picked: find a free one first.
	const probe = net.createServer().listen(0, '127.0.0.1', () => {
		const { port } = probe.address();
		probe.close(() => {
			const master = new Master(port, masterOptions(impl, { host: '127.0.0.1' }));
			master.on('error', (err) => { console.error(err); process.exit(1); });
			whenAccepting(port, () => process.send({ port }));
		});
	});
} else {
	const server = http.createServer((req, res) => {
		if (req.url === '/bench-page.js') {
			res.writeHead(200, { 'Content-Type': 'application/javascript' });
			res.end(PAGE_SCRIPT);
			return;
		}
		res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
		res.end(PAGE);
	});
	const master = new Master(server, masterOptions(impl));
	master.on('error', (err) => console.error(err));
	server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}
