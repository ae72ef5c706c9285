// One reading request: who, what and why; the steps the person may take; for the centre, the
// images (OHIF) or the 12-lead ECG beside the report editor (draft saved as one types, signed
// after a confirmation); the signed versions with their hashes and PDFs; amendments; critical
// results. Kept live over the socket without reloading (the viewer stays as it is).

import { api } from '../lib/api.js';
import { viewerUrl } from '../lib/dicom.js';
import { field, h, mainEl, onPageLeave, raw, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dateTime, dicomDate, personName, time } from '../lib/format.js';
import { label, locale, ohifLanguage, t } from '../lib/i18n.js';
import { loadPeople, loadSites, nameOf, siteName, who } from '../lib/people.js';
import { clockOffset, readingPath } from '../lib/reading.js';
import { ecgHash, readingHash, readingsHash } from '../lib/router.js';
import { me } from '../lib/session.js';
import { listen } from '../lib/socket.js';
import { facts } from './consult-common.js';
import { callForm, criticalItem, raiseForm } from './reading-critical.js';
import { kindText, priorityBadge, readingPatient, readsAtCentre, refreshClock, sendsForReading, stateText } from './reading-common.js';

/** @typedef {import('../lib/reading.js').ReadingDetail} ReadingDetail */
/** @typedef {import('../lib/reading.js').ReportBody} ReportBody */
/** @typedef {import('../lib/reading.js').Critical} Critical */

/** How long after the last keystroke the draft is saved. */
export const DRAFT_DELAY_MS = 3000;

/**
 * Check boxes of coded conclusions (ECG), ticked as given.
 * @param {string} name
 * @param {string[]} codes
 * @param {string[]} ticked
 * @param {() => void} [changed]
 */
function conclusionBoxes(name, codes, ticked, changed) {
  return h('fieldset', { class: 'conclusions', id: `${name}-conclusions` },
    h('legend', {}, t('reading.conclusions')),
    codes.map(c => {
      const box = h('input', { type: 'checkbox', name, value: c, checked: ticked.includes(c) });
      if (changed) box.addEventListener('change', changed);
      return h('label', { class: 'check' }, box, label('ecg_conclusion', c));
    }));
}

/** @param {HTMLElement} root @param {string} name */
const ticked = (root, name) => [...root.querySelectorAll(`input[name="${name}"]:checked`)].map(b => /** @type {HTMLInputElement} */ (b).value);

/**
 * A signed version: who signed it and when, its hash, the reason of an amendment, its text
 * and coded conclusions, and its PDF.
 * @param {string} id
 * @param {import('../lib/reading.js').Report} rep
 * @param {boolean} latest
 */
function reportItem(id, rep, latest) {
  const b = rep.body || { findings: '', impression: '', conclusions: [] };
  const pdf = `${readingPath(id)}/report.pdf?lang=${encodeURIComponent(locale())}&version=${rep.version}`;
  return h('li', { 'data-version': rep.version, class: latest ? 'latest' : 'superseded' },
    h('div', { class: 'opinion-head', 'data-signer': rep.signed_by },
      t('reading.report_head', { version: rep.version, by: nameOf(rep.signed_by), at: dateTime(rep.signed_at) }),
      latest ? h('span', { class: 'tag' }, t('consult.latest')) : h('span', { class: 'tag muted' }, t('consult.superseded'))),
    rep.reason ? h('p', { class: 'amend-reason' }, t('reading.amend_reason'), ' ', raw(rep.reason)) : null,
    h('dl', { class: 'report-body' },
      b.findings ? [h('dt', {}, t('reading.findings')), raw(b.findings, 'dd', { class: 'report-findings' })] : null,
      h('dt', {}, t('reading.impression')), raw(b.impression, 'dd', { class: 'report-impression' }),
      b.conclusions && b.conclusions.length
        ? [h('dt', {}, t('reading.conclusions')), h('dd', {}, h('ul', { class: 'report-conclusions' }, b.conclusions.map(c => h('li', {}, label('ecg_conclusion', c)))))]
        : null),
    h('p', { class: 'report-foot' },
      h('span', { class: 'muted report-hash' }, t('reading.hash'), ' ', raw(rep.content_sha256.slice(0, 12), 'code', { title: rep.content_sha256 })), ' ',
      h('a', { class: 'report-pdf', href: pdf, target: '_blank', rel: 'noopener' }, t('reading.print'))));
}

