'use strict';
// The engine's logs into the application's logger (pino, winston, console…).

const { setLogger: setNativeLogger } = require('./binding.js');
const { codedError, createNative, describe } = require('./util.js');

/**
 * Sends the engine's logs to `logger(level, target, message, fields)`:
 * `level` is 'error', 'warn', 'info', 'debug' or 'trace'; `target` the Rust
 * module the line comes from (`enslavism::slave::engine`, `rtc_sctp::…`);
 * `fields` the record's other fields, as strings. Records arrive in batches
 * on the main thread, never on the engine's hot path. `options.filter`
 * chooses them (tracing's EnvFilter syntax, as `ENSLAVISM_LOG`; default:
 * `ENSLAVISM_LOG` if set, else 'warn,enslavism=info'). `setLogger(null)`
 * stops (the engine is quiet again, or back to `ENSLAVISM_LOG` on stderr).
 * A logger does not keep the process alive, and one that throws loses that
 * line only (a process warning says so). At most 10,000 lines wait for the
 * main thread; more are dropped (`diagnostics().droppedLogRecords` counts them).
 */
function setLogger(logger, options = {}) {
	if (logger !== null && typeof logger !== 'function') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `logger must be a function or null; received ${describe(logger)}`);
	}
	if (options === null || typeof options !== 'object') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options must be an object; received ${describe(options)}`);
	}
	const { filter } = options;
	if (filter !== undefined && typeof filter !== 'string') {
		throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `options.filter must be a string; received ${describe(filter)}`);
	}
	// A logger that throws loses that line only, with a warning: a log line
	// must not take the process down.
	const onRecords = logger === null ? null : (batch) => {
		for (const record of batch) {
			try {
				logger(record.level, record.target, record.message, record.fields);
			} catch (err) {
				process.emitWarning(`enslavism: the logger threw: ${err?.message ?? err}`, { code: 'ERR_ENSLAVISM_LOGGER' });
			}
		}
	};
	createNative(() => setNativeLogger(onRecords, filter));
}

module.exports = { setLogger };
