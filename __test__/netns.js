'use strict';
// Runs a test file inside a private network namespace, so that WebRTC peers
// (libwebrtc gathers on every interface) can only reach addresses inside it:
// loopback, and a veth pair holding NETNS_ADDRESS. Works as root and, through
// an unprivileged user namespace, without root.

const { spawnSync } = require('node:child_process');

/** The address the namespace's veth interface holds. */
const NETNS_ADDRESS = '10.77.0.1';
const INSIDE = 'ENSLAVISM_IN_NETNS';
/**
 * The inner runner's `--test-timeout`. The runner applies it to the file as a
 * whole (and to each test without a timeout of its own), so a file's suite
 * timeouts, which name the test that hung, stay below it.
 */
const FILE_TIMEOUT_MS = 5 * 60_000;
/**
 * The whole namespace run (set-up, runner, file), enforced by spawnSync;
 * below the outer runner's --test-timeout (package.json), which bounds this
 * file too.
 */
const RUN_TIMEOUT_MS = 10 * 60_000;

function insideNamespace() {
	return process.env[INSIDE] === '1';
}

/**
 * Re-runs `file` with `node --test` inside a new network namespace (with
 * `veth: false`, one whose only interface is loopback). Returns
 * `{ status, output }`; the caller asserts on them.
 */
function runInNamespace(file, { veth = true } = {}) {
	const interfaces = veth ? [
		'ip link add v0 type veth peer name v1',
		`ip addr add ${NETNS_ADDRESS}/24 dev v0`,
		'ip link set v0 up',
		'ip link set v1 up',
	] : [];
	const setup = [
		'set -e',
		// No duplicate address detection: the veth's IPv6 link-local address
		// would otherwise appear a moment after the link is up, and Chromium,
		// seeing the network change, aborted the page load it was doing
		// (ERR_NETWORK_CHANGED).
		'echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad',
		'ip link set lo up',
		...interfaces,
		// --test-force-exit: a test that timed out may leave sockets or
		// processes open; the file ends anyway once every test is done.
		`exec "$0" --test --test-reporter=spec --test-timeout=${FILE_TIMEOUT_MS} --test-force-exit "$1"`,
	].join('\n');
	// The outer test runner's context variable would make the inner runner
	// report to it instead of running on its own.
	const { NODE_TEST_CONTEXT, ...env } = process.env;
	const result = spawnSync('unshare', ['-rn', 'sh', '-c', setup, process.execPath, file], {
		env: { ...env, [INSIDE]: '1' },
		encoding: 'utf8',
		timeout: RUN_TIMEOUT_MS,
	});
	const output = `${result.stdout}\n${result.stderr}`;
	if (result.error?.code === 'ETIMEDOUT') {
		throw new Error(`the tests of ${file} did not finish within ${RUN_TIMEOUT_MS} ms inside the namespace (killed):\n${output}`);
	}
	if (result.error) throw result.error;
	return { status: result.status, output };
}

/**
 * For a test file that must run inside its own namespace. Inside one, returns
 * true and the file goes on. Outside, registers one test that re-runs `file`
 * inside a new namespace and passes if every test in there passes (with
 * `summary`, it also prints their results; `veth` as for `runInNamespace`),
 * and returns false: the file then returns at once.
 */
function enterNamespace(file, what, { summary = false, veth = true } = {}) {
	if (insideNamespace()) return true;
	// Required here: inside the namespace the file registers its own tests.
	const { it } = require('node:test');
	const assert = require('node:assert/strict');
	// spawnSync blocks: RUN_TIMEOUT_MS, enforced by runInNamespace, is the bound.
	it(`${what} pass inside a private network namespace`, { timeout: RUN_TIMEOUT_MS }, () => {
		const { status, output } = runInNamespace(file, { veth });
		assert.equal(status, 0, output);
		if (summary) process.stdout.write(output.split('\n').filter((l) => /^\s*(✔|✖|ℹ|#)/.test(l)).join('\n') + '\n');
	});
	return false;
}

module.exports = { FILE_TIMEOUT_MS, NETNS_ADDRESS, RUN_TIMEOUT_MS, enterNamespace, insideNamespace, runInNamespace };
