// Real-browser check of the upload page: a clinician sends a multi-chunk DICOM file; the
// connection drops once mid-upload (one PATCH aborted); the page resumes and the study appears.
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
  await page.setInputFiles('#upload-files', process.env.UPLOAD_FILE);
  await page.waitForSelector('td.upload-state[data-state="stored"]', { timeout: 60000 });
  expect((await page.textContent('td.upload-state')) === 'stored', 'result text');
  const total = await page.$eval('#upload-total', p => p.value);
  expect(total === 1, `total progress ${total}`);
  expect(aborted === 1 && patches >= 4, `patches ${patches}, aborted ${aborted}`);
});

test('the study is in the list', async () => {
  await page.goto(`${base}/#/studies`);
  await page.waitForSelector(`tr[data-study="${process.env.UPLOAD_STUDY}"]`, { timeout: 20000 });
});
