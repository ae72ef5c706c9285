// The geometry of the ECG viewer, pure: where each lead goes on the paper (in millimetres),
// how samples become millimetres (speed in mm/s, gain in mm/mV) and millimetres screen pixels
// (the workstation's calibration times the zoom, minus the pan), the 1 mm / 5 mm grid, and
// what a caliper reads. The page (pages/ecg.js) only draws what these functions say.

/** CSS pixels per millimetre when nobody has calibrated the screen: 96 px per inch. */
export const DEFAULT_PX_PER_MM = 96 / 25.4;
/** The width of an ID-1 card (credit card, ISO/IEC 7810), the calibration's usual ruler. */
export const CARD_MM = 85.6;
/** Plausible calibrations (CSS px per mm); anything else is a typing slip. */
export const MIN_PX_PER_MM = 1.5;
export const MAX_PX_PER_MM = 15;
export const CALIBRATION_KEY = 'ferry-ecg-px-per-mm';

export const GAINS = [5, 10, 20];
export const SPEEDS = [25, 50];
/** @typedef {'3x4+1' | '6x2' | '12x1' | 'median'} Layout */
/** @type {Layout[]} */
export const LAYOUTS = ['3x4+1', '6x2', '12x1', 'median'];
export const STANDARD_LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
export const MIN_ZOOM = 0.25;
export const MAX_ZOOM = 8;

/**
 * One lead's place on the paper, in mm from the paper's top left corner: the box's left edge
 * is where time `t0` (seconds into the recording) is drawn; `baseline` is where 0 µV lies.
 * @typedef {{ lead: string, group: 'rhythm' | 'median', x: number, y: number, w: number, h: number,
 *   baseline: number, t0: number, t1: number, row: number, col: number }} Box
 */
/**
 * @typedef {{ width: number, height: number, left: number, pulseW: number, rows: number,
 *   rowH: number, boxes: Box[] }} Paper
 */
/** The transform from paper mm to CSS px of the canvas: px = mm × pxPerMm × zoom − pan. */
/** @typedef {{ pxPerMm: number, zoom: number, panX: number, panY: number }} View */

/**
 * The calibration pulse's width: 0.2 s at the paper's speed.
 * @param {number} speed mm/s
 */
export const pulseWidth = speed => 0.2 * speed;

/**
 * A row's height: room for 3 mV, but never less than 18 mm.
 * @param {number} gain mm/mV
 */
export const rowHeight = gain => Math.max(18, 3 * gain);

/**
 * The leads in the standard order first, then any others in the order they came.
 * @param {string[]} leads
 */
export function orderLeads(leads) {
  const std = STANDARD_LEADS.filter(l => leads.includes(l));
  return [...std, ...leads.filter(l => !STANDARD_LEADS.includes(l))];
}

/**
 * Where every lead is drawn for a layout.
 * - `3x4+1`: columns of 2.5 s (I II III | aVR aVL aVF | V1 V2 V3 | V4 V5 V6), each column the
 *   next 2.5 s of the recording, and a rhythm strip (lead II, else the first lead) of the
 *   whole recording beneath.
 * - `6x2`: columns of 5 s, limb leads left, chest leads right.
 * - `12x1`: every lead for the whole recording, one per row.
 * - `median`: the median beats in the 3×4 arrangement, each box the whole median beat.
 * @param {{ layout: Layout, leads: string[], durationS: number, medianS?: number, speed: number, gain: number }} o
 * @returns {Paper}
 */
