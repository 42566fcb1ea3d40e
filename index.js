'use strict';
// enslavism: enslavism 0.9.0's Node API on a Rust engine.

const { Master, PeerSocket } = require('./lib/master.js');
const { Slave, ClientConnection } = require('./lib/slave.js');
const { DataChannel } = require('./lib/data-channel.js');

module.exports = { Master, Slave, ClientConnection, DataChannel, PeerSocket };
