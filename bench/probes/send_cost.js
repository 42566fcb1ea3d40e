'use strict';
// What a slave's `dc.send()` and `dc.bufferedAmount` cost the JS thread, per
// call: a master, a slave and a Node MasterConnection in this process, one
// reliable channel on loopback; rounds of N sends of 100 bytes (the batch
// handed to the engine included) and of 200,000 reads of bufferedAmount.
// Prints one JSON line per round; the first rounds include the JIT's warm-up.
//
//     node bench/probes/send_cost.js [N]
//
// To compare with an earlier revision, point it at that tree and its addon
// (the benchmark's baseline, `BENCH_BASELINE=<rev> npm run bench`, leaves
// both in target/bench):
//
//     PKG=target/bench/baseline-src NAPI_RS_NATIVE_LIBRARY_PATH=$PWD/target/bench/baseline.node node bench/probes/send_cost.js
//
// 2026-12-07, release addons, everything on one core (`taskset -c 1`),
// rounds 2–6 of two runs each: a send cost 1,202–1,295 ns with a native call
// per message (1681fd0), 136–558 ns with the sends of a JS turn handed over
// in one call (the spread: the engine thread takes the core during a
// batch); a read of bufferedAmount 356–587 ns either way. With the engine's
// part of bufferedAmount read once per JS turn (lib/outbox.js,
// `readingEpoch`): 5 ns a read (43 ns in round 3), against 371–463 ns in
// the same runs without.

const path = require('node:path');

const { Master, Slave, MasterConnection } = require(path.resolve(process.env.PKG ?? path.join(__dirname, '..', '..')));

const ROUNDS = 6;
const READS = 200_000;
/** How long everything may take before the probe gives up. */
const LIMIT_MS = 60_000;

async function main() {
	const count = Number(process.argv[2] ?? 20_000);
	const master = new Master(0, { host: '127.0.0.1', maxOffersPerSecond: 0 });
	await new Promise((resolve) => master.once('listening', resolve));
	const url = `ws://127.0.0.1:${master.port}`;
	const slave = await new Slave(url, { name: 'send_cost' }, undefined, { iceAddresses: ['127.0.0.1'] });
	const opened = new Promise((resolve) => slave.on('connection', (clientCo) => clientCo.on('datachannel', resolve)));
	const client = new MasterConnection(url, { iceAddresses: ['127.0.0.1'] });
	const slaveCo = await new Promise((resolve) => client.on('slaveadded', resolve));
	const browserEnd = await slaveCo.createDataChannel('cost');
	let received = 0;
	let arrived = () => {};
	browserEnd.on('message', () => {
		if (++received % count === 0) arrived();
	});
	const dc = await opened;
	const payload = Buffer.alloc(100, 7);
	for (let round = 0; round < ROUNDS; round++) {
		let start = process.hrtime.bigint();
		let sum = 0;
		for (let i = 0; i < READS; i++) sum += dc.bufferedAmount;
		const readNs = Number(process.hrtime.bigint() - start) / READS;
		const delivered = new Promise((resolve) => { arrived = resolve; });
		start = process.hrtime.bigint();
		for (let i = 0; i < count; i++) dc.send(payload);
		// Handed to the engine now rather than when this turn ends (a tree without an outbox has nothing to flush).
		dc._outbox?.flush();
		const sendNs = Number(process.hrtime.bigint() - start) / count;
		console.log(JSON.stringify({ round, send_ns: Math.round(sendNs), buffered_amount_ns: Math.round(readNs), read_sum: sum }));
		await delivered;
	}
	await client.close();
	await slave.close();
	await master.close();
}

const guard = setTimeout(() => {
	console.error(`send_cost: not done within ${LIMIT_MS} ms`);
	process.exit(1);
}, LIMIT_MS);
main().then(() => clearTimeout(guard), (err) => {
	console.error(err);
	process.exit(1);
});
