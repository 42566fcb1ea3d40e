'use strict';
// Deployed as on the internet, inside a network namespace made by the test:
// a master attached to an https.Server with both browser bundles in
// Chromium, a slave behind a 1:1 NAT (nftables DNAT of a documentation
// address onto the one it binds), and a player that may only use TURN
// (Debian's coturn, started here).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const os = require('node:os');
const https = require('node:https');
const path = require('node:path');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'deployment tests')) return;

const { launchChromium } = require('./chromium.js');
const { Master, Slave } = require('..');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

const TLS_DIR = path.join(__dirname, 'fixtures', 'tls');
const CA = fs.readFileSync(path.join(TLS_DIR, 'ca.pem'));
const OLD_BUNDLE = fs.readFileSync(path.join(path.dirname(require.resolve('enslavism-0.9.0/package.json')), 'dist', 'client.bundle.js'));
/** What the NATed slave is known as: a documentation address, mapped onto NETNS_ADDRESS by this test's nftables rule. */
const PUBLIC_ADDRESS = '203.0.113.7';
const TURN_PORT = 3478;
/** How long an exchange in the page (list, connect, one message) may take. */
const EXCHANGE_MS = 20_000;

const page = (bundle) => `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><script src="${bundle}"></script></body></html>`;

/** A slave named `name` that echoes every message. */
async function echoSlave(url, name, options) {
	const slave = await new Slave(url, { name }, undefined, { ca: CA, iceAddresses: [NETNS_ADDRESS], ...options });
	slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
		dc.on('message', (ev) => dc.send(`echo:${ev.data}`));
	}));
	return slave;
}

/**
 * In the page: connect to the master with `options`, open a channel to the
 * slave named `name`, exchange one message. With `withStats`, also returns
 * the selected candidate pair and every remote candidate the browser saw.
 * Rejects if that takes EXCHANGE_MS.
 */
function exchange(browserPage, wsUrl, name, options = {}, withStats = true) {
	return within(browserPage.evaluate(async ([url, slaveName, opts, stats]) => {
		const masterCon = new MasterConnection(url, opts);
		const slaveCo = await new Promise((resolve) => {
			const check = (s) => { if (s.userData.name === slaveName) resolve(s); };
			masterCon.addEventListener('slaveadded', check);
		});
		const dc = await slaveCo.createDataChannel('test');
		const reply = new Promise((resolve) => dc.addEventListener('message', (ev) => resolve(String(ev.data))));
		dc.send('ping');
		const echoed = await reply;
		const result = { echoed };
		if (stats) {
			const report = [...(await slaveCo.slaveCon.getStats()).values()];
			const byId = new Map(report.map((r) => [r.id, r]));
			const transport = report.find((r) => r.type === 'transport');
			const pair = byId.get(transport.selectedCandidatePairId);
			result.local = byId.get(pair.localCandidateId);
			result.remote = byId.get(pair.remoteCandidateId);
			result.remoteAddresses = report.filter((r) => r.type === 'remote-candidate').map((r) => r.address);
		}
		// The 0.9.0 bundle has neither.
		masterCon.close?.();
		slaveCo.close?.();
		return result;
	}, [wsUrl, name, options, withStats]), EXCHANGE_MS, `the page did not list '${name}', connect to it and get an echo`);
}

/**
 * Resolves once a STUN server answers a Binding request at host:port (coturn
 * prints nothing reliable when it is ready); asks every 100 ms.
 */
async function stunAnswers(host, port) {
	const socket = dgram.createSocket('udp4');
	try {
		const answered = onceWithin(socket, 'message', 2 * WAIT_MS, `no STUN answer from ${host}:${port}`);
		// Binding request: type 1, length 0, the magic cookie, a transaction id.
		const request = Buffer.concat([Buffer.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]), Buffer.alloc(12, 7)]);
		const timer = setInterval(() => socket.send(request, port, host), 100);
		socket.send(request, port, host);
		await answered.finally(() => clearInterval(timer));
	} finally {
		socket.close();
	}
}

