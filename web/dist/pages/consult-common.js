// Pieces the consult pages share.

import { h } from '../lib/dom.js';
import { label, t } from '../lib/i18n.js';
import { siteName } from '../lib/people.js';
import { consultHash } from '../lib/router.js';

/**
 * @typedef {{ id: string, state: string, urgency: string, specialty: string, summary: string,
 *   from_site: string, requested_by: string, created_at: number, scheduled_at?: number | null,
 *   specialist?: string | null, accepted_by?: string | null, decline_reason?: string | null,
 *   cancel_reason?: string | null, escalated?: boolean, studies: string[], can: string[],
 *   opinions: { version: number, signed_by: string, signed_at: number, text: string }[],
 *   acknowledged?: { by: string, at: number, version: number } | null }} Consult
 */

export const URGENCIES = ['routine', 'urgent', 'emergency'];

/** @param {string} id */
export const consultPath = id => `/api/consults/${encodeURIComponent(id)}`;

/** @param {string} u */
export function urgencyBadge(u) {
  return h('span', { class: `urgency urgency-${u}`, 'data-urgency': u }, label('urgency', u));
}

/** @param {string} s */
export function stateLabel(s) {
  return label('consult_state', s);
}

/** @param {Consult} c */
export function escalatedBanner(c) {
  return h('div', { class: 'alert-escalated', role: 'alert', 'data-consult': c.id },
    h('strong', {}, t('consult.escalated_title')), ' ',
    t('consult.escalated_text', { specialty: label('specialty', c.specialty), site: siteName(c.from_site) }), ' ',
    h('a', { href: consultHash(c.id) }, t('consult.open_it')));
}

/**
 * A definition list of the facts that have a value.
 * @param {[string, any][]} pairs
 */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/**
 * What a consult asks of the person now, from the steps they may take: a signed opinion to
 * acknowledge, a request to answer, an opinion to write, a call under way to join; null if
 * nothing.
 * @param {Consult} c
 * @returns {'acknowledge' | 'answer' | 'sign' | 'join' | null}
 */
export function attention(c) {
  if (c.can.includes('acknowledge')) return 'acknowledge';
  if (c.can.includes('accept')) return 'answer';
  if (c.can.includes('sign') && !c.opinions.length) return 'sign';
  if (c.can.includes('join') && c.state === 'in_call') return 'join';
  return null;
}

/** @param {ReturnType<typeof attention>} a */
export function attentionTag(a) {
  return a ? h('div', { class: `attention attention-${a}`, 'data-attention': a }, t(`attention.${a}`)) : null;
}
