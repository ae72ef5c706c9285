// Errors for people: the server's stable problem `code` in the person's language, with the
// server's English `detail` beneath it as the second line (what an administrator may need).

import { h } from './dom.js';
import { has, t } from './i18n.js';

/**
 * The translated headline and the untranslated detail of an error.
 * @param {any} e an ApiError, a signalling error message, an Error or a string
 * @returns {{ message: string, detail: string | null, code: string | null }}
 */
export function describe(e) {
  if (typeof e === 'string') return { message: e, detail: null, code: null };
  const code = e && e.code ? e.code : null;
  if (code) {
    const key = `error.${code}`;
    const message = has(key) ? t(key, { incident: e.incident || '' }) : t('error.unknown_code', { code });
    const detail = e.detail || (e.message && e.message !== message ? e.message : null);
    return { message, detail: detail && detail !== message ? detail : null, code };
  }
  // Not from the server (a network failure, a message of this app).
  return { message: (e && e.message) || String(e), detail: null, code: null };
}

/**
 * An alert box for an error.
 * @param {any} e
 */
export function errorBox(e) {
  const d = describe(e);
  return h('div', { class: 'error', role: 'alert', 'data-code': d.code },
    h('div', { class: 'error-message' }, d.message),
    d.detail ? h('div', { class: 'error-detail', lang: 'en', translate: 'no', 'data-raw': true }, d.detail) : null);
}

/**
 * A short reason from whatever was thrown (media and network errors), for a sentence.
 * @param {unknown} e
 */
export function reasonOf(e) {
  if (e && typeof e === 'object') {
    const o = /** @type {{ message?: string, name?: string }} */ (e);
    return o.message || o.name || String(e);
  }
  return String(e);
}
