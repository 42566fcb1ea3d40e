'use strict';
// A slave that registers with the demo master (node examples/master.js) and
// answers every message with "hallo welt".
// Run: node examples/slave.js [ws://localhost:8081]

const { Slave } = require('..');

const MASTER = process.argv[2] || process.env.MASTER_URL || 'ws://localhost:8081';

async function main() {
	const slave = await new Slave(MASTER, {
		name: 'Test slave server', // visible to every client
		connectedAmount: 16,
	}, {
		username: 'getkey', // checked by the master's slaveauth listener
		password: 'secret',
	});
	console.log(`slave registered with ${MASTER}`);

	slave.on('connection', (clientCo) => {
		console.log(`client ${clientCo.id} connected`);
		clientCo.on('datachannel', (dc) => {
			dc.on('open', () => dc.send('hallo welt'));
			dc.on('message', (ev) => {
				console.log(`client ${clientCo.id} says:`, ev.data);
				dc.send('hallo welt');
			});
		});
		clientCo.on('close', () => console.log(`client ${clientCo.id} left`));
	});
	slave.on('disconnected', ({ code }) => console.log(`lost the master (${code})`));

	process.once('SIGINT', () => slave.close().then(() => process.exit(0)));
	return slave;
}

module.exports = main();
if (require.main === module) module.exports.catch((err) => {
	console.error(`cannot start the slave: ${err.message}`);
	process.exitCode = 1;
});
