// The centre's turnaround over the last 7 or 30 days: per kind, priority and sending site, how
// many requests, the median and 90th percentile of received→claimed, claimed→signed and
// signed→acknowledged, and the share within the service level; the same as bar charts drawn
// here in SVG (no script from elsewhere), and as CSV.

import { api } from '../lib/api.js';
import { h, mainEl, onPageLeave, raw, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { number, percent } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { loadSites, siteName } from '../lib/people.js';
import { INTERVALS, barChart, duration } from '../lib/reading.js';
import { readingsHash, turnaroundHash } from '../lib/router.js';

/**
 * @typedef {{ p50_ms: number | null, p90_ms: number | null } | null | undefined} Quantiles
 * @typedef {{ kind: string, priority: string, sending_site: string, count: number, claimed?: Quantiles,
 *   signed?: Quantiles, acknowledged?: Quantiles, within_sla: number | null }} StatsRow
 */

const SVG = 'http://www.w3.org/2000/svg';

/**
 * An SVG element (text as text, never markup).
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {...(Node | string)} children
 * @returns {SVGElement}
 */
function svg(tag, attrs = {}, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG, tag));
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** @param {StatsRow} r */
const rowLabel = r => `${label('reading_kind', r.kind)} · ${label('priority', r.priority)} · ${siteName(r.sending_site)}`;

/** @param {Quantiles} q @param {'p50_ms' | 'p90_ms'} k */
const value = (q, k) => (q && typeof q[k] === 'number' ? /** @type {number} */ (q[k]) : null);

/** @param {Quantiles} q */
function quantiles(q) {
  const p50 = value(q, 'p50_ms'), p90 = value(q, 'p90_ms');
  return p50 === null && p90 === null ? '—' : t('turnaround.p50_p90', { p50: p50 === null ? '—' : duration(p50), p90: p90 === null ? '—' : duration(p90) });
}

/**
 * One interval's bars, a group per row.
 * @param {StatsRow[]} rows
 * @param {'claimed' | 'signed' | 'acknowledged'} interval
 */
function chart(rows, interval) {
  const c = barChart(rows.map(r => ({ label: rowLabel(r), p50: value(r[interval], 'p50_ms'), p90: value(r[interval], 'p90_ms') })));
  const title = t(`turnaround.interval.${interval}`);
  const el = svg('svg', {
    class: 'bars', viewBox: `0 0 ${c.width} ${c.height}`, role: 'img', 'data-interval': interval, 'aria-label': t('turnaround.chart_label', { interval: title }),
  });
  for (const tk of c.ticks) {
    for (const band of c.bands) el.append(svg('line', { class: 'grid', x1: tk.x, x2: tk.x, y1: band.y - 1, y2: band.y + band.h + 1 }));
    el.append(svg('text', { class: 'tick', x: tk.x, y: c.axisY + 14, 'text-anchor': tk.x === 0 ? 'start' : 'middle' }, tk.ms ? duration(tk.ms) : '0'));
  }
  for (const l of c.labels) el.append(svg('text', { class: 'row-label', x: l.x, y: l.y }, l.text));
  // A row without times says so where its bars would be.
  for (const band of c.bands) {
    if (!c.bars.some(b => b.row === band.row)) el.append(svg('text', { class: 'bar-value', x: 4, y: band.y + band.h / 2 + 4 }, '—'));
  }
  for (const b of c.bars) {
    const text = `${t(`turnaround.${b.which}`)}: ${duration(b.ms)}`;
    el.append(svg('rect', { class: `bar ${b.which}`, x: b.x, y: b.y, width: Math.max(1, b.w), height: b.h, 'data-row': b.row, 'data-which': b.which, 'data-ms': b.ms },
      svg('title', {}, text)),
    svg('text', { class: 'bar-value', x: b.w + 4, y: b.y + b.h - 2 }, duration(b.ms)));
  }
  if (!c.bars.length) el.append(svg('text', { class: 'row-label', x: 0, y: c.axisY + 14 }, t('turnaround.no_values')));
  return h('figure', { class: 'turnaround-chart box', 'data-interval': interval }, h('figcaption', {}, h('h3', {}, title)), el);
}

/**
 * @param {StatsRow} r
 */
function statsRow(r) {
  return h('tr', { 'data-kind': r.kind, 'data-priority': r.priority, 'data-site': r.sending_site },
    h('td', {}, label('reading_kind', r.kind)), h('td', {}, label('priority', r.priority)), h('td', {}, raw(siteName(r.sending_site))),
    h('td', { class: 'num' }, number(r.count)),
    INTERVALS.map(k => h('td', { 'data-interval': k }, quantiles(/** @type {any} */ (r)[k]))),
    h('td', { class: 'num', 'data-sla': r.within_sla ?? '' }, typeof r.within_sla === 'number' ? percent(r.within_sla) : '—'));
}

/** @param {7 | 30} [days] */
export async function turnaroundPage(days = 7) {
  const show = startPage();
  const switcher = h('nav', { class: 'tabs', 'aria-label': t('turnaround.period') },
    [7, 30].map(d => h('a', { href: turnaroundHash(d), class: d === days ? 'on' : null, 'aria-current': d === days ? 'page' : null, id: `days-${d}` },
      t('turnaround.days', { count: d }))));
  const head = [h('h1', {}, t('turnaround.title')),
    h('p', { class: 'muted' }, t('turnaround.intro'), ' ', h('a', { href: readingsHash() }, t('turnaround.back'))), switcher];
  /** @type {StatsRow[]} */
  let rows;
  try {
    rows = (await api('GET', `/api/reading-stats?days=${days}`)).rows || [];
    await loadSites();
  } catch (e) {
    show(...head, errorBox(e));
    return;
  }
  const main = mainEl();
  main.classList.add('roomy');
  onPageLeave(() => main.classList.remove('roomy'));
  const headers = [t('turnaround.col.kind'), t('turnaround.col.priority'), t('turnaround.col.site'), t('turnaround.col.count'),
    ...INTERVALS.map(k => t(`turnaround.interval.${k}`)), t('turnaround.col.within_sla')];
  show(...head,
    h('p', {}, h('a', { class: 'button', id: 'turnaround-csv', href: `/api/reading-stats?days=${days}&format=csv`, download: '' }, t('turnaround.csv'))),
    h('p', { class: 'muted' }, t('turnaround.how')),
    table(headers, rows.length ? rows.map(statsRow)
      : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted', id: 'no-stats' }, t('turnaround.none')))], { id: 'turnaround-table' }),
    rows.length ? [
      h('h2', {}, t('turnaround.charts')),
      h('p', { class: 'legend' }, h('span', { class: 'swatch p50', 'aria-hidden': 'true' }), t('turnaround.p50'), ' ',
        h('span', { class: 'swatch p90', 'aria-hidden': 'true' }), t('turnaround.p90')),
      h('div', { class: 'turnaround-charts' }, INTERVALS.map(k => chart(rows, /** @type {'claimed' | 'signed' | 'acknowledged'} */ (k)))),
    ] : null);
}
