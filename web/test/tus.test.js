import test from 'node:test';
import assert from 'node:assert/strict';
import { nextChunk, outcome, parseOffset, progressShare, retryDelay, tusUpload, uploadKey, uploadMetadata } from '../dist/lib/tus.js';

test('offsets from headers', () => {
  assert.equal(parseOffset('1048576'), 1048576);
  assert.equal(parseOffset(' 0 '), 0);
  assert.equal(parseOffset(null), null);
  assert.equal(parseOffset('-1'), null);
  assert.equal(parseOffset('12abc'), null);
});

test('chunks, backoff and total progress', () => {
  assert.deepEqual(nextChunk(0, 3_000_000, 1 << 20), { start: 0, end: 1 << 20 });
  assert.deepEqual(nextChunk(2_097_152, 3_000_000, 1 << 20), { start: 2_097_152, end: 3_000_000 });
  assert.equal(retryDelay(1), 500);
  assert.equal(retryDelay(100), 5000);
  assert.equal(progressShare([50, 25], 100), 0.75);
  assert.equal(progressShare([], 0), 0);
});

test('metadata and the key an unfinished upload is kept under', () => {
  assert.equal(uploadMetadata('a.dcm'), `filename ${Buffer.from('a.dcm').toString('base64')}`);
  assert.equal(uploadMetadata('影像.dcm'), `filename ${Buffer.from('影像.dcm').toString('base64')}`);
  assert.equal(uploadKey({ name: 'a', size: 3, lastModified: 9 }), 'ferry-upload:a:3:9');
});

test('what became of an upload', () => {
  assert.deepEqual(outcome({ stored: [{}] }), { kind: 'stored', count: 1 });
  assert.deepEqual(outcome({ refused: 'not DICOM' }), { kind: 'refused', reason: 'not DICOM' });
  assert.deepEqual(outcome({ stored: [], failed: [{ entry: 2, reason: 'bad' }] }), { kind: 'refused', reason: 'bad' });
  assert.deepEqual(outcome({ stored: [{}, {}], failed: [{ entry: 3, reason: 'bad' }] }),
    { kind: 'partial', stored: 2, refused: 1, entry: 3, reason: 'bad' });
});

/** A tus server in memory, whose second PATCH connection drops after half the chunk arrived. */
function fakeServer(/** @type {{ dropPatch?: number }} */ o = {}) {
  let held = 0, length = 0, patches = 0;
  /** @type {string[]} */
  const log = [];
  const headers = (/** @type {Record<string, string>} */ h) => new Headers(h);
  /** @type {typeof fetch} */
  const go = async (url, init = {}) => {
    const method = init.method || 'GET';
    const hs = /** @type {Record<string, string>} */ (init.headers || {});
    log.push(`${method} ${url}`);
    if (method === 'POST') { length = Number(hs['Upload-Length']); return new Response(null, { status: 201, headers: headers({ Location: '/api/uploads/u1' }) }); }
    if (method === 'HEAD') return new Response(null, { status: 200, headers: headers({ 'Upload-Offset': String(held) }) });
    if (method === 'PATCH') {
      patches++;
      const body = /** @type {Blob} */ (init.body);
      if (Number(hs['Upload-Offset']) !== held) return new Response(null, { status: 409 });
      if (patches === o.dropPatch) { held += Math.floor(body.size / 2); throw new TypeError('network error'); }
      held += body.size;
      return new Response(null, { status: 204, headers: headers({ 'Upload-Offset': String(held) }) });
    }
    return new Response(JSON.stringify({ result: { stored: [{ sop: 'x' }], failed: [] }, length }), { status: 200 });
  };
  return { go, log, get held() { return held; } };
}

function memoryStorage() {
  const m = new Map();
  return { getItem: (/** @type {string} */ k) => (m.has(k) ? m.get(k) : null), setItem: (/** @type {string} */ k, /** @type {string} */ v) => m.set(k, v), removeItem: (/** @type {string} */ k) => m.delete(k), m };
}

test('an upload through a dropped connection resumes from what the server holds', async () => {
  const server = fakeServer({ dropPatch: 2 });
  const storage = memoryStorage();
  const file = new File([new Uint8Array(2500)], 'x.dcm', { lastModified: 1 });
  /** @type {number[]} */
  const progress = [];
  const result = await tusUpload(file, n => progress.push(n), {
    fetch: server.go, storage, sleep: async () => {}, headers: { 'X-CSRF-Token': 't' }, chunk: 1000,
  });
  assert.deepEqual(result, { stored: [{ sop: 'x' }], failed: [] });
  assert.equal(server.held, 2500);
  // 0, 1000, then the drop: the server held 1500 (half the chunk), and the next PATCH starts there.
  assert.deepEqual(progress, [0, 1000, 1500, 2500]);
  assert.ok(server.log.includes('HEAD /api/uploads/u1'));
  assert.equal(storage.m.size, 0, 'a finished upload is forgotten');
});

test('an upload left by a reload continues at the offset the server reports', async () => {
  const server = fakeServer();
  const storage = memoryStorage();
  const file = new File([new Uint8Array(2000)], 'y.dcm', { lastModified: 2 });
  // A first attempt sends one chunk, then the page goes away.
  storage.setItem(uploadKey(file), '/api/uploads/u1');
  await server.go('/api/uploads', { method: 'POST', headers: { 'Upload-Length': '2000' } });
  await server.go('/api/uploads/u1', { method: 'PATCH', headers: { 'Upload-Offset': '0' }, body: file.slice(0, 1000) });
  /** @type {number[]} */
  const progress = [];
  await tusUpload(file, n => progress.push(n), { fetch: server.go, storage, sleep: async () => {}, headers: {}, chunk: 1000 });
  assert.deepEqual(progress, [1000, 2000]);
  assert.equal(server.log.filter(l => l.startsWith('POST')).length, 1, 'no second upload was created');
});
