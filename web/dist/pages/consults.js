// The consult inbox (specialists) or list (clinicians), live: new requests, acceptances and
// who is online arrive over the socket.

import { api } from '../lib/api.js';
import { h, mainEl, onPageLeave, raw, startPage, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { shortDateTime } from '../lib/format.js';
import { label, t } from '../lib/i18n.js';
import { consultHash } from '../lib/router.js';
import { loadPeople, loadSites, nameOf, siteName, whoText } from '../lib/people.js';
import { can, me } from '../lib/session.js';
import { listen, presence, sendSocket, setNeed, dropNeed } from '../lib/socket.js';
import { attention, attentionTag, consultPath, escalatedBanner, stateLabel, urgencyBadge } from './consult-common.js';

/** @typedef {import('./consult-common.js').Consult} Consult */

export function consultsPage() {
  const show = startPage();
  const err = h('div'), banners = h('div'), list = h('div'), taken = h('div');
  const people = h('ul', { id: 'presence', class: 'presence' });
  /** @type {Consult[]} */
  let consults = [];
  /** @type {{ id: string, display_name: string, site: string, online: boolean, specialties: string[] }[]} */
  let specialists = [];
  let seq = 0;
  /** @type {Map<string, string>} consult id -> reason typed so far, kept across live refreshes */
  const declining = new Map();

  /**
   * @param {HTMLButtonElement} btn
   * @param {string} path
   * @param {unknown} body
   * @param {() => void} after
   */
  const act = async (btn, path, body, after) => {
    btn.disabled = true;
    err.replaceChildren();
    try { await api('POST', path, body); after(); }
    catch (e) { err.replaceChildren(errorBox(e)); btn.disabled = false; load(); }
  };
  /** @param {Consult} c */
  const actions = c => {
    const out = [];
    if (c.can.includes('accept')) {
      out.push(h('button', {
        class: 'primary accept', type: 'button',
        onclick: (/** @type {MouseEvent} */ ev) => act(/** @type {HTMLButtonElement} */ (ev.currentTarget), `${consultPath(c.id)}/accept`, undefined, () => { location.hash = consultHash(c.id); }),
      }, t('consult.accept')));
    }
    if (c.can.includes('decline')) {
      if (!declining.has(c.id)) {
        out.push(h('button', { class: 'small decline', type: 'button', onclick: () => { declining.set(c.id, ''); draw(); } }, t('consult.decline')));
      } else {
        const reason = h('input', { class: 'decline-reason', placeholder: t('consult.decline_reason'), 'aria-label': t('consult.decline_reason'), value: declining.get(c.id) });
        reason.addEventListener('input', () => declining.set(c.id, reason.value));
        out.push(h('div', { class: 'decline-box' }, reason,
          h('button', {
            class: 'small decline-confirm', type: 'button', onclick: (/** @type {MouseEvent} */ ev) => {
              if (!reason.value.trim()) { err.replaceChildren(errorBox(t('consult.decline_needs_reason'))); return; }
              act(/** @type {HTMLButtonElement} */ (ev.currentTarget), `${consultPath(c.id)}/decline`, { reason: reason.value.trim() }, () => { declining.delete(c.id); load(); });
            },
          }, t('consult.decline')),
          h('button', { class: 'small', type: 'button', onclick: () => { declining.delete(c.id); draw(); } }, t('consult.keep'))));
      }
    }
    return out;
  };
  /** @param {Consult} c */
  const row = c => h('tr', {
    'data-consult': c.id, 'data-state': c.state,
    class: `consult-row level-${c.urgency}${c.escalated ? ' escalated' : ''}`,
    // The whole row opens the consult, except its own buttons and fields.
    onclick: (/** @type {MouseEvent} */ ev) => { if (!/** @type {HTMLElement} */ (ev.target).closest('button, input, a')) location.hash = consultHash(c.id); },
  },
  h('td', {}, urgencyBadge(c.urgency), c.escalated ? h('div', { class: 'escalated-tag' }, t('consult.escalated')) : null),
  h('td', {}, h('a', { href: consultHash(c.id), class: 'open-consult' }, label('specialty', c.specialty)),
    raw(c.summary, 'div', { class: 'muted clip' })),
  h('td', {}, raw(siteName(c.from_site))), h('td', {}, raw(nameOf(c.requested_by), 'span', { 'data-user': c.requested_by })),
  h('td', { class: 'nowrap' }, shortDateTime(c.created_at), c.scheduled_at ? h('div', { class: 'muted' }, t('consult.for_time', { at: shortDateTime(c.scheduled_at) })) : null),
  h('td', { class: `state state-${c.state}` }, stateLabel(c.state),
    c.accepted_by ? h('div', { class: 'muted', 'data-user': c.accepted_by }, t('consult.by', { who: nameOf(c.accepted_by) })) : null,
    attentionTag(attention(c))),
  h('td', { class: 'actions' }, actions(c)));

  // Everyone online in the network (the socket's presence), each as name · site, the same on
  // every side; until the socket has said, the specialists the server knows to be online.
  let presenceSeq = 0;
  async function drawPresence() {
    const mine = ++presenceSeq;
    const online = presence.known
      ? [...presence.online].filter(([, on]) => on).map(([id]) => id)
      : specialists.filter(s => s.online).map(s => s.id);
    const ids = online.filter(id => id !== me().user.id);
    await loadPeople(ids);
    if (mine !== presenceSeq) return;
    ids.sort((a, b) => whoText(a).localeCompare(whoText(b)));
    people.replaceChildren(...ids.map(id => h('li', { 'data-user': id, 'data-online': 'true', class: 'online' },
      h('span', { class: 'dot', 'aria-hidden': 'true' }), raw(whoText(id)))));
    if (!ids.length) people.append(h('li', { class: 'muted' }, t('presence.nobody')));
  }
  function draw() {
    // A live refresh redraws the rows; a reason being typed keeps its place and the focus.
    const active = /** @type {HTMLElement | null} */ (document.activeElement);
    const typing = active && active.classList.contains('decline-reason')
      ? /** @type {HTMLElement} */ (active.closest('tr')).dataset.consult : null;
    list.replaceChildren(table([t('consults.col.urgency'), t('consults.col.specialty'), t('consults.col.from_site'),
      t('consults.col.requested_by'), t('consults.col.created'), t('consults.col.state'),
      h('span', { class: 'visually-hidden' }, t('common.actions'))], consults.map(row), { id: 'consult-list' }));
    banners.replaceChildren(...consults.filter(c => c.escalated && c.state === 'requested').map(escalatedBanner));
    drawPresence();
    const again = typing && [...list.querySelectorAll('tr[data-consult]')].find(tr => /** @type {HTMLElement} */ (tr).dataset.consult === typing);
    const input = again && /** @type {HTMLInputElement | null} */ (again.querySelector('.decline-reason'));
    if (input) input.focus();
  }
  async function load() {
    const mine = ++seq;
    try {
      const r = await api('GET', '/api/consults');
      await Promise.all([loadSites(), loadPeople(r.consults.flatMap((/** @type {Consult} */ c) => [c.requested_by, c.accepted_by]))]);
      if (mine !== seq) return;
      consults = r.consults;
      draw();
    } catch (e) { if (mine === seq) err.replaceChildren(errorBox(e)); }
  }

  // Live: every consult event refetches the list; presence redraws the panel. A request that
  // someone else accepted leaves this inbox, with a word saying so.
  listen('consult', async msg => {
    const before = consults.find(c => c.id === msg.consult && c.state === 'requested');
    await load();
    if (msg.event === 'accepted' && before && !consults.some(c => c.id === msg.consult && c.can.length)) {
      taken.prepend(h('div', { class: 'notice taken', role: 'status', 'data-consult': before.id },
        t('consults.taken', { urgency: label('urgency', before.urgency), specialty: label('specialty', before.specialty), site: siteName(before.from_site) })));
    }
  });
  listen('open', load);
  listen('presence', drawPresence);
  setNeed('presence', { type: 'watch', presence: true });
  onPageLeave(() => { dropNeed('presence'); sendSocket({ type: 'watch', presence: false }); presence.known = false; });
  const main = mainEl();
  main.classList.add('roomy'); // seven columns and the presence panel
  onPageLeave(() => main.classList.remove('roomy'));

  show(h('h1', {}, can('consult.answer') ? t('consults.inbox_title') : t('consults.list_title')),
    can('consult.request') ? h('p', {}, h('a', { class: 'button', href: '#/consults/new', id: 'new-consult' }, t('consults.new'))) : null,
    banners, taken, err,
    h('div', { class: 'consults-layout' },
      h('section', { 'aria-label': t('consults.list_title') }, list),
      h('aside', { class: 'box' }, h('h2', {}, t('presence.title')), people)));
  api('GET', '/api/specialists').then(r => { specialists = r.specialists; drawPresence(); }).catch(e => err.append(errorBox(e)));
  load();
}