export function paperLayout(o) {
  const { layout, speed, gain } = o;
  const pulseW = pulseWidth(speed);
  // The trace starts on a 5 mm line, after the calibration pulse and 2 mm either side of it.
  const left = 5 * Math.ceil((pulseW + 4) / 5);
  const rowH = rowHeight(gain);
  const top = 2;
  const right = 3;
  const present = orderLeads(o.leads);
  /** @type {Box[]} */
  const boxes = [];
  /** @type {(lead: string, group: 'rhythm' | 'median', row: number, col: number, t0: number, t1: number, x: number) => void} */
  const put = (lead, group, row, col, t0, t1, x) => {
    const y = top + row * rowH;
    boxes.push({ lead, group, x, y, w: (t1 - t0) * speed, h: rowH, baseline: y + 0.6 * rowH, t0, t1, row, col });
  };
  // Rhythm boxes: the paper's x is the recording's time, so columns continue one another.
  /** @type {(lead: string, row: number, col: number, t0: number, t1: number) => void} */
  const rhythm = (lead, row, col, t0, t1) => put(lead, 'rhythm', row, col, t0, Math.max(t0, t1), left + t0 * speed);
  let rows = 0, cols = 0, colS = 0;
  if (layout === '12x1') {
    present.forEach((lead, i) => rhythm(lead, i, 0, 0, o.durationS));
    rows = present.length; colS = o.durationS; cols = 1;
  } else if (layout === '6x2') {
    colS = 5; cols = 2; rows = 6;
    STANDARD_LEADS.forEach((lead, i) => {
      if (!present.includes(lead)) return;
      const col = Math.floor(i / 6), row = i % 6;
      rhythm(lead, row, col, col * colS, Math.min((col + 1) * colS, o.durationS));
    });
  } else if (layout === 'median') {
    colS = o.medianS || 1.2; cols = 4; rows = 3;
    STANDARD_LEADS.forEach((lead, i) => {
      if (!present.includes(lead)) return;
      const col = Math.floor(i / 3);
      put(lead, 'median', i % 3, col, 0, colS, left + col * colS * speed);
    });
  } else {
    colS = 2.5; cols = 4; rows = 4;
    STANDARD_LEADS.forEach((lead, i) => {
      if (!present.includes(lead)) return;
      const col = Math.floor(i / 3), row = i % 3;
      rhythm(lead, row, col, col * colS, Math.min((col + 1) * colS, o.durationS));
    });
    const strip = present.includes('II') ? 'II' : present[0];
    if (strip) rhythm(strip, 3, 0, 0, o.durationS);
  }
  const traceW = Math.max(cols * colS, layout === '3x4+1' || layout === '12x1' ? o.durationS : 0) * speed;
  return { width: left + traceW + right, height: top + rows * rowH + 2, left, pulseW, rows, rowH, boxes };
}

/**
 * The x (mm) of a time in a box.
 * @param {Box} box
 * @param {number} t seconds into the recording (or the median beat)
 * @param {number} speed mm/s
 */
export function timeToX(box, t, speed) { return box.x + (t - box.t0) * speed; }

/**
 * The time (s) at x (mm) of a box.
 * @param {Box} box
 * @param {number} x
 * @param {number} speed
 */
export function xToTime(box, x, speed) { return box.t0 + (x - box.x) / speed; }

/**
 * The y (mm) of a voltage in a box.
 * @param {Box} box
 * @param {number} uv microvolts
 * @param {number} gain mm/mV
 */
export function uvToY(box, uv, gain) { return box.baseline - (uv / 1000) * gain; }

/**
 * The voltage (µV) at y (mm) of a box.
 * @param {Box} box
 * @param {number} y
 * @param {number} gain
 */
export function yToUv(box, y, gain) { return ((box.baseline - y) / gain) * 1000; }

/**
 * The samples of a box: the first and one past the last index of a lead's samples.
 * @param {Box} box
 * @param {number} hz sampling rate
 * @param {number} n samples in the lead
 */
export function sampleRange(box, hz, n) {
  const i0 = Math.max(0, Math.ceil(box.t0 * hz - 1e-9));
  const i1 = Math.min(n, Math.floor(box.t1 * hz + 1e-9) + 1);
  return { i0, i1: Math.max(i0, i1) };
}

/**
 * CSS px per mm on screen.
 * @param {View} v
 */
export const scaleOf = v => v.pxPerMm * v.zoom;

/**
 * Paper mm to canvas CSS px.
 * @param {View} v
 * @param {number} x
 * @param {number} y
 */
export function mmToPx(v, x, y) {
  const s = scaleOf(v);
  return { x: x * s - v.panX, y: y * s - v.panY };
}

/**
 * Canvas CSS px to paper mm.
 * @param {View} v
 * @param {number} px
 * @param {number} py
 */
export function pxToMm(v, px, py) {
  const s = scaleOf(v);
  return { x: (px + v.panX) / s, y: (py + v.panY) / s };
}

