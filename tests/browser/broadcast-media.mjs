// A training broadcast through Ferry's SFU, over WHIP and WHEP as any client would speak
// them: trainer-sun publishes a fake camera at 960×540 with three simulcast layers and a fake
// microphone from Chromium; viewers at three sites (island, mountain, county) watch in three
// more Chromium contexts. Each viewer must decode video frames and receive audio; on this open
// link a viewer climbs from the low layer to the full 960-pixel-wide one (the SFU switched
// layers at keyframes, rewriting the stream); the session reports who watches; a hang-up is
// seen. Run by tests/it/browser.rs with FERRY_URL and VIEWERS (user ids, comma-separated).
import test, { after, before } from 'node:test';
import { base, expect, launchMedia, signIn } from './lib.mjs';

const viewers = (process.env.VIEWERS || 'dr-zhao,dr-ma').split(',');
const T = 60000;
let browser, trainer, session;
const watching = [];

before(async () => { browser = await launchMedia(); });
after(async () => { await browser?.close(); });

/** A signed-in page of `user` on Ferry's origin. */
async function pageOf(user) {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await signIn(page, user);
  return page;
}

/**
 * Polls an async check in the page until it holds (page.waitForFunction does not wait for an
 * async predicate's promise); the last value when it never does.
 */
async function until(page, check, arg, timeout, what) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await page.evaluate(check, arg);
    if (last && last.ok) return last;
    if (Date.now() > end) expect(false, `${what}: ${JSON.stringify(last)}`);
    await new Promise(r => setTimeout(r, 500));
  }
}

/** The page's inbound RTP: video and audio. */
const inbound = async () => {
  const s = [...(await window.pc.getStats()).values()];
  const v = s.find(x => x.type === 'inbound-rtp' && x.kind === 'video') || {};
  const a = s.find(x => x.type === 'inbound-rtp' && x.kind === 'audio') || {};
  (window.widths ||= []).push(v.frameWidth || 0);
  return { frames: v.framesDecoded || 0, width: v.frameWidth || 0, dropped: v.framesDropped || 0,
    plis: v.pliCount || 0, nacks: v.nackCount || 0, lost: v.packetsLost || 0, audio: a.packetsReceived || 0,
    audioLost: a.packetsLost || 0 };
};

/** Sends `pc`'s offer (all candidates gathered) to a WHIP/WHEP endpoint, applies the answer. */
const negotiate = async (url) => {
  const me = await (await fetch('/api/me')).json();
  const pc = window.pc;
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') done(); });
  });
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', 'X-CSRF-Token': me.csrf_token },
    body: pc.localDescription.sdp,
  });
  if (r.status !== 201) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  window.resource = r.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  await new Promise((done, fail) => {
    const t = setTimeout(() => fail(new Error(`not connected: ${pc.connectionState}`)), 20000);
    const check = () => { if (pc.connectionState === 'connected') { clearTimeout(t); done(); } };
    pc.addEventListener('connectionstatechange', check);
    check();
  });
  return window.resource;
};

test('trainer-sun schedules a session and publishes three simulcast layers over WHIP', { timeout: T }, async () => {
  trainer = await pageOf('trainer-sun');
  session = await trainer.evaluate(async () => {
    const me = await (await fetch('/api/me')).json();
    const r = await fetch('/api/broadcasts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify({ title: 'ECG reading, week 3', starts_at: Date.now() + 60000, subtrees: ['county-hospital'] }),
    });
    return (await r.json()).id;
  });
  expect(/^bc_/.test(session || ''), `no session: ${session}`);
  await trainer.evaluate(async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 960, height: 540 } });
    const pc = window.pc = new RTCPeerConnection();
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
    pc.addTransceiver(stream.getVideoTracks()[0], {
      direction: 'sendonly',
      sendEncodings: [
        { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'h', maxBitrate: 1500000 },
      ],
    });
  });
  const where = await trainer.evaluate(negotiate, `/api/broadcasts/${session}/whip`);
  expect(where.startsWith(`/api/broadcasts/${session}/whip/`), `Location ${where}`);
  // Three layers leave the trainer's browser.
  await until(trainer, async () => {
    const s = await window.pc.getStats();
    const rids = [...s.values()].filter(x => x.type === 'outbound-rtp' && x.kind === 'video' && x.framesEncoded > 10)
      .map(x => `${x.rid}:${x.frameWidth}`);
    return { ok: rids.length === 3, rids };
  }, null, 20000, 'three layers sent');
  const info = await trainer.evaluate(async id => (await (await fetch(`/api/broadcasts/${id}`)).json()), session);
  expect(info.state === 'live', `state ${info.state}`);
  expect(info.media.presenter === true, `media ${JSON.stringify(info.media)}`);
});

