// The clinic's critical-result banner (危急值), above every page: while a reading centre's
// critical result for the site is not acknowledged, a red alert names the finding, the patient,
// the reader and the time, links to the reading, offers the acknowledgement (the line read
// back) and beeps every few seconds. Fetched when the app starts and again on every `critical`
// event (and after the socket reconnects); it goes when someone of the site acknowledges.

import { api } from '../lib/api.js';
import { stopAlarm, startAlarm } from '../lib/alarm.js';
import { h, raw } from '../lib/dom.js';
import { dateTime, personName } from '../lib/format.js';
import { label, onLocaleChange, t } from '../lib/i18n.js';
import { loadPeople, nameOf } from '../lib/people.js';
import { readingPath } from '../lib/reading.js';
import { readingHash } from '../lib/router.js';
import { session } from '../lib/session.js';
import { subscribe } from '../lib/socket.js';
import { acknowledgeForm } from './reading-critical.js';
import { sendsForReading } from './reading-common.js';

/** @typedef {import('../lib/reading.js').Critical} Critical */

const watch = {
  on: false, seq: 0,
  /** @type {(() => void)[]} */ off: [],
  /** @type {Critical[]} */ open: [],
  /** @type {Map<string, string>} reading id -> the patient's name as shown */ patients: new Map(),
  /** @type {Map<string, HTMLInputElement>} critical id -> its read-back field */ readbacks: new Map(),
};

/** The banner's place: just beneath the header, made once. */
function container() {
  let el = document.getElementById('critical-banner');
  if (!el) {
    el = h('div', { id: 'critical-banner', class: 'critical-banner', role: 'alert', hidden: true });
    const main = document.getElementById('main');
    if (main && main.parentNode) main.parentNode.insertBefore(el, main); else document.body.prepend(el);
  }
  return el;
}

/**
 * The open critical results of the person's site among those the server lists.
 * @param {Critical[]} list
 * @param {string} site
 */
export function openForSite(list, site) {
  return list.filter(c => !c.acknowledged_at && c.state !== 'acknowledged' && (!c.sending_site || c.sending_site === site));
}

/** Starts watching, for a clinician (others have nothing to acknowledge); once. */
export function startCriticalWatch() {
  if (watch.on || !session.me || !sendsForReading()) return;
  watch.on = true;
  watch.off = [subscribe('critical', refresh), subscribe('open', refresh), onLocaleChange(draw)];
  refresh();
}

/** Stops watching (signed out): the banner and its sound go. */
export function stopCriticalWatch() {
  watch.on = false;
  for (const off of watch.off.splice(0)) off();
  watch.open = [];
  watch.readbacks.clear();
  stopAlarm();
  const el = document.getElementById('critical-banner');
  if (el) { el.replaceChildren(); el.hidden = true; }
}

/** The patient of each reading named by an open result (asked once per reading). @param {Critical[]} list */
async function loadPatients(list) {
  const want = [...new Set(list.map(c => c.reading))].filter(id => !watch.patients.has(id));
  await Promise.all(want.map(async id => {
    try {
      const r = await api('GET', readingPath(id));
      watch.patients.set(id, r.study && r.study.patient_name ? personName(r.study.patient_name) : '');
    } catch (_) { /* named without the patient this time */ }
  }));
}

async function refresh() {
  if (!watch.on || !session.me) return;
  const mine = ++watch.seq;
  try {
    const res = await api('GET', '/api/critical');
    const open = openForSite(res.critical || [], session.me.site.id);
    await Promise.all([loadPatients(open), loadPeople(open.map(c => c.raised_by))]);
    if (mine !== watch.seq || !watch.on) return;
    watch.open = open;
    draw();
  } catch (_) {
    // Asked again on the next event or reconnection.
  }
}

/** @param {Critical} c */
function alertOf(c) {
  if (!watch.readbacks.has(c.id)) {
    watch.readbacks.set(c.id, h('input', { name: 'readback', maxlength: 500, required: true, placeholder: t('critical.readback_placeholder') }));
  }
  // Kept across redraws (what is typed stays), its placeholder in the current language.
  const readback = /** @type {HTMLInputElement} */ (watch.readbacks.get(c.id));
  readback.placeholder = t('critical.readback_placeholder');
  const patient = watch.patients.get(c.reading);
  return h('div', { class: 'critical-alert', 'data-critical': c.id, 'data-reading': c.reading },
    h('div', { class: 'critical-alert-text' },
      h('strong', {}, t('banner.title')), ' ',
      h('span', { class: 'critical-finding' }, label('critical_finding', c.finding)),
      patient ? [' · ', raw(patient, 'span', { class: 'critical-patient' })] : null,
      c.note ? [' · ', raw(c.note, 'span', { class: 'critical-note' })] : null, ' · ',
      t('banner.raised', { by: nameOf(c.raised_by), at: dateTime(c.raised_at) }),
      c.escalated_at ? [' · ', h('span', { class: 'critical-late' }, t('banner.escalated'))] : null, ' ',
      h('a', { href: readingHash(c.reading), class: 'critical-open' }, t('banner.open'))),
    acknowledgeForm(c, readback, refresh));
}

function draw() {
  const el = container();
  if (!watch.on || !watch.open.length) {
    el.replaceChildren();
    el.hidden = true;
    stopAlarm();
    return;
  }
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  for (const id of [...watch.readbacks.keys()]) if (!watch.open.some(c => c.id === id)) watch.readbacks.delete(id);
  el.replaceChildren(...watch.open.map(alertOf));
  el.hidden = false;
  if (active && active.isConnected && document.activeElement !== active) active.focus();
  startAlarm();
}
