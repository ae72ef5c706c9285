// Administration: a reading centre's routing rules (which sites' imaging and ECGs it reads, at
// what priority) and its report templates (what a reader's report starts from).

import { api } from '../../lib/api.js';
import { field, formValues, h, raw, startPage, table } from '../../lib/dom.js';
import { errorBox } from '../../lib/errors.js';
import { dateTime } from '../../lib/format.js';
import { label, t } from '../../lib/i18n.js';
import { loadPeople, nameOf } from '../../lib/people.js';
import {
  KINDS, PRIORITIES, RULE_MODALITIES, firstLine, ruleBody, rulePath, rulesPath, templateBody, templatesPath,
} from '../../lib/reading.js';
import { me } from '../../lib/session.js';
import { priorityBadge } from '../reading-common.js';
import { adminTabs, sitePicker, siteSelect } from './common.js';

/** @typedef {import('../../lib/session.js').Site} Site */
/** @typedef {import('../../lib/reading.js').RoutingRule} RoutingRule */
/** @typedef {import('../../lib/reading.js').ReportTemplate} ReportTemplate */

/** @param {HTMLSelectElement} kind @param {HTMLElement} part shown for imaging only */
function imagingOnly(kind, part) {
  const sync = () => { part.hidden = kind.value !== 'imaging'; };
  kind.addEventListener('change', sync);
  sync();
}

/** @param {string} [selected] */
const kindSelect = selected => h('select', { name: 'kind' },
  KINDS.map(k => h('option', { value: k, selected: k === selected }, label('reading_kind', k))));

/**
 * What a template is for: "Imaging · CT", "ECG · any modality".
 * @param {{ kind: string, modality: string }} x
 */
const templateWhat = x => `${label('reading_kind', x.kind)} · ${x.modality || t('reading_admin.any_modality')}`;

/**
 * A rule's row: the sending site by name ("and every site below it"), kind, modalities,
 * priority, and its Remove button.
 * @param {RoutingRule} r
 * @param {(id: string) => string} siteName
 * @param {() => void} remove
 */
function ruleRow(r, siteName, remove) {
  const name = siteName(r.from_site);
  const modalities = r.kind !== 'imaging' ? '—'
    : r.modalities.length ? raw(r.modalities.join(', ')) : t('reading_admin.all_modalities');
  return h('tr', { 'data-rule': r.id, 'data-from': r.from_site, 'data-kind': r.kind },
    h('td', {}, raw(name), r.subtree ? [' ', h('span', { class: 'muted' }, t('reading_admin.and_below'))] : null),
    h('td', {}, label('reading_kind', r.kind)), h('td', {}, modalities), h('td', {}, priorityBadge(r.priority)),
    h('td', { class: 'actions' }, h('button', {
      class: 'small', type: 'button', onclick: remove,
      'aria-label': t('reading_admin.remove_rule', { site: name, kind: label('reading_kind', r.kind) }),
    }, t('reading_admin.remove'))));
}

/**
 * The form adding a rule: the sending site (any but the centre), whether the sites below it
 * come too, kind, modalities (imaging; none ticked is every one), priority.
 * @param {string} centre
 * @param {Site[]} sites
 * @param {() => void} done
 */
function ruleForm(centre, sites, done) {
  const err = h('div');
  const kind = kindSelect();
  const modalities = h('fieldset', { class: 'modality-boxes', id: 'rule-modalities' },
    h('legend', {}, t('reading_admin.modalities')),
    RULE_MODALITIES.map(m => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'modality', value: m }), raw(m))),
    h('p', { class: 'muted' }, t('reading_admin.modalities_hint')));
  imagingOnly(kind, modalities);
  const form = h('form', { class: 'box', id: 'rule-form' },
    h('h2', {}, t('reading_admin.add_rule_title')),
    h('div', { class: 'row' },
      field(t('readings.sending_site'), siteSelect(sites.filter(s => s.id !== centre), '', 'from_site')),
      field(t('readings.kind'), kind),
      field(t('readings.priority'), h('select', { name: 'priority' },
        PRIORITIES.map(p => h('option', { value: p, selected: p === 'routine' }, label('priority', p)))))),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'subtree' }), t('reading_admin.subtree')),
    modalities, err,
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('reading_admin.add_rule'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const ticked = [...form.querySelectorAll('input[name="modality"]:checked')].map(b => /** @type {HTMLInputElement} */ (b).value);
    try { await api('POST', rulesPath(centre), ruleBody(formValues(form), ticked)); done(); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  return form;
}

/**
 * The template editor: kind, modality (none for any; imaging only), findings and impression;
 * saving replaces the template of the same kind and modality. `edit` fills it with one.
 * @param {string} centre
 * @param {() => void} done
 */
function templateForm(centre, done) {
  const err = h('div');
  const kind = kindSelect();
  const modality = h('select', { name: 'modality' }, h('option', { value: '' }, t('reading_admin.any_modality')),
    RULE_MODALITIES.map(m => h('option', { value: m, translate: 'no' }, m)));
  const modalityField = field(t('studies.modality'), modality);
  imagingOnly(kind, modalityField);
  const findings = h('textarea', { name: 'findings', rows: 8, maxlength: 20000 });
  const impression = h('textarea', { name: 'impression', rows: 3, maxlength: 5000 });
  const form = h('form', { class: 'box', id: 'template-form' },
    h('h2', {}, t('reading_admin.template_form_title')),
    h('div', { class: 'row' }, field(t('readings.kind'), kind), modalityField),
    field(t('reading.findings'), findings), field(t('reading.impression'), impression),
    h('p', { class: 'muted' }, t('reading_admin.template_replaces')), err,
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, t('reading_admin.save_template'))));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    try { await api('PUT', templatesPath(centre), templateBody(formValues(form))); done(); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  /** @param {ReportTemplate} tpl */
  const edit = tpl => {
    kind.value = tpl.kind;
    kind.dispatchEvent(new Event('change'));
    if (tpl.modality && ![...modality.options].some(o => o.value === tpl.modality)) {
      modality.append(h('option', { value: tpl.modality, translate: 'no' }, tpl.modality));
    }
    modality.value = tpl.modality;
    findings.value = tpl.findings;
    impression.value = tpl.impression;
    err.replaceChildren();
    findings.focus();
  };
  return { form, edit };
}

