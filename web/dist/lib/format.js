// Formatting of names, dates, times and numbers for people: one place, Intl in the chosen
// language and the browser's time zone (tests pass a fixed `timeZone`). Pure: the locale comes
// in as an argument or from i18n's current one.

import { locale, t } from './i18n.js';

/** @typedef {import('./i18n.js').Locale} Locale */
/** @typedef {{ Alphabetic?: string, Ideographic?: string, Phonetic?: string }} PersonNameJson */

/** @param {number | string | Date | null | undefined} v */
function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * Date and time, e.g. "19 Jan 2024, 14:05" / "2024年1月19日 14:05".
 * @param {number | string | Date | null | undefined} v unix ms, an ISO string or a Date
 * @param {{ loc?: Locale, timeZone?: string }} [o]
 */
export function dateTime(v, o = {}) {
  const d = toDate(v);
  if (!d) return '—';
  return new Intl.DateTimeFormat(o.loc || locale(), { dateStyle: 'medium', timeStyle: 'short', timeZone: o.timeZone }).format(d);
}

/**
 * For tables: day and time, the year only when it is not the current one.
 * @param {number | string | Date | null | undefined} v
 * @param {{ loc?: Locale, timeZone?: string, now?: Date }} [o]
 */
export function shortDateTime(v, o = {}) {
  const d = toDate(v);
  if (!d) return '—';
  const loc = o.loc || locale();
  const yearOf = (/** @type {Date} */ x) => Number(new Intl.DateTimeFormat('en', { year: 'numeric', timeZone: o.timeZone }).format(x));
  const sameYear = yearOf(d) === yearOf(o.now || new Date());
  return new Intl.DateTimeFormat(loc, {
    year: sameYear ? undefined : 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: o.timeZone,
  }).format(d);
}

/**
 * A time of day, hours and minutes.
 * @param {number | string | Date | null | undefined} v
 * @param {{ loc?: Locale, timeZone?: string }} [o]
 */
export function time(v, o = {}) {
  const d = toDate(v);
  if (!d) return '—';
  return new Intl.DateTimeFormat(o.loc || locale(), { hour: '2-digit', minute: '2-digit', timeZone: o.timeZone }).format(d);
}

/**
 * A DICOM DA value (YYYYMMDD, a calendar day with no zone) as a date in the locale.
 * Anything else is returned as it came.
 * @param {string | null | undefined} da
 * @param {{ loc?: Locale }} [o]
 */
export function dicomDate(da, o = {}) {
  if (!da) return '';
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  if (!m) return da;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (Number.isNaN(d.getTime())) return da;
  return new Intl.DateTimeFormat(o.loc || locale(), { dateStyle: 'medium', timeZone: 'UTC' }).format(d);
}

/**
 * A number with the locale's grouping.
 * @param {number} n
 * @param {{ loc?: Locale, digits?: number }} [o]
 */
export function number(n, o = {}) {
  return new Intl.NumberFormat(o.loc || locale(), {
    minimumFractionDigits: o.digits, maximumFractionDigits: o.digits ?? 3,
  }).format(n);
}

/**
 * Megabytes with one decimal, as the upload page counts them.
 * @param {number} bytes
 * @param {{ loc?: Locale }} [o]
 */
export function megabytes(bytes, o = {}) {
  return number(bytes / 1e6, { loc: o.loc, digits: 1 });
}

/**
 * A share as a whole percentage, e.g. "12%" / "12%".
 * @param {number} share 0..1
 * @param {{ loc?: Locale }} [o]
 */
export function percent(share, o = {}) {
  return new Intl.NumberFormat(o.loc || locale(), { style: 'percent', maximumFractionDigits: 0 }).format(share);
}

/**
 * A list joined as the language joins lists ("a, b and c" / "a、b和c").
 * @param {string[]} items
 * @param {{ loc?: Locale }} [o]
 */
export function list(items, o = {}) {
  return new Intl.ListFormat(o.loc || locale(), { style: 'long', type: 'conjunction' }).format(items);
}

/**
 * The three component groups of a DICOM person name: alphabetic, ideographic, phonetic.
 * Takes the Part 10 string form (`Wang^XiaoDong=王^小东`) or DICOM JSON's object form.
 * @param {string | PersonNameJson | null | undefined} pn
 * @returns {[string, string, string]}
 */
export function personNameGroups(pn) {
  if (!pn) return ['', '', ''];
  if (typeof pn === 'string') {
    const [a = '', i = '', p = ''] = pn.split('=');
    return [a, i, p];
  }
  return [pn.Alphabetic || '', pn.Ideographic || '', pn.Phonetic || ''];
}

