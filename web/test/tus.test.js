import test from 'node:test';
import assert from 'node:assert/strict';
import {
  UploadError, answerKind, nextChunk, nextWait, outcome, parseOffset, patchTimeoutMs, pendingUploads, progressShare,
  readRecord,
  retryDelay, storedStudies, tusUpload, uploadKey, uploadMetadata,
} from '../dist/lib/tus.js';

test('offsets from headers', () => {
  assert.equal(parseOffset('1048576'), 1048576);
  assert.equal(parseOffset(' 0 '), 0);
  assert.equal(parseOffset(null), null);
  assert.equal(parseOffset('-1'), null);
  assert.equal(parseOffset('12abc'), null);
});

test('chunks and total progress', () => {
  assert.deepEqual(nextChunk(0, 3_000_000, 1 << 20), { start: 0, end: 1 << 20 });
  assert.deepEqual(nextChunk(2_097_152, 3_000_000, 1 << 20), { start: 2_097_152, end: 3_000_000 });
  assert.equal(progressShare([50, 25], 100), 0.75);
  assert.equal(progressShare([], 0), 0);
});

test('backoff: 1 s doubling to 30 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 100].map(retryDelay), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('the wait before the next attempt ends with the time the person allows', () => {
  const hour = 3_600_000;
  assert.equal(nextWait(1, 0, 0, 2 * hour), 1000);
  assert.equal(nextWait(4, 0, 10_000, 2 * hour), 8000);
  // Near the end: only what is left, then nothing.
  assert.equal(nextWait(9, 0, 2 * hour - 5000, 2 * hour), 5000);
  assert.equal(nextWait(9, 0, 2 * hour, 2 * hour), null);
  assert.equal(nextWait(1, 100, 100, 0), null);
});

test('what a status means for the upload', () => {
  assert.deepEqual([200, 201, 204, 409, 404, 410, 401, 408, 429, 500, 502, 503, 400, 403, 413, 415].map(answerKind),
    ['ok', 'ok', 'ok', 'conflict', 'lost', 'lost', 'signed-out', 'transient', 'transient', 'transient', 'transient', 'transient',
      'refused', 'refused', 'refused', 'refused']);
});

test('metadata and the key an unfinished upload is kept under', () => {
  assert.equal(uploadMetadata('a.dcm'), `filename ${Buffer.from('a.dcm').toString('base64')}`);
  assert.equal(uploadMetadata('影像.dcm'), `filename ${Buffer.from('影像.dcm').toString('base64')}`);
  assert.equal(uploadKey({ name: 'a', size: 3, lastModified: 9 }), 'ferry-upload:a:3:9');
});

test('remembered uploads: records, older plain addresses, and the list for the home page', () => {
  assert.deepEqual(readRecord('/api/uploads/u1'), { loc: '/api/uploads/u1', name: '', size: 0, sent: 0, at: 0 });
  assert.deepEqual(readRecord(JSON.stringify({ loc: '/api/uploads/u2', name: 'ct.zip', size: 9, sent: 4, at: 7 })),
    { loc: '/api/uploads/u2', name: 'ct.zip', size: 9, sent: 4, at: 7 });
  assert.equal(readRecord('{"loc":"https://elsewhere/x"}'), null);
  assert.equal(readRecord('not json'), null);
  assert.equal(readRecord(null), null);
  const s = memoryStorage();
  s.setItem('ferry-lang', 'en');
  s.setItem('ferry-upload:a:1:1', JSON.stringify({ loc: '/api/uploads/a', name: 'a', size: 10, sent: 1, at: 1 }));
  s.setItem('ferry-upload:b:1:1', JSON.stringify({ loc: '/api/uploads/b', name: 'b', size: 10, sent: 5, at: 2 }));
  s.setItem('ferry-upload:c:1:1', '/api/uploads/c');
  assert.deepEqual(pendingUploads(s).map(r => r.name), ['b', 'a']);
});

test('what became of an upload', () => {
  const one = { study: 's1', series: 'x', instance: 'i1' };
  assert.deepEqual(outcome({ stored: [one] }), { kind: 'stored', count: 1, studies: [{ uid: 's1', count: 1 }] });
  assert.deepEqual(outcome({ refused: 'not a zip' }), { kind: 'refused', failed: [], bundle: 'not a zip' });
  const bad = { entry: 2, status: 0xC000, reason: 'bad' };
  assert.deepEqual(outcome({ stored: [], failed: [bad] }), { kind: 'refused', failed: [bad], bundle: null });
  assert.deepEqual(outcome({ stored: [one, { ...one, instance: 'i2' }, { study: 's2' }], failed: [bad] }),
    { kind: 'partial', stored: 3, studies: [{ uid: 's1', count: 2 }, { uid: 's2', count: 1 }], failed: [bad], bundle: null });
  assert.deepEqual(storedStudies([]), []);
});

