'use strict';
// TLS at both ends of the signalling, on loopback: slaves dialling wss://
// (trusting a test CA through `ca` or NODE_EXTRA_CA_CERTS), the master's own
// HTTPS/WSS port and its certificate swap, a master attached to an
// https.Server, and the ways a TLS setup goes wrong. The certificates are in
// fixtures/tls (made by its make.sh).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const WebSocket = require('ws');
const { Master, Slave } = require('..');
const { T, WAIT_MS, Peer, frame, onceWithin, within } = require('./helpers.js');

const TLS_DIR = path.join(__dirname, 'fixtures', 'tls');
const pem = (name) => fs.readFileSync(path.join(TLS_DIR, name));
const CA = pem('ca.pem');
const IDENTITY = { key: pem('server.key'), cert: pem('server.pem') };
const IDENTITY_2 = { key: pem('server2.key'), cert: pem('server2.pem') };
const UNTRUSTED = { key: pem('untrusted.key'), cert: pem('untrusted.pem') };

async function tlsMaster(identity = IDENTITY, options = {}) {
	const master = new Master(0, { host: '127.0.0.1', tls: identity, ...options });
	await onceWithin(master, 'listening', WAIT_MS, 'the TLS master did not start listening');
	return { master, url: `wss://127.0.0.1:${master.port}` };
}

/** A wss client of the master (npm `ws`, trusting the test CA), as a Peer. */
async function wssClient(url) {
	const ws = new WebSocket(`${url}/enslavism/clients`, { ca: CA });
	const peer = new Peer(ws);
	await onceWithin(ws, 'open', WAIT_MS, 'the wss client did not connect');
	assert.equal((await peer.next()).type, T.addSlaves, 'the list comes first');
	return peer;
}

/** The common name of the certificate the server at `port` presents now. */
async function presentedName(port) {
	const socket = tls.connect({ host: '127.0.0.1', port, ca: CA, servername: 'localhost' });
	await onceWithin(socket, 'secureConnect', WAIT_MS, 'the TLS handshake did not complete');
	const name = socket.getPeerCertificate().subject.CN;
	socket.destroy();
	return name;
}

/** The error `new Slave(url, …)` rejects with (it must fail). */
function slaveFailure(url, options) {
	return new Slave(url, { name: 'x' }, undefined, options).then(async (slave) => {
		await slave.close();
		assert.fail(`connected to ${url}`);
	}, (err) => err);
}

