// Real-browser check of the upload page: a clinician sends a multi-chunk DICOM file; the
// connection drops once mid-upload (one PATCH aborted); the page resumes and the study appears.
// Run by tests/it/browser.rs with FERRY_URL, UPLOAD_FILE and UPLOAD_STUDY set.
import { chromium } from 'playwright-core';

const base = process.env.FERRY_URL;
let passed = 0, failed = 0;
async function check(name, fn) {
  try { await fn(); passed++; console.log(`ok   ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}: ${e.message}`); }
}
function expect(cond, msg) { if (!cond) throw new Error(msg); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await (await browser.newContext()).newPage();
  let patches = 0, aborted = 0;
  await page.route('**/api/uploads/*', async route => {
    if (route.request().method() === 'PATCH') {
      patches++;
      if (patches === 2) { aborted++; return route.abort('connectionreset'); }
    }
    return route.continue();
  });
  await page.goto(`${base}/#/login`);
  await page.fill('input[name=username]', 'dr-zhao');
  await page.fill('input[name=password]', 'ferry-demo');
  await page.click('button[type=submit]');
  await page.waitForSelector('#home-title');
  await check('the upload page sends a file through a dropped connection', async () => {
    await page.goto(`${base}/#/studies`);
    await page.click('#upload-link');
    await page.waitForSelector('#upload-drop');
    await page.setInputFiles('#upload-files', process.env.UPLOAD_FILE);
    await page.waitForSelector('td.upload-state:text-is("stored")', { timeout: 60000 });
    const total = await page.$eval('#upload-total', p => p.value);
    expect(total === 1, `total progress ${total}`);
    expect(aborted === 1 && patches >= 4, `patches ${patches}, aborted ${aborted}`);
  });
  await check('the study is in the list', async () => {
    await page.goto(`${base}/#/studies`);
    await page.waitForSelector(`tr[data-study="${process.env.UPLOAD_STUDY}"]`, { timeout: 20000 });
  });
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e.message}`);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
