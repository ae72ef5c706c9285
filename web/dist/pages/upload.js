// Send imaging: files, a folder or a drop, each sent resumably (tus) with its own progress and
// the total.

import { h, startPage, table } from '../lib/dom.js';
import { describe } from '../lib/errors.js';
import { megabytes } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { me } from '../lib/session.js';
import { outcome, progressShare, tusUpload } from '../lib/tus.js';

/** @param {number} ms */
const sleep = ms => new Promise(r => setTimeout(r, ms));

/**
 * The text of a finished upload's result cell, and whether it is a refusal.
 * @param {import('../lib/tus.js').Outcome} o
 */
export function outcomeText(o) {
  if (o.kind === 'refused') return { text: t('upload.refused', { reason: o.reason }), bad: true };
  if (o.kind === 'partial') {
    return { text: t('upload.partial', { stored: o.stored, refused: o.refused, entry: o.entry ?? '?', reason: o.reason }), bad: true };
  }
  return { text: o.count > 1 ? t('upload.stored_many', { count: o.count }) : t('upload.stored'), bad: false };
}

export function uploadPage() {
  const show = startPage();
  const rows = h('tbody');
  const total = h('progress', { id: 'upload-total', max: 1, value: 0, 'aria-label': t('upload.total') });
  const totalText = h('span', { class: 'muted', id: 'upload-total-text' });
  const pick = h('input', { type: 'file', id: 'upload-files', multiple: true });
  const pickDir = h('input', { type: 'file', id: 'upload-folder', webkitdirectory: true });
  // Each label holds its own button, so the two never wrap apart.
  const drop = h('div', { class: 'box drop', id: 'upload-drop' },
    h('p', {}, t('upload.drop')),
    h('div', { class: 'drop-choices' },
      h('label', { class: 'pick' }, h('span', {}, t('upload.files')), pick),
      h('label', { class: 'pick' }, h('span', {}, t('upload.folder')), pickDir)));
  /** @param {FileList | File[]} picked */
  async function start(picked) {
    const files = [...picked].filter(f => f.size > 0);
    const size = files.reduce((a, f) => a + f.size, 0) || 1;
    const done = new Array(files.length).fill(0);
    const update = () => {
      const sum = done.reduce((a, b) => a + b, 0);
      total.value = progressShare(done, size);
      totalText.textContent = ` ${t('upload.total_of', { sent: megabytes(sum), size: megabytes(size) })}`;
    };
    const cells = files.map(f => {
      const bar = h('progress', { max: f.size || 1, value: 0, 'aria-label': t('upload.progress_of', { name: f.name }) });
      const state = h('td', { class: 'upload-state', 'data-state': 'waiting' }, t('upload.waiting'));
      rows.append(h('tr', { 'data-file': f.name }, h('td', { translate: 'no', 'data-raw': true }, f.webkitRelativePath || f.name), h('td', {}, bar), state));
      return { bar, state };
    });
    const me_ = me();
    for (const [i, f] of files.entries()) {
      const { bar, state } = cells[i];
      state.textContent = t('upload.sending');
      state.dataset.state = 'sending';
      try {
        const result = await tusUpload(f, n => { bar.value = n; done[i] = n; update(); }, {
          fetch: (input, init) => fetch(input, init), storage: localStorage, sleep,
          headers: { 'X-CSRF-Token': me_.csrf_token },
        });
        const o = outcome(result);
        const { text, bad } = outcomeText(o);
        state.textContent = text;
        state.dataset.state = o.kind;
        if (bad) state.className = 'upload-state denied';
      } catch (e) {
        const d = describe(e);
        state.textContent = t('upload.failed', { reason: d.detail ? `${d.message} (${d.detail})` : d.message });
        state.dataset.state = 'failed';
        state.className = 'upload-state denied';
      }
    }
  }
  pick.addEventListener('change', () => { if (pick.files) start(pick.files); });
  pickDir.addEventListener('change', () => { if (pickDir.files) start(pickDir.files); });
  drop.addEventListener('dragover', ev => ev.preventDefault());
  drop.addEventListener('drop', ev => { ev.preventDefault(); if (ev.dataTransfer) start(ev.dataTransfer.files); });
  const results = table([t('upload.col.file'), t('upload.col.progress'), t('upload.col.result')], []);
  // The empty table's "nothing here yet" row gives way to the files once they are chosen.
  const tbody = /** @type {HTMLElement} */ (results.querySelector('tbody'));
  tbody.replaceWith(rows);
  show(h('h1', {}, t('upload.title')),
    h('p', { class: 'muted' }, t('upload.intro', { site: me().site.name })),
    drop, h('p', {}, h('span', {}, t('upload.total_label')), ' ', total, totalText),
    results,
    h('p', {}, h('a', { href: '#/studies' }, t('upload.see_studies'))));
}
