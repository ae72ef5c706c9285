// Shared pieces of the real-browser tests: Debian's Chromium through playwright-core, and
// signing in through the login page. The scripts are node:test files: each check is a test(),
// node prints TAP with `# pass N` / `# fail N` and exits non-zero when one fails.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const base = process.env.FERRY_URL;
if (!base) { console.error('FERRY_URL is not set'); process.exit(2); }

// Where screenshots go (tests/it/browser.rs sets SHOTS_DIR).
export const shots = process.env.SHOTS_DIR || tmpdir();
/** @param {string} name */
export const shot = name => join(shots, name);

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
export function launchMedia(extra = []) {
  return launch([...extra, '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
    // Screen sharing picks the (virtual) screen without a dialog.
    '--auto-select-desktop-capture-source=Entire screen']);
}

export function expect(cond, msg) { if (!cond) throw new Error(msg); }

// Signs in on `page` through the login form and waits for the page it leads to (home, unless
// the sign-in page was reached from a deep link).
export async function signIn(page, user, password = 'ferry-demo', { deepLink = false } = {}) {
  if (!deepLink) await page.goto(`${base}/#/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  if (!deepLink) await page.waitForSelector('#home-title', { timeout: 15000 });
}

// For scripts a Rust test runs inside a network namespace: what the page could not load and
// what it complained of go to the output, which a failure prints.
export function logTrouble(page) {
  page.on('requestfailed', r => console.log(`# request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on('console', m => { if (m.type() === 'error') console.log(`# console: ${m.text()}`); });
  page.on('pageerror', e => console.log(`# page error: ${e.message}`));
}

// Signs in, and once more if no form came: twice in about thirty runs Chromium's first page
// in a fresh network namespace showed no sign-in form for 30 s (logTrouble says what it
// waited on). A second failure fails.
export async function signInPatiently(page, user) {
  try {
    await signIn(page, user);
  } catch (e) {
    console.log(`# no sign-in: ${e.message.split('\n')[0]}; loading the page again`);
    await signIn(page, user);
  }
}

// A new browser context (en-US) with a page signed in as `user`.
export async function signedInPage(browser, user) {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await signIn(page, user);
  return page;
}

// The page's visible controls without an accessible name: inputs, selects and text areas with
// no label (wrapping or `for`), aria-label or aria-labelledby; buttons and links with no text
// or aria-label. Returns descriptions of the ones found.
export function unlabelledControls(page) {
  return page.evaluate(() => {
    const visible = el => (el.checkVisibility ? el.checkVisibility() : !!el.getClientRects().length);
    const named = el => !!(el.getAttribute('aria-label')?.trim() || el.getAttribute('aria-labelledby')
      || (el.labels && [...el.labels].some(l => l.textContent.trim())) || el.getAttribute('title')?.trim());
    const out = [];
    for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
      if (visible(el) && !named(el)) out.push(`${el.tagName.toLowerCase()}[name=${el.getAttribute('name')}]#${el.id}`);
    }
    for (const el of document.querySelectorAll('button, a[href], summary')) {
      if (visible(el) && !el.textContent.trim() && !named(el)) out.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}`);
    }
    return out;
  });
}