/**
 * A tus server in memory. `script` answers PATCH number n (1-based) with a status, or 'drop'
 * (the connection dies after half the chunk arrived).
 * @param {{ script?: Record<number, number | 'drop'>, forget?: boolean }} [o]
 */
function fakeServer(o = {}) {
  let held = 0, length = 0, patches = 0, uploads = 0, complete = false;
  /** @type {string[]} */
  const log = [];
  const headers = (/** @type {Record<string, string>} */ h) => new Headers(h);
  /** @type {typeof fetch} */
  const go = async (url, init = {}) => {
    const method = init.method || 'GET';
    const hs = /** @type {Record<string, string>} */ (init.headers || {});
    log.push(`${method} ${url}`);
    if (init.signal && init.signal.aborted) throw new DOMException('aborted', 'AbortError');
    if (method === 'POST') {
      uploads++; held = 0; complete = false;
      length = Number(hs['Upload-Length']);
      return new Response(null, { status: 201, headers: headers({ Location: `/api/uploads/u${uploads}` }) });
    }
    if (url !== `/api/uploads/u${uploads}`) return new Response(null, { status: 404 });
    if (method === 'HEAD') return new Response(null, { status: 200, headers: headers({ 'Upload-Offset': String(held) }) });
    if (method === 'PATCH') {
      patches++;
      const body = /** @type {Blob} */ (init.body);
      const act = o.script && o.script[patches];
      if (act === 'drop') { held += Math.floor(body.size / 2); throw new TypeError('network error'); }
      if (typeof act === 'number') {
        if (act === 404) uploads++; // the server forgot this one
        return new Response('{}', { status: act });
      }
      if (complete || Number(hs['Upload-Offset']) !== held) return new Response(null, { status: 409 });
      held += body.size;
      if (held === length) complete = true;
      return new Response(null, { status: 204, headers: headers({ 'Upload-Offset': String(held) }) });
    }
    return new Response(JSON.stringify({ complete, result: complete ? { stored: [{ study: 's', instance: 'x' }], failed: [] } : null, length }), { status: 200 });
  };
  return { go, log, get held() { return held; } };
}

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (/** @type {string} */ k) => (m.has(k) ? m.get(k) : null),
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => { m.set(k, v); },
    removeItem: (/** @type {string} */ k) => { m.delete(k); },
    key: (/** @type {number} */ i) => [...m.keys()][i] ?? null,
    get length() { return m.size; },
    m,
  };
}

/** A clock that the sleeps move on; the waits asked for are kept. */
function fakeClock() {
  let t = 1_000_000;
  /** @type {number[]} */
  const waits = [];
  return {
    now: () => t,
    sleep: async (/** @type {number} */ ms) => { waits.push(ms); t += ms; },
    waits,
  };
}

test('an upload through a dropped connection resumes from what the server holds', async () => {
  const server = fakeServer({ script: { 2: 'drop' } });
  const storage = memoryStorage();
  const clock = fakeClock();
  const file = new File([new Uint8Array(2500)], 'x.dcm', { lastModified: 1 });
  /** @type {number[]} */
  const progress = [];
  /** @type {any[]} */
  const states = [];
  const result = await tusUpload(file, n => progress.push(n), {
    fetch: server.go, storage, ...clock, headers: { 'X-CSRF-Token': 't' }, chunk: 1000, onState: s => states.push(s),
  });
  assert.deepEqual(result, { stored: [{ study: 's', instance: 'x' }], failed: [] });
  assert.equal(server.held, 2500);
  // 0, 1000, then the drop: the server held 1500 (half the chunk), and the next PATCH starts there.
  assert.deepEqual(progress, [0, 1000, 1500, 2500]);
  assert.ok(server.log.includes('HEAD /api/uploads/u1'));
  assert.deepEqual(clock.waits, [1000]);
  const waiting = states.find(s => s.phase === 'waiting');
  assert.deepEqual(waiting, { phase: 'waiting', sent: 1000, size: 2500, resent: [], why: 'link', retryAt: 1_000_000 + 1000 });
  // The drop cost the half of the chunk the server had not kept, offered again once.
  assert.deepEqual(states[states.length - 1].resent, [500]);
  assert.equal(storage.m.size, 0, 'a finished upload is forgotten');
});

