'use strict';
// The demo (`npm start`: examples/demo.js, a master and two slaves) in headless
// Chromium, inside a private network namespace, as a newcomer sees it: the
// slave table, Connect, the echoed pings with their round-trip time, the
// player count changing live; and a slave started on its own
// (examples/slave.js) joining and leaving the list. Saves a screenshot to
// test-output/demo.png.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'demo tests', { summary: true })) return;

const { launchChromium } = require('./chromium.js');

const ROOT = path.join(__dirname, '..');
const SCREENSHOT = path.join(ROOT, 'test-output', 'demo.png');
/** The bound of every wait below (ms). */
const WAIT = 15_000;

/**
 * Runs `node <args>` in the repository root; `ready` resolves with the match
 * of `pattern` in its stdout, and rejects if it exits first or says nothing
 * of the kind within WAIT ms.
 */
function runExample(args, pattern, env = {}) {
	const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
	let output = '';
	child.stderr.on('data', (chunk) => { output += chunk; });
	const ready = new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${args[0]} did not print ${pattern} within ${WAIT} ms:\n${output}`)), WAIT);
		child.stdout.on('data', (chunk) => {
			output += chunk;
			const match = pattern.exec(output);
			if (match) {
				clearTimeout(timer);
				resolve(match);
			}
		});
		child.once('exit', (code, signal) => {
			clearTimeout(timer);
			reject(new Error(`${args[0]} exited (${code ?? signal}):\n${output}`));
		});
	});
	ready.catch(() => {}); // awaited by the test; an exit after that is no error
	return { child, ready, output: () => output };
}

/** Sends `signal` and waits (bounded) for the exit; resolves with the exit code. */
async function stop(child, signal = 'SIGTERM') {
	if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
	const exited = once(child, 'exit');
	child.kill(signal);
	const timer = setTimeout(() => child.kill('SIGKILL'), WAIT);
	const [code] = await exited;
	clearTimeout(timer);
	return code;
}

describe('the demo page (npm start) in Chromium', { timeout: 120_000 }, () => {
	let demo;
	let port;
	let browser;
	let page;
	const pageErrors = [];

	/** The table row of the slave called `name`. */
	const row = (name) => page.locator('#slaves tr', { has: page.locator('td.name', { hasText: new RegExp(`^${name}$`) }) });
	/** Waits until the slave's player count reads `n`. */
	const players = (name, n) => row(name).locator('td.players', { hasText: new RegExp(`^${n}$`) }).waitFor({ timeout: WAIT });

	before(async () => {
		demo = runExample(['examples/demo.js'], /Open http:\/\/localhost:(\d+)\//, { PORT: '0' });
		port = Number((await demo.ready)[1]);
		browser = await launchChromium();
		page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
		page.on('pageerror', (err) => pageErrors.push(err.message));
		// From the master's own origin: the page connects to ws://127.0.0.1:PORT.
		await page.goto(`http://127.0.0.1:${port}/`, { timeout: WAIT });
	});

	after(async () => {
		await browser?.close();
		if (demo) await stop(demo.child);
	});

	it('lists both demo slaves, with no players yet', async () => {
		await row('Demo slave A').waitFor({ timeout: WAIT });
		await row('Demo slave B').waitFor({ timeout: WAIT });
		assert.equal(await page.locator('#slaves tr').count(), 2);
		for (const name of ['Demo slave A', 'Demo slave B']) {
			assert.equal(await row(name).locator('td.players').textContent(), '0');
			assert.equal(await row(name).getByRole('button').textContent(), 'Connect');
		}
		assert.equal(await page.locator('#no-slaves').isVisible(), false);
		assert.match(await page.locator('#status').textContent(), new RegExp(`ws://127\\.0\\.0\\.1:${port}`));
	});

	it('Connect: the greeting, echoed pings with their round trip, and the player count going to 1 live', async () => {
		await page.evaluate(() => { window.sameDocument = true; });
		await row('Demo slave A').getByRole('button', { name: 'Connect' }).click({ timeout: WAIT });

		await page.locator('#log li', { hasText: 'Demo slave A: hallo welt, this is Demo slave A' }).waitFor({ timeout: WAIT });
		const echo = page.locator('#log li', { hasText: /Demo slave A: ping 1 \(RTT [\d.]+ ms\)/ });
		await echo.waitFor({ timeout: WAIT });
		const rtt = Number(/RTT ([\d.]+) ms/.exec(await echo.textContent())[1]);
		assert.ok(rtt > 0 && rtt < 1000, `a plausible round trip: ${rtt} ms`);
		assert.match(await row('Demo slave A').locator('td.rtt').textContent(), /^\d+\.\d ms$/);
		assert.equal(await row('Demo slave A').getByRole('button').textContent(), 'Disconnect');
		console.log(`# round trip of the first ping to Demo slave A: ${rtt} ms`);

		// The slave counted its client and called setUserData: the row changed in place.
		await players('Demo slave A', 1);
		assert.equal(await row('Demo slave B').locator('td.players').textContent(), '0');
		assert.equal(await page.evaluate(() => window.sameDocument), true, 'no reload');

		// A second echo, then the picture.
		await page.locator('#log li', { hasText: /Demo slave A: ping 2 \(RTT [\d.]+ ms\)/ }).waitFor({ timeout: WAIT });
		fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
		await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: WAIT });
		console.log(`# screenshot: ${SCREENSHOT}`);
	});

	it('Disconnect: the pings stop and the player count goes back to 0 live', async () => {
		await row('Demo slave A').getByRole('button', { name: 'Disconnect' }).click({ timeout: WAIT });
		await page.locator('#log li', { hasText: 'Disconnected from Demo slave A: you asked' }).waitFor({ timeout: WAIT });
		assert.equal(await row('Demo slave A').locator('td.rtt').textContent(), '–');
		await players('Demo slave A', 0);
		assert.equal(await row('Demo slave A').getByRole('button').textContent(), 'Connect');
	});

	it('a slave started on its own joins the list, and leaves it on Ctrl-C', async () => {
		const standalone = runExample(['examples/slave.js', `ws://127.0.0.1:${port}`, 'Standalone slave'], /Standalone slave registered/);
		try {
			await standalone.ready;
			await row('Standalone slave').waitFor({ timeout: WAIT });
			assert.equal(await page.locator('#slaves tr').count(), 3);
			assert.equal(await stop(standalone.child, 'SIGINT'), 0, standalone.output());
			await row('Standalone slave').waitFor({ state: 'detached', timeout: WAIT });
			await page.locator('#log li', { hasText: 'Standalone slave left the list' }).waitFor({ timeout: WAIT });
			assert.equal(await page.locator('#slaves tr').count(), 2);
		} finally {
			await stop(standalone.child);
		}
	});

	it('threw no error on the page', () => {
		assert.deepEqual(pageErrors, []);
	});
});
