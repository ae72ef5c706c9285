// Shared pieces of the real-browser tests: Debian's Chromium through playwright-core, named
// checks with a closing "N passed, N failed" line, and signing in through the login page.
import { chromium } from 'playwright-core';

export const base = process.env.FERRY_URL;
if (!base) { console.error('FERRY_URL is not set'); process.exit(2); }

export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // Playwright gives every launch a fresh, empty profile directory of its own.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extra],
  });
}

// A browser for calls: a fake camera and microphone granted without asking, peer connections
// over loopback, and host candidates with their real addresses (not mDNS names, which do not
// resolve in a container).
export function launchMedia() {
  return launch(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
    // Screen sharing picks the (virtual) screen without a dialog.
    '--auto-select-desktop-capture-source=Entire screen']);
}

let passed = 0, failed = 0;

export async function check(name, fn) {
  try { await fn(); passed++; console.log(`ok   ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}: ${e.message}`); }
}

export function expect(cond, msg) { if (!cond) throw new Error(msg); }

export function fail(e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e.message}`);
}

// Prints the closing line and exits with the verdict.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

// Signs in on `page` through the login form and waits for the home page.
export async function signIn(page, user, password = 'ferry-demo') {
  await page.goto(`${base}/#/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#home-title', { timeout: 15000 });
}