/**
 * The request's facts: patient, study, sites, question, call-back phone, priority, state,
 * clock, who claimed, signed and acknowledged it.
 * @param {ReadingDetail} r
 * @param {HTMLElement} clock
 * @param {boolean} atCentre
 */
function factsOf(r, clock, atCentre) {
  const s = r.study || {};
  const lng = ohifLanguage(locale());
  const images = !atCentre && r.state !== 'cancelled'
    ? (r.kind === 'ecg' && r.ecg_id
      ? h('a', { href: ecgHash(r.ecg_id), id: 'open-images' }, t('reading.open_ecg'))
      : h('a', { href: viewerUrl(r.study_uid, lng), id: 'open-images', target: '_blank', rel: 'noopener' }, t('reading.open_images')))
    : null;
  return facts([
    [t('reading.fact.patient'), readingPatient(r)],
    [t('reading.fact.study'), [kindText(r), ' · ', s.study_description ? raw(s.study_description) : h('span', { class: 'muted' }, t('study.no_description')),
      s.study_date ? [' · ', dicomDate(s.study_date)] : null, r.kind === 'imaging' && r.instances ? [' · ', t('study.images', { count: r.instances })] : null,
      images ? [' · ', images] : null]],
    [t('reading.fact.sending_site'), raw(siteName(r.sending_site))],
    [t('reading.fact.centre'), raw(siteName(r.centre_site))],
    [t('reading.fact.requested'), [dateTime(r.received_at), ' · ', r.requested_by === 'routing' ? t('reading.by_routing') : who(r.requested_by)]],
    [t('reading.fact.question'), r.question ? raw(r.question, 'div', { class: 'summary' }) : null],
    [t('reading.fact.phone'), r.callback_phone ? raw(r.callback_phone, 'a', { href: `tel:${r.callback_phone.replace(/[^0-9+]/g, '')}`, id: 'callback-phone' }) : null],
    [t('reading.fact.priority'), label('priority', r.priority)],
    [t('reading.fact.state'), h('span', { class: `state reading-state-${r.state}`, id: 'reading-state' }, stateText(r.state))],
    [t('reading.fact.sla'), r.state === 'cancelled' ? null : [clock, ' ', h('span', { class: 'muted' }, t('reading.due', { at: dateTime(r.due_at) }))]],
    [t('reading.fact.claimed_by'), r.claimed_by && (r.state === 'claimed' || r.state === 'signed') ? [who(r.claimed_by), ' ', h('span', { class: 'muted' }, t('reading.since', { at: dateTime(r.claimed_at) }))] : null],
    [t('reading.fact.signed'), r.signed_at ? dateTime(r.signed_at) : null],
    [t('reading.fact.acknowledged'), r.acknowledged_at ? [who(r.acknowledged_by), ' ', h('span', { class: 'muted' }, dateTime(r.acknowledged_at))] : null],
  ]);
}

/**
 * The centre's view of what is read: the study in OHIF (as beside a call) with a link to a
 * tab of its own, or the 12-lead ECG viewer.
 * @param {ReadingDetail} r
 */
