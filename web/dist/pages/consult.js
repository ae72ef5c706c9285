// One consult: its facts, studies, the steps the person may take, the signed opinions and
// the acknowledgement; kept live over the socket.

import { ApiError, api, studiesByUid } from '../lib/api.js';
import { viewerUrl } from '../lib/dicom.js';
import { field, h, raw, startPage } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { dateTime } from '../lib/format.js';
import { label, locale, ohifLanguage, t } from '../lib/i18n.js';
import { callHash } from '../lib/router.js';
import { loadPeople, loadSites, who, whoText } from '../lib/people.js';
import { me } from '../lib/session.js';
import { listen } from '../lib/socket.js';
import { studySummary, uidDetails } from '../lib/study-view.js';
import { consultPath, escalatedBanner, facts, stateLabel, urgencyBadge } from './consult-common.js';

/** @typedef {import('./consult-common.js').Consult} Consult */

/** @param {string} id */
export function consultPage(id) {
  const show = startPage();
  const err = h('div');
  // Fields made once, so a live refresh keeps what is being typed.
  const opinionText = h('textarea', { name: 'text', required: true, rows: 8, placeholder: t('consult.opinion_placeholder') });
  const declineReason = h('input', { id: 'decline-reason', placeholder: t('consult.decline_reason'), 'aria-label': t('consult.decline_reason') });
  const cancelReason = h('input', { id: 'cancel-reason', placeholder: t('consult.cancel_reason'), 'aria-label': t('consult.cancel_reason_label') });
  let seq = 0;

  /**
   * Runs one step of the consult with `btn` held down; the page refetches after it.
   * @param {HTMLButtonElement} btn
   * @param {string} path
   * @param {unknown} [body]
   * @param {() => unknown} [after]
   */
  const act = async (btn, path, body, after = load) => {
    btn.disabled = true;
    err.replaceChildren();
    try { await api('POST', `${consultPath(id)}/${path}`, body); await after(); }
    catch (e) { err.replaceChildren(errorBox(e)); btn.disabled = false; }
  };
  const refuse = (/** @type {string} */ text) => { err.replaceChildren(errorBox(text)); };
  const target = (/** @type {Event} */ ev) => /** @type {HTMLButtonElement} */ (ev.currentTarget);

  /**
   * @param {Consult} c
   * @param {Map<string, import('../lib/dicom.js').Study>} seen the consult's studies the person may see
   */
  function render(c, seen) {
    const may = (/** @type {string} */ s) => c.can.includes(s);
    const latest = c.opinions.length ? c.opinions[c.opinions.length - 1].version : null;
    const buttons = [];
    if (may('accept')) buttons.push(h('button', { id: 'accept', class: 'primary big', type: 'button', onclick: (/** @type {Event} */ ev) => act(target(ev), 'accept') }, t('consult.accept')));
    if (may('join')) buttons.push(h('a', { id: 'join-call', class: 'button big', href: callHash(c.id) }, t('consult.join_call')));
    if (may('complete')) {
      buttons.push(h('button', {
        id: 'complete', class: 'big', type: 'button', 'aria-describedby': 'complete-help',
        onclick: (/** @type {Event} */ ev) => act(target(ev), 'complete'),
      }, t('consult.end')));
    }
    if (may('decline')) {
      buttons.push(h('span', { class: 'inline-form' }, declineReason, h('button', {
        id: 'decline', class: 'big', type: 'button', onclick: (/** @type {Event} */ ev) => {
          const reason = declineReason.value.trim();
          if (!reason) return refuse(t('consult.decline_needs_reason'));
          // A specialist who declined may no longer see the request: back to the inbox.
          act(target(ev), 'decline', { reason }, () => { location.hash = '#/consults'; });
        },
      }, t('consult.decline'))));
    }
    if (may('cancel')) {
      buttons.push(h('span', { class: 'inline-form' }, cancelReason, h('button', {
        id: 'cancel', class: 'big danger', type: 'button',
        onclick: (/** @type {Event} */ ev) => act(target(ev), 'cancel', cancelReason.value.trim() ? { reason: cancelReason.value.trim() } : {}),
      }, t('consult.cancel'))));
    }
    const opinions = c.opinions.length ? h('ol', { id: 'opinions', class: 'opinions' }, c.opinions.map(o =>
      h('li', { 'data-version': o.version, class: o.version === latest ? 'latest' : 'superseded' },
        h('div', { class: 'opinion-head', 'data-signer': o.signed_by }, t('consult.opinion_head', { version: o.version, by: whoText(o.signed_by), at: dateTime(o.signed_at) }),
          o.version === latest ? h('span', { class: 'tag' }, t('consult.latest')) : h('span', { class: 'tag muted' }, t('consult.superseded'))),
        raw(o.text, 'div', { class: 'opinion-text' })))) : null;
    let signForm = null;
    if (may('sign')) {
      const sign = h('button', { id: 'sign-opinion', class: 'primary big', type: 'submit' }, c.opinions.length ? t('consult.sign_amended') : t('consult.sign'));
      signForm = h('form', { id: 'opinion-form', class: 'box' },
        h('h2', {}, c.opinions.length ? t('consult.amend_title') : t('consult.opinion_title')),
        field(t('consult.opinion_label'), opinionText),
        h('p', {}, sign));
      signForm.addEventListener('submit', ev => {
        ev.preventDefault();
        const text = opinionText.value.trim();
        if (!text) return refuse(t('consult.opinion_needed'));
        act(sign, 'opinions', { text }, async () => { opinionText.value = ''; await load(); });
      });
    }
    const ack = c.acknowledged
      ? h('p', { id: 'acknowledged', class: 'notice' },
        t('consult.acknowledged', { by: whoText(c.acknowledged.by), at: dateTime(c.acknowledged.at), version: c.acknowledged.version }),
        latest && c.acknowledged.version !== latest ? ` ${t('consult.not_yet_acknowledged', { version: latest })}` : '')
      : null;
    const lng = ohifLanguage(locale());
    return [
      h('h1', {}, urgencyBadge(c.urgency), ' ', t('consult.title', { specialty: label('specialty', c.specialty) })),
      c.escalated && c.state === 'requested' ? escalatedBanner(c) : null,
      h('div', { id: 'consult', 'data-state': c.state, class: `box level-${c.urgency}` },
        facts([
          [t('consult.fact.state'), h('span', { class: `state state-${c.state}` }, stateLabel(c.state))],
          [t('consult.fact.urgency'), label('urgency', c.urgency)],
          [t('consult.fact.specialty'), label('specialty', c.specialty)],
          [t('consult.fact.requested_by'), [who(c.requested_by), ' ', h('span', { class: 'muted' }, t('consult.requested_on', { at: dateTime(c.created_at) }))]],
          [t('consult.fact.scheduled'), c.scheduled_at ? dateTime(c.scheduled_at) : null],
          [t('consult.fact.specialist'), c.specialist ? who(c.specialist) : t('consult.any_specialist')],
          [t('consult.fact.accepted_by'), c.accepted_by ? who(c.accepted_by) : null],
          [t('consult.fact.declined'), c.decline_reason ? raw(c.decline_reason) : null],
          [t('consult.fact.cancelled'), c.cancel_reason ? raw(c.cancel_reason) : (c.state === 'cancelled' ? t('consult.no_reason') : null)],
        ]),
        h('h2', {}, t('consult.summary')), raw(c.summary, 'div', { class: 'summary' }),
        h('h2', {}, t('consult.studies')),
        // Another site's images reach the consultant's site when they accept, not before.
        c.studies.length && c.state === 'requested' && c.from_site !== me().site.id
          ? h('p', { class: 'muted', id: 'studies-on-accept' }, t('consult.studies_on_accept', { count: c.studies.length }))
          : c.studies.length
            ? h('ul', { id: 'consult-studies', class: 'study-list' }, c.studies.map(uid => {
              const st = seen.get(uid);
              return h('li', { 'data-study': uid }, st
                ? studySummary(st, [h('a', { class: 'open-study', href: viewerUrl(uid, lng), target: '_blank', rel: 'noopener' }, t('studies.open'))])
                : h('div', { class: 'muted' }, t('study.not_visible'), uidDetails(uid)));
            }))
            : h('p', { class: 'muted' }, t('consult.no_studies'))),
      err,
      buttons.length ? h('div', { class: 'actions-bar' }, buttons) : null,
      may('complete') ? h('p', { class: 'muted', id: 'complete-help' }, t('consult.end_help')) : null,
      opinions ? [h('h2', {}, c.opinions.length > 1 ? t('consult.opinions_title') : t('consult.opinion_signed_title')), opinions] : null,
      ack,
      may('acknowledge') ? h('p', {}, h('button', { id: 'acknowledge', class: 'primary big', type: 'button', onclick: (/** @type {Event} */ ev) => act(target(ev), 'acknowledge') }, t('consult.acknowledge', { version: latest ?? '' }))) : null,
      signForm,
      h('p', {}, h('a', { href: '#/consults' }, t('consult.all'))),
    ];
  }

  let takenByOther = false;
  async function load() {
    const mine = ++seq;
    try {
      const c = await api('GET', consultPath(id));
      const seeStudies = c.studies.length && !(c.state === 'requested' && c.from_site !== me().site.id);
      const [seen] = await Promise.all([
        seeStudies ? studiesByUid(c.studies).catch(() => new Map()) : new Map(),
        loadSites(),
        loadPeople([c.requested_by, c.accepted_by, c.specialist, ...c.opinions.map((/** @type {any} */ o) => o.signed_by), c.acknowledged?.by]),
      ]);
      if (mine === seq) show(...render(c, seen));
    } catch (e) {
      if (mine !== seq) return;
      // Open while another specialist accepted it: say so, rather than "not found".
      const why = takenByOther && e instanceof ApiError && e.status === 404
        ? h('div', { class: 'notice taken', role: 'status' }, t('consult.taken'))
        : errorBox(e);
      show(h('h1', {}, t('consult.heading')), why, h('p', {}, h('a', { href: '#/consults' }, t('consult.all'))));
    }
  }
  listen('consult', m => { if (m.consult === id) { takenByOther = m.event === 'accepted'; load(); } });
  listen('open', load);
  load();
}
