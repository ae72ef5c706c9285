// For scripts/bench-ecg: one ECG in the viewer, as a reader on a thin link pays for it — the
// bytes Chromium received (encoded, with headers) on the first visit and when the app is
// already cached — and the time from the last of the ECG's data arriving (the record and its
// waveforms, by the Resource Timing of each response) to the first animation frame after the
// 12 leads were drawn (the viewer publishes window.__ecgView once it has drawn), median of 5.
//   FERRY_URL=… ECG_ID=… node ecg-bench.mjs
import { base, launch, signIn } from './lib.mjs';

const id = process.env.ECG_ID;
const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
await context.addInitScript(() => {
  const w = /** @type {any} */ (window);
  const tick = () => {
    if (w.__ecgView && !w.__paintedAt) { w.__paintedAt = performance.now(); return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
});
const page = await context.newPage();
const cdp = await context.newCDPSession(page);
await cdp.send('Network.enable');
let received = 0;
cdp.on('Network.loadingFinished', e => { received += e.encodedDataLength; });
await signIn(page, 'dr-zhao');
const url = `${base}/#/ecgs/${encodeURIComponent(id)}`;
const open = async reload => {
  received = 0;
  if (reload) await page.reload(); else await page.goto(url);
  await page.waitForFunction(() => /** @type {any} */ (window).__paintedAt, null, { timeout: 30000 });
  await page.waitForLoadState('networkidle', { timeout: 30000 }).catch(() => {});
  return page.evaluate(() => {
    const data = performance.getEntriesByType('resource').filter(r => r.name.includes('/api/ecgs/'));
    const arrived = Math.max(...data.map(r => /** @type {PerformanceResourceTiming} */ (r).responseEnd));
    return { ms: /** @type {any} */ (window).__paintedAt - arrived, requests: data.length };
  });
};
const first = await open(false);
const firstBytes = received;
const times = [first.ms];
let cachedBytes = 0;
for (let i = 0; i < 4; i++) {
  times.push((await open(true)).ms);
  cachedBytes = received;
}
times.sort((a, b) => a - b);
console.log(`viewer, first visit after sign-in: ${firstBytes} bytes on the wire (the viewer's modules and the ECG)`);
console.log(`viewer, app cached: ${cachedBytes} bytes on the wire for the ECG (${first.requests} API requests)`);
console.log(`data arrival to first frame with the 12 leads: median ${times[2].toFixed(0)} ms (${times.map(t => t.toFixed(0)).join(', ')})`);
await browser.close();
