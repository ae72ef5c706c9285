// The API client: JSON requests with the CSRF token, problem+json errors as ApiError, and the
// one QIDO-RS client every page searches studies with.

import { STUDY_FIELDS, study } from './dicom.js';
import { session } from './session.js';
import { loginHash } from './router.js';

/** @typedef {{ code?: string, detail?: string, title?: string, incident?: string }} Problem */

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Problem} problem
   */
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    /** @type {string | undefined} */
    this.code = problem.code;
    /** @type {string | undefined} */
    this.detail = problem.detail;
    /** @type {string | undefined} */
    this.incident = problem.incident;
  }
}

/** @param {Response} resp */
export async function problemOf(resp) {
  return new ApiError(resp.status, await resp.json().catch(() => ({})));
}

/** The session ended: forget who we were and go to the sign-in page, coming back here after. */
export function signedOut() {
  session.me = null;
  if (!location.hash.startsWith('#/login')) location.hash = loginHash(location.hash);
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.me && session.me.csrf_token) headers['X-CSRF-Token'] = session.me.csrf_token;
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    if (resp.status === 401 && path !== '/api/auth/login') signedOut();
    throw new ApiError(resp.status, data);
  }
  return data;
}

/**
 * QIDO-RS search at /dicomweb/{level} (studies, series, instances); an empty result may come
 * as 204 without a body.
 * @param {string} level
 * @param {URLSearchParams | Record<string, string> | string} query
 * @returns {Promise<Record<string, any>[]>}
 */
export async function qido(level, query) {
  const q = query instanceof URLSearchParams ? query : new URLSearchParams(query);
  const resp = await fetch(`/dicomweb/${level}?${q}`, { headers: { Accept: 'application/dicom+json' }, credentials: 'same-origin' });
  if (resp.status === 204) return [];
  if (!resp.ok) {
    if (resp.status === 401) signedOut();
    throw await problemOf(resp);
  }
  return resp.json();
}

/**
 * The studies with these Study Instance UIDs that the person may see (others are left out:
 * the server answers only for visible studies), by UID.
 * @param {string[]} uids
 * @returns {Promise<Map<string, import('./dicom.js').Study>>}
 */
export async function studiesByUid(uids) {
  /** @type {Map<string, import('./dicom.js').Study>} */
  const out = new Map();
  const want = [...new Set(uids)].filter(Boolean);
  if (!want.length) return out;
  const found = await qido('studies', { StudyInstanceUID: want.join(','), includefield: STUDY_FIELDS, limit: String(want.length) });
  for (const st of found.map(study)) out.set(st.uid, st);
  return out;
}
