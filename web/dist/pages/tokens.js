// API tokens: the table and the form shared by "My API tokens" (the person's menu) and the
// administrators' devices page, for a person's tokens and for a device's.

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
 * Where a holder's tokens are in the API: listed and issued at `list`, revoked at `revoke(id)`.
 * @typedef {{ list: string, revoke: (id: string) => string }} TokenPaths
 */

/**
 * A person's tokens.
 * @param {string} user
 * @returns {TokenPaths}
 */
export function personTokenPaths(user) {
  return { list: `/api/users/${encodeURIComponent(user)}/tokens`, revoke: id => `/api/tokens/${encodeURIComponent(id)}` };
}

/**
 * A device's tokens (an ECG cart's export PC sends with one, for the cart's site only).
 * @param {string} device
 * @returns {TokenPaths}
 */
export function deviceTokenPaths(device) {
  return { list: `/api/devices/${encodeURIComponent(device)}/tokens`, revoke: id => `/api/device-tokens/${encodeURIComponent(id)}` };
}

/**
 * @param {Token[]} tokens
 * @param {TokenPaths} paths
 * @param {HTMLElement} err
 * @param {() => void} refresh
 */
export function tokenTable(tokens, paths, err, refresh) {
  return table([t('tokens.col.id'), t('tokens.col.label'), t('tokens.col.created'), t('tokens.col.expires'),
    t('tokens.col.last_used'), t('tokens.col.status'), h('span', { class: 'visually-hidden' }, t('common.actions'))],
  tokens.map(tk => h('tr', {},
    h('td', {}, raw(tk.id, 'code')), h('td', {}, raw(tk.label)), h('td', {}, dateTime(tk.created_at)),
    h('td', {}, tk.expires_at ? dateTime(tk.expires_at) : t('tokens.never')),
    h('td', {}, tk.last_used_at ? dateTime(tk.last_used_at) : '—'),
    h('td', {}, tk.revoked_at ? t('tokens.revoked_at', { at: dateTime(tk.revoked_at) }) : t('tokens.active')),
    h('td', {}, tk.revoked_at ? '' : h('button', {
      class: 'small', type: 'button', 'aria-label': t('tokens.revoke_named', { label: tk.label }), onclick: async () => {
        try { await api('DELETE', paths.revoke(tk.id)); refresh(); }
        catch (e) { err.replaceChildren(errorBox(e)); }
      },
    }, t('tokens.revoke'))))));
}

/**
 * The form that issues a token; `created` gets its secret, which the server never shows again.
 * @param {TokenPaths} paths
 * @param {{ heading: string, placeholder: string }} text
 * @param {HTMLElement} err
 * @param {(secret: string) => Promise<void> | void} created
 */
export function tokenForm(paths, text, err, created) {
  const form = h('form', { class: 'box' },
    h('h2', {}, text.heading),
    h('div', { class: 'row' },
      field(t('tokens.label'), h('input', { name: 'label', required: true, placeholder: text.placeholder })),
      field(t('tokens.expires_days'), h('input', { name: 'days', type: 'number', min: 1 }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('tokens.create'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    /** @type {{ label: string, expires_in_days?: number }} */
    const body = { label: v.label };
    if (v.days) body.expires_in_days = Number(v.days);
    try {
      const r = await api('POST', paths.list, body);
      await created(r.secret);
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  return form;
}

/**
 * A person's token form: the new secret shows at the top of the page drawn next.
 * @param {string} user
 * @param {HTMLElement} err
 * @param {() => Promise<void> | void} refresh
 */
export function personTokenForm(user, err, refresh) {
  const text = { heading: t('tokens.new_for', { user }), placeholder: t('tokens.label_placeholder') };
  return tokenForm(personTokenPaths(user), text, err, async secret => {
    setFlash(h('div', { class: 'notice', id: 'new-token', role: 'status' }, t('tokens.copy_now'), ' ', raw(secret, 'code')));
    await refresh();
  });
}

export async function myTokensPage() {
  const show = startPage();
  const err = h('div');
  const id = me().user.id;
  const paths = personTokenPaths(id);
  const refresh = () => myTokensPage();
  /** @type {Token[]} */
  let tokens = [];
  try { tokens = (await api('GET', paths.list)).tokens; }
  catch (e) { err.append(errorBox(e)); }
  show(h('h1', {}, t('tokens.mine_title')), h('p', { class: 'muted' }, t('tokens.mine_intro')),
    err, tokenTable(tokens, paths, err, refresh), personTokenForm(id, err, refresh));
}
