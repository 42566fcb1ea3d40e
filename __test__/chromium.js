'use strict';
// Headless Chromium for the browser tests: Debian's (/usr/bin/chromium, or
// CHROMIUM_PATH), driven by playwright-core; never a downloaded browser.

const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Launches Chromium as the workplace runs it: root, no network beyond the test's namespace; `extraArgs` are added. */
function launchChromium(extraArgs = []) {
	return chromium.launch({
		executablePath: CHROMIUM,
		args: [
			'--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--disable-quic',
			// Plain IP candidates: nothing resolves .local names in the namespace.
			'--disable-features=WebRtcHideLocalIpsWithMdns',
			...extraArgs,
		],
	});
}

module.exports = { launchChromium };
