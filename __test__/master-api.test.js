'use strict';
// The master's JS API around the wire: argument checks, errors as events,
// attaching to an http.Server next to other upgrade users, and process exit.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { execFile, spawn } = require('node:child_process');
const WebSocket = require('ws');
const { Master, MasterConnection } = require('..');
const { T, WAIT_MS, connect, frame, onceWithin, registeredSlave, startMaster, within } = require('./helpers.js');

/** How long a child process of these tests may run before it is killed (its `code` is then null). */
const CHILD_TIMEOUT_MS = 20_000;

function runChild(source) {
	return new Promise((resolve) => {
		execFile(process.execPath, ['-e', source], { cwd: path.join(__dirname, '..'), timeout: CHILD_TIMEOUT_MS }, (error, stdout, stderr) => {
			resolve({ code: error ? error.code : 0, signal: error?.signal ?? null, stdout, stderr });
		});
	});
}

/** What a child process printed, for an assertion's message (a killed one did not finish within CHILD_TIMEOUT_MS). */
function childOutput({ signal, stdout, stderr }) {
	return `${signal ? `the child did not exit within ${CHILD_TIMEOUT_MS} ms (${signal})\n` : ''}stdout: ${stdout}\nstderr: ${stderr}`;
}

/** `fetch`, aborted (TimeoutError) once `ms` have passed. */
function fetchWithin(url, ms = WAIT_MS) {
	return fetch(url, { signal: AbortSignal.timeout(ms) });
}

