// Resumable upload (tus 1.0 at /api/uploads): one file sent in chunks, resuming where the
// server stopped — across dropped connections (retries) and page reloads (the upload's address
// is kept in localStorage). The pure pieces are exported for the tests; `tusUpload` takes its
// fetch, storage and clock as arguments so the tests can drive it too.

import { ApiError } from './api.js';

export const CHUNK = 1 << 20;
export const MAX_FAILURES = 30;

/**
 * The key under which an unfinished upload of this file is remembered.
 * @param {{ name: string, size: number, lastModified: number }} file
 */
export function uploadKey(file) {
  return `ferry-upload:${file.name}:${file.size}:${file.lastModified}`;
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
 * How long to wait after `failures` dropped connections in a row.
 * @param {number} failures
 */
export function retryDelay(failures) {
  return Math.min(500 * failures, 5000);
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
 * @typedef {{ stored?: unknown[], failed?: { entry?: number, reason: string }[], refused?: string }} UploadResult
 * @typedef {{ kind: 'stored', count: number }
 *   | { kind: 'refused', reason: string }
 *   | { kind: 'partial', stored: number, refused: number, entry: number | undefined, reason: string }} Outcome
 */

/**
 * What became of a complete upload, as the page says it.
 * @param {UploadResult} result
 * @returns {Outcome}
 */
export function outcome(result) {
  const stored = (result.stored || []).length;
  const failed = result.failed || [];
  if (result.refused || (failed.length && !stored)) {
    return { kind: 'refused', reason: result.refused || failed[0].reason };
  }
  if (failed.length) {
    // A bundle with some entries refused: how many, and the first reason.
    return { kind: 'partial', stored, refused: failed.length, entry: failed[0].entry, reason: failed[0].reason };
  }
  return { kind: 'stored', count: stored };
}

/**
 * @typedef {{
 *   fetch: typeof fetch,
 *   storage: { getItem(k: string): string | null, setItem(k: string, v: string): void, removeItem(k: string): void },
 *   sleep: (ms: number) => Promise<void>,
 *   headers: Record<string, string>,
 *   chunk?: number,
 * }} TusDeps
 */

/**
 * Sends one file; resolves with the server's result once it is stored (or refused).
 * @param {File} file
 * @param {(offset: number) => void} onProgress
 * @param {TusDeps} deps
 * @returns {Promise<UploadResult>}
 */
export async function tusUpload(file, onProgress, deps) {
  const { fetch: go, storage, sleep } = deps;
  const chunk = deps.chunk || CHUNK;
  const headers = (/** @type {Record<string, string>} */ extra = {}) => ({ 'Tus-Resumable': '1.0.0', ...deps.headers, ...extra });
  const held = async (/** @type {string} */ loc) => {
    const r = await go(loc, { method: 'HEAD', headers: headers() });
    return r.ok ? parseOffset(r.headers.get('Upload-Offset')) : null;
  };
  const key = uploadKey(file);
  let loc = storage.getItem(key);
  let offset = loc ? await held(loc).catch(() => null) : null;
  if (offset === null || !loc) {
    const r = await go('/api/uploads', {
      method: 'POST',
      headers: headers({ 'Upload-Length': String(file.size), 'Upload-Metadata': uploadMetadata(file.name) }),
    });
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
    loc = r.headers.get('Location');
    if (!loc) throw new Error('no Location for the upload');
    storage.setItem(key, loc);
    offset = 0;
  }
  onProgress(offset);
  let failures = 0;
  while (offset < file.size) {
    const { start, end } = nextChunk(offset, file.size, chunk);
    let r;
    try {
      r = await go(loc, {
        method: 'PATCH',
        headers: headers({ 'Upload-Offset': String(start), 'Content-Type': 'application/offset+octet-stream' }),
        body: file.slice(start, end),
      });
    } catch (e) {
      // The connection dropped: wait, ask the server how far it got, go on from there.
      failures++;
      if (failures > MAX_FAILURES) throw Object.assign(new Error('connection lost'), { code: 'upload_connection_lost' });
      await sleep(retryDelay(failures));
      const now = await held(loc).catch(() => null);
      if (now !== null) { offset = now; onProgress(offset); }
      continue;
    }
    if (r.status === 204) {
      const now = parseOffset(r.headers.get('Upload-Offset'));
      offset = now === null ? end : now;
      failures = 0;
      onProgress(offset);
    } else if (r.status === 409) {
      const now = await held(loc);
      if (now === null) throw Object.assign(new Error('upload lost'), { code: 'upload_lost' });
      offset = now;
    } else {
      throw new ApiError(r.status, await r.json().catch(() => ({})));
    }
  }
  storage.removeItem(key);
  const st = await (await go(loc, { headers: { Accept: 'application/json' } })).json();
  return st.result || { stored: [], failed: [] };
}
