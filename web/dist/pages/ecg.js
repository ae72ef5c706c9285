// The 12-lead ECG viewer: the trace on canvas at true size (the workstation's calibration,
// 25 or 50 mm/s, 5/10/20 mm/mV) on a 1 mm / 5 mm grid with a 1 mV pulse at each row's start,
// in the 3×4 + rhythm strip, 6×2, 12×1 and median-beat layouts; zoom and pan by wheel, drag,
// pinch and keys; a caliper reading interval, rate and amplitude (marching on request) moved
// by pointer or keys; beside it the device's and Ferry's measurements, the statements, the
// patient and the links to the original file and the DICOM study.
//
// What is drawn is described in `window.__ecgView` and the stage's data-* attributes (the
// browser test reads them): geometry lives in lib/ecg-geometry.js, so the page only draws.

import { api } from '../lib/api.js';
import { viewerUrl } from '../lib/dicom.js';
import { h, mainEl, onPageLeave, raw, startPage } from '../lib/dom.js';
import {
  acquiredText, compareMeasurements, groupOf,
} from '../lib/ecg.js';
import {
  GAINS, LAYOUTS, SPEEDS, backingSize, caliperReadout, carryEnd, clampPan, crisp, extent, gridLines,
  marchPositions, mmToPx, nudge, paperLayout, pxToMm, readCalibration, sampleRange, scaleOf, zoomAt,
} from '../lib/ecg-geometry.js';
import { errorBox } from '../lib/errors.js';
import { number, personName } from '../lib/format.js';
import { locale, ohifLanguage, t } from '../lib/i18n.js';
import { calibrateHash, ecgHash } from '../lib/router.js';
import { can, me } from '../lib/session.js';
import { ecgPatient, FORMAT_NAMES } from './ecgs.js';
import { readingAsk } from './reading-ask.js';

/** @typedef {import('../lib/ecg.js').EcgRecord} EcgRecord */
/** @typedef {import('../lib/ecg.js').Waveform} Waveform */
/** @typedef {import('../lib/ecg-geometry.js').Layout} Layout */
/** @typedef {import('../lib/ecg-geometry.js').Paper} Paper */
/** @typedef {import('../lib/ecg-geometry.js').Caliper} Caliper */
/** @typedef {import('../lib/ecg-geometry.js').View} View */

const COLORS = { paper: '#fff6f5', minor: '#f5c6c3', major: '#e3817b', trace: '#101418', label: '#3b2a2a', caliper: '#0b6e8a', march: 'rgba(11, 110, 138, .45)' };

/**
 * One value of the measurement table in its unit.
 * @param {number | null} v
 * @param {'bpm' | 'ms' | 'deg'} unit
 */
function measureText(v, unit) {
  return v === null ? '—' : t(`ecg.value.${unit}`, { v: number(Math.round(v)) });
}

/**
 * The measurements, the device's beside Ferry's, large differences marked.
 * @param {EcgRecord} rec
 */
function measurementsTable(rec) {
  const rows = compareMeasurements(rec.measurements && rec.measurements.device, rec.measurements && rec.measurements.computed);
  if (!rows.length) return h('p', { class: 'muted', id: 'ecg-no-measurements' }, t('ecg.no_measurements'));
  return h('div', { class: 'table-wrap', tabindex: 0 }, h('table', { id: 'ecg-measurements', class: 'ecg-measurements' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('ecg.col.measure')), h('th', { scope: 'col' }, t('ecg.col.device')),
      h('th', { scope: 'col' }, t('ecg.col.computed')))),
    h('tbody', {}, rows.map(r => h('tr', { 'data-measure': r.key, class: r.differs ? 'differs' : null },
      h('th', { scope: 'row' }, t(`ecg.m.${r.key}`)),
      h('td', {}, measureText(r.device, r.unit),
        r.deviceDerived ? h('span', { class: 'muted derived' }, ' ', t('ecg.derived_from_rr')) : null),
      h('td', {}, measureText(r.computed, r.unit),
        r.differs ? h('span', { class: 'differs-mark', title: t(r.unit === 'deg' ? 'ecg.differs_axis' : 'ecg.differs') },
          ' ≠', h('span', { class: 'visually-hidden' }, t(r.unit === 'deg' ? 'ecg.differs_axis' : 'ecg.differs'))) : null))))),
  rows.some(r => r.differs) ? h('p', { class: 'muted ecg-note' }, '≠ ', t('ecg.differs_note')) : null);
}

