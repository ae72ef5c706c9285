// Administration: the audit trail with its filters, older pages and the CSV export.

import { api } from '../../lib/api.js';
import { field, formValues, h, raw, startPage, table } from '../../lib/dom.js';
import { errorBox } from '../../lib/errors.js';
import { dateTime } from '../../lib/format.js';
import { label, t } from '../../lib/i18n.js';
import { loadPeople, loadSites, nameOf, siteName } from '../../lib/people.js';
import { uidDetails } from '../../lib/study-view.js';
import { adminTabs } from './common.js';

export const OUTCOMES = ['allowed', 'denied', 'success', 'failure'];

/** @param {URLSearchParams} [params] */
export async function auditPage(params = new URLSearchParams()) {
  const show = startPage();
  const err = h('div');
  /** @type {Record<string, any>[]} */
  let events = [];
  let next = null;
  const clean = new URLSearchParams([...params].filter(([, v]) => v));
  try {
    const r = await api('GET', `/api/audit?${clean}`);
    events = r.events; next = r.next_before;
    await Promise.all([loadSites(), loadPeople(events.map(e => e.actor))]);
  } catch (e) { err.append(errorBox(e)); }
  const val = (/** @type {string} */ k) => params.get(k) || '';
  const form = h('form', { class: 'box', id: 'audit-filters' },
    h('div', { class: 'row' },
      field(t('audit.user'), h('input', { name: 'user', value: val('user'), translate: 'no' })),
      field(t('audit.site'), h('input', { name: 'site', value: val('site'), translate: 'no' })),
      field(t('audit.resource'), h('input', { name: 'resource', value: val('resource'), translate: 'no' })),
      field(t('audit.action'), h('input', { name: 'action', value: val('action'), placeholder: 'login, user.list, …', translate: 'no' })),
      field(t('audit.outcome'), h('select', { name: 'outcome' }, ['', ...OUTCOMES].map(o =>
        h('option', { value: o, selected: o === val('outcome') }, o ? label('outcome', o) : t('common.any'))))),
      field(t('audit.from'), h('input', { name: 'from', type: 'date', value: val('from') })),
      field(t('audit.to'), h('input', { name: 'to', type: 'date', value: val('to') }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('audit.filter')), ' ',
      h('a', { class: 'button', id: 'audit-csv', href: `/api/audit.csv?${clean}`, download: 'ferry-audit.csv' }, t('audit.export'))));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    auditPage(new URLSearchParams(formValues(form)));
  });
  const older = next ? h('p', {}, h('button', {
    class: 'small', type: 'button', onclick: () => { const p = new URLSearchParams(params); p.set('before', next); auditPage(p); },
  }, t('audit.older'))) : null;
  const dash = (/** @type {any} */ v) => (v ? raw(v) : '—');
  // A study's UID is folded away like everywhere else; other ids are short and shown.
  const resource = (/** @type {string} */ kind, /** @type {string | null} */ id) => (!id ? raw(kind)
    : /^\d+(\.\d+){5,}$/.test(id) ? [raw(kind), uidDetails(id)]
      : raw(`${kind}:${id}`));
  const site = (/** @type {any} */ v) => (v ? raw(siteName(v), 'span', { 'data-site': v }) : '—');
  const actor = (/** @type {any} */ v) => (v ? raw(nameOf(v), 'span', { 'data-user': v, title: v }) : '—');
  show(h('h1', {}, t('admin.title')), adminTabs('audit'), form, err,
    table([t('audit.col.time'), t('audit.col.actor'), t('audit.col.actor_site'), t('audit.col.action'), t('audit.col.resource'),
      t('audit.col.site'), t('audit.col.outcome'), t('audit.col.from'), t('audit.col.detail')], events.map(e => h('tr', {},
      h('td', { class: 'nowrap' }, h('time', { datetime: String(e.at) }, dateTime(e.at))), h('td', {}, actor(e.actor)), h('td', {}, site(e.actor_site)),
      raw(e.action, 'td'),
      h('td', {}, resource(e.resource_kind, e.resource_id)), h('td', {}, site(e.site)),
      h('td', { class: `outcome-${e.outcome}`, 'data-outcome': e.outcome }, label('outcome', e.outcome)), h('td', {}, dash(e.client_addr)),
      h('td', {}, e.detail ? raw(e.detail) : '')))),
    older);
}
