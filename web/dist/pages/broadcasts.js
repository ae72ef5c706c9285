// Training (#/broadcasts): the sessions the person may watch — live ones first and clearly
// marked, then those coming up — each opening its page, with a file for the calendar; trainers
// schedule new ones below the list (#/broadcasts?schedule goes straight to the form). A session
// scheduled meanwhile for the person's site (the socket's `scheduled`) joins the list at once.

import { ApiError, api } from '../lib/api.js';
import {
  DEFAULT_MINUTES, MAX_DESCRIPTION, MAX_MINUTES, MAX_TITLE, MIN_MINUTES, audienceText, calendarUrl, defaultStart,
  groupSessions, invalidField, isBroadcastEvent, localDate, minutesText, scheduleBody, siteTree, startsText,
} from '../lib/broadcast.js';
import { field, formValues, h, raw, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { t } from '../lib/i18n.js';
import { loadPeople, loadSites, nameOf, siteName } from '../lib/people.js';
import { broadcastHash, libraryHash } from '../lib/router.js';
import { can, me } from '../lib/session.js';
import { listen } from '../lib/socket.js';
import { liveBadge, stateTag } from './broadcast-common.js';
import { sendAll } from './broadcast-materials.js';

/** @typedef {import('../lib/broadcast.js').Broadcast} Broadcast */
/** @typedef {import('../lib/broadcast.js').SiteNode} SiteNode */

/** The browser's time zone, which every time on these pages is shown and typed in. */
export function timeZoneName() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch (_) { return 'UTC'; }
}

/**
 * One session as a row: title (and "live"), trainer, start, length, audience, state, and the
 * links to its page and its calendar file.
 * @param {Broadcast} b
 */
function row(b) {
  const live = b.state === 'live';
  const watch = live && b.trainer !== me().user.id;
  return h('tr', { 'data-broadcast': b.id, 'data-state': b.state, class: `broadcast-row${live ? ' broadcast-live' : ''}` },
    h('td', {}, live ? [liveBadge(), ' '] : null,
      h('a', { href: broadcastHash(b.id), class: 'broadcast-title' }, raw(b.title)),
      b.soon && b.state === 'scheduled' ? h('div', { class: 'soon-tag' }, t('broadcasts.soon')) : null),
    h('td', {}, raw(nameOf(b.trainer), 'span', { 'data-user': b.trainer })),
    h('td', { class: 'nowrap' }, h('time', { datetime: b.starts_at }, startsText(b.starts_at))),
    h('td', { class: 'nowrap' }, minutesText(b.minutes)),
    h('td', {}, audienceText(b.audience, siteName)),
    h('td', {}, stateTag(b.state)),
    h('td', { class: 'actions broadcast-actions' },
      h('a', {
        href: broadcastHash(b.id), class: watch ? 'button open-broadcast' : 'open-broadcast',
        'aria-label': t(watch ? 'broadcasts.watch_named' : 'broadcasts.open_named', { title: b.title }),
      }, t(watch ? 'broadcasts.watch' : 'broadcasts.open')),
      h('a', {
        href: calendarUrl(b.id), class: 'calendar-link', download: 'training-session.ics',
        'aria-label': t('broadcasts.calendar_named', { title: b.title }),
      }, t('broadcasts.calendar'))));
}

/**
 * The form scheduling a session: title, description, date and time in the person's own time
 * zone, length, and the audience — the network's sites as a tree, each with "and every site
 * below" where sites hang below it.
 * @param {SiteNode[]} sites
 * @param {(b: Broadcast, failed: number) => void} onDone `failed`: materials that did not arrive
 */