/**
 * The pan that keeps the paper in the canvas: no empty space left or above, and none right or
 * below unless the paper is smaller than the canvas (then it sits at the top left).
 * @param {View} v
 * @param {{ width: number, height: number }} paper mm
 * @param {number} w canvas width, CSS px
 * @param {number} h canvas height, CSS px
 * @returns {View}
 */
export function clampPan(v, paper, w, h) {
  const s = scaleOf(v);
  const maxX = Math.max(0, paper.width * s - w), maxY = Math.max(0, paper.height * s - h);
  return { ...v, panX: Math.min(Math.max(0, v.panX), maxX), panY: Math.min(Math.max(0, v.panY), maxY) };
}

/**
 * Zooms by `factor` keeping the paper point under (px, py) where it is.
 * @param {View} v
 * @param {number} factor
 * @param {number} px
 * @param {number} py
 * @returns {View}
 */
export function zoomAt(v, factor, px, py) {
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, v.zoom * factor));
  const at = pxToMm(v, px, py);
  const s = v.pxPerMm * zoom;
  return { ...v, zoom, panX: at.x * s - px, panY: at.y * s - py };
}

/**
 * Grid lines between two positions (mm): every mm, every fifth a major one. Positions are
 * whole millimetres from the paper's origin.
 * @param {number} from
 * @param {number} to
 * @param {boolean} [minor] include the 1 mm lines (false when they would be too dense to see)
 * @returns {{ mm: number, major: boolean }[]}
 */
export function gridLines(from, to, minor = true) {
  const out = [];
  const step = minor ? 1 : 5;
  for (let mm = Math.ceil(Math.max(0, from) / step) * step; mm <= to + 1e-9; mm += step) {
    out.push({ mm, major: mm % 5 === 0 });
  }
  return out;
}

/**
 * Snaps a CSS px coordinate to the middle of a device pixel, so a 1-pixel line is one pixel.
 * @param {number} px
 * @param {number} dpr
 */
export function crisp(px, dpr) { return (Math.floor(px * dpr) + 0.5) / dpr; }

/**
 * The backing store of a canvas shown at w × h CSS px: device pixels, whole.
 * @param {number} w
 * @param {number} h
 * @param {number} dpr
 */
export function backingSize(w, h, dpr) {
  return { width: Math.max(1, Math.round(w * dpr)), height: Math.max(1, Math.round(h * dpr)) };
}

/**
 * A caliper: two ends on the paper (mm).
 * @typedef {{ a: { x: number, y: number }, b: { x: number, y: number } }} Caliper
 */

/**
 * What a caliper reads: the interval between its ends in ms, the rate that interval is one
 * beat of, and the amplitude from end a to end b in mV (positive when b is higher).
 * @param {Caliper} c
 * @param {number} speed mm/s
 * @param {number} gain mm/mV
 * @returns {{ ms: number, bpm: number | null, mv: number }}
 */
export function caliperReadout(c, speed, gain) {
  const ms = (Math.abs(c.b.x - c.a.x) / speed) * 1000;
  return { ms, bpm: ms > 0 ? 60000 / ms : null, mv: (c.a.y - c.b.y) / gain };
}

/**
 * Marching calipers: the caliper's interval repeated either way from end a, within [from, to].
 * @param {Caliper} c
 * @param {number} from mm
 * @param {number} to mm
 * @param {number} [max] at most this many positions
 * @returns {number[]}
 */
export function marchPositions(c, from, to, max = 400) {
  const d = c.b.x - c.a.x;
  if (Math.abs(d) < 0.5) return [];
  const step = Math.abs(d);
  const start = c.a.x - Math.floor((c.a.x - from) / step) * step;
  const out = [];
  for (let x = start; x <= to + 1e-9 && out.length < max; x += step) out.push(x);
  return out;
}

/**
 * Moves a caliper end by screen pixels (keyboard: 1 px, 10 with Shift).
 * @param {View} v
 * @param {{ x: number, y: number }} end
 * @param {number} dxPx
 * @param {number} dyPx
 */
export function nudge(v, end, dxPx, dyPx) {
  const s = scaleOf(v);
  return { x: end.x + dxPx / s, y: end.y + dyPx / s };
}

