// Send imaging: files, a folder or a drop, each sent resumably (tus) with its own progress and
// the total. Made for thin links: when the link drops or the server fails, the page waits and
// tries again by itself for as long as the person allows, says what it is waiting for, and goes
// on from what the server holds. The uploads belong to the app, not to the page: they go on
// while the person looks at other pages, and this page shows them again on return.

import { viewerUrl } from '../lib/dicom.js';
import { h, onPageLeave, raw, startPage } from '../lib/dom.js';
import { describe } from '../lib/errors.js';
import { megabytes, number } from '../lib/format.js';
import { locale, ohifLanguage, t } from '../lib/i18n.js';
import { studiesHash } from '../lib/router.js';
import { me } from '../lib/session.js';
import {
  KEEP_TRYING_DEFAULT, KEEP_TRYING_MINUTES, outcome, pendingUploads, progressShare, tusUpload, uploadKey,
} from '../lib/tus.js';
import { failureText, statusHex } from '../lib/dicom-status.js';

/**
 * @typedef {import('../lib/tus.js').UploadState} UploadState
 * @typedef {import('../lib/tus.js').Outcome} Outcome
 * @typedef {{ file: File, label: string, status: 'queued' | 'running' | 'stopped' | 'gave-up' | 'done' | 'failed',
 *   state: UploadState | null, sent: number, outcome?: Outcome, error?: any }} Job
 */

const KEEP_KEY = 'ferry-upload-keep';

/** Every upload chosen since the app loaded, in order. */
/** @type {Job[]} */
const jobs = [];
/** @type {AbortController | null} */
let stopper = null;
let running = false;
/** The waits under way, each ended early by "Try now" or the browser coming back online. */
/** @type {Set<() => void>} */
const wakers = new Set();
/** The page shown, if it is the upload page: redraws a job's row and the totals. */
/** @type {((job: Job | null) => void) | null} */
let redraw = null;

function keepMinutes() {
  try {
    const v = Number(localStorage.getItem(KEEP_KEY));
    if (KEEP_TRYING_MINUTES.includes(v)) return v;
  } catch (_) { /* storage refused */ }
  return KEEP_TRYING_DEFAULT;
}

/**
 * A wait that Stop ends (rejecting) and "Try now" or coming back online cuts short.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const done = () => { clearTimeout(timer); wakers.delete(done); resolve(); };
    const timer = setTimeout(done, ms);
    wakers.add(done);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer); wakers.delete(done); reject(new DOMException('stopped', 'AbortError'));
    }, { once: true });
  });
}
function wakeAll() { for (const w of [...wakers]) w(); }
window.addEventListener('online', wakeAll);

/** @param {Job | null} job */
const changed = job => { if (redraw) redraw(job); };

/** Sends the queued jobs one after another. */
async function run() {
  if (running) return;
  running = true;
  stopper = new AbortController();
  const signal = stopper.signal;
  try {
    for (let job = jobs.find(j => j.status === 'queued'); job && !signal.aborted; job = jobs.find(j => j.status === 'queued')) {
      const j = job;
      j.status = 'running';
      changed(j);
      try {
        const result = await tusUpload(j.file, n => { j.sent = n; changed(j); }, {
          fetch: (input, init) => fetch(input, init), storage: localStorage, sleep,
          headers: { 'X-CSRF-Token': me().csrf_token },
          keepTryingMs: () => keepMinutes() * 60000,
          signal,
          onState: s => { j.state = s; j.sent = s.sent; changed(j); },
        });
        j.outcome = outcome(result);
        j.sent = j.file.size;
        j.status = 'done';
      } catch (e) {
        const code = /** @type {any} */ (e).code;
        j.status = code === 'upload_stopped' ? 'stopped' : code === 'upload_gave_up' ? 'gave-up' : 'failed';
        j.error = e;
        // A link down too long stops the others too: they would only wait the same.
        if (j.status === 'gave-up') for (const o of jobs) if (o.status === 'queued') o.status = 'gave-up';
      }
      changed(j);
    }
  } finally {
    running = false;
    stopper = null;
    changed(null);
  }
}

function stopAll() {
  for (const j of jobs) if (j.status === 'queued') j.status = 'stopped';
  if (stopper) stopper.abort();
  changed(null);
}

function continueAll() {
  for (const j of jobs) if (j.status === 'stopped' || j.status === 'gave-up') { j.status = 'queued'; j.state = null; }
  changed(null);
  run();
}

/** @param {FileList | File[]} picked */
function add(picked) {
  for (const f of [...picked].filter(f => f.size > 0)) {
    // The same file chosen again while it is still known: continue that one.
    const known = jobs.find(j => uploadKey(j.file) === uploadKey(f) && j.status !== 'done');
    if (known) { if (known.status !== 'running') known.status = 'queued'; continue; }
    jobs.push({ file: f, label: f.webkitRelativePath || f.name, status: 'queued', state: null, sent: 0 });
  }
  changed(null);
  run();
}

