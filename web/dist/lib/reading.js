// Reading requests as the API answers them (docs/reading.md), and what the pages say about
// them: durations for people ("12 min", "1 h 5 min"), the service-level clock, the list's
// query, which reports the clinic has not read yet, the turnaround charts' geometry, and a
// centre's routing rules and report templates as its admins keep them. Pure.

import { t } from './i18n.js';

/**
 * @typedef {{ patient_name?: string | null, patient_id?: string | null, patient_sex?: string | null,
 *   patient_birth_date?: string | null, study_date?: string | null, study_description?: string | null }} ReadingStudy
 * @typedef {{ findings: string, impression: string, conclusions: string[] }} ReportBody
 * @typedef {{ version: number, body: ReportBody, reason?: string | null, signed_by: string,
 *   signed_at: number | string, content_sha256: string }} Report
 * @typedef {{ by: string, at: number | string, outcome: string, note?: string | null }} CriticalCall
 * @typedef {{ id: string, reading: string, finding: string, note?: string | null, raised_by: string,
 *   raised_at: number | string, acknowledged_by?: string | null, acknowledged_at?: number | string | null,
 *   readback?: string | null, escalated_at?: number | string | null, calls: CriticalCall[],
 *   sending_site: string, callback_phone?: string | null, state: 'open' | 'acknowledged' }} Critical
 * @typedef {{ id: string, kind: 'imaging' | 'ecg', priority: 'stat' | 'urgent' | 'routine',
 *   state: 'collecting' | 'ready' | 'claimed' | 'review' | 'signed' | 'cancelled', study_uid: string,
 *   ecg_id?: string | null, modality?: string | null, sending_site: string, centre_site: string,
 *   question?: string | null, callback_phone?: string | null, requested_by: string, instances: number,
 *   received_at: string | number, ready_at?: string | number | null, claimed_by?: string | null,
 *   claimed_at?: string | number | null, signed_at?: string | number | null,
 *   acknowledged_at?: string | number | null, acknowledged_by?: string | null,
 *   due_at: string | number, breached: boolean, waiting_ms: number, study?: ReadingStudy | null,
 *   critical?: any[] }} Reading
 * @typedef {Reading & { reports: Report[], draft: ReportBody | null, can: string[],
 *   critical_findings?: string[], conclusions?: string[], template?: { findings?: string, impression?: string } | null }} ReadingDetail
 * @typedef {{ id: string, centre_site: string, from_site: string, subtree: boolean, kind: 'imaging' | 'ecg',
 *   modalities: string[], priority: 'stat' | 'urgent' | 'routine', created_by: string, created_at: number }} RoutingRule
 * @typedef {{ from_site: string, subtree: boolean, kind: 'imaging' | 'ecg', modalities: string[],
 *   priority: 'stat' | 'urgent' | 'routine' }} NewRoutingRule
 * @typedef {{ kind: 'imaging' | 'ecg', modality: string, findings: string, impression: string,
 *   updated_by?: string, updated_at?: number }} ReportTemplate
 *   `modality` '' is the kind's template for any modality without one of its own
 */

export const KINDS = ['imaging', 'ecg'];
export const PRIORITIES = ['stat', 'urgent', 'routine'];
export const STATES = ['collecting', 'ready', 'claimed', 'review', 'signed', 'cancelled'];
export const OPEN_STATES = ['collecting', 'ready', 'claimed', 'review'];
/** What the clinic's list shows by default: everything but what it cancelled. */
export const SENT_STATES = ['collecting', 'ready', 'claimed', 'review', 'signed'];
/** The outcomes of a call the reader logs about a critical result. */
export const CALL_OUTCOMES = ['reached', 'no_answer', 'left_message'];
/** The critical findings and ECG conclusions the catalogue names (the server sends the codes). */
export const CRITICAL_FINDINGS = ['stemi', 'vt', 'vf', 'complete_av_block', 'pause_3s', 'severe_brady', 'long_qt',
  'intracranial_haemorrhage', 'tension_pneumothorax', 'aortic_dissection', 'pulmonary_embolism', 'bowel_perforation'];
