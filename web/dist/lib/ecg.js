// ECG records as the API answers them (GET /api/ecgs…), and what the pages say about them:
// the search form as a query, the acquisition time (the cart's wall clock, no zone), and the
// device's measurements beside Ferry's own with large differences marked. Pure.

import { locale } from './i18n.js';

/** @typedef {import('./i18n.js').Locale} Locale */
/**
 * @typedef {{ heart_rate_bpm?: number, rr_ms?: number, pr_ms?: number, qrs_ms?: number, qt_ms?: number,
 *   qtc_bazett_ms?: number, qtc_fridericia_ms?: number, p_axis_deg?: number, qrs_axis_deg?: number,
 *   t_axis_deg?: number }} Measurements
 * @typedef {{ kind: 'rhythm' | 'median', sampling_hz: number, duration_ms: number, leads: string[] }} Group
 * @typedef {{ id: string, format: string, acquired_at: string | null, site: string, study_uid: string | null,
 *   sop_uid: string | null, patient: { name: string | null, id: string | null, birth_date: string | null, sex: string | null },
 *   groups: Group[], measurements: { device?: Measurements, computed?: Measurements }, statements: string[],
 *   device_model: string | null, created_at: string }} EcgRecord
 * @typedef {{ sampling_hz: number, leads: { name: string, uv: number[] }[] }} Waveform
 */

export const FORMATS = ['dicom', 'muse', 'aecg', 'scp'];

/**
 * The search form's fields as the list API's query.
 * @param {{ name?: string | null, patient_id?: string | null, from?: string | null, to?: string | null, format?: string | null }} f
 * @param {number} [limit]
 */
export function ecgQuery(f, limit = 200) {
  const q = new URLSearchParams();
  for (const k of /** @type {const} */ (['name', 'patient_id', 'from', 'to'])) {
    const v = (f[k] || '').trim();
    if (v) q.set(k, v);
  }
  if (f.format && FORMATS.includes(f.format)) q.set('format', f.format);
  q.set('limit', String(limit));
  return q;
}

/**
 * The cart's wall-clock time ("YYYY-MM-DDTHH:MM:SS", no zone) as a date and time in the
 * locale, shown as the cart showed it (not moved into the browser's zone); '—' when unknown.
 * @param {string | null | undefined} at
 * @param {{ loc?: Locale }} [o]
 */
export function acquiredText(at, o = {}) {
  const d = wallClock(at);
  if (!d) return '—';
  return new Intl.DateTimeFormat(o.loc || locale(), { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' }).format(d);
}

/**
 * A wall-clock time as the Date of the same reading in UTC; null when not a time.
 * @param {string | null | undefined} at
 */
export function wallClock(at) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(at || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0)));
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * The acquisition day as a DICOM DA value (for the patient's age on that day).
 * @param {string | null | undefined} at
 */
export function acquiredDay(at) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(at || '');
  return m ? `${m[1]}${m[2]}${m[3]}` : '';
}

/**
 * The measurements shown, in order, with what kind of number each is.
 * @type {{ key: keyof Measurements, unit: 'bpm' | 'ms' | 'deg' }[]}
 */
export const MEASURES = [
  { key: 'heart_rate_bpm', unit: 'bpm' },
  { key: 'rr_ms', unit: 'ms' },
  { key: 'pr_ms', unit: 'ms' },
  { key: 'qrs_ms', unit: 'ms' },
  { key: 'qt_ms', unit: 'ms' },
  { key: 'qtc_bazett_ms', unit: 'ms' },
  { key: 'qtc_fridericia_ms', unit: 'ms' },
  { key: 'p_axis_deg', unit: 'deg' },
  { key: 'qrs_axis_deg', unit: 'deg' },
  { key: 't_axis_deg', unit: 'deg' },
];

/** Differences worth a second look: more than 10% for rates and intervals, 15° for axes. */
export const RELATIVE_LIMIT = 0.10;
export const AXIS_LIMIT_DEG = 15;

/**
 * The smaller angle between two axes in degrees (−90° and 270° are the same axis).
 * @param {number} a
 * @param {number} b
 */
export function axisDifference(a, b) {
  const d = Math.abs(a - b) % 360;
  return d > 180 ? 360 - d : d;
}

/**
 * Whether two values of a measure differ enough to be marked.
 * @param {'bpm' | 'ms' | 'deg'} unit
 * @param {number} a
 * @param {number} b
 */
export function differs(unit, a, b) {
  if (unit === 'deg') return axisDifference(a, b) > AXIS_LIMIT_DEG;
  const ref = Math.max(Math.abs(a), Math.abs(b));
  return ref > 0 && Math.abs(a - b) / ref > RELATIVE_LIMIT;
}

/** @param {unknown} v @returns {v is number} */
const isNum = v => typeof v === 'number' && Number.isFinite(v);

/**
 * The device's and Ferry's measurements side by side. A device that gives the RR interval but
 * not the rate has its rate derived (60,000 / RR), marked as derived.
 * @param {Measurements | undefined} device
 * @param {Measurements | undefined} computed
 * @returns {{ key: keyof Measurements, unit: 'bpm' | 'ms' | 'deg', device: number | null, deviceDerived: boolean,
 *   computed: number | null, differs: boolean }[]}
 */
export function compareMeasurements(device = {}, computed = {}) {
  return MEASURES.map(({ key, unit }) => {
    let d = isNum(device[key]) ? /** @type {number} */ (device[key]) : null;
    let deviceDerived = false;
    if (d === null && key === 'heart_rate_bpm' && isNum(device.rr_ms) && device.rr_ms > 0) {
      d = 60000 / device.rr_ms;
      deviceDerived = true;
    }
    const c = isNum(computed[key]) ? /** @type {number} */ (computed[key]) : null;
    return { key, unit, device: d, deviceDerived, computed: c, differs: d !== null && c !== null && differs(unit, d, c) };
  }).filter(r => r.device !== null || r.computed !== null);
}

/**
 * The device's heart rate for a list (given, or from its RR interval), else Ferry's; null
 * when neither has one.
 * @param {EcgRecord['measurements']} m
 */
export function listRate(m) {
  const rows = compareMeasurements(m && m.device, m && m.computed);
  const r = rows.find(x => x.key === 'heart_rate_bpm');
  if (!r) return null;
  return r.device !== null ? { value: r.device, from: 'device' } : { value: /** @type {number} */ (r.computed), from: 'computed' };
}

/**
 * The group of a record's waveform: its rhythm strip or its median beats.
 * @param {EcgRecord} rec
 * @param {'rhythm' | 'median'} kind
 */
export function groupOf(rec, kind) {
  return (rec.groups || []).find(g => g.kind === kind) || null;
}
