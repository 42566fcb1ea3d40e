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

function opened(dc) {
	return dc.readyState === 'open' ? Promise.resolve() : new Promise((resolve) => dc.addEventListener('open', resolve, { once: true }));
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

async function main() {
	const answerer = spawn(ANSWERER, [ADDRESS], { stdio: ['pipe', 'pipe', 'inherit'] });
	const lines = readline.createInterface({ input: answerer.stdout });
	const pc = new wrtc.RTCPeerConnection();
	try {
		const reliable = pc.createDataChannel('echo');
		const unreliable = pc.createDataChannel('game', { negotiated: true, id: 256, ordered: false, maxRetransmits: 0 });
		const offer = await pc.createOffer();
		await pc.setLocalDescription(offer);
		await within(2000, 'ICE gathering', new Promise((resolve) => {
			if (pc.iceGatheringState === 'complete') resolve();
			pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
		}));
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
