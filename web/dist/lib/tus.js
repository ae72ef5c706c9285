// Resumable upload (tus 1.0 at /api/uploads): one file sent in chunks, resuming where the
// server stopped. Made for thin links: a cut connection or a server error is waited out with a
// backoff (1 s doubling to 30 s) for as long as the person allows, and the upload goes on from
// the offset the server holds — never from the start. Its address is kept in localStorage, so
// picking the same file after a reload continues it too. The pure pieces are exported for the
// tests; `tusUpload` takes its fetch, storage, clock and sleep as arguments so the tests can
// drive it too.

import { ApiError } from './api.js';

export const CHUNK = 1 << 20;
export const BACKOFF_FIRST = 1000;
export const BACKOFF_MAX = 30000;
/** How long a link may stay down before the page stops trying, in minutes: the choices. */
export const KEEP_TRYING_MINUTES = [15, 60, 120, 480, 1440];
export const KEEP_TRYING_DEFAULT = 120;
export const KEY_PREFIX = 'ferry-upload:';

/**
 * The key under which an unfinished upload of this file is remembered.
 * @param {{ name: string, size: number, lastModified: number }} file
 */
export function uploadKey(file) {
  return `${KEY_PREFIX}${file.name}:${file.size}:${file.lastModified}`;
}

/**
 * @typedef {{ loc: string, name: string, size: number, sent: number, at: number }} UploadRecord
 */

/**
 * A remembered upload from its stored text: the record (JSON), or an older plain address.
 * @param {string | null} text
 * @returns {UploadRecord | null}
 */
export function readRecord(text) {
  if (!text) return null;
  if (text.startsWith('/')) return { loc: text, name: '', size: 0, sent: 0, at: 0 };
  try {
    const r = JSON.parse(text);
    if (!r || typeof r.loc !== 'string' || !r.loc.startsWith('/')) return null;
    return {
      loc: r.loc, name: String(r.name || ''), size: Number(r.size) || 0,
      sent: Number(r.sent) || 0, at: Number(r.at) || 0,
    };
  } catch (_) { return null; }
}

/**
 * Every unfinished upload remembered in `storage` (for the home page), newest first.
 * @param {{ length: number, key(i: number): string | null, getItem(k: string): string | null }} storage
 * @returns {UploadRecord[]}
 */
export function pendingUploads(storage) {
  const out = [];
  for (let i = 0; i < storage.length; i++) {
    const k = storage.key(i);
    if (!k || !k.startsWith(KEY_PREFIX)) continue;
    const r = readRecord(storage.getItem(k));
    if (r && r.name) out.push(r);
  }
  return out.sort((a, b) => b.at - a.at);
}

/**
 * tus `Upload-Metadata`: the file name, base64 of its UTF-8 bytes.
 * @param {string} name
 */
export function uploadMetadata(name) {
  const bytes = new TextEncoder().encode(name);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `filename ${btoa(bin)}`;
}

/**
 * An `Upload-Offset` header as a number, or null when missing or not a whole number.
 * @param {string | null} header
 */
export function parseOffset(header) {
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  return Number(header.trim());
}

/**
 * The byte range of the next PATCH.
 * @param {number} offset
 * @param {number} size
 * @param {number} [chunk]
 */
export function nextChunk(offset, size, chunk = CHUNK) {
  return { start: offset, end: Math.min(size, offset + chunk) };
}

/**
 * How long to wait after `failures` failed attempts in a row: 1 s, doubling, at most 30 s.
 * @param {number} failures 1 for the first failure
 */
export function retryDelay(failures) {
  return Math.min(BACKOFF_FIRST * 2 ** Math.max(0, failures - 1), BACKOFF_MAX);
}

/**
 * @typedef {'ok' | 'conflict' | 'lost' | 'transient' | 'signed-out' | 'refused'} AnswerKind
 */

/**
 * What an HTTP status of the tus server means for the upload: go on; ask HEAD for the offset
 * (409); the server forgot the upload (404, 410: create it again); wait and try again (408,
 * 429, 5xx: the server or a proxy in between is in trouble); the session ended (401); or a
 * refusal that trying again will not change.
 * @param {number} status
 * @returns {AnswerKind}
 */
