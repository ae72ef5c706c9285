// Pieces the administration pages share: the tabs, the site picker, the refusal.

import { api } from '../../lib/api.js';
import { field, h, startPage } from '../../lib/dom.js';
import { t } from '../../lib/i18n.js';

/** @typedef {import('../../lib/session.js').Site} Site */

/** @param {'sites' | 'users' | 'devices' | 'reading' | 'audit'} on */
export function adminTabs(on) {
  const tab = (/** @type {string} */ id) => h('a', { href: `#/admin/${id}`, class: on === id ? 'on' : '', 'aria-current': on === id ? 'page' : null }, t(`admin.tab.${id}`));
  return h('nav', { class: 'tabs', 'aria-label': t('admin.title') }, tab('sites'), tab('users'), tab('devices'), tab('reading'), tab('audit'));
}

export function notPermitted() {
  const show = startPage();
  show(h('h1', {}, t('admin.title')),
    h('div', { class: 'error', id: 'not-permitted', role: 'alert' }, t('admin.not_permitted')));
}

/**
 * @param {Site[]} sites
 * @param {string} selected
 * @param {string} [name]
 */
export function siteSelect(sites, selected, name = 'site') {
  return h('select', { name },
    sites.map(s => h('option', { value: s.id, selected: s.id === selected, translate: 'no' }, `${s.name} (${s.id})`)));
}

/**
 * A "Site" chooser that calls `onPick` with the site chosen.
 * @param {(site: string) => void} onPick
 * @param {string} current
 * @param {Site[]} [known] the network's sites when the page has them already
 */
export async function sitePicker(onPick, current, known) {
  const sites = known || (await api('GET', '/api/sites')).sites;
  const sel = siteSelect(sites, current);
  sel.addEventListener('change', () => onPick(sel.value));
  return field(t('admin.site'), sel);
}
