// The reading worklist (a centre's readers: what its clinics sent, STAT first, then the longest
// waiting) or a clinic's requests and reports (its clinicians: reports not yet read stand out).
// Live: every `reading` event refetches the list; the clocks tick every 30 s.

import { api } from '../lib/api.js';
import { field, formValues, h, mainEl, onPageLeave, raw, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { shortDateTime } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { knownSites, loadPeople, loadSites, nameOf, siteName } from '../lib/people.js';
import { KINDS, OPEN_STATES, PRIORITIES, STATES, clockOffset, duration, isUnread, ms, readingQuery } from '../lib/reading.js';
import { readingHash, readingsHash, turnaroundHash } from '../lib/router.js';
import { listen } from '../lib/socket.js';
import { clockEl, kindText, priorityBadge, readingPatient, readsAtCentre, refreshClock, stateText } from './reading-common.js';
import { MODALITIES } from './studies.js';

/** @typedef {import('../lib/reading.js').Reading} Reading */

/** How often the clocks and waiting times are redrawn. */
export const TICK_MS = 30000;

/**
 * How long an open request has waited at `now` ('' once it is closed).
 * @param {Reading} r
 * @param {number} now
 */
function waitingText(r, now) {
  const start = ms(r.ready_at ?? r.received_at);
  return OPEN_STATES.includes(r.state) && start !== null ? t('readings.waiting', { time: duration(Math.max(0, now - start)) }) : '';
}

/**
 * The filters: kind, modality, priority, state, sending site (for a centre), received from/to.
 * Applying them changes the location (so the list can be linked and goes back); the same
 * filters again fetch the list again (`again`).
 * @param {Record<string, string>} query
 * @param {'centre' | 'sent'} scope
 * @param {() => void} again
 */
function filterForm(query, scope, again) {
  const val = (/** @type {string} */ k) => query[k] || '';
  /**
   * @param {string} name
   * @param {string} text
   * @param {{ value: string, text: string, raw?: boolean }[]} options
   */
  const select = (name, text, options) => field(text, h('select', { name }, options.map(o =>
    h('option', { value: o.value, selected: o.value === val(name), translate: o.raw ? 'no' : null }, o.text))));
  const any = { value: '', text: t('common.any') };
  const form = h('form', { class: 'box', id: 'reading-filters', role: 'search', 'aria-label': t('readings.filters') },
    h('div', { class: 'row' },
      select('kind', t('readings.kind'), [any, ...KINDS.map(k => ({ value: k, text: label('reading_kind', k) }))]),
      select('modality', t('studies.modality'), [any, ...MODALITIES.map(m => ({ value: m, text: m, raw: true }))]),
      select('priority', t('readings.priority'), [any, ...PRIORITIES.map(p => ({ value: p, text: label('priority', p) }))]),
      select('state', t('readings.state'), [{ value: '', text: scope === 'sent' ? t('readings.state_not_cancelled') : t('readings.state_open') },
        { value: 'all', text: t('readings.state_all') }, ...STATES.map(s => ({ value: s, text: stateText(s) }))]),
      scope === 'centre' ? select('sending_site', t('readings.sending_site'), [any, ...knownSites().map(s => ({ value: s.id, text: s.name, raw: true }))]) : null,
      field(t('readings.from'), h('input', { name: 'from', type: 'date', value: val('from') })),
      field(t('readings.to'), h('input', { name: 'to', type: 'date', value: val('to') }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('readings.filter'))));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const next = readingsHash(formValues(form));
    if (location.hash === next) again(); else location.hash = next;
  });
  return form;
}

