'use strict';
// A demo slave: registers with the demo master (examples/master.js), greets
// every client, echoes back whatever they send, and keeps its player count
// (userData.connectedAmount) up to date in every browser's list.
// Run: node examples/slave.js [ws://localhost:8081 [name]]

const { Slave } = require('..');

/** Registers a slave called `name` with the master at `masterUrl`; resolves with the Slave. */
async function startSlave(masterUrl, name) {
	const slave = await new Slave(masterUrl, {
		name, // userData: visible to every client
		connectedAmount: 0,
	}, {
		username: 'getkey', // checked by the master's slaveauth listener
		password: 'secret',
	});

	// Every browser's list shows the new count at once ('slaveupdated').
	const updatePlayerCount = () => {
		slave.setUserData({ ...slave.userData, connectedAmount: slave.connections.length }).catch((err) => {
			if (err.code !== 'ERR_ENSLAVISM_NO_MASTER') console.error(`${name}: cannot update the player count: ${err.message}`);
		});
	};

	slave.on('connection', (clientCo) => {
		console.log(`${name}: client ${clientCo.id} connected`);
		updatePlayerCount();
		clientCo.on('datachannel', (dc) => {
			dc.on('open', () => dc.send(`hallo welt, this is ${name}`));
			dc.on('message', (ev) => dc.send(ev.data)); // an echo: the page times the round trip
		});
		clientCo.on('close', () => {
			console.log(`${name}: client ${clientCo.id} left`);
			updatePlayerCount();
		});
	});
	slave.on('disconnected', ({ code }) => console.log(`${name}: lost the master (${code}), reconnecting`));
	slave.on('reconnected', () => console.log(`${name}: registered with the master again`));
	return slave;
}

module.exports = { startSlave };

if (require.main === module) {
	const masterUrl = process.argv[2] || process.env.MASTER_URL || 'ws://localhost:8081';
	const name = process.argv[3] || process.env.SLAVE_NAME || 'Demo slave';
	startSlave(masterUrl, name).then((slave) => {
		console.log(`${name} registered with ${masterUrl}`);
		process.once('SIGINT', () => slave.close().then(() => process.exit(0)));
	}, (err) => {
		console.error(`cannot start the slave: ${err.message}`);
		process.exitCode = 1;
	});
}
