// Real-browser check of the Chinese interface: each demo role signs in with a Chinese browser
// (locale zh-CN) and visits every page it can reach; on each, no visible text (outside data
// marked translate="no" or data-raw) may be an English message of the catalogue — the check
// walks the catalogue's keys, so a string left in English is caught wherever it appears. Then
// the language switch in the header turns the page English, and the choice survives a reload.
// Run by tests/it/browser.rs with FERRY_URL set.
import test, { after, before } from 'node:test';
import en from '../../web/dist/i18n/en.js';
import zh from '../../web/dist/i18n/zh-CN.js';
import { englishOnPage, exact, patterns } from './catalogue-check.mjs';
import { base, expect, launchMedia, shot, signIn, unlabelledControls } from './lib.mjs';

const T = 20000;

let browser;
const pageErrors = [];
before(async () => { browser = await launchMedia(); });
after(async () => { await browser?.close(); });

async function open(locale = 'zh-CN') {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 800 }, permissions: ['camera', 'microphone'] });
  const page = await context.newPage();
  page.on('pageerror', e => pageErrors.push(e.message));
  return { context, page };
}

// Visits `hash`, waits for `ready` (a selector) and the network to settle, and fails on any
// English message shown.
async function noEnglish(page, hash, ready = 'main h1') {
  if (hash !== null) await page.goto(`${base}/${hash}`);
  await page.waitForSelector(ready, { timeout: T });
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.waitForTimeout(300);
  const lang = await page.evaluate(() => document.documentElement.lang);
  expect(lang === 'zh-CN', `${hash}: <html lang="${lang}">`);
  const found = await page.evaluate(englishOnPage, [[...exact], patterns]);
  expect(found.length === 0, `${hash}: English shown in the Chinese interface:\n  ${found.join('\n  ')}`);
  const bare = await unlabelledControls(page);
  expect(bare.length === 0, `${hash}: controls without a label: ${bare.join(', ')}`);
}

test('the sign-in page and a refused sign-in are Chinese', async () => {
  const { context, page } = await open();
  await page.goto(`${base}/#/login`);
  await noEnglish(page, null, '#login-form');
  await page.fill('input[name=username]', 'nobody-here');
  await page.fill('input[name=password]', 'wrong');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error[data-code]', { timeout: T });
  const msg = await page.textContent('.error .error-message');
  expect(msg === zh['error.invalid_credentials'], `error shown: ${msg}`);
  await noEnglish(page, null, '#login-form');
  await context.close();
});

const ROLES = {
  admin: ['#/', '#/studies', '#/tokens', '#/admin/sites', '#/admin/users', '#/admin/devices', '#/admin/reading', '#/admin/audit', '#/nowhere'],
  'dr-zhao': ['#/', '#/studies', '#/upload', '#/consults', '#/consults/new', '#/tokens', '#/readings'],
  'dr-li': ['#/', '#/studies', '#/consults', '#/tokens', '#/readings'],
  'dr-chen': ['#/', '#/studies', '#/tokens', '#/admin/sites', '#/readings'],
  'trainer-sun': ['#/', '#/studies', '#/tokens'],
};

for (const [user, pages] of Object.entries(ROLES)) {
  test(`${user}: every page reachable is Chinese`, async () => {
    const { context, page } = await open();
    await signIn(page, user);
    for (const hash of pages) await noEnglish(page, hash);
    if (user === 'admin') {
      // The devices page with a person's tokens, and a new token's notice.
      await page.goto(`${base}/#/admin/devices`);
      await page.selectOption('select[name=site]', 'island-clinic');
      await page.waitForSelector('select[name=user] option[value="dr-zhao"]', { state: 'attached', timeout: T });
      await page.selectOption('select[name=user]', 'dr-zhao');
      await page.waitForSelector('input[name=label]', { timeout: T });
      await page.fill('input[name=label]', 'i18n check');
      await page.click('form.box:has(input[name=label]) button[type=submit]');
      await page.waitForSelector('#new-token', { timeout: T });
      await noEnglish(page, null);
      await page.goto(`${base}/#/`);
      await page.click('#whoami');
      await noEnglish(page, null, '#menu-tokens');
    }
    if (user === 'dr-zhao') await page.screenshot({ path: shot('zh-clinician-home.png'), fullPage: true }).catch(() => {});
    await context.close();
  });
}

