// Pieces the reading pages share: who reads and who sends, the priority badge, the state,
// the patient of a request, the service-level clock.

import { h, raw } from '../lib/dom.js';
import { label, t } from '../lib/i18n.js';
import { slaClock } from '../lib/reading.js';
import { readsAtCentre, sendsForReading } from '../lib/shell.js';
import { patientBlock } from '../lib/study-view.js';

/** @typedef {import('../lib/reading.js').Reading} Reading */

export { readsAtCentre, sendsForReading };

/** @param {string} p */
export function priorityBadge(p) {
  return h('span', { class: `priority priority-${p}`, 'data-priority': p }, label('priority', p));
}

/** @param {string} s */
export function stateText(s) {
  return label('reading_state', s);
}

/**
 * What is read: "Imaging · CT", "ECG".
 * @param {Reading} r
 */
export function kindText(r) {
  const kind = label('reading_kind', r.kind);
  return r.modality && r.kind !== 'ecg' ? [kind, ' · ', raw(r.modality)] : [kind];
}

/**
 * The patient of a request, as studies show theirs.
 * @param {Reading} r
 */
export function readingPatient(r) {
  const s = r.study || {};
  return patientBlock({
    uid: r.study_uid, patientName: s.patient_name || '', patientId: s.patient_id || '', sex: s.patient_sex || '',
    birthDate: s.patient_birth_date || '', age: '', date: s.study_date || '', modalities: [], description: '',
    series: '', instances: '',
  });
}

/**
 * The service-level clock as an element; `refreshClock` updates it in place.
 * @param {Reading} r
 * @param {number} now
 */
export function clockEl(r, now) {
  const el = h('span', { class: 'sla' });
  refreshClock(el, r, now);
  return el;
}

/**
 * @param {HTMLElement} el
 * @param {Reading} r
 * @param {number} now
 */
export function refreshClock(el, r, now) {
  const c = slaClock(r, now);
  el.className = `sla sla-${c.level}`;
  el.dataset.sla = c.level;
  el.textContent = c.text;
}
