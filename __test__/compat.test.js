'use strict';
// Drop-in and rolling-upgrade compatibility with enslavism 0.9.0 (from the
// registry, its `wrtc` replaced by @roamhq/wrtc through npm overrides):
// 0.9.0's own examples run unchanged on this package, and old and new
// masters, slaves and browser bundles work with each other. Browsers are
// headless Chromium; everything runs inside a network namespace the test makes.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, '0.9.0 compatibility tests')) return;

const { launchChromium } = require('./chromium.js');
const ours = require('..');
const old = require('enslavism-0.9.0');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

const OLD_PACKAGE = path.dirname(require.resolve('enslavism-0.9.0/package.json'));
const OLD_BUNDLE = fs.readFileSync(path.join(OLD_PACKAGE, 'dist', 'client.bundle.js'));
/** How long a step in the page (list, connect, one message) may take. */
const PAGE_MS = 20_000;

/**
 * An http.Server serving a page that loads `bundlePath`, plus the old bundle
 * at /old-client.js and the `scripts` given (path → source).
 */
async function pageServer(bundlePath, scripts = {}) {
	const page = `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><script src="${bundlePath}"></script></body></html>`;
	const served = { '/old-client.js': OLD_BUNDLE, ...scripts };
	const server = http.createServer((req, res) => {
		if (Object.hasOwn(served, req.url)) {
			res.writeHead(200, { 'Content-Type': 'application/javascript' });
			res.end(served[req.url]);
			return;
		}
		res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
		res.end(page);
	});
	await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
	return server;
}

/** In the page: connect to the master, open a channel to the first slave, send, and resolve with the reply (within PAGE_MS). */
async function exchange(page, wsUrl, options) {
	return within(page.evaluate(async ([url, dcOptions]) => {
		const masterCon = new MasterConnection(url);
		const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
		const dc = await slaveCo.createDataChannel('test', dcOptions ?? undefined);
		const reply = new Promise((resolve) => dc.addEventListener('message', (ev) => resolve(String(ev.data))));
		dc.send('What have I wrought!');
		return reply;
	}, [wsUrl, options ?? null]), PAGE_MS, 'the page did not list the slave, connect to it and get its reply');
}

/** A slave of either version that answers every message with "hallo welt". */
async function helloSlave(Slave, url, options) {
	// (0.9.0's Slave has no connection timeout of its own.)
	const slave = await within(new Slave(url, { name: 'compat' }, undefined, options), 2 * WAIT_MS, 'the slave did not register with the master');
	const received = [];
	slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
		dc.addEventListener('message', (ev) => {
			received.push(String(ev.data));
			dc.send('hallo welt');
		});
	}));
	return { slave, received };
}

