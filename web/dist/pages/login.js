// Sign-in; afterwards the person goes where they were headed (a deep link), else home.

import { api } from '../lib/api.js';
import { field, formValues, h, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { t } from '../lib/i18n.js';
import { safeNext } from '../lib/router.js';
import { loadMe } from '../lib/shell.js';

/**
 * Goes to where a sign-in was asked from: a route of this app or a page of this server.
 * @param {string | null} next
 */
export function goOn(next) {
  const to = safeNext(next);
  if (!to) location.hash = '#/';
  else if (to.startsWith('#/')) location.hash = to;
  else location.assign(to);
}

/** @param {string | null} next */
export function loginPage(next) {
  const show = startPage();
  const err = h('div');
  const form = h('form', { class: 'box login', id: 'login-form' },
    h('h1', {}, t('login.title')),
    next ? h('p', { class: 'muted', id: 'login-next' }, t('login.then_back')) : null,
    field(t('login.username'), h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true })),
    field(t('login.password'), h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    err,
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('login.submit'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.replaceChildren();
    const v = formValues(form);
    try {
      await api('POST', '/api/auth/login', { username: v.username, password: v.password });
      await loadMe();
      goOn(next);
    } catch (e) { err.append(errorBox(e)); }
  });
  show(form);
}
