// Critical results (危急值) of one reading request: the reader marks one; each shows its state,
// who acknowledged it with the line they read back, the escalation and the reader's call log;
// the clinic acknowledges it here too (or in the banner every page shows).

import { api } from '../lib/api.js';
import { field, formValues, h, raw } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dateTime } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { nameOf } from '../lib/people.js';
import { CALL_OUTCOMES } from '../lib/reading.js';

/** @typedef {import('../lib/reading.js').Critical} Critical */

/** @param {string} cid */
export const criticalPath = cid => `/api/critical/${encodeURIComponent(cid)}`;

/**
 * Posts a step of a critical result with `btn` held down; `after` runs on success, `failed`
 * with the error.
 * @param {HTMLButtonElement} btn
 * @param {string} path
 * @param {unknown} body
 * @param {() => unknown} after
 * @param {(e: unknown) => void} failed
 */
export async function criticalStep(btn, path, body, after, failed) {
  btn.disabled = true;
  try { await api('POST', path, body); } catch (e) { btn.disabled = false; failed(e); return; }
  // Forms are kept across redraws: ready for the next call or finding.
  btn.disabled = false;
  await after();
}

/**
 * The clinic's acknowledgement: the line read back (required) and the button.
 * @param {Critical} c
 * @param {HTMLInputElement} input kept by the caller across redraws
 * @param {() => unknown} after
 */
export function acknowledgeForm(c, input, after) {
  const err = h('div');
  const btn = h('button', { class: 'primary acknowledge-critical', type: 'submit' }, t('critical.acknowledge'));
  const form = h('form', { class: 'critical-ack-form', 'data-critical': c.id, novalidate: true }, field(t('critical.readback_label'), input), h('div', {}, btn), err);
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const readback = input.value.trim();
    if (!readback) { err.replaceChildren(errorBox(t('critical.readback_needed'))); input.focus(); return; }
    err.replaceChildren();
    criticalStep(btn, `${criticalPath(c.id)}/acknowledge`, { readback }, async () => { input.value = ''; await after(); },
      e => { err.replaceChildren(errorBox(e)); after(); });
  });
  return form;
}

/**
 * The reader's log of a phone call: its outcome and a note.
 * @param {Critical} c
 * @param {() => unknown} after
 */
export function callForm(c, after) {
  const err = h('div');
  const btn = h('button', { class: 'small log-call', type: 'submit' }, t('critical.log_call'));
  const form = h('form', { class: 'critical-call-form row', 'data-critical': c.id },
    field(t('critical.call_outcome'), h('select', { name: 'outcome' }, CALL_OUTCOMES.map(o => h('option', { value: o }, label('call_outcome', o))))),
    field(t('critical.call_note'), h('input', { name: 'note', maxlength: 1000 })),
    h('div', {}, btn), err);
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const v = formValues(form);
    err.replaceChildren();
    criticalStep(btn, `${criticalPath(c.id)}/calls`, { outcome: v.outcome, note: v.note.trim() || undefined }, () => { form.reset(); return after(); },
      e => { err.replaceChildren(errorBox(e)); });
  });
  return form;
}

/**
 * One critical result and what the person may do with it.
 * @param {Critical} c
 * @param {{ phone: string | null | undefined, calls: HTMLFormElement | null, clinic: boolean, readback: HTMLInputElement, after: () => unknown }} o
 *   the call form (the centre's), whether the clinic may acknowledge, the read-back field
 */
export function criticalItem(c, o) {
  const open = !c.acknowledged_at && c.state !== 'acknowledged';
  const phone = c.callback_phone || o.phone;
  return h('li', { class: `critical-item critical-item-${open ? 'open' : 'acknowledged'}`, 'data-critical': c.id, 'data-state': open ? 'open' : 'acknowledged' },
    h('div', {}, h('strong', { class: 'critical-finding' }, label('critical_finding', c.finding)), ' · ',
      h('span', { class: 'muted' }, t('critical.raised', { by: nameOf(c.raised_by), at: dateTime(c.raised_at) }))),
    c.note ? raw(c.note, 'div', { class: 'critical-note' }) : null,
    open
      ? h('div', { class: 'critical-state-open' }, t('critical.not_acknowledged'))
      : h('div', { class: 'critical-acknowledged' }, t('critical.acknowledged_by', { by: nameOf(c.acknowledged_by), at: dateTime(c.acknowledged_at) }),
        c.readback ? [' ', t('critical.readback_was'), ' ', raw(c.readback, 'q', { class: 'readback' })] : null),
    open && c.escalated_at
      ? h('div', { class: 'alert-escalated critical-escalated', role: 'alert' },
        phone ? t('critical.escalated', { phone }) : t('critical.escalated_no_phone'))
      : null,
    c.calls && c.calls.length ? h('ol', { class: 'critical-calls' }, c.calls.map(k => h('li', {},
      t('critical.call_line', { at: dateTime(k.at), by: nameOf(k.by), outcome: label('call_outcome', k.outcome) }),
      k.note ? [' · ', raw(k.note)] : null))) : null,
    o.calls,
    open && o.clinic ? acknowledgeForm(c, o.readback, o.after) : null);
}

/**
 * The reader's form to mark a critical result: the finding (from the kind's list) and a note.
 * @param {string} path the request's API path
 * @param {string[]} findings
 * @param {() => unknown} after
 */
export function raiseForm(path, findings, after) {
  const err = h('div');
  const select = h('select', { name: 'finding', required: true },
    h('option', { value: '' }, t('critical.choose')), findings.map(f => h('option', { value: f }, label('critical_finding', f))));
  const btn = h('button', { class: 'big danger', type: 'submit', id: 'raise-critical' }, t('critical.raise'));
  const form = h('form', { id: 'critical-form', class: 'box critical-form', novalidate: true },
    h('h3', {}, t('critical.raise_title')),
    field(t('critical.finding'), select),
    field(t('critical.note'), h('input', { name: 'note', maxlength: 1000 })),
    err, h('p', {}, btn));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const v = formValues(form);
    if (!v.finding) { err.replaceChildren(errorBox(t('critical.finding_needed'))); return; }
    err.replaceChildren();
    criticalStep(btn, `${path}/critical`, { finding: v.finding, note: v.note.trim() || undefined }, () => { form.reset(); return after(); },
      e => { err.replaceChildren(errorBox(e)); after(); });
  });
  return form;
}
