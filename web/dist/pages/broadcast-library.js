// The training library (#/broadcasts/library): sessions that are over, the most recent first,
// for the people of the sites that saw them — for those who missed one, and for the training
// office. Each with its trainer, date, length and audience, its recordings (played here, with
// seeking) and its materials (PDFs opening in the browser).

import { api } from '../lib/api.js';
import { LIBRARY_PATH, audienceText, clockText, minutesText } from '../lib/broadcast.js';
import { h, raw, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dateTime, megabytes } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { loadPeople, loadSites, siteName, who } from '../lib/people.js';
import { broadcastHash, broadcastsHash } from '../lib/router.js';
import { materialList } from './broadcast-materials.js';

/**
 * @typedef {{ id: string, duration_seconds: number, bytes: number, created_at: string, url: string }} Recording
 * @typedef {import('../lib/broadcast.js').Broadcast & { recordings: Recording[],
 *   materials: import('./broadcast-materials.js').Material[] }} PastSession
 */

/**
 * One recording: its length, and a button that plays it here (the file is fetched in ranges as
 * the player needs it, so a clinic's link is not asked for the whole file at once).
 * @param {Recording} r
 * @param {string} title
 * @param {number} n the recording's number in the session (a trainer who reconnected has more)
 */
function recordingItem(r, title, n) {
  const holder = h('div', { class: 'recording-player' });
  const btn = h('button', {
    type: 'button', class: 'small', 'data-action': 'play', 'aria-label': t('library.play_named', { title, n }),
    onclick: () => {
      btn.hidden = true;
      const v = h('video', { controls: true, preload: 'metadata', src: r.url, class: 'broadcast-video', 'aria-label': t('library.play_named', { title, n }) });
      holder.replaceChildren(v);
      v.play().catch(() => {});
      v.focus();
    },
  }, t('library.play'));
  return h('li', { 'data-recording': r.id },
    t('library.recording', { n, length: clockText(r.duration_seconds), mb: megabytes(r.bytes) }), ' ', btn, holder);
}

/** @param {PastSession} b */
function sessionItem(b) {
  return h('article', { class: 'box library-session', 'data-broadcast': b.id, 'aria-labelledby': `lib-${b.id}` },
    h('h2', { id: `lib-${b.id}` }, h('a', { href: broadcastHash(b.id) }, raw(b.title))),
    h('p', { class: 'muted' },
      who(b.trainer), ' · ', h('time', { datetime: b.starts_at }, dateTime(b.starts_at)), ' · ', minutesText(b.minutes), ' · ',
      audienceText(b.audience, siteName)),
    b.description ? raw(b.description, 'p', { class: 'summary' }) : null,
    h('h3', {}, t('library.recordings')),
    b.recordings.length
      ? h('ul', { class: 'recording-list' }, b.recordings.map((r, i) => recordingItem(r, b.title, i + 1)))
      : h('p', { class: 'muted no-recordings' }, t('library.no_recordings')),
    h('h3', {}, t('materials.title')),
    b.materials.length ? materialList(b.materials) : h('p', { class: 'muted no-materials' }, t('materials.none')));
}

export async function libraryPage() {
  const show = startPage();
  const head = [h('h1', {}, t('library.title')), h('p', { class: 'muted' }, t('library.intro'), ' ', h('a', { href: broadcastsHash() }, t('broadcast.all')))];
  /** @type {PastSession[]} */
  let list;
  try {
    list = (await api('GET', LIBRARY_PATH)).broadcasts || [];
    await Promise.all([loadSites(), loadPeople(list.map(b => b.trainer))]);
  } catch (e) {
    show(...head, errorBox(e));
    return;
  }
  show(...head, list.length
    ? h('div', { id: 'library-list' }, list.map(sessionItem))
    : h('p', { class: 'muted', id: 'library-empty' }, t('library.none')));
}
