// Request a video consult: specialty or a named specialist, urgency, when, the case summary and
// the studies to share.

import { api, qido } from '../lib/api.js';
import { STUDY_FIELDS, study } from '../lib/dicom.js';
import { field, h, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { patientBlock, studyFacts, studyTitle, uidDetails } from '../lib/study-view.js';
import { label, t } from '../lib/i18n.js';
import { consultHash } from '../lib/router.js';
import { loadSites, siteName } from '../lib/people.js';
import { me } from '../lib/session.js';
import { URGENCIES } from './consult-common.js';

export async function newConsultPage() {
  const show = startPage();
  const err = h('div');
  /** @type {{ id: string, display_name: string, site: string, online: boolean, specialties: string[] }[]} */
  let specialists = [];
  /** @type {import('../lib/dicom.js').Study[]} */
  let studies = [];
  try { specialists = (await api('GET', '/api/specialists')).specialists; } catch (e) { err.append(errorBox(e)); }
  await loadSites();
  try { studies = (await qido('studies', { includefield: STUDY_FIELDS, limit: '200' })).map(study); } catch (e) { err.append(errorBox(e)); }
  const specialties = [...new Set(['radiology', ...specialists.flatMap(s => s.specialties)])].sort();
  const specialtySel = h('select', { name: 'specialty', required: true }, specialties.map(s => h('option', { value: s }, label('specialty', s))));
  const specialistSel = h('select', { name: 'specialist' });
  const fillSpecialists = () => {
    const of = specialists.filter(s => s.specialties.includes(specialtySel.value));
    specialistSel.replaceChildren(h('option', { value: '' }, t('consult_new.any_specialist')),
      ...of.map(s => h('option', { value: s.id }, t('consult_new.specialist_option', {
        name: s.display_name, site: siteName(s.site), online: s.online ? t('presence.online') : t('presence.offline'),
      }))));
  };
  specialtySel.addEventListener('change', fillSpecialists);
  fillSpecialists();
  const studyList = studies.length
    ? h('ul', { class: 'pick-studies' }, studies.map(st => h('li', { 'data-study': st.uid }, h('label', {},
      h('input', { type: 'checkbox', name: 'study', value: st.uid }),
      h('span', {}, patientBlock(st), h('div', {}, studyTitle(st)), studyFacts(st))), uidDetails(st.uid))))
    : h('p', { class: 'muted' }, t('consult_new.no_studies', { site: me().site.name }));
  const submit = h('button', { class: 'primary big', type: 'submit' }, t('consult_new.send'));
  const form = h('form', { class: 'box', id: 'consult-form' },
    h('div', { class: 'row' },
      field(t('consult_new.specialty'), specialtySel),
      field(t('consult_new.specialist'), specialistSel),
      field(t('consult_new.urgency'), h('select', { name: 'urgency' }, URGENCIES.map(v => h('option', { value: v }, label('urgency', v))))),
      field(t('consult_new.when'), h('input', { name: 'scheduled_at', type: 'datetime-local' }))),
    field(t('consult_new.summary'), h('textarea', { name: 'summary', required: true, rows: 6, placeholder: t('consult_new.summary_placeholder') })),
    h('h2', {}, t('consult_new.studies')), studyList,
    err, h('p', {}, submit));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.replaceChildren();
    const fd = new FormData(form);
    /** @type {Record<string, unknown>} */
    const body = {
      specialty: fd.get('specialty'), urgency: fd.get('urgency'),
      summary: String(fd.get('summary')).trim(), studies: fd.getAll('study'),
    };
    if (fd.get('specialist')) body.specialist = fd.get('specialist');
    // datetime-local is the person's local time; the server wants unix ms.
    if (fd.get('scheduled_at')) body.scheduled_at = new Date(String(fd.get('scheduled_at'))).getTime();
    submit.disabled = true;
    try {
      const c = await api('POST', '/api/consults', body);
      location.hash = consultHash(c.id);
    } catch (e) {
      err.replaceChildren(errorBox(e));
      submit.disabled = false;
    }
  });
  show(h('h1', {}, t('consult_new.title')),
    h('p', { class: 'muted' }, t('consult_new.intro')),
    form);
}