describe('TLS', { timeout: 60_000 }, () => {
	it('a slave registers over wss:// with the test CA as `ca` (PEM string, Buffer or array), and a wss client lists it', { timeout: 10_000 }, async () => {
		const { master, url } = await tlsMaster();
		const watcher = await wssClient(url);
		const slaves = [];
		try {
			for (const ca of [CA.toString(), CA, [pem('untrusted.pem'), CA]]) {
				const slave = await new Slave(url, { ca: typeof ca }, undefined, { ca });
				slaves.push(slave);
				const added = await watcher.next();
				assert.equal(added.type, T.addSlaves);
				assert.deepEqual(added.slaves.map((s) => s.userData), [{ ca: typeof ca }]);
			}
		} finally {
			await Promise.all(slaves.map((s) => s.close()));
			watcher.close();
			await master.close();
		}
	});

	it('a slave trusts the CA in the file named by NODE_EXTRA_CA_CERTS', { timeout: 30_000 }, async () => {
		const { master, url } = await tlsMaster();
		try {
			const script = `const { Slave } = require(${JSON.stringify(path.join(__dirname, '..'))});
				new Slave(process.argv[1], { name: 'extra' }).then(
					(s) => { console.log('registered'); return s.close(); },
					(e) => { console.log('failed', e.code, e.message); process.exitCode = 1; });`;
			const run = (env) => {
				const child = spawn(process.execPath, ['-e', script, url], { env: { ...process.env, ...env } });
				let output = '';
				child.stdout.on('data', (d) => { output += d; });
				child.stderr.on('data', (d) => { output += d; });
				const exited = new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
				return within(exited, 2 * WAIT_MS, `the slave process (NODE_EXTRA_CA_CERTS=${env.NODE_EXTRA_CA_CERTS}) did not exit`)
					.finally(() => child.kill());
			};
			const trusted = await run({ NODE_EXTRA_CA_CERTS: path.join(TLS_DIR, 'ca.pem') });
			assert.equal(trusted.code, 0, trusted.output);
			assert.match(trusted.output, /registered/);
			const without = await run({ NODE_EXTRA_CA_CERTS: '' });
			assert.equal(without.code, 1, without.output);
			assert.match(without.output, /failed ERR_ENSLAVISM_TLS .*not signed by a trusted CA/);
			// As Node does: an unreadable or unusable file is a warning, not a failure.
			const missing = await run({ NODE_EXTRA_CA_CERTS: path.join(TLS_DIR, 'no-such-file.pem') });
			assert.match(missing.output, /Ignoring extra certs from .*no-such-file\.pem/);
			assert.match(missing.output, /failed ERR_ENSLAVISM_TLS/);
			const notPem = await run({ NODE_EXTRA_CA_CERTS: path.join(TLS_DIR, 'make.sh') });
			assert.match(notPem.output, /Ignoring extra certs from .*make\.sh.*no certificate found in the NODE_EXTRA_CA_CERTS file/);
			assert.match(notPem.output, /failed ERR_ENSLAVISM_TLS/);
		} finally {
			await master.close();
		}
	});

	it('certificate errors reject the Slave promise with a code and a message that says what to do', { timeout: 20_000 }, async () => {
		const { master, url } = await tlsMaster(UNTRUSTED);
		const plain = new Master(0, { host: '127.0.0.1' });
		await onceWithin(plain, 'listening', WAIT_MS, 'the plain master did not start listening');
		try {
			let err = await slaveFailure(url, { ca: CA });
			assert.equal(err.code, 'ERR_ENSLAVISM_TLS');
			assert.match(err.message, /UnknownIssuer.*`ca` option or NODE_EXTRA_CA_CERTS/);
			// The right CA, the wrong name: the certificate is for 127.0.0.1, localhost, ::1 and 10.77.0.1.
			const elsewhere = new Master(0, { host: '127.0.0.2', tls: IDENTITY });
			await onceWithin(elsewhere, 'listening', WAIT_MS, 'the master on 127.0.0.2 did not start listening');
			err = await slaveFailure(`wss://127.0.0.2:${elsewhere.port}`, { ca: CA });
			await elsewhere.close();
			assert.equal(err.code, 'ERR_ENSLAVISM_TLS');
			assert.match(err.message, /not valid for name "127.0.0.2".*another name/);
			// wss:// to a plain master, ws:// to a TLS one.
			err = await slaveFailure(`wss://127.0.0.1:${plain.port}`, { ca: CA });
			assert.equal(err.code, 'ERR_ENSLAVISM_TLS');
			assert.match(err.message, /does the master speak TLS/);
			err = await slaveFailure(`ws://127.0.0.1:${master.port}`, {});
			assert.equal(err.code, 'ERR_ENSLAVISM_REFUSED');
			assert.equal(err.status, 400);
			assert.match(err.message, /use wss:\/\//);
			// A `ca` that is not PEM.
			assert.throws(() => new Slave(url, {}, undefined, { ca: 'not a certificate' }),
				{ code: 'ERR_ENSLAVISM_CERTIFICATE', message: /no certificate found in the ca option/ });
			assert.throws(() => new Slave(url, {}, undefined, { ca: 42 }), { code: 'ERR_INVALID_ARG_TYPE' });
			// The master is unharmed: with a trusted certificate, a slave registers
			// (seen by a client: the Slave's promise settles once the registration
			// is sent, which may be before the master has read it).
			master.setTLS(IDENTITY);
			const watcher = await wssClient(url);
			const slave = await new Slave(url, { name: 'good' }, undefined, { ca: CA });
			const added = await watcher.next();
			assert.deepEqual(added.slaves.map((s) => s.userData), [{ name: 'good' }]);
			assert.equal(master.peerCounts.slaves, 1);
			watcher.close();
			await slave.close();
		} finally {
			await master.close();
			await plain.close();
		}
	});

	it('bad certificates and keys for the master are clear errors; setTLS needs a TLS master', { timeout: 10_000 }, async () => {
		const bad = (tls) => () => new Master(0, { host: '127.0.0.1', tls });
		assert.throws(bad({ key: IDENTITY.key, cert: 'garbage' }), { code: 'ERR_ENSLAVISM_CERTIFICATE', message: /no certificate found in the cert/ });
		assert.throws(bad({ key: 'garbage', cert: IDENTITY.cert }), { code: 'ERR_ENSLAVISM_CERTIFICATE', message: /key/ });
		assert.throws(bad({ key: IDENTITY_2.key, cert: IDENTITY.cert }), { code: 'ERR_ENSLAVISM_CERTIFICATE', message: /KeyMismatch/ });
		assert.throws(bad({ key: 1, cert: IDENTITY.cert }), { code: 'ERR_INVALID_ARG_TYPE' });
		const server = https.createServer(IDENTITY);
		assert.throws(() => new Master(server, { tls: IDENTITY }), { code: 'ERR_INVALID_ARG_VALUE' });
		const plain = new Master(0, { host: '127.0.0.1' });
		await onceWithin(plain, 'listening', WAIT_MS, 'the plain master did not start listening');
		assert.throws(() => plain.setTLS(IDENTITY), { code: 'ERR_ENSLAVISM_NOT_TLS' });
		await plain.close();
		const { master } = await tlsMaster();
		assert.throws(() => master.setTLS({ key: IDENTITY.key, cert: IDENTITY_2.cert }), { code: 'ERR_ENSLAVISM_CERTIFICATE' });
		assert.equal(await presentedName(master.port), 'enslavism test server', 'a failed swap keeps the certificate');
		await master.close();
	});

	it('the own TLS port serves the bundle over HTTPS, and setTLS swaps the certificate without dropping anyone', { timeout: 10_000 }, async () => {
		const { master, url } = await tlsMaster();
		const watcher = await wssClient(url);
		const before = await new Slave(url, { n: 1 }, undefined, { ca: CA });
		let disconnected = false;
		before.on('disconnected', () => { disconnected = true; });
		try {
			await watcher.next();
			const script = await fetchText(`https://127.0.0.1:${master.port}/enslavism/client.js`);
			assert.match(script, /MasterConnection/);
			assert.equal(await presentedName(master.port), 'enslavism test server');

			master.setTLS(IDENTITY_2);
			assert.equal(await presentedName(master.port), 'enslavism test server2');
			const after = await new Slave(url, { n: 2 }, undefined, { ca: CA });
			// The client connected before the swap still gets the update, and the
			// slave of before is still registered.
			assert.deepEqual((await watcher.next()).slaves.map((s) => s.userData), [{ n: 2 }]);
			assert.equal(master.peerCounts.slaves, 2);
			assert.equal(disconnected, false);
			await after.close();
		} finally {
			await before.close();
			watcher.close();
			await master.close();
		}
	});

	it('a TLS client that sends garbage, or nothing, costs only its own connection', { timeout: 10_000 }, async () => {
		const { master, url } = await tlsMaster(IDENTITY, { handshakeTimeout: 500 });
		try {
			const garbage = net.connect(master.port, '127.0.0.1');
			await onceWithin(garbage, 'connect', WAIT_MS, 'the garbage socket did not connect');
			garbage.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]));
			garbage.resume();
			await onceWithin(garbage, 'close', WAIT_MS, 'the master did not close a connection that sent TLS garbage');
			const silent = net.connect(master.port, '127.0.0.1');
			silent.resume();
			await onceWithin(silent, 'close', WAIT_MS, 'the master did not close a silent connection (handshakeTimeout 500 ms)');
			const halfway = tls.connect({ host: '127.0.0.1', port: master.port, rejectUnauthorized: false });
			await onceWithin(halfway, 'secureConnect', WAIT_MS, 'the TLS handshake did not complete');
			halfway.write('GET /enslavism/clients HTTP/1.1\r\nHost: x\r\n'); // never finished
			// Counted once the master has taken the connection, which the Slave's promise may precede.
			const taken = onceWithin(master, 'slaveconnection', WAIT_MS, 'the master did not report the slave');
			const slave = await new Slave(url, { name: 'fine' }, undefined, { ca: CA });
			await taken;
			assert.equal(master.peerCounts.slaves, 1);
			halfway.destroy();
			await slave.close();
		} finally {
			await master.close();
		}
	});

	it('a master attached to an https.Server serves both paths and the bundle, and the user\'s requests still work', { timeout: 10_000 }, async () => {
		const server = https.createServer(IDENTITY, (req, res) => res.end(`user handler: ${req.url}`));
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		const master = new Master(server);
		const url = `wss://127.0.0.1:${server.address().port}`;
		const connections = [];
		master.on('slaveconnection', (socket) => connections.push(socket));
		const watcher = await wssClient(url);
		const slave = await new Slave(url, { name: 'behind https' }, undefined, { ca: CA });
		try {
			const added = await watcher.next();
			assert.deepEqual(added.slaves.map((s) => s.userData), [{ name: 'behind https' }]);
			assert.equal(connections.length, 1);
			assert.equal(connections[0]._socket.remoteAddress, '127.0.0.1', 'the peer address comes from the TLS socket');
			assert.match(await fetchText(`https://127.0.0.1:${server.address().port}/enslavism/client.js`), /MasterConnection/);
			assert.equal(await fetchText(`https://127.0.0.1:${server.address().port}/other`), 'user handler: /other');
			// Signalling crosses the relay both ways: an offer from the client reaches the (raw) slave side.
			const raw = new Peer(new WebSocket(`${url}/enslavism/slaves`, { ca: CA }));
			await onceWithin(raw.ws, 'open', WAIT_MS, 'the raw wss slave did not connect');
			raw.send(frame.register({ name: 'raw' }));
			const rawId = (await watcher.next()).slaves[0].id;
			watcher.send(frame.sdp(T.offerToSlave, rawId, 'v=0 offer'));
			const offer = await raw.next();
			assert.equal(offer.type, T.offerFromClient);
			assert.equal(offer.sdp, 'v=0 offer');
			raw.send(frame.sdp(T.answerToClient, offer.id, 'v=0 answer'));
			const answer = await watcher.next();
			assert.equal(answer.type, T.answerFromSlave);
			assert.equal(answer.sdp, 'v=0 answer');
			// The slave closing is seen through the relay.
			await raw.close();
			assert.equal((await watcher.next()).type, T.removeSlaves);
		} finally {
			await slave.close();
			watcher.close();
			await master.close();
			server.closeAllConnections();
			await new Promise((resolve) => server.close(resolve));
		}
	});

	it('closing an https-attached master closes its relayed connections', { timeout: 10_000 }, async () => {
		const server = https.createServer(IDENTITY);
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		const master = new Master(server);
		const watcher = await wssClient(`wss://127.0.0.1:${server.address().port}`);
		await master.close();
		const { code } = await within(watcher.closed, WAIT_MS, 'the relayed client did not see the closed master close its connection');
		assert.equal(code, 1001);
		server.closeAllConnections();
		await new Promise((resolve) => server.close(resolve));
	});
});

/** GETs `url` (trusting the test CA) and resolves with the body, within WAIT_MS. */
function fetchText(url) {
	return within(new Promise((resolve, reject) => {
		https.get(url, { ca: CA }, (res) => {
			let body = '';
			res.setEncoding('utf8');
			res.on('data', (d) => { body += d; });
			res.on('end', () => resolve(body));
		}).on('error', reject);
	}), WAIT_MS, `no answer from GET ${url}`);
}