/**
 * What a row says while its file is under way (or stopped): the phase, and for a wait what
 * it waits for, when the next try is, and how much the server holds.
 * @param {Job} j
 * @param {number} now
 */
export function jobText(j, now = Date.now()) {
  const size = megabytes(j.file.size), sent = megabytes(j.sent);
  if (j.status === 'queued') return t('upload.queued');
  if (j.status === 'stopped') return t('upload.stopped', { sent, size });
  if (j.status === 'gave-up') return t('upload.gave_up', { sent, size });
  const s = j.state;
  if (!s || s.phase === 'starting' || s.phase === 'checking') return t('upload.checking', { sent, size });
  if (s.phase === 'processing') return t('upload.processing');
  if (s.phase === 'waiting') {
    const seconds = number(Math.max(0, Math.ceil(((s.retryAt || now) - now) / 1000)));
    return t(`upload.wait_${s.why || 'link'}`, { seconds, sent, size });
  }
  return t('upload.sending_of', { sent, size });
}

/**
 * The refusal of one instance in plain words, with the DICOM status and the server's reason
 * beneath, folded.
 * @param {import('../lib/tus.js').FailedItem} f
 */
function failureItem(f) {
  const words = failureText(f.status);
  return h('li', { class: 'refusal', 'data-status': f.status === undefined ? null : statusHex(f.status) },
    f.entry !== undefined && f.entry !== null ? t('upload.entry', { entry: f.entry }) : null,
    words,
    h('details', { class: 'refusal-detail' }, h('summary', {}, t('upload.details')),
      h('p', {}, f.status !== undefined ? [t('upload.dicom_status'), ' ', raw(statusHex(f.status), 'code'), ' '] : null,
        raw(f.reason, 'span', { lang: 'en' }))));
}

/**
 * A finished upload's result: what was stored (with links to the study) and what was
 * refused, and why.
 * @param {Outcome} o
 */
export function outcomeView(o) {
  const lng = ohifLanguage(locale());
  const stored = o.kind === 'refused' ? [] : o.studies;
  const links = stored.map(s => h('li', { class: 'stored-study', 'data-study': s.uid },
    t('upload.study_images', { count: s.count }), ' ',
    h('a', { class: 'open-viewer', href: viewerUrl(s.uid, lng) }, t('studies.open')), ' · ',
    h('a', { class: 'in-list', href: studiesHash(s.uid) }, t('upload.in_list'))));
  const failed = o.kind === 'stored' ? [] : o.failed;
  const bundle = o.kind === 'stored' ? null : o.bundle;
  const head = o.kind === 'stored' ? t('upload.stored', { count: o.count })
    : o.kind === 'partial' ? t('upload.partial', { stored: o.stored, refused: failed.length })
      : t('upload.refused');
  return [
    h('div', { class: 'outcome-head' }, head),
    links.length ? h('ul', { class: 'stored-studies' }, links) : null,
    failed.length ? h('ul', { class: 'refusals' }, failed.map(failureItem)) : null,
    bundle ? h('div', { class: 'refusals' }, t('upload.bundle_unreadable'), h('details', { class: 'refusal-detail' },
      h('summary', {}, t('upload.details')), raw(bundle, 'p', { lang: 'en' }))) : null,
  ];
}

