'use strict';
// The slave's engine keeps every peer connection of a shard on one UDP
// socket: many concurrent setups on one port, and a lost DTLS flight sent
// again (webrtc-rs's rtc-dtls, the engine before 0.10, never did; the test
// keeps str0m to it). The slave runs in its own process (so that its sockets
// can be counted), the native client's bots in another, all inside a network
// namespace the test makes.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, fork } = require('node:child_process');
const dgram = require('node:dgram');
const path = require('node:path');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'one-socket engine tests')) return;

const { Master } = require('..');
const { runBots } = require('./client-helpers.js');
const { WAIT_MS, onceWithin, within } = require('./helpers.js');

/** A UDP port free on the namespace's address right now. */
async function freePort() {
	const socket = dgram.createSocket('udp4');
	socket.bind(0, NETNS_ADDRESS);
	await onceWithin(socket, 'listening', WAIT_MS, 'the UDP socket did not bind');
	const { port } = socket.address();
	socket.close();
	return port;
}

/**
 * A slave in its own process (fixtures/slave-process.js), echoing. `ask`
 * sends it a request and resolves with the `key` of its reply, within `ms`.
 */
async function slaveProcess(url, options) {
	const child = fork(path.join(__dirname, 'fixtures', 'slave-process.js'), [url, JSON.stringify(options)],
		{ stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
	const [first] = await onceWithin(child, 'message', 2 * WAIT_MS, 'the slave process did not start');
	assert.deepEqual(first, { ready: true });
	const ask = (request, key, ms = WAIT_MS) => {
		let onReply;
		const answered = new Promise((resolve) => {
			onReply = (reply) => { if (key in reply) resolve(reply[key]); };
			child.on('message', onReply);
		});
		child.send(request);
		return within(answered, ms, `the slave process did not answer ${JSON.stringify(request)}`).finally(() => child.off('message', onReply));
	};
	const close = async () => {
		if (child.exitCode !== null || child.signalCode !== null) return;
		const exited = onceWithin(child, 'exit', WAIT_MS, 'the slave process did not exit once closed');
		child.send('close');
		try {
			await exited;
		} finally {
			child.kill('SIGKILL');
		}
	};
	return { ask, close };
}

/** The packet count of the rule with `comment` in nftables table `name`. */
function nftPackets(name, comment) {
	const rules = execFileSync('nft', ['list', 'table', 'inet', name], { encoding: 'utf8' });
	const line = rules.split('\n').find((l) => l.includes(`comment "${comment}"`));
	const counted = /packets (\d+)/.exec(line ?? '');
	assert.ok(counted, `no counter on the rule ${comment}:\n${rules}`);
	return Number(counted[1]);
}

describe('one UDP socket per shard', { timeout: 120_000 }, () => {
	let master;
	let url;

	before(async () => {
		master = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 0 });
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		url = `ws://127.0.0.1:${master.port}`;
	}, { timeout: 2 * WAIT_MS });

	after(() => master.close(), { timeout: 2 * WAIT_MS });

	it('200 concurrent setups all complete, every peer on the one socket of udpPort', { timeout: 60_000 }, async () => {
		const port = await freePort();
		const slave = await slaveProcess(url, { iceAddresses: [NETNS_ADDRESS], udpPort: port });
		try {
			const idle = await slave.ask('stats', 'stats');
			assert.deepEqual(idle.udpPorts, [port]);
			assert.equal(idle.udpSockets, 1, 'one UDP socket before any peer');
			// All 200 start within the first second; each sends for the rest of the run.
			const bots = runBots(url, ['--bots', '200', '--ramp', '1000', '--seconds', '8', '--rate', '5']);
			await slave.ask({ whenConnected: 200 }, 'connected', 30_000);
			const busy = await slave.ask('stats', 'stats');
			assert.equal(busy.udpSockets, 1, 'still one UDP socket with 200 peers');
			assert.ok(busy.fds < idle.fds + 10, `file descriptors ${idle.fds} → ${busy.fds}`);
			const { report } = await bots;
			assert.equal(report.connected, 200, JSON.stringify(report));
			assert.equal(report.failed, 0, JSON.stringify(report));
			assert.equal(report.lost, 0, JSON.stringify(report));
		} finally {
			await slave.close();
		}
	});

	it('a slave with no udpPort has one socket per shard, each on its own port', { timeout: 20_000 }, async () => {
		const slave = await slaveProcess(url, { iceAddresses: [NETNS_ADDRESS] });
		try {
			const { udpPorts, udpSockets } = await slave.ask('stats', 'stats');
			assert.ok(udpPorts.length >= 1 && new Set(udpPorts).size === udpPorts.length, JSON.stringify(udpPorts));
			assert.equal(udpSockets, udpPorts.length);
		} finally {
			await slave.close();
		}
	});

	it('a lost DTLS flight (ServerHello …) is sent again and the connection opens', { timeout: 40_000 }, async () => {
		const port = await freePort();
		const slave = await slaveProcess(url, { iceAddresses: [NETNS_ADDRESS], udpPort: port });
		const table = 'enslavism_dtls';
		execFileSync('nft', ['add', 'table', 'inet', table]);
		try {
			execFileSync('nft', ['add', 'chain', 'inet', table, 'out', '{ type filter hook output priority 0; }']);
			// The first datagram of each flow from the slave that starts with a
			// DTLS handshake record at epoch 0 holding a ServerHello (type 2).
			execFileSync('nft', ['add', 'rule', 'inet', table, 'out',
				'udp', 'sport', String(port), '@th,64,8', '22', '@th,88,16', '0', '@th,168,8', '2',
				'ct', 'mark', '0', 'ct', 'mark', 'set', '1', 'counter', 'drop', 'comment', '"server-hello"']);
			const { report } = await runBots(url, ['--bots', '8', '--ramp', '200', '--seconds', '2', '--rate', '10']);
			assert.equal(nftPackets(table, 'server-hello'), 8, 'each bot lost its first ServerHello');
			assert.equal(report.connected, 8, JSON.stringify(report));
			assert.equal(report.failed, 0, JSON.stringify(report));
			assert.equal(report.lost, 0, JSON.stringify(report));
		} finally {
			execFileSync('nft', ['delete', 'table', 'inet', table]);
			await slave.close();
		}
	});
});