export function answerKind(status) {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 409) return 'conflict';
  if (status === 404 || status === 410) return 'lost';
  if (status === 401) return 'signed-out';
  if (status === 408 || status === 429 || status >= 500) return 'transient';
  return 'refused';
}

/**
 * Whether to keep trying: the link has been down since `downSince` (ms), the person allows
 * `keepMs`; returns the wait before the next attempt, or null to give up.
 * @param {number} failures failed attempts in a row, this one included
 * @param {number} downSince when the first of them failed
 * @param {number} now
 * @param {number} keepMs
 * @returns {number | null}
 */
export function nextWait(failures, downSince, now, keepMs) {
  const left = downSince + keepMs - now;
  if (left <= 0) return null;
  return Math.min(retryDelay(failures), left);
}

/**
 * Total progress of several files: the share sent, 0..1.
 * @param {number[]} sent bytes the server holds, per file
 * @param {number} total bytes of all files
 */
export function progressShare(sent, total) {
  const sum = sent.reduce((a, b) => a + b, 0);
  return total > 0 ? Math.min(1, sum / total) : 0;
}

/**
 * @typedef {{ entry?: number | null, study: string, series?: string, instance?: string }} StoredItem
 * @typedef {{ entry?: number | null, instance?: string | null, status?: number, reason: string }} FailedItem
 * @typedef {{ stored?: StoredItem[], failed?: FailedItem[], refused?: string | null, skipped?: number }} UploadResult
 * @typedef {{ uid: string, count: number }} StoredStudy
 * @typedef {{ kind: 'stored', count: number, studies: StoredStudy[] }
 *   | { kind: 'refused', failed: FailedItem[], bundle: string | null }
 *   | { kind: 'partial', stored: number, studies: StoredStudy[], failed: FailedItem[], bundle: string | null }} Outcome
 */

/**
 * The studies a result stored into, each with its number of instances, in order of arrival.
 * @param {StoredItem[]} stored
 * @returns {StoredStudy[]}
 */
export function storedStudies(stored) {
  /** @type {Map<string, number>} */
  const m = new Map();
  for (const s of stored) if (s && s.study) m.set(s.study, (m.get(s.study) || 0) + 1);
  return [...m].map(([uid, count]) => ({ uid, count }));
}

/**
 * What became of a complete upload, as the page says it.
 * @param {UploadResult} result
 * @returns {Outcome}
 */
export function outcome(result) {
  const stored = result.stored || [];
  const failed = result.failed || [];
  const bundle = result.refused || null;
  if (!stored.length && (bundle || failed.length)) return { kind: 'refused', failed, bundle };
  const studies = storedStudies(stored);
  if (failed.length || bundle) return { kind: 'partial', stored: stored.length, studies, failed, bundle };
  return { kind: 'stored', count: stored.length, studies };
}

/**
 * @typedef {'starting' | 'sending' | 'waiting' | 'checking' | 'processing'} Phase
 * @typedef {{ phase: Phase, sent: number, size: number, resent: number[], why?: 'link' | 'server' | 'busy', retryAt?: number }} UploadState
 * @typedef {{ length: number, key(i: number): string | null, getItem(k: string): string | null,
 *   setItem(k: string, v: string): void, removeItem(k: string): void }} Storage
 * @typedef {{
 *   fetch: typeof fetch,
 *   storage: { getItem(k: string): string | null, setItem(k: string, v: string): void, removeItem(k: string): void },
 *   sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
 *   now?: () => number,
 *   headers: Record<string, string>,
 *   chunk?: number,
 *   keepTryingMs?: () => number,
 *   signal?: AbortSignal,
 *   onState?: (s: UploadState) => void,
 * }} TusDeps
 */

/**
 * How long a PATCH of `chunk` bytes may take before it is given up and resumed. Before any
 * chunk has gone through: the chunk at 8 KB/s (a thin link is slow, not dead), plus a minute.
 * Once the link's speed is known (`bytesPerMs`, measured on the chunks that went through):
 * three times the chunk's time at that speed plus half a minute, never more than the first
 * rule — so a request that died in a cut is given up in about a minute, not three.
 * @param {number} chunk
 * @param {number | null} [bytesPerMs]
 */