export function uploadPage() {
  const show = startPage();
  const rows = h('tbody');
  const total = h('progress', { id: 'upload-total', max: 1, value: 0, 'aria-label': t('upload.total') });
  const totalText = h('span', { class: 'muted', id: 'upload-total-text' });
  const pick = h('input', { type: 'file', id: 'upload-files', multiple: true });
  const pickDir = h('input', { type: 'file', id: 'upload-folder', webkitdirectory: true });
  const keep = h('select', { id: 'upload-keep', name: 'keep' }, KEEP_TRYING_MINUTES.map(m => h('option', { value: m, selected: m === keepMinutes() },
    m < 60 ? t('upload.keep_minutes', { count: m }) : t('upload.keep_hours', { count: m / 60 }))));
  keep.addEventListener('change', () => {
    try { localStorage.setItem(KEEP_KEY, keep.value); } catch (_) { /* for this page only */ }
  });
  const stopBtn = h('button', { id: 'upload-stop', class: 'small', type: 'button', onclick: stopAll }, t('upload.stop'));
  const continueBtn = h('button', { id: 'upload-continue', class: 'small', type: 'button', onclick: continueAll }, t('upload.continue'));
  const tryNowBtn = h('button', { id: 'upload-try-now', class: 'small', type: 'button', onclick: wakeAll }, t('upload.try_now'));
  // Each label holds its own button, so the two never wrap apart.
  const drop = h('div', { class: 'box drop', id: 'upload-drop' },
    h('p', {}, t('upload.drop')),
    h('div', { class: 'drop-choices' },
      h('label', { class: 'pick' }, h('span', {}, t('upload.files')), pick),
      h('label', { class: 'pick' }, h('span', {}, t('upload.folder')), pickDir)));
  const earlier = h('div', { id: 'upload-earlier' });
  /** @type {Map<Job, HTMLTableRowElement>} */
  const rowOf = new Map();

  /** @param {Job} j */
  function drawRow(j) {
    let tr = rowOf.get(j);
    if (!tr) {
      tr = h('tr', { 'data-file': j.file.name });
      rowOf.set(j, tr);
      rows.append(tr);
    }
    const bar = h('progress', { max: j.file.size || 1, value: j.sent, 'aria-label': t('upload.progress_of', { name: j.label }) });
    const kind = j.status === 'done' && j.outcome ? j.outcome.kind
      : j.status === 'running' ? (j.state && j.state.phase === 'waiting' ? 'waiting' : 'sending') : j.status;
    const cell = h('td', { class: `upload-state${kind === 'refused' || kind === 'partial' || kind === 'failed' || kind === 'gave-up' ? ' denied' : ''}`, 'data-state': kind });
    if (j.status === 'done' && j.outcome) cell.append(...outcomeView(j.outcome).filter(x => x !== null));
    else if (j.status === 'failed') {
      const d = describe(j.error);
      cell.append(t('upload.failed', { reason: d.message }));
      if (d.detail) cell.append(h('details', { class: 'refusal-detail' }, h('summary', {}, t('upload.details')), raw(d.detail, 'p', { lang: 'en' })));
    } else cell.append(jobText(j));
    // What a cut link cost: bytes offered again, one number per interruption (for the tests).
    tr.dataset.resent = (j.state ? j.state.resent : []).join(',');
    tr.replaceChildren(raw(j.label, 'td'), h('td', {}, bar), cell);
  }
  function drawTotals() {
    const size = jobs.reduce((a, j) => a + j.file.size, 0);
    const sent = jobs.reduce((a, j) => a + j.sent, 0);
    total.value = progressShare(jobs.map(j => j.sent), size || 1);
    totalText.textContent = jobs.length ? ` ${t('upload.total_of', { sent: megabytes(sent), size: megabytes(size) })}` : '';
    stopBtn.hidden = !jobs.some(j => j.status === 'running' || j.status === 'queued');
    continueBtn.hidden = !jobs.some(j => j.status === 'stopped' || j.status === 'gave-up');
    tryNowBtn.hidden = !jobs.some(j => j.status === 'running' && j.state && j.state.phase === 'waiting');
    // Uploads of earlier visits, not chosen again yet.
    /** @type {import('../lib/tus.js').UploadRecord[]} */
    let left = [];
    try { left = pendingUploads(localStorage).filter(r => !jobs.some(j => j.file.name === r.name && j.file.size === r.size)); } catch (_) { /* none */ }
    earlier.replaceChildren(...(left.length ? [h('div', { class: 'notice', role: 'status' },
      h('p', {}, t('upload.earlier')),
      h('ul', {}, left.map(r => h('li', {}, raw(r.name), ' — ', t('upload.earlier_sent', { sent: megabytes(r.sent), size: megabytes(r.size) })))))] : []));
  }
  const empty = h('tr', {}, h('td', { colspan: 3, class: 'muted' }, t('common.nothing_yet')));
  redraw = job => {
    if (job) drawRow(job); else for (const j of jobs) drawRow(j);
    if (!jobs.length) rows.replaceChildren(empty); else empty.remove();
    drawTotals();
  };
  // The countdown of a wait moves every second.
  const tick = setInterval(() => { for (const j of jobs) if (j.status === 'running' && j.state && j.state.phase === 'waiting') drawRow(j); }, 1000);
  onPageLeave(() => { clearInterval(tick); redraw = null; });

  pick.addEventListener('change', () => { if (pick.files) add(pick.files); pick.value = ''; });
  pickDir.addEventListener('change', () => { if (pickDir.files) add(pickDir.files); pickDir.value = ''; });
  drop.addEventListener('dragover', ev => ev.preventDefault());
  drop.addEventListener('drop', ev => { ev.preventDefault(); if (ev.dataTransfer) add(ev.dataTransfer.files); });
  const results = h('div', { class: 'table-wrap', tabindex: 0 }, h('table', { id: 'upload-list' },
    h('thead', {}, h('tr', {}, [t('upload.col.file'), t('upload.col.progress'), t('upload.col.result')].map(x => h('th', { scope: 'col' }, x)))),
    rows));
  redraw(null);
  show(h('h1', {}, t('upload.title')),
    h('p', { class: 'muted' }, t('upload.intro', { site: me().site.name })),
    earlier,
    drop,
    h('div', { class: 'row upload-controls' },
      h('div', {}, h('label', { for: 'upload-keep' }, t('upload.keep_label')), keep),
      h('div', { class: 'upload-buttons' }, stopBtn, ' ', tryNowBtn, ' ', continueBtn)),
    h('p', {}, h('span', {}, t('upload.total_label')), ' ', total, totalText),
    results,
    h('p', {}, h('a', { href: '#/studies' }, t('upload.see_studies'))));
}