describe('deployment', { timeout: 110_000 }, () => {
	let server;
	let master;
	let wssUrl;
	let browser;
	let context;
	let browserPage;

	before(async () => {
		// The page and the signalling on one HTTPS origin, as a real game serves them.
		server = https.createServer({ key: fs.readFileSync(path.join(TLS_DIR, 'server.key')), cert: fs.readFileSync(path.join(TLS_DIR, 'server.pem')) }, (req, res) => {
			if (req.url === '/old-client.js') {
				res.writeHead(200, { 'Content-Type': 'application/javascript' });
				res.end(OLD_BUNDLE);
				return;
			}
			res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
			res.end(page(req.url === '/old' ? '/old-client.js' : '/enslavism/client.js'));
		});
		await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
		master = new Master(server);
		wssUrl = `wss://127.0.0.1:${server.address().port}`;
		browser = await launchChromium();
		// Chromium does not know the test CA; what is tested is the relay behind Node's TLS.
		context = await browser.newContext({ ignoreHTTPSErrors: true });
		browserPage = await context.newPage();
	}, { timeout: 30_000 });

	after(async () => {
		await browser?.close();
		await master?.close();
		server?.closeAllConnections();
		await new Promise((resolve) => server.close(resolve));
	}, { timeout: 30_000 });

	it('an https-attached master serves our bundle and the 0.9.0 bundle, which both reach a wss slave', { timeout: 60_000 }, async () => {
		const slave = await echoSlave(wssUrl, 'https');
		try {
			await browserPage.goto(`https://127.0.0.1:${server.address().port}/`);
			assert.equal((await exchange(browserPage, wssUrl, 'https')).echoed, 'echo:ping');
			await browserPage.goto(`https://127.0.0.1:${server.address().port}/old`);
			assert.equal((await exchange(browserPage, wssUrl, 'https', {}, false)).echoed, 'echo:ping');
		} finally {
			await slave.close();
		}
	});

	it('a slave behind a 1:1 NAT announces its public address, and a browser that knows only that one connects', { timeout: 40_000 }, async () => {
		// Packets to the public address are sent on to the bound one, and
		// answers come back from the public address, as through a cloud NAT.
		execFileSync('ip', ['route', 'add', `${PUBLIC_ADDRESS}/32`, 'dev', 'v0']);
		execFileSync('nft', ['add', 'table', 'ip', 'nat1to1']);
		try {
			execFileSync('nft', ['add', 'chain', 'ip', 'nat1to1', 'out', '{ type nat hook output priority -100; }']);
			execFileSync('nft', ['add', 'rule', 'ip', 'nat1to1', 'out', 'ip', 'daddr', PUBLIC_ADDRESS, 'dnat', 'to', NETNS_ADDRESS]);
			const slave = await echoSlave(wssUrl, 'nat', { publicAddresses: [PUBLIC_ADDRESS] });
			try {
				await browserPage.goto(`https://127.0.0.1:${server.address().port}/`);
				const result = await exchange(browserPage, wssUrl, 'nat');
				assert.equal(result.echoed, 'echo:ping');
				assert.equal(result.remote.address, PUBLIC_ADDRESS, 'the browser talks to the public address');
				assert.deepEqual([...new Set(result.remoteAddresses)], [PUBLIC_ADDRESS], 'no other address of the slave was announced');
			} finally {
				await slave.close();
			}
		} finally {
			execFileSync('nft', ['delete', 'table', 'ip', 'nat1to1']);
			execFileSync('ip', ['route', 'del', `${PUBLIC_ADDRESS}/32`, 'dev', 'v0']);
		}
	});

	it('a player allowed only TURN (iceTransportPolicy relay) connects through coturn', { timeout: 40_000 }, async () => {
		const turnDir = fs.mkdtempSync(path.join(os.tmpdir(), 'enslavism-turn-'));
		const turn = spawn('turnserver', [
			'-n', '--listening-ip', NETNS_ADDRESS, '--relay-ip', NETNS_ADDRESS, '--listening-port', String(TURN_PORT),
			'--min-port', '49160', '--max-port', '49200', '--lt-cred-mech', '--user', 'player:secret', '--realm', 'enslavism.test',
			'--no-tls', '--no-dtls', '--no-cli', '--fingerprint', '--log-file', 'stdout', '--simple-log', '--verbose',
			'--pidfile', path.join(turnDir, 'turnserver.pid'), '--userdb', path.join(turnDir, 'turndb'),
		], { stdio: ['ignore', 'pipe', 'pipe'] });
		let log = '';
		turn.stdout.on('data', (d) => { log += d; });
		turn.stderr.on('data', (d) => { log += d; });
		const exited = new Promise((resolve, reject) => {
			turn.once('exit', (code) => reject(new Error(`turnserver exited (${code}):\n${log}`)));
			turn.once('error', reject);
		});
		const ready = Promise.race([stunAnswers(NETNS_ADDRESS, TURN_PORT), exited]);
		const slave = await echoSlave(wssUrl, 'turn');
		try {
			await ready;
			await browserPage.goto(`https://127.0.0.1:${server.address().port}/`);
			const result = await exchange(browserPage, wssUrl, 'turn', {
				iceServers: [{ urls: `turn:${NETNS_ADDRESS}:${TURN_PORT}?transport=udp`, username: 'player', credential: 'secret' }],
				iceTransportPolicy: 'relay',
			});
			assert.equal(result.echoed, 'echo:ping');
			assert.equal(result.local.candidateType, 'relay', 'the browser sends through the TURN relay');
			assert.match(log, /ALLOCATE/i, 'coturn saw the allocation');
		} finally {
			await slave.close();
			if (turn.exitCode === null) {
				const exited = onceWithin(turn, 'exit', WAIT_MS, 'turnserver did not exit');
				turn.kill();
				await exited.finally(() => turn.kill('SIGKILL'));
			}
			fs.rmSync(turnDir, { recursive: true, force: true });
		}
	});
});
