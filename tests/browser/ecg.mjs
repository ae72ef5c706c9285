// Real-browser check of the ECG pages with pydicom's waveform_ecg.dcm (12 leads, 1000 Hz,
// 10 s; the device's RR interval 982 ms), posted by the caller as dr-zhao: the list shows it
// and opens it, and so does its study in the study list; the viewer draws 12 labelled leads
// and the lead II rhythm strip on the grid, at true size with a backing store of device
// pixels; a caliper dragged between two consecutive R peaks (found here in the waveform from
// the API) reads 982 ms ± 10 and its keys move an end by 1 px (Shift: 10); doubling the gain
// doubles a trace's height on screen; 12×1 shows 10 s of every lead; the calibration is kept
// and used; no console error anywhere; in Chinese, no string of the English catalogue.
// What is drawn is read from the page's `window.__ecgView` (no screenshot comparison).
// Run by tests/it/browser.rs with FERRY_URL and ECG_ID (the record's id) set.
import test, { after, before } from 'node:test';
import { catalogueArgs, englishOnPage } from './catalogue-check.mjs';
import { base, expect, launch, shot, signIn } from './lib.mjs';

const id = process.env.ECG_ID;
if (!id) { console.error('ECG_ID is not set'); process.exit(2); }
const T = 20000;
const STD = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
const problems = [];

let browser, context, page;
before(async () => {
  browser = await launch();
  // Two device pixels per CSS pixel: the backing store must follow.
  context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 800 }, deviceScaleFactor: 2 });
  page = await watched(context);
  await signIn(page, 'dr-zhao');
});
after(async () => { await browser?.close(); });