function scheduleForm(sites, onDone) {
  const err = h('div');
  const start = defaultStart(new Date());
  const title = h('input', { name: 'title', id: 'schedule-title', required: true, maxlength: MAX_TITLE, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: 3, maxlength: MAX_DESCRIPTION });
  const date = h('input', { name: 'date', type: 'date', required: true, value: start.date, min: localDate(new Date()) });
  const clock = h('input', { name: 'time', type: 'time', required: true, value: start.time });
  const minutes = h('input', { name: 'minutes', type: 'number', required: true, min: MIN_MINUTES, max: MAX_MINUTES, step: 5, value: DEFAULT_MINUTES });
  // PDF slides and handouts, sent once the session exists, each with its progress.
  const files = h('input', { type: 'file', id: 'schedule-materials', accept: 'application/pdf,.pdf', multiple: true, 'aria-describedby': 'materials-hint' });
  const bar = h('progress', { id: 'schedule-progress', max: 1, value: 0, hidden: true, 'aria-label': t('materials.progress') });
  const sending = h('p', { class: 'muted', id: 'schedule-sending', role: 'status' });
  /** @type {{ site: string, tick: HTMLInputElement, below: HTMLInputElement | null }[]} */
  const boxes = [];
  const items = siteTree(sites).map(({ site, depth, below }) => {
    const tick = h('input', { type: 'checkbox', name: 'audience', value: site.id });
    const sub = below ? h('input', { type: 'checkbox', name: 'subtree', value: site.id, 'aria-label': t('broadcast.site_and_below', { site: site.name }) }) : null;
    boxes.push({ site: site.id, tick, below: sub });
    // "And every site below" takes the site with it; the site unticked takes it away.
    tick.addEventListener('change', () => { if (!tick.checked && sub) sub.checked = false; });
    if (sub) sub.addEventListener('change', () => { if (sub.checked) tick.checked = true; });
    return h('li', { class: `audience-site depth-${Math.min(depth, 4)}`, 'data-site': site.id },
      h('label', { class: 'check' }, tick, raw(site.name)),
      sub ? h('label', { class: 'check below' }, sub, t('broadcasts.audience_below')) : null);
  });
  const audience = h('fieldset', { class: 'audience-boxes', id: 'schedule-audience', 'aria-describedby': 'audience-hint' },
    h('legend', {}, t('broadcasts.audience')),
    h('p', { class: 'muted', id: 'audience-hint' }, t('broadcasts.audience_hint')),
    h('ul', { class: 'audience-sites' }, items));
  const submit = h('button', { class: 'primary', type: 'submit', id: 'schedule-submit' }, t('broadcasts.schedule'));
  const form = h('form', { class: 'box', id: 'schedule-form', 'aria-labelledby': 'schedule-heading' },
    h('h2', { id: 'schedule-heading' }, t('broadcasts.schedule_title')),
    field(t('broadcasts.field.title'), title),
    field(t('broadcasts.field.description'), description),
    h('div', { class: 'row' },
      field(t('broadcasts.field.date'), date), field(t('broadcasts.field.time'), clock), field(t('broadcasts.field.minutes'), minutes)),
    h('p', { class: 'muted', id: 'schedule-zone' }, t('broadcasts.time_zone', { zone: timeZoneName() })),
    audience,
    h('div', { class: 'field' }, h('label', { for: 'schedule-materials' }, t('broadcasts.field.materials')), files,
      h('p', { class: 'muted', id: 'materials-hint' }, t('broadcasts.materials_hint'))),
    err, h('p', {}, submit), bar, sending);

  /** @type {Record<string, HTMLElement | undefined>} */
  const fieldOf = { title, description, starts_at: date, minutes, audience: boxes[0] && boxes[0].tick };
  /** @param {string} f a field of the form the message is about */
  const refuse = f => {
    err.replaceChildren(errorBox(t(`broadcasts.invalid.${f}`)));
    const el = fieldOf[f];
    if (el) { el.setAttribute('aria-invalid', 'true'); el.focus(); }
  };
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.replaceChildren();
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    const picks = boxes.filter(b => b.tick.checked).map(b => ({ site: b.site, subtree: !!(b.below && b.below.checked) }));
    if (!title.value.trim()) return refuse('title');
    if (!picks.length) return refuse('audience');
    const body = scheduleBody(formValues(form), picks);
    if (!body.starts_at) return refuse('starts_at');
    if (!(body.minutes >= MIN_MINUTES && body.minutes <= MAX_MINUTES)) return refuse('minutes');
    submit.disabled = true;
    try {
      const b = await api('POST', '/api/broadcasts', body);
      title.value = '';
      description.value = '';
      const chosen = [...(files.files || [])];
      files.value = '';
      // The session exists: a file that does not arrive is said, and can be added on its page.
      const failed = await sendAll(b.id, chosen, { bar, status: sending, err });
      sending.textContent = '';
      onDone(b, failed.length);
    } catch (e) {
      const f = e instanceof ApiError && e.code === 'invalid_value' ? invalidField(e.detail) : null;
      if (f) refuse(f); else err.replaceChildren(errorBox(e));
    } finally {
      submit.disabled = false;
    }
  });
  return { form, title };
}

