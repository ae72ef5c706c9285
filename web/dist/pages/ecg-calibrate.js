// Calibrating this screen once, so that 10 mm of ECG paper measure 10 mm on it: the person
// holds a bank card (85.6 mm wide) to the screen and sizes the drawn card to match, or lays a
// ruler along the drawn one. The result, CSS pixels per millimetre (with the device pixel
// ratio it was measured at), stays in this browser's localStorage.

import { h, onPageLeave, startPage } from '../lib/dom.js';
import {
  CALIBRATION_DPR_KEY, CALIBRATION_KEY, CARD_MM, MAX_PX_PER_MM, MIN_PX_PER_MM, backingSize, crisp, readCalibration, saveCalibration,
} from '../lib/ecg-geometry.js';
import { number } from '../lib/format.js';
import { t } from '../lib/i18n.js';

const CARD_H_MM = 53.98;

/** @param {string | null} next where to go afterwards (a route of this app) */
export function calibratePage(next) {
  const show = startPage();
  const storage = safeStorage();
  const dpr = window.devicePixelRatio || 1;
  const start = readCalibration(storage, dpr);
  let pxPerMm = start.pxPerMm;

  const canvas = h('canvas', { id: 'calibration-canvas', class: 'calibration-canvas', role: 'img', 'aria-label': t('calibrate.canvas_label') });
  const slider = h('input', {
    type: 'range', id: 'calibration-size', name: 'calibration-size',
    min: String(Math.round(MIN_PX_PER_MM * CARD_MM)), max: String(Math.round(Math.min(MAX_PX_PER_MM, 12) * CARD_MM)), step: '0.5',
    value: String(pxPerMm * CARD_MM),
  });
  const smaller = h('button', { type: 'button', class: 'small', id: 'calibration-smaller', 'aria-label': t('calibrate.smaller') }, '−');
  const larger = h('button', { type: 'button', class: 'small', id: 'calibration-larger', 'aria-label': t('calibrate.larger') }, '+');
  const value = h('output', { id: 'calibration-value', for: 'calibration-size' });
  const saved = h('p', { id: 'calibration-saved', role: 'status' });

  function draw() {
    const wrapW = Math.max(200, wrap.clientWidth);
    const rulerMm = Math.max(20, Math.min(150, Math.floor((wrapW - 20) / pxPerMm / 10) * 10));
    const cardW = CARD_MM * pxPerMm, cardH = CARD_H_MM * pxPerMm;
    const cssW = Math.max(wrapW, Math.ceil(cardW) + 20), cssH = Math.ceil(cardH) + 20 + 24 + 12 * pxPerMm;
    const b = backingSize(cssW, cssH, dpr);
    canvas.width = b.width; canvas.height = b.height;
    canvas.style.width = `${cssW}px`; canvas.style.height = `${cssH}px`;
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    // The card: its outline at 85.6 × 53.98 mm, corners rounded 3 mm.
    const x0 = 10, y0 = 10, r = 3 * pxPerMm;
    ctx.fillStyle = '#e9f2f6';
    ctx.strokeStyle = '#0b6e8a';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.roundRect(x0, y0, cardW, cardH, r);
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = '#0b6e8a';
    ctx.font = '13px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText('← 85.6 mm →', x0 + cardW / 2, y0 + cardH / 2);
    // The ruler beneath: a tick each mm, longer each 5 mm, numbered each 10 mm (centimetres).
    const ry = y0 + cardH + 24;
    ctx.strokeStyle = '#1d2733';
    ctx.fillStyle = '#1d2733';
    ctx.lineWidth = 1;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.beginPath();
    for (let mm = 0; mm <= rulerMm; mm++) {
      const x = crisp(x0 + mm * pxPerMm, dpr);
      const len = mm % 10 === 0 ? 4 : mm % 5 === 0 ? 3 : 1.8;
      ctx.moveTo(x, ry); ctx.lineTo(x, ry + len * pxPerMm);
      if (mm % 10 === 0) ctx.fillText(String(mm / 10), x, ry + 5.5 * pxPerMm + 8);
    }
    ctx.moveTo(x0, crisp(ry, dpr)); ctx.lineTo(x0 + rulerMm * pxPerMm, crisp(ry, dpr));
    ctx.stroke();
    value.textContent = t('calibrate.value', { v: number(pxPerMm, { digits: 2 }), mm: rulerMm });
    canvas.dataset.pxPerMm = String(pxPerMm);
  }

  /** @param {number} v px per mm */
  function set(v) {
    pxPerMm = Math.min(MAX_PX_PER_MM, Math.max(MIN_PX_PER_MM, v));
    slider.value = String(pxPerMm * CARD_MM);
    saved.textContent = '';
    draw();
  }
  slider.addEventListener('input', () => set(Number(slider.value) / CARD_MM));
  smaller.addEventListener('click', () => set(pxPerMm - 0.5 / CARD_MM));
  larger.addEventListener('click', () => set(pxPerMm + 0.5 / CARD_MM));

  const save = h('button', { type: 'button', class: 'primary', id: 'calibration-save' }, t('calibrate.save'));
  save.addEventListener('click', () => {
    if (saveCalibration(storage, pxPerMm, dpr)) {
      if (next) { location.hash = next; return; }
      saved.textContent = t('calibrate.saved');
    } else {
      saved.textContent = t('calibrate.not_saved');
    }
  });
  const reset = h('button', { type: 'button', class: 'small', id: 'calibration-reset' }, t('calibrate.reset'));
  reset.addEventListener('click', () => {
    try { storage?.removeItem(CALIBRATION_KEY); storage?.removeItem(CALIBRATION_DPR_KEY); } catch (_) { /* refused */ }
    set(readCalibration(null).pxPerMm);
    saved.textContent = t('calibrate.reset_done');
  });

  const wrap = h('div', { class: 'calibration-wrap' }, canvas);
  show(h('h1', {}, t('calibrate.title')),
    h('p', {}, t('calibrate.intro')),
    h('ol', { class: 'calibration-steps' }, h('li', {}, t('calibrate.step_card')), h('li', {}, t('calibrate.step_ruler')), h('li', {}, t('calibrate.step_zoom'))),
    h('p', { class: 'muted' }, start.calibrated ? t('calibrate.current', { v: number(start.pxPerMm, { digits: 2 }) }) : t('calibrate.default')),
    h('div', { class: 'box calibration-controls' },
      h('label', { for: 'calibration-size' }, t('calibrate.size')),
      h('div', { class: 'calibration-row' }, smaller, slider, larger),
      value),
    wrap,
    h('p', { class: 'actions-bar' }, save, reset, next ? h('a', { href: next }, t('calibrate.back')) : h('a', { href: '#/ecgs' }, t('ecg.back'))),
    saved);
  draw();
  const ro = new ResizeObserver(() => draw());
  ro.observe(wrap);
  onPageLeave(() => ro.disconnect());
}

function safeStorage() {
  try { return window.localStorage; } catch (_) { return null; }
}