/** A page whose console errors, script errors and failed requests are problems. */
async function watched(ctx) {
  const p = await ctx.newPage();
  p.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  p.on('pageerror', e => problems.push(`script error: ${e.message}`));
  p.on('requestfailed', r => { if (!/ERR_ABORTED/.test(r.failure()?.errorText || '')) problems.push(`request failed: ${r.url()}`); });
  p.on('response', r => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  return p;
}

const view = p => p.evaluate(() => {
  const v = window.__ecgView;
  return v ? JSON.parse(JSON.stringify(v)) : null;
});

async function openViewer(p = page) {
  // A fresh load: the viewer starts at its defaults (3×4 + strip, 10 mm/mV, 25 mm/s).
  await p.goto('about:blank');
  await p.goto(`${base}/#/ecgs/${encodeURIComponent(id)}`);
  await p.waitForFunction(() => window.__ecgView && window.__ecgView.boxes.length > 0, null, { timeout: T });
}

/** Waits until the page has drawn with `want` (a subset of the view's fields). */
async function drawn(want, p = page) {
  await p.waitForFunction(w => window.__ecgView && Object.entries(w).every(([k, v]) => window.__ecgView[k] === v), want, { timeout: T });
  return view(p);
}

test('the ECG list shows the record and opens it in the viewer', async () => {
  await page.goto(`${base}/#/ecgs`);
  await page.waitForSelector(`tr[data-ecg="${id}"] a.open-ecg`, { timeout: T });
  const row = await page.textContent(`tr[data-ecg="${id}"]`);
  expect(row.includes('DICOM') && /QRS 75 ms/.test(row) && /61\/min/.test(row), `row: ${row}`);
  await page.click(`tr[data-ecg="${id}"] a.open-ecg`);
  await page.waitForFunction(() => window.__ecgView, null, { timeout: T });
  expect(page.url().endsWith(`#/ecgs/${id}`), `at ${page.url()}`);
});

test("the study list's ECG study opens the same record", async () => {
  const rec = await page.evaluate(async i => (await fetch(`/api/ecgs/${i}`)).json(), id);
  await page.goto(`${base}/#/studies`);
  await page.waitForSelector(`tr[data-study="${rec.study_uid}"] a.open-ecg`, { timeout: T });
  await page.click(`tr[data-study="${rec.study_uid}"] a.open-ecg`);
  await page.waitForFunction(i => location.hash === `#/ecgs/${i}` && window.__ecgView, id, { timeout: T });
});

test('the viewer draws 12 labelled leads and the lead II rhythm strip on the grid, at true size, in device pixels', async () => {
  await openViewer();
  const v = await drawn({ layout: '3x4+1', gain: 10, speed: 25 });
  const grid = v.boxes.filter(b => b.row < 3);
  expect(grid.length === 12 && STD.every(l => grid.some(b => b.lead === l)), `leads: ${grid.map(b => b.lead)}`);
  expect(v.labels.length === 13 && STD.every(l => v.labels.includes(l)), `labels: ${v.labels}`);
  for (const b of grid) expect(Math.abs(b.seconds - 2.5) < 0.01 && Math.abs(b.w - 62.5) < 1e-6, `${b.lead}: ${b.seconds} s, ${b.w} mm`);
  const strip = v.boxes.find(b => b.row === 3);
  expect(strip && strip.lead === 'II' && Math.abs(strip.seconds - 10) < 0.01 && strip.w === 250, `strip: ${JSON.stringify(strip)}`);
  expect(v.grid.minorShown && v.grid.minorMm === 1 && v.grid.majorMm === 5 && v.grid.lines > 100, `grid: ${JSON.stringify(v.grid)}`);
  // Not calibrated: 96 px per inch, and zoom 1 is true size.
  expect(Math.abs(v.pxPerMm - 96 / 25.4) < 1e-9 && v.zoom === 1 && !v.calibrated, `scale: ${v.pxPerMm} × ${v.zoom}`);
  expect(v.dpr === 2 && v.canvas.width === Math.round(v.canvas.cssWidth * 2) && v.canvas.height === Math.round(v.canvas.cssHeight * 2),
    `backing ${v.canvas.width}×${v.canvas.height} for ${v.canvas.cssWidth}×${v.canvas.cssHeight} CSS px`);
  // Ink on the paper: dark trace pixels and the pink grid's.
  const ink = await page.evaluate(() => {
    const c = document.getElementById('ecg-trace');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let dark = 0, pink = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] < 80 && d[i + 1] < 80 && d[i + 2] < 80) dark++;
      else if (d[i] > 200 && d[i + 1] < 200 && d[i + 2] < 200) pink++;
    }
    return { dark, pink };
  });
  expect(ink.dark > 5000 && ink.pink > 20000, `ink: ${JSON.stringify(ink)}`);
  const stage = await page.$eval('#ecg-stage', el => ({ ...el.dataset }));
  expect(stage.leads.split(',').length === 13 && stage.layout === '3x4+1', `stage: ${JSON.stringify(stage)}`);
  await page.screenshot({ path: shot('ecg-viewer.png') });
});

