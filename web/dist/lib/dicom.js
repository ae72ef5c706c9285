// Reading DICOM JSON (PS3.18 F.2) as QIDO-RS returns it. Pure.

/** @typedef {Record<string, { vr?: string, Value?: any[] }>} DicomJson */

/**
 * The first value of an attribute: a string or number, or a person name object; '' if absent.
 * @param {DicomJson} item
 * @param {string} tag eight hex digits, e.g. "0020000D"
 * @returns {any}
 */
export function first(item, tag) {
  const v = item && item[tag] && item[tag].Value;
  return v && v.length && v[0] !== null && v[0] !== undefined ? v[0] : '';
}

/**
 * Every value of an attribute as text.
 * @param {DicomJson} item
 * @param {string} tag
 * @returns {string[]}
 */
export function all(item, tag) {
  const v = item && item[tag] && item[tag].Value;
  return (v || []).filter(x => x !== null && x !== undefined).map(x => (typeof x === 'object' ? x.Alphabetic || '' : String(x)));
}

/**
 * The first value as text (person names: their alphabetic group).
 * @param {DicomJson} item
 * @param {string} tag
 */
export function text(item, tag) {
  const v = first(item, tag);
  return typeof v === 'object' ? v.Alphabetic || '' : String(v);
}

/**
 * @typedef {{ uid: string, patientName: string | { Alphabetic?: string, Ideographic?: string, Phonetic?: string },
 *   patientId: string, sex: string, birthDate: string, age: string, date: string, modalities: string[],
 *   description: string, series: string, instances: string }} Study
 */

/**
 * The fields of a QIDO study result that pages show.
 * @param {DicomJson} st
 * @returns {Study}
 */
export function study(st) {
  return {
    uid: text(st, '0020000D'),
    patientName: first(st, '00100010'),
    patientId: text(st, '00100020'),
    sex: text(st, '00100040'),
    birthDate: text(st, '00100030'),
    age: text(st, '00101010'),
    date: text(st, '00080020'),
    modalities: all(st, '00080061'),
    description: text(st, '00081030'),
    series: text(st, '00201206'),
    instances: text(st, '00201208'),
  };
}

/** What a study search asks for besides the defaults: the patient's sex, birth date and age. */
export const STUDY_FIELDS = '00100040,00100030,00101010';

/**
 * The study search form's fields as a QIDO query: substring matches on name and ID, a
 * modality, a date range from `<input type=date>` values.
 * @param {{ study?: string | null, name?: string | null, id?: string | null, modality?: string | null, from?: string | null, to?: string | null }} f
 * @param {number} [limit]
 */
export function studyQuery(f, limit = 200) {
  const q = new URLSearchParams();
  if (f.study) q.set('StudyInstanceUID', f.study);
  if (f.name) q.set('PatientName', `*${f.name}*`);
  if (f.id) q.set('PatientID', `*${f.id}*`);
  if (f.modality) q.set('ModalitiesInStudy', f.modality);
  const from = (f.from || '').replaceAll('-', ''), to = (f.to || '').replaceAll('-', '');
  if (from || to) q.set('StudyDate', `${from}-${to}`);
  q.set('includefield', STUDY_FIELDS);
  q.set('limit', String(limit));
  return q;
}

/**
 * The viewer's address for a study, in the person's language where OHIF has it.
 * @param {string} uid
 * @param {string} [lng] OHIF's language tag
 */
export function viewerUrl(uid, lng) {
  return `/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}${lng ? `&lng=${encodeURIComponent(lng)}` : ''}`;
}
