// Routes: the page a location hash names. Pure, so the tests can read every route.

/**
 * @typedef {{ name: 'login', next: string | null }
 *   | { name: 'home' } | { name: 'tokens' } | { name: 'studies', study?: string, unavailable?: string } | { name: 'upload' }
 *   | { name: 'consults' } | { name: 'consult-new' }
 *   | { name: 'consult', id: string } | { name: 'call', id: string }
 *   | { name: 'ecgs', query: Record<string, string> } | { name: 'ecg', id: string } | { name: 'ecg-calibrate', next: string | null }
 *   | { name: 'readings', query: Record<string, string> } | { name: 'reading', id: string } | { name: 'reading-stats', days: 7 | 30 }
 *   | { name: 'admin', tab: 'sites' | 'users' | 'devices' | 'reading' | 'audit' }
 *   | { name: 'broadcasts', schedule?: true } | { name: 'broadcast', id: string } | { name: 'broadcast-attendance', id: string }
 *   | { name: 'broadcast-library' }
 *   | { name: 'not-found' }} Route
 */

/** @param {string} s */
function decode(s) {
  try { return decodeURIComponent(s); } catch (_) { return s; }
}

/**
 * Where a sign-in may send the person afterwards: a route of this app (`#/…`) or a page of
 * this server (`/viewer/…`), never another origin and never the sign-in page itself.
 * @param {string | null | undefined} next
 * @returns {string | null}
 */
export function safeNext(next) {
  if (!next || typeof next !== 'string') return null;
  if (next.startsWith('#/')) return next.startsWith('#/login') ? null : next;
  // A path on this server: one leading slash, no scheme-relative "//host", no backslashes.
  if (/^\/(?![/\\])[^\\\s]*$/.test(next)) return next;
  return null;
}

/**
 * The sign-in page's hash, remembering where to go afterwards.
 * @param {string | null | undefined} next
 */
export function loginHash(next) {
  const safe = safeNext(next);
  return safe && safe !== '#/' ? `#/login?next=${encodeURIComponent(safe)}` : '#/login';
}

/**
 * @param {string} hash location.hash, e.g. "#/consults/c_1"
 * @returns {Route}
 */
