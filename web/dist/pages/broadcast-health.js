// Who is watching, by site, and how their connections are doing — on the trainer's session page
// while the session is live (and for the training office of the session's own site). Each site
// with its viewers, a grade in words (good, fair, poor, connecting; never colour alone), how many
// get video, the lowest bandwidth, the worst loss and round trip. Asked again every 5 s.

import { ApiError, api } from '../lib/api.js';
import { broadcastPath } from '../lib/broadcast.js';
import { h, raw, table } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { number, percent } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { siteName } from '../lib/people.js';

/** How often the panel asks again while shown. */
export const HEALTH_MS = 5000;

/**
 * @typedef {'good' | 'fair' | 'poor' | 'connecting'} Grade
 * @typedef {{ site: string, grade: Grade, viewers: number, good: number, fair: number, poor: number,
 *   connecting: number, links_down: number, audio_only: number, estimate_kbps_min: number | null,
 *   loss_max: number | null, rtt_ms_max: number | null }} SiteHealth
 */

/** @param {Grade} g */
const gradeTag = g => h('span', { class: `health-tag health-${g}` }, t(`health.grade.${g}`));

/** @param {SiteHealth} s */
function row(s) {
  const connected = s.viewers - s.connecting;
  return h('tr', { 'data-site': s.site, 'data-grade': s.grade },
    h('td', {}, raw(siteName(s.site))),
    h('td', { class: 'num' }, number(s.viewers)),
    h('td', {}, gradeTag(s.grade)),
    h('td', {},
      t('health.video', { n: number(connected - s.audio_only - s.links_down), of: number(connected) }),
      s.audio_only ? ` · ${t('health.audio_only', { n: number(s.audio_only) })}` : null,
      s.links_down ? ` · ${t('health.links_down', { n: number(s.links_down) })}` : null),
    h('td', { class: 'num' }, s.estimate_kbps_min == null ? '—' : t('health.kbps', { kbps: number(s.estimate_kbps_min) })),
    h('td', { class: 'num' }, s.loss_max == null ? '—' : percent(s.loss_max)),
    h('td', { class: 'num' }, s.rtt_ms_max == null ? '—' : t('health.ms', { ms: number(s.rtt_ms_max) })));
}

/**
 * The panel; `show(on)` starts or stops it (asking every 5 s while on).
 * @param {string} id the session
 * @param {{ stillHere: () => boolean }} o
 */
export function healthPanel(id, o) {
  let seq = 0;
  /** @type {ReturnType<typeof setInterval> | null} */
  let timer = null;
  const err = h('div');
  const body = h('div', { id: 'site-health-table' });
  const el = h('section', { class: 'box broadcast-health', id: 'site-health', hidden: true, 'aria-labelledby': 'health-heading' },
    h('h2', { id: 'health-heading' }, t('health.title')),
    h('p', { class: 'muted' }, t('health.hint')), err, body);

  async function load() {
    const mine = ++seq;
    try {
      const r = await api('GET', `${broadcastPath(id)}/health`);
      if (mine !== seq || !o.stillHere()) return;
      err.replaceChildren();
      /** @type {SiteHealth[]} */
      const sites = r.sites || [];
      el.dataset.loaded = 'true';
      body.replaceChildren(sites.length
        ? table([t('health.col.site'), t('health.col.viewers'), t('health.col.grade'), t('health.col.picture'),
          t('health.col.bandwidth'), t('health.col.loss'), t('health.col.rtt')], sites.map(row), { class: 'health-table' })
        : h('p', { class: 'muted', id: 'no-viewers' }, t('health.none')));
    } catch (e) {
      if (mine !== seq || !o.stillHere()) return;
      // Not the session's own site: the panel is not for this person.
      if (e instanceof ApiError && e.status === 403) { show(false); return; }
      err.replaceChildren(errorBox(e));
    }
  }

  /** @param {boolean} on */
  function show(on) {
    el.hidden = !on;
    if (on && !timer) {
      load();
      timer = setInterval(() => { if (o.stillHere()) load(); }, HEALTH_MS);
    } else if (!on && timer) {
      clearInterval(timer);
      timer = null;
    }
  }

  return { el, show, load };
}