describe('Master API', { timeout: 60_000 }, () => {
	it('throws a TypeError with a code for arguments of the wrong type', { timeout: 5_000 }, () => {
		for (const bad of [undefined, null, '8080', {}, [], () => {}]) {
			assert.throws(() => new Master(bad), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		}
		for (const bad of [-1, 65536, 1.5, NaN]) {
			assert.throws(() => new Master(bad), { name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' });
		}
		assert.throws(() => new Master(0, 'fast'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
		assert.throws(() => new Master(0, { maxMessageSize: -5 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
		assert.throws(() => new Master(0, { host: 127001 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
	});

	it('reports a port in use as an error event with code EADDRINUSE, not a crash', { timeout: 10_000 }, async () => {
		const blocker = net.createServer();
		await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
		const { port } = blocker.address();
		const master = new Master(port, { host: '127.0.0.1' });
		const [err] = await onceWithin(master, 'error', WAIT_MS, 'the master did not report its port in use as an error event');
		assert.equal(err.code, 'EADDRINUSE');
		assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
		await master.close();
		blocker.close();
	});

	it('frees its port on close(), so that a new master can take it', { timeout: 10_000 }, async () => {
		const first = await startMaster('port');
		const { port } = first.master;
		await within(first.close(), WAIT_MS, 'master.close() did not resolve');
		const second = new Master(port, { host: '127.0.0.1' });
		await onceWithin(second, 'listening', WAIT_MS, 'a new master did not listen on the freed port');
		assert.equal(second.port, port);
		await second.close();
	});

	it('lets the process exit by itself after close()', { timeout: 2 * CHILD_TIMEOUT_MS }, async () => {
		const child = await runChild(`
			const { Master } = require('.');
			const m = new Master(0, { host: '127.0.0.1' });
			m.on('listening', () => m.close().then(() => console.log('closed')));
		`);
		assert.equal(child.code, 0, childOutput(child));
		assert.equal(child.stdout.trim(), 'closed');
	});

	it('keeps the process alive while it listens (like net.Server)', { timeout: 2 * CHILD_TIMEOUT_MS }, async () => {
		const child = await runChild(`
			const { Master } = require('.');
			const m = new Master(0, { host: '127.0.0.1' });
			let ticks = 0;
			const t = setInterval(() => { if (++ticks === 3) { clearInterval(t); console.log('alive'); m.close(); } }, 20);
			t.unref();
		`);
		assert.equal(child.code, 0, childOutput(child));
		assert.equal(child.stdout.trim(), 'alive');
	});

	it('refuses the handshake when an auth listener throws, and the error surfaces as uncaught', { timeout: 2 * CHILD_TIMEOUT_MS }, async () => {
		const child = await runChild(`
			const { Master } = require('.');
			const WebSocket = require('ws');
			const m = new Master(0, { host: '127.0.0.1' });
			m.on('clientauth', () => { throw new Error('listener bug'); });
			process.on('uncaughtException', (e) => console.log('uncaught:', e.message));
			m.on('listening', () => {
				const ws = new WebSocket('ws://127.0.0.1:' + m.port + '/enslavism/clients');
				ws.on('unexpected-response', (req, res) => { console.log('status:', res.statusCode); m.close(); });
				ws.on('error', () => {});
			});
		`);
		assert.equal(child.code, 0, childOutput(child));
		assert.deepEqual(child.stdout.trim().split('\n').sort(), ['status: 401', 'uncaught: listener bug']);
	});
});

describe('Master slave lifecycle', { timeout: 30_000 }, () => {
	it('reports every registration change with the id clients see, and keeps master.slaves in step', { timeout: 10_000 }, async () => {
		const { master, url, close } = await startMaster('port', { heartbeatInterval: 50, heartbeatTimeout: 300 });
		const events = [];
		for (const type of ['slaveregister', 'slaveupdate', 'slaveunregister']) {
			master.on(type, (slave) => events.push([type, slave.id, structuredClone(slave.userData)]));
		}
		const watcher = await connect(`${url}/enslavism/clients`);
		await watcher.next(); // the empty list
		const registered = onceWithin(master, 'slaveregister', WAIT_MS, 'no slaveregister for the first slave');
		const { slave, id } = await registeredSlave(url, { name: 'one', players: 0 }, watcher);
		const [info] = await registered;
		assert.equal(info.id, id, 'the id clients see');
		assert.deepEqual(info.userData, { name: 'one', players: 0 });
		assert.equal(info.remoteAddress, '127.0.0.1');
		assert.ok(info.remotePort > 0);
		assert.equal(master.slaves.get(id), info);

		// Registering again (what a 0.9.0 slave does to change its userData) is an update, in place.
		const updated = onceWithin(master, 'slaveupdate', WAIT_MS, 'no slaveupdate for a second registration');
		slave.send(frame.register({ name: 'one', players: 3 }));
		const [same] = await updated;
		assert.equal(same, info);
		assert.deepEqual(master.slaves.get(id).userData, { name: 'one', players: 3 });
		await watcher.next(); // clients see it as RemoveSlaves…
		await watcher.next(); // …then AddSlaves

		// A close, a dropped connection and a heartbeat timeout each unregister.
		let gone = onceWithin(master, 'slaveunregister', WAIT_MS, 'no slaveunregister for a slave that closed');
		slave.close();
		assert.equal((await gone)[0].id, id);
		await watcher.next(); // RemoveSlaves
		const second = await registeredSlave(url, { name: 'two' }, watcher);
		gone = onceWithin(master, 'slaveunregister', WAIT_MS, 'no slaveunregister for a slave whose connection dropped');
		second.slave.ws._socket.destroy();
		assert.equal((await gone)[0].id, second.id);
		const raw = net.connect(master.port, '127.0.0.1');
		await onceWithin(raw, 'connect', WAIT_MS, 'the raw socket did not connect');
		const silentRegistered = onceWithin(master, 'slaveregister', WAIT_MS, 'no slaveregister for the silent slave');
		raw.write('GET /enslavism/slaves HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
			+ 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
		await onceWithin(raw, 'data', WAIT_MS, 'the master did not answer the handshake'); // 101
		// One masked binary frame: Register {"name":"silent"}, then silence (no pong ever).
		const payload = frame.register({ name: 'silent' });
		const mask = Buffer.from([1, 2, 3, 4]);
		raw.write(Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4])]));
		const [silent] = await silentRegistered;
		raw.pause();
		gone = onceWithin(master, 'slaveunregister', WAIT_MS, 'no slaveunregister for a slave silent past heartbeatTimeout (300 ms)');
		assert.equal((await gone)[0].id, silent.id);
		raw.destroy();

		assert.equal(master.slaves.size, 0);
		assert.deepEqual(events.map(([type, slaveId]) => [type, slaveId]), [
			['slaveregister', id], ['slaveupdate', id], ['slaveunregister', id],
			['slaveregister', second.id], ['slaveunregister', second.id],
			['slaveregister', silent.id], ['slaveunregister', silent.id],
		]);
		watcher.close();
		await close();
	});
});

describe('Master and our slave', { timeout: 30_000 }, () => {
	it('sees setUserData as an update in place, and a killed slave process unregister', { timeout: 20_000 }, async () => {
		const { master, url, close } = await startMaster('port');
		const watcher = new MasterConnection(url, { iceAddresses: ['127.0.0.1'] });
		const registered = onceWithin(master, 'slaveregister', 2 * WAIT_MS, 'the slave process did not register');
		const child = spawn(process.execPath, ['-e', `
			const { Slave } = require('.');
			new Slave(${JSON.stringify(url)}, { name: 'child', players: 0 }, undefined, { iceAddresses: ['127.0.0.1'] })
				.then((slave) => slave.setUserData({ name: 'child', players: 1 }))
				.then(() => console.log('updated'));
		`], { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
		try {
			const [slave] = await registered;
			const [update] = await onceWithin(master, 'slaveupdate', WAIT_MS, 'no slaveupdate for setUserData');
			assert.equal(update, slave, 'the same object');
			assert.deepEqual(master.slaves.get(slave.id).userData, { name: 'child', players: 1 });
			const [line] = await onceWithin(child.stdout, 'data', WAIT_MS, 'setUserData did not resolve in the slave process');
			assert.equal(String(line).trim(), 'updated', 'setUserData resolved once the master had it');
			if (watcher.slaves[slave.id]?.userData?.players !== 1) {
				const [slaveCo] = await onceWithin(watcher, 'slaveupdated', WAIT_MS, 'the MasterConnection did not get slaveupdated');
				assert.equal(slaveCo.id, slave.id);
			}
			assert.deepEqual(watcher.slaves[slave.id].userData, { name: 'child', players: 1 });

			const gone = onceWithin(master, 'slaveunregister', WAIT_MS, 'no slaveunregister for a killed slave process');
			child.kill('SIGKILL');
			assert.equal((await gone)[0].id, slave.id);
			assert.equal(master.slaves.size, 0);
		} finally {
			child.kill('SIGKILL');
			await watcher.close();
			await close();
		}
	});
});

describe('Master auth listeners', { timeout: 30_000 }, () => {
	it('get the peer\'s address and headers, and may decide asynchronously, bounded by authTimeout', { timeout: 10_000 }, async () => {
		const { master, url, close } = await startMaster('port', { authTimeout: 300 });
		try {
			const seen = [];
			master.on('clientauth', async (cookies, reject, info) => {
				seen.push({ cookies, info });
				await new Promise((resolve) => setImmediate(resolve));
				if (cookies.token === 'late') reject('not you');
				if (cookies.token === 'throws') throw new Error('database down');
				if (cookies.token === 'never') await new Promise(() => {});
			});
			// A second listener that decides synchronously: both must agree.
			master.on('clientauth', (cookies, reject) => { if (cookies.token === 'banned') reject('banned'); });

			const accepted = await connect(`${url}/enslavism/clients`, { cookie: 'token=ok' });
			assert.equal((await accepted.next()).type, T.addSlaves, 'accepted: it gets the list');
			accepted.close();
			const { info } = seen[0];
			assert.equal(info.remoteAddress, '127.0.0.1');
			assert.ok(Number.isInteger(info.remotePort) && info.remotePort > 0);
			assert.equal(info.headers.cookie, 'token=ok');
			assert.equal(info.headers.upgrade, 'websocket');
			assert.equal(info.headers.host, new URL(url).host);

			const refusal = (token) => connect(`${url}/enslavism/clients`, { cookie: `token=${token}` }).then(
				() => assert.fail(`${token}: accepted`), (err) => [err.status, err.body]);
			assert.deepEqual(await refusal('late'), [401, 'not you'], 'reject() before the Promise settles');
			assert.deepEqual(await refusal('banned'), [401, 'banned'], 'a synchronous reject beside an async listener');
			assert.equal((await refusal('throws'))[0], 401, 'a rejected Promise');
			assert.deepEqual(await refusal('never'), [401, 'authorization timed out']);
			assert.equal(seen.length, 5);
		} finally {
			await close();
		}
	});

	it('keep 0.9.0\'s synchronous behaviour: reject() after the listener returned does nothing', { timeout: 10_000 }, async () => {
		const { master, url, close } = await startMaster('port');
		let lateReject;
		master.on('slaveauth', (cookies, reject) => { lateReject = reject; });
		const connected = onceWithin(master, 'slaveconnection', WAIT_MS, 'the master did not report the slave');
		const slave = await connect(`${url}/enslavism/slaves`);
		lateReject('too late');
		const [ws] = await connected;
		assert.equal(ws.readyState, 1, 'still open');
		slave.close();
		await close();
	});
});

describe('Master heartbeats', { timeout: 30_000 }, () => {
	it('drops a peer that goes silent without closing, and keeps the ones that answer pings', { timeout: 10_000 }, async () => {
		const { master, url, close } = await startMaster('port', { heartbeatInterval: 50, heartbeatTimeout: 300 });
		const healthy = await connect(`${url}/enslavism/clients`); // ws answers pings by itself
		await healthy.next();
		const silentSocket = onceWithin(master, 'clientconnection', WAIT_MS, 'the master did not report the silent client');
		// A WebSocket handshake by hand, then silence: the socket is never read
		// again, so no pong ever comes back (like a crashed host).
		const raw = net.connect(master.port, '127.0.0.1');
		await onceWithin(raw, 'connect', WAIT_MS, 'the raw socket did not connect');
		raw.write('GET /enslavism/clients HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
			+ 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
		await onceWithin(raw, 'data', WAIT_MS, 'the master did not answer the handshake'); // 101 and the slave list
		raw.pause();
		const [ws] = await silentSocket;
		const [code, reason] = await onceWithin(ws, 'close', WAIT_MS, 'the master did not drop the silent client (heartbeatTimeout 300 ms)');
		assert.equal(code, 1006);
		assert.equal(reason, 'heartbeat timeout');
		assert.equal(healthy.ws.readyState, WebSocket.OPEN, 'the healthy client is still connected');
		assert.equal(master.peerCounts.clients, 1);
		raw.destroy();
		await close();
	});
});

describe('Master attached to an http.Server', { timeout: 30_000 }, () => {
	it('leaves upgrades on other paths to other listeners', { timeout: 10_000 }, async () => {
		const server = http.createServer();
		const other = new WebSocket.Server({ noServer: true });
		server.on('upgrade', (req, socket, head) => {
			if (req.url === '/game-chat') other.handleUpgrade(req, socket, head, (ws) => ws.send('chat ready'));
		});
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		const master = new Master(server);
		const base = `ws://127.0.0.1:${server.address().port}`;

		const chat = new WebSocket(`${base}/game-chat`);
		const [greeting] = await onceWithin(chat, 'message', WAIT_MS, 'the other upgrade listener did not get its WebSocket');
		assert.equal(greeting.toString(), 'chat ready');
		const client = await connect(`${base}/enslavism/clients`);
		assert.equal((await client.next()).type, T.addSlaves);

		chat.close();
		await master.close();
		server.closeAllConnections();
		await new Promise((resolve) => server.close(resolve));
	});

	it('restores the user\'s request listeners on close()', { timeout: 10_000 }, async () => {
		const { master, server, httpUrl, close } = await startMaster('server');
		assert.equal((await fetchWithin(`${httpUrl}/enslavism/client.js`)).headers.get('content-type'), 'application/javascript; charset=utf-8');
		await master.close();
		const res = await fetchWithin(`${httpUrl}/enslavism/client.js`);
		assert.equal(await res.text(), 'user handler: /enslavism/client.js');
		assert.equal(server.listenerCount('upgrade'), 0);
		await close();
	});

	it('takes WebSocket upgrades over from Node: Node no longer tracks those sockets', { timeout: 10_000 }, async () => {
		const { server, url, close } = await startMaster('server');
		const peers = await Promise.all([0, 1, 2].map(() => connect(`${url}/enslavism/clients`)));
		const connections = await new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
		assert.equal(connections, 0);
		for (const p of peers) assert.equal((await p.next()).type, T.addSlaves);
		await close();
	});
});
