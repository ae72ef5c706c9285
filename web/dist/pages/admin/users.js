// Administration: the people of a site, adding one, disabling and enabling accounts.

import { api } from '../../lib/api.js';
import { field, formValues, h, raw, startPage, table } from '../../lib/dom.js';
import { errorBox } from '../../lib/errors.js';
import { label, t } from '../../lib/i18n.js';
import { me } from '../../lib/session.js';
import { adminTabs, sitePicker } from './common.js';

export const ROLES = ['clinician', 'specialist', 'reader', 'trainer', 'admin'];

/** @param {string} [site] */
export async function usersPage(site = me().site.id) {
  const show = startPage();
  const err = h('div');
  /** @type {import('../../lib/session.js').User[]} */
  let users = [];
  try { users = (await api('GET', `/api/sites/${encodeURIComponent(site)}/users`)).users; } catch (e) { err.append(errorBox(e)); }
  const form = h('form', { class: 'box' },
    h('h2', {}, t('users.add_title')),
    h('div', { class: 'row' },
      field(t('users.login'), h('input', { name: 'id', required: true, translate: 'no' })),
      field(t('users.display_name'), h('input', { name: 'display_name', required: true })),
      field(t('users.role'), h('select', { name: 'role' }, ROLES.map(r => h('option', { value: r }, label('role', r))))),
      field(t('users.specialties'), h('input', { name: 'specialties' })),
      field(t('users.password'), h('input', { name: 'password', type: 'password', autocomplete: 'new-password' }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('users.add'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    /** @type {Record<string, unknown>} */
    const body = {
      id: v.id, display_name: v.display_name, roles: [v.role],
      specialties: v.specialties.split(/[,，、]/).map(s => s.trim()).filter(Boolean),
    };
    if (v.password) body.password = v.password;
    try { await api('POST', `/api/sites/${encodeURIComponent(site)}/users`, body); usersPage(site); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const toggle = (/** @type {import('../../lib/session.js').User} */ u) => h('button', {
    class: 'small', type: 'button',
    'aria-label': t(u.disabled ? 'users.enable_named' : 'users.disable_named', { name: u.display_name }),
    onclick: async () => {
      try { await api('PATCH', `/api/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled }); usersPage(site); }
      catch (e) { err.replaceChildren(errorBox(e)); }
    },
  }, u.disabled ? t('users.enable') : t('users.disable'));
  show(h('h1', {}, t('admin.title')), adminTabs('users'),
    h('div', { class: 'row box' }, await sitePicker(usersPage, site)), err,
    table([t('users.col.login'), t('users.col.name'), t('users.col.roles'), t('users.col.specialties'), t('users.col.status'),
      h('span', { class: 'visually-hidden' }, t('common.actions'))], users.map(u => h('tr', {},
      h('td', {}, raw(u.id, 'code')), h('td', {}, raw(u.display_name)), h('td', {}, u.roles.map(r => label('role', r)).join(t('common.list_sep'))),
      h('td', {}, u.specialties.map(s => label('specialty', s)).join(t('common.list_sep'))),
      h('td', {}, u.disabled ? t('users.disabled') : t('users.active')),
      h('td', {}, u.id === me().user.id ? '' : toggle(u))))),
    form);
}
