'use strict';
// Can str0m answer libwebrtc as the slave does? Offers from @roamhq/wrtc
// (libwebrtc) to `str0m_answer` (bench/probes/src/bin), with an in-band
// reliable channel and a negotiated unordered one without retransmissions,
// then times the setup and counts the echoes on both channels. Run it in a
// network namespace of its own (libwebrtc gathers on every interface):
//
//   CARGO_TARGET_DIR=../../target/probes cargo build --release --bin str0m_answer
//   unshare -rn sh -c 'ip link set lo up; ip link add v0 type veth peer name v1;
//     ip addr add 10.77.0.1/24 dev v0; ip link set v0 up; ip link set v1 up;
//     node interop.js'
//
// `ROUNDS=100 node interop.js` instead makes 100 connections one after the
// other and counts those open, with one echo, within 5 s (the slave's loss
// test when the namespace drops 10% of UDP: add `nft add table inet t; nft
// add chain inet t o '{ type filter hook output priority 0; }'; nft add
// rule inet t o meta l4proto udp numgen random mod 10 0 drop` before node).

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const wrtc = require('@roamhq/wrtc');

const ADDRESS = '10.77.0.1';
const ANSWERER = path.join(__dirname, '../../target/probes/release/str0m_answer');
const MESSAGES = 100;

/** Resolves with `promise`'s value, or rejects after `ms`. */
function within(ms, what, promise) {
	let timer;
	const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); });
	return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Resolves once `dc` is open. */
function opened(dc) {
	return dc.readyState === 'open' ? Promise.resolve() : new Promise((resolve) => dc.addEventListener('open', resolve, { once: true }));
}

/** Resolves once `pc` has gathered its candidates (into its offer), within 2 s. */
function gathered(pc) {
	return within(2000, 'ICE gathering', new Promise((resolve) => {
		if (pc.iceGatheringState === 'complete') resolve();
		pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
	}));
}

/** Sends MESSAGES messages on `dc` and resolves with how many came back. */
function echoes(dc) {
	return new Promise((resolve) => {
		let back = 0;
		dc.addEventListener('message', () => { back += 1; if (back === MESSAGES) resolve(back); });
		for (let i = 0; i < MESSAGES; i += 1) dc.send(new Uint8Array(100).fill(i));
		setTimeout(() => resolve(back), 3000);
	});
}

/** One connection: setup and one echo on the reliable channel within 5 s; its time in ms, or null. */
async function round() {
	// With RUST_LOG set, a failed connection's str0m log is printed.
	const answerer = spawn(ANSWERER, [ADDRESS], { stdio: ['pipe', 'pipe', process.env.RUST_LOG ? 'pipe' : 'ignore'] });
	let log = '';
	answerer.stderr?.on('data', (chunk) => { log += chunk; });
	const lines = readline.createInterface({ input: answerer.stdout });
	const pc = new wrtc.RTCPeerConnection();
	try {
		const dc = pc.createDataChannel('echo');
		await pc.setLocalDescription(await pc.createOffer());
		await gathered(pc);
		const started = process.hrtime.bigint();
		answerer.stdin.write(`${JSON.stringify(pc.localDescription.sdp)}\n`);
		return await within(5000, 'setup and echo', (async () => {
			const [answer] = await new Promise((resolve) => lines.once('line', (l) => resolve([JSON.parse(l)])));
			await pc.setRemoteDescription({ type: 'answer', sdp: answer });
			await opened(dc);
			const back = new Promise((resolve) => dc.addEventListener('message', resolve, { once: true }));
			dc.send('ping');
			await back;
			return Number(process.hrtime.bigint() - started) / 1e6;
		})());
	} catch {
		if (log) console.error(`interop: a connection failed; str0m's log:\n${log}`);
		return null;
	} finally {
		pc.close();
		answerer.stdin.end();
	}
}

async function rounds(count) {
	const times = [];
	for (let i = 0; i < count; i += 1) {
		const ms = await round();
		if (ms !== null) times.push(ms);
	}
	times.sort((a, b) => a - b);
	const at = (p) => (times.length ? Math.round(times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)]) : null);
	console.log(JSON.stringify({ rounds: count, done: times.length, p50: at(0.5), p95: at(0.95), max: at(1) }));
}

async function main() {
	if (process.env.ROUNDS) return rounds(Number(process.env.ROUNDS));
	const answerer = spawn(ANSWERER, [ADDRESS], { stdio: ['pipe', 'pipe', 'inherit'] });
	const lines = readline.createInterface({ input: answerer.stdout });
	const pc = new wrtc.RTCPeerConnection();
	try {
		const reliable = pc.createDataChannel('echo');
		const unreliable = pc.createDataChannel('game', { negotiated: true, id: 256, ordered: false, maxRetransmits: 0 });
		const offer = await pc.createOffer();
		await pc.setLocalDescription(offer);
		await gathered(pc);
		const started = process.hrtime.bigint();
		answerer.stdin.write(`${JSON.stringify(`${pc.localDescription.sdp}a=x-negotiated:256\r\n`)}\n`);
		const [answer] = await within(5000, 'the answer', new Promise((resolve) => lines.once('line', (l) => resolve([JSON.parse(l)]))));
		await pc.setRemoteDescription({ type: 'answer', sdp: answer });
		await within(10_000, 'both channels open', Promise.all([opened(reliable), opened(unreliable)]));
		const setupMs = Number(process.hrtime.bigint() - started) / 1e6;
		const [backReliable, backUnreliable] = await Promise.all([echoes(reliable), echoes(unreliable)]);
		const answerLines = answer.split(/\r?\n/);
		const candidates = answerLines.filter((l) => l.startsWith('a=candidate'));
		const setup = answerLines.find((l) => l.startsWith('a=setup:'));
		console.log(JSON.stringify({ setupMs: Math.round(setupMs * 10) / 10, backReliable, backUnreliable, sent: MESSAGES, answerCandidates: candidates, setup }));
		if (backReliable !== MESSAGES) process.exitCode = 1;
	} finally {
		pc.close();
		answerer.stdin.end();
	}
}

main().catch((err) => {
	console.error(`interop: ${err.message}`);
	process.exit(1);
});
