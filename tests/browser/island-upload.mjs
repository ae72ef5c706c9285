// The upload page over an island link (run inside the clinic's network namespace by
// tests/it/island.rs, which shapes the link and cuts it twice while this runs): dr-zhao sends
// a folder's worth of slices; the page waits out each cut by itself, says so, and stores them
// all. Env: FERRY_URL, UPLOAD_FILES (paths separated by newlines), UPLOAD_COUNT.
import test, { after, before } from 'node:test';
import { base, expect, launch, logTrouble, signInPatiently } from './lib.mjs';

/** The page's chunk (web/dist/lib/tus.js CHUNK). */
const CHUNK = 1 << 20;

let browser, page;
before(async () => {
  browser = await launch();
  page = await (await browser.newContext({ locale: 'en-US' })).newPage();
  logTrouble(page);
  await signInPatiently(page, 'dr-zhao');
});
after(async () => { await browser?.close(); });

test('every slice arrives over the cut link without anyone pressing anything', { timeout: 900000 }, async () => {
  const files = process.env.UPLOAD_FILES.split('\n').filter(Boolean);
  await page.goto(`${base}/#/upload`);
  await page.waitForSelector('#upload-drop');
  await page.evaluate(() => {
    window.uploadTexts = new Set();
    new MutationObserver(() => {
      for (const cell of document.querySelectorAll('td.upload-state')) window.uploadTexts.add(cell.textContent);
    }).observe(document.getElementById('main'), { subtree: true, childList: true, characterData: true });
  });
  await page.setInputFiles('#upload-files', files);
  await page.waitForFunction(n => document.querySelectorAll('td.upload-state[data-state="stored"]').length === n,
    files.length, { timeout: 880000, polling: 1000 });
  // A 20 s cut is often bridged by TCP itself (the request stalls, then goes on); when it is
  // not, the page says what it waits for (upload.mjs checks those words on a dropped request).
  const texts = [...await page.evaluate(() => [...window.uploadTexts])];
  const waited = texts.filter(x => /trying again/.test(x)).length;
  const stored = await page.$$('td.upload-state a.open-viewer');
  expect(stored.length === files.length, `${stored.length} of ${files.length} linked to the study`);
  // Each cut costs at most the one chunk that was on its way (the page's chunk is 1 MiB), and
  // there were two cuts.
  const resent = (await page.$$eval('tr[data-file]', rows => rows.map(r => r.dataset.resent || '')))
    .flatMap(x => x.split(',').filter(Boolean).map(Number));
  expect(resent.every(n => n <= CHUNK), `a cut re-sent more than one chunk: ${resent}`);
  expect(resent.length <= 2, `more interruptions re-sent bytes than there were cuts: ${resent}`);
  const again = resent.reduce((a, b) => a + b, 0);
  console.log(`# island-upload: ${files.length} files stored; ${waited} waiting messages shown; ${again} bytes offered again (${resent.join(', ') || 'none'})`);
});