export const ECG_CONCLUSIONS = ['normal', 'sinus_rhythm', 'sinus_tachycardia', 'sinus_bradycardia', 'af', 'flutter',
  'pvc', 'pac', 'lbbb', 'rbbb', 'first_degree_av_block', 'lvh', 'st_t_change', 'old_mi'];
/** The turnaround page's intervals: received→claimed, claimed→signed, signed→acknowledged. */
export const INTERVALS = ['claimed', 'signed', 'acknowledged'];

/** @param {string} id */
export const readingPath = id => `/api/readings/${encodeURIComponent(id)}`;

/**
 * A time as unix ms (the API gives RFC 3339 strings for requests, unix ms for reports and
 * critical results); null when absent or not a time.
 * @param {string | number | null | undefined} v
 */
export function ms(v) {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : Date.parse(v);
  return Number.isFinite(n) ? n : null;
}

const SECOND = 1000, MINUTE = 60 * SECOND, HOUR = 60 * MINUTE, DAY = 24 * HOUR;

/**
 * A duration for people: "45 s", "12 min", "1 h 5 min", "1 d 2 h" (in the language of the
 * catalogue); seconds only under a minute ("<1 s" under a second), whole minutes below.
 * @param {number} d milliseconds (negative taken as its size)
 */
export function duration(d) {
  const a = Math.abs(d);
  if (a > 0 && a < SECOND) return t('duration.under_s');
  if (a < MINUTE) return t('duration.s', { n: Math.floor(a / SECOND) });
  if (a < HOUR) return t('duration.min', { n: Math.floor(a / MINUTE) });
  if (a < DAY) {
    const h = Math.floor(a / HOUR), m = Math.floor((a % HOUR) / MINUTE);
    return m ? t('duration.h_min', { h, m }) : t('duration.h', { h });
  }
  const days = Math.floor(a / DAY), h = Math.floor((a % DAY) / HOUR);
  return h ? t('duration.d_h', { d: days, h }) : t('duration.d', { d: days });
}

/**
 * The difference between the server's clock and this one (add it to Date.now()), read from the
 * list's waiting times: an open request waits `waiting_ms` since it was ready (or received) at
 * the moment the server answered. 0 when nothing tells.
 * @param {Reading[]} items
 * @param {number} fetchedAt this clock when the answer arrived
 */
export function clockOffset(items, fetchedAt) {
  const r = items.find(x => OPEN_STATES.includes(x.state) && x.waiting_ms > 0 && ms(x.ready_at ?? x.received_at) !== null);
  if (!r) return 0;
  const serverNow = /** @type {number} */ (ms(r.ready_at ?? r.received_at)) + r.waiting_ms;
  const off = serverNow - fetchedAt;
  // Within a few seconds is the answer's own travel time, not a wrong clock.
  return Math.abs(off) < 5000 ? 0 : off;
}

/**
 * @typedef {{ level: 'none' | 'left' | 'soon' | 'overdue' | 'met' | 'late', ms: number, text: string }} SlaClock
 */

/**
 * The service-level clock of a request at `now`: time left until it is due (`soon` in its last
 * quarter), overdue by how long, or for a signed one whether it was in time.
 * @param {Reading} r
 * @param {number} now
 * @returns {SlaClock}
 */
export function slaClock(r, now) {
  const due = ms(r.due_at);
  if (r.state === 'cancelled' || due === null) return { level: 'none', ms: 0, text: '' };
  if (r.state === 'signed') {
    const signed = ms(r.signed_at);
    const late = signed !== null ? signed - due : 0;
    return r.breached || late > 0
      ? { level: 'late', ms: Math.max(0, late), text: late > 0 ? t('reading.sla.late', { time: duration(late) }) : t('reading.sla.late_plain') }
      : { level: 'met', ms: 0, text: t('reading.sla.met') };
  }
  const left = due - now;
  if (left <= 0 || r.breached) {
    return { level: 'overdue', ms: Math.max(0, -left), text: left < 0 ? t('reading.sla.overdue', { time: duration(-left) }) : t('reading.sla.overdue_plain') };
  }
  const start = ms(r.ready_at ?? r.received_at);
  const window = start !== null && due > start ? due - start : left;
  return { level: left < window / 4 ? 'soon' : 'left', ms: left, text: t('reading.sla.left', { time: duration(left) }) };
}

