'use strict';
// The master at the wire level: plain `ws` sockets as slaves and clients,
// in both modes (own port, attached to an http.Server).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const vm = require('node:vm');
const fs = require('node:fs');
const path = require('node:path');
const { SourceMap } = require('node:module');
const { T, frame, connect, startMaster, registeredSlave } = require('./helpers.js');

const CANDIDATE = { sdpMid: '0', sdpMLineIndex: 0, candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host' };

for (const mode of ['port', 'server']) {
	describe(`master (${mode === 'port' ? 'own port' : 'attached to an http.Server'})`, () => {
		async function withMaster(fn, options) {
			const m = await startMaster(mode, options);
			try {
				await fn(m);
			} finally {
				await m.close();
			}
		}

		it('serves the browser bundle, which defines the global MasterConnection', () => withMaster(async ({ httpUrl }) => {
			const res = await fetch(`${httpUrl}/enslavism/client.js`);
			assert.equal(res.status, 200);
			assert.equal(res.headers.get('content-type'), 'application/javascript; charset=utf-8');
			assert.equal(res.headers.get('cache-control'), 'no-cache');
			const etag = res.headers.get('etag');
			assert.match(etag, /^"[0-9a-f]{16}"$/);
			const source = await res.text();
			// A browser holding the current copy gets a 304 without a body; an old copy gets the bundle.
			const again = await fetch(`${httpUrl}/enslavism/client.js`, { headers: { 'If-None-Match': `W/"0", ${etag}` } });
			assert.equal(again.status, 304);
			assert.equal(again.headers.get('etag'), etag);
			assert.equal(await again.text(), '');
			const stale = await fetch(`${httpUrl}/enslavism/client.js`, { headers: { 'If-None-Match': '"0123456789abcdef"' } });
			assert.equal(stale.status, 200);
			assert.equal(await stale.text(), source);
			const context = { WebSocket: class {}, RTCPeerConnection: class {}, TextEncoder, TextDecoder };
			context.globalThis = context;
			vm.runInNewContext(source, context);
			assert.equal(typeof context.MasterConnection, 'function');
		}));

		it('serves the bundle minified, with a source map that leads back to client/index.mjs', () => withMaster(async ({ httpUrl }) => {
			const script = await (await fetch(`${httpUrl}/enslavism/client.js`)).text();
			assert.ok(script.endsWith('\n//# sourceMappingURL=client.js.map\n'), script.slice(-80));
			const module = fs.readFileSync(path.join(__dirname, '..', 'client', 'index.mjs'), 'utf8');
			assert.ok(script.length < module.length / 2, `${script.length} bytes minified, ${module.length} in the module`);
			assert.ok(!script.includes('Style rules'), 'comments are left out');

			const res = await fetch(`${httpUrl}/enslavism/client.js.map`);
			assert.equal(res.status, 200);
			assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
			assert.equal(res.headers.get('cache-control'), 'no-cache');
			const etag = res.headers.get('etag');
			const payload = await res.json();
			assert.deepEqual(payload.sources, ['index.mjs']);
			assert.equal(payload.sourcesContent[0], module);
			const again = await fetch(`${httpUrl}/enslavism/client.js.map`, { headers: { 'If-None-Match': etag } });
			assert.equal(again.status, 304);

			// Every string argument of the module found once in each leads
			// from the script back to the module's line that holds it (not
			// constants: the minifier writes them where they are used).
			const map = new SourceMap(payload);
			const lines = module.split('\n');
			const strings = [...new Set([...module.matchAll(/\('([^'\\\n]{16,})'/g)].map((m) => m[1]))]
				.filter((text) => module.split(text).length === 2 && script.split(text).length === 2);
			assert.ok(strings.length >= 3, strings.join('\n'));
			for (const text of strings) {
				const at = script.indexOf(text);
				const line = script.slice(0, at).split('\n').length - 1;
				const column = at - (script.lastIndexOf('\n', at) + 1);
				const entry = map.findEntry(line, column);
				assert.ok(lines[entry.originalLine]?.includes(text), `${text} maps to line ${entry.originalLine + 1}: ${lines[entry.originalLine]}`);
			}
		}));

		it(mode === 'port' ? 'answers 404 to any other request' : 'leaves other requests to the user\'s handlers', () => withMaster(async ({ httpUrl }) => {
			const res = await fetch(`${httpUrl}/index.html`);
			if (mode === 'port') {
				assert.equal(res.status, 404);
			} else {
				assert.equal(res.status, 200);
				assert.equal(await res.text(), 'user handler: /index.html');
			}
		}));

		it('refuses WebSocket upgrades on other paths', () => withMaster(async ({ url }) => {
			await assert.rejects(connect(`${url}/elsewhere`));
		}));

		it('sends a new client the slave list: a bare type byte when empty, every registered slave otherwise', () => withMaster(async ({ url }) => {
			const first = await connect(`${url}/enslavism/clients`);
			assert.deepEqual(await first.next(), { type: T.addSlaves, slaves: [] });

			const a = await registeredSlave(url, { name: 'a', players: 3 }, first);
			const b = await registeredSlave(url, ['b'], first);
			await connect(`${url}/enslavism/slaves`); // connected, never registers: not listed

			const late = await connect(`${url}/enslavism/clients`);
			const list = await late.next();
			assert.equal(list.type, T.addSlaves);
			assert.deepEqual(list.slaves, [
				{ id: a.id, userData: { name: 'a', players: 3 } },
				{ id: b.id, userData: ['b'] },
			]);
		}));

		it('broadcasts a registration to every client and a slave\'s departure as RemoveSlaves', () => withMaster(async ({ url }) => {
			const c1 = await connect(`${url}/enslavism/clients`);
			const c2 = await connect(`${url}/enslavism/clients`);
			await c1.next();
			await c2.next();
			const { slave, id, added } = await registeredSlave(url, { n: 1 }, c1);
			assert.deepEqual(added.slaves, [{ id, userData: { n: 1 } }]);
			assert.deepEqual(await c2.next(), { type: T.addSlaves, slaves: [{ id, userData: { n: 1 } }] });
			await slave.close();
			assert.deepEqual(await c1.next(), { type: T.removeSlaves, ids: [id] });
			assert.deepEqual(await c2.next(), { type: T.removeSlaves, ids: [id] });
		}));

		it('routes every signalling message with ids rewritten', () => withMaster(async ({ url }) => {
			const other = await connect(`${url}/enslavism/clients`); // shifts client ids away from slave ids
			await other.next();
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const { slave, id: slaveId } = await registeredSlave(url, {}, client);

			client.send(frame.sdp(T.offerToSlave, slaveId, 'v=0 offer'));
			const offer = await slave.next();
			assert.equal(offer.type, T.offerFromClient);
			assert.equal(offer.sdp, 'v=0 offer');
			const clientId = offer.id;
			assert.notEqual(clientId, slaveId);

			client.send(frame.candidate(T.iceCandidateToSlave, slaveId, CANDIDATE));
			assert.deepEqual(await slave.next(), { type: T.iceCandidateFromClient, id: clientId, candidate: CANDIDATE });
			client.send(frame.candidate(T.iceCandidateToSlave, slaveId, null));
			assert.deepEqual(await slave.next(), { type: T.iceCandidateFromClient, id: clientId, candidate: null });

			slave.send(frame.sdp(T.answerToClient, clientId, 'v=0 answer'));
			assert.deepEqual(await client.next(), { type: T.answerFromSlave, id: slaveId, sdp: 'v=0 answer' });
			slave.send(frame.candidate(T.iceCandidateToClient, clientId, CANDIDATE));
			assert.deepEqual(await client.next(), { type: T.iceCandidateFromSlave, id: slaveId, candidate: CANDIDATE });
			slave.send(frame.candidate(T.iceCandidateToClient, clientId, null));
			assert.deepEqual(await client.next(), { type: T.iceCandidateFromSlave, id: slaveId, candidate: null });
			slave.send(frame.reject(T.rejectToClient, clientId));
			assert.deepEqual(await client.next(), { type: T.rejectFromSlave, id: slaveId, length: 5 });
		}));

		it('drops malformed, unknown, text and wrong-direction frames and keeps every connection working', () => withMaster(async ({ master, url }) => {
			const errors = [];
			master.on('error', (e) => errors.push(e));
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const bystander = await connect(`${url}/enslavism/clients`);
			await bystander.next();
			const { slave, id: slaveId } = await registeredSlave(url, {}, client);
			await bystander.next();

			// Every type byte alone (0.9.0 died on [3]), then unknown types with bodies.
			for (let t = 0; t < 256; t++) {
				client.send(Buffer.from([t]));
				slave.send(Buffer.from([t]));
			}
			for (const t of [13, 42, 255]) client.send(Buffer.from([t, 0, 0, 0, 0, 1, 2, 3]));
			client.send(Buffer.alloc(0));
			client.ws.send('a text frame');
			// Truncated candidates and offers to unknown slaves.
			client.send(Buffer.from([T.iceCandidateToSlave, 0, 0, 0, slaveId, 9, 0x30]));
			client.send(frame.sdp(T.offerToSlave, slaveId + 1000, 'nobody'));
			// Client-only clients may not send slave types, and vice versa.
			client.send(frame.register({ evil: true }));
			client.send(frame.sdp(T.answerToClient, 0, 'fake answer'));
			client.send(frame.reject(T.rejectToClient, 0));
			slave.send(frame.sdp(T.offerToSlave, slaveId, 'slave offering'));
			slave.send(frame.candidate(T.iceCandidateToSlave, slaveId, CANDIDATE));
			// Invalid UTF-8 in an SDP, invalid JSON in a Register.
			client.send(Buffer.from([T.offerToSlave, 0, 0, 0, slaveId, 0xff, 0xfe]));
			slave.send(Buffer.from([T.register, 0x7b]));

			// The offer to a slave that does not exist is refused, not left hanging.
			assert.deepEqual(await client.next(), { type: T.rejectFromSlave, id: slaveId + 1000, length: 5 });
			// The next frames each side sees are the valid ones sent after all that.
			client.send(frame.sdp(T.offerToSlave, slaveId, 'still works'));
			const offer = await slave.next();
			assert.equal(offer.type, T.offerFromClient);
			assert.equal(offer.sdp, 'still works');
			slave.send(frame.sdp(T.answerToClient, offer.id, 'answer'));
			assert.deepEqual(await client.next(), { type: T.answerFromSlave, id: slaveId, sdp: 'answer' });
			// The bystander saw none of it; a new registration still reaches it.
			await registeredSlave(url, { second: true }, bystander);
			assert.deepEqual(errors, []);
		}));

		it('refuses a userData over 65,535 bytes and lists nothing for it', () => withMaster(async ({ url }) => {
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const slave = await connect(`${url}/enslavism/slaves`);
			slave.send(frame.register('x'.repeat(65534))); // 65,536 bytes of JSON
			slave.send(frame.register('y'.repeat(65533))); // exactly 65,535: fits
			const added = await client.next();
			assert.equal(added.type, T.addSlaves);
			assert.equal(added.slaves[0].userData, 'y'.repeat(65533));
		}));

		it('closes a peer that sends a message over maxMessageSize, and only that peer', () => withMaster(async ({ url }) => {
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const big = await connect(`${url}/enslavism/clients`);
			big.send(Buffer.alloc(2048, 3));
			const { code } = await big.closed;
			assert.equal(code, 1009);
			await registeredSlave(url, {}, client);
		}, { maxMessageSize: 1024 }));

		it('asks slaveauth and clientauth with the cookies; reject(reason) is a 401 with that reason', () => withMaster(async ({ master, url }) => {
			const seen = [];
			master.on('slaveauth', (authData, reject) => {
				seen.push(['slave', authData]);
				if (authData.username !== 'getkey' || authData.password !== 'secret') reject('Invalid credentials!');
			});
			master.on('clientauth', (authData, reject) => {
				seen.push(['client', authData]);
				if (authData.banned) reject();
			});

			const refused = await connect(`${url}/enslavism/slaves`, { cookie: 'username=getkey; password=wrong' }).catch((e) => e);
			assert.equal(refused.status, 401);
			assert.equal(refused.body, 'Invalid credentials!');
			const slave = await connect(`${url}/enslavism/slaves`, { cookie: 'username=getkey; password=secret; x=%C3%A9' });

			const banned = await connect(`${url}/enslavism/clients`, { cookie: 'banned=1' }).catch((e) => e);
			assert.equal(banned.status, 401);
			assert.equal(banned.body, 'Unauthorized');
			const client = await connect(`${url}/enslavism/clients`);
			assert.equal((await client.next()).type, T.addSlaves);

			assert.deepEqual(seen, [
				['slave', { username: 'getkey', password: 'wrong' }],
				['slave', { username: 'getkey', password: 'secret', x: 'é' }],
				['client', { banned: '1' }],
				['client', {}],
			]);
			await slave.close();
		}));

		it('emits slaveconnection and clientconnection with a ws-like socket', () => withMaster(async ({ master, url }) => {
			const slaveSocket = once(master, 'slaveconnection');
			const clientSocket = once(master, 'clientconnection');
			const slave = await connect(`${url}/enslavism/slaves`);
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const [ws] = await slaveSocket;
			const [cws] = await clientSocket;
			assert.equal(ws._socket.remoteAddress, '127.0.0.1');
			assert.equal(ws._socket.remotePort, slave.ws._socket.localPort);
			assert.equal(cws._socket.remotePort, client.ws._socket.localPort);
			assert.equal(ws.readyState, 1);

			ws.send(Buffer.from([200, 1, 2]));
			assert.deepEqual((await slave.next()).raw, Buffer.from([200, 1, 2]));

			const wsClosed = once(ws, 'close');
			ws.close(4000, 'bye');
			assert.deepEqual(await slave.closed, { code: 4000, reason: 'bye' });
			assert.deepEqual(await wsClosed, [4000, 'bye']);
			assert.equal(ws.readyState, 3);
			assert.throws(() => ws.send('late'), { code: 'ERR_ENSLAVISM_CLOSED' });

			const cwsClosed = once(cws, 'close');
			await client.close();
			assert.equal((await cwsClosed)[0], 1005);
		}));

		it('close() closes every connection with 1001 and resolves', () => withMaster(async ({ master, url }) => {
			const client = await connect(`${url}/enslavism/clients`);
			await client.next();
			const slave = await connect(`${url}/enslavism/slaves`);
			await master.close();
			assert.equal((await client.closed).code, 1001);
			assert.equal((await slave.closed).code, 1001);
			assert.deepEqual(master.peerCounts, { slaves: 0, clients: 0 });
			assert.equal(master.close(), master.close(), 'close() is idempotent');
		}));
	});
}