export function patchTimeoutMs(chunk, bytesPerMs = null) {
  const blind = 60000 + Math.ceil(chunk / 8000) * 1000;
  if (!bytesPerMs || bytesPerMs <= 0) return blind;
  return Math.min(blind, Math.ceil(3 * chunk / bytesPerMs) + 30000);
}

/** An error that ends an upload, with a code for the catalogue (`error.<code>`). */
export class UploadError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * Sends one file; resolves with the server's result once it is stored (or refused). Rejects
 * with an UploadError `upload_stopped` when the signal aborts, `upload_gave_up` when the link
 * stayed down longer than allowed, `session_expired`, or an ApiError for a refusal.
 * @param {File} file
 * @param {(offset: number) => void} onProgress
 * @param {TusDeps} deps
 * @returns {Promise<UploadResult>}
 */
export async function tusUpload(file, onProgress, deps) {
  const { fetch: go, storage, sleep, signal } = deps;
  const now = deps.now || (() => Date.now());
  const chunk = deps.chunk || CHUNK;
  const keepMs = deps.keepTryingMs || (() => KEEP_TRYING_DEFAULT * 60000);
  const headers = (/** @type {Record<string, string>} */ extra = {}) => ({ 'Tus-Resumable': '1.0.0', ...deps.headers, ...extra });
  const key = uploadKey(file);
  const remember = (/** @type {string} */ loc, /** @type {number} */ sent) => {
    try { storage.setItem(key, JSON.stringify({ loc, name: file.name, size: file.size, sent, at: now() })); } catch (_) { /* full */ }
  };

  let loc = (readRecord(storage.getItem(key)) || { loc: null }).loc;
  /** @type {number | null} null: ask the server (HEAD) */
  let offset = null;
  let sent = 0;
  let failures = 0, downSince = 0, lastConflictAt = -1;
  // Bytes offered a second time, one entry per interruption that caused it: a cut link costs at
  // most the chunk that was on its way (the server keeps what arrived of it).
  /** @type {number[]} */
  const resent = [];
  let offeredTo = 0, interrupted = true;
  /** The link's speed on the last chunks that went through, bytes per ms (null: not known). */
  /** @type {number | null} */
  let speed = null;
  /** @param {number} start @param {number} end */
  const offer = (start, end) => {
    if (start < offeredTo) {
      if (interrupted || !resent.length) resent.push(0);
      resent[resent.length - 1] += Math.min(end, offeredTo) - start;
      interrupted = false;
    }
    offeredTo = Math.max(offeredTo, end);
  };
  /** @param {Phase} phase @param {Partial<UploadState>} [extra] */
  const report = (phase, extra = {}) => { if (deps.onState) deps.onState({ phase, sent, size: file.size, resent: [...resent], ...extra }); };
  const stopped = () => new UploadError('upload_stopped', 'stopped');
  const refused = async (/** @type {Response} */ r) => {
    if (answerKind(r.status) === 'signed-out') return new UploadError('session_expired', 'signed out');
    // Refused for good: nothing to continue later.
    storage.removeItem(key);
    return new ApiError(r.status, await r.json().catch(() => ({})));
  };
  /** Waits before the next attempt, or gives up. @param {'link' | 'server' | 'busy'} why */
  const pause = async why => {
    failures++;
    interrupted = true;
    const t = now();
    if (failures === 1) downSince = t;
    const wait = nextWait(failures, downSince, t, keepMs());
    if (wait === null) throw new UploadError('upload_gave_up', 'the link stayed down too long');
    report('waiting', { why, retryAt: t + wait });
    try { await sleep(wait, signal); } catch (_) { throw stopped(); }
    if (signal && signal.aborted) throw stopped();
    report('checking');
  };
  const progressed = () => { failures = 0; };
  // A request that gets no answer in time is given up like a dropped one: on a cut link the
  // browser may wait minutes before it notices. A chunk may take as long as it needs at 8 KB/s,
  // plus a minute; other requests half a minute.
  const call = async (/** @type {string} */ url, /** @type {RequestInit} */ init) => {
    const limit = init.method === 'PATCH' ? patchTimeoutMs(chunk, speed) : 30000;
    const signals = [AbortSignal.timeout(limit)];
    if (signal) signals.push(signal);
    return go(url, { ...init, signal: AbortSignal.any(signals) });
  };

  /**
   * The upload's result once the server has stored it (null while it has not); `strict`: a
   * refusal of the status request ends the upload.
   * @param {string} at
   * @param {boolean} strict
   * @returns {Promise<UploadResult | null>}
   */
  const finished = async (at, strict) => {
    const st = await call(at, { headers: { Accept: 'application/json' } });
    if (answerKind(st.status) === 'ok') {
      const body = await st.json().catch(() => null);
      if (body && body.complete) {
        storage.removeItem(key);
        return body.result || { stored: [], failed: [] };
      }
    } else if (strict && answerKind(st.status) !== 'transient') throw await refused(st);
    return null;
  };

  report('starting');
  for (;;) {
    if (signal && signal.aborted) throw stopped();
    /** @type {'link' | 'server' | 'busy' | null} */
    let wait = null;
    try {
      if (!loc) {
        const r = await call('/api/uploads', {
          method: 'POST',
          headers: headers({ 'Upload-Length': String(file.size), 'Upload-Metadata': uploadMetadata(file.name) }),
        });
        const kind = answerKind(r.status);
        if (kind === 'ok') {
          loc = r.headers.get('Location');
          if (!loc) throw new UploadError('invalid_upload', 'no Location for the upload');
          offset = 0; sent = 0;
          remember(loc, 0);
          progressed();
          onProgress(0);
          report('sending');
        } else if (kind === 'transient') wait = 'server';
        else throw await refused(r);
      } else if (offset === null) {
        // Where did the server get to?
        const r = await call(loc, { method: 'HEAD', headers: headers() });
        const kind = answerKind(r.status);
        const held = kind === 'ok' ? parseOffset(r.headers.get('Upload-Offset')) : null;
        if (held !== null) {
          offset = held; sent = held;
          onProgress(held);
          report('sending');
        } else if (kind === 'lost') {
          // The server no longer has it (expired, cleaned up): create it again.
          storage.removeItem(key);
          loc = null;
          interrupted = true;
        } else if (kind === 'transient' || kind === 'ok') wait = 'server';
        else throw await refused(r);
      } else {
        // A PATCH; at the end an empty one, which asks a complete upload to be stored if the
        // last PATCH's answer was lost before the server had stored it.
        const { start, end } = nextChunk(offset, file.size, chunk);
        if (start >= file.size) {
          const done = await finished(loc, true);
          if (done) return done;
        }
        offer(start, end);
        report(start >= file.size ? 'processing' : 'sending');
        const sentAt = now();
        const r = await call(loc, {
          method: 'PATCH',
          headers: headers({ 'Upload-Offset': String(start), 'Content-Type': 'application/offset+octet-stream' }),
          body: file.slice(start, end),
        });
        const kind = answerKind(r.status);
        if (kind === 'ok' && end - start >= 16384) {
          // The slowest of the recent chunks sets the pace (a slow stretch must not be cut short).
          const measured = (end - start) / Math.max(1, now() - sentAt);
          speed = speed === null ? measured : Math.min(measured, (speed + measured) / 2);
        }
        if (kind === 'ok') {
          const held = parseOffset(r.headers.get('Upload-Offset'));
          offset = held === null ? end : held;
          sent = offset;
          progressed();
          lastConflictAt = -1;
          remember(loc, offset);
          onProgress(offset);
          if (offset >= file.size) {
            // Stored (or refused) by now: the upload's status has the result.
            const done = await finished(loc, false);
            if (done) return done;
          }
        } else if (kind === 'conflict') {
          // The server holds another offset (or another request still writes): ask HEAD. The
          // same offset twice in a row means someone else is busy with it: wait a little.
          if (lastConflictAt === start) wait = 'busy';
          lastConflictAt = start;
          offset = null;
        } else if (kind === 'lost') {
          storage.removeItem(key);
          loc = null;
          interrupted = true;
        } else if (kind === 'transient') {
          offset = null;
          wait = 'server';
        } else throw await refused(r);
      }
    } catch (e) {
      if (e instanceof UploadError || e instanceof ApiError) throw e;
      if (signal && signal.aborted) throw stopped();
      // The connection dropped: wait, ask the server how far it got, go on from there.
      offset = null;
      wait = 'link';
    }
    if (wait) await pause(wait);
  }
}
