// Real-browser checks of the web shell: sign-in, the home page per role, the admin pages, that
// a clinician cannot open them, deep links through the sign-in page, the person's menu, and a
// layout that never scrolls sideways. Run by tests/it/browser.rs with FERRY_URL set.
import test, { after, before } from 'node:test';
import { base, expect, launch, shot, signIn, unlabelledControls } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// English, whatever the machine's locale: these checks read English texts.
async function openAs(user, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ locale: 'en-US', viewport });
  const page = await context.newPage();
  const failures = [];
  page.on('pageerror', e => failures.push(`page error: ${e.message}`));
  page.on('console', m => { if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) failures.push(m.text()); });
  await signIn(page, user);
  return { context, page, failures };
}

let admin, zhao;

test('admin sees the administration home', async () => {
  admin = await openAs('admin');
  const title = await admin.page.textContent('#home-title');
  expect(title.includes('Site administration') && title.includes('City Hospital'), `title: ${title}`);
  for (const cap of ['admin.sites', 'admin.users', 'admin.devices', 'admin.audit']) {
    expect(await admin.page.$(`[data-cap="${cap}"]`), `card ${cap} missing`);
  }
  expect(!(await admin.page.$('[data-cap="consult.request"]')), 'admin should not see clinician cards');
  await admin.page.screenshot({ path: shot('admin-home.png'), fullPage: true });
});

test('admin opens the sites page', async () => {
  await admin.page.click('nav >> text=Administration');
  await admin.page.waitForSelector('table >> text=Island Clinic');
  const rows = await admin.page.$$('table tbody tr');
  expect(rows.length === 4, `${rows.length} sites`);
});

test('admin sees people of a site', async () => {
  await admin.page.goto(`${base}/#/admin/users`);
  await admin.page.waitForSelector('text=Add a person');
  await admin.page.waitForSelector('table >> text=trainer-sun');
  await admin.page.selectOption('select[name=site]', 'island-clinic');
  await admin.page.waitForSelector('table >> text=dr-zhao');
});

test('admin creates a token and sees it once', async () => {
  await admin.page.goto(`${base}/#/admin/devices`);
  await admin.page.waitForSelector('text=Register a device');
  // The city hospital has no devices: the page opens on a site that has some.
  const opened = await admin.page.$eval('select[name=site]', s => s.value);
  expect(opened !== 'city-hospital', `devices opened on ${opened}, which has none`);
  await admin.page.waitForSelector('td >> text=/^[A-Z]+(CT|US)$/');
  await admin.page.selectOption('select[name=site]', 'island-clinic');
  await admin.page.waitForSelector('table >> text=ISLANDCT');
  await admin.page.selectOption('select[name=user]', 'dr-zhao');
  await admin.page.waitForSelector('text=New token for dr-zhao');
  await admin.page.fill('input[name=label]', 'browser test');
  await admin.page.click('text=Create token');
  const shown = await admin.page.waitForSelector('#new-token');
  const text = await shown.textContent();
  expect(/fy_[A-Za-z0-9_-]{20,}/.test(text), `no secret in: ${text}`);
});

test('admin audit viewer filters and links the CSV export', async () => {
  await admin.page.goto(`${base}/#/admin/audit`);
  await admin.page.waitForSelector('table >> text=token.created');
  await admin.page.fill('#audit-filters input[name=action]', 'login');
  await admin.page.click('#audit-filters button[type=submit]');
  await admin.page.waitForFunction(() => [...document.querySelectorAll('table tbody tr')].every(r => r.children[3]?.textContent === 'login'));
  const href = await admin.page.getAttribute('#audit-csv', 'href');
  expect(href.includes('action=login'), href);
  const csv = await admin.page.evaluate(async h => (await fetch(h)).text(), href);
  expect(csv.startsWith('id,at,actor') && csv.includes(',login,'), csv.slice(0, 200));
  // Times are shown in the browser's locale, not as raw ISO UTC.
  const first = await admin.page.textContent('table tbody tr td:first-child');
  expect(!/\d{4}-\d{2}-\d{2}T/.test(first), `raw time shown: ${first}`);
  await admin.page.screenshot({ path: shot('admin-audit.png'), fullPage: true });
});

