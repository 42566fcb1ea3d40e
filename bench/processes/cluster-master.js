'use strict';
// A master of a cluster in a process of its own (argv: IMPL, then JSON
// { redis, name, slaveTtl? }), on its own port on loopback, with the
// benchmark's master options (no offer rate limit). Sends { port, node } to
// the parent once it listens and is in sync with Redis ('clusterconnect');
// exits when the parent goes. The benchmark SIGKILLs it to measure failover.

const { loadImpl, masterOptions } = require('../lib/impls.js');

const [impl, json] = process.argv.slice(2);
const { redis, name, slaveTtl } = JSON.parse(json);
const { Master } = loadImpl(impl);

process.on('disconnect', () => process.exit(0));

const master = new Master(0, masterOptions(impl, { host: '127.0.0.1', cluster: { redis, name, ...(slaveTtl ? { slaveTtl } : {}) } }));
let port;
let node;
const ready = () => { if (port !== undefined && node !== undefined) process.send({ port, node }); };
master.on('error', (err) => process.send({ error: `master: ${err.message}` }));
master.once('listening', () => { port = master.port; ready(); });
master.once('clusterconnect', (n) => { node = n; ready(); });
