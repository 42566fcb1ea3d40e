'use strict';
// Clients arriving all at once, as after a master restart: none may be
// dropped by a full accept queue (a dropped SYN is retried a second later).
// Runs in its own network namespace, whose TCP counters only this test moves.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'master burst tests')) return;

const { connect, startMaster, within } = require('./helpers.js');

const CLIENTS = 1000;

/** The namespace's count of connections dropped because a listener's queue was full. */
function listenOverflows() {
	const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
	const header = lines.findIndex((line) => line.startsWith('TcpExt:'));
	const names = lines[header].split(/\s+/);
	const values = lines[header + 1].split(/\s+/);
	return Number(values[names.indexOf('ListenOverflows')]);
}

it(`${CLIENTS} clients connecting at once are all accepted without a dropped connection attempt`, { timeout: 60_000 }, async () => {
	const { close, url } = await startMaster('port');
	try {
		const before = listenOverflows();
		// Each resolves once its WebSocket is open, and rejects on a refusal.
		// A dropped SYN is retried after 1 s, then 3 s: each connection's bound leaves room for that.
		const peers = await Promise.all(Array.from({ length: CLIENTS }, () => connect(`${url}/enslavism/clients`, { timeout: 30_000 })));
		assert.equal(listenOverflows() - before, 0, 'connection attempts dropped by a full accept queue');
		await within(Promise.all(peers.map((p) => p.close(30_000))), 30_000, `the ${CLIENTS} clients did not all close`);
	} finally {
		// Also closes, from the master's side, whatever is still open.
		await close();
	}
});
