// Real-browser check of the upload page: a clinician sends a multi-chunk DICOM file; the
// connection drops once mid-upload (one PATCH aborted); the page says it waits for the link and
// tries again by itself, resumes, and links the stored study, which the study list shows.
// Run by tests/it/browser.rs with FERRY_URL, UPLOAD_FILE and UPLOAD_STUDY set.
import test, { after, before } from 'node:test';
import { base, expect, launch, signIn } from './lib.mjs';

let browser, page;
let patches = 0, aborted = 0;
before(async () => {
  browser = await launch();
  page = await (await browser.newContext({ locale: 'en-US' })).newPage();
  await page.route('**/api/uploads/*', async route => {
    if (route.request().method() === 'PATCH') {
      patches++;
      if (patches === 2) { aborted++; return route.abort('connectionreset'); }
    }
    return route.continue();
  });
  await signIn(page, 'dr-zhao');
});
after(async () => { await browser?.close(); });

test('the upload page sends a file through a dropped connection', async () => {
  await page.goto(`${base}/#/studies`);
  await page.click('#upload-link');
  await page.waitForSelector('#upload-drop');
  // Every text the result cell shows on the way.
  await page.evaluate(() => {
    window.uploadTexts = [];
    new MutationObserver(() => {
      const cell = document.querySelector('td.upload-state');
      if (cell && cell.textContent !== window.uploadTexts.at(-1)) window.uploadTexts.push(cell.textContent);
    }).observe(document.getElementById('main'), { subtree: true, childList: true, characterData: true });
  });
  await page.setInputFiles('#upload-files', process.env.UPLOAD_FILE);
  await page.waitForSelector('td.upload-state[data-state="stored"]', { timeout: 60000 });
  const texts = await page.evaluate(() => window.uploadTexts);
  expect(texts.some(x => /^Link down — trying again in \d+ s; [\d.]+ of [\d.]+ MB sent$/.test(x)), `no waiting text among ${JSON.stringify(texts)}`);
  const text = await page.textContent('td.upload-state');
  expect(text.startsWith('Stored: 1 image.'), `result text: ${text}`);
  const study = process.env.UPLOAD_STUDY;
  expect(await page.$(`td.upload-state a.open-viewer[href*="${study}"]`), 'no viewer link to the study');
  const total = await page.$eval('#upload-total', p => p.value);
  expect(total === 1, `total progress ${total}`);
  expect(aborted === 1 && patches >= 4, `patches ${patches}, aborted ${aborted}`);
});

test('the result links to the study in the list', async () => {
  await page.click('td.upload-state a.in-list');
  await page.waitForSelector(`tr[data-study="${process.env.UPLOAD_STUDY}"]`, { timeout: 20000 });
  const rows = await page.$$('#study-list tbody tr');
  expect(rows.length === 1, `${rows.length} rows for one study`);
});
