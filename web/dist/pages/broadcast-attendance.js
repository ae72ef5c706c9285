// A training session's attendance (#/broadcasts/{id}/attendance), for the people of the site
// that runs it (its training office): each person with their site, when they joined and left
// and the minutes the broadcast reached them; each site's viewers summed; the same as CSV for
// the continuing-education file. Anyone else is told whose it is.

import { ApiError, api } from '../lib/api.js';
import { attendanceCsvUrl, attendancePath, broadcastPath } from '../lib/broadcast.js';
import { h, mainEl, onPageLeave, raw, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dateTime, number, shortDateTime } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { loadPeople, loadSites, nameOf, siteName } from '../lib/people.js';
import { broadcastHash, broadcastsHash } from '../lib/router.js';
import { me } from '../lib/session.js';

/** @typedef {import('../lib/broadcast.js').Attendance} Attendance */
/** @typedef {import('../lib/broadcast.js').Attendee} Attendee */

/**
 * The refusal for someone of another site.
 * @param {string | null} site the site that runs the session, when known
 */
function notPermitted(site) {
  return h('div', { class: 'notice broadcast-notice', id: 'attendance-not-permitted', role: 'status' },
    site ? t('attendance.not_permitted', { site: siteName(site) }) : t('attendance.not_permitted_any'));
}

/** @param {string} id */
export async function attendancePage(id) {
  const show = startPage();
  const back = h('p', {}, h('a', { href: broadcastHash(id) }, t('attendance.back')), ' · ',
    h('a', { href: broadcastsHash() }, t('broadcast.all')));
  await loadSites();
  // Whose session it is: only its own site's people may read the attendance, so others are
  // told so without asking for it.
  /** @type {import('../lib/broadcast.js').Broadcast | null} */
  let session = null;
  try { session = await api('GET', broadcastPath(id)); } catch (e) {
    show(h('h1', {}, t('attendance.title')), errorBox(e), back);
    return;
  }
  if (session && session.site !== me().site.id) {
    show(h('h1', {}, t('attendance.title')), h('p', {}, raw(session.title)), notPermitted(session.site), back);
    return;
  }
  /** @type {Attendance} */
  let a;
  try {
    a = await api('GET', attendancePath(id));
    await loadPeople(a.people.filter(p => !p.name).map(p => p.user));
  } catch (e) {
    const refused = e instanceof ApiError && e.status === 403;
    show(h('h1', {}, t('attendance.title')), refused ? notPermitted(session ? session.site : null) : errorBox(e), back);
    return;
  }
  const main = mainEl();
  main.classList.add('roomy'); // seven columns
  onPageLeave(() => main.classList.remove('roomy'));

  /** @param {Attendee} p */
  const row = p => h('tr', { 'data-user': p.user, 'data-role': p.role },
    h('td', {}, raw(p.name || nameOf(p.user))),
    h('td', {}, raw(siteName(p.site), 'span', { 'data-site': p.site })),
    h('td', {}, label('broadcast_role', p.role)),
    h('td', { class: 'nowrap' }, h('time', { datetime: p.joined_at }, shortDateTime(p.joined_at))),
    h('td', { class: 'nowrap' }, p.left_at ? h('time', { datetime: p.left_at }, shortDateTime(p.left_at))
      : h('span', { class: 'still-connected' }, t('attendance.still_connected'))),
    h('td', { class: 'num' }, number(p.minutes, { digits: 1 })),
    h('td', { class: 'num' }, number(p.connections)));
  const people = [...a.people].sort((x, y) => (x.role === y.role ? 0 : x.role === 'presenter' ? -1 : 1)
    || siteName(x.site).localeCompare(siteName(y.site)) || (x.name || x.user).localeCompare(y.name || y.user));
  const sites = [...a.sites].sort((x, y) => siteName(x.site).localeCompare(siteName(y.site)));

  show(h('h1', {}, t('attendance.title')),
    h('p', { id: 'attendance-of' }, h('a', { href: broadcastHash(id) }, raw(a.title)), ' · ',
      h('time', { datetime: a.starts_at }, dateTime(a.starts_at))),
    h('p', { class: 'muted' }, t('attendance.how')),
    h('p', {}, h('a', { class: 'button', id: 'attendance-csv', href: attendanceCsvUrl(id), download: 'attendance.csv' }, t('attendance.csv'))),
    h('h2', { id: 'attendance-people-heading' }, t('attendance.people_title')),
    table([t('attendance.col.name'), t('attendance.col.site'), t('attendance.col.role'), t('attendance.col.joined'),
      t('attendance.col.left'), t('attendance.col.minutes'), t('attendance.col.connections')],
    people.length ? people.map(row) : [h('tr', {}, h('td', { colspan: 7, class: 'muted', id: 'attendance-none' }, t('attendance.none')))],
    { id: 'attendance-people', 'aria-labelledby': 'attendance-people-heading' }),
    h('h2', { id: 'attendance-sites-heading' }, t('attendance.sites_title')),
    table([t('attendance.col.site'), t('attendance.col.people'), t('attendance.col.total_minutes')],
      sites.map(s => h('tr', { 'data-site': s.site },
        h('td', {}, raw(siteName(s.site))), h('td', { class: 'num' }, number(s.people)),
        h('td', { class: 'num' }, number(s.minutes, { digits: 1 })))),
      { id: 'attendance-sites', 'aria-labelledby': 'attendance-sites-heading' }),
    back);
}
