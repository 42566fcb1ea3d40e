'use strict';
// What the machine and our own processes did: CPU time from /proc, so that a
// section can be refused when something outside the benchmark used the CPU,
// and a process's RSS and thread count.

const fs = require('node:fs');

const TICKS_PER_SECOND = 100; // USER_HZ on Linux
const CORES = require('node:os').availableParallelism();

/** Busy and total CPU ticks of the whole machine (all cores). */
function machineTicks() {
	const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
	const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
	const busy = user + nice + system + irq + softirq + steal;
	return { busy, total: busy + idle + iowait };
}

/** utime+stime (own and waited-for children) and the parent of process `pid`, or null once it is gone. */
function processTicks(pid) {
	try {
		const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
		// Fields from 3 on (state is 3): ppid 4, utime 14, stime 15, cutime 16, cstime 17.
		return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) };
	} catch {
		return null;
	}
}

/** CPU ticks used so far by this process and every live descendant (Chromium included). */
function treeTicks(root = process.pid) {
	const all = new Map();
	for (const name of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(name)) continue;
		const info = processTicks(name);
		if (info) all.set(Number(name), info);
	}
	const children = new Map();
	for (const [pid, info] of all) {
		if (!children.has(info.ppid)) children.set(info.ppid, []);
		children.get(info.ppid).push(pid);
	}
	let ticks = 0;
	const stack = [root];
	while (stack.length) {
		const pid = stack.pop();
		ticks += all.get(pid)?.ticks ?? 0;
		stack.push(...(children.get(pid) ?? []));
	}
	return ticks;
}

/**
 * Starts a load window. `end()` returns the share of the machine (0..1 of all
 * cores) busy in it, the part used by the benchmark's processes, and the part
 * used by anything else.
 */
function loadWindow() {
	const machine0 = machineTicks();
	const ours0 = treeTicks();
	return {
		end() {
			const machine1 = machineTicks();
			const total = machine1.total - machine0.total;
			const busy = (machine1.busy - machine0.busy) / total;
			const ours = Math.min(busy, (treeTicks() - ours0) / total);
			return { busy, ours, others: Math.max(0, busy - ours) };
		},
	};
}

/** RSS (bytes; `rssAnon` without the pages of files) and thread count of process `pid`. */
function processMemory(pid) {
	const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
	// Absent before Linux 4.5.
	const anon = /^RssAnon:\s+(\d+)/m.exec(status);
	return {
		rss: Number(/^VmRSS:\s+(\d+)/m.exec(status)[1]) * 1024,
		rssAnon: anon ? Number(anon[1]) * 1024 : undefined,
		threads: Number(/^Threads:\s+(\d+)/m.exec(status)[1]),
	};
}

/**
 * What process `pid` uses while `waiting` (a promise) settles: `cpu`, the
 * share of one core, and its `memory` at the end (see processMemory).
 */
async function processLoad(pid, waiting) {
	const t0 = processTicks(pid).ticks;
	const at = process.hrtime.bigint();
	await waiting;
	const seconds = Number(process.hrtime.bigint() - at) / 1e9;
	return { cpu: (processTicks(pid).ticks - t0) / TICKS_PER_SECOND / seconds, memory: processMemory(pid) };
}

module.exports = { CORES, loadWindow, processMemory, processLoad };