test('a caliper across one RR interval reads 982 ms ± 10; keys move an end by 1 px, with Shift by 10', async () => {
  await openViewer();
  // R peaks of lead II from the API: local maxima above 60% of the lead's highest value, at
  // least 250 ms apart; of the consecutive pairs, the one with the median interval.
  const peaks = await page.evaluate(async i => {
    const w = await (await fetch(`/api/ecgs/${i}/waveform?group=rhythm`)).json();
    const uv = w.leads.find(l => l.name === 'II').uv;
    const top = Math.max(...uv), gap = Math.round(0.25 * w.sampling_hz);
    const out = [];
    for (let k = 1; k < uv.length - 1; k++) {
      if (uv[k] < 0.6 * top || uv[k] < uv[k - 1] || uv[k] < uv[k + 1]) continue;
      if (out.length && k - out[out.length - 1] < gap) { if (uv[k] > uv[out[out.length - 1]]) out[out.length - 1] = k; continue; }
      out.push(k);
    }
    return { hz: w.sampling_hz, at: out };
  }, id);
  expect(peaks.at.length >= 8, `R peaks: ${peaks.at}`);
  const pairs = peaks.at.slice(1).map((p, k) => [peaks.at[k], p]).sort((a, b) => (a[1] - a[0]) - (b[1] - b[0]));
  // At 50 mm/s a pixel is about 5 ms; the pair must lie in view.
  await page.selectOption('#ecg-speed', '50');
  let v = await drawn({ speed: 50 });
  const strip = v.boxes.findIndex(b => b.row === 3);
  const stageBox = await (await page.$('#ecg-stage')).boundingBox();
  const inView = q => q.x > stageBox.x + 2 && q.x < stageBox.x + stageBox.width - 2 && q.y > stageBox.y && q.y < stageBox.y + stageBox.height;
  const median = pairs[Math.floor(pairs.length / 2)];
  const candidates = [median, ...pairs];
  let from, to, pair;
  for (const pr of candidates) {
    [from, to] = await page.evaluate(([i, a, b]) => [window.__ecgView.sampleToClient(i, a), window.__ecgView.sampleToClient(i, b)], [strip, pr[0], pr[1]]);
    if (inView(from) && inView(to)) { pair = pr; break; }
  }
  expect(pair, 'no pair of R peaks in view');
  const expected = (pair[1] - pair[0]) / peaks.hz * 1000;
  await page.click('#caliper-measure');
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move((from.x + to.x) / 2, to.y, { steps: 4 });
  await page.mouse.move(to.x, to.y, { steps: 4 });
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById('caliper-readout').dataset.ms);
  const ms = Number(await page.$eval('#caliper-readout', el => el.dataset.ms));
  expect(Math.abs(ms - 982) <= 10, `caliper reads ${ms} ms between samples ${pair} (${expected} ms)`);
  expect(Math.abs(ms - expected) <= 3, `caliper reads ${ms} ms, the peaks are ${expected} ms apart`);
  const text = await page.textContent('#caliper-readout');
  expect(text.includes(`${Math.round(ms)} ms`) && text.includes(`${Math.round(60000 / ms)}/min`), `readout: ${text}`);
  // Keys: one pixel is 1000 / (50 mm/s × px per mm) ms.
  v = await view(page);
  const px = 1000 / (50 * v.scale);
  const readMs = () => page.$eval('#caliper-readout', el => Number(el.dataset.ms));
  await page.focus('#caliper-b');
  await page.keyboard.press('ArrowRight');
  await page.waitForTimeout(100);
  const one = await readMs();
  await page.keyboard.press('Shift+ArrowLeft');
  await page.waitForTimeout(100);
  const ten = await readMs();
  expect(Math.abs(one - ms - px) < 0.01, `ArrowRight moved ${one - ms} ms, one pixel is ${px} ms`);
  expect(Math.abs(one - ten - 10 * px) < 0.01, `Shift+ArrowLeft moved ${one - ten} ms, ten pixels are ${10 * px} ms`);
  // Marching calipers draw without error.
  await page.check('#caliper-march');
  await page.waitForTimeout(100);
  await page.screenshot({ path: shot('ecg-caliper.png') });
});

test("doubling the gain doubles a trace's height on screen", async () => {
  await openViewer();
  const ptp = async gain => {
    await page.selectOption('#ecg-gain', String(gain));
    const v = await drawn({ gain });
    const b = v.boxes.find(x => x.lead === 'II' && x.row === 1);
    expect(b && b.drawn && b.ptpPx > 10, `lead II at ${gain} mm/mV: ${JSON.stringify(b)}`);
    return b.ptpPx;
  };
  const h10 = await ptp(10), h20 = await ptp(20), h5 = await ptp(5);
  expect(Math.abs(h20 / h10 - 2) < 0.02, `10 → 20 mm/mV: ${h10} px → ${h20} px`);
  expect(Math.abs(h10 / h5 - 2) < 0.02, `5 → 10 mm/mV: ${h5} px → ${h10} px`);
  // At 10 mm/mV a millivolt is 10 mm on screen: the lead's peak-to-peak in mV × 10 × px per mm.
  const mv = await page.evaluate(async i => {
    const w = await (await fetch(`/api/ecgs/${i}/waveform?group=rhythm`)).json();
    const uv = w.leads.find(l => l.name === 'II').uv.slice(0, 2501);
    return (Math.max(...uv) - Math.min(...uv)) / 1000;
  }, id);
  const v = await view(page);
  expect(Math.abs(h10 - mv * 10 * v.scale) < 1, `lead II: ${h10} px for ${mv} mV at ${v.scale} px/mm`);
});