/**
 * A signed report the sending clinic has not acknowledged yet.
 * @param {Reading} r
 */
export function isUnread(r) {
  return r.state === 'signed' && !r.acknowledged_at;
}

/**
 * The list's `state` parameter for the form's choice: `open` is the server's default for the
 * centre, and everything but cancelled for the clinic; `all` every state; else one state.
 * @param {string | undefined} choice
 * @param {'centre' | 'sent'} scope
 * @returns {string | null}
 */
export function stateParam(choice, scope) {
  if (choice && STATES.includes(choice)) return choice;
  if (choice === 'all') return STATES.join(',');
  if (choice === 'open') return OPEN_STATES.join(',');
  return scope === 'sent' ? SENT_STATES.join(',') : null;
}

/**
 * The list API's query for a scope and the filters of the page's location.
 * @param {'centre' | 'sent'} scope
 * @param {Record<string, string>} f kind, modality, priority, state, sending_site, from, to
 */
export function readingQuery(scope, f = {}) {
  const q = new URLSearchParams({ scope });
  for (const k of ['kind', 'modality', 'priority', 'sending_site', 'from', 'to']) if (f[k]) q.set(k, f[k]);
  const state = stateParam(f.state, scope);
  if (state) q.set('state', state);
  return q;
}

/**
 * The request of the clinic's list for a study or an ECG: the newest one not cancelled.
 * @param {Reading[]} list
 * @param {{ study_uid?: string, ecg_id?: string }} what
 */
export function requestFor(list, what) {
  const mine = list.filter(r => r.state !== 'cancelled'
    && (what.ecg_id ? r.ecg_id === what.ecg_id : r.kind === 'imaging' && r.study_uid === what.study_uid));
  return mine.sort((a, b) => (ms(b.received_at) || 0) - (ms(a.received_at) || 0))[0] || null;
}

/**
 * The worklist's counts for the home page: ready to read, past their time, mine.
 * @param {Reading[]} list
 * @param {string} me
 */
export function worklistCounts(list, me) {
  return {
    ready: list.filter(r => r.state === 'ready').length,
    breached: list.filter(r => r.breached && OPEN_STATES.includes(r.state)).length,
    mine: list.filter(r => r.state === 'claimed' && r.claimed_by === me).length,
  };
}

// ---- the turnaround charts ----

/** Tick steps a chart may use, smallest first. */
const STEPS = [SECOND, 5 * SECOND, 10 * SECOND, 30 * SECOND, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE,
  15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 30 * DAY];

/**
 * A round tick step for an axis up to `max` ms: at most `most` steps.
 * @param {number} max
 * @param {number} [most]
 */
export function tickStep(max, most = 4) {
  return STEPS.find(s => max / s <= most) || Math.ceil(max / most);
}

/**
 * @typedef {{ label: string, p50: number | null, p90: number | null }} ChartRow
 * @typedef {{ row: number, which: 'p50' | 'p90', x: number, y: number, w: number, h: number, ms: number }} Bar
 * @typedef {{ width: number, height: number, plotW: number, max: number, axisY: number,
 *   labels: { row: number, x: number, y: number, text: string }[], bars: Bar[], ticks: { x: number, ms: number }[],
 *   bands: { row: number, y: number, h: number }[] }} Chart
 *   `bands`: where each row's bars go (the grid is drawn there only, not through the labels)
 */

/**
 * Where the bars of one interval go: a group per row (its label above two bars, the median
 * and the 90th percentile), lengths on one scale from 0 to a round maximum, ticks beneath.
 * Rows without values keep their label and have no bar.
 * @param {ChartRow[]} rows
 * @param {{ width?: number, valueW?: number, labelH?: number, barH?: number, barGap?: number, groupGap?: number, axisH?: number }} [o]
 * @returns {Chart}
 */
