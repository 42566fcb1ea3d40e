'use strict';
// enslavism: enslavism 0.9.0's Node API on a Rust engine.

const { Master, PeerSocket } = require('./lib/master.js');
const { Slave, ClientConnection } = require('./lib/slave.js');
const { DataChannel } = require('./lib/data-channel.js');
const { MasterConnection, SlaveConnection } = require('./lib/master-connection.js');
const { runtimeTasks } = require('./lib/binding.js');
const { setLogger } = require('./lib/logger.js');

/**
 * Figures for leak checks and monitoring: `engineTasks` is the number of
 * tasks alive in the engine (each connection, channel and peer has a few; it
 * returns to its baseline when they are gone).
 */
function diagnostics() {
	return { engineTasks: runtimeTasks() };
}

module.exports = { Master, Slave, ClientConnection, DataChannel, PeerSocket, MasterConnection, SlaveConnection, diagnostics, setLogger };