test('12×1 shows the whole 10 s of every lead', async () => {
  await openViewer();
  await page.selectOption('#ecg-layout', '12x1');
  const v = await drawn({ layout: '12x1', speed: 25 });
  expect(v.boxes.length === 12 && STD.every(l => v.boxes.some(b => b.lead === l)), `leads: ${v.labels}`);
  for (const b of v.boxes) expect(Math.abs(b.seconds - 10) < 0.01 && b.t0 === 0 && b.w === 10 * v.speed, `${b.lead}: ${b.seconds} s over ${b.w} mm`);
  expect((await page.$eval('#ecg-stage', el => el.dataset.seconds)) === '10', 'data-seconds is not 10');
  await page.selectOption('#ecg-layout', 'median');
  const m = await drawn({ layout: 'median' });
  expect(m.boxes.length === 12 && m.boxes.every(b => b.group === 'median' && b.samples > 1000), `median: ${m.boxes.map(b => b.samples)}`);
});

test('the calibration is kept for this browser and gives the viewer its scale', async () => {
  await page.goto(`${base}/#/ecgs/calibrate?next=${encodeURIComponent(`#/ecgs/${id}`)}`);
  await page.waitForSelector('#calibration-size', { timeout: T });
  // A card drawn 428 CSS px wide: 5 px per mm.
  await page.$eval('#calibration-size', el => { el.value = String(5 * 85.6); el.dispatchEvent(new Event('input')); });
  await page.click('#calibration-larger');
  await page.click('#calibration-smaller');
  await page.click('#calibration-save');
  await page.waitForFunction(() => window.__ecgView && window.__ecgView.calibrated, null, { timeout: T });
  const v = await view(page);
  expect(Math.abs(v.pxPerMm - 5) < 1e-6 && v.scale === v.pxPerMm, `after calibration: ${v.pxPerMm} px/mm`);
  expect(!(await page.$('#calibrate-link')), 'still says the screen is not calibrated');
  await page.evaluate(() => { localStorage.removeItem('ferry-ecg-px-per-mm'); localStorage.removeItem('ferry-ecg-dpr'); });
});

test('in Chinese: the list, the viewer and the calibration show no string of the English catalogue; the print link asks for a Chinese PDF', async () => {
  const zh = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1280, height: 800 } });
  try {
    const p = await watched(zh);
    await signIn(p, 'dr-zhao');
    const found = [];
    for (const [hash, ready] of [['#/ecgs', '#ecg-list'], [`#/ecgs/${encodeURIComponent(id)}`, '#ecg-measurements'], ['#/ecgs/calibrate', '#calibration-canvas']]) {
      await p.goto(`${base}/${hash}`);
      await p.waitForSelector(ready, { timeout: T });
      if (hash.startsWith('#/ecgs/ecg')) {
        await p.click('#caliper-add');
        await p.waitForFunction(() => document.getElementById('caliper-readout').dataset.ms);
      }
      for (const e of await p.evaluate(englishOnPage, catalogueArgs())) found.push(`${hash}: ${e}`);
    }
    expect((await p.evaluate(() => document.documentElement.lang)) === 'zh-CN', 'not in Chinese');
    // The viewer's print link asks for the printout in the interface's language.
    await p.goto(`${base}/#/ecgs/${encodeURIComponent(id)}`);
    await p.waitForSelector('#ecg-print', { timeout: T });
    const print = await p.evaluate(async () => {
      const href = /** @type {HTMLAnchorElement} */ (document.getElementById('ecg-print')).href;
      const r = await fetch(href);
      const head = new Uint8Array(await r.arrayBuffer()).slice(0, 5);
      return { href, status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...head) };
    });
    expect(print.status === 200 && print.type === 'application/pdf' && print.head === '%PDF-', `print: ${JSON.stringify(print)}`);
    expect(print.href.includes('lang=zh-CN'), `print link: ${print.href}`);
    expect(found.length === 0, `English in the Chinese interface:\n  ${found.join('\n  ')}`);
    await p.screenshot({ path: shot('ecg-zh.png') });
  } finally {
    await zh.close();
  }
});

test('no console error, script error or failed request on the ECG pages', () => {
  expect(problems.length === 0, `${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
});