/**
 * The box a paper point lies in (the nearest box of that row, so a point in the margin
 * counts for the row's first box); null outside every row.
 * @param {Box[]} boxes
 * @param {number} x
 * @param {number} y
 */
export function boxAt(boxes, x, y) {
  const row = boxes.filter(b => y >= b.y && y < b.y + b.h);
  if (!row.length) return null;
  return row.find(b => x >= b.x && x < b.x + b.w)
    || row.reduce((best, b) => (Math.abs(b.x + b.w / 2 - x) < Math.abs(best.x + best.w / 2 - x) ? b : best));
}

/**
 * The lowest and highest sample of a range.
 * @param {ArrayLike<number>} uv
 * @param {number} i0
 * @param {number} i1
 */
export function extent(uv, i0, i1) {
  let min = Infinity, max = -Infinity;
  for (let i = i0; i < i1; i++) {
    if (uv[i] < min) min = uv[i];
    if (uv[i] > max) max = uv[i];
  }
  return min <= max ? { min, max } : { min: 0, max: 0 };
}

/** Where the device pixel ratio at calibration time is kept (browser zoom changes it). */
export const CALIBRATION_DPR_KEY = 'ferry-ecg-dpr';

/**
 * The workstation's calibration from storage: CSS px per mm now, and whether anyone
 * calibrated. The calibration was measured at some browser zoom; a CSS pixel is as many device
 * pixels as the ratio says, so a later zoom scales it by the ratio of the two ratios.
 * @param {{ getItem(key: string): string | null } | null | undefined} storage
 * @param {number} [dpr] the device pixel ratio now
 */
export function readCalibration(storage, dpr = 1) {
  let v = null, then = null;
  try {
    v = storage ? storage.getItem(CALIBRATION_KEY) : null;
    then = storage ? storage.getItem(CALIBRATION_DPR_KEY) : null;
  } catch (_) { /* refused */ }
  const n = Number(v), d = Number(then);
  const px = v !== null && Number.isFinite(d) && d > 0 && dpr > 0 ? (n * d) / dpr : n;
  return v !== null && validCalibration(n) && validCalibration(px) ? { pxPerMm: px, calibrated: true } : { pxPerMm: DEFAULT_PX_PER_MM, calibrated: false };
}

/**
 * Keeps a calibration (CSS px per mm at this device pixel ratio); false when refused.
 * @param {{ setItem(key: string, value: string): void } | null | undefined} storage
 * @param {number} pxPerMm
 * @param {number} dpr
 */
export function saveCalibration(storage, pxPerMm, dpr) {
  if (!storage || !validCalibration(pxPerMm)) return false;
  try {
    storage.setItem(CALIBRATION_KEY, String(pxPerMm));
    storage.setItem(CALIBRATION_DPR_KEY, String(dpr));
    return true;
  } catch (_) { return false; }
}

/** @param {number} n */
export function validCalibration(n) { return Number.isFinite(n) && n >= MIN_PX_PER_MM && n <= MAX_PX_PER_MM; }

/**
 * The calibration from a line of `px` CSS pixels that measures `mm` on the screen.
 * @param {number} px
 * @param {number} mm
 */
export function calibrationFrom(px, mm) { return px / mm; }

/**
 * A caliper end after the paper changed (layout, speed or gain): the same lead, time and
 * voltage in the new paper; null when the new paper does not show that lead at that time.
 * @param {{ x: number, y: number }} end
 * @param {{ paper: Paper, speed: number, gain: number }} before
 * @param {{ paper: Paper, speed: number, gain: number }} after
 */
export function carryEnd(end, before, after) {
  const box = boxAt(before.paper.boxes, end.x, end.y);
  if (!box) return null;
  const t = xToTime(box, end.x, before.speed), uv = yToUv(box, end.y, before.gain);
  const same = after.paper.boxes.filter(b => b.lead === box.lead && b.group === box.group && t >= b.t0 - 1e-9 && t <= b.t1 + 1e-9);
  const to = same.find(b => b.row === box.row) || same[0];
  return to ? { x: timeToX(to, t, after.speed), y: uvToY(to, uv, after.gain) } : null;
}
