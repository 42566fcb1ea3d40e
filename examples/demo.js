'use strict';
// `npm start`: the demo master (with its page) and two slaves, in one process.
// Open the printed URL in a browser on this machine or your network.
// PORT=… picks the port (default 8081; 0 for any free one).

const { server } = require('./master.js');
const { startSlave } = require('./slave.js');

const NAMES = ['Demo slave A', 'Demo slave B'];

server.once('listening', async () => {
	const { port } = server.address();
	try {
		const slaves = await Promise.all(NAMES.map((name) => startSlave(`ws://127.0.0.1:${port}`, name)));
		console.log(`enslavism demo: a master and ${slaves.length} slaves are running. Open http://localhost:${port}/`);
		process.once('SIGINT', () => Promise.all(slaves.map((slave) => slave.close())).then(() => process.exit(0)));
	} catch (err) {
		console.error(`cannot start the demo slaves: ${err.message}`);
		process.exit(1);
	}
});
