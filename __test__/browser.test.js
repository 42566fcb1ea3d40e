'use strict';
// The browser bundle in headless Chromium (Debian's, driven by playwright-core)
// against the Rust master and the Rust slave, inside a network namespace made
// by the test. The page is served from the master's own origin.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'browser tests')) return;

const { launchChromium: launch } = require('./chromium.js');
const WebSocket = require('ws');
const { Master, Slave } = require('..');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

/** How long a step in the page (list, connect, a few messages) may take. */
const PAGE_MS = 20_000;

const PAGE = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>enslavism test</title></head>
<body><script src="/enslavism/client.js"></script></body></html>`;

describe('browser client in Chromium', { timeout: 110_000 }, () => {
	let server;
	let master;
	let slave;
	let browser;
	let page;
	const slaveChannels = [];

	before(async () => {
		server = http.createServer((req, res) => {
			res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
			res.end(PAGE);
		});
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		master = new Master(server);
		const url = `ws://127.0.0.1:${server.address().port}`;
		slave = await new Slave(url, { name: 'chromium test' }, undefined, { iceAddresses: [NETNS_ADDRESS] });
		slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
			slaveChannels.push(dc);
			dc.on('open', () => dc.send('hallo welt'));
			dc.on('message', (ev) => {
				if (typeof ev.data === 'string') dc.send(`echo:${ev.data}`);
				else dc.send(new Uint8Array(ev.data).reverse());
			});
		}));
		browser = await launch();
		page = await browser.newPage();
		await page.goto(`http://127.0.0.1:${server.address().port}/`);
	}, { timeout: 30_000 });

	after(async () => {
		await browser?.close();
		await slave?.close();
		await master?.close();
		server?.closeAllConnections();
		await new Promise((resolve) => server.close(resolve));
	}, { timeout: 30_000 });

	it('lists the slave, opens a channel and exchanges text and binary both ways', { timeout: 30_000 }, async () => {
		const result = await within(page.evaluate(async (wsUrl) => {
			const masterCon = new MasterConnection(wsUrl);
			const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
			const started = performance.now();
			const dc = await slaveCo.createDataChannel('test');
			const setupMs = performance.now() - started;
			dc.binaryType = 'arraybuffer';
			const received = [];
			const three = new Promise((resolve) => {
				dc.addEventListener('message', (ev) => { if (received.push(ev.data) === 3) resolve(); });
			});
			dc.send('What have I wrought!');
			dc.send(new Uint8Array([1, 2, 3]));
			await three;
			window.keep = { masterCon, slaveCo };
			return {
				userData: slaveCo.userData,
				setupMs,
				texts: received.filter((d) => typeof d === 'string').sort(),
				binary: received.filter((d) => d instanceof ArrayBuffer).map((d) => [...new Uint8Array(d)]),
			};
		}, `ws://127.0.0.1:${server.address().port}`), PAGE_MS, 'the page did not list the slave, open a channel and get three messages');
		assert.deepEqual(result.userData, { name: 'chromium test' });
		assert.deepEqual(result.texts, ['echo:What have I wrought!', 'hallo welt']);
		assert.deepEqual(result.binary, [[3, 2, 1]]);
		console.log(`# Chromium connection setup: ${result.setupMs.toFixed(1)} ms`);
	});

	it('opens an unreliable channel that the slave sees as the browser asked for', { timeout: 30_000 }, async () => {
		const before = slaveChannels.length;
		const label = await within(page.evaluate(async () => {
			const dc = await window.keep.slaveCo.createDataChannel('fast', { ordered: false, maxRetransmits: 0 });
			const reply = new Promise((resolve) => dc.addEventListener('message', (ev) => {
				if (ev.data.startsWith('echo:')) resolve(ev.data);
			}));
			dc.send('ping');
			return reply;
		}), PAGE_MS, 'the page did not open the unreliable channel and get an echo');
		assert.equal(label, 'echo:ping');
		const dc = slaveChannels.slice(before).find((c) => c.label === 'fast');
		assert.ok(dc, 'the slave saw the channel');
		assert.equal(dc.ordered, false);
		assert.equal(dc.maxRetransmits, 0);
		assert.equal(slave.connections.length, 1, 'on the same connection');
	});

	it('close() and connecting again at once: the old connection closes, the new one gets its channels', { timeout: 30_000 }, async () => {
		const [oldCo] = slave.connections;
		const oldClosed = onceWithin(oldCo, 'close', PAGE_MS, 'the slave did not see the old connection close');
		const reconnected = onceWithin(slave, 'connection', PAGE_MS, 'the slave did not get the new connection');
		const reply = await within(page.evaluate(async () => {
			window.keep.slaveCo.close();
			const dc = await window.keep.slaveCo.createDataChannel('again');
			const echo = new Promise((resolve) => dc.addEventListener('message', (ev) => {
				if (ev.data.startsWith('echo:')) resolve(ev.data);
			}));
			dc.send('back');
			return echo;
		}), PAGE_MS, 'the page did not reconnect and get an echo');
		assert.equal(reply, 'echo:back');
		const [newCo] = await reconnected;
		await oldClosed;
		assert.equal(newCo.id, oldCo.id, 'same client, new connection');
		assert.deepEqual(slave.connections, [newCo]);
		assert.ok(newCo.dataChannels.again, 'the new connection has the new channel');

		const newClosed = onceWithin(newCo, 'close', PAGE_MS, 'the slave did not see the new connection close');
		await page.evaluate(() => window.keep.slaveCo.close());
		await newClosed;
		assert.deepEqual(slave.connections, []);
	});

	it('a refused offer rejects createDataChannel and fires rejected', { timeout: 30_000 }, async () => {
		let offered;
		slave.once('offer', (reject, info) => { offered = info; reject(); });
		const outcome = await within(page.evaluate(async (url) => {
			const masterCon = new MasterConnection(url);
			const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
			const rejected = new Promise((resolve) => slaveCo.addEventListener('rejected', () => resolve(true)));
			const err = await slaveCo.createDataChannel('nope').then(() => null, (e) => ({ message: e.message, code: e.code }));
			const fired = await rejected;
			masterCon.close();
			return { err, fired };
		}, `ws://127.0.0.1:${server.address().port}`), PAGE_MS, 'the page did not see its offer refused');
		assert.equal(outcome.err.code, 'REJECTED');
		assert.equal(outcome.fired, true);
		assert.ok(Number.isInteger(offered.clientId), 'the offer names its client');
	});

	it('shows a live userData update in place, the open channel untouched', { timeout: 30_000 }, async () => {
		const url = `ws://127.0.0.1:${server.address().port}`;
		await within(page.evaluate(async (wsUrl) => {
			const masterCon = new MasterConnection(wsUrl);
			const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
			const dc = await slaveCo.createDataChannel('live');
			const replies = [];
			dc.addEventListener('message', (ev) => replies.push(ev.data));
			const updated = new Promise((resolve) => masterCon.addEventListener('slaveupdated', resolve));
			window.live = { masterCon, slaveCo, dc, replies, updated };
		}, url), PAGE_MS, 'the page did not list the slave and open a channel');
		await within(slave.setUserData({ name: 'chromium test', players: 1 }), WAIT_MS, 'setUserData did not resolve');
		assert.deepEqual(slave.userData, { name: 'chromium test', players: 1 });
		const seen = await within(page.evaluate(async () => {
			const { masterCon, slaveCo, dc, replies, updated } = window.live;
			const updatedCo = await updated;
			const echo = new Promise((resolve) => dc.addEventListener('message', (ev) => {
				if (ev.data === 'echo:after the update') resolve(ev.data);
			}));
			dc.send('after the update');
			const reply = await echo;
			const state = { same: updatedCo === slaveCo, listed: masterCon.slaves[slaveCo.id] === slaveCo,
				userData: slaveCo.userData, dcState: dc.readyState, reply, replies: replies.length };
			masterCon.close();
			return state;
		}), PAGE_MS, 'the page did not get slaveupdated and an echo after it');
		assert.deepEqual(seen, { same: true, listed: true, userData: { name: 'chromium test', players: 1 },
			dcState: 'open', reply: 'echo:after the update', replies: 2 });
		await within(slave.setUserData({ name: 'chromium test' }), WAIT_MS, 'setUserData did not resolve');
	});

	it('a slave killed with SIGKILL leaves every list', { timeout: 30_000 }, async () => {
		const url = `ws://127.0.0.1:${server.address().port}`;
		// A slave in its own process, so that it can die without a goodbye.
		const doomed = spawn(process.execPath, ['-e', `
			const { Slave } = require(${JSON.stringify(path.join(__dirname, '..'))});
			new Slave(${JSON.stringify(url)}, { name: 'doomed' }).then(() => console.log('registered'));
		`], { stdio: ['ignore', 'pipe', 'inherit'] });
		await page.evaluate((wsUrl) => {
			window.doomedListed = new Promise((listed) => {
				const masterCon = new MasterConnection(wsUrl);
				masterCon.addEventListener('slaveadded', (slaveCo) => {
					if (slaveCo.userData.name !== 'doomed') return;
					window.doomedRemoved = new Promise((resolve) => masterCon.addEventListener('slaveremoved', (gone) => {
						if (gone === slaveCo) resolve(performance.now());
					}));
					listed(true);
				});
			});
		}, url);
		// Listed in the browser, then killed.
		try {
			await within(page.evaluate(() => window.doomedListed), PAGE_MS, 'the page did not list the slave process');
		} catch (err) {
			doomed.kill('SIGKILL');
			throw err;
		}
		const killedAt = await page.evaluate(() => performance.now());
		doomed.kill('SIGKILL');
		const removedAt = await within(page.evaluate(() => window.doomedRemoved), WAIT_MS, 'the page did not see the killed slave leave');
		console.log(`# slaveremoved ${(removedAt - killedAt).toFixed(1)} ms after SIGKILL`);
	});

	it('reports the master connection closing, and a refused one', { timeout: 30_000 }, async () => {
		const port = server.address().port;
		master.once('clientauth', (authData, reject) => reject('no entry'));
		const refused = await within(page.evaluate((url) => new Promise((resolve) => {
			const mc = new MasterConnection(url);
			mc.addEventListener('close', resolve);
		}), `ws://127.0.0.1:${port}`), WAIT_MS, 'the page did not report the refused connection as a close');
		assert.equal(refused.code, 1006);
		assert.equal(refused.wasClean, false);

		// Listen first (in the page), then close the master.
		await page.evaluate(() => {
			window.masterClosed = new Promise((resolve) => window.keep.masterCon.addEventListener('close', resolve));
		});
		await master.close();
		const event = await within(page.evaluate(() => window.masterClosed), WAIT_MS, 'the page did not see the closed master close its connection');
		assert.equal(event.code, 1001);
		assert.equal(event.reason, 'master closing');
		assert.equal(event.wasClean, true);
	});
});

