'use strict';
// enslavism: enslavism 0.9.0's Node API on a Rust engine.

const { Master, PeerSocket } = require('./lib/master.js');
const { Slave, ClientConnection } = require('./lib/slave.js');
const { DataChannel } = require('./lib/data-channel.js');
const { MasterConnection, SlaveConnection } = require('./lib/master-connection.js');
const { droppedLogRecords, runtimeTasks } = require('./lib/binding.js');
const { setLogger } = require('./lib/logger.js');

/**
 * Figures for leak checks and monitoring: `engineTasks` is the number of
 * tasks alive in the engine (each connection, channel and peer has a few; it
 * returns to its baseline when they are gone); `droppedLogRecords` the log
 * lines `setLogger`'s logger lost because the main thread did not take them
 * fast enough (at most 10,000 wait).
 */
function diagnostics() {
	return { engineTasks: runtimeTasks(), droppedLogRecords: droppedLogRecords() };
}

module.exports = { Master, Slave, ClientConnection, DataChannel, PeerSocket, MasterConnection, SlaveConnection, diagnostics, setLogger };