describe('compatibility with enslavism 0.9.0', { timeout: 110_000 }, () => {
	let browser;

	before(async () => {
		browser = await launchChromium();
	}, { timeout: 30_000 });

	after(() => browser?.close(), { timeout: 30_000 });

	it('0.9.0 slave on our master: our browser bundle exchanges messages, reliable and unreliable', { timeout: 60_000 }, async () => {
		const server = await pageServer('/enslavism/client.js');
		const master = new ours.Master(server);
		const url = `ws://127.0.0.1:${server.address().port}`;
		const { slave, received } = await helloSlave(old.Slave, url);
		const page = await browser.newPage();
		try {
			await page.goto(`http://127.0.0.1:${server.address().port}/`);
			assert.equal(await exchange(page, url), 'hallo welt');
			// No negotiated channels on a 0.9.0 slave: the bundle falls back to in-band.
			await page.reload();
			assert.equal(await exchange(page, url, { ordered: false, maxRetransmits: 0 }), 'hallo welt');
			assert.deepEqual(received, ['What have I wrought!', 'What have I wrought!']);
		} finally {
			await page.close();
			slave.ws.terminate();
			for (const c of slave.connections) c.clientCon.close();
			await master.close();
			server.closeAllConnections();
			server.close();
		}
	});

	/** Our slave on `makeMaster(server)`, a page loading `bundlePath`: one exchange. */
	async function ourSlaveExchange(bundlePath, makeMaster) {
		const server = await pageServer(bundlePath);
		const master = makeMaster(server);
		const url = `ws://127.0.0.1:${server.address().port}`;
		const { slave, received } = await helloSlave(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		const page = await browser.newPage();
		try {
			await page.goto(`http://127.0.0.1:${server.address().port}/`);
			assert.equal(await exchange(page, url), 'hallo welt');
			assert.deepEqual(received, ['What have I wrought!']);
		} finally {
			await page.close();
			await slave.close();
			await master.close?.(); // 0.9.0's master has no close()
			server.closeAllConnections();
			server.close();
		}
	}

	it('our slave on the 0.9.0 master: the 0.9.0 browser bundle exchanges messages', { timeout: 40_000 }, () =>
		ourSlaveExchange('/enslavism/client.js', (server) => new old.Master(server)));

	it('the 0.9.0 browser bundle on our master and our slave', { timeout: 40_000 }, () =>
		ourSlaveExchange('/old-client.js', (server) => new ours.Master(server)));

	/** In the page: list the first slave, open a channel to it; kept as `window.kept`. Within PAGE_MS. */
	async function listAndConnect(page, wsUrl) {
		return within(page.evaluate(async (url) => {
			const masterCon = new MasterConnection(url);
			const slaveCo = await new Promise((resolve) => masterCon.addEventListener('slaveadded', resolve));
			const dc = await slaveCo.createDataChannel('test');
			const updated = new Promise((resolve) => masterCon.addEventListener('slaveupdated', resolve));
			window.kept = { masterCon, slaveCo, dc, updated };
			return slaveCo.userData;
		}, wsUrl), PAGE_MS, 'the page did not list the slave and connect to it');
	}

	/** In the page: the kept channel still carries a message (within WAIT_MS). */
	function stillExchanges(page) {
		return within(page.evaluate(() => new Promise((resolve) => {
			window.kept.dc.addEventListener('message', (ev) => resolve(String(ev.data)));
			window.kept.dc.send('still there?');
		})), WAIT_MS, 'the kept channel did not carry a message');
	}

	it('setUserData on our master: the 0.9.0 bundle keeps a working list, new pages see the update', { timeout: 60_000 }, async () => {
		const server = await pageServer('/old-client.js');
		const master = new ours.Master(server);
		const url = `ws://127.0.0.1:${server.address().port}`;
		const { slave } = await helloSlave(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		const page = await browser.newPage();
		const errors = [];
		page.on('pageerror', (err) => errors.push(err.message));
		try {
			await page.goto(`http://127.0.0.1:${server.address().port}/`);
			assert.deepEqual(await listAndConnect(page, url), { name: 'compat' });
			await slave.setUserData({ name: 'compat', players: 1 });
			assert.equal(await stillExchanges(page), 'hallo welt');
			// 0.9.0 bundles are not sent updates (their RemoveSlaves would close the
			// connection): the list keeps the slave, under its id, as it was.
			const listed = await page.evaluate(() => window.kept.masterCon.slaves.filter(Boolean).map((s) => [s.id, s.userData]));
			assert.deepEqual(listed, [[await page.evaluate(() => window.kept.slaveCo.id), { name: 'compat' }]]);
			await page.reload();
			assert.deepEqual(await listAndConnect(page, url), { name: 'compat', players: 1 }, 'a new page lists the latest');
			assert.deepEqual(errors, []);
		} finally {
			await page.close();
			await slave.close();
			await master.close();
			server.closeAllConnections();
			server.close();
		}
	});

	it('setUserData on the 0.9.0 master: registers again; our bundle updates in place, 0.9.0\'s lists it', { timeout: 60_000 }, async () => {
		// Our bundle, as our master serves it, on a page of its own (both
		// bundles define the same global names).
		const ourMaster = new ours.Master(0, { host: '127.0.0.1' });
		await onceWithin(ourMaster, 'listening', WAIT_MS, 'our master did not start listening');
		const ourBundle = await (await fetch(`http://127.0.0.1:${ourMaster.port}/enslavism/client.js`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
		await ourMaster.close();
		const ourPageServer = await pageServer('/our-client.js', { '/our-client.js': ourBundle });
		const server = await pageServer('/enslavism/client.js');
		const master = new old.Master(server);
		const url = `ws://127.0.0.1:${server.address().port}`;
		const { slave } = await helloSlave(ours.Slave, url, { iceAddresses: [NETNS_ADDRESS] });
		const ourPage = await browser.newPage();
		const oldPage = await browser.newPage();
		try {
			await ourPage.goto(`http://127.0.0.1:${ourPageServer.address().port}/`);
			assert.deepEqual(await listAndConnect(ourPage, url), { name: 'compat' });
			await slave.setUserData({ name: 'compat', players: 2 });
			const seen = await within(ourPage.evaluate(async () => {
				const updatedCo = await window.kept.updated;
				return { same: updatedCo === window.kept.slaveCo, userData: updatedCo.userData };
			}), WAIT_MS, 'our bundle did not fire slaveupdated');
			assert.deepEqual(seen, { same: true, userData: { name: 'compat', players: 2 } }, 'in place, from a second AddSlaves');
			assert.equal(await stillExchanges(ourPage), 'hallo welt');
			await oldPage.goto(`http://127.0.0.1:${server.address().port}/`);
			assert.deepEqual(await listAndConnect(oldPage, url), { name: 'compat', players: 2 });
		} finally {
			await ourPage.close();
			await oldPage.close();
			await slave.close();
			server.closeAllConnections();
			server.close();
			ourPageServer.close();
		}
	});

	it('0.9.0\'s own examples run unchanged on this package', { timeout: 60_000 }, async () => {
		// The examples `require('..')`: copy them, untouched, under a folder whose
		// package is this one.
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'enslavism-examples-'));
		fs.cpSync(path.join(OLD_PACKAGE, 'examples'), path.join(dir, 'examples'), { recursive: true });
		fs.writeFileSync(path.join(dir, 'index.js'), `module.exports = require(${JSON.stringify(path.join(__dirname, '..'))});\n`);
		const children = [];
		const start = (file) => {
			const child = spawn(process.execPath, [path.join(dir, 'examples', file)], { stdio: ['ignore', 'pipe', 'pipe'] });
			children.push(child);
			let output = '';
			child.stdout.on('data', (d) => { output += d; });
			child.stderr.on('data', (d) => { output += d; });
			return { child, output: () => output, waitFor: (text) => within(new Promise((resolve, reject) => {
				const check = () => { if (output.includes(text)) resolve(); };
				child.stdout.on('data', check);
				child.stderr.on('data', check);
				child.on('exit', (code) => reject(new Error(`${file} exited (${code}) before printing ${JSON.stringify(text)}:\n${output}`)));
				check();
			}), PAGE_MS, `${file} did not print ${JSON.stringify(text)}`) };
		};
		const page = await browser.newPage();
		try {
			const masterProcess = start('master.js');
			await waitForPort(8081);
			const slaveProcess = start('slave.js');
			await masterProcess.waitFor('Slave connected @');
			const hallo = within(new Promise((resolve) => page.on('console', async (msg) => {
				for (const arg of msg.args()) {
					const data = await arg.evaluate((v) => (v && typeof v === 'object' && 'data' in v ? String(v.data) : null)).catch(() => null);
					if (data === 'hallo welt') resolve();
				}
			})), PAGE_MS, '0.9.0\'s index.html did not log "hallo welt" from the slave');
			await page.goto('http://localhost:8081/');
			await hallo;
			await slaveProcess.waitFor('Received message: What have I wrought!');
			await masterProcess.waitFor('getkey wants to connect!');
		} finally {
			await page.close();
			for (const child of children) child.kill();
			fs.rmSync(dir, { recursive: true, force: true });
		}
	});
});

/** Resolves once something accepts connections on 127.0.0.1:port. */
async function waitForPort(port) {
	const net = require('node:net');
	for (let attempt = 0; attempt < 200; attempt++) {
		const open = await new Promise((resolve) => {
			const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
			socket.on('error', () => resolve(false));
		});
		if (open) return;
		await new Promise((resolve) => setTimeout(resolve, 25));
	}
	throw new Error(`nothing listens on port ${port}`);
}
