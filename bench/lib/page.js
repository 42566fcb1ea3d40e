// The browser side of the benchmark, loaded by the page the master serves
// (after /enslavism/client.js, so MasterConnection is either implementation's).
// The benchmark drives it with page.evaluate(); every wait is bounded.
/* global MasterConnection */
'use strict';

const stampNow = () => performance.timeOrigin + performance.now();

/** Resolves with the first slave `masterCon` lists, or rejects after `ms`. */
function firstSlave(masterCon, ms = 10_000) {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error('no slave listed')), ms);
		masterCon.addEventListener('slaveadded', (slaveCo) => { clearTimeout(timer); resolve(slaveCo); });
	});
}

function withTimeout(promise, ms, what) {
	let timer;
	return Promise.race([promise, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
		.finally(() => clearTimeout(timer));
}

function nextMessage(dc, ms) {
	return withTimeout(new Promise((resolve) => dc.addEventListener('message', (ev) => resolve(ev.data), { once: true })), ms, 'message');
}

window.bench = {
	/** createDataChannel() → open: `sequential` one at a time, then `rounds` of `concurrent` at once (ms each). */
	async setup(url, { warmup, sequential, concurrent, rounds }) {
		const masterCon = new MasterConnection(url);
		const slaveCo = await firstSlave(masterCon);
		const timeOne = async (co) => {
			const t0 = performance.now();
			await withTimeout(co.createDataChannel('setup'), 10_000, 'setup');
			return performance.now() - t0;
		};
		const one = [];
		for (let i = 0; i < warmup + sequential; i++) {
			const ms = await timeOne(slaveCo);
			if (i >= warmup) one.push(ms);
			slaveCo.close();
		}
		const cons = [];
		for (let i = 0; i < concurrent; i++) cons.push(new MasterConnection(url));
		const cos = await Promise.all(cons.map((mc) => firstSlave(mc)));
		const many = [];
		for (let r = 0; r < rounds; r++) {
			many.push(...await Promise.all(cos.map(timeOne)));
			for (const co of cos) co.close();
		}
		for (const mc of [masterCon, ...cons]) mc.close?.();
		return { sequential: one, concurrent: many };
	},

	/**
	 * `count` setups one after the other, each a success when its channel is
	 * open and one echo is back within `limitMs` (ms each; the network loses
	 * packets meanwhile, see the `lossy` section).
	 */
	async lossySetup(url, { count, limitMs }) {
		const masterCon = new MasterConnection(url);
		const slaveCo = await firstSlave(masterCon);
		const times = [];
		let failed = 0;
		for (let i = 0; i < count; i++) {
			const t0 = performance.now();
			try {
				const dc = await withTimeout(slaveCo.createDataChannel('echo'), limitMs, 'setup');
				const reply = nextMessage(dc, Math.max(1, limitMs - (performance.now() - t0)));
				dc.send('ping');
				await reply;
				times.push(performance.now() - t0);
			} catch {
				failed++;
			}
			slaveCo.close();
		}
		masterCon.close?.();
		return { times, failed };
	},

	/** Ping-pong of 100-byte messages: round-trip times (ms); `lost` counts pings without a reply in 1 s. */
	async echo(url, options, { warmup, count }) {
		const masterCon = new MasterConnection(url);
		const slaveCo = await firstSlave(masterCon);
		const dc = await withTimeout(slaveCo.createDataChannel('echo', options), 10_000, 'echo channel');
		dc.binaryType = 'arraybuffer';
		const payload = new Uint8Array(100).fill(5);
		const rtts = [];
		let lost = 0;
		for (let i = 0; i < warmup + count; i++) {
			const reply = nextMessage(dc, 1000);
			const t0 = performance.now();
			dc.send(payload);
			try {
				await reply;
				if (i >= warmup) rtts.push(performance.now() - t0);
			} catch {
				lost++;
			}
		}
		slaveCo.close();
		masterCon.close?.();
		return { rtts, lost };
	},

	/** Reliable, ordered: the slave sends for `ms`; messages/s received without loss. */
	async download(url, ms) {
		const masterCon = new MasterConnection(url);
		const slaveCo = await firstSlave(masterCon);
		const dc = await withTimeout(slaveCo.createDataChannel('source'), 10_000, 'source channel');
		dc.binaryType = 'arraybuffer';
		let received = 0;
		let first;
		let last;
		// What closed the channel, when it closes early (an SCTP abort says why here).
		let channelError = 'none';
		dc.addEventListener('error', (ev) => { channelError = ev.error?.message ?? String(ev.error); });
		const report = new Promise((resolve) => dc.addEventListener('message', (ev) => {
			if (typeof ev.data === 'string') { resolve(JSON.parse(ev.data)); return; }
			last = performance.now();
			if (received++ === 0) first = last;
		}));
		dc.send(`go:${ms}`);
		const slave = await withTimeout(report, ms + 30_000, 'download report').catch((err) => {
			throw new Error(`${err.message} (${received} messages received, channel ${dc.readyState}, channel error ${channelError}, connection ${slaveCo.slaveCon?.connectionState ?? slaveCo.pc?.connectionState})`);
		});
		slaveCo.close();
		masterCon.close?.();
		return { received, sent: slave.sent, perSecond: received / ((last - first) / 1000), slaveCpu: slave.cpu, slaveSeconds: slave.seconds };
	},

	/** Reliable, ordered: sends for `ms` as fast as the channel takes; the slave reports what arrived. */
	async upload(url, ms) {
		const masterCon = new MasterConnection(url);
		const slaveCo = await firstSlave(masterCon);
		const dc = await withTimeout(slaveCo.createDataChannel('sink'), 10_000, 'sink channel');
		const payload = new Uint8Array(100).fill(3);
		const limit = 1 << 20;
		dc.bufferedAmountLowThreshold = limit / 4;
		let sent = 0;
		const start = performance.now();
		while (performance.now() - start < ms) {
			while (dc.bufferedAmount < limit) { dc.send(payload); sent++; }
			await withTimeout(new Promise((resolve) => dc.addEventListener('bufferedamountlow', resolve, { once: true })), 10_000, 'drain');
		}
		const report = nextMessage(dc, 30_000);
		dc.send(`end:${sent}`);
		const slave = JSON.parse(await report);
		slaveCo.close();
		masterCon.close?.();
		return { sent, received: slave.count, perSecond: slave.count / slave.seconds, slaveCpu: slave.cpu, slaveSeconds: slave.seconds };
	},

	fanout: {
		peers: [],
		from: Infinity,
		to: -Infinity,
		inputsSent: 0,
		statesReceived: 0,
		latencies: [],
		timer: null,

		/** Connects `count` peers (`parallel` at a time), each with an unreliable 'game' channel; starts 60 Hz inputs. */
		async start(url, count, parallel) {
			const input = new Uint8Array(100);
			const inputView = new DataView(input.buffer);
			const connectOne = async () => {
				const masterCon = new MasterConnection(url);
				const slaveCo = await firstSlave(masterCon, 30_000);
				const dc = await withTimeout(slaveCo.createDataChannel('game', { ordered: false, maxRetransmits: 0 }), 30_000, 'game channel');
				dc.binaryType = 'arraybuffer';
				dc.addEventListener('message', (ev) => {
					const at = stampNow();
					const stamp = new DataView(ev.data).getFloat64(0);
					if (stamp >= this.from && stamp < this.to) { this.statesReceived++; this.latencies.push(at - stamp); }
				});
				this.peers.push({ masterCon, slaveCo, dc });
			};
			let failed = 0;
			let next = 0;
			await Promise.all(Array.from({ length: parallel }, async () => {
				while (next < count) {
					next++;
					try { await connectOne(); } catch { failed++; }
				}
			}));
			this.timer = setInterval(() => {
				const stamp = stampNow();
				inputView.setFloat64(0, stamp);
				const counted = stamp >= this.from && stamp < this.to;
				for (const { dc } of this.peers) {
					if (dc.readyState !== 'open') continue;
					dc.send(input);
					if (counted) this.inputsSent++;
				}
			}, 1000 / 60);
			return { connected: this.peers.length, failed };
		},

		window(from, to) {
			Object.assign(this, { from, to, inputsSent: 0, statesReceived: 0, latencies: [] });
		},

		report() {
			return { inputsSent: this.inputsSent, statesReceived: this.statesReceived, latencies: this.latencies };
		},

		stop() {
			clearInterval(this.timer);
			for (const { masterCon, slaveCo } of this.peers) { slaveCo.close(); masterCon.close?.(); }
			this.peers = [];
		},
	},
};