/**
 * A DICOM person name (`Family^Given^Middle^Prefix^Suffix`, groups after `=`) for people:
 * "Given Middle Family" in English; in Chinese the ideographic group if there is one,
 * family then given without a space ("王小东"), else the alphabetic one family first
 * ("Wang XiaoDong").
 * @param {string | PersonNameJson | null | undefined} pn
 * @param {{ loc?: Locale }} [o]
 */
export function personName(pn, o = {}) {
  const loc = o.loc || locale();
  const [alphabetic, ideographic] = personNameGroups(pn);
  const parts = (/** @type {string} */ g) => {
    const [family = '', given = '', middle = '', prefix = '', suffix = ''] = g.split('^').map(s => s.trim());
    return { family, given, middle, prefix, suffix };
  };
  const join = (/** @type {string[]} */ xs, sep = ' ') => xs.filter(Boolean).join(sep);
  if (loc === 'zh-CN') {
    if (ideographic.replace(/\^/g, '').trim()) {
      const p = parts(ideographic);
      return join([p.prefix, p.family, p.given, p.middle, p.suffix], '');
    }
    const p = parts(alphabetic);
    return join([p.prefix, p.family, p.given, p.middle, p.suffix]);
  }
  const group = alphabetic.replace(/\^/g, '').trim() ? alphabetic : ideographic;
  const p = parts(group);
  const name = group === alphabetic
    ? join([p.prefix, p.given, p.middle, p.family])
    : join([p.family, p.given, p.middle], '');
  return p.suffix && group === alphabetic ? `${name}, ${p.suffix}` : name;
}

/**
 * An age from a DICOM AS value ("045Y", "006M", "003W", "010D"), as numbers.
 * @param {string | null | undefined} as
 * @returns {{ count: number, unit: 'years' | 'months' | 'weeks' | 'days' } | null}
 */
export function parseAge(as) {
  const m = /^(\d{3})([YMWD])$/.exec((as || '').trim());
  if (!m) return null;
  const unit = /** @type {const} */ ({ Y: 'years', M: 'months', W: 'weeks', D: 'days' })[/** @type {'Y' | 'M' | 'W' | 'D'} */ (m[2])];
  return { count: Number(m[1]), unit };
}

/**
 * The age on a day from a birth date, both DICOM DA values: whole years, or months under
 * two years, or days under two months; null when either date is missing or not a date.
 * @param {string | null | undefined} birth
 * @param {string | null | undefined} on
 * @returns {{ count: number, unit: 'years' | 'months' | 'weeks' | 'days' } | null}
 */
export function ageBetween(birth, on) {
  const parse = (/** @type {string | null | undefined} */ da) => {
    const m = /^(\d{4})(\d{2})(\d{2})$/.exec((da || '').trim());
    return m ? { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) } : null;
  };
  const b = parse(birth), o = parse(on);
  if (!b || !o) return null;
  let months = (o.y - b.y) * 12 + (o.m - b.m) - (o.d < b.d ? 1 : 0);
  if (months < 0) return null;
  if (months >= 24) return { count: Math.floor(months / 12), unit: 'years' };
  if (months >= 2) return { count: months, unit: 'months' };
  const days = Math.round((Date.UTC(o.y, o.m - 1, o.d) - Date.UTC(b.y, b.m - 1, b.d)) / 86400000);
  return days >= 0 ? { count: days, unit: 'days' } : null;
}

/**
 * A patient's age for people ("45 years" / "45岁"): the study's Patient's Age if given,
 * else from the birth date to the study date; '' when unknown.
 * @param {{ age?: string, birthDate?: string, date?: string }} st
 */
export function patientAge(st) {
  const a = parseAge(st.age) || ageBetween(st.birthDate, st.date);
  return a ? t(`age.${a.unit}`, { count: a.count }) : '';
}

/**
 * A patient's sex (DICOM M, F, O) in words; '' when not given.
 * @param {string | null | undefined} cs
 */
export function patientSex(cs) {
  const v = (cs || '').trim().toUpperCase();
  return v === 'M' || v === 'F' || v === 'O' ? t(`sex.${v}`) : '';
}

/**
 * A person of the network for people: their name and their site's name
 * ("Dr Li · City Hospital"); the id when the directory did not know them.
 * @param {{ display_name?: string, site_name?: string } | null | undefined} p
 * @param {string} id
 */
export function personLabel(p, id) {
  if (!p || !p.display_name) return id;
  return p.site_name ? t('person.at_site', { name: p.display_name, site: p.site_name }) : p.display_name;
}
