// The upload page over an island link (run inside the clinic's network namespace by
// tests/it/island.rs, which shapes the link and cuts it twice while this runs): dr-zhao sends
// a folder's worth of slices; the page waits out each cut by itself, says so, and stores them
// all. Env: FERRY_URL, UPLOAD_FILES (paths separated by newlines), UPLOAD_COUNT.
import test, { after, before } from 'node:test';
import { base, expect, launch, signIn } from './lib.mjs';

let browser, page;
before(async () => {
  browser = await launch();
  page = await (await browser.newContext({ locale: 'en-US' })).newPage();
  await signIn(page, 'dr-zhao');
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
  console.log(`# island-upload: ${files.length} files stored; ${waited} waiting messages shown`);
});