/**
 * A labelled select of numbers or layouts.
 * @param {string} id
 * @param {string} label
 * @param {{ value: string, text: string }[]} options
 * @param {string} current
 * @param {(v: string) => void} onchange
 */
function choice(id, label, options, current, onchange) {
  const sel = h('select', { id, name: id }, options.map(o => h('option', { value: o.value, selected: o.value === current }, o.text)));
  sel.addEventListener('change', () => onchange(sel.value));
  return h('div', {}, h('label', { for: id }, label), sel);
}

/** @param {string} id */
export async function ecgPage(id) {
  const show = startPage();
  /** @type {{ rec: EcgRecord, rhythm: Waveform | null }} */
  let loaded;
  try {
    loaded = await loadEcg(id);
  } catch (e) {
    show(h('h1', {}, t('ecg.title')), errorBox(e), h('p', {}, h('a', { href: '#/ecgs' }, t('ecg.back'))));
    return;
  }
  const { rec } = loaded;
  const p = rec.patient || {};
  // A clinician of the record's site may ask a reading centre to read it.
  const reading = can('ecg.send') && rec.site === me().site.id ? readingAsk({ ecg_id: id }) : null;
  const v = ecgViewer(id, rec, loaded.rhythm, { extra: reading });
  const main = mainEl();
  main.classList.add('wide');
  onPageLeave(() => main.classList.remove('wide'));
  show(h('h1', {}, t('ecg.title'), p.name ? [' · ', raw(personName(p.name))] : null), v.calNote, v.toolbar, v.layout);
  v.draw();
}

/**
 * A record and its rhythm strip (when it has one).
 * @param {string} id
 * @returns {Promise<{ rec: EcgRecord, rhythm: Waveform | null }>}
 */
export async function loadEcg(id) {
  /** @type {EcgRecord} */
  const rec = await api('GET', `/api/ecgs/${encodeURIComponent(id)}`);
  const rhythm = groupOf(rec, 'rhythm') ? await api('GET', `/api/ecgs/${encodeURIComponent(id)}/waveform?group=rhythm`) : null;
  return { rec, rhythm };
}

/**
 * The viewer of one record, for any page: the calibration note, the toolbar, and the trace
 * beside the panel of measurements (`layout`); `draw` once they are in the page. Its
 * listeners end with the page.
 * @param {string} id
 * @param {EcgRecord} rec
 * @param {Waveform | null} rhythm
 * @param {{ extra?: HTMLElement | null, back?: string }} [o] a box added to the panel; where the calibration comes back to
 */
