// How a patient and a study look wherever they are shown: the patient by name (in the
// locale's form), ID, sex and age; the study by modality, description, date and number of
// images; the Study Instance UID only folded in a <details>.

import { h, raw } from './dom.js';
import { dicomDate, list, patientAge, patientSex, personName } from './format.js';
import { t } from './i18n.js';

/** @typedef {import('./dicom.js').Study} Study */

/**
 * The patient: the name, then "ID … · sex · age" beneath.
 * @param {Study} st
 */
export function patientBlock(st) {
  const name = personName(st.patientName);
  const bits = [
    st.patientId ? h('span', {}, t('patient.id'), ' ', raw(st.patientId)) : null,
    patientSex(st.sex) || null,
    patientAge(st) || null,
  ].filter(x => x !== null);
  return h('div', { class: 'patient' },
    name ? raw(name, 'strong', { class: 'patient-name' }) : h('strong', { class: 'patient-name muted' }, t('patient.no_name')),
    bits.length ? h('div', { class: 'muted patient-facts' }, bits.flatMap((b, i) => (i ? [' · ', b] : [b]))) : null);
}

/**
 * The study's modality and description (a placeholder when it has none).
 * @param {Study} st
 */
export function studyTitle(st) {
  return h('span', { class: 'study-title' },
    st.modalities.length ? [raw(list(st.modalities), 'strong'), ' · '] : null,
    st.description ? raw(st.description) : h('span', { class: 'muted' }, t('study.no_description')));
}

/**
 * The study's date and number of images.
 * @param {Study} st
 */
export function studyFacts(st) {
  const n = Number(st.instances) || 0;
  return h('span', { class: 'study-facts muted' },
    st.date ? dicomDate(st.date) : t('study.no_date'), ' · ', t('study.images', { count: n }));
}

/**
 * The Study Instance UID, folded.
 * @param {string} uid
 */
export function uidDetails(uid) {
  return h('details', { class: 'uid' }, h('summary', {}, t('study.uid')), raw(uid, 'code'));
}

/**
 * A study in a list: patient, then what the study is, when, how many images; the UID folded.
 * @param {Study} st
 * @param {HTMLElement[]} [extra] links or controls after the facts
 */
export function studySummary(st, extra = []) {
  return h('div', { class: 'study-summary', 'data-study': st.uid },
    patientBlock(st),
    h('div', {}, studyTitle(st)),
    h('div', {}, studyFacts(st), extra.map(e => [' ', e])),
    uidDetails(st.uid));
}
