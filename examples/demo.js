'use strict';
// `npm start`: the demo master (with its page) and one slave, in one process.
// Open the printed URL in a browser on this machine or your network.

const { server } = require('./master.js');

server.once('listening', () => {
	const { port } = server.address();
	process.env.MASTER_URL ??= `ws://127.0.0.1:${port}`;
	require('./slave.js').catch((err) => {
		console.error(`cannot start the demo slave: ${err.message}`);
		process.exitCode = 1;
	});
});