export function parseRoute(hash) {
  const full = hash || '#/';
  const q = full.indexOf('?');
  const path = q < 0 ? full : full.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : full.slice(q + 1));
  if (path === '#/login') return { name: 'login', next: safeNext(query.get('next')) };
  if (path === '#/' || path === '#' || path === '') return { name: 'home' };
  if (path === '#/tokens') return { name: 'tokens' };
  if (path === '#/studies') {
    const study = query.get('study');
    if (study && /^[0-9.]{1,64}$/.test(study)) return { name: 'studies', study };
    const unavailable = query.get('unavailable');
    return unavailable && /^[0-9.]{1,64}$/.test(unavailable) ? { name: 'studies', unavailable } : { name: 'studies' };
  }
  if (path === '#/upload') return { name: 'upload' };
  if (path === '#/ecgs') return { name: 'ecgs', query: ecgSearch(query) };
  if (path === '#/ecgs/calibrate') return { name: 'ecg-calibrate', next: safeNext(query.get('next')) };
  if (path === '#/readings') return { name: 'readings', query: readingSearch(query) };
  if (path === '#/readings/turnaround') return { name: 'reading-stats', days: query.get('days') === '30' ? 30 : 7 };
  if (path === '#/consults') return { name: 'consults' };
  if (path === '#/consults/new') return { name: 'consult-new' };
  if (path === '#/broadcasts') return query.has('schedule') ? { name: 'broadcasts', schedule: true } : { name: 'broadcasts' };
  let m;
  if (path === '#/broadcasts/library') return { name: 'broadcast-library' };
  if ((m = /^#\/broadcasts\/([^/]+)\/attendance$/.exec(path))) return { name: 'broadcast-attendance', id: decode(m[1]) };
  if ((m = /^#\/broadcasts\/([^/]+)$/.exec(path))) return { name: 'broadcast', id: decode(m[1]) };
  if ((m = /^#\/consults\/([^/]+)$/.exec(path))) return { name: 'consult', id: decode(m[1]) };
  if ((m = /^#\/call\/([^/]+)$/.exec(path))) return { name: 'call', id: decode(m[1]) };
  if ((m = /^#\/ecgs\/([^/]+)$/.exec(path))) return { name: 'ecg', id: decode(m[1]) };
  if ((m = /^#\/readings\/([^/]+)$/.exec(path))) return { name: 'reading', id: decode(m[1]) };
  if (path === '#/admin/users') return { name: 'admin', tab: 'users' };
  if (path === '#/admin/devices') return { name: 'admin', tab: 'devices' };
  if (path === '#/admin/reading') return { name: 'admin', tab: 'reading' };
  if (path === '#/admin/audit') return { name: 'admin', tab: 'audit' };
  if (path === '#/admin' || path.startsWith('#/admin/')) return { name: 'admin', tab: 'sites' };
  return { name: 'not-found' };
}

/**
 * The ECG search's fields a location may carry, each checked for its form; others dropped.
 * @param {URLSearchParams} query
 * @returns {Record<string, string>}
 */
export function ecgSearch(query) {
  /** @type {Record<string, RegExp>} */
  const forms = {
    name: /^.{1,64}$/u, patient_id: /^.{1,64}$/u, from: /^\d{4}-\d{2}-\d{2}$/, to: /^\d{4}-\d{2}-\d{2}$/,
    format: /^(dicom|muse|aecg|scp)$/, study: /^[0-9.]{1,64}$/,
  };
  /** @type {Record<string, string>} */
  const out = {};
  for (const [k, re] of Object.entries(forms)) {
    const v = query.get(k);
    if (v && re.test(v)) out[k] = v;
  }
  return out;
}

/**
 * The reading list's filters a location may carry, each checked for its form; others dropped.
 * @param {URLSearchParams} query
 * @returns {Record<string, string>}
 */
export function readingSearch(query) {
  /** @type {Record<string, RegExp>} */
  const forms = {
    kind: /^(imaging|ecg)$/, modality: /^[A-Z]{1,16}$/, priority: /^(stat|urgent|routine)$/,
    state: /^(open|all|collecting|ready|claimed|signed|cancelled)$/, sending_site: /^[a-z0-9][a-z0-9-]{0,63}$/,
    from: /^\d{4}-\d{2}-\d{2}$/, to: /^\d{4}-\d{2}-\d{2}$/,
  };
  /** @type {Record<string, string>} */
  const out = {};
  for (const [k, re] of Object.entries(forms)) {
    const v = query.get(k);
    if (v && re.test(v)) out[k] = v;
  }
  return out;
}

/** @param {string} id */
export const consultHash = id => `#/consults/${encodeURIComponent(id)}`;
/** @param {string} id */
export const callHash = id => `#/call/${encodeURIComponent(id)}`;
/** The study list showing one study. @param {string} uid */
export const studiesHash = uid => `#/studies?study=${encodeURIComponent(uid)}`;
/** The ECG viewer of one record. @param {string} id */
export const ecgHash = id => `#/ecgs/${encodeURIComponent(id)}`;
/**
 * The ECG list for one study (the list finds its record by the patient's ID, then the UID).
 * @param {string} uid
 * @param {string} [patientId]
 */
export const ecgOfStudyHash = (uid, patientId) =>
  `#/ecgs?${new URLSearchParams(patientId ? { study: uid, patient_id: patientId } : { study: uid })}`;
/** The screen calibration, coming back to `next` afterwards. @param {string} [next] */
export const calibrateHash = next => (next ? `#/ecgs/calibrate?next=${encodeURIComponent(next)}` : '#/ecgs/calibrate');
/** One reading request. @param {string} id */
export const readingHash = id => `#/readings/${encodeURIComponent(id)}`;
/** The reading list with filters. @param {Record<string, string>} [f] */
export const readingsHash = f => {
  const q = new URLSearchParams(Object.entries(f || {}).filter(([, v]) => v));
  return q.size ? `#/readings?${q}` : '#/readings';
};
/** The centre's turnaround page. @param {number} [days] */
export const turnaroundHash = days => (days === 30 ? '#/readings/turnaround?days=30' : '#/readings/turnaround');
/** The training sessions; with `schedule`, at the form scheduling one. @param {boolean} [schedule] */
export const broadcastsHash = schedule => (schedule ? '#/broadcasts?schedule' : '#/broadcasts');
/** One training session. @param {string} id */
export const broadcastHash = id => `#/broadcasts/${encodeURIComponent(id)}`;
/** The training library: sessions that are over, with their recordings and materials. */
export const libraryHash = () => '#/broadcasts/library';
/** A training session's attendance. @param {string} id */
export const attendanceHash = id => `#/broadcasts/${encodeURIComponent(id)}/attendance`;