/** @param {Record<string, string>} [query] the filters (see router's `readingSearch`) */
export async function readingsPage(query = {}) {
  const show = startPage();
  const scope = readsAtCentre() ? 'centre' : 'sent';
  const err = h('div'), list = h('div'), unread = h('div');
  /** @type {Reading[]} */
  let items = [];
  let offset = 0, seq = 0;
  /** @type {{ r: Reading, clock: HTMLElement, waiting: HTMLElement }[]} */
  let clocks = [];
  const now = () => Date.now() + offset;

  /** @param {Reading} r */
  const row = r => {
    const clock = clockEl(r, now());
    const waiting = h('div', { class: 'muted waiting' }, waitingText(r, now()));
    clocks.push({ r, clock, waiting });
    const fresh = scope === 'sent' && isUnread(r);
    const s = r.study || {};
    return h('tr', {
      'data-reading': r.id, 'data-state': r.state, 'data-priority': r.priority, 'data-kind': r.kind,
      'data-study': r.study_uid, 'data-ecg': r.ecg_id || null,
      class: ['reading-row', `priority-row-${r.priority}`, r.breached ? 'breached' : '', fresh ? 'unread' : ''].filter(Boolean).join(' '),
      // The whole row opens the request; its link is the keyboard's way.
      onclick: (/** @type {MouseEvent} */ ev) => { if (!/** @type {HTMLElement} */ (ev.target).closest('a, button, details')) location.hash = readingHash(r.id); },
    },
    h('td', {}, priorityBadge(r.priority)),
    h('td', {}, readingPatient(r)),
    h('td', {}, h('a', { href: readingHash(r.id), class: 'open-reading' }, kindText(r)),
      r.kind === 'imaging' && r.instances ? h('div', { class: 'muted' }, t('study.images', { count: r.instances })) : null),
    h('td', {}, s.study_description ? raw(s.study_description) : h('span', { class: 'muted' }, t('study.no_description')),
      r.question ? raw(r.question, 'div', { class: 'muted clip', title: r.question }) : null),
    h('td', {}, raw(siteName(scope === 'centre' ? r.sending_site : r.centre_site))),
    h('td', { class: 'nowrap' }, shortDateTime(r.received_at), waiting),
    h('td', {}, clock),
    h('td', { class: `state reading-state-${r.state}` }, stateText(r.state),
      r.claimed_by && r.state === 'claimed' ? raw(nameOf(r.claimed_by), 'div', { class: 'muted', 'data-user': r.claimed_by }) : null,
      fresh ? h('div', { class: 'unread-tag' }, t('readings.unread_tag')) : null));
  };

  function draw() {
    clocks = [];
    const headers = [t('readings.col.priority'), t('readings.col.patient'), t('readings.col.kind'), t('readings.col.description'),
      scope === 'centre' ? t('readings.col.sending_site') : t('readings.col.centre'), t('readings.col.received'),
      t('readings.col.sla'), t('readings.col.state')];
    const rows = items.map(row);
    list.replaceChildren(table(headers, rows.length ? rows
      : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted', id: 'no-readings' }, t(scope === 'centre' ? 'readings.none_centre' : 'readings.none_sent')))],
    { id: 'reading-list', 'data-scope': scope }));
    const n = scope === 'sent' ? items.filter(isUnread).length : 0;
    unread.replaceChildren(n ? h('p', { class: 'notice unread-notice', id: 'unread-reports' }, t('readings.unread_count', { count: n })) : '');
  }
  function tick() {
    for (const c of clocks) {
      refreshClock(c.clock, c.r, now());
      c.waiting.textContent = waitingText(c.r, now());
    }
  }
  async function load() {
    const mine = ++seq;
    try {
      const res = await api('GET', `/api/readings?${readingQuery(scope, query)}`);
      const fetchedAt = Date.now();
      await loadPeople(res.readings.map((/** @type {Reading} */ r) => r.claimed_by));
      if (mine !== seq) return;
      items = res.readings;
      offset = clockOffset(items, fetchedAt);
      err.replaceChildren();
      draw();
    } catch (e) { if (mine === seq) err.replaceChildren(errorBox(e)); }
  }

  // Live: any change of a request refetches the list (new, claimed, released, signed…).
  listen('reading', () => { load(); });
  listen('open', () => { load(); });
  const timer = setInterval(tick, TICK_MS);
  onPageLeave(() => clearInterval(timer));
  const main = mainEl();
  main.classList.add('roomy'); // eight columns
  onPageLeave(() => main.classList.remove('roomy'));

  await loadSites();
  show(h('h1', {}, scope === 'centre' ? t('readings.worklist_title') : t('readings.sent_title')),
    h('p', { class: 'muted' }, scope === 'centre' ? t('readings.worklist_intro') : t('readings.sent_intro'),
      scope === 'centre' ? [' ', h('a', { href: turnaroundHash(), id: 'turnaround-link' }, t('readings.turnaround_link'))] : null),
    filterForm(query, scope, () => { load(); }), err, unread,
    h('section', { 'aria-label': scope === 'centre' ? t('readings.worklist_title') : t('readings.sent_title') }, list));
  await load();
}