test('each interruption is counted apart, and an upload created again re-sends from the start', async () => {
  const server = fakeServer({ script: { 2: 'drop', 4: 'drop', 5: 404 } });
  const clock = fakeClock();
  const file = new File([new Uint8Array(4000)], 'x.dcm', { lastModified: 1 });
  /** @type {any[]} */
  const states = [];
  await tusUpload(file, () => {}, {
    fetch: server.go, storage: memoryStorage(), ...clock, headers: {}, chunk: 1000, onState: s => states.push(s),
  });
  assert.equal(server.held, 4000);
  const resent = states[states.length - 1].resent;
  // Two drops of half a chunk each, then the forgotten upload: everything offered so far again.
  assert.deepEqual(resent.slice(0, 2), [500, 500]);
  assert.deepEqual(resent, [500, 500, 4000], 'the upload made again re-sends the whole file');
});

test('server errors are waited out with a growing backoff, then the upload goes on', async () => {
  const server = fakeServer({ script: { 2: 503, 3: 500, 4: 502 } });
  const clock = fakeClock();
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  const result = await tusUpload(file, () => {}, { fetch: server.go, storage: memoryStorage(), ...clock, headers: {}, chunk: 1000 });
  assert.equal(server.held, 2000);
  assert.deepEqual(clock.waits, [1000, 2000, 4000]);
  assert.ok(result.stored);
});

test('a 409 asks HEAD for the offset and continues without waiting', async () => {
  const server = fakeServer({ script: { 2: 409 } });
  const clock = fakeClock();
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  await tusUpload(file, () => {}, { fetch: server.go, storage: memoryStorage(), ...clock, headers: {}, chunk: 1000 });
  assert.deepEqual(server.log.slice(2, 5), ['PATCH /api/uploads/u1', 'HEAD /api/uploads/u1', 'PATCH /api/uploads/u1']);
  assert.deepEqual(clock.waits, []);
  assert.equal(server.held, 2000);
});

test('the same 409 twice in a row (another window writes) waits before asking again', async () => {
  const server = fakeServer({ script: { 2: 409, 3: 409 } });
  const clock = fakeClock();
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  await tusUpload(file, () => {}, { fetch: server.go, storage: memoryStorage(), ...clock, headers: {}, chunk: 1000 });
  assert.deepEqual(clock.waits, [1000]);
});

test('an upload the server forgot is created again and sent from the start, without asking', async () => {
  const server = fakeServer({ script: { 2: 404 } });
  const clock = fakeClock();
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  await tusUpload(file, () => {}, { fetch: server.go, storage: memoryStorage(), ...clock, headers: {}, chunk: 1000 });
  assert.equal(server.log.filter(l => l.startsWith('POST')).length, 2);
  assert.equal(server.held, 2000);
});

test('gives up only once the link has been down longer than the person allows', async () => {
  const server = fakeServer({ script: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [i + 2, 'drop'])) });
  const storage = memoryStorage();
  const clock = fakeClock();
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  const noHead = /** @type {typeof fetch} */ (async (url, init = {}) => {
    if (init.method === 'HEAD' && server.log.length > 3) throw new TypeError('network error');
    return server.go(url, init);
  });
  await assert.rejects(tusUpload(file, () => {}, {
    fetch: noHead, storage, ...clock, headers: {}, chunk: 1000, keepTryingMs: () => 10 * 60_000,
  }), (/** @type {any} */ e) => e instanceof UploadError && e.code === 'upload_gave_up');
  assert.equal(clock.waits.reduce((a, b) => a + b, 0), 10 * 60_000, 'tried for exactly the ten minutes allowed');
  assert.equal(Math.max(...clock.waits), 30_000);
  assert.equal(storage.m.size, 1, 'the upload is remembered, to continue later');
});

test('Stop ends the waiting at once and keeps the upload to continue later', async () => {
  const server = fakeServer({ script: { 2: 'drop' } });
  const storage = memoryStorage();
  const stop = new AbortController();
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  const sleep = (/** @type {number} */ _ms, /** @type {AbortSignal | undefined} */ signal) => new Promise((_, reject) => {
    signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    stop.abort();
  });
  await assert.rejects(tusUpload(file, () => {}, { fetch: server.go, storage, sleep, headers: {}, chunk: 1000, signal: stop.signal }),
    (/** @type {any} */ e) => e.code === 'upload_stopped');
  const kept = readRecord(storage.getItem(uploadKey(file)));
  assert.equal(kept?.sent, 1000);
  // Continued later: from what the server holds.
  /** @type {number[]} */
  const progress = [];
  await tusUpload(file, n => progress.push(n), { fetch: server.go, storage, ...fakeClock(), headers: {}, chunk: 1000 });
  assert.deepEqual(progress, [1500, 2000]);
});

