// ECGs of the person's site and those shared with it: search by patient, day and format;
// each opens in the 12-lead viewer. Reached from the study list with `study` (and the
// patient's ID), it finds that study's ECG and opens it.

import { api } from '../lib/api.js';
import { acquiredText, acquiredDay, ecgQuery, FORMATS, listRate } from '../lib/ecg.js';
import { field, formValues, h, raw, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { number } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { ecgHash } from '../lib/router.js';
import { patientBlock } from '../lib/study-view.js';

/** @typedef {import('../lib/ecg.js').EcgRecord} EcgRecord */

/** Format names as the industry writes them (the same in every language). */
/** @type {Record<string, string>} */
export const FORMAT_NAMES = { dicom: 'DICOM', muse: 'GE MUSE XML', aecg: 'HL7 aECG', scp: 'SCP-ECG' };

/**
 * The patient of a record, shown as studies show theirs.
 * @param {EcgRecord} r
 */
export function ecgPatient(r) {
  const p = r.patient || {};
  return patientBlock({
    uid: r.study_uid || '', patientName: p.name || '', patientId: p.id || '', sex: p.sex || '', birthDate: p.birth_date || '',
    age: '', date: acquiredDay(r.acquired_at), modalities: [], description: '', series: '', instances: '',
  });
}

/**
 * The device's rate and QRS duration for a row ("61/min · QRS 75 ms").
 * @param {EcgRecord} r
 */
function rateCell(r) {
  const rate = listRate(r.measurements);
  const qrs = r.measurements && r.measurements.device && r.measurements.device.qrs_ms;
  const bits = [
    rate ? h('span', { class: rate.from === 'computed' ? 'muted' : null, title: rate.from === 'computed' ? t('ecg.computed_rate') : null },
      t('ecg.rate_value', { bpm: number(Math.round(rate.value)) })) : null,
    typeof qrs === 'number' ? t('ecg.qrs_value', { ms: number(Math.round(qrs)) }) : null,
  ].filter(x => x !== null);
  return bits.length ? bits.flatMap((b, i) => (i ? [' · ', b] : [b])) : '—';
}

/** @param {Record<string, string>} [params] the search (see router's `ecgSearch`) */
export async function ecgsPage(params = {}) {
  const show = startPage();
  const err = h('div');
  /** @type {EcgRecord[]} */
  let ecgs = [];
  const study = params.study || '';
  try {
    ecgs = (await api('GET', `/api/ecgs?${ecgQuery(params)}`)).ecgs || [];
  } catch (e) { err.append(errorBox(e)); }
  if (study) {
    ecgs = ecgs.filter(r => r.study_uid === study);
    // The study's one ECG: straight to the viewer (the list stays one step back).
    if (ecgs.length === 1) { location.replace(ecgHash(ecgs[0].id)); return; }
  }
  const val = (/** @type {string} */ k) => params[k] || '';
  const form = h('form', { class: 'box', id: 'ecg-search', role: 'search' },
    h('div', { class: 'row' },
      field(t('studies.patient_name'), h('input', { name: 'name', value: val('name') })),
      field(t('studies.patient_id'), h('input', { name: 'patient_id', value: val('patient_id'), translate: 'no' })),
      field(t('studies.from'), h('input', { name: 'from', type: 'date', value: val('from') })),
      field(t('studies.to'), h('input', { name: 'to', type: 'date', value: val('to') })),
      field(t('ecg.format'), h('select', { name: 'format' }, ['', ...FORMATS].map(f =>
        h('option', { value: f, selected: f === val('format'), translate: f ? 'no' : null }, f ? FORMAT_NAMES[f] : t('common.any')))))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('studies.search'))));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const q = new URLSearchParams(Object.entries(formValues(form)).filter(([, v]) => v.trim()));
    const next = `#/ecgs${q.size ? `?${q}` : ''}`;
    if (location.hash === next) ecgsPage(Object.fromEntries(q)); else location.hash = next;
  });
  const searched = ['name', 'patient_id', 'from', 'to', 'format'].some(k => params[k]);
  const empty = h('tr', {}, h('td', { colspan: 5, class: 'muted', id: 'no-ecgs' },
    study ? t('ecg.none_for_study') : searched ? t('ecg.none_found') : t('ecg.none_yet')));
  const rows = ecgs.map(r => h('tr', { 'data-ecg': r.id },
    h('td', {}, ecgPatient(r)),
    h('td', { class: 'nowrap' }, acquiredText(r.acquired_at)),
    h('td', {}, raw(FORMAT_NAMES[r.format] || r.format)),
    h('td', {}, rateCell(r)),
    h('td', {}, h('a', { class: 'button open-ecg', href: ecgHash(r.id) }, t('ecg.open')))));
  show(h('h1', {}, t('ecg.list_title')),
    h('p', { class: 'muted' }, t('ecg.list_intro'), ' ', h('a', { href: '#/ecgs/calibrate', id: 'calibrate-link' }, t('ecg.calibrate_link'))),
    form, err,
    study ? h('p', { id: 'one-study', class: 'notice' }, t('ecg.for_study'), ' ', h('a', { href: '#/ecgs' }, t('ecg.show_all'))) : null,
    table([t('studies.col.patient'), t('ecg.col.acquired'), t('ecg.format'), t('ecg.col.rate_qrs'),
      h('span', { class: 'visually-hidden' }, t('common.actions'))], rows.length ? rows : [empty], { id: 'ecg-list' }));
}
