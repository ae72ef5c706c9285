// Real-browser check of the OHIF viewer served by Ferry: a clinician opens each study from
// Ferry's study list in OHIF (in English, and the first again in Chinese on a tablet); the viewport must show non-blank pixels, no request may fail, no
// console error may appear, no asset may be answered with an HTML page, no first-run tour may
// cover the image, and Ferry's name leads back to Ferry. A study of another site gets Ferry's
// own message; a signed-out link to a study lands on that study after sign-in.
// Run by tests/it/browser.rs with FERRY_URL and FERRY_STUDIES (comma-separated UIDs) set.
import test, { after, before } from 'node:test';
import { base, expect, launch, shot, signIn } from './lib.mjs';

const studies = (process.env.FERRY_STUDIES || '').split(',').filter(Boolean);
const ok = new Set(), bad = [], aborted = [], consoleErrors = [], htmlAssets = [];
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// Every study in English on a 1,280 × 800 screen; the first also in Chinese on a 10-inch tablet
// in portrait (800 × 1,280), where OHIF must open in Chinese too.
const runs = studies.map(uid => ({ uid, locale: 'en-US', width: 1280, height: 800 }));
if (studies.length) runs.push({ uid: studies[0], locale: 'zh-CN', width: 800, height: 1280 });

for (const { uid, locale, width, height } of runs) {
  test(`study ${uid} opens in OHIF with pixels (${locale}, ${width}×${height})`, async () => {
    // A fresh browser context per study: each opens as a person would, from the study list.
    const context = await browser.newContext({ locale, viewport: { width, height } });
    try {
      const page = await context.newPage();
      page.on('response', r => { if (r.status() >= 400) bad.push(`${r.status()} ${r.url()}`); else ok.add(r.url()); });
      page.on('requestfailed', r => aborted.push(`${r.failure()?.errorText} ${r.url()}`));
      page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
      page.on('response', r => {
        const type = r.headers()['content-type'] || '';
        const asset = /\.(js|css|woff2?|ttf|wasm|svg|png|json)(\?|$)/.test(new URL(r.url()).pathname);
        if (asset && type.startsWith('text/html')) htmlAssets.push(r.url());
      });
      await signIn(page, 'dr-zhao');
      await page.goto(`${base}/#/studies`);
      await page.waitForSelector(`tr[data-study="${uid}"] a.open-viewer`, { timeout: 20000 });
      await page.click(`tr[data-study="${uid}"] a.open-viewer`);
      await page.waitForURL(/\/viewer\/viewer\?/);
      // Wait until the viewport canvas holds a drawn image.
      const lit = await page.waitForFunction(() => {
        const c = document.querySelector('canvas.cornerstone-canvas');
        if (!c || !c.width) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 8 || d[i + 1] > 8 || d[i + 2] > 8) n++;
        return n > 500 ? n : 0;
      }, null, { timeout: 150000, polling: 500 });
      const n = await lit.jsonValue();
      expect(n > 500, `only ${n} lit pixels`);
      // No tour over the image; Ferry's name in the header leads back to Ferry's studies.
      expect(!(await page.$('.shepherd-element')), 'a first-run tour covers the viewer');
      const back = await page.$('a[href="/#/studies"]');
      expect(back && (await back.textContent()).includes('Ferry'), 'no way back to Ferry');
      if (locale === 'zh-CN') {
        // Ferry handed its language to OHIF, and OHIF speaks it (its own Chinese catalogue).
        expect(new URL(page.url()).searchParams.get('lng') === 'zh', `viewer opened without lng=zh: ${page.url()}`);
        await page.waitForFunction(() => /[\u4e00-\u9fff]/.test(document.body.innerText), null, { timeout: 20000 })
          .catch(() => expect(false, 'OHIF shows no Chinese text'));
        const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(wide <= 1, `the viewer scrolls sideways by ${wide} px at ${width}×${height}`);
      }
      await page.screenshot({ path: shot(`ohif-${uid.slice(-12)}-${locale}.png`) });
    } finally {
      await context.close();
    }
  });
}

test('no request failed', () => {
  // Cornerstone cancels prefetches it no longer needs; a cancelled request is a failure only
  // if that URL never succeeded.
  const unanswered = aborted.filter(a => !ok.has(a.split(' ').slice(1).join(' ')));
  expect(bad.length === 0, `HTTP errors: ${bad.slice(0, 5).join('; ')}`);
  expect(unanswered.length === 0, `failed requests: ${unanswered.slice(0, 5).join('; ')}`);
});

test('no console error and no asset answered with a page', () => {
  expect(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
  expect(htmlAssets.length === 0, `assets answered with HTML: ${htmlAssets.slice(0, 5).join(' ')}`);
});

const other = process.env.FERRY_OTHER_STUDY;
if (other) {
  test('a study of another site gets Ferry\'s message, not the viewer', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    try {
      const page = await context.newPage();
      await signIn(page, 'dr-zhao');
      await page.goto(`${base}/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(other)}`);
      await page.waitForSelector('#study-unavailable', { timeout: 15000 });
      expect(page.url().includes('#/studies'), `landed on ${page.url()}`);
    } finally {
      await context.close();
    }
  });
}

if (studies.length) {
  test('a signed-out link to a study lands on that study after sign-in', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    try {
      const page = await context.newPage();
      const link = `/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(studies[0])}`;
      await page.goto(`${base}${link}`);
      await page.waitForSelector('input[name=username]', { timeout: 15000 });
      await signIn(page, 'dr-zhao', 'ferry-demo', { deepLink: true });
      await page.waitForURL(u => u.pathname === '/viewer/viewer' && u.search.includes(studies[0]), { timeout: 20000 });
      await page.waitForSelector('canvas.cornerstone-canvas', { timeout: 60000 });
    } finally {
      await context.close();
    }
  });
}
