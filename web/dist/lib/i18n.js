// The one message catalogue: every string a person reads goes through `t(key, params)`.
// Catalogues live in ../i18n/<locale>.js, one flat object each, with the same keys (the unit
// tests check that). Placeholders are `{name}`; a key with `_one`/`_other` variants is chosen
// by `count` through Intl.PluralRules. A key missing in the chosen language falls back to
// English, then to the key itself, so a gap shows up as readable English, never as nothing.

import en from '../i18n/en.js';
import zhCN from '../i18n/zh-CN.js';

/** @typedef {'en' | 'zh-CN'} Locale */
/** @typedef {Record<string, string>} Catalogue */
/** @typedef {Record<string, string | number | null | undefined>} Params */

/** @type {Record<Locale, Catalogue>} */
export const CATALOGUES = { en, 'zh-CN': zhCN };
/** @type {Locale[]} */
export const LOCALES = ['en', 'zh-CN'];
export const STORAGE_KEY = 'ferry-lang';

/** @type {Locale} */
let current = 'en';
/** @type {Set<(l: Locale) => void>} */
const watchers = new Set();

/**
 * The supported locale closest to a list of language tags in order of preference (as
 * `navigator.languages`): any Chinese is Simplified Chinese, any English is English.
 * @param {readonly string[] | undefined} tags
 * @returns {Locale}
 */
export function pickLocale(tags) {
  for (const tag of tags || []) {
    const lower = String(tag).toLowerCase();
    if (lower === 'zh' || lower.startsWith('zh-')) return 'zh-CN';
    if (lower === 'en' || lower.startsWith('en-')) return 'en';
  }
  return 'en';
}

/**
 * @param {unknown} value
 * @returns {value is Locale}
 */
export function isLocale(value) {
  return typeof value === 'string' && /** @type {string[]} */ (LOCALES).includes(value);
}

/**
 * The locale to start with: the one remembered, else the browser's preference.
 * @param {{ getItem(key: string): string | null } | null | undefined} storage
 * @param {readonly string[] | undefined} languages
 * @returns {Locale}
 */
export function initialLocale(storage, languages) {
  let kept = null;
  try { kept = storage ? storage.getItem(STORAGE_KEY) : null; } catch (_) { /* storage refused */ }
  return isLocale(kept) ? kept : pickLocale(languages);
}

/** @returns {Locale} */
export function locale() { return current; }

/**
 * Switches the language; watchers (the page, the header) redraw.
 * @param {Locale} next
 */
export function setLocale(next) {
  if (!isLocale(next)) return;
  const changed = next !== current;
  current = next;
  if (changed) for (const fn of [...watchers]) fn(next);
}

/** @param {(l: Locale) => void} fn */
export function onLocaleChange(fn) { watchers.add(fn); return () => watchers.delete(fn); }

/**
 * Puts `{name}` values into a template; a placeholder without a value stays as it is.
 * @param {string} template
 * @param {Params} [params]
 */
export function interpolate(template, params) {
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name) => {
    const v = params[name];
    return v === undefined || v === null ? whole : String(v);
  });
}

/**
 * The message for `key` in `loc` (English if that catalogue lacks it, the key if both do).
 * @param {Locale} loc
 * @param {string} key
 * @param {Params} [params]
 * @returns {string}
 */
export function translate(loc, key, params) {
  const cat = CATALOGUES[loc] || en;
  let k = key;
  if (params && typeof params.count === 'number' && !(key in cat) && !(key in en)) {
    const form = new Intl.PluralRules(loc).select(params.count);
    k = `${key}_${form}`;
    if (!(k in cat) && !(k in en)) k = `${key}_other`;
  }
  const template = k in cat ? cat[k] : k in en ? en[k] : key;
  return interpolate(template, params && typeof params.count === 'number'
    ? { ...params, count: new Intl.NumberFormat(loc).format(params.count) }
    : params);
}

/**
 * The message for `key` in the current language.
 * @param {string} key
 * @param {Params} [params]
 */
export function t(key, params) { return translate(current, key, params); }

/**
 * Whether the catalogue knows `key`.
 * @param {string} key
 */
export function has(key) { return key in en; }

/**
 * A label for a value from a fixed set the server speaks in (roles, states, tiers…): the
 * catalogue's `prefix.value` if there is one, else the value as it came.
 * @param {string} prefix
 * @param {string | null | undefined} value
 */
export function label(prefix, value) {
  if (value === null || value === undefined || value === '') return '';
  const key = `${prefix}.${value}`;
  return has(key) ? t(key) : String(value);
}

/** The language tag OHIF's i18next knows for a locale (it has `zh`, and `en-US`). */
/** @param {Locale} loc */
export function ohifLanguage(loc) { return loc === 'zh-CN' ? 'zh' : 'en-US'; }
