// Bytes on the wire for a person on a thin link: the Studies page visited twice (the second
// visit is what a clinic pays every day), and a study opened in the viewer for the first time.
// Counts what Chromium received from the network (encoded, i.e. compressed, bytes with
// headers), not what the pages hold. Run by scripts/bench-web; prints one line per figure.
//   FERRY_URL=… BYTES_STUDY=<Study Instance UID> node bytes.mjs
import { base, launch, signIn } from './lib.mjs';

const study = process.env.BYTES_STUDY;
const browser = await launch();
const context = await browser.newContext();
const page = await context.newPage();
const cdp = await context.newCDPSession(page);
await cdp.send('Network.enable');
let received = 0;
let decoded = 0;
const sizes = new Map();
cdp.on('Network.responseReceived', e => { sizes.set(e.requestId, e.response.url); });
cdp.on('Network.dataReceived', e => { decoded += e.dataLength; });
cdp.on('Network.loadingFinished', e => { received += e.encodedDataLength; });
const measure = async (label, fn) => {
  received = 0; decoded = 0;
  await fn();
  // Let late requests finish.
  await page.waitForLoadState('networkidle', { timeout: 60000 }).catch(() => {});
  console.log(`${label}: ${received} bytes on the wire (${decoded} bytes of content)`);
  return received;
};

await measure('sign-in page and home, first visit (cold)', () => signIn(page, 'dr-zhao'));
await measure('studies page, first visit', async () => {
  await page.goto(`${base}/#/studies`);
  await page.reload();
  await page.waitForSelector('table, .empty, main', { timeout: 15000 });
});
await measure('studies page, repeat visit', async () => {
  await page.reload();
  await page.waitForSelector('table, .empty, main', { timeout: 15000 });
});
if (study) {
  await measure('viewer, first visit with a study', async () => {
    await page.goto(`${base}/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(study)}`);
    await page.waitForSelector('canvas', { timeout: 60000 });
    await page.waitForTimeout(3000);
  });
  await measure('viewer, repeat visit', async () => {
    await page.reload();
    await page.waitForSelector('canvas', { timeout: 60000 });
    await page.waitForTimeout(3000);
  });
}
await browser.close();
