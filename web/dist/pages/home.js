// The home page: what the person's roles let them do here, one card each. Only parts of Ferry
// that exist get a card; "My API tokens" lives in the person's menu.

import { h, raw, startPage } from '../lib/dom.js';
import { label, t } from '../lib/i18n.js';
import { me } from '../lib/session.js';

// capability -> the page it opens (cards show the catalogue's `card.<cap>.title` / `.text`).
/** @type {Record<string, string>} */
export const CARDS = {
  'imaging.send': '#/studies',
  'consult.request': '#/consults/new',
  'imaging.read': '#/studies',
  'consult.answer': '#/consults',
  'admin.sites': '#/admin/sites',
  'admin.users': '#/admin/users',
  'admin.devices': '#/admin/devices',
  'admin.audit': '#/admin/audit',
};

export function homePage() {
  const show = startPage();
  const m = me();
  const roles = m.user.roles;
  const title = roles.map(r => label('role_title', r)).join(' · ');
  const cards = m.capabilities.filter(c => CARDS[c]).map(c => h('div', { class: 'card', 'data-cap': c },
    h('h2', {}, h('a', { href: CARDS[c] }, t(`card.${c}.title`))),
    h('div', {}, t(`card.${c}.text`))));
  show(
    h('h1', { id: 'home-title', 'data-roles': roles.join(' ') }, `${title} — `, raw(m.site.name)),
    h('p', { class: 'muted' }, t('home.signed_in', {
      name: m.user.display_name, id: m.user.id,
      place: t('home.place', { tier: label('tier', m.site.tier), kind: label('site_kind', m.site.kind) }),
    })),
    cards.length ? h('div', { class: 'cards' }, cards) : h('p', { id: 'home-empty' }, t('home.empty')));
}
