// WHIP and WHEP from a page, as any WebRTC client speaks them, for the broadcast tests: run
// inside a signed-in page of Ferry with page.evaluate. `window.pc` is the peer connection.
import { expect } from './lib.mjs';

/** In the page: schedules a training session (`body` as POST /api/broadcasts takes it); its id. */
export const schedule = async (body) => {
  const me = await (await fetch('/api/me')).json();
  const r = await fetch('/api/broadcasts', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
    body: JSON.stringify(body),
  });
  return (await r.json()).id;
};

/**
 * In the page: sends `window.pc`'s offer (all candidates gathered) to a WHIP/WHEP endpoint,
 * applies the answer, waits until connected; the resource's Location.
 */
export const negotiate = async (url) => {
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

/**
 * In the page: the trainer's camera (960×540) and microphone, three simulcast layers. With
 * `busy`, the picture is noise that changes every frame instead of the fake camera's simple
 * pattern, so each layer's encoder spends its whole bitrate as on a real lecture with slides
 * and a moving speaker (the fake camera's layers come out far below their caps).
 */
export const publishSetup = async (busy = false) => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 960, height: 540 } });
  let video = stream.getVideoTracks()[0];
  if (busy) {
    const canvas = Object.assign(document.createElement('canvas'), { width: 960, height: 540 });
    const g = canvas.getContext('2d');
    const frames = [];
    for (let f = 0; f < 6; f++) {
      const img = g.createImageData(960, 540);
      const words = new Uint32Array(img.data.buffer);
      for (let i = 0; i < words.length; i++) words[i] = (Math.random() * 0xffffff) | 0xff000000;
      frames.push(img);
    }
    let n = 0;
    setInterval(() => g.putImageData(frames[n++ % frames.length], 0, 0), 33);
    video = canvas.captureStream(30).getVideoTracks()[0];
  }
  const pc = window.pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
  pc.addTransceiver(video, {
    direction: 'sendonly',
    sendEncodings: [
      { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150000 },
      { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500000 },
      { rid: 'h', maxBitrate: 1500000 },
    ],
  });
  // The stage, as the app's trainer page receives it, played (muted: Chromium then decodes the
  // audio but reports no energy for it) so its audio is decoded.
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  // (Inline: page.evaluate sends this function's source alone.)
  pc.ontrack = e => {
    const el = document.createElement(e.track.kind);
    el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
    document.body.append(el);
  };
};

/**
 * In a page before its scripts run: every RTCPeerConnection the app makes is kept in
 * `window.pcs`, so a test reads its figures.
 */
export const keepConnections = () => {
  const Made = window.RTCPeerConnection;
  window.pcs = [];
  window.RTCPeerConnection = class extends Made {
    constructor(...args) { super(...args); window.pcs.push(this); }
  };
};

/**
 * In the page: what arrives on a pair of receiving sections (audio at `first`, video after it:
 * 0 for the broadcast on the app's viewer connection, 2 for the stage) of its open connection
 * with four sections: audio packets and energy, video frames decoded and their width.
 */
export const inboundAt = async (first) => {
  const pc = [window.pc, ...(window.pcs || [])]
    .find(p => p && p.signalingState !== 'closed' && p.getTransceivers().length === 4);
  if (!pc) return null;
  const all = pc.getTransceivers();
  const [a, v] = [all[first], all[first + 1]];
  const s = [...(await pc.getStats()).values()];
  const ia = s.find(x => x.type === 'inbound-rtp' && x.mid === a.mid) || {};
  const iv = s.find(x => x.type === 'inbound-rtp' && x.mid === v.mid) || {};
  return { at: Date.now(), audio: ia.packetsReceived || 0, energy: ia.totalAudioEnergy || 0,
    samples: ia.totalSamplesReceived || 0, frames: iv.framesDecoded || 0, width: iv.frameWidth || 0 };
};

/** In the page: a viewer's receive-only connection that plays what arrives. */
export const watchSetup = (config) => {
  const pc = window.pc = new RTCPeerConnection(config || {});
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = e => {
    const el = document.createElement(e.track.kind);
    el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
    document.body.append(el);
  };
};

/** In the page: the viewer's inbound video and audio figures now. */
export const inbound = async () => {
  const s = [...(await window.pc.getStats()).values()];
  const v = s.find(x => x.type === 'inbound-rtp' && x.kind === 'video') || {};
  const a = s.find(x => x.type === 'inbound-rtp' && x.kind === 'audio') || {};
  (window.widths ||= []).push(v.frameWidth || 0);
  return { at: Date.now(), frames: v.framesDecoded || 0, width: v.frameWidth || 0, dropped: v.framesDropped || 0,
    plis: v.pliCount || 0, nacks: v.nackCount || 0, lost: v.packetsLost || 0, audio: a.packetsReceived || 0,
    audioLost: a.packetsLost || 0, concealed: a.concealedSamples || 0, samples: a.totalSamplesReceived || 0,
    framesIn: v.framesReceived || 0, freezes: v.freezeCount || 0, frozenS: v.totalFreezesDuration || 0,
    resent: v.retransmittedPacketsReceived || 0, videoPackets: v.packetsReceived || 0, keyframes: v.keyFramesDecoded || 0 };
};

/**
 * Polls an async check in the page until it holds (page.waitForFunction does not wait for an
 * async predicate's promise); fails with the last value when it never does.
 */
export async function until(page, check, arg, timeout, what) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await page.evaluate(check, arg);
    if (last && last.ok) return last;
    if (Date.now() > end) expect(false, `${what}: ${JSON.stringify(last)}`);
    await new Promise(r => setTimeout(r, 500));
  }
}

/** The viewer's figures once they satisfy `ok(figures)` (checked here, not in the page). */
export async function untilInbound(page, ok, timeout, what) {
  const end = Date.now() + timeout;
  for (;;) {
    const r = await page.evaluate(inbound);
    if (ok(r)) return r;
    if (Date.now() > end) expect(false, `${what}: ${JSON.stringify(r)}`);
    await new Promise(done => setTimeout(done, 500));
  }
}
