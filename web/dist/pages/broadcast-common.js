// Pieces the training pages (and the home page's card) share.

import { h } from '../lib/dom.js';
import { label, t } from '../lib/i18n.js';

/** The mark of a session broadcasting now. */
export function liveBadge() {
  return h('span', { class: 'live-badge', 'data-live': 'true' }, t('broadcast.live_badge'));
}

/**
 * A session's state in words, styled by state.
 * @param {import('../lib/broadcast.js').BroadcastState} s
 */
export function stateTag(s) {
  return h('span', { class: `broadcast-state broadcast-state-${s}`, 'data-state': s }, label('broadcast_state', s));
}