function viewerPane(r) {
  const pane = h('section', { class: 'reading-viewer viewer-pane', 'aria-label': t('reading.images') });
  if (r.kind === 'ecg' && r.ecg_id) {
    const ecgId = r.ecg_id;
    pane.append(h('p', { class: 'muted' }, t('app.loading')));
    import('./ecg.js').then(async m => {
      const { rec, rhythm } = await m.loadEcg(ecgId);
      if (!pane.isConnected) return; // the page was left meanwhile
      const v = m.ecgViewer(ecgId, rec, rhythm, { back: readingHash(r.id) });
      pane.replaceChildren(v.calNote, v.toolbar, v.layout, h('p', {}, h('a', { href: ecgHash(ecgId), class: 'small-link' }, t('reading.ecg_page'))));
      v.draw();
    }).catch(e => { pane.replaceChildren(errorBox(e)); });
    return pane;
  }
  const url = viewerUrl(r.study_uid, ohifLanguage(locale()));
  pane.append(h('iframe', { id: 'viewer', title: t('call.viewer_title'), src: url, 'data-study': r.study_uid }),
    h('a', { class: 'small-link', id: 'viewer-tab', href: url, target: '_blank', rel: 'noopener' }, t('call.viewer_tab')));
  return pane;
}

/** @param {string} id */
export function readingPage(id) {
  const show = startPage();
  const path = readingPath(id);
  const err = h('div');
  // Parts made once and updated in place, so a live refresh keeps the viewer, what is being
  // typed and where the focus is.
  const head = h('div'), factsBox = h('div', { id: 'reading', class: 'box' }), actions = h('div');
  const reportsEl = h('div'), amendEl = h('div'), criticalEl = h('section', { id: 'critical', 'aria-labelledby': 'critical-title' });
  const clock = h('span');
  const findings = h('textarea', { name: 'findings', id: 'report-findings', rows: 10, maxlength: 20000 });
  const impression = h('textarea', { name: 'impression', id: 'report-impression', rows: 4, maxlength: 5000, required: true });
  const draftStatus = h('span', { id: 'draft-status', class: 'muted', role: 'status' });
  const editor = h('form', { id: 'report-form', class: 'box', hidden: true, novalidate: true });
  const confirmBox = h('div', { id: 'sign-confirm-box', class: 'notice confirm-box', hidden: true });
  /** @type {Map<string, HTMLInputElement>} */
  const readbacks = new Map();
  /** @type {Map<string, HTMLFormElement>} */
  const callForms = new Map();
  /** @type {HTMLFormElement | null} */
  let raise = null;
  /** @type {ReadingDetail | null} */
  let r = null;
  let seq = 0, offset = 0, built = false, prefilled = false, amending = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let draftTimer;
  let dirty = false;
  const may = (/** @type {string} */ s) => !!r && r.can.includes(s);

  /** @param {any} e */
  const failed = e => { err.replaceChildren(errorBox(e)); load(); };

  /**
   * One step of the request with `btn` held down; the page refetches after it (and after a
   * refusal: the state may have moved on).
   * @param {HTMLButtonElement} btn
   * @param {string} step
   * @param {unknown} [body]
   */
  const act = async (btn, step, body = {}) => {
    btn.disabled = true;
    err.replaceChildren();
    try { await api('POST', `${path}/${step}`, body); await load(); } catch (e) { btn.disabled = false; failed(e); }
  };
  const button = (/** @type {string} */ step, /** @type {string} */ cls, /** @type {string} */ text) =>
    h('button', { id: step, class: cls, type: 'button', onclick: (/** @type {Event} */ ev) => act(/** @type {HTMLButtonElement} */ (ev.currentTarget), step) }, text);

  // ---- the report editor ----
  /** @returns {ReportBody} */
  const body = () => ({ findings: findings.value, impression: impression.value, conclusions: ticked(editor, 'conclusion') });
  async function saveDraft() {
    clearTimeout(draftTimer);
    draftTimer = undefined;
    if (!dirty || !may('draft')) return;
    dirty = false;
    draftStatus.textContent = t('reading.draft_saving');
    try {
      await api('POST', `${path}/draft`, body());
      draftStatus.textContent = t('reading.draft_saved', { at: time(Date.now()) });
    } catch (e) {
      dirty = true;
      draftStatus.textContent = t('reading.draft_not_saved');
      failed(e);
    }
  }
  const typed = () => {
    dirty = true;
    draftStatus.textContent = t('reading.draft_unsaved');
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveDraft, DRAFT_DELAY_MS);
  };
  findings.addEventListener('input', typed);
  impression.addEventListener('input', typed);
  // Leaving the page saves what was typed since.
  onPageLeave(() => { if (draftTimer) saveDraft(); });

  /** @param {ReadingDetail} d */
  function buildEditor(d) {
    const src = d.draft || d.template || { findings: '', impression: '' };
    findings.value = src.findings || '';
    impression.value = src.impression || '';
    const codes = d.kind === 'ecg' ? d.conclusions || [] : [];
    // Where reading is two-step, a junior submits the draft for a senior to sign.
    const submitting = !may('sign') && may('submit');
    const signBtn = h('button', { id: submitting ? 'submit-report' : 'sign-report', class: 'primary big', type: 'submit' },
      submitting ? t('reading.submit') : t('reading.sign'));
    editor.replaceChildren(h('h2', {}, t('reading.report_title')),
      field(t('reading.findings'), findings),
      field(t('reading.impression'), impression),
      codes.length ? conclusionBoxes('conclusion', codes, (d.draft && d.draft.conclusions) || [], typed) : '',
      h('p', { class: 'muted' }, d.draft ? t('reading.from_draft') : d.template ? t('reading.from_template') : ''),
      h('div', { class: 'actions-bar' }, signBtn, draftStatus), confirmBox);
    editor.addEventListener('submit', ev => {
      ev.preventDefault();
      if (!impression.value.trim()) { err.replaceChildren(errorBox(t('reading.impression_needed'))); impression.focus(); return; }
      if (submitting) {
        clearTimeout(draftTimer);
        draftTimer = undefined;
        dirty = false;
        act(/** @type {HTMLButtonElement} */ (signBtn), 'submit', body());
        return;
      }
      askToSign();
    });
  }
  function askToSign() {
    const yes = h('button', { id: 'sign-confirm', class: 'primary big', type: 'button' }, t('reading.sign_now'));
    const no = h('button', { id: 'sign-not-yet', class: 'big', type: 'button' }, t('reading.sign_not_yet'));
    yes.addEventListener('click', async () => {
      clearTimeout(draftTimer);
      draftTimer = undefined;
      dirty = false;
      confirmBox.hidden = true;
      await act(yes, 'sign', body());
    });
    no.addEventListener('click', () => { confirmBox.hidden = true; /** @type {HTMLElement} */ (editor.querySelector('#sign-report')).focus(); });
    confirmBox.replaceChildren(h('p', {}, t('reading.sign_confirm')), h('div', { class: 'actions-bar' }, yes, no));
    confirmBox.hidden = false;
    yes.focus();
  }

  // ---- amendments ----
  /** @param {ReadingDetail} d */
  function amendForm(d) {
    const last = d.reports[d.reports.length - 1];
    const b = last ? last.body : { findings: '', impression: '', conclusions: [] };
    const f = h('textarea', { name: 'findings', rows: 8, maxlength: 20000 }, b.findings || '');
    const i = h('textarea', { name: 'impression', rows: 4, maxlength: 5000, required: true }, b.impression || '');
    const reason = h('input', { name: 'reason', id: 'amend-reason', required: true, maxlength: 1000 });
    const codes = d.kind === 'ecg' ? d.conclusions || [] : [];
    const sign = h('button', { id: 'amend-sign', class: 'primary big', type: 'submit' }, t('reading.amend_sign'));
    const form = h('form', { id: 'amend-form', class: 'box', novalidate: true }, h('h2', {}, t('reading.amend_title')),
      field(t('reading.findings'), f), field(t('reading.impression'), i),
      codes.length ? conclusionBoxes('amend-conclusion', codes, b.conclusions || []) : null,
      field(t('reading.amend_reason_label'), reason),
      h('div', { class: 'actions-bar' }, sign,
        h('button', { class: 'big', type: 'button', onclick: () => { amending = false; drawAmend(); } }, t('reading.sign_not_yet'))));
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      if (!reason.value.trim()) { err.replaceChildren(errorBox(t('reading.amend_reason_needed'))); reason.focus(); return; }
      if (!i.value.trim()) { err.replaceChildren(errorBox(t('reading.impression_needed'))); i.focus(); return; }
      await act(sign, 'amend', { findings: f.value, impression: i.value, conclusions: ticked(form, 'amend-conclusion'), reason: reason.value.trim() });
      // Signed (the button stays down): back to the button; refused: the form stays.
      if (sign.disabled) { amending = false; drawAmend(); }
    });
    return form;
  }
  function drawAmend() {
    if (!r || !may('amend')) { amending = false; amendEl.replaceChildren(); return; }
    if (amending) {
      if (!amendEl.querySelector('#amend-form')) amendEl.replaceChildren(amendForm(r));
    } else {
      amendEl.replaceChildren(h('p', {}, h('button', { id: 'amend-open', class: 'big', type: 'button', onclick: () => { amending = true; drawAmend(); } }, t('reading.amend'))));
    }
  }

  // ---- critical results ----
  /** @param {Critical[]} list */
  function drawCritical(list) {
    if (!r) return;
    const d = r;
    const atCentre = d.centre_site === me().site.id;
    const clinic = sendsForReading() && d.sending_site === me().site.id;
    if (may('critical') && !raise) raise = raiseForm(path, d.critical_findings || [], load);
    if (!list.length && !may('critical')) { criticalEl.replaceChildren(); return; }
    const items = list.map(c => {
      if (!readbacks.has(c.id)) readbacks.set(c.id, h('input', { name: 'readback', maxlength: 500, required: true, placeholder: t('critical.readback_placeholder') }));
      const open = !c.acknowledged_at && c.state !== 'acknowledged';
      if (open && atCentre && readsAtCentre() && !callForms.has(c.id)) callForms.set(c.id, callForm(c, load));
      return criticalItem(c, {
        phone: d.callback_phone, calls: open ? callForms.get(c.id) || null : null, clinic,
        readback: /** @type {HTMLInputElement} */ (readbacks.get(c.id)), after: load,
      });
    });
    criticalEl.replaceChildren(h('h2', { id: 'critical-title' }, t('critical.title')),
      items.length ? h('ul', { id: 'critical-list', class: 'critical-list' }, items) : h('p', { class: 'muted' }, t('critical.none')),
      may('critical') && raise ? raise : '');
  }

  // ---- the page ----
  /** @param {ReadingDetail} d */
  function build(d) {
    const atCentre = d.centre_site === me().site.id;
    const pane = atCentre && d.state !== 'cancelled' ? viewerPane(d) : null;
    const main = mainEl();
    main.classList.add('wide');
    onPageLeave(() => main.classList.remove('wide'));
    show(head, factsBox, err, actions,
      h('div', { class: pane ? 'reading-layout' : 'reading-layout single' }, pane,
        h('section', { class: 'reading-report', 'aria-label': t('reading.report_pane') }, reportsEl, editor, amendEl, criticalEl)),
      h('p', {}, h('a', { href: readingsHash() }, t('reading.all'))));
    built = true;
  }

  /**
   * @param {ReadingDetail} d
   * @param {Critical[]} critical
   */
  function update(d, critical) {
    const active = /** @type {HTMLElement | null} */ (document.activeElement);
    r = d;
    const p = d.study && d.study.patient_name ? personName(d.study.patient_name) : '';
    head.replaceChildren(h('h1', {}, priorityBadge(d.priority), ' ',
      d.kind === 'ecg' ? t('reading.title_ecg') : d.modality ? t('reading.title_imaging', { modality: d.modality }) : t('reading.title_imaging_plain'),
      p ? [' · ', raw(p)] : null));
    refreshClock(clock, d, Date.now() + offset);
    factsBox.className = `box reading-box priority-box-${d.priority}`;
    factsBox.dataset.state = d.state;
    factsBox.replaceChildren(factsOf(d, clock, d.centre_site === me().site.id));
    const buttons = [
      // Claiming one's own claim again only keeps it alive: the button is for taking it.
      may('claim') && !(d.state === 'claimed' && d.claimed_by === me().user.id) ? button('claim', 'primary big', t('reading.claim')) : null,
      may('send') ? button('send', 'primary big', t('reading.send')) : null,
      may('acknowledge') ? button('acknowledge', 'primary big', t('reading.acknowledge')) : null,
      may('release') ? button('release', 'big', t('reading.release')) : null,
      may('cancel') ? button('cancel', 'big danger', t('reading.cancel')) : null,
    ].filter(x => x !== null);
    actions.replaceChildren(buttons.length ? h('div', { class: 'actions-bar', id: 'reading-actions' }, buttons) : '');
    const latest = d.reports.length ? d.reports[d.reports.length - 1].version : null;
    reportsEl.replaceChildren(...(d.reports.length
      ? [h('h2', {}, d.reports.length > 1 ? t('reading.reports_title') : t('reading.report_signed_title')),
        h('ol', { id: 'reports', class: 'opinions reports' }, d.reports.map(rep => reportItem(d.id, rep, rep.version === latest)))]
      : [h('p', { class: 'muted', id: 'no-report' }, t('reading.no_report'))]));
    const writing = may('draft') || may('sign') || may('submit');
    if (writing && !prefilled) { buildEditor(d); prefilled = true; }
    editor.hidden = !writing;
    if (!writing) { clearTimeout(draftTimer); draftTimer = undefined; }
    drawAmend();
    drawCritical(critical);
    if (active && active.isConnected && document.activeElement !== active) active.focus();
  }

  /** @param {ReadingDetail} d @returns {Promise<Critical[]>} */
  async function criticalOf(d) {
    if (Array.isArray(d.critical) && d.critical.every(c => c && typeof c === 'object' && 'finding' in c)) return d.critical;
    const res = await api('GET', '/api/critical');
    return (res.critical || []).filter((/** @type {Critical} */ c) => c.reading === id);
  }

  async function load() {
    const mine = ++seq;
    try {
      /** @type {ReadingDetail} */
      const d = await api('GET', path);
      const fetchedAt = Date.now();
      const [critical] = await Promise.all([criticalOf(d), loadSites()]);
      await loadPeople([d.requested_by, d.claimed_by, d.acknowledged_by, ...d.reports.map(x => x.signed_by),
        ...critical.flatMap(c => [c.raised_by, c.acknowledged_by, ...(c.calls || []).map(k => k.by)])]);
      if (mine !== seq) return;
      offset = clockOffset([d], fetchedAt);
      if (!built) build(d);
      update(d, critical);
    } catch (e) {
      if (mine !== seq) return;
      if (built) { err.replaceChildren(errorBox(e)); return; }
      show(h('h1', {}, t('reading.heading')), errorBox(e), h('p', {}, h('a', { href: readingsHash() }, t('reading.all'))));
    }
  }

  listen('reading', m => { if (m.reading === id) load(); });
  listen('critical', m => { if (m.reading === id) load(); });
  listen('open', () => { if (built) load(); });
  const timer = setInterval(() => { if (r) refreshClock(clock, r, Date.now() + offset); }, 30000);
  onPageLeave(() => clearInterval(timer));
  // Errors shown by a step stay until the next step clears them.
  err.id = 'reading-error';
  load();
}
