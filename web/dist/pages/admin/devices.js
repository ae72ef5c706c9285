// Administration: a site's devices (modalities, ECG carts, upload clients) with their device
// tokens, and the API tokens of its people.

import { api } from '../../lib/api.js';
import { field, formValues, h, raw, startPage, table } from '../../lib/dom.js';
import { errorBox } from '../../lib/errors.js';
import { label, t } from '../../lib/i18n.js';
import { me } from '../../lib/session.js';
import { deviceTokenPaths, personTokenForm, personTokenPaths, tokenForm, tokenTable } from '../tokens.js';
import { adminTabs, sitePicker } from './common.js';

export const DEVICE_KINDS = ['modality', 'ecg-cart', 'uploader'];

/** @typedef {{ id: string, name: string, kind: string, ae_title?: string | null }} Device */

/**
 * The site the page opens on when none is chosen: the person's own if it has devices, else the
 * first site they administer that has some (a city hospital's admin mostly manages clinics'
 * modalities and carts), else their own.
 * @returns {Promise<string>}
 */
async function siteWithDevices() {
  const own = me().site.id;
  /** @param {string} id */
  const count = async id => (await api('GET', `/api/sites/${encodeURIComponent(id)}/devices`)).devices.length;
  try {
    if (await count(own)) return own;
    /** @type {{ id: string }[]} */
    const sites = (await api('GET', '/api/sites')).sites;
    for (const s of sites.filter(x => x.id !== own).slice(0, 12)) {
      if (await count(s.id).catch(() => 0)) return s.id;
    }
  } catch (_) { /* the page shows the error when it loads */ }
  return own;
}

/**
 * A device token just issued: its secret and how the export PC sends with it. Shown this once.
 * @param {string} secret
 */
function newSecretBox(secret) {
  const command = `ferry upload --watch ${t('devices.token_folder')} --token ${secret}`;
  return h('div', { class: 'notice', id: 'new-device-token', role: 'status' },
    h('p', {}, h('strong', {}, t('devices.token_copy_now')), ' ', raw(secret, 'code', { class: 'secret' })),
    h('p', {}, t('devices.token_use')), h('p', {}, raw(command, 'code')));
}

/**
 * The tokens of one device, below the table: the secret just issued (once), the list and the
 * form for a new one.
 * @param {Device} device
 * @param {string | null} secret
 * @param {HTMLElement} err
 * @param {(secret?: string) => void} redraw draws the page again with this panel open
 */
async function deviceTokensPanel(device, secret, err, redraw) {
  const paths = deviceTokenPaths(device.id);
  const text = { heading: t('devices.token_new'), placeholder: t('devices.token_label_placeholder') };
  try {
    const tokens = (await api('GET', paths.list)).tokens;
    return h('section', { id: 'device-tokens', 'aria-labelledby': 'device-tokens-title' },
      h('h2', { id: 'device-tokens-title' }, t('devices.tokens_of', { name: device.name })),
      h('p', { class: 'muted' }, t('devices.tokens_intro')),
      secret ? newSecretBox(secret) : null,
      tokenTable(tokens, paths, err, () => redraw()), tokenForm(paths, text, err, s => redraw(s)));
  } catch (e) { err.append(errorBox(e)); return null; }
}

/**
 * A row of the devices table; its "Tokens" button opens or closes the device's token panel.
 * @param {Device} d
 * @param {boolean} open whether the panel shows this device's tokens
 * @param {{ tokens: () => void, remove: () => void }} on
 */
function deviceRow(d, open, on) {
  return h('tr', {},
    h('td', {}, raw(d.name)), h('td', {}, label('device_kind', d.kind)), h('td', {}, d.ae_title ? raw(d.ae_title, 'code') : '—'),
    h('td', {}, raw(d.id, 'code')),
    h('td', { class: 'actions' },
      h('button', {
        class: 'small', type: 'button', 'aria-label': t('devices.tokens_of', { name: d.name }),
        'aria-expanded': String(open), 'aria-controls': open ? 'device-tokens' : null, onclick: on.tokens,
      }, t('devices.tokens')),
      h('button', { class: 'small', type: 'button', 'aria-label': t('devices.remove_named', { name: d.name }), onclick: on.remove },
        t('devices.remove'))));
}

