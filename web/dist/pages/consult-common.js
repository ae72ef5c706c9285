// Pieces the consult pages share.

import { h, raw } from '../lib/dom.js';
import { label, t } from '../lib/i18n.js';
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
    t('consult.escalated_text', { specialty: label('specialty', c.specialty), site: c.from_site }), ' ',
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

/** A person or site id from the server, shown as it is. @param {string} id */
export const who = id => raw(id);