/** @param {boolean} [schedule] open at the scheduling form */
export async function broadcastsPage(schedule = false) {
  const show = startPage();
  const err = h('div'), list = h('div', { id: 'broadcast-list' }), done = h('div');
  let seq = 0;

  /**
   * @param {string} id
   * @param {string} heading
   * @param {Broadcast[]} items
   */
  const group = (id, heading, items) => (items.length ? h('section', { 'aria-labelledby': `${id}-heading`, id },
    h('h2', { id: `${id}-heading` }, heading),
    table([t('broadcasts.col.title'), t('broadcasts.col.trainer'), t('broadcasts.col.starts'), t('broadcasts.col.length'),
      t('broadcasts.col.audience'), t('broadcasts.col.state'), h('span', { class: 'visually-hidden' }, t('common.actions'))],
    items.map(row), { class: 'broadcast-table' })) : null);

  async function load() {
    const mine = ++seq;
    try {
      const r = await api('GET', '/api/broadcasts');
      /** @type {Broadcast[]} */
      const all = r.broadcasts || [];
      await Promise.all([loadSites(), loadPeople(all.map(b => b.trainer))]);
      if (mine !== seq) return;
      const g = groupSessions(all);
      err.replaceChildren();
      list.replaceChildren(...[
        group('broadcasts-live', t('broadcasts.live_title'), g.live),
        group('broadcasts-upcoming', t('broadcasts.upcoming_title'), g.upcoming),
        group('broadcasts-over', t('broadcasts.over_title'), g.over),
      ].filter(x => x !== null));
      if (!all.length) list.append(h('p', { class: 'muted', id: 'no-broadcasts' }, t('broadcasts.none')));
    } catch (e) { if (mine === seq) err.replaceChildren(errorBox(e)); }
  }

  listen('broadcast', m => { if (isBroadcastEvent(m, 'scheduled')) load(); });
  listen('open', () => { load(); });

  const trainer = can('training.broadcast');
  /** @type {SiteNode[]} */
  let sites = [];
  if (trainer) {
    try { sites = (await api('GET', '/api/sites')).sites || []; } catch (e) { err.append(errorBox(e)); }
  }
  const sched = trainer ? scheduleForm(sites, (b, failed) => {
    done.replaceChildren(h('div', { class: 'notice broadcast-notice', role: 'status', id: 'scheduled-notice', 'data-broadcast': b.id },
      t('broadcasts.scheduled', { title: b.title }), failed ? [' ', t('broadcasts.materials_failed', { n: failed })] : null,
      ' ', h('a', { href: broadcastHash(b.id) }, t('broadcasts.open_new'))));
    load();
  }) : null;
  await load();
  show(h('h1', {}, t('broadcasts.title')),
    h('p', { class: 'muted' }, t('broadcasts.intro', { zone: timeZoneName() })),
    h('p', {}, h('a', { href: libraryHash(), id: 'library-link' }, t('library.link'))),
    err, done, list,
    sched ? sched.form : null);
  if (schedule && sched) {
    sched.form.scrollIntoView({ block: 'start' });
    sched.title.focus();
  }
}
