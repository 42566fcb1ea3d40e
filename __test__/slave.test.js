'use strict';
// The Rust slave with real WebRTC peers: a Rust master, a Rust slave
// (str0m), and the browser client of client/ running in Node on libwebrtc
// (@roamhq/wrtc), all inside a network namespace made by the test.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { NETNS_ADDRESS, enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'slave tests', { summary: true })) return;

const WebSocket = require('ws');
const wrtc = require('@roamhq/wrtc');
const { Master, Slave } = require('..');
const { T, WAIT_MS, frame, connect, onceWithin, within } = require('./helpers.js');

// The browser client runs in Node on libwebrtc.
globalThis.WebSocket = WebSocket;
globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;

const SLAVE_OPTIONS = { iceAddresses: [NETNS_ADDRESS] };
/** How long a data channel may take to open (ICE, DTLS, SCTP on loopback take milliseconds). */
const CHANNEL_MS = 15_000;
/** How long a bulk transfer or a timeout-driven release may take (with margin). */
const SLOW_MS = 30_000;

/**
 * `slaveCo.createDataChannel(label, options)`, bounded: the browser bundle
 * waits for the channel to open without a timeout of its own.
 */
function openChannel(slaveCo, label, options) {
	return within(slaveCo.createDataChannel(label, options), CHANNEL_MS, `data channel '${label}' did not open`);
}

/**
 * Runs `fn` with nftables `rules` (each an array of words) in an output chain
 * of a table `name` of this test's namespace; the table is gone afterwards.
 */
async function withNft(name, rules, fn) {
	execFileSync('nft', ['add', 'table', 'inet', name]);
	try {
		execFileSync('nft', ['add', 'chain', 'inet', name, 'out', '{ type filter hook output priority 0; }']);
		for (const rule of rules) execFileSync('nft', ['add', 'rule', 'inet', name, 'out', ...rule]);
		return await fn();
	} finally {
		execFileSync('nft', ['delete', 'table', 'inet', name]);
	}
}