export function ecgViewer(id, rec, rhythm, o = {}) {
  const hasMedian = !!groupOf(rec, 'median');
  /** @type {Waveform | null} */
  let median = null;
  const cal = readCalibration(safeStorage(), window.devicePixelRatio || 1);

  // ---- state ----
  /** @type {Layout} */
  let layout = rhythm ? '3x4+1' : 'median';
  let gain = 10, speed = 25;
  /** @type {View} */
  let view = { pxPerMm: cal.pxPerMm, zoom: 1, panX: 0, panY: 0 };
  /** @type {Caliper | null} */
  let caliper = null;
  let march = false, measuring = false;
  /** @type {Paper} */
  let paper = makePaper();
  let cssW = 0, cssH = 0;

  function wave() { return layout === 'median' ? median : rhythm; }
  function makePaper() {
    const w = layout === 'median' ? median : rhythm;
    const leads = w ? w.leads.map(l => l.name) : [];
    const hz = w ? w.sampling_hz : 1;
    const n = w ? Math.max(0, ...w.leads.map(l => l.uv.length)) : 0;
    const mg = groupOf(rec, 'median');
    return paperLayout({ layout, leads, durationS: n / hz, medianS: mg ? mg.duration_ms / 1000 : 1.2, speed, gain });
  }

  // ---- the page ----
  const stage = h('div', {
    id: 'ecg-stage', class: 'ecg-stage', tabindex: 0, role: 'application',
    'aria-label': t('ecg.stage_label'), 'aria-describedby': 'ecg-keys',
  });
  const trace = h('canvas', { id: 'ecg-trace', class: 'ecg-trace' });
  const overlay = h('canvas', { id: 'ecg-overlay', class: 'ecg-overlay' });
  const handleA = h('button', { type: 'button', class: 'caliper-handle', id: 'caliper-a', 'data-end': 'a', 'aria-label': t('ecg.caliper.end_a'), hidden: true });
  const handleB = h('button', { type: 'button', class: 'caliper-handle', id: 'caliper-b', 'data-end': 'b', 'aria-label': t('ecg.caliper.end_b'), hidden: true });
  stage.append(trace, overlay, handleA, handleB);
  const readout = h('output', { id: 'caliper-readout', class: 'caliper-readout', for: 'ecg-stage' }, t('ecg.caliper.none'));

  const measureBtn = h('button', { type: 'button', id: 'caliper-measure', class: 'small', 'aria-pressed': 'false' }, t('ecg.caliper.measure'));
  const addBtn = h('button', { type: 'button', id: 'caliper-add', class: 'small' }, t('ecg.caliper.add'));
  const clearBtn = h('button', { type: 'button', id: 'caliper-clear', class: 'small', disabled: true }, t('ecg.caliper.clear'));
  const marchBox = h('input', { type: 'checkbox', id: 'caliper-march', name: 'caliper-march' });
  const zoomOut = h('button', { type: 'button', id: 'zoom-out', class: 'small', 'aria-label': t('ecg.zoom_out') }, '−');
  const zoomIn = h('button', { type: 'button', id: 'zoom-in', class: 'small', 'aria-label': t('ecg.zoom_in') }, '+');
  const zoomTrue = h('button', { type: 'button', id: 'zoom-true', class: 'small' }, t('ecg.true_size'));
  const zoomText = h('span', { id: 'zoom-level', class: 'muted' });

  const layouts = LAYOUTS.filter(l => (l === 'median' ? hasMedian : !!rhythm));
  const toolbar = h('div', { class: 'ecg-toolbar box', id: 'ecg-toolbar' },
    h('div', { class: 'row' },
      choice('ecg-layout', t('ecg.layout'), layouts.map(l => ({ value: l, text: t(`ecg.layout.${l}`) })), layout, v => setPaper({ layout: /** @type {Layout} */ (v) })),
      choice('ecg-gain', t('ecg.gain'), GAINS.map(g => ({ value: String(g), text: t('ecg.gain_value', { v: g }) })), String(gain), v => setPaper({ gain: Number(v) })),
      choice('ecg-speed', t('ecg.speed'), SPEEDS.map(s => ({ value: String(s), text: t('ecg.speed_value', { v: s }) })), String(speed), v => setPaper({ speed: Number(v) })),
      h('div', { class: 'ecg-zoom', role: 'group', 'aria-label': t('ecg.zoom') }, h('span', { class: 'label' }, t('ecg.zoom')), ' ', zoomOut, zoomIn, zoomTrue, ' ', zoomText),
      h('div', { class: 'ecg-calipers', role: 'group', 'aria-label': t('ecg.caliper') }, h('span', { class: 'label' }, t('ecg.caliper')), ' ',
        measureBtn, addBtn, clearBtn, h('label', { class: 'inline' }, marchBox, t('ecg.caliper.march')))),
    readout);

  const back = o.back || ecgHash(id);
  const calNote = cal.calibrated
    ? h('p', { class: 'muted ecg-cal', id: 'ecg-calibration' }, t('ecg.calibrated', { v: number(cal.pxPerMm, { digits: 2 }) }), ' ',
      h('a', { href: calibrateHash(back) }, t('ecg.recalibrate')))
    : h('p', { class: 'notice ecg-cal', id: 'ecg-calibration' }, t('ecg.not_calibrated'), ' ',
      h('a', { href: calibrateHash(back), id: 'calibrate-link' }, t('ecg.calibrate_link')));

  const facts = h('dl', { class: 'facts' },
    h('dt', {}, t('ecg.acquired')), h('dd', { id: 'ecg-acquired' }, acquiredText(rec.acquired_at)),
    h('dt', {}, t('ecg.device_model')), h('dd', {}, rec.device_model ? raw(rec.device_model) : '—'),
    h('dt', {}, t('ecg.format')), h('dd', {}, raw(FORMAT_NAMES[rec.format] || rec.format)));
  const statements = (rec.statements || []).length
    ? h('ul', { id: 'ecg-statements', class: 'ecg-statements' }, rec.statements.map(s => h('li', {}, raw(s))))
    : h('p', { class: 'muted', id: 'ecg-statements' }, t('ecg.no_statements'));
  const panel = h('aside', { class: 'ecg-panel', 'aria-label': t('ecg.panel') },
    h('section', { class: 'box' }, ecgPatient(rec), facts),
    h('section', { class: 'box' }, h('h2', {}, t('ecg.measurements')), measurementsTable(rec)),
    h('section', { class: 'box' }, h('h2', {}, t('ecg.statements')), statements),
    o.extra || null,
    h('section', { class: 'box ecg-links' },
      h('a', { href: `/api/ecgs/${encodeURIComponent(id)}/rendered?format=pdf&lang=${encodeURIComponent(locale())}`, target: '_blank', rel: 'noopener', id: 'ecg-print' }, t('ecg.print')),
      h('a', { href: `/api/ecgs/${encodeURIComponent(id)}/original`, download: '', id: 'ecg-original' }, t('ecg.original')),
      rec.study_uid ? h('a', { href: viewerUrl(rec.study_uid, ohifLanguage(locale())), id: 'ecg-dicom' }, t('ecg.open_dicom')) : null,
      h('a', { href: '#/ecgs' }, t('ecg.back'))));

  const keys = h('p', { class: 'muted ecg-keys', id: 'ecg-keys' }, t('ecg.keys'));
  const layoutEl = h('div', { class: 'ecg-layout' }, h('div', { class: 'ecg-main' }, rhythm || hasMedian ? stage : h('p', { class: 'muted' }, t('ecg.no_waveform')), keys), panel);

  // ---- drawing ----
  let frame = 0;
  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; draw(); });
  }

  function fit() {
    const s = scaleOf(view);
    cssW = Math.max(100, stage.clientWidth);
    const room = Math.max(260, Math.round(window.innerHeight * 0.78));
    cssH = Math.max(120, Math.min(Math.ceil(paper.height * s) + 1, room));
    stage.style.height = `${cssH}px`;
    view = clampPan(view, paper, cssW, cssH);
  }

  /** @type {Record<string, any>[]} */
  let drawnBoxes = [];
  let gridCount = 0, minorShown = false;

  function draw() {
    if (!stage.isConnected) return;
    fit();
    const dpr = window.devicePixelRatio || 1;
    for (const c of [trace, overlay]) {
      const b = backingSize(cssW, cssH, dpr);
      if (c.width !== b.width) c.width = b.width;
      if (c.height !== b.height) c.height = b.height;
      c.style.width = `${cssW}px`;
      c.style.height = `${cssH}px`;
    }
    drawTrace(dpr);
    drawOverlay(dpr);
    describe(dpr);
  }

  /** @param {number} dpr */
  function drawTrace(dpr) {
    const ctx = /** @type {CanvasRenderingContext2D} */ (trace.getContext('2d'));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const s = scaleOf(view);
    const P = (/** @type {number} */ x, /** @type {number} */ y) => mmToPx(view, x, y);
    const tl = P(0, 0), br = P(paper.width, paper.height);
    ctx.fillStyle = COLORS.paper;
    ctx.fillRect(tl.x, tl.y, br.x - tl.x, br.y - tl.y);
    // The grid: 1 mm lines when they are at least 3 px apart, 5 mm lines always.
    const from = pxToMm(view, 0, 0), to = pxToMm(view, cssW, cssH);
    minorShown = s >= 3;
    const xs = gridLines(from.x, Math.min(to.x, paper.width), minorShown);
    const ys = gridLines(from.y, Math.min(to.y, paper.height), minorShown);
    gridCount = xs.length + ys.length;
    for (const major of [false, true]) {
      ctx.beginPath();
      ctx.strokeStyle = major ? COLORS.major : COLORS.minor;
      ctx.lineWidth = 1 / dpr * Math.max(1, Math.round(dpr * (major ? 1 : 0.6)));
      for (const g of xs) if (g.major === major) { const x = crisp(g.mm * s - view.panX, dpr); ctx.moveTo(x, Math.max(0, tl.y)); ctx.lineTo(x, Math.min(cssH, br.y)); }
      for (const g of ys) if (g.major === major) { const y = crisp(g.mm * s - view.panY, dpr); ctx.moveTo(Math.max(0, tl.x), y); ctx.lineTo(Math.min(cssW, br.x), y); }
      ctx.stroke();
    }
    // The calibration pulse at the start of each row: 1 mV high, 0.2 s wide.
    ctx.strokeStyle = COLORS.trace;
    ctx.lineWidth = Math.min(2.5, Math.max(1, 0.25 * s));
    ctx.lineJoin = 'round';
    const baselines = [...new Map(paper.boxes.map(b => [b.row, b.baseline])).values()];
    ctx.beginPath();
    for (const base of baselines) {
      const x0 = paper.left - 2 - paper.pulseW;
      const pts = [[x0 - 1, base], [x0, base], [x0, base - gain], [x0 + paper.pulseW, base - gain], [x0 + paper.pulseW, base], [x0 + paper.pulseW + 1, base]];
      pts.forEach(([x, y], i) => { const q = P(x, y); if (i) ctx.lineTo(q.x, q.y); else ctx.moveTo(q.x, q.y); });
    }
    ctx.stroke();
    // The leads.
    const w = wave();
    const byName = new Map((w ? w.leads : []).map(l => [l.name, l.uv]));
    const hz = w ? w.sampling_hz : 1;
    ctx.font = `600 ${Math.round(Math.min(16, Math.max(11, 3 * s)))}px system-ui, sans-serif`;
    ctx.textBaseline = 'top';
    drawnBoxes = paper.boxes.map(box => {
      const uv = byName.get(box.lead) || [];
      const { i0, i1 } = sampleRange(box, hz, uv.length);
      const a = P(box.x, box.y), b = P(box.x + box.w, box.y + box.h);
      const visible = b.x >= 0 && a.x <= cssW && b.y >= -box.h * s && a.y <= cssH + box.h * s;
      let minY = Infinity, maxY = -Infinity;
      if (visible && i1 > i0) {
        ctx.save();
        ctx.beginPath();
        ctx.rect(a.x, 0, b.x - a.x, cssH);
        ctx.clip();
        ctx.beginPath();
        const k = speed / hz * s, x0 = box.x * s - view.panX - box.t0 * speed * s, g = gain / 1000 * s, y0 = box.baseline * s - view.panY;
        for (let i = i0; i < i1; i++) {
          const x = x0 + i * k, y = y0 - uv[i] * g;
          if (y < minY) minY = y;
          if (y > maxY) maxY = y;
          if (i === i0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        }
        ctx.stroke();
        ctx.restore();
      } else if (i1 > i0) {
        const e = extent(uv, i0, i1);
        minY = (box.baseline - e.max / 1000 * gain) * s - view.panY;
        maxY = (box.baseline - e.min / 1000 * gain) * s - view.panY;
      }
      // The lead's name at the top left of its box; a short mark where a column starts.
      ctx.fillStyle = COLORS.label;
      const lp = P(box.x + 1, box.y + 1);
      ctx.fillText(box.lead, lp.x, lp.y);
      if (box.col > 0) {
        const m0 = P(box.x, box.baseline - 3), m1 = P(box.x, box.baseline + 3);
        ctx.beginPath(); ctx.moveTo(m0.x, m0.y); ctx.lineTo(m1.x, m1.y); ctx.stroke();
      }
      return {
        lead: box.lead, group: box.group, row: box.row, col: box.col, x: box.x, y: box.y, w: box.w, h: box.h,
        baseline: box.baseline, t0: box.t0, t1: box.t1, drawn: visible && i1 > i0, samples: i1 - i0, seconds: (i1 - i0) / hz,
        ptpPx: Number.isFinite(maxY - minY) ? maxY - minY : 0,
      };
    });
  }

  /** @param {number} dpr */
  function drawOverlay(dpr) {
    const ctx = /** @type {CanvasRenderingContext2D} */ (overlay.getContext('2d'));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    handleA.hidden = handleB.hidden = !caliper;
    clearBtn.disabled = !caliper;
    if (!caliper) {
      readout.textContent = t('ecg.caliper.none');
      delete readout.dataset.ms;
      return;
    }
    const c = caliper;
    const top = mmToPx(view, 0, 0).y, bottom = mmToPx(view, 0, paper.height).y;
    const vline = (/** @type {number} */ xmm) => { const x = crisp(mmToPx(view, xmm, 0).x, dpr); ctx.moveTo(x, Math.max(0, top)); ctx.lineTo(x, Math.min(cssH, bottom)); };
    if (march) {
      ctx.beginPath();
      ctx.strokeStyle = COLORS.march;
      ctx.lineWidth = 1;
      ctx.setLineDash([4, 3]);
      for (const x of marchPositions(c, paper.left, paper.width)) if (Math.abs(x - c.a.x) > 0.01 && Math.abs(x - c.b.x) > 0.01) vline(x);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.strokeStyle = COLORS.caliper;
    ctx.lineWidth = 1.5;
    vline(c.a.x); vline(c.b.x);
    ctx.stroke();
    // Amplitude: dashed horizontal lines through both ends, across the interval.
    const x0 = Math.min(c.a.x, c.b.x) - 4, x1 = Math.max(c.a.x, c.b.x) + 4;
    ctx.beginPath();
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1;
    for (const y of [c.a.y, c.b.y]) {
      const l = mmToPx(view, x0, y), r = mmToPx(view, x1, y);
      ctx.moveTo(l.x, crisp(l.y, dpr)); ctx.lineTo(r.x, crisp(r.y, dpr));
    }
    ctx.stroke();
    ctx.setLineDash([]);
    const r = caliperReadout(c, speed, gain);
    const text = t('ecg.caliper.readout', { ms: number(Math.round(r.ms)), bpm: r.bpm ? number(Math.round(r.bpm)) : '—', mv: number(r.mv, { digits: 2 }) });
    readout.textContent = text;
    readout.dataset.ms = String(r.ms);
    readout.dataset.mv = String(r.mv);
    readout.dataset.bpm = r.bpm ? String(r.bpm) : '';
    // The interval over the caliper, on the canvas too.
    const mid = mmToPx(view, (c.a.x + c.b.x) / 2, Math.min(c.a.y, c.b.y) - 2);
    ctx.font = '600 12px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.fillStyle = COLORS.caliper;
    ctx.fillText(t('ecg.value.ms', { v: number(Math.round(r.ms)) }), mid.x, mid.y);
    ctx.textAlign = 'start';
    for (const [el, end] of /** @type {[HTMLElement, {x: number, y: number}][]} */ ([[handleA, c.a], [handleB, c.b]])) {
      const q = mmToPx(view, end.x, end.y);
      el.style.left = `${q.x}px`;
      el.style.top = `${q.y}px`;
    }
  }

  /** What is drawn, for the browser test and anyone curious. @param {number} dpr */
  function describe(dpr) {
    const w = wave();
    stage.dataset.layout = layout;
    stage.dataset.gain = String(gain);
    stage.dataset.speed = String(speed);
    stage.dataset.pxPerMm = String(view.pxPerMm);
    stage.dataset.zoom = String(view.zoom);
    stage.dataset.leads = drawnBoxes.map(b => b.lead).join(',');
    stage.dataset.seconds = String(Math.max(0, ...drawnBoxes.map(b => b.seconds)));
    zoomText.textContent = t('ecg.zoom_value', { v: number(Math.round(view.zoom * 100)) });
    const rect = () => stage.getBoundingClientRect();
    /** @type {any} */ (window).__ecgView = {
      id, layout, gain, speed, dpr, pxPerMm: view.pxPerMm, zoom: view.zoom, scale: scaleOf(view), pan: { x: view.panX, y: view.panY },
      calibrated: cal.calibrated, samplingHz: w ? w.sampling_hz : null,
      paper: { width: paper.width, height: paper.height, left: paper.left, rowH: paper.rowH },
      canvas: { cssWidth: cssW, cssHeight: cssH, width: trace.width, height: trace.height },
      grid: { minorMm: 1, majorMm: 5, minorShown, lines: gridCount },
      boxes: drawnBoxes.map(b => ({ ...b })),
      labels: drawnBoxes.map(b => b.lead),
      caliper: caliper ? { a: { ...caliper.a }, b: { ...caliper.b }, ...caliperReadout(caliper, speed, gain) } : null,
      /** Paper mm to the page's client px. @param {number} x @param {number} y */
      toClient(x, y) { const q = mmToPx(view, x, y), r = rect(); return { x: r.left + q.x, y: r.top + q.y }; },
      /** A sample of a box (index into `boxes`) to client px. @param {number} i @param {number} sample */
      sampleToClient(i, sample) {
        const b = drawnBoxes[i], lead = (wave()?.leads || []).find(l => l.name === b.lead);
        const hz = wave()?.sampling_hz || 1, uv = lead ? lead.uv[sample] : 0;
        return this.toClient(b.x + (sample / hz - b.t0) * speed, b.baseline - uv / 1000 * gain);
      },
    };
  }

  // ---- changes ----
  /** @param {{ layout?: Layout, gain?: number, speed?: number }} ch */
  async function setPaper(ch) {
    const before = { paper, speed, gain };
    if (ch.layout === 'median' && !median) {
      try { median = await api('GET', `/api/ecgs/${encodeURIComponent(id)}/waveform?group=median`); } catch (e) {
        toolbar.append(errorBox(e));
        return;
      }
    }
    if (ch.layout) layout = ch.layout;
    if (ch.gain) gain = ch.gain;
    if (ch.speed) speed = ch.speed;
    paper = makePaper();
    if (caliper) {
      const a = carryEnd(caliper.a, before, { paper, speed, gain }), b = carryEnd(caliper.b, before, { paper, speed, gain });
      caliper = a && b ? { a, b } : null;
    }
    schedule();
  }

  /** @param {number} factor @param {number} [px] @param {number} [py] */
  function zoomBy(factor, px = cssW / 2, py = cssH / 2) {
    view = clampPan(zoomAt(view, factor, px, py), paper, cssW, cssH);
    schedule();
  }
  zoomIn.addEventListener('click', () => zoomBy(1.25));
  zoomOut.addEventListener('click', () => zoomBy(1 / 1.25));
  zoomTrue.addEventListener('click', () => zoomBy(1 / view.zoom));

  /** A caliper of one second and 1 mV in the rhythm strip (else the first box), in view. */
  function addCaliper() {
    const from = pxToMm(view, 0, 0);
    const box = paper.boxes.find(b => b.row === paper.rows - 1 && layout === '3x4+1') || paper.boxes[0];
    if (!box) return;
    const x = Math.max(box.x + 5, Math.min(from.x + 20, box.x + box.w - speed - 1));
    caliper = { a: { x, y: box.baseline }, b: { x: x + speed, y: box.baseline - gain } };
    schedule();
    handleB.focus();
  }
  addBtn.addEventListener('click', addCaliper);
  clearBtn.addEventListener('click', () => { caliper = null; schedule(); stage.focus(); });
  marchBox.addEventListener('change', () => { march = marchBox.checked; schedule(); });
  measureBtn.addEventListener('click', () => {
    measuring = !measuring;
    measureBtn.setAttribute('aria-pressed', String(measuring));
    stage.classList.toggle('measuring', measuring);
  });

  // ---- pointer: pan, pinch, measure; handles drag their end ----
  /** @param {PointerEvent | WheelEvent} ev */
  const local = ev => { const r = stage.getBoundingClientRect(); return { x: ev.clientX - r.left, y: ev.clientY - r.top }; };
  /** @type {Map<number, { x: number, y: number }>} */
  const pointers = new Map();
  /** @type {null | { kind: 'pan' } | { kind: 'measure' } | { kind: 'pinch', dist: number, mid: { x: number, y: number } } | { kind: 'end', end: 'a' | 'b' }} */
  let gesture = null;
  const two = () => { const [p1, p2] = [...pointers.values()]; return { dist: Math.hypot(p1.x - p2.x, p1.y - p2.y), mid: { x: (p1.x + p2.x) / 2, y: (p1.y + p2.y) / 2 } }; };

  stage.addEventListener('pointerdown', ev => {
    const target = /** @type {HTMLElement} */ (ev.target);
    const end = target.dataset && target.dataset.end;
    pointers.set(ev.pointerId, local(ev));
    stage.setPointerCapture(ev.pointerId);
    if (end === 'a' || end === 'b') {
      gesture = { kind: 'end', end };
      ev.preventDefault();
      target.focus();
      return;
    }
    stage.focus();
    if (pointers.size === 2) { gesture = { kind: 'pinch', ...two() }; return; }
    if (measuring && ev.button === 0) {
      const m = pxToMm(view, local(ev).x, local(ev).y);
      caliper = { a: m, b: { ...m } };
      gesture = { kind: 'measure' };
    } else {
      gesture = { kind: 'pan' };
    }
    ev.preventDefault();
  });
  stage.addEventListener('pointermove', ev => {
    const last = pointers.get(ev.pointerId);
    if (!last || !gesture) return;
    const now = local(ev);
    pointers.set(ev.pointerId, now);
    if (gesture.kind === 'pinch' && pointers.size >= 2) {
      const g = two();
      view = zoomAt(view, g.dist / (gesture.dist || g.dist), g.mid.x, g.mid.y);
      view = clampPan({ ...view, panX: view.panX - (g.mid.x - gesture.mid.x), panY: view.panY - (g.mid.y - gesture.mid.y) }, paper, cssW, cssH);
      gesture = { kind: 'pinch', ...g };
    } else if (gesture.kind === 'pan') {
      view = clampPan({ ...view, panX: view.panX - (now.x - last.x), panY: view.panY - (now.y - last.y) }, paper, cssW, cssH);
    } else if (gesture.kind === 'measure' && caliper) {
      caliper = { a: caliper.a, b: pxToMm(view, now.x, now.y) };
    } else if (gesture.kind === 'end' && caliper) {
      caliper = { ...caliper, [gesture.end]: pxToMm(view, now.x, now.y) };
    }
    schedule();
  });
  const up = (/** @type {PointerEvent} */ ev) => {
    pointers.delete(ev.pointerId);
    if (gesture && gesture.kind === 'measure' && caliper && Math.abs(caliper.b.x - caliper.a.x) < 0.5 && Math.abs(caliper.b.y - caliper.a.y) < 0.5) caliper = null;
    gesture = pointers.size === 1 && gesture && gesture.kind === 'pinch' ? { kind: 'pan' } : null;
    schedule();
  };
  stage.addEventListener('pointerup', up);
  stage.addEventListener('pointercancel', up);
  stage.addEventListener('wheel', ev => {
    ev.preventDefault();
    const at = local(ev);
    const dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
    zoomBy(Math.exp(-dy * 0.0015), at.x, at.y);
  }, { passive: false });

  // ---- keys: the stage zooms and pans; a focused handle moves its end by 1 px (Shift: 10) ----
  stage.addEventListener('keydown', ev => {
    const target = /** @type {HTMLElement} */ (ev.target);
    const end = target.dataset && target.dataset.end;
    const step = ev.shiftKey ? 10 : 1;
    /** @type {Record<string, [number, number]>} */
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if ((end === 'a' || end === 'b') && caliper && arrows[ev.key]) {
      const [dx, dy] = arrows[ev.key];
      caliper = { ...caliper, [end]: nudge(view, caliper[end], dx * step, dy * step) };
      ev.preventDefault();
      schedule();
      return;
    }
    if (ev.key === '+' || ev.key === '=') zoomBy(1.25);
    else if (ev.key === '-' || ev.key === '_') zoomBy(1 / 1.25);
    else if (ev.key === '0') zoomBy(1 / view.zoom);
    else if (arrows[ev.key] && target === stage) {
      const [dx, dy] = arrows[ev.key];
      const k = ev.shiftKey ? 200 : 40;
      view = clampPan({ ...view, panX: view.panX + dx * k, panY: view.panY + dy * k }, paper, cssW, cssH);
      schedule();
    } else return;
    ev.preventDefault();
  });

  const resized = new ResizeObserver(() => schedule());
  resized.observe(stage);
  const onResize = () => schedule();
  window.addEventListener('resize', onResize);
  onPageLeave(() => {
    resized.disconnect();
    window.removeEventListener('resize', onResize);
    if (frame) cancelAnimationFrame(frame);
    delete /** @type {any} */ (window).__ecgView;
  });
  return { calNote, toolbar, layout: layoutEl, draw };
}

function safeStorage() {
  try { return window.localStorage; } catch (_) { return null; }
}