describe('a master cut off without closing, seen from Chromium', { timeout: 60_000 }, () => {
	it('is noticed within deadMasterTimeout and handled like a close: reconnect, resync', { timeout: 50_000 }, async () => {
		const server = http.createServer((req, res) => {
			res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
			res.end(PAGE);
		});
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		const { port } = server.address();
		const master = new Master(server);
		const cutSlave = await new Slave(`ws://127.0.0.1:${port}`, { name: 'behind the cut' }, undefined, { iceAddresses: [NETNS_ADDRESS] });
		const browser = await launch();
		const nft = (script) => execFileSync('nft', ['-f', '-'], { input: script });
		try {
			const page = await browser.newPage();
			await page.goto(`http://127.0.0.1:${port}/`);
			await within(page.evaluate((wsUrl) => new Promise((resolve) => {
				const masterCon = new MasterConnection(wsUrl, { deadMasterTimeout: 1500, reconnectMaxDelay: 300 });
				const reconnected = new Promise((done) => masterCon.addEventListener('reconnected', done));
				window.cut = { masterCon, closes: [], reconnected };
				masterCon.addEventListener('close', (ev) => window.cut.closes.push({ ...ev, at: performance.now() }));
				masterCon.addEventListener('slaveadded', resolve);
			}), `ws://127.0.0.1:${port}`), PAGE_MS, 'the page did not list the slave');
			// Every packet to or from the master's port is dropped: no FIN, no RST,
			// the TCP connection just goes quiet, as behind a cut cable.
			nft(`table inet cut {
				chain out { type filter hook output priority 0; tcp dport ${port} drop; tcp sport ${port} drop; }
			}`);
			const cutAt = await page.evaluate(() => performance.now());
			const closed = await within(page.evaluate(() => new Promise((resolve) => {
				window.cut.masterCon.addEventListener('close', resolve);
			})), PAGE_MS, 'the page did not notice the cut-off master (deadMasterTimeout 1500 ms)');
			const noticedMs = (await page.evaluate(() => window.cut.closes[0].at)) - cutAt;
			assert.equal(closed.code, 1006);
			assert.match(closed.reason, /sent nothing/);
			assert.ok(noticedMs < 5000, `noticed after ${noticedMs} ms`);
			console.log(`# a cut master noticed after ${noticedMs.toFixed(0)} ms (deadMasterTimeout 1500)`);
			nft('delete table inet cut');
			const listed = await within(page.evaluate(async () => {
				await window.cut.reconnected;
				return window.cut.masterCon.slaves.filter(Boolean).map((s) => s.userData);
			}), PAGE_MS, 'the page did not reconnect once the master was reachable again');
			assert.deepEqual(listed, [{ name: 'behind the cut' }], 'the list after resync');
		} finally {
			try { nft('delete table inet cut'); } catch { /* already gone */ }
			await browser.close();
			await cutSlave.close();
			await master.close();
			server.closeAllConnections();
			server.close();
		}
	});
});

