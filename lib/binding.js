'use strict';
// The native addon, loaded once for every wrapper.
module.exports = require('../scripts/load-binding.js')();
