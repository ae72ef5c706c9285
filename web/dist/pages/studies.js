// Imaging studies of the person's site and those shared with it: search, open in the viewer.

import { qido } from '../lib/api.js';
import { study, studyQuery, viewerUrl } from '../lib/dicom.js';
import { field, formValues, h, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dicomDate } from '../lib/format.js';
import { locale, ohifLanguage, t } from '../lib/i18n.js';
import { ecgOfStudyHash } from '../lib/router.js';
import { requestFor } from '../lib/reading.js';
import { can, me } from '../lib/session.js';
import { canSeeEcgs } from '../lib/shell.js';
import { patientBlock, studyTitle, uidDetails } from '../lib/study-view.js';
import { readingCell, sentRequests } from './reading-ask.js';

export const MODALITIES = ['CT', 'MR', 'US', 'CR', 'DX', 'MG', 'XA', 'ECG'];

/** @param {URLSearchParams} [params] */
export async function studiesPage(params = new URLSearchParams()) {
  const show = startPage();
  const err = h('div');
  /** @type {import('../lib/dicom.js').Study[]} */
  let studies = [];
  const one = params.get('study');
  const query = studyQuery({
    study: one,
    name: params.get('name'), id: params.get('id'), modality: params.get('modality'),
    from: params.get('from'), to: params.get('to'),
  });
  try { studies = (await qido('studies', query)).map(study); } catch (e) { err.append(errorBox(e)); }
  // A clinician sees each study's reading request, or may ask for one.
  const asks = can('imaging.send');
  /** @type {import('../lib/reading.js').Reading[]} */
  let requests = [];
  if (asks && studies.length) {
    try { requests = await sentRequests('imaging'); } catch (e) { err.append(errorBox(e)); }
  }
  const val = (/** @type {string} */ k) => params.get(k) || '';
  const form = h('form', { class: 'box', id: 'study-search', role: 'search' },
    h('div', { class: 'row' },
      field(t('studies.patient_name'), h('input', { name: 'name', value: val('name') })),
      field(t('studies.patient_id'), h('input', { name: 'id', value: val('id'), translate: 'no' })),
      field(t('studies.modality'), h('select', { name: 'modality' }, ['', ...MODALITIES].map(m =>
        h('option', { value: m, selected: m === val('modality'), translate: m ? 'no' : null }, m || t('common.any'))))),
      field(t('studies.from'), h('input', { name: 'from', type: 'date', value: val('from') })),
      field(t('studies.to'), h('input', { name: 'to', type: 'date', value: val('to') }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('studies.search'))));
  form.addEventListener('submit', ev => { ev.preventDefault(); studiesPage(new URLSearchParams(formValues(form))); });
  const lng = ohifLanguage(locale());
  // The viewer sends people here when a study does not exist or is not theirs to see.
  const unavailable = params.get('unavailable');
  show(h('h1', {}, t('studies.title')),
    unavailable ? h('p', { id: 'study-unavailable', class: 'notice', role: 'alert' }, t('studies.unavailable')) : null,
    h('p', { class: 'muted' }, t('studies.intro', { site: me().site.name }), ' ',
      h('a', { class: 'button', href: '#/upload', id: 'upload-link' }, t('studies.send'))), form, err,
    one ? h('p', { id: 'one-study', class: 'notice' }, t('studies.one'), ' ', h('a', { href: '#/studies' }, t('studies.show_all'))) : null,
    table([t('studies.col.patient'), t('studies.col.study'), t('studies.col.date'), t('studies.col.counts'),
      h('span', { class: 'visually-hidden' }, t('common.actions'))],
    studies.map(s => h('tr', { 'data-study': s.uid, class: one === s.uid ? 'picked' : null },
      h('td', {}, patientBlock(s)),
      h('td', {}, studyTitle(s), uidDetails(s.uid)),
      h('td', { class: 'nowrap' }, s.date ? dicomDate(s.date) : '—'),
      h('td', {}, t('studies.counts', { series: s.series || '0', instances: s.instances || '0' })),
      h('td', { class: 'study-actions' }, h('a', { class: 'button open-viewer', href: viewerUrl(s.uid, lng) }, t('studies.open')),
        // An ECG study opens in Ferry's 12-lead viewer too (the list finds its record).
        s.modalities.includes('ECG') && canSeeEcgs()
          ? h('a', { class: 'button open-ecg', href: ecgOfStudyHash(s.uid, s.patientId) }, t('studies.open_ecg')) : null,
        asks && !(s.modalities.length === 1 && s.modalities[0] === 'ECG')
          ? readingCell({ study_uid: s.uid }, requestFor(requests, { study_uid: s.uid })) : null))), { id: 'study-list' }));
}
