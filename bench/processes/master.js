'use strict';
// A master of either implementation in a process of its own (argv: IMPL MODE).
// MODE `page`: attached to an http.Server that also serves the benchmark's
// browser page (/ and /bench-page.js); MODE `port`: the master's own port on
// loopback (0.9.0: its own http.Server, which is what it makes for a port);
// MODE `https`: attached to an https.Server on loopback with the test
// certificate (__test__/fixtures/tls); MODE `tls-port` (this package only, now or at the baseline):
// the master's own port with that certificate (rustls in the engine). Sends { port } to the parent once accepting; exits when the parent goes.

const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const path = require('node:path');
const { isEngine, loadImpl, masterOptions } = require('../lib/impls.js');

const [impl, mode] = process.argv.slice(2);
const TLS_DIR = path.join(__dirname, '..', '..', '__test__', 'fixtures', 'tls');
const TEST_IDENTITY = { key: fs.readFileSync(path.join(TLS_DIR, 'server.key')), cert: fs.readFileSync(path.join(TLS_DIR, 'server.pem')) };
const { Master } = loadImpl(impl);
const PAGE = '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
	+ '<script src="/enslavism/client.js"></script><script src="/bench-page.js"></script></body></html>';
const PAGE_SCRIPT = fs.readFileSync(path.join(__dirname, '..', 'lib', 'page.js'));

process.on('disconnect', () => process.exit(0));

if (mode === 'port' && isEngine(impl)) {
	const master = new Master(0, masterOptions(impl, { host: '127.0.0.1' }));
	master.on('error', (err) => { console.error(err); process.exit(1); });
	master.once('listening', () => process.send({ port: master.port }));
} else if (mode === 'tls-port' && isEngine(impl)) {
	const master = new Master(0, masterOptions(impl, { host: '127.0.0.1', tls: TEST_IDENTITY }));
	master.on('error', (err) => { console.error(err); process.exit(1); });
	master.once('listening', () => process.send({ port: master.port }));
} else if (mode === 'https') {
	const server = https.createServer(TEST_IDENTITY);
	const master = new Master(server, masterOptions(impl));
	master.on('error', (err) => { console.error(err); process.exit(1); });
	server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
} else if (mode === 'port') {
	// 0.9.0 with a port makes an http.Server on every interface and cannot
	// say which port it got; given one on loopback, it does the same.
	const server = http.createServer();
	const master = new Master(server);
	master.on('error', (err) => { console.error(err); process.exit(1); });
	server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
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

// The memory section asks for the process's memory once it has settled. A
// burst of upgrades grows V8's young generation to 16–32 MB, whoever handles
// them, and V8 gives it back only after a quiet moment, sometimes two: so
// full collections every 2 s until it is back to its size at start (at
// most `settleMs`), then the reading.
const v8 = require('node:v8');
const youngSize = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
const youngAtStart = youngSize();
const collect = async () => {
	for (let i = 0; i < 3; i++) {
		globalThis.gc?.();
		await new Promise((resolve) => setImmediate(resolve));
	}
};
process.on('message', async (message) => {
	if (message?.cmd !== 'memory') return;
	const deadline = Date.now() + message.settleMs;
	do {
		await new Promise((resolve) => setTimeout(resolve, 2000));
		await collect();
	} while (youngSize() > youngAtStart && Date.now() < deadline);
	const { rss, heapUsed } = process.memoryUsage();
	process.send({ memory: { rss, heapUsed, youngSize: youngSize() } });
});
