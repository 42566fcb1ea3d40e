'use strict';
// A master on port 8081 (or $PORT) that also serves the demo page, with
// cookie auth: slaves must present username "getkey" and password "secret".
// Run: node examples/master.js, then open http://localhost:8081/
// and start slaves with: node examples/slave.js ws://localhost:8081 "My slave"

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { Master } = require('..');

const PORT = Number(process.env.PORT || 8081); // 0: any free port
const pages = new Map([
	['/', ['index.html', 'text/html; charset=utf-8']],
	['/app.js', ['app.js', 'application/javascript; charset=utf-8']],
	['/style.css', ['style.css', 'text/css; charset=utf-8']],
]);

// The page and its files. The master answers /enslavism/client.js (the
// browser bundle) and the WebSockets on this same server.
const server = http.createServer((req, res) => {
	const page = pages.get(req.url);
	if (page === undefined) {
		res.writeHead(404, { 'Content-Type': 'text/plain' });
		res.end('Not found');
		return;
	}
	res.writeHead(200, { 'Content-Type': page[1] });
	fs.createReadStream(path.join(__dirname, page[0])).pipe(res);
});

const master = new Master(server);
master.on('slaveauth', (authData, reject) => {
	if (authData.username !== 'getkey' || authData.password !== 'secret') reject('Invalid credentials!');
});
master.on('clientauth', (authData) => {
	if (authData.username !== undefined) console.log(`${authData.username} wants to connect!`);
});
master.on('slaveconnection', (ws) => console.log('Slave connected @', ws._socket.remoteAddress));
master.on('clientconnection', (ws) => console.log('Client connected @', ws._socket.remoteAddress));
master.on('error', (err) => console.error('master error:', err.message));

server.listen(PORT, () => {
	if (require.main === module) console.log(`enslavism demo master: open http://localhost:${server.address().port}/`);
});

module.exports = { master, server };