test('viewers at three sites watch over WHEP: frames decoded, audio received', { timeout: 90000 }, async () => {
  for (const user of viewers) {
    const page = await pageOf(user);
    await page.evaluate(() => {
      const pc = window.pc = new RTCPeerConnection();
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      // Play what arrives, as a viewer's page does, so frames are decoded.
      pc.ontrack = e => {
        const el = document.createElement(e.track.kind);
        el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
        document.body.append(el);
      };
    });
    const where = await page.evaluate(negotiate, `/api/broadcasts/${session}/whep`);
    expect(where.startsWith(`/api/broadcasts/${session}/whep/`), `${user}: Location ${where}`);
    watching.push({ user, page, where });
  }
  for (const { user, page } of watching) {
    await until(page, async inboundSrc => {
      const r = await (0, eval)(inboundSrc)();
      return { ok: r.frames > 30 && r.audio > 100, ...r };
    }, inbound.toString(), 30000, `${user} decoding`);
  }
  const info = await trainer.evaluate(async id => (await (await fetch(`/api/broadcasts/${id}`)).json()), session);
  expect(info.media.watching === viewers.length, `watching ${JSON.stringify(info.media)}`);
});

test('on an open link a viewer climbs to the full-size layer, the stream unbroken', { timeout: 60000 }, async () => {
  const { user, page } = watching[0];
  const before = await page.evaluate(inbound);
  const after = await until(page, async inboundSrc => {
    const r = await (0, eval)(inboundSrc)();
    return { ok: r.width >= 960, ...r };
  }, inbound.toString(), 40000, `${user} reaching 960 px`);
  const seen = [...new Set(await page.evaluate(() => window.widths))].filter(Boolean);
  expect(seen[0] < 960, `started on a smaller layer: ${seen}`);
  // Decoding went on across the switches.
  const later = await until(page, async ([inboundSrc, n]) => {
    const r = await (0, eval)(inboundSrc)();
    return { ok: r.frames > n + 60, ...r };
  }, [inbound.toString(), after.frames], 10000, `${user} decoding on the top layer`);
  expect(later.width >= 960, `fell back to ${later.width}`);
  console.log(`# broadcast: ${user} widths ${seen.join(' -> ')}; frames decoded ${before.frames} -> ${later.frames}, ` +
    `${later.dropped} dropped, ${later.plis} PLIs, ${later.nacks} NACKs, ${later.lost} video and ${later.audioLost} audio packets lost`);
});

test('a viewer hangs up with DELETE; the session sees one fewer', { timeout: T }, async () => {
  const { page, where } = watching.pop();
  const status = await page.evaluate(async url => {
    const me = await (await fetch('/api/me')).json();
    return (await fetch(url, { method: 'DELETE', headers: { 'X-CSRF-Token': me.csrf_token } })).status;
  }, where);
  expect(status === 200, `DELETE ${status}`);
  await until(trainer, async ([id, n]) => {
    const info = await (await fetch(`/api/broadcasts/${id}`)).json();
    return { ok: info.media.watching === n, media: info.media };
  }, [session, viewers.length - 1], 15000, 'one fewer watching');
});
