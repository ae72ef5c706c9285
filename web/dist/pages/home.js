// The home page: first what needs the person's attention now (critical results not yet
// acknowledged, consults to answer, opinions to acknowledge, uploads under way), then what their
// roles let them do here, one card each — the reading worklist with its ready and overdue
// counts, or the clinic's reports with the unread ones first — and training: sessions live now
// and the next ones. Only parts of Ferry that exist get a card; "My API tokens" lives in the
// person's menu.

import { api } from '../lib/api.js';
import { homeSessions, isBroadcastEvent, startsText } from '../lib/broadcast.js';
import { h, raw, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { megabytes, shortDateTime } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { loadPeople, loadSites, nameOf, whoText } from '../lib/people.js';
import { isUnread, worklistCounts } from '../lib/reading.js';
import { broadcastHash, broadcastsHash, consultHash, readingHash, turnaroundHash } from '../lib/router.js';
import { can, me } from '../lib/session.js';
import { readsAtCentre, sendsForReading } from '../lib/shell.js';
import { listen } from '../lib/socket.js';
import { pendingUploads } from '../lib/tus.js';
import { liveBadge } from './broadcast-common.js';
import { attention, stateLabel, urgencyBadge } from './consult-common.js';

/** @typedef {import('./consult-common.js').Consult} Consult */

// capability -> the page it opens (cards show the catalogue's `card.<cap>.title` / `.text`).
/** @type {Record<string, string>} */
export const CARDS = {
  'imaging.send': '#/studies',
  'ecg.send': '#/ecgs',
  'ecg.read': '#/ecgs',
  'consult.request': '#/consults/new',
  'imaging.read': '#/studies',
  'consult.answer': '#/consults',
  'admin.sites': '#/admin/sites',
  'admin.users': '#/admin/users',
  'admin.devices': '#/admin/devices',
  'admin.audit': '#/admin/audit',
};

const OPEN = ['requested', 'accepted', 'in_call'];
/** The most consults a list of the home page shows; the consult list has the rest. */
export const HOME_LIMIT = 8;

/**
 * A list of consults, cut at HOME_LIMIT with a link to the rest.
 * @param {string} id
 * @param {Consult[]} cs
 */
function consultList(id, cs) {
  const more = cs.length - HOME_LIMIT;
  return h('ul', { class: 'home-list', id }, cs.slice(0, HOME_LIMIT).map(consultItem),
    more > 0 ? h('li', { class: 'more' }, h('a', { href: '#/consults' }, t('home.more', { count: more }))) : null);
}

/**
 * The consults that need the person now, most pressing first: opinions to acknowledge and
 * requests to answer, then open consults (their own requests, or accepted ones).
 * @param {Consult[]} consults
 * @param {string} myId
 * @returns {{ act: Consult[], open: Consult[] }}
 */
export function sortForHome(consults, myId) {
  const act = consults.filter(c => attention(c) !== null);
  const open = consults.filter(c => !act.includes(c) && OPEN.includes(c.state)
    && (c.requested_by === myId || c.accepted_by === myId || c.can.length > 0));
  const rank = (/** @type {Consult} */ c) => ({ emergency: 0, urgent: 1, routine: 2 })[/** @type {'emergency'} */ (c.urgency)] ?? 3;
  const order = (/** @type {Consult} */ a, /** @type {Consult} */ b) => rank(a) - rank(b) || b.created_at - a.created_at;
  return { act: act.sort(order), open: open.sort(order) };
}

/**
 * One consult as a line of the home page: urgency, specialty, what it waits for, who.
 * @param {Consult} c
 */
function consultItem(c) {
  const a = attention(c);
  const other = c.accepted_by && c.accepted_by !== me().user.id ? c.accepted_by : c.requested_by !== me().user.id ? c.requested_by : null;
  return h('li', { 'data-consult': c.id, 'data-attention': a || null, class: `consult-item level-${c.urgency}` },
    urgencyBadge(c.urgency), ' ',
    h('a', { href: consultHash(c.id) }, t('consult.title', { specialty: label('specialty', c.specialty) })), ' · ',
    h('span', { class: `state state-${c.state}` }, a ? t(`attention.${a}`) : stateLabel(c.state)),
    other ? [' · ', raw(whoText(other), 'span', { 'data-user': other })] : null,
    h('span', { class: 'muted' }, ' · ', shortDateTime(c.created_at)));
}

export function homePage() {
  // Live: a consult event redraws the page while it is shown, and so does a reading's or a
  // critical result's.
  if (can('consult.request') || can('consult.answer')) listen('consult', () => { drawHome(); });
  if (readsAtCentre() || sendsForReading()) {
    listen('reading', () => { drawHome(); });
    listen('critical', () => { drawHome(); });
  }
  // A session scheduled for the person's site shows on the training card at once.
  if (can('training.watch') || can('training.broadcast')) listen('broadcast', m => { if (isBroadcastEvent(m, 'scheduled')) drawHome(); });
  return drawHome();
}

/**
 * @typedef {{ counts: { ready: number, breached: number, mine: number } | null, unread: number | null,
 *   critical: import('../lib/reading.js').Critical[] }} ReadingNews
 */

/**
 * What the reading centre asks of the person: for a reader, the worklist's counts; for a
 * clinician, the reports not read yet and the open critical results of the site.
 * @param {HTMLElement} err
 * @returns {Promise<ReadingNews>}
 */
async function readingNews(err) {
  /** @type {ReadingNews} */
  const out = { counts: null, unread: null, critical: [] };
  try {
    if (readsAtCentre()) {
      const list = (await api('GET', '/api/readings?scope=centre')).readings || [];
      out.counts = worklistCounts(list, me().user.id);
    } else if (sendsForReading()) {
      const [sent, crit] = await Promise.all([api('GET', '/api/readings?scope=sent&state=signed'), api('GET', '/api/critical')]);
      out.unread = (sent.readings || []).filter(isUnread).length;
      out.critical = (crit.critical || []).filter((/** @type {any} */ c) => !c.acknowledged_at && c.state !== 'acknowledged');
      await loadPeople(out.critical.map(c => c.raised_by));
    }
  } catch (e) { err.append(errorBox(e)); }
  return out;
}

/**
 * The reading centre's cards: the worklist with what needs attention (ready, past their time),
 * the reports not read yet, the turnaround for a centre's administrator.
 * @param {ReadingNews} news
 */
function readingCards(news) {
  const out = [];
  if (readsAtCentre()) {
    const c = news.counts;
    out.push(h('div', { class: `card reading-card${c && c.breached ? ' card-alert' : ''}`, 'data-card': 'worklist' },
      h('h3', {}, h('a', { href: '#/readings' }, t('card.worklist.title'))),
      c ? h('div', { id: 'home-worklist-counts' },
        h('span', { class: 'count', 'data-count': 'ready' }, t('card.worklist.ready', { count: c.ready })),
        c.breached ? [' · ', h('strong', { class: 'count breached', 'data-count': 'breached' }, t('card.worklist.breached', { count: c.breached }))] : null,
        c.mine ? [' · ', h('span', { class: 'count', 'data-count': 'mine' }, t('card.worklist.mine', { count: c.mine }))] : null)
        : h('div', {}, t('card.worklist.text'))));
  } else if (sendsForReading()) {
    out.push(h('div', { class: `card reading-card${news.unread ? ' card-alert' : ''}`, 'data-card': 'reports' },
      h('h3', {}, h('a', { href: '#/readings' }, t('card.reports.title'))),
      h('div', { id: 'home-unread' }, news.unread ? h('strong', { 'data-count': 'unread' }, t('card.reports.unread', { count: news.unread })) : t('card.reports.text'))));
  }
  if (me().user.roles.includes('admin')) {
    out.push(h('div', { class: 'card', 'data-card': 'turnaround' },
      h('h3', {}, h('a', { href: turnaroundHash() }, t('card.turnaround.title'))), h('div', {}, t('card.turnaround.text'))));
  }
  return out;
}

/**
 * The training card: sessions live now, then the next ones (at most three), each opening its
 * page; trainers schedule from it. `sessions` is null when they could not be fetched.
 * @param {import('../lib/broadcast.js').Broadcast[] | null} sessions
 */
function trainingCard(sessions) {
  const shown = sessions ? homeSessions(sessions) : [];
  const live = shown.some(b => b.state === 'live');
  return h('div', { class: `card training-card${live ? ' card-live' : ''}`, 'data-card': 'training' },
    h('h3', {}, h('a', { href: broadcastsHash() }, t('card.training.title'))),
    shown.length
      ? h('ul', { class: 'home-list', id: 'home-training' }, shown.map(b => h('li', { 'data-broadcast': b.id, 'data-state': b.state },
        b.state === 'live' ? [liveBadge(), ' '] : null,
        h('a', { href: broadcastHash(b.id) }, raw(b.title)),
        h('div', { class: 'muted' }, b.state === 'live' ? t('card.training.live_now') : startsText(b.starts_at), ' · ',
          raw(nameOf(b.trainer), 'span', { 'data-user': b.trainer })))))
      : h('div', { id: 'home-training-none' }, sessions ? t('card.training.none') : t('card.training.text')),
    can('training.broadcast') ? h('p', { class: 'card-more' }, h('a', { href: broadcastsHash(true), id: 'home-schedule' }, t('card.training.schedule'))) : null);
}

/**
 * The open critical results as lines of the home page.
 * @param {import('../lib/reading.js').Critical[]} list
 */
function criticalList(list) {
  return h('ul', { class: 'home-list', id: 'home-critical' }, list.map(c => h('li', { 'data-critical': c.id, class: 'critical-line' },
    h('strong', { class: 'critical-finding' }, label('critical_finding', c.finding)), ' · ',
    h('a', { href: readingHash(c.reading) }, t('home.critical_open')), ' · ',
    h('span', { class: 'muted' }, t('banner.raised', { by: nameOf(c.raised_by), at: shortDateTime(c.raised_at) })))));
}

async function drawHome() {
  const show = startPage();
  const m = me();
  const roles = m.user.roles;
  const title = roles.map(r => label('role_title', r)).join(' · ');
  const err = h('div');
  const consultsWanted = can('consult.request') || can('consult.answer');
  /** @type {Consult[]} */
  let consults = [];
  if (consultsWanted) {
    try {
      consults = (await api('GET', '/api/consults')).consults;
      await Promise.all([loadSites(), loadPeople(consults.flatMap(c => [c.requested_by, c.accepted_by]))]);
    } catch (e) { err.append(errorBox(e)); }
  }
  const { act, open } = sortForHome(consults, m.user.id);
  const news = await readingNews(err);
  // Training: everyone watches; the sessions live now and coming.
  const training = can('training.watch') || can('training.broadcast');
  /** @type {import('../lib/broadcast.js').Broadcast[] | null} */
  let sessions = null;
  if (training) {
    try {
      sessions = (await api('GET', '/api/broadcasts')).broadcasts || [];
      await loadPeople(homeSessions(sessions || []).map(b => b.trainer));
    } catch (e) { err.append(errorBox(e)); }
  }
  /** @type {import('../lib/tus.js').UploadRecord[]} */
  let uploads = [];
  if (can('imaging.send')) {
    try { uploads = pendingUploads(localStorage); } catch (_) { /* storage refused */ }
  }

  /** @type {HTMLElement[]} */
  const parts = [];
  // A critical result not acknowledged comes before anything else.
  if (news.critical.length) parts.push(h('h3', { class: 'critical-heading' }, t('home.critical')), criticalList(news.critical));
  if (act.length) parts.push(h('h3', {}, t('home.to_do')), consultList('home-act', act));
  if (open.length) {
    parts.push(h('h3', {}, can('consult.answer') ? t('home.accepted') : t('home.open_requests')),
      consultList('home-open', open));
  }
  if (uploads.length) {
    parts.push(h('h3', {}, t('home.uploads')), h('ul', { class: 'home-list', id: 'home-uploads' }, uploads.map(u => h('li', {},
      raw(u.name), ' · ', t('upload.earlier_sent', { sent: megabytes(u.sent), size: megabytes(u.size) }), ' · ',
      h('a', { href: '#/upload' }, t('home.uploads_open'))))));
  }
  const attentionBox = consultsWanted || can('imaging.send')
    ? h('section', { class: 'box attention-box', id: 'home-attention', 'aria-labelledby': 'home-attention-title' },
      h('h2', { id: 'home-attention-title' }, t('home.attention')),
      err,
      parts.length ? parts : h('p', { class: 'muted', id: 'home-nothing' }, t('home.nothing_now')))
    : null;

  const cards = [...readingCards(news), ...m.capabilities.filter(c => CARDS[c]).map(c => h('div', { class: 'card', 'data-cap': c },
    h('h3', {}, h('a', { href: CARDS[c] }, t(`card.${c}.title`))),
    h('div', {}, t(`card.${c}.text`)))), training ? trainingCard(sessions) : null].filter(x => x !== null);
  show(
    h('h1', { id: 'home-title', 'data-roles': roles.join(' ') }, `${title} — `, raw(m.site.name)),
    h('p', { class: 'muted' }, t('home.signed_in', {
      name: m.user.display_name,
      place: t('home.place', { tier: label('tier', m.site.tier), kind: label('site_kind', m.site.kind) }),
    })),
    attentionBox || err,
    cards.length ? h('section', { 'aria-labelledby': 'home-cards-title' },
      h('h2', { id: 'home-cards-title', class: attentionBox ? null : 'visually-hidden' }, t('home.what_you_can_do')),
      h('div', { class: 'cards' }, cards)) : null,
    !cards.length && !attentionBox ? h('p', { id: 'home-empty' }, t('home.empty')) : null);
}
