// The home page: first what needs the person's attention now (consults to answer, opinions to
// acknowledge, uploads under way), then what their roles let them do here, one card each.
// Only parts of Ferry that exist get a card; "My API tokens" lives in the person's menu.

import { api } from '../lib/api.js';
import { h, raw, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { megabytes, shortDateTime } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { loadPeople, loadSites, whoText } from '../lib/people.js';
import { consultHash } from '../lib/router.js';
import { can, me } from '../lib/session.js';
import { listen } from '../lib/socket.js';
import { pendingUploads } from '../lib/tus.js';
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

/** Parts of Ferry a role will use that are not built yet: a plain line, not a control. */
/** @type {Record<string, string>} */
export const LATER = {
  'training.broadcast': 'home.later.training',
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
  // Live: a consult event redraws the page while it is shown.
  if (can('consult.request') || can('consult.answer')) listen('consult', () => { drawHome(); });
  return drawHome();
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
  /** @type {import('../lib/tus.js').UploadRecord[]} */
  let uploads = [];
  if (can('imaging.send')) {
    try { uploads = pendingUploads(localStorage); } catch (_) { /* storage refused */ }
  }

  /** @type {HTMLElement[]} */
  const parts = [];
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

  const cards = m.capabilities.filter(c => CARDS[c]).map(c => h('div', { class: 'card', 'data-cap': c },
    h('h3', {}, h('a', { href: CARDS[c] }, t(`card.${c}.title`))),
    h('div', {}, t(`card.${c}.text`))));
  const later = m.capabilities.filter(c => LATER[c]).map(c => h('p', { class: 'muted later', 'data-later': c }, t(LATER[c])));
  show(
    h('h1', { id: 'home-title', 'data-roles': roles.join(' ') }, `${title} — `, raw(m.site.name)),
    h('p', { class: 'muted' }, t('home.signed_in', {
      name: m.user.display_name,
      place: t('home.place', { tier: label('tier', m.site.tier), kind: label('site_kind', m.site.kind) }),
    })),
    attentionBox,
    cards.length ? h('section', { 'aria-labelledby': 'home-cards-title' },
      h('h2', { id: 'home-cards-title', class: attentionBox ? null : 'visually-hidden' }, t('home.what_you_can_do')),
      h('div', { class: 'cards' }, cards)) : null,
    later,
    !cards.length && !later.length && !attentionBox ? h('p', { id: 'home-empty' }, t('home.empty')) : null);
}
