'use strict';
// A slave with default options on a host whose only interface is loopback (a
// container, CI, a laptop offline): inside a network namespace holding `lo`
// alone, it announces 127.0.0.1 and ::1, never an unspecified address, and a
// libwebrtc peer (the browser client in Node on @roamhq/wrtc) connects.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const os = require('node:os');
const { enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'loopback-only tests', { veth: false })) return;

const WebSocket = require('ws');
const wrtc = require('@roamhq/wrtc');
const { Master, Slave } = require('..');

/** Every candidate the slave gave the client: in its answer, and trickled. */
const slaveCandidates = [];
class RecordingPeerConnection extends wrtc.RTCPeerConnection {
	setRemoteDescription(description) {
		for (const line of description.sdp.split('\r\n')) {
			if (line.startsWith('a=candidate:')) slaveCandidates.push(line.slice(2));
		}
		return super.setRemoteDescription(description);
	}

	addIceCandidate(candidate) {
		if (candidate?.candidate) slaveCandidates.push(candidate.candidate);
		return super.addIceCandidate(candidate);
	}
}
globalThis.WebSocket = WebSocket;
globalThis.RTCPeerConnection = RecordingPeerConnection;

it('a slave with default options announces loopback, and a libwebrtc peer connects and is echoed', { timeout: 30_000 }, async () => {
	assert.deepEqual(Object.keys(os.networkInterfaces()), ['lo']);
	const { MasterConnection } = await import('../client/index.mjs');
	const master = new Master(0, { host: '127.0.0.1' });
	await once(master, 'listening');
	const url = `ws://127.0.0.1:${master.port}`;
	const slave = await new Slave(url, { name: 'offline' });
	slave.on('connection', (clientCo) => clientCo.on('datachannel', (dc) => dc.on('message', (ev) => dc.send(ev.data))));
	const masterCon = new MasterConnection(url);
	try {
		const [slaveCo] = await once(masterCon, 'slaveadded');
		const dc = await slaveCo.createDataChannel('echo');
		const echoed = new Promise((resolve) => { dc.onmessage = (ev) => resolve(ev.data); });
		dc.send('anyone home?');
		assert.equal(await echoed, 'anyone home?');

		const addresses = new Set(slaveCandidates.filter((c) => / typ host/.test(c)).map((c) => c.split(' ')[4]));
		assert.deepEqual([...addresses].sort(), ['127.0.0.1', '::1'], slaveCandidates.join('\n'));
		slaveCo.close();
	} finally {
		masterCon.close();
		await slave.close();
		await master.close();
	}
});
