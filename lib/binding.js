'use strict';
// The native addon that `npm install` built (scripts/build.js), loaded once
// for every wrapper, with a message that says what to do when it is missing.

function load() {
	try {
		return require('../binding.js');
	} catch (err) {
		if (err.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes('binding.js')) throw err;
		const missing = new Error('enslavism: the native addon is not built. Run `npm run build` in the enslavism package (it needs Rust: https://rustup.rs).');
		missing.code = 'ERR_ENSLAVISM_NOT_BUILT';
		missing.cause = err;
		throw missing;
	}
}

module.exports = load();