/**
 * @param {string | null} [site] null: the first site with devices (see siteWithDevices)
 * @param {string | null} [tokenUser] the person whose API tokens are shown
 * @param {string | null} [tokenDevice] the device whose tokens are shown below the table
 * @param {string | null} [newSecret] the secret of a token just issued to that device, shown this once
 */
export async function devicesPage(site = null, tokenUser = null, tokenDevice = null, newSecret = null) {
  site = site || await siteWithDevices();
  const show = startPage();
  const err = h('div');
  /** @type {Device[]} */
  let devices = [];
  /** @type {import('../../lib/session.js').User[]} */
  let users = [];
  try {
    devices = (await api('GET', `/api/sites/${encodeURIComponent(site)}/devices`)).devices;
    users = (await api('GET', `/api/sites/${encodeURIComponent(site)}/users`)).users;
  } catch (e) { err.append(errorBox(e)); }
  const form = h('form', { class: 'box' },
    h('h2', {}, t('devices.add_title')),
    h('div', { class: 'row' },
      field(t('devices.kind'), h('select', { name: 'kind' }, DEVICE_KINDS.map(k => h('option', { value: k }, label('device_kind', k))))),
      field(t('devices.name'), h('input', { name: 'name', required: true })),
      field(t('devices.ae_title'), h('input', { name: 'ae_title', maxlength: 16, translate: 'no' }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('devices.add'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    /** @type {Record<string, string>} */
    const body = { kind: v.kind, name: v.name };
    if (v.ae_title) body.ae_title = v.ae_title;
    try { await api('POST', `/api/sites/${encodeURIComponent(site)}/devices`, body); devicesPage(site, tokenUser, tokenDevice); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const selected = devices.find(d => d.id === tokenDevice);
  const panel = selected
    ? await deviceTokensPanel(selected, newSecret, err, secret => devicesPage(site, tokenUser, selected.id, secret))
    : null;
  /** @param {Device} d */
  const row = d => deviceRow(d, d === selected, {
    tokens: () => devicesPage(site, tokenUser, d === selected ? null : d.id),
    remove: async () => {
      try { await api('DELETE', `/api/devices/${encodeURIComponent(d.id)}`); devicesPage(site, tokenUser, d === selected ? null : tokenDevice); }
      catch (e) { err.replaceChildren(errorBox(e)); }
    },
  });
  const tokenUserSel = h('select', { name: 'user' }, h('option', { value: '' }, t('devices.choose_person')),
    users.map(u => h('option', { value: u.id, selected: u.id === tokenUser, translate: 'no' }, `${u.display_name} (${u.id})`)));
  tokenUserSel.addEventListener('change', () => devicesPage(site, tokenUserSel.value || null, tokenDevice));
  /** @type {HTMLElement[]} */
  const tokenPart = [h('h2', {}, t('devices.tokens_title')), h('div', { class: 'row box' }, field(t('devices.person'), tokenUserSel))];
  if (tokenUser) {
    const refresh = () => devicesPage(site, tokenUser, tokenDevice);
    try {
      const paths = personTokenPaths(tokenUser);
      const tokens = (await api('GET', paths.list)).tokens;
      tokenPart.push(tokenTable(tokens, paths, err, refresh), personTokenForm(tokenUser, err, refresh));
    } catch (e) { err.append(errorBox(e)); }
  }
  show(h('h1', {}, t('admin.title')), adminTabs('devices'),
    h('div', { class: 'row box' }, await sitePicker(s => devicesPage(s), site)), err,
    table([t('devices.col.name'), t('devices.col.kind'), t('devices.col.ae_title'), t('devices.col.id'),
      h('span', { class: 'visually-hidden' }, t('common.actions'))], devices.map(row)),
    panel, form, ...tokenPart);
}
