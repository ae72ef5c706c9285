// The frame around every page: the header's navigation, the person's menu (their tokens,
// sign out) and the language switch; and who is signed in.

import { api } from './api.js';
import { h, raw } from './dom.js';
import { LOCALES, STORAGE_KEY, locale, ohifLanguage, setLocale, t } from './i18n.js';
import { can, session } from './session.js';
import { closeSocket } from './socket.js';

/** Asks the server who is signed in (null when nobody) and redraws the header. */
export async function loadMe() {
  try { session.me = await api('GET', '/api/me'); } catch (_) { session.me = null; }
  renderNav();
}

export async function logout() {
  try { await api('POST', '/api/auth/logout'); } catch (_) { /* ended anyway */ }
  session.me = null;
  closeSocket();
  location.hash = '#/login';
}

/**
 * Remembers the language, for this app and for the OHIF viewer (same origin; i18next reads
 * `i18nextLng` from localStorage when the URL has no `lng`).
 * @param {import('./i18n.js').Locale} loc
 */
export function chooseLocale(loc) {
  try {
    localStorage.setItem(STORAGE_KEY, loc);
    localStorage.setItem('i18nextLng', ohifLanguage(loc));
  } catch (_) { /* private mode: the choice lasts for this page */ }
  setLocale(loc);
}

/** Puts the chosen language on the document: `<html lang>`, the title, the static texts. */
export function applyDocumentLanguage() {
  document.documentElement.lang = locale();
  document.title = t('app.title');
  for (const el of document.querySelectorAll('[data-i18n]')) {
    el.textContent = t(/** @type {HTMLElement} */ (el).dataset.i18n || '');
  }
}

function languageSwitch() {
  const sel = h('select', { id: 'lang', name: 'lang', 'aria-label': t('header.language') },
    LOCALES.map(l => h('option', { value: l, lang: l, selected: l === locale() }, t(`lang.${l}`))));
  sel.addEventListener('change', () => chooseLocale(/** @type {import('./i18n.js').Locale} */ (sel.value)));
  return sel;
}

/** The person's menu: who and where they are, their API tokens, sign out. */
function personMenu() {
  const me = /** @type {import('./session.js').Me} */ (session.me);
  const menu = h('details', { class: 'person-menu', id: 'person-menu' },
    // The name shown is the start of the accessible name ("Dr Zhao, your account").
    h('summary', { id: 'whoami' }, raw(me.user.display_name), h('span', { class: 'visually-hidden' }, t('header.account'))),
    h('div', { class: 'menu-body' },
      h('p', { class: 'muted' }, raw(me.site.name)),
      h('p', { class: 'muted' }, t('header.signed_in_as', { id: me.user.id })),
      can('tokens.own') ? h('a', { href: '#/tokens', id: 'menu-tokens' }, t('nav.my_tokens')) : null,
      h('button', { id: 'logout', type: 'button', onclick: logout }, t('nav.sign_out'))));
  // A choice in the menu closes it.
  menu.addEventListener('click', ev => {
    if (/** @type {HTMLElement} */ (ev.target).closest('a, button')) menu.open = false;
  });
  return menu;
}

/**
 * Whether the person works with ECGs: clinicians send them, readers read them, specialists
 * (who read imaging) see those of their site and those shared with it. The server has no ECG
 * capability for specialists yet, so theirs is the imaging one.
 */
export function canSeeEcgs() {
  return can('ecg.send') || can('ecg.read') || can('ecg.view');
}

/**
 * A reader of a centre: specialists read imaging, ECG readers ECGs (the server decides which
 * requests; the worklist capability may come with either role).
 */
export function readsAtCentre() {
  const me = session.me;
  return !!me && (can('reading.worklist') || me.user.roles.includes('specialist') || me.user.roles.includes('reader'));
}

/** A clinician of a sending clinic: asks for readings and reads the reports. */
export function sendsForReading() {
  return can('imaging.send') || can('ecg.send');
}

/** The reading section's link: the worklist for readers, requests and reports for clinics. */
function readingNav() {
  if (readsAtCentre()) return h('a', { href: '#/readings', id: 'nav-readings' }, t('nav.worklist'));
  if (sendsForReading()) return h('a', { href: '#/readings', id: 'nav-readings' }, t('nav.reports'));
  return null;
}

export function renderNav() {
  const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
  const tools = document.getElementById('header-tools');
  if (tools) tools.replaceChildren(languageSwitch());
  nav.replaceChildren();
  nav.setAttribute('aria-label', t('nav.main'));
  if (!session.me) return;
  nav.append(...[
    h('a', { href: '#/' }, t('nav.home')),
    h('a', { href: '#/studies' }, t('nav.studies')),
    can('consult.request') || can('consult.answer') ? h('a', { href: '#/consults', id: 'nav-consults' }, t('nav.consults')) : null,
    canSeeEcgs() ? h('a', { href: '#/ecgs', id: 'nav-ecgs' }, t('nav.ecgs')) : null,
    readingNav(),
    can('training.watch') || can('training.broadcast') ? h('a', { href: '#/broadcasts', id: 'nav-training' }, t('nav.training')) : null,
    can('admin.users') ? h('a', { href: '#/admin/sites', id: 'nav-admin' }, t('nav.admin')) : null,
    personMenu(),
  ].filter(x => x !== null));
}