describe('slave on the one-socket engine', { timeout: 110_000 }, () => {
	let master;
	let url;
	let MasterConnection;

	before(async () => {
		({ MasterConnection } = await import('../client/index.mjs'));
		master = new Master(0, { host: '127.0.0.1' });
		master.on('slaveauth', (authData, reject) => {
			if (authData.password !== 'secret') reject('Invalid credentials!');
		});
		await onceWithin(master, 'listening', WAIT_MS, 'the master did not start listening');
		url = `ws://127.0.0.1:${master.port}`;
	}, { timeout: 2 * WAIT_MS });

	after(() => master.close(), { timeout: 2 * WAIT_MS });

	async function startSlave(userData) {
		return new Slave(url, userData, { username: 'getkey', password: 'secret' }, SLAVE_OPTIONS);
	}

	/** The SlaveConnection listing `userData`: already listed, or the next one added within `ms`. */
	function listedSlave(masterCon, userData, ms = 2 * WAIT_MS) {
		const key = JSON.stringify(userData);
		const listed = masterCon.slaves.find((s) => s && JSON.stringify(s.userData) === key);
		if (listed) return Promise.resolve(listed);
		// One listener for all: several slaves may be added in the same task.
		let handler;
		const added = new Promise((resolve) => {
			handler = (slaveCo) => { if (JSON.stringify(slaveCo.userData) === key) resolve(slaveCo); };
			masterCon.addEventListener('slaveadded', handler);
		});
		return within(added, ms, `the browser client did not list the slave ${key}`)
			.finally(() => masterCon.removeEventListener('slaveadded', handler));
	}

	/** A fresh slave and a browser client that lists it; torn down after `fn`. */
	async function withSlave(name, fn) {
		const masterCon = new MasterConnection(url);
		const userData = { name };
		const listed = listedSlave(masterCon, userData);
		const slave = await startSlave(userData);
		const slaveCo = await listed;
		try {
			await fn({ masterCon, slave, slaveCo });
		} finally {
			masterCon.close();
			slaveCo.close();
			await slave.close();
		}
	}

	/** The slave's end of the channel labelled `label`, once it opens (within CHANNEL_MS); every channel of `slave` echoes. */
	function echoingSlaveChannel(slave, label) {
		return within(new Promise((resolve) => slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
			if (dc.label === label) resolve(dc);
			dc.on('message', (ev) => dc.send(ev.data));
		}))), CHANNEL_MS, `the slave did not see channel '${label}' open`);
	}

	/** Sends `text` on the browser channel `dc` and resolves with the next message, within WAIT_MS. */
	function echo(dc, text) {
		const reply = new Promise((resolve) => { dc.onmessage = (ev) => resolve(ev.data); });
		dc.send(text);
		return within(reply, WAIT_MS, `no answer to '${text}' on channel '${dc.label}'`);
	}

	/** Asserts that `dc` (a browser channel to an echoing slave channel) still echoes. */
	async function assertEchoes(dc) {
		assert.equal(await echo(dc, 'still here'), 'still here');
	}

	it('rejects with the HTTP status when the master refuses the slave', { timeout: 20_000 }, async () => {
		const err = await new Slave(url, {}, { password: 'wrong' }, SLAVE_OPTIONS).catch((e) => e);
		assert.ok(err instanceof Error);
		assert.equal(err.status, 401);
		assert.equal(err.code, 'ERR_ENSLAVISM_REFUSED');
		assert.match(err.message, /401.*Invalid credentials!/);
	});

	it('is listed, accepts a connection, and exchanges text and binary both ways with exact types', { timeout: 30_000 }, () => withSlave('text and binary', async ({ slave, slaveCo }) => {
		const connection = onceWithin(slave, 'connection', CHANNEL_MS, 'the slave did not get the connection');
		const dc = await openChannel(slaveCo, 'test');
		const [clientCo] = await connection;
		assert.equal(typeof clientCo.id, 'number');
		const [serverDc] = clientCo.dataChannels.test ? [clientCo.dataChannels.test]
			: await onceWithin(clientCo, 'datachannel', CHANNEL_MS, 'the slave did not see the channel');
		assert.equal(serverDc.label, 'test');
		assert.equal(serverDc.readyState, 'open');

		// browser → slave: text stays a string, binary arrives as an ArrayBuffer.
		const texts = onceWithin(serverDc, 'message', WAIT_MS, 'the slave did not get the text message');
		dc.send('What have I wrought!');
		const [textEvent] = await texts;
		assert.equal(textEvent.data, 'What have I wrought!');
		const binary = within(new Promise((resolve) => serverDc.addEventListener('message', resolve, { once: true })), WAIT_MS,
			'the slave did not get the binary message');
		dc.send(new Uint8Array([1, 2, 3, 250]).buffer);
		const binaryEvent = await binary;
		assert.ok(binaryEvent.data instanceof ArrayBuffer);
		assert.deepEqual([...new Uint8Array(binaryEvent.data)], [1, 2, 3, 250]);

		// slave → browser.
		dc.binaryType = 'arraybuffer';
		const replies = [];
		const gotTwo = new Promise((resolve) => {
			dc.onmessage = (ev) => {
				replies.push(ev.data);
				if (replies.length === 2) resolve();
			};
		});
		serverDc.send('hallo welt');
		serverDc.send(Buffer.from([9, 8, 7]));
		await within(gotTwo, WAIT_MS, 'the browser did not get both messages of the slave');
		assert.equal(replies[0], 'hallo welt');
		assert.ok(replies[1] instanceof ArrayBuffer);
		assert.deepEqual([...new Uint8Array(replies[1])], [9, 8, 7]);

		// A message is copied when sent (sends reach the engine at the end of
		// the JS turn): a Buffer changed and sent again sends both contents.
		const gotBoth = new Promise((resolve) => {
			const seen = [];
			dc.onmessage = (ev) => {
				seen.push(new Uint8Array(ev.data)[0]);
				if (seen.length === 2) resolve(seen);
			};
		});
		const reused = Buffer.from([1]);
		serverDc.send(reused);
		reused[0] = 2;
		serverDc.send(reused);
		assert.deepEqual(await within(gotBoth, WAIT_MS, 'the browser did not get both sends of one Buffer'), [1, 2]);
		// The binding checks a batch whole (lengths that do not add up) before it sends any of it.
		assert.throws(() => slave._native.sendBatch(Buffer.from('ab'), new Float64Array([serverDc._channel, 5, 0])),
			{ code: 'ERR_ENSLAVISM_INTERNAL', message: /malformed send batch/ });
		assert.throws(() => slave._native.sendBatch(Buffer.from('ab'), new Float64Array([serverDc._channel, 1.5, 0, serverDc._channel, 0.5, 0])),
			{ code: 'ERR_ENSLAVISM_INTERNAL' });
		// A batch the engine refuses is reported on the slave, not thrown at a send or a close.
		const refused = onceWithin(slave, 'error', WAIT_MS, 'the refused batch was not reported');
		slave._outbox.push(serverDc, -1, Buffer.from('x'));
		slave._outbox.flush();
		const [refusal] = await refused;
		assert.equal(refusal.code, 'ERR_ENSLAVISM_INTERNAL');
		// A huge message (here for a channel that is gone, so dropped) does not
		// keep the outbox's buffer at its size once handed over.
		slave._outbox.push(serverDc, serverDc._channel + 1_000_000, Buffer.alloc(3 << 20));
		assert.ok(slave._outbox._bytes.length >= 3 << 20);
		slave._outbox.flush();
		assert.ok(slave._outbox._bytes.length <= 64 * 1024, `outbox buffer still ${slave._outbox._bytes.length} bytes`);

		// The browser closes: the slave sees the channel and the client go.
		const channelClosed = onceWithin(serverDc, 'close', SLOW_MS, 'the slave did not see the channel close');
		const clientClosed = onceWithin(clientCo, 'close', SLOW_MS, 'the slave did not see the client go');
		slaveCo.close();
		// Hold this thread until the engine has forgotten the channel, so that
		// its 'close' event cannot be dispatched yet: a send in that window (a
		// game loop racing the close) is dropped, not thrown.
		const forgotten = Date.now() + 10_000;
		while (slave._native.channelStats(serverDc._channel) != null) {
			assert.ok(Date.now() < forgotten, 'the engine forgets a closed channel');
			Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
		}
		assert.equal(serverDc.readyState, 'open');
		// Neither thrown nor reported as an error.
		const errors = [];
		const onError = (err) => errors.push(err);
		slave.on('error', onError);
		serverDc.send('lost in the race');
		// Handed to the engine now, not at the end of this turn.
		serverDc._outbox.flush();
		await channelClosed;
		await clientClosed;
		slave.off('error', onError);
		assert.deepEqual(errors, []);
		assert.equal(serverDc.readyState, 'closed');
		assert.deepEqual(slave.connections, []);
		assert.throws(() => serverDc.send('late'), { code: 'ERR_ENSLAVISM_CHANNEL_CLOSED' });
	}));

	it('opens several channels on one connection, with the properties the browser asked for', { timeout: 30_000 }, () => withSlave('several channels', async ({ slave, slaveCo }) => {
		const channels = [];
		const allThree = within(new Promise((resolve) => {
			slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
				// Echo on every channel, each with its own label.
				dc.on('message', (ev) => dc.send(`${dc.label}:${ev.data}`));
				if (channels.push(dc) === 3) resolve();
			}));
		}), CHANNEL_MS, 'the slave did not see the three channels');
		const [a, b] = await Promise.all([
			openChannel(slaveCo, 'state', { ordered: false, protocol: 'game-state' }),
			openChannel(slaveCo, 'chat'),
		]);
		const c = await openChannel(slaveCo, 'inputs', { ordered: true });
		assert.equal(slave.connections.length, 1, 'one connection for every channel');
		for (const dc of [a, b, c]) assert.equal(dc.readyState, 'open');

		// The browser may see a channel open before the slave announces it.
		await allThree;
		const labels = channels.map((dc) => dc.label).sort();
		assert.deepEqual(labels, ['chat', 'inputs', 'state']);
		const byLabel = Object.fromEntries(channels.map((dc) => [dc.label, dc]));
		assert.equal(byLabel.state.ordered, false);
		assert.equal(byLabel.state.protocol, 'game-state');
		assert.equal(byLabel.chat.ordered, true);
		for (const [dc, label] of [[a, 'state'], [b, 'chat'], [c, 'inputs']]) assert.equal(await echo(dc, 'ping'), `${label}:ping`);
	}));

	it('unreliable channels reach the slave with the reliability the browser asked for, before and after connecting', { timeout: 30_000 }, () => withSlave('unreliable', async ({ slave, slaveCo }) => {
		const seen = new Map();
		slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
			seen.set(dc.label, dc);
			dc.on('message', (ev) => dc.send(`${dc.label}:${ev.data}`));
		}));

		// In the first offer, next to an in-band channel.
		const [fast, plain] = await Promise.all([
			openChannel(slaveCo, 'fast', { ordered: false, maxRetransmits: 0 }),
			openChannel(slaveCo, 'plain'),
		]);
		// After connecting: a new offer carries it.
		const timed = await openChannel(slaveCo, 'timed', { ordered: false, maxPacketLifeTime: 150, protocol: 'fx' });
		assert.equal(slave.connections.length, 1);

		for (const [dc, label] of [[fast, 'fast'], [plain, 'plain'], [timed, 'timed']]) assert.equal(await echo(dc, 'ping'), `${label}:ping`);
		const props = (dc) => [dc.ordered, dc.maxRetransmits, dc.maxPacketLifeTime, dc.protocol];
		assert.deepEqual(props(seen.get('fast')), [false, 0, null, '']);
		assert.deepEqual(props(seen.get('timed')), [false, null, 150, 'fx']);
		assert.deepEqual(props(seen.get('plain')), [true, null, null, '']);
	}));

	it('under 10% packet loss, an unreliable channel loses messages and a reliable one does not (slave to browser)', { timeout: 60_000 }, () => withSlave('lossy', async ({ slave, slaveCo }) => {
		const COUNT = 1000;
		slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => {
			// 'go' arrives on the reliable channel; the unreliable burst goes first.
			dc.on('message', async (ev) => {
				if (ev.data !== 'go') return;
				const payload = Buffer.alloc(100, 1);
				// The unreliable messages go in 100 small bursts: the engine may
				// send a burst's datagrams in one GSO write, which nftables sees,
				// and drops, as one packet; with all of them in one burst, no
				// drop at all was likely enough to make this test flaky.
				for (let burst = 0; burst < 100; burst++) {
					for (let i = 0; i < COUNT / 100; i++) clientCo.dataChannels.lossy.send(payload);
					await new Promise((resolve) => setTimeout(resolve, 2));
				}
				for (let i = 0; i < COUNT; i++) clientCo.dataChannels.safe.send(payload);
			});
		}));
		const lossy = await openChannel(slaveCo, 'lossy', { ordered: false, maxRetransmits: 0 });
		const safe = await openChannel(slaveCo, 'safe');
		let lossyCount = 0;
		let safeCount = 0;
		lossy.onmessage = () => { lossyCount++; };
		const safeDone = new Promise((resolve) => { safe.onmessage = () => { if (++safeCount === COUNT) resolve(); }; });

		// Drop one UDP packet in ten inside this test's namespace (both directions).
		await withNft('loss', [['meta', 'l4proto', 'udp', 'numgen', 'random', 'mod', '10', '0', 'drop']], async () => {
			safe.send('go');
			// The reliable burst completes through retransmissions; the
			// unreliable one, sent first, is over by then.
			await within(safeDone, SLOW_MS, `the reliable channel did not deliver ${COUNT} messages under 10% loss`);
		});
		assert.equal(safeCount, COUNT);
		assert.ok(lossyCount < COUNT, `the unreliable channel delivered ${lossyCount}/${COUNT}`);
		assert.ok(lossyCount > COUNT / 2, `the unreliable channel delivered only ${lossyCount}/${COUNT}`);
	}));

	it('bufferedAmount shows a backlog beyond what SCTP holds, and bufferedamountlow fires once it is sent', { timeout: 60_000 }, () => withSlave('paced', async ({ slave, slaveCo }) => {
		const serverOpened = echoingSlaveChannel(slave, 'bulk');
		const dc = await openChannel(slaveCo, 'bulk');
		const serverDc = await serverOpened;
		let received = 0;
		const allIn = within(new Promise((resolve) => { dc.onmessage = (ev) => { received += ev.data.byteLength; if (received === 100 * 50_000) resolve(); }; }),
			SLOW_MS, 'the browser did not receive the 5 MB');
		const low = onceWithin(serverDc, 'bufferedamountlow', SLOW_MS, 'no bufferedamountlow once the 5 MB were sent');
		serverDc.bufferedAmountLowThreshold = 0;
		for (let i = 0; i < 100; i++) serverDc.send(Buffer.alloc(50_000, 3));
		// 5 MB given at once: SCTP holds at most 128 KiB of it unacknowledged,
		// and far less than half can be delivered while this task runs; the
		// rest waits where bufferedAmount shows it.
		assert.ok(serverDc.bufferedAmount > 2_500_000, `bufferedAmount ${serverDc.bufferedAmount}`);
		await low;
		assert.equal(serverDc.bufferedAmount, 0);
		await allIn;
		assert.equal(received, 100 * 50_000);
	}));

	it('bufferedAmount grows with each send and falls only from one JS turn to a later one, as in a browser', { timeout: 60_000 }, () => withSlave('paced', async ({ slave, slaveCo }) => {
		const serverOpened = echoingSlaveChannel(slave, 'bulk');
		const dc = await openChannel(slaveCo, 'bulk');
		const serverDc = await serverOpened;
		let received = 0;
		const total = 60 * 50_000 + 1000 + 40 * 50_000;
		const allIn = within(new Promise((resolve) => { dc.onmessage = (ev) => { received += ev.data.byteLength; if (received === total) resolve(); }; }),
			SLOW_MS, 'the browser did not receive the 5 MB');
		for (let i = 0; i < 60; i++) serverDc.send(Buffer.alloc(50_000, 3));
		await new Promise((resolve) => setImmediate(resolve));
		// A later turn: the engine is sending the 3 MB while this one runs.
		const before = serverDc.bufferedAmount;
		assert.ok(before > 0, `bufferedAmount ${before}`);
		const until = Date.now() + 200;
		while (Date.now() < until) { /* the engine's thread goes on sending */ }
		assert.equal(serverDc.bufferedAmount, before);
		serverDc.send(Buffer.alloc(1000, 4));
		assert.equal(serverDc.bufferedAmount, before + 1000);
		// 2 MB more in the same turn: past 1 MiB they go to the engine at once,
		// and what the engine sent meanwhile still does not show.
		for (let i = 1; i <= 40; i++) {
			serverDc.send(Buffer.alloc(50_000, 5));
			assert.equal(serverDc.bufferedAmount, before + 1000 + i * 50_000);
		}
		await allIn;
	}));

	it('a channel the slave closes delivers what was sent first, then closes in the browser; the connection goes on', { timeout: 60_000 }, () => withSlave('closer', async ({ slave, slaveCo }) => {
		const serverOpened = echoingSlaveChannel(slave, 'first');
		const first = await openChannel(slaveCo, 'first');
		const second = await openChannel(slaveCo, 'second');
		const serverFirst = await serverOpened;
		let received = 0;
		first.onmessage = (ev) => { received += ev.data.byteLength; };
		const browserClosed = within(new Promise((resolve) => { first.onclose = resolve; }), SLOW_MS,
			'the browser did not see the channel the slave closed close');
		// A backlog far over what SCTP holds at once, then close at once.
		for (let i = 0; i < 20; i++) serverFirst.send(Buffer.alloc(60_000, 2));
		serverFirst.close();
		assert.equal(serverFirst.readyState, 'closing');
		await browserClosed;
		assert.equal(received, 20 * 60_000);
		assert.equal(first.readyState, 'closed');
		await assertEchoes(second);
	}));

	it('a channel whose send queue passes 16 MiB closes with an error; the connection and its other channels go on', { timeout: 60_000 }, () => withSlave('flood', async ({ slave, slaveCo }) => {
		const serverFloodOpened = echoingSlaveChannel(slave, 'flood');
		const flood = await openChannel(slaveCo, 'flood');
		const browserClosed = within(new Promise((resolve) => { flood.onclose = resolve; }), SLOW_MS,
			'the browser did not see the flooded channel close');
		const other = await openChannel(slaveCo, 'other');
		const serverFlood = await serverFloodOpened;
		// (Not events.once, nor onceWithin: their promises reject when 'error' is emitted.)
		const errored = within(new Promise((resolve) => serverFlood.on('error', resolve)), SLOW_MS,
			'no error event once the send queue passed 16 MiB');
		const serverClosed = within(new Promise((resolve) => serverFlood.on('close', resolve)), SLOW_MS,
			'the flooded channel did not close on the slave');
		// Far more than SCTP can take while this loop runs: the queue passes the limit.
		const chunk = Buffer.alloc(60_000, 1);
		for (let i = 0; i < 1200; i++) serverFlood.send(chunk);
		const errorEvent = await errored;
		assert.equal(errorEvent.error.code, 'ERR_ENSLAVISM_CHANNEL');
		assert.match(errorEvent.error.message, /send queue full/);
		await serverClosed;
		assert.equal(serverFlood.readyState, 'closed');
		// The browser reads, so what SCTP held is delivered and it sees the close.
		await browserClosed;
		assert.equal(flood.readyState, 'closed');
		// Sending on it now throws, as on any closed channel.
		assert.throws(() => serverFlood.send('late'), { code: 'ERR_ENSLAVISM_CHANNEL_CLOSED' });
		// The rest of the connection is unharmed.
		await assertEchoes(other);
		assert.equal(slave.connections.length, 1);
	}));

	it('refuses a malformed offer, drops stray candidates, and keeps serving', { timeout: 30_000 }, () => withSlave('robust', async ({ slave, slaveCo }) => {
		const raw = await connect(`${url}/enslavism/clients`);
		const candidate = { sdpMid: '0', sdpMLineIndex: 0, candidate: 'candidate:not a candidate' };
		raw.send(frame.candidate(T.iceCandidateToSlave, slaveCo.id, candidate)); // before any offer
		raw.send(frame.sdp(T.offerToSlave, slaveCo.id, 'this is not SDP'));
		for (;;) {
			const msg = await raw.next();
			if (msg.type !== T.rejectFromSlave) continue; // the slave list, other slaves
			assert.equal(msg.id, slaveCo.id);
			break;
		}
		raw.send(frame.candidate(T.iceCandidateToSlave, slaveCo.id, candidate)); // after the refusal
		const dc = await openChannel(slaveCo, 'after');
		assert.equal(dc.readyState, 'open');
		assert.equal(slave.connections.length, 1);
		await raw.close();
	}));

	it('a rejected offer rejects createDataChannel and emits rejected; the next offer can be accepted', { timeout: 30_000 }, () => withSlave('picky', async ({ slave, slaveCo }) => {
		let refuse = true;
		slave.on('offer', (reject) => { if (refuse) reject(); });
		const rejected = onceWithin(slaveCo, 'rejected', CHANNEL_MS, 'the browser client did not fire rejected');
		const err = await within(slaveCo.createDataChannel('test').catch((e) => e), CHANNEL_MS, 'createDataChannel did not settle once refused');
		assert.equal(err.code, 'REJECTED');
		await rejected;
		assert.deepEqual(slave.connections, []);

		refuse = false;
		const dc = await openChannel(slaveCo, 'test');
		assert.equal(dc.readyState, 'open');
		assert.equal(slave.connections.length, 1);
	}));

	it('master restart: slaves register again, browsers reconnect and resync without ghosts, channels keep working', { timeout: 60_000 }, async () => {
		const first = new Master(0, { host: '127.0.0.1' });
		await onceWithin(first, 'listening', WAIT_MS, 'the first master did not start listening');
		const { port } = first;
		const restartUrl = `ws://127.0.0.1:${port}`;
		const userData = { name: 'phoenix' };
		const ghostData = { name: 'ghost' };
		const masterCon = new MasterConnection(restartUrl, { reconnectMaxDelay: 200, resyncGrace: 2000 });
		const listed = listedSlave(masterCon, userData);
		const slave = await new Slave(restartUrl, userData, undefined, { ...SLAVE_OPTIONS, reconnectMaxDelay: 200 });
		const ghostListed = listedSlave(masterCon, ghostData);
		const ghost = await new Slave(restartUrl, ghostData, undefined, { ...SLAVE_OPTIONS, reconnect: false });
		let second;
		try {
			slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => dc.on('message', (ev) => dc.send(`echo:${ev.data}`))));
			const slaveCo = await listed;
			const ghostCo = await ghostListed;
			const dc = await openChannel(slaveCo, 'live');
			const added = [];
			const removed = [];
			masterCon.addEventListener('slaveadded', (s) => added.push(s));
			masterCon.addEventListener('slaveremoved', (s) => removed.push(s));

			const disconnected = onceWithin(slave, 'disconnected', WAIT_MS, 'the slave did not see the master go');
			const clientLost = onceWithin(masterCon, 'close', WAIT_MS, 'the browser client did not see the master go');
			await first.close();
			await Promise.all([disconnected, clientLost]);
			assert.equal(await echo(dc, 'master down'), 'echo:master down');
			await ghost.close(); // gone for good while the master is down

			const clientBack = onceWithin(masterCon, 'reconnected', SLOW_MS, 'the browser client did not reconnect to the restarted master');
			const ghostGone = onceWithin(masterCon, 'slaveremoved', SLOW_MS, 'the browser client did not remove the slave gone for good (resyncGrace 2000 ms)');
			second = new Master(port, { host: '127.0.0.1' });
			await onceWithin(second, 'listening', WAIT_MS, 'the restarted master did not start listening');
			const reconnected = onceWithin(slave, 'reconnected', SLOW_MS, 'the slave did not register with the restarted master');
			await Promise.all([reconnected, clientBack]);
			// The ghost is removed once the grace for registering again is over;
			// by then the living slave has registered again and was recognised.
			const [gone] = await ghostGone;
			assert.equal(gone, ghostCo);
			assert.deepEqual(removed, [ghostCo]);
			assert.deepEqual(added, [], 'no duplicate of the slave that came back');
			assert.deepEqual(masterCon.slaves.filter(Boolean), [slaveCo], 'the same SlaveConnection, under its new id');
			assert.equal(masterCon.slaves[slaveCo.id], slaveCo);

			assert.equal(await echo(dc, 'master back'), 'echo:master back');
			assert.equal(slave.connections.length, 1, 'the old connection is still there');
			// A new unreliable channel needs a new offer: it goes through the new
			// master to the same peer connection, found again by its ICE session.
			const late = await openChannel(slaveCo, 'late', { ordered: false, maxRetransmits: 0 });
			assert.equal(await echo(late, 'renegotiated'), 'echo:renegotiated');
			assert.equal(slave.connections.length, 1, 'still one connection');
			masterCon.close();
			slaveCo.close();
		} finally {
			await slave.close();
			await ghost.close();
			await first.close();
			await second?.close();
		}
	});


	it('half-open link (cut without a close): the master drops the slave, clients see it leave, the slave reconnects once the link is back', { timeout: 60_000 }, async () => {
		const cutMaster = new Master(0, { host: '0.0.0.0', heartbeatInterval: 100, heartbeatTimeout: 600 });
		await onceWithin(cutMaster, 'listening', WAIT_MS, 'the master did not start listening');
		const { port } = cutMaster;
		// Clients come over loopback; the slave over the veth address, whose
		// traffic to and from the master's port is then dropped in both
		// directions, so that neither side ever sees a close or a reset.
		const masterCon = new MasterConnection(`ws://127.0.0.1:${port}`);
		const userData = { name: 'cut' };
		const listed = listedSlave(masterCon, userData);
		const slave = await new Slave(`ws://${NETNS_ADDRESS}:${port}`, userData, undefined,
			{ ...SLAVE_OPTIONS, heartbeatInterval: 100, heartbeatTimeout: 600, reconnectMaxDelay: 200 });
		try {
			const slaveCo = await listed;
			const removed = onceWithin(masterCon, 'slaveremoved', SLOW_MS, 'the browser client did not see the cut-off slave leave (heartbeatTimeout 600 ms)');
			const disconnected = onceWithin(slave, 'disconnected', SLOW_MS, 'the cut-off slave did not drop its master link (heartbeatTimeout 600 ms)');
			const { back } = await withNft('cut', [
				['ip', 'daddr', NETNS_ADDRESS, 'tcp', 'dport', String(port), 'drop'],
				['ip', 'saddr', NETNS_ADDRESS, 'tcp', 'sport', String(port), 'drop'],
			], async () => {
				const [[gone], [info]] = await Promise.all([removed, disconnected]);
				assert.equal(gone, slaveCo);
				assert.deepEqual(info, { code: 1006, reason: 'heartbeat timeout' });
				// Listening before the link is back (wrapped: a returned promise would be awaited here).
				return { back: Promise.all([listedSlave(masterCon, userData, SLOW_MS),
					onceWithin(slave, 'reconnected', SLOW_MS, 'the slave did not reconnect once the link was back')]) };
			});
			await back;
			masterCon.close();
		} finally {
			await slave.close();
			await cutMaster.close();
		}
	});

	/** Drops every UDP datagram in the namespace while `fn` runs: ICE can neither start nor go on. */
	function withoutUdp(fn) {
		return withNft('noudp', [['meta', 'l4proto', 'udp', 'drop']], fn);
	}

	it('a client that vanishes mid-handshake is released after peerSetupTimeout, with close', { timeout: 30_000 }, async () => {
		const masterCon = new MasterConnection(url);
		const userData = { name: 'mid-handshake' };
		const listed = listedSlave(masterCon, userData);
		// ICE alone would release the peer only after the test's timeout: the
		// release can come from peerSetupTimeout only.
		const slave = await new Slave(url, userData, { username: 'getkey', password: 'secret' },
			{ ...SLAVE_OPTIONS, peerSetupTimeout: 500, iceDisconnectedTimeout: 200_000, iceFailedTimeout: 200_000 });
		try {
			const slaveCo = await listed;
			const connected = onceWithin(slave, 'connection', CHANNEL_MS, 'the slave did not get the connection');
			await withoutUdp(async () => {
				const pending = slaveCo.createDataChannel('never').catch((err) => err);
				const [clientCo] = await connected;
				// The browser is gone (tab closed before ICE got anywhere).
				slaveCo.close();
				assert.match((await within(pending, WAIT_MS, 'createDataChannel did not reject once the connection closed')).message, /closed/);
				await onceWithin(clientCo, 'close', SLOW_MS, 'the slave did not release the peer after peerSetupTimeout (500 ms)');
				assert.deepEqual(slave.connections, []);
			});
			masterCon.close();
		} finally {
			await slave.close();
		}
	});

	it('a connected client whose packets stop (crashed tab, cut network) is released after the ICE timeouts, with close', { timeout: 30_000 }, async () => {
		const masterCon = new MasterConnection(url);
		const userData = { name: 'crashed' };
		const listed = listedSlave(masterCon, userData);
		const slave = await new Slave(url, userData, { username: 'getkey', password: 'secret' },
			{ ...SLAVE_OPTIONS, iceDisconnectedTimeout: 300, iceFailedTimeout: 600 });
		try {
			const slaveCo = await listed;
			const opened = within(new Promise((resolve) => slave.once('connection', (clientCo) => {
				clientCo.once('datachannel', (serverDc) => resolve({ clientCo, serverDc }));
			})), CHANNEL_MS, 'the slave did not see the channel open');
			const dc = await openChannel(slaveCo, 'doomed');
			const { clientCo, serverDc } = await opened;
			await withoutUdp(async () => {
				const channelClosed = onceWithin(serverDc, 'close', SLOW_MS, 'the slave did not close the channel of the silent peer');
				await onceWithin(clientCo, 'close', SLOW_MS, 'the slave did not release the silent peer (iceDisconnectedTimeout 300 + iceFailedTimeout 600 ms)');
				await channelClosed;
				assert.deepEqual(slave.connections, []);
			});
			dc.close();
			slaveCo.close();
			masterCon.close();
		} finally {
			await slave.close();
		}
	});

	it('a renegotiation the master refuses (offers too fast) rejects that channel only; the connection goes on', { timeout: 60_000 }, async () => {
		const strict = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 1 });
		await onceWithin(strict, 'listening', WAIT_MS, 'the master did not start listening');
		const strictUrl = `ws://127.0.0.1:${strict.port}`;
		const masterCon = new MasterConnection(strictUrl);
		const userData = { name: 'strict' };
		const listed = listedSlave(masterCon, userData);
		const slave = await new Slave(strictUrl, userData, undefined, SLAVE_OPTIONS);
		try {
			slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => dc.on('message', (ev) => dc.send(`echo:${ev.data}`))));
			const slaveCo = await listed;
			const first = await openChannel(slaveCo, 'first');
			// Unreliable channels need a new offer each, one after the other. At one
			// offer per second, one of them soon comes too early and is refused by
			// the master (a renegotiation takes a few ms here).
			let err;
			for (let i = 0; i < 5 && err === undefined; i++) {
				await within(slaveCo.createDataChannel(`extra ${i}`, { ordered: false, maxRetransmits: 0 }).catch((e) => { err = e; }),
					CHANNEL_MS, `channel 'extra ${i}' neither opened nor was refused`);
			}
			assert.equal(err?.code, 'REJECTED', 'an offer over the rate was refused');
			assert.equal(await echo(first, 'still here'), 'echo:still here');
			assert.equal(slaveCo.dataChannels.first, first);
			assert.equal(slave.connections.length, 1);
			masterCon.close();
			slaveCo.close();
		} finally {
			await slave.close();
			await strict.close();
		}
	});

	it('close() ends every connection, and the slave leaves the list', { timeout: 30_000 }, () => withSlave('leaving', async ({ masterCon, slave, slaveCo }) => {
		const dc = await openChannel(slaveCo, 'test');
		const [clientCo] = slave.connections;
		const clientClosed = onceWithin(clientCo, 'close', WAIT_MS, 'the closed slave did not close its client connection');
		const removed = onceWithin(masterCon, 'slaveremoved', WAIT_MS, 'the browser client did not see the closed slave leave');
		const browserSawClose = onceWithin(dc, 'close', SLOW_MS, 'the browser did not see its channel to the closed slave close');
		await within(slave.close(), WAIT_MS, 'slave.close() did not resolve');
		await clientClosed;
		const [gone] = await removed;
		assert.equal(gone, slaveCo);
		await browserSawClose;
	}));
});
