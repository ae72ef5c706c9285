// The people and sites of the network by id, as pages show them: display name and site name
// (GET /api/people, GET /api/sites). Asked once per id and kept for as long as the app is
// loaded; a page asks for every id it shows in one request.

import { api } from './api.js';
import { personLabel } from './format.js';
import { raw } from './dom.js';

/**
 * @typedef {{ id: string, display_name: string, site: string, site_name: string, roles: string[], specialties: string[] }} Person
 */

/** @type {Map<string, Person | null>} id -> person (null: not known to the directory) */
const people = new Map();
/** @type {Map<string, string>} site id -> name */
const siteNames = new Map();
/** @type {Promise<void> | null} */
let sitesLoaded = null;

/** The most ids one request asks for (the server answers at most 200). */
export const BATCH = 200;

/**
 * Fetches the people not known yet; unknown ids are remembered as unknown.
 * @param {Iterable<string | null | undefined>} ids
 */
export async function loadPeople(ids) {
  const want = [...new Set([...ids].filter(/** @returns {id is string} */ id => !!id && !people.has(id)))];
  for (let i = 0; i < want.length; i += BATCH) {
    const part = want.slice(i, i + BATCH);
    try {
      const r = await api('GET', `/api/people?ids=${encodeURIComponent(part.join(','))}`);
      for (const p of r.people || []) people.set(p.id, p);
      for (const id of part) if (!people.has(id)) people.set(id, null);
    } catch (_) {
      // Shown by id this time; asked again on the next page.
    }
  }
}

/** Fetches the sites' names once. */
export function loadSites() {
  if (!sitesLoaded) {
    sitesLoaded = api('GET', '/api/sites').then(r => {
      for (const s of r.sites || []) siteNames.set(s.id, s.name);
    }).catch(() => { sitesLoaded = null; });
  }
  return sitesLoaded;
}

/** @param {string} id */
export function person(id) { return people.get(id) || null; }

/**
 * A site's name, or its id when not known.
 * @param {string | null | undefined} id
 */
export function siteName(id) { return id ? siteNames.get(id) || id : ''; }

/** The sites known so far (after `loadSites`), by name. @returns {{ id: string, name: string }[]} */
export function knownSites() {
  return [...siteNames].map(([id, name]) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * A person's display name alone ("Dr Li"), or their id when not known.
 * @param {string | null | undefined} id
 */
export function nameOf(id) {
  if (!id) return '';
  const p = people.get(id);
  return p && p.display_name ? p.display_name : id;
}

/**
 * A person as text: name and site ("Dr Li · City Hospital").
 * @param {string | null | undefined} id
 */
export function whoText(id) { return id ? personLabel(people.get(id), id) : ''; }

/**
 * A person as an element: their name and site as data (never translated), their id in the
 * `data-user` attribute.
 * @param {string | null | undefined} id
 * @param {keyof HTMLElementTagNameMap} [tag]
 */
export function who(id, tag = 'span') {
  return raw(whoText(id), tag, { 'data-user': id || null, class: 'person' });
}
