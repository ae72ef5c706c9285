// Real-browser checks of the web shell: sign-in, the home page per role, the admin pages, and
// that a clinician cannot open them. Run by tests/it/browser.rs with FERRY_URL set.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base, check, expect, fail, finish, launch, signIn } from './lib.mjs';

const shots = process.env.SHOTS_DIR || tmpdir();
const browser = await launch();

async function openAs(user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const failures = [];
  page.on('pageerror', e => failures.push(`page error: ${e.message}`));
  page.on('console', m => { if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) failures.push(m.text()); });
  await signIn(page, user);
  return { context, page, failures };
}

try {
  const admin = await openAs('admin');
  await check('admin sees the administration home', async () => {
    const title = await admin.page.textContent('#home-title');
    expect(title.includes('Site administration') && title.includes('City Hospital'), `title: ${title}`);
    for (const cap of ['admin.sites', 'admin.users', 'admin.devices', 'admin.audit']) {
      expect(await admin.page.$(`[data-cap="${cap}"]`), `card ${cap} missing`);
    }
    expect(!(await admin.page.$('[data-cap="consult.request"]')), 'admin should not see clinician cards');
    await admin.page.screenshot({ path: join(shots, 'admin-home.png'), fullPage: true });
  });
  await check('admin opens the sites page', async () => {
    await admin.page.click('nav >> text=Administration');
    await admin.page.waitForSelector('table >> text=Island Clinic');
    const rows = await admin.page.$$('table tbody tr');
    expect(rows.length === 4, `${rows.length} sites`);
  });
  await check('admin sees people of a site', async () => {
    await admin.page.goto(`${base}/#/admin/users`);
    await admin.page.waitForSelector('text=Add a person');
    await admin.page.waitForSelector('table >> text=trainer-sun');
    await admin.page.selectOption('select[name=site]', 'island-clinic');
    await admin.page.waitForSelector('table >> text=dr-zhao');
  });
  await check('admin creates a token and sees it once', async () => {
    await admin.page.goto(`${base}/#/admin/devices`);
    await admin.page.waitForSelector('text=Register a device');
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
  await check('admin audit viewer filters and links the CSV export', async () => {
    await admin.page.goto(`${base}/#/admin/audit`);
    await admin.page.waitForSelector('table >> text=token.created');
    await admin.page.fill('#audit-filters input[name=action]', 'login');
    await admin.page.click('#audit-filters button[type=submit]');
    await admin.page.waitForFunction(() => [...document.querySelectorAll('table tbody tr')].every(r => r.children[3]?.textContent === 'login'));
    const href = await admin.page.getAttribute('#audit-csv', 'href');
    expect(href.includes('action=login'), href);
    const csv = await admin.page.evaluate(async h => (await fetch(h)).text(), href);
    expect(csv.startsWith('id,at,actor') && csv.includes(',login,'), csv.slice(0, 200));
    await admin.page.screenshot({ path: join(shots, 'admin-audit.png'), fullPage: true });
  });
  await check('admin page had no script errors', async () => {
    expect(admin.failures.length === 0, admin.failures.join('; '));
  });
  await admin.context.close();

  const zhao = await openAs('dr-zhao');
  await check('dr-zhao sees the clinic home, without administration', async () => {
    const title = await zhao.page.textContent('#home-title');
    expect(title.includes('Clinic') && title.includes('Island Clinic'), `title: ${title}`);
    expect(await zhao.page.$('[data-cap="consult.request"]'), 'consult card missing');
    expect(await zhao.page.$('[data-cap="imaging.send"]'), 'imaging card missing');
    expect(!(await zhao.page.$('[data-cap="admin.users"]')), 'admin card shown to a clinician');
    expect(!(await zhao.page.$('nav >> text=Administration')), 'admin link shown to a clinician');
    const navText = await zhao.page.textContent('nav');
    expect(!navText.includes('null') && !navText.includes('undefined'), `nav: ${navText}`);
    await zhao.page.screenshot({ path: join(shots, 'clinician-home.png'), fullPage: true });
  });
  await check('dr-zhao cannot open the admin pages', async () => {
    for (const p of ['sites', 'users', 'devices', 'audit']) {
      await zhao.page.goto(`${base}/#/admin/${p}`);
      await zhao.page.waitForSelector('#not-permitted');
    }
    const statuses = await zhao.page.evaluate(async () => Promise.all(
      ['/api/sites/island-clinic/users', '/api/sites/island-clinic/devices', '/api/audit'].map(async u => (await fetch(u)).status)));
    expect(statuses.every(s => s === 403), `API answered ${statuses}`);
  });
  await zhao.context.close();
} catch (e) {
  fail(e);
} finally {
  await browser.close();
}
finish();