describe('failover between two masters, seen from Chromium', { timeout: 60_000 }, () => {
	/** A master on its own HTTP server, which serves the test page too. */
	async function pageMaster() {
		const server = http.createServer((req, res) => {
			res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
			res.end(PAGE);
		});
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		return { server, master: new Master(server), url: `ws://127.0.0.1:${server.address().port}` };
	}

	it('master A goes: the page moves to B and keeps the slave and its channel, without a duplicate', { timeout: 50_000 }, async () => {
		const a = await pageMaster();
		const b = await pageMaster();
		// B's id 0 taken by a peer that never registers: the slave gets another
		// id there than on A and is relisted, whichever of the page and the
		// slave reaches B first (under its old id it would be kept without an
		// event, and a page back first would have nothing to wait for).
		const placeholder = new WebSocket(`${b.url}/enslavism/slaves`);
		await onceWithin(placeholder, 'open', WAIT_MS, 'the placeholder peer did not connect to B');
		const urls = [a.url, b.url];
		const survivor = await new Slave(urls, { name: 'survivor' }, undefined, { iceAddresses: [NETNS_ADDRESS], reconnectMaxDelay: 200 });
		survivor.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => dc.on('message', (ev) => dc.send(`echo:${ev.data}`))));
		const browser = await launch();
		try {
			const page = await browser.newPage();
			// Served by B, which stays: the page outlives A.
			await page.goto(`http://127.0.0.1:${b.server.address().port}/`);
			const first = await within(page.evaluate(async (masterUrls) => {
				const masterCon = new MasterConnection(masterUrls, { reconnectMaxDelay: 200 });
				const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
				const dc = await slaveCo.createDataChannel('live');
				const events = [];
				for (const type of ['slaveadded', 'slaveremoved', 'slaverelisted']) masterCon.addEventListener(type, () => events.push(type));
				const reconnected = new Promise((resolve) => masterCon.addEventListener('reconnected', resolve));
				window.failover = { masterCon, slaveCo, dc, events, reconnected };
				return { url: masterCon.masterUrl, userData: slaveCo.userData };
			}, urls), PAGE_MS, 'the page did not list the slave on A and open a channel');
			assert.deepEqual(first, { url: a.url, userData: { name: 'survivor' } });

			const slaveMoved = onceWithin(survivor, 'reconnected', WAIT_MS, 'the slave did not register with B');
			await a.master.close();
			a.server.closeAllConnections();
			a.server.close();
			assert.deepEqual((await slaveMoved)[0], { url: b.url });
			const after = await within(page.evaluate(async () => {
				const { masterCon, slaveCo, dc, events, reconnected } = window.failover;
				const info = await reconnected;
				// The slave may register with B after the page is back there.
				while (masterCon.slaves[slaveCo.id] !== slaveCo) {
					await new Promise((resolve) => masterCon.addEventListener('slaverelisted', resolve, { once: true }));
				}
				const echo = new Promise((resolve) => dc.addEventListener('message', (ev) => resolve(ev.data), { once: true }));
				dc.send('after failover');
				const state = { info, url: masterCon.masterUrl, listed: masterCon.slaves.filter(Boolean).length, events, echo: await echo };
				masterCon.close();
				return state;
			}), PAGE_MS, 'the page did not move to B, list the slave again and get an echo');
			assert.deepEqual(after.info, { url: b.url });
			assert.equal(after.url, b.url);
			assert.equal(after.listed, 1, 'no duplicate');
			assert.ok(after.events.every((type) => type === 'slaverelisted'), `no add or remove: ${after.events}`);
			assert.equal(after.echo, 'echo:after failover');
		} finally {
			placeholder.close();
			await browser.close();
			await survivor.close();
			await a.master.close();
			await b.master.close();
			for (const { server } of [a, b]) {
				server.closeAllConnections();
				server.close();
			}
		}
	});
});
