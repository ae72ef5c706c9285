// Real-browser check of the OHIF viewer served by Ferry: a clinician opens each study from
// Ferry's study list in OHIF; the viewport must show non-blank pixels and no request may fail.
// Run by tests/it/browser.rs with FERRY_URL and FERRY_STUDIES (comma-separated UIDs) set.
import test, { after, before } from 'node:test';
import { base, expect, launch, shot, signIn } from './lib.mjs';

const studies = (process.env.FERRY_STUDIES || '').split(',').filter(Boolean);
const ok = new Set(), bad = [], aborted = [];
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

for (const uid of studies) {
  test(`study ${uid} opens in OHIF with pixels`, async () => {
    // A fresh browser context per study: each opens as a person would, from the study list.
    const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      page.on('response', r => { if (r.status() >= 400) bad.push(`${r.status()} ${r.url()}`); else ok.add(r.url()); });
      page.on('requestfailed', r => aborted.push(`${r.failure()?.errorText} ${r.url()}`));
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
      await page.screenshot({ path: shot(`ohif-${uid.slice(-12)}.png`) });
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
