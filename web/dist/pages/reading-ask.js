// "Ask for a reading": a clinician sends a study or an ECG of their site to the reading centre
// (priority, clinical question, call-back phone); once asked, the request's state and a link to
// it. Used by the study list (a row each) and the ECG viewer (a box in its panel).

import { api } from '../lib/api.js';
import { field, formValues, h } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { label, t } from '../lib/i18n.js';
import { PRIORITIES, SENT_STATES, requestFor } from '../lib/reading.js';
import { readingHash } from '../lib/router.js';
import { stateText } from './reading-common.js';

/** @typedef {import('../lib/reading.js').Reading} Reading */
/** @typedef {{ study_uid?: string, ecg_id?: string }} What */

/**
 * The clinic's requests (not cancelled), to find a study's or an ECG's.
 * @param {'imaging' | 'ecg'} [kind]
 * @returns {Promise<Reading[]>}
 */
export async function sentRequests(kind) {
  const q = new URLSearchParams({ scope: 'sent', state: SENT_STATES.join(','), limit: '1000' });
  if (kind) q.set('kind', kind);
  return (await api('GET', `/api/readings?${q}`)).readings || [];
}

/**
 * A request's state and the way to it.
 * @param {Reading} r
 */
export function requestLink(r) {
  return h('span', { class: 'reading-link-box', 'data-reading': r.id, 'data-state': r.state },
    h('a', { class: 'reading-link', href: readingHash(r.id) }, t('reading_ask.open', { state: stateText(r.state) })));
}

/**
 * The form asking for a reading; `done` gets the request the server answers.
 * @param {What} what
 * @param {(r: Reading) => void} done
 */
export function askForm(what, done) {
  const err = h('div');
  const button = h('button', { class: 'primary', type: 'submit' }, t('reading_ask.submit'));
  const form = h('form', { class: 'reading-ask-form' },
    field(t('reading_ask.priority'), h('select', { name: 'priority' }, PRIORITIES.map(p =>
      h('option', { value: p, selected: p === 'routine' }, label('priority', p))))),
    field(t('reading_ask.question'), h('textarea', { name: 'question', rows: 3, maxlength: 2000, placeholder: t('reading_ask.question_placeholder') })),
    field(t('reading_ask.phone'), h('input', { name: 'callback_phone', type: 'tel', maxlength: 40, autocomplete: 'tel', translate: 'no' })),
    err, h('p', {}, button));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    button.disabled = true;
    err.replaceChildren();
    try {
      const r = await api('POST', '/api/readings', {
        ...what, priority: v.priority, question: v.question.trim() || undefined, callback_phone: v.callback_phone.trim() || undefined,
      });
      done(r);
    } catch (e) {
      err.replaceChildren(errorBox(e));
      button.disabled = false;
    }
  });
  return form;
}

/**
 * For a row of a list: the request's link when there is one, else the form folded.
 * @param {What} what
 * @param {Reading | null} existing
 */
export function readingCell(what, existing) {
  const cell = h('div', { class: 'reading-cell' });
  const asked = (/** @type {Reading} */ r) => { cell.replaceChildren(requestLink(r)); };
  if (existing) asked(existing);
  else cell.append(h('details', { class: 'reading-ask' }, h('summary', {}, t('reading_ask.title')), askForm(what, asked)));
  return cell;
}

/**
 * A box for one study or ECG: looks for its request, shows it, or offers the form.
 * @param {What} what
 */
export function readingAsk(what) {
  const body = h('div', {}, h('p', { class: 'muted' }, t('app.loading')));
  const box = h('section', { class: 'box reading-ask-box', id: 'reading-ask', 'aria-labelledby': 'reading-ask-title' },
    h('h2', { id: 'reading-ask-title' }, t('reading_ask.heading')), body);
  const asked = (/** @type {Reading} */ r) => { body.replaceChildren(requestLink(r)); };
  sentRequests(what.ecg_id ? 'ecg' : 'imaging').then(list => {
    const r = requestFor(list, what);
    if (r) asked(r);
    else body.replaceChildren(h('p', { class: 'muted' }, t('reading_ask.intro')), askForm(what, asked));
  }).catch(e => { body.replaceChildren(errorBox(e)); });
  return box;
}
