// The ECG viewer's geometry: layouts on the paper, samples ↔ mm ↔ px, grid, zoom and pan,
// calipers, calibration.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  CALIBRATION_DPR_KEY, CALIBRATION_KEY, CARD_MM, DEFAULT_PX_PER_MM, backingSize, boxAt, calibrationFrom, caliperReadout, carryEnd,
  clampPan, crisp, extent, gridLines, marchPositions, mmToPx, nudge, orderLeads, paperLayout, pxToMm, readCalibration, sampleRange,
  saveCalibration, timeToX, uvToY, xToTime, yToUv, zoomAt,
} from '../dist/lib/ecg-geometry.js';

const STD = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
const near = (/** @type {number} */ a, /** @type {number} */ b, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} ≉ ${b}`);

test('3×4 + rhythm strip: four 2.5 s columns in the standard order, lead II for the whole 10 s beneath', () => {
  const p = paperLayout({ layout: '3x4+1', leads: STD, durationS: 10, speed: 25, gain: 10 });
  assert.equal(p.boxes.length, 13);
  const grid = p.boxes.slice(0, 12);
  assert.deepEqual(grid.map(b => `${b.lead}@${b.row},${b.col}`), [
    'I@0,0', 'II@1,0', 'III@2,0', 'aVR@0,1', 'aVL@1,1', 'aVF@2,1', 'V1@0,2', 'V2@1,2', 'V3@2,2', 'V4@0,3', 'V5@1,3', 'V6@2,3']);
  for (const b of grid) {
    near(b.w, 62.5);
    near(b.t1 - b.t0, 2.5);
    near(b.x, p.left + b.col * 62.5);
    near(b.t0, b.col * 2.5);
  }
  const strip = p.boxes[12];
  assert.deepEqual([strip.lead, strip.row, strip.t0, strip.t1, strip.w], ['II', 3, 0, 10, 250]);
  // Margin: the 5 mm pulse with 2 mm each side, rounded up to a 5 mm line.
  assert.equal(p.left, 10);
  assert.equal(p.width, 10 + 250 + 3);
  assert.equal(p.rows, 4);
  assert.equal(p.rowH, 30);
  assert.ok(p.height >= 4 * 30);
});

test('6×2, 12×1 and median layouts; 50 mm/s doubles the widths', () => {
  const six = paperLayout({ layout: '6x2', leads: STD, durationS: 10, speed: 25, gain: 10 });
  assert.deepEqual(six.boxes.map(b => `${b.lead}@${b.row},${b.col}`).slice(0, 7), ['I@0,0', 'II@1,0', 'III@2,0', 'aVR@3,0', 'aVL@4,0', 'aVF@5,0', 'V1@0,1']);
  assert.ok(six.boxes.every(b => b.w === 125));
  const twelve = paperLayout({ layout: '12x1', leads: STD, durationS: 10, speed: 50, gain: 10 });
  assert.equal(twelve.boxes.length, 12);
  assert.ok(twelve.boxes.every(b => b.t0 === 0 && b.t1 === 10 && b.w === 500 && b.col === 0));
  assert.deepEqual(twelve.boxes.map(b => b.row), [...Array(12).keys()]);
  assert.equal(twelve.left, 15);
  const med = paperLayout({ layout: 'median', leads: STD, durationS: 1.2, medianS: 1.2, speed: 25, gain: 10 });
  assert.ok(med.boxes.every(b => b.group === 'median' && b.t0 === 0 && Math.abs(b.w - 30) < 1e-9));
  near(med.boxes[3].x, med.left + 30);
});

test('leads: standard order first; a layout leaves out leads that are absent; the strip falls back to the first lead', () => {
  assert.deepEqual(orderLeads(['V1', 'X', 'I', 'II']), ['I', 'II', 'V1', 'X']);
  const p = paperLayout({ layout: '3x4+1', leads: ['I', 'III'], durationS: 10, speed: 25, gain: 10 });
  assert.deepEqual(p.boxes.map(b => b.lead), ['I', 'III', 'I']);
});

test('samples ↔ mm: time along x at the speed, microvolts along y at the gain', () => {
  const p = paperLayout({ layout: '3x4+1', leads: STD, durationS: 10, speed: 25, gain: 10 });
  const v2 = p.boxes[7];
  near(timeToX(v2, 5, 25), v2.x);
  near(timeToX(v2, 6, 25), v2.x + 25);
  near(xToTime(v2, v2.x + 12.5, 25), 5.5);
  near(uvToY(v2, 1000, 10), v2.baseline - 10);
  near(uvToY(v2, 1000, 20), v2.baseline - 20);
  near(yToUv(v2, v2.baseline - 5, 10), 500);
  assert.deepEqual(sampleRange(v2, 1000, 10000), { i0: 5000, i1: 7501 });
  assert.deepEqual(sampleRange(p.boxes[12], 500, 5000), { i0: 0, i1: 5000 });
});

test('mm ↔ px: calibration × zoom, minus the pan; zoom keeps the point under the pointer', () => {
  const v = { pxPerMm: 4, zoom: 2, panX: 10, panY: 20 };
  assert.deepEqual(mmToPx(v, 10, 5), { x: 70, y: 20 });
  assert.deepEqual(pxToMm(v, 70, 20), { x: 10, y: 5 });
  const z = zoomAt(v, 2, 70, 20);
  assert.equal(z.zoom, 4);
  const back = mmToPx(z, 10, 5);
  near(back.x, 70); near(back.y, 20);
  assert.equal(zoomAt(v, 1000, 0, 0).zoom, 8);
  assert.equal(zoomAt(v, 1e-6, 0, 0).zoom, 0.25);
});

test('pan stays on the paper', () => {
  const paper = { width: 100, height: 50 };
  const v = { pxPerMm: 4, zoom: 1, panX: -30, panY: 999 };
  assert.deepEqual(clampPan(v, paper, 300, 100), { ...v, panX: 0, panY: 100 });
  // Paper smaller than the canvas: at the top left.
  assert.deepEqual(clampPan({ ...v, panX: 50, panY: 50 }, paper, 500, 500), { ...v, panX: 0, panY: 0 });
});

test('grid: a line each mm, every fifth major; only major lines when asked', () => {
  const g = gridLines(3.2, 11);
  assert.deepEqual(g.map(x => x.mm), [4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(g.filter(x => x.major).map(x => x.mm), [5, 10]);
  assert.deepEqual(gridLines(-4, 16, false).map(x => x.mm), [0, 5, 10, 15]);
});

test('crisp lines and backing stores at any device pixel ratio', () => {
  assert.equal(crisp(10.3, 1), 10.5);
  assert.equal(crisp(10.3, 2), 10.25);
  assert.deepEqual(backingSize(300, 150, 2), { width: 600, height: 300 });
  assert.deepEqual(backingSize(301, 151, 1.5), { width: 452, height: 227 });
});

test('calipers: interval, rate and amplitude; marching positions; 1 px key steps', () => {
  const c = { a: { x: 20, y: 30 }, b: { x: 44.55, y: 20 } };
  const r = caliperReadout(c, 25, 10);
  near(r.ms, 982, 1e-6);
  near(/** @type {number} */ (r.bpm), 60000 / 982, 1e-9);
  near(r.mv, 1);
  assert.equal(caliperReadout({ a: c.a, b: c.a }, 25, 10).bpm, null);
  const m = marchPositions({ a: { x: 30, y: 0 }, b: { x: 40, y: 0 } }, 10, 65);
  assert.deepEqual(m, [10, 20, 30, 40, 50, 60]);
  assert.deepEqual(marchPositions({ a: { x: 30, y: 0 }, b: { x: 30.1, y: 0 } }, 0, 100), []);
  const v = { pxPerMm: 4, zoom: 2.5, panX: 0, panY: 0 };
  assert.deepEqual(nudge(v, { x: 1, y: 1 }, 10, -1), { x: 2, y: 0.9 });
});

test('a caliper keeps its lead, time and voltage when the paper changes', () => {
  const before = { paper: paperLayout({ layout: '3x4+1', leads: STD, durationS: 10, speed: 25, gain: 10 }), speed: 25, gain: 10 };
  const strip = before.paper.boxes[12];
  const end = { x: timeToX(strip, 4, 25), y: uvToY(strip, 500, 10) };
  assert.equal(boxAt(before.paper.boxes, end.x, end.y), strip);
  const after = { paper: paperLayout({ layout: '3x4+1', leads: STD, durationS: 10, speed: 50, gain: 20 }), speed: 50, gain: 20 };
  const moved = /** @type {{x: number, y: number}} */ (carryEnd(end, before, after));
  const s2 = after.paper.boxes[12];
  near(moved.x, timeToX(s2, 4, 50));
  near(moved.y, uvToY(s2, 500, 20));
  // The median beats have no time 4 s: the end is lost.
  const med = { paper: paperLayout({ layout: 'median', leads: STD, durationS: 1.2, speed: 25, gain: 10 }), speed: 25, gain: 10 };
  assert.equal(carryEnd(end, before, med), null);
});

test('extent of samples', () => {
  assert.deepEqual(extent([3, -2, 7, 1], 1, 3), { min: -2, max: 7 });
  assert.deepEqual(extent([], 0, 0), { min: 0, max: 0 });
});

test('calibration: default 96 dpi, a saved value, corrected for a later browser zoom, nonsense ignored', () => {
  /** @type {Map<string, string>} */
  const m = new Map();
  const store = { getItem: (/** @type {string} */ k) => m.get(k) ?? null, setItem: (/** @type {string} */ k, /** @type {string} */ v) => { m.set(k, v); } };
  assert.deepEqual(readCalibration(store, 1), { pxPerMm: DEFAULT_PX_PER_MM, calibrated: false });
  near(DEFAULT_PX_PER_MM * 25.4, 96);
  const px = calibrationFrom(CARD_MM * 4.2, CARD_MM);
  near(px, 4.2);
  assert.equal(saveCalibration(store, px, 1), true);
  assert.deepEqual(readCalibration(store, 1), { pxPerMm: 4.2, calibrated: true });
  // The browser zoomed to 125 %: a CSS px is 1.25 device px, so fewer CSS px make a mm.
  near(readCalibration(store, 1.25).pxPerMm, 4.2 / 1.25);
  m.set(CALIBRATION_KEY, 'lots');
  assert.equal(readCalibration(store, 1).calibrated, false);
  m.set(CALIBRATION_KEY, '4'); m.delete(CALIBRATION_DPR_KEY);
  assert.deepEqual(readCalibration(store, 2), { pxPerMm: 4, calibrated: true });
  assert.equal(saveCalibration(store, 99, 1), false);
  assert.deepEqual(readCalibration(null), { pxPerMm: DEFAULT_PX_PER_MM, calibrated: false });
  assert.deepEqual(readCalibration({ getItem() { throw new Error('refused'); } }), { pxPerMm: DEFAULT_PX_PER_MM, calibrated: false });
});