test('admin page had no script errors', async () => {
  expect(admin.failures.length === 0, admin.failures.join('; '));
  await admin.context.close();
});

test('dr-zhao sees the clinic home, without administration or placeholders', async () => {
  zhao = await openAs('dr-zhao');
  const title = await zhao.page.textContent('#home-title');
  expect(title.includes('Clinic') && title.includes('Island Clinic'), `title: ${title}`);
  expect(await zhao.page.$('[data-cap="consult.request"]'), 'consult card missing');
  expect(await zhao.page.$('[data-cap="imaging.send"]'), 'imaging card missing');
  expect(await zhao.page.$('[data-cap="ecg.send"] a[href="#/ecgs"]'), 'ECG card missing');
  expect(!(await zhao.page.$('[data-cap="admin.users"]')), 'admin card shown to a clinician');
  expect(!(await zhao.page.$('nav >> text=Administration')), 'admin link shown to a clinician');
  // Parts not built yet have no card; the tokens are in the person's menu, not a card.
  for (const cap of ['training.watch', 'tokens.own']) {
    expect(!(await zhao.page.$(`[data-cap="${cap}"]`)), `card ${cap} shown`);
  }
  const navText = await zhao.page.textContent('nav');
  expect(!navText.includes('null') && !navText.includes('undefined'), `nav: ${navText}`);
  await zhao.page.screenshot({ path: shot('clinician-home.png'), fullPage: true });
});

test("the person's menu holds the API tokens and sign-out", async () => {
  await zhao.page.click('#whoami');
  await zhao.page.click('#menu-tokens');
  await zhao.page.waitForSelector('h1 >> text=My API tokens');
  expect(await zhao.page.isVisible('#logout') === false, 'the menu stays open after a choice');
});

test('dr-zhao cannot open the admin pages', async () => {
  for (const p of ['sites', 'users', 'devices', 'reading', 'audit']) {
    await zhao.page.goto(`${base}/#/admin/${p}`);
    await zhao.page.waitForSelector('#not-permitted');
  }
  const statuses = await zhao.page.evaluate(async () => Promise.all(
    ['/api/sites/island-clinic/users', '/api/sites/island-clinic/devices', '/api/sites/island-clinic/routing-rules', '/api/audit'].map(async u => (await fetch(u)).status)));
  expect(statuses.every(s => s === 403), `API answered ${statuses}`);
  await zhao.context.close();
});

test('a deep link survives the sign-in page', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${base}/#/consults/new`);
  await page.waitForSelector('#login-form');
  expect(page.url().includes('#/login?next='), `sign-in page at ${page.url()}`);
  await signIn(page, 'dr-zhao', 'ferry-demo', { deepLink: true });
  await page.waitForSelector('form#consult-form', { timeout: 15000 });
  await context.close();
});

test('no page scrolls sideways at 1280×800 or 800×1280, and every control has a label', async () => {
  for (const [user, pages] of [['admin', ['#/', '#/admin/sites', '#/admin/users', '#/admin/devices', '#/admin/reading', '#/admin/audit', '#/tokens']],
    ['dr-zhao', ['#/', '#/studies', '#/upload', '#/consults', '#/consults/new']]]) {
    for (const viewport of [{ width: 1280, height: 800 }, { width: 800, height: 1280 }]) {
      const s = await openAs(user, viewport);
      for (const hash of pages) {
        // Empty the page first, so the heading waited for is the new page's.
        await s.page.evaluate(() => document.getElementById('main').replaceChildren());
        const url = `${base}/${hash}`;
        if (s.page.url() === url) await s.page.reload(); else await s.page.goto(url);
        await s.page.waitForSelector('main h1');
        await s.page.waitForLoadState('networkidle');
        const wide = await s.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        expect(wide <= 0, `${user} ${hash} at ${viewport.width}×${viewport.height} scrolls sideways by ${wide}px`);
        const bare = await unlabelledControls(s.page);
        expect(bare.length === 0, `${user} ${hash}: controls without a label: ${bare.join(', ')}`);
      }
      await s.context.close();
    }
  }
});
