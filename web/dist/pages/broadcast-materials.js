// A training session's materials, on its page and in the library: the PDF slides and handouts
// its trainer uploaded, each opening in the browser's PDF viewer under its own name. The trainer
// adds PDFs (one file after another, each with a progress bar, since slides with pictures take
// a while on a county hospital's uplink) and removes them. Fetched again when the socket says
// the session's materials changed.

import { ApiError, api, problemOf, signedOut } from '../lib/api.js';
import { materialsPath } from '../lib/broadcast.js';
import { h, raw } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { megabytes, percent } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { session } from '../lib/session.js';

/** @typedef {{ id: string, name: string, bytes: number, created_at: string, url: string }} Material */

/** The largest material the server takes, in bytes (docs/broadcasts.md). */
export const MAX_MATERIAL = 100 * 1024 * 1024;

/**
 * The list of materials as links.
 * @param {Material[]} list
 * @param {((m: Material) => HTMLElement) | null} [extra] a control after each (the trainer's remove)
 */
export function materialList(list, extra = null) {
  return h('ul', { class: 'material-list' }, list.map(m => h('li', { 'data-material': m.id },
    h('a', { href: m.url, target: '_blank', rel: 'noopener', class: 'material-link' }, raw(m.name)), ' ',
    h('span', { class: 'muted' }, t('materials.size', { mb: megabytes(m.bytes) })),
    extra ? [' ', extra(m)] : null)));
}

/**
 * Sends one PDF, reporting progress; the material the server made.
 * @param {string} id the session
 * @param {File} file
 * @param {(sent: number) => void} onProgress
 * @returns {Promise<Material>}
 */
export function sendMaterial(id, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${materialsPath(id)}?name=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader('Content-Type', 'application/pdf');
    xhr.setRequestHeader('Accept', 'application/json');
    if (session.me && session.me.csrf_token) xhr.setRequestHeader('X-CSRF-Token', session.me.csrf_token);
    xhr.upload.addEventListener('progress', ev => onProgress(ev.loaded));
    xhr.addEventListener('load', async () => {
      if (xhr.status === 201) { resolve(JSON.parse(xhr.responseText)); return; }
      if (xhr.status === 401) signedOut();
      reject(await problemOf(new Response(xhr.responseText, { status: xhr.status })));
    });
    // The link dropped (or the transfer was stopped): nothing was kept; the person sends it again.
    const cut = () => reject(new ApiError(0, { code: 'upload_incomplete', detail: t('materials.cut') }));
    for (const ev of ['error', 'abort', 'timeout']) xhr.addEventListener(ev, cut);
    xhr.send(file);
  });
}

/**
 * Sends PDFs one after another, showing each one's progress in `bar` and `status`; a file
 * refused (too large, not a PDF) or cut off is said in `err` and the next one goes on. The
 * files that did not arrive.
 * @param {string} id the session
 * @param {File[]} files
 * @param {{ bar: HTMLProgressElement, status: HTMLElement, err: HTMLElement, after?: () => Promise<void> }} ui
 * @returns {Promise<File[]>}
 */
export async function sendAll(id, files, ui) {
  const { bar, status, err } = ui;
  /** @type {File[]} */
  const failed = [];
  for (const file of files) {
    if (file.size > MAX_MATERIAL) { err.append(errorBox(t('materials.too_large', { name: file.name }))); failed.push(file); continue; }
    bar.hidden = false;
    bar.max = file.size || 1;
    bar.value = 0;
    status.textContent = t('materials.sending', { name: file.name, share: percent(0) });
    try {
      await sendMaterial(id, file, sent => {
        bar.value = sent;
        status.textContent = t('materials.sending', { name: file.name, share: percent(sent / (file.size || 1)) });
      });
      status.textContent = t('materials.sent', { name: file.name });
    } catch (e) {
      status.textContent = '';
      failed.push(file);
      err.append(errorBox(e instanceof ApiError && e.status === 415 ? t('materials.not_pdf', { name: file.name }) : e));
    }
    bar.hidden = true;
    if (ui.after) await ui.after();
  }
  return failed;
}

/**
 * The panel on the session's page, and `load` to fetch the list again.
 * @param {string} id the session
 * @param {{ trainer: boolean, over: () => boolean, stillHere: () => boolean }} o `trainer`: the
 *   person is the session's trainer
 */
export function materialsPanel(id, o) {
  let seq = 0;
  const err = h('div');
  const listEl = h('div', { id: 'material-list' });
  const status = h('p', { class: 'muted', id: 'material-status', role: 'status' });
  const bar = h('progress', { id: 'material-progress', max: 1, value: 0, hidden: true, 'aria-label': t('materials.progress') });
  const input = h('input', { type: 'file', id: 'material-file', accept: 'application/pdf,.pdf', multiple: true, class: 'visually-hidden' });
  const pick = h('label', { for: 'material-file', class: 'button', id: 'material-add' }, t('materials.add'));
  const adder = o.trainer ? h('div', { class: 'actions-bar material-add' }, input, pick, bar, status) : null;
  const el = h('section', { class: 'box broadcast-materials', id: 'broadcast-materials', 'aria-labelledby': 'materials-heading' },
    h('h2', { id: 'materials-heading' }, t('materials.title')),
    o.trainer ? h('p', { class: 'muted' }, t('materials.hint_trainer')) : null,
    err, listEl, adder);

  /** @param {Material} m */
  const removeBtn = m => h('button', {
    type: 'button', class: 'small', 'data-action': 'remove', 'aria-label': t('materials.remove_named', { name: m.name }),
    onclick: async () => {
      err.replaceChildren();
      try { await api('DELETE', `${materialsPath(id)}/${encodeURIComponent(m.id)}`); await load(); } catch (e) { err.replaceChildren(errorBox(e)); }
    },
  }, t('materials.remove'));

  async function load() {
    const mine = ++seq;
    try {
      const r = await api('GET', materialsPath(id));
      if (mine !== seq || !o.stillHere()) return;
      /** @type {Material[]} */
      const list = r.materials || [];
      el.dataset.count = String(list.length);
      listEl.replaceChildren(list.length
        ? materialList(list, o.trainer ? removeBtn : null)
        : h('p', { class: 'muted', id: 'no-materials' }, t('materials.none')));
    } catch (e) { if (mine === seq && o.stillHere()) err.replaceChildren(errorBox(e)); }
  }

  input.addEventListener('change', async () => {
    const files = [...(input.files || [])];
    input.value = '';
    err.replaceChildren();
    await sendAll(id, files, { bar, status, err, after: async () => { if (o.stillHere()) await load(); } });
  });

  return { el, load };
}
