'use strict';
// The master's status page (`status: true`) in headless Chromium, inside a
// private network namespace: it lists the registered slaves with their
// userData, live, and shows the master's figures. Saves a screenshot to
// test-output/status.png.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { enterNamespace } = require('./netns.js');

if (!enterNamespace(__filename, 'status page tests')) return;

const { launchChromium } = require('./chromium.js');
const { frame, connect, startMaster } = require('./helpers.js');

const SCREENSHOT = path.join(__dirname, '..', 'test-output', 'status.png');
const WAIT = 10_000;

describe('the status page in Chromium', { timeout: 60_000 }, () => {
	let m;
	let browser;
	let page;
	const slaves = [];

	before(async () => {
		m = await startMaster('port', { metrics: true, status: true });
		for (const userData of [{ name: 'Alpha', players: 3 }, { name: 'Beta', players: 0 }]) {
			const slave = await connect(`${m.url}/enslavism/slaves`);
			slave.send(frame.register(userData));
			slaves.push(slave);
		}
		browser = await launchChromium();
		page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
		await page.goto(`${m.httpUrl}/enslavism/status`, { timeout: WAIT });
	});

	after(async () => {
		await browser?.close();
		await m?.close();
	});

	it('lists the slaves with their userData and shows the master\'s figures', async () => {
		const list = page.locator('#list tr');
		await list.filter({ hasText: '"name":"Alpha"' }).waitFor({ timeout: WAIT });
		await list.filter({ hasText: '"name":"Beta"' }).waitFor({ timeout: WAIT });
		// The page is a client itself; two readings of status.json give the rates.
		await page.locator('#clients', { hasText: /^1$/ }).waitFor({ timeout: WAIT });
		await page.locator('#slaves', { hasText: /^2$/ }).waitFor({ timeout: WAIT });
		await page.locator('#frames-out', { hasText: /^\d+$/ }).waitFor({ timeout: WAIT });
		assert.match(await page.locator('#state').textContent(), /^Updated .*2 slave and 1 client connections/);
	});

	it('follows the list live', async () => {
		slaves[1].send(frame.register({ name: 'Beta', players: 5 }));
		await page.locator('#list tr', { hasText: '"players":5' }).waitFor({ timeout: WAIT });
		await slaves[0].close();
		await page.locator('#list tr', { hasText: 'Alpha' }).waitFor({ state: 'detached', timeout: WAIT });
		await page.locator('#slaves', { hasText: /^1$/ }).waitFor({ timeout: WAIT });
		fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
		await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: WAIT });
		console.log(`# screenshot: ${SCREENSHOT}`);
	});
});