export function barChart(rows, o = {}) {
  const width = o.width ?? 600, valueW = o.valueW ?? 96, labelH = o.labelH ?? 16, barH = o.barH ?? 12;
  const barGap = o.barGap ?? 2, groupGap = o.groupGap ?? 10, axisH = o.axisH ?? 20;
  const plotW = width - valueW;
  const values = rows.flatMap(r => [r.p50, r.p90]).filter(/** @returns {v is number} */ v => typeof v === 'number' && v >= 0);
  const top = Math.max(0, ...values);
  const step = top > 0 ? tickStep(top) : 0;
  const max = step ? Math.ceil(top / step) * step : 0;
  const groupH = labelH + 2 * barH + barGap + groupGap;
  /** @type {Chart['labels']} */
  const labels = [];
  /** @type {Bar[]} */
  const bars = [];
  /** @type {Chart['bands']} */
  const bands = [];
  rows.forEach((r, i) => {
    const y0 = i * groupH;
    labels.push({ row: i, x: 0, y: y0 + labelH - 4, text: r.label });
    bands.push({ row: i, y: y0 + labelH, h: 2 * barH + barGap });
    for (const [k, which] of /** @type {const} */ ([[0, 'p50'], [1, 'p90']])) {
      const v = r[which];
      if (typeof v !== 'number' || v < 0 || !max) continue;
      bars.push({ row: i, which, x: 0, y: y0 + labelH + k * (barH + barGap), w: (v / max) * plotW, h: barH, ms: v });
    }
  });
  const axisY = rows.length * groupH;
  const ticks = [];
  for (let v = 0; step && v <= max + 1e-9; v += step) ticks.push({ x: (v / max) * plotW, ms: v });
  return { width, height: axisY + axisH, plotW, max, axisY, labels, bars, ticks, bands };
}

// ---- a centre's routing rules and report templates ----

/** The modalities a routing rule or a template is chosen for on the page (others at the console). */
export const RULE_MODALITIES = ['CT', 'MR', 'DX', 'CR', 'US', 'MG', 'XA'];

/** A centre's routing rules. @param {string} site */
export const rulesPath = site => `/api/sites/${encodeURIComponent(site)}/routing-rules`;
/** One routing rule. @param {string} id */
export const rulePath = id => `/api/routing-rules/${encodeURIComponent(id)}`;

/**
 * A centre's report templates; with a key, the one template of that kind and modality ('' for
 * any) (what DELETE takes).
 * @param {string} site
 * @param {{ kind: string, modality: string }} [key]
 */
export function templatesPath(site, key) {
  const path = `/api/sites/${encodeURIComponent(site)}/reading-templates`;
  return key ? `${path}?${new URLSearchParams({ kind: key.kind, modality: key.modality || '' })}` : path;
}

/**
 * @param {string | undefined} v
 * @returns {'imaging' | 'ecg'}
 */
const kindOf = v => (v === 'ecg' ? 'ecg' : 'imaging');

/**
 * Modality codes as the server keeps them: upper case, each once, blanks dropped.
 * @param {string[]} codes
 */
export function modalityCodes(codes) {
  return [...new Set(codes.map(m => m.trim().toUpperCase()).filter(Boolean))];
}

/**
 * The body of a new routing rule from the form's values (`subtree` is "on" when ticked) and the
 * modalities ticked: an ECG rule names none; no modality is every modality.
 * @param {Record<string, string>} v from_site, subtree, kind, priority
 * @param {string[]} modalities
 * @returns {NewRoutingRule}
 */
export function ruleBody(v, modalities) {
  const kind = kindOf(v.kind);
  const priority = /** @type {NewRoutingRule['priority']} */ (PRIORITIES.includes(v.priority) ? v.priority : 'routine');
  return { from_site: v.from_site || '', subtree: v.subtree === 'on', kind, modalities: kind === 'imaging' ? modalityCodes(modalities) : [], priority };
}

/**
 * The body of PUT reading-templates from the form's values: an ECG's template is for any
 * modality of the kind.
 * @param {Record<string, string>} v kind, modality, findings, impression
 * @returns {ReportTemplate}
 */
export function templateBody(v) {
  const kind = kindOf(v.kind);
  return { kind, modality: kind === 'ecg' ? '' : modalityCodes([v.modality || ''])[0] || '', findings: v.findings || '', impression: v.impression || '' };
}

/**
 * The first line of a text that has something on it, cut to `max` characters ("…" at the end).
 * @param {string | null | undefined} text
 * @param {number} [max]
 */
export function firstLine(text, max = 80) {
  const line = String(text || '').split(/\r?\n/).map(l => l.trim()).find(Boolean) || '';
  const chars = [...line];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : line;
}
