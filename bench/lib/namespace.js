'use strict';
// Re-runs a benchmark script inside a private network namespace (loopback
// plus a veth pair holding ADDRESS), so that WebRTC traffic stays inside it.
// Works as root and, through an unprivileged user namespace, without root.
// The file-descriptor limit is raised first, as far as the process may.

const { spawnSync } = require('node:child_process');

const ADDRESS = '10.77.0.1';
const INSIDE = 'ENSLAVISM_BENCH_NETNS';

/** Whether this process already runs inside the benchmark's namespace. */
function insideNamespace() {
	return process.env[INSIDE] === '1';
}

/** Runs `script` with `args` inside a new namespace, with `env` added; exits with its status. */
function reexecInNamespace(script, args, { env = {}, timeoutMs }) {
	const inner = [
		'set -e', 'ip link set lo up', 'ip link add v0 type veth peer name v1',
		`ip addr add ${ADDRESS}/24 dev v0`, 'ip link set v0 up', 'ip link set v1 up', 'exec "$0" "$@"',
	].join('\n');
	// Raising the hard limit needs root outside the namespace; otherwise the soft one goes up to the hard one.
	const outer = 'ulimit -Hn 1048576 2>/dev/null || true; ulimit -n "$(ulimit -Hn)"; exec unshare -rn sh -c "$0" "$@"';
	const r = spawnSync('sh', ['-c', outer, inner, process.execPath, script, ...args], {
		stdio: 'inherit', env: { ...process.env, ...env, [INSIDE]: '1' }, timeout: timeoutMs,
	});
	if (r.error) {
		console.error(`bench: ${r.error.message}`);
		process.exit(1);
	}
	process.exit(r.status ?? 1);
}

module.exports = { ADDRESS, insideNamespace, reexecInNamespace };
