// API tokens: the table and the form shared by "My API tokens" (the person's menu) and the
// administrators' devices page.

import { api } from '../lib/api.js';
import { field, formValues, h, raw, setFlash, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dateTime } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { me } from '../lib/session.js';

/**
 * @typedef {{ id: string, label: string, created_at: string | number, expires_at?: string | number | null,
 *   last_used_at?: string | number | null, revoked_at?: string | number | null }} Token
 */

/**
 * @param {Token[]} tokens
 * @param {HTMLElement} err
 * @param {() => void} refresh
 */
export function tokenTable(tokens, err, refresh) {
  return table([t('tokens.col.id'), t('tokens.col.label'), t('tokens.col.created'), t('tokens.col.expires'),
    t('tokens.col.last_used'), t('tokens.col.status'), h('span', { class: 'visually-hidden' }, t('common.actions'))],
  tokens.map(tk => h('tr', {},
    h('td', {}, raw(tk.id, 'code')), h('td', {}, raw(tk.label)), h('td', {}, dateTime(tk.created_at)),
    h('td', {}, tk.expires_at ? dateTime(tk.expires_at) : t('tokens.never')),
    h('td', {}, tk.last_used_at ? dateTime(tk.last_used_at) : '—'),
    h('td', {}, tk.revoked_at ? t('tokens.revoked_at', { at: dateTime(tk.revoked_at) }) : t('tokens.active')),
    h('td', {}, tk.revoked_at ? '' : h('button', {
      class: 'small', type: 'button', 'aria-label': t('tokens.revoke_named', { label: tk.label }), onclick: async () => {
        try { await api('DELETE', `/api/tokens/${encodeURIComponent(tk.id)}`); refresh(); }
        catch (e) { err.replaceChildren(errorBox(e)); }
      },
    }, t('tokens.revoke'))))));
}

/**
 * @param {string} user
 * @param {HTMLElement} err
 * @param {() => Promise<void> | void} refresh
 */
export function tokenForm(user, err, refresh) {
  const form = h('form', { class: 'box' },
    h('h2', {}, t('tokens.new_for', { user })),
    h('div', { class: 'row' },
      field(t('tokens.label'), h('input', { name: 'label', required: true, placeholder: t('tokens.label_placeholder') })),
      field(t('tokens.expires_days'), h('input', { name: 'days', type: 'number', min: 1 }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('tokens.create'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    /** @type {{ label: string, expires_in_days?: number }} */
    const body = { label: v.label };
    if (v.days) body.expires_in_days = Number(v.days);
    try {
      const r = await api('POST', `/api/users/${encodeURIComponent(user)}/tokens`, body);
      setFlash(h('div', { class: 'notice', id: 'new-token', role: 'status' }, t('tokens.copy_now'), ' ', raw(r.secret, 'code')));
      await refresh();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  return form;
}

export async function myTokensPage() {
  const show = startPage();
  const err = h('div');
  const id = me().user.id;
  const refresh = () => myTokensPage();
  /** @type {Token[]} */
  let tokens = [];
  try { tokens = (await api('GET', `/api/users/${encodeURIComponent(id)}/tokens`)).tokens; }
  catch (e) { err.append(errorBox(e)); }
  show(h('h1', {}, t('tokens.mine_title')), h('p', { class: 'muted' }, t('tokens.mine_intro')),
    err, tokenTable(tokens, err, refresh), tokenForm(id, err, refresh));
}