/**
 * A template's row: kind, modality or "any", the first line of its findings, when and by whom
 * it was last changed, Edit and Remove.
 * @param {ReportTemplate} tpl
 * @param {{ edit: () => void, remove: () => void }} on
 */
function templateRow(tpl, on) {
  const what = templateWhat(tpl);
  const line = firstLine(tpl.findings);
  return h('tr', { 'data-template-kind': tpl.kind, 'data-template-modality': tpl.modality },
    h('td', {}, label('reading_kind', tpl.kind)),
    h('td', {}, tpl.modality ? raw(tpl.modality) : t('reading_admin.any_modality')),
    h('td', { class: 'template-first-line' }, line ? raw(line) : '—'),
    h('td', {}, dateTime(tpl.updated_at), tpl.updated_by ? [' · ', raw(nameOf(tpl.updated_by), 'span', { 'data-user': tpl.updated_by })] : null),
    h('td', { class: 'actions' },
      h('button', { class: 'small', type: 'button', onclick: on.edit, 'aria-label': t('reading_admin.edit_template', { what }) }, t('reading_admin.edit')),
      h('button', { class: 'small', type: 'button', onclick: on.remove, 'aria-label': t('reading_admin.remove_template', { what }) }, t('reading_admin.remove'))));
}

/** @param {string} [site] the centre: the person's own site unless another is chosen */
export async function readingCentrePage(site = me().site.id) {
  const show = startPage();
  const err = h('div');
  /** @type {Site[]} */
  let sites = [];
  /** @type {RoutingRule[]} */
  let rules = [];
  /** @type {ReportTemplate[]} */
  let templates = [];
  try {
    [sites, rules, templates] = await Promise.all([
      api('GET', '/api/sites').then(r => r.sites),
      api('GET', rulesPath(site)).then(r => r.rules),
      api('GET', templatesPath(site)).then(r => r.templates),
    ]);
    await loadPeople(templates.map(x => x.updated_by));
  } catch (e) { err.append(errorBox(e)); }
  const again = () => readingCentrePage(site);
  const byId = new Map(sites.map(s => [s.id, s.name]));
  const siteName = (/** @type {string} */ id) => byId.get(id) || id;
  /** @param {string} path */
  const remove = async path => {
    try { await api('DELETE', path); again(); } catch (e) { err.replaceChildren(errorBox(e)); }
  };
  const editor = templateForm(site, again);
  const actions = h('span', { class: 'visually-hidden' }, t('common.actions'));
  show(h('h1', {}, t('admin.title')), adminTabs('reading'),
    h('div', { class: 'row box' }, await sitePicker(readingCentrePage, site, sites.length ? sites : undefined)), err,
    h('h2', {}, t('reading_admin.rules_title')),
    h('p', { class: 'muted' }, t('reading_admin.rules_intro', { centre: siteName(site) })),
    table([t('readings.sending_site'), t('readings.kind'), t('studies.modality'), t('readings.priority'), actions],
      rules.map(r => ruleRow(r, siteName, () => remove(rulePath(r.id)))), { id: 'routing-rules' }),
    ruleForm(site, sites, again),
    h('h2', {}, t('reading_admin.templates_title')),
    h('p', { class: 'muted' }, t('reading_admin.templates_intro')),
    table([t('readings.kind'), t('studies.modality'), t('reading_admin.col.findings'), t('reading_admin.col.changed'), actions.cloneNode(true)],
      templates.map(x => templateRow(x, { edit: () => editor.edit(x), remove: () => remove(templatesPath(site, x)) })), { id: 'reading-templates' }),
    editor.form);
}
