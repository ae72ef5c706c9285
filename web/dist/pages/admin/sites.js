// Administration: the sites of the network, and adding one.

import { api } from '../../lib/api.js';
import { field, formValues, h, raw, startPage, table } from '../../lib/dom.js';
import { errorBox } from '../../lib/errors.js';
import { label, t } from '../../lib/i18n.js';
import { me } from '../../lib/session.js';
import { adminTabs, siteSelect } from './common.js';

export const TIERS = ['city', 'county', 'township', 'village'];
export const SITE_KINDS = ['hospital', 'clinic', 'reading-centre'];

export async function sitesPage() {
  const show = startPage();
  const err = h('div');
  /** @type {import('../../lib/session.js').Site[]} */
  let sites = [];
  try { sites = (await api('GET', '/api/sites')).sites; } catch (e) { err.append(errorBox(e)); }
  const form = h('form', { class: 'box' },
    h('h2', {}, t('sites.add_title')),
    h('div', { class: 'row' },
      field(t('sites.id'), h('input', { name: 'id', required: true, placeholder: 'harbour-clinic', translate: 'no' })),
      field(t('sites.name'), h('input', { name: 'name', required: true })),
      field(t('sites.tier'), h('select', { name: 'tier' }, TIERS.map(x => h('option', { value: x }, label('tier', x))))),
      field(t('sites.kind'), h('select', { name: 'kind' }, SITE_KINDS.map(x => h('option', { value: x }, label('site_kind', x))))),
      field(t('sites.parent'), siteSelect(sites, me().site.id, 'parent'))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('sites.add'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    try { await api('POST', '/api/sites', v); sitesPage(); } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const byId = Object.fromEntries(sites.map(s => [s.id, s]));
  show(h('h1', {}, t('admin.title')), adminTabs('sites'), err,
    table([t('sites.col.site'), t('sites.col.id'), t('sites.col.tier'), t('sites.col.kind'), t('sites.col.parent')], sites.map(s => h('tr', {},
      h('td', {}, raw(s.name)), h('td', {}, raw(s.id, 'code')), h('td', {}, label('tier', s.tier)), h('td', {}, label('site_kind', s.kind)),
      h('td', {}, s.parent ? raw(byId[s.parent]?.name || s.parent) : '—')))),
    form);
}