test('a consult and its call are Chinese on both sides', async () => {
  const zhao = await open(), li = await open();
  await signIn(zhao.page, 'dr-zhao');
  await signIn(li.page, 'dr-li');
  await zhao.page.goto(`${base}/#/consults/new`);
  await zhao.page.waitForSelector('form#consult-form', { timeout: T });
  await zhao.page.selectOption('select[name=specialty]', 'radiology');
  await zhao.page.selectOption('select[name=urgency]', 'emergency');
  await zhao.page.fill('textarea[name=summary]', `i18n check ${Date.now()}`);
  await zhao.page.click('#consult-form button[type=submit]');
  await zhao.page.waitForSelector('#consult[data-state="requested"]', { timeout: T });
  const id = decodeURIComponent(/#\/consults\/([^/]+)$/.exec(zhao.page.url())[1]);
  await noEnglish(zhao.page, null, '#consult');
  await noEnglish(li.page, '#/consults', `tr[data-consult="${id}"]`);
  await noEnglish(li.page, `#/consults/${encodeURIComponent(id)}`, '#consult[data-state="requested"]');
  await li.page.click('#accept');
  await li.page.waitForSelector('#consult[data-state="accepted"]', { timeout: T });
  await noEnglish(li.page, null, 'a#join-call');
  await zhao.page.waitForSelector('#consult[data-state="accepted"]', { timeout: T });
  await noEnglish(zhao.page, null, '#consult');
  // The call page: preview, then joined and waiting for the other side.
  await noEnglish(zhao.page, `#/call/${encodeURIComponent(id)}`, '#join:not([disabled])');
  await zhao.page.click('#join');
  await zhao.page.waitForSelector('#hangup:not([hidden])', { timeout: T });
  await noEnglish(zhao.page, null, '#call-status');
  await zhao.page.screenshot({ path: shot('zh-call.png') }).catch(() => {});
  await zhao.page.click('#hangup');
  await zhao.page.waitForSelector('#consult', { timeout: T });
  await zhao.context.close();
  await li.context.close();
});

test('the language switch turns the page English, and the choice is remembered', async () => {
  const { context, page } = await open();
  await signIn(page, 'dr-zhao');
  expect(await page.evaluate(() => document.documentElement.lang) === 'zh-CN', 'starts in Chinese');
  const zhTitle = await page.textContent('#home-title');
  expect(zhTitle.includes(zh['role_title.clinician']), `Chinese title: ${zhTitle}`);
  await page.selectOption('#lang', 'en');
  await page.waitForFunction(() => document.documentElement.lang === 'en');
  await page.waitForFunction(t => document.querySelector('#home-title')?.textContent.includes(t), en['role_title.clinician']);
  expect((await page.textContent('nav')).includes(en['nav.studies']), 'nav not English');
  await page.reload();
  await page.waitForSelector('#home-title', { timeout: T });
  expect(await page.evaluate(() => document.documentElement.lang) === 'en', 'not English after a reload');
  expect((await page.textContent('#home-title')).includes(en['role_title.clinician']), 'title not English after a reload');
  expect(await page.evaluate(() => localStorage.getItem('i18nextLng')) === 'en-US', 'the viewer is not told the language');
  await page.selectOption('#lang', 'zh-CN');
  await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  await noEnglish(page, null, '#home-title');
  await context.close();
});

test('no script errors', () => {
  expect(pageErrors.length === 0, pageErrors.slice(0, 5).join('; '));
});