test('a refusal ends the upload with the server problem', async () => {
  const server = fakeServer({ script: { 1: 413 } });
  const file = new File([new Uint8Array(2000)], 'x.dcm', { lastModified: 1 });
  await assert.rejects(tusUpload(file, () => {}, { fetch: server.go, storage: memoryStorage(), ...fakeClock(), headers: {}, chunk: 1000 }),
    (/** @type {any} */ e) => e.status === 413);
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
  await tusUpload(file, n => progress.push(n), { fetch: server.go, storage, ...fakeClock(), headers: {}, chunk: 1000 });
  assert.deepEqual(progress, [1000, 2000]);
  assert.equal(server.log.filter(l => l.startsWith('POST')).length, 1, 'no second upload was created');
});

test('a lost answer to the last PATCH: the status says stored, nothing is sent again', async () => {
  const server = fakeServer();
  const storage = memoryStorage();
  const file = new File([new Uint8Array(1000)], 'z.dcm', { lastModified: 3 });
  storage.setItem(uploadKey(file), '/api/uploads/u1');
  await server.go('/api/uploads', { method: 'POST', headers: { 'Upload-Length': '1000' } });
  await server.go('/api/uploads/u1', { method: 'PATCH', headers: { 'Upload-Offset': '0' }, body: file.slice(0, 1000) });
  const before = server.log.length;
  const r = await tusUpload(file, () => {}, { fetch: server.go, storage, ...fakeClock(), headers: {}, chunk: 1000 });
  assert.ok(r.stored);
  assert.deepEqual(server.log.slice(before), ['HEAD /api/uploads/u1', 'GET /api/uploads/u1']);
});

test('a chunk may take as long as it needs at 8 KB/s plus a minute before it is given up', () => {
  assert.equal(patchTimeoutMs(1 << 20), 60000 + 132000);
  assert.equal(patchTimeoutMs(8000), 61000);
});

test('once the link\'s speed is known, a dead request is given up in about a minute', () => {
  // 1 Mbit/s is 125 bytes a millisecond: a 1 MiB chunk takes 8.4 s; three times that and 30 s.
  assert.equal(patchTimeoutMs(1 << 20, 125), Math.ceil(3 * (1 << 20) / 125) + 30000);
  // A link slower than 8 KB/s never gets less than the first rule.
  assert.equal(patchTimeoutMs(1 << 20, 4), 60000 + 132000);
  assert.equal(patchTimeoutMs(1 << 20, 0), 60000 + 132000);
});

test('the upload measures the link on the chunks that go through and gives up sooner', async () => {
  // A server that answers each 20,000-byte PATCH after 100 ms of the fake clock: 200 bytes/ms.
  const clock = fakeClock();
  /** @type {number[]} */
  const limits = [];
  const file = new File([new Uint8Array(60000)], 'x.dcm', { lastModified: 1 });
  let held = 0, patches = 0;
  /** @type {typeof fetch} */
  const go = async (url, init = {}) => {
    const method = init.method || 'GET';
    if (method === 'POST') return new Response(null, { status: 201, headers: new Headers({ Location: '/api/uploads/u1' }) });
    if (method === 'HEAD') return new Response(null, { status: 200, headers: new Headers({ 'Upload-Offset': String(held) }) });
    if (method === 'PATCH') {
      patches++;
      await clock.sleep(100);
      held += /** @type {Blob} */ (init.body).size;
      return new Response(null, { status: 204, headers: new Headers({ 'Upload-Offset': String(held) }) });
    }
    return new Response(JSON.stringify({ complete: true, result: { stored: [], failed: [] } }), { status: 200 });
  };
  const realTimeout = AbortSignal.timeout;
  AbortSignal.timeout = ms => { limits.push(ms); return realTimeout.call(AbortSignal, 1e9); };
  try {
    await tusUpload(file, () => {}, { fetch: go, storage: memoryStorage(), ...clock, headers: {}, chunk: 20000 });
  } finally {
    AbortSignal.timeout = realTimeout;
  }
  assert.equal(patches, 3);
  // The first PATCH: blind (20,000 bytes at 8 KB/s + 60 s); then 3 × 100 ms + 30 s.
  const patchLimits = limits.filter(ms => ms !== 30000);
  assert.deepEqual(patchLimits, [60000 + 3000, 30300, 30300]);
});
