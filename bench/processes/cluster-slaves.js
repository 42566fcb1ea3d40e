'use strict';
// Slaves of either engine revision in a process of their own (argv: IMPL,
// then JSON { urls, names, address }): one `Slave` per name, given every URL
// of `urls` to fail over to, userData { name }. Sends { ready: count } once
// all are registered, then { reconnected: { name, url, at } } whenever one
// registers again elsewhere (`at`: process.hrtime.bigint() as a string).
// Exits when the parent goes.

const { loadImpl, slaveOptions } = require('../lib/impls.js');

const [impl, json] = process.argv.slice(2);
const { urls, names, address } = JSON.parse(json);
const { Slave } = loadImpl(impl);

const send = (message) => { if (process.connected) process.send(message); };
process.on('disconnect', () => process.exit(0));

Promise.all(names.map(async (name) => {
	// The constructor returns a Promise of the slave, registered.
	const slave = await new Slave(urls, { name }, undefined, slaveOptions(impl, address));
	slave.on('error', () => {});
	slave.on('reconnected', ({ url }) => send({ reconnected: { name, url, at: String(process.hrtime.bigint()) } }));
})).then(() => send({ ready: names.length }), (err) => send({ error: `slaves: ${err.message}` }));
