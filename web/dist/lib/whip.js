// WHIP and WHEP (RFC 9725) from the browser, for training broadcasts: the trainer publishes a
// camera and microphone in three simulcast layers, viewers receive audio and video. Ferry is
// ICE-lite and takes no trickled candidates: the offer goes once ICE gathering is complete, the
// answer comes back in the 201 with the resource's Location; DELETE on it hangs up.

import { problemOf, signedOut } from './api.js';
import { session } from './session.js';

/** The trainer's camera and microphone. */
export const CAMERA = { audio: true, video: { width: 960, height: 540 } };

/** The simulcast layers, lowest first: about 240, 480 and 960 pixels wide at 540p. */
/** @type {RTCRtpEncodingParameters[]} */
export const SIMULCAST = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'h', maxBitrate: 1500000 },
];

/** The longest wait for ICE gathering; the offer then goes with the candidates found. */
export const GATHERING_MS = 10000;

/** @returns {Record<string, string>} */
function csrf() {
  return session.me && session.me.csrf_token ? { 'X-CSRF-Token': session.me.csrf_token } : {};
}

/**
 * Resolves once the connection has gathered its ICE candidates (or after `timeoutMs`, or when
 * it is closed meanwhile).
 * @param {RTCPeerConnection} pc
 * @param {number} [timeoutMs]
 * @returns {Promise<void>}
 */
export function iceGathered(pc, timeoutMs = GATHERING_MS) {
  return new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') { resolve(); return; }
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('signalingstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete' || pc.signalingState === 'closed') done(); };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('signalingstatechange', check);
  });
}

/**
 * Hangs up a WHIP or WHEP resource. `keepalive` lets the request outlive a page being closed.
 * Never throws: a resource already gone (the server ended it) is hung up too.
 * @param {string} resource the Location of the 201
 * @param {{ keepalive?: boolean }} [o]
 */
export async function hangUp(resource, o = {}) {
  try {
    const r = await fetch(resource, { method: 'DELETE', headers: csrf(), credentials: 'same-origin', keepalive: !!o.keepalive });
    return r.ok;
  } catch (_) {
    return false;
  }
}

/**
 * Offers `pc`'s media to a WHIP or WHEP endpoint: creates the offer, waits for ICE gathering,
 * POSTs the SDP, applies the answer. Returns the resource's address (for hanging up). A
 * refusal throws the server's problem as an ApiError (403, 409 presenter_connected or
 * broadcast_over, 400 invalid_sdp…).
 * @param {RTCPeerConnection} pc
 * @param {string} url
 * @returns {Promise<string>}
 */
export async function negotiate(pc, url) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  const offer = pc.localDescription;
  if (!offer || pc.signalingState === 'closed') throw new Error('the connection was closed');
  const resp = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Accept: 'application/sdp', ...csrf() },
    credentials: 'same-origin',
    body: offer.sdp,
  });
  if (resp.status !== 201) {
    if (resp.status === 401) signedOut();
    throw await problemOf(resp);
  }
  const where = resp.headers.get('Location');
  const answer = await resp.text();
  if (!where) throw new Error('the server gave no Location to hang up with');
  const resource = new URL(where, new URL(url, location.href)).pathname;
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  } catch (e) {
    // Closed meanwhile (the page was left), or an answer the browser refuses: do not leave the
    // server holding a connection nobody will use.
    hangUp(resource);
    throw e;
  }
  return resource;
}

/**
 * The ICE servers and policy of GET /api/turn, for a connection: a clinic whose firewall lets
 * no UDP out reaches the SFU through the TURN relay (over TCP or TLS). Without TURN settings,
 * or when the ask fails, the connection goes direct.
 * @param {any} turn the answer of GET /api/turn, or null
 * @returns {RTCConfiguration}
 */
export function iceConfig(turn) {
  if (!turn || !Array.isArray(turn.iceServers)) return {};
  /** @type {RTCConfiguration} */
  const c = { iceServers: turn.iceServers };
  if (turn.iceTransportPolicy === 'relay') c.iceTransportPolicy = 'relay';
  return c;
}

/** The camera of the person on stage: one layer, small enough for a clinic's uplink. */
export const STAGE_CAMERA = { audio: true, video: { width: 640, height: 360 } };

/**
 * Adds the stage's pair of receive-only sections (after the connection's own): whoever the
 * trainer brings on stage arrives on them. `onTrack` gets each track arriving, and whether it
 * is the stage's.
 * @param {RTCPeerConnection} pc
 * @param {(track: MediaStreamTrack, stage: boolean) => void} onTrack
 */
function withStage(pc, onTrack) {
  const stage = [pc.addTransceiver('audio', { direction: 'recvonly' }), pc.addTransceiver('video', { direction: 'recvonly' })];
  pc.addEventListener('track', ev => onTrack(ev.track, stage.includes(ev.transceiver)));
}

/**
 * Sends a stream's microphone and camera, send only (the camera in `layers`, if given).
 * @param {RTCPeerConnection} pc
 * @param {MediaStream} stream
 * @param {RTCRtpEncodingParameters[] | null} layers
 */
function sendStream(pc, stream, layers) {
  const [audio] = stream.getAudioTracks();
  const [video] = stream.getVideoTracks();
  if (audio) pc.addTransceiver(audio, { direction: 'sendonly', streams: [stream] });
  if (video) {
    pc.addTransceiver(video, { direction: 'sendonly', streams: [stream], ...(layers ? { sendEncodings: layers.map(e => ({ ...e })) } : {}) });
  }
}

/**
 * The trainer's connection: the microphone and the camera in three simulcast layers, sent; the
 * stage, received (`onStage` gets its tracks).
 * @param {MediaStream} stream
 * @param {RTCConfiguration} [ice]
 * @param {(track: MediaStreamTrack) => void} [onStage]
 */
export function presenterConnection(stream, ice = {}, onStage = () => {}) {
  const pc = new RTCPeerConnection(ice);
  sendStream(pc, stream, SIMULCAST);
  withStage(pc, (track, stage) => { if (stage) onStage(track); });
  return pc;
}

/**
 * The connection of the person on stage: their microphone and camera, one layer, send only.
 * @param {MediaStream} stream
 * @param {RTCConfiguration} [ice]
 */
export function stageConnection(stream, ice = {}) {
  const pc = new RTCPeerConnection(ice);
  sendStream(pc, stream, null);
  return pc;
}

/**
 * A viewer's connection: the trainer's audio and video, and the stage's, receive only;
 * `onTrack` gets each track arriving, and whether it is the stage's.
 * @param {(track: MediaStreamTrack, stage: boolean) => void} onTrack
 * @param {RTCConfiguration} [ice]
 */
export function viewerConnection(onTrack, ice = {}) {
  const pc = new RTCPeerConnection(ice);
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  withStage(pc, onTrack);
  return pc;
}

/**
 * Ends a connection here: its local tracks stopped, the connection closed.
 * @param {RTCPeerConnection | null} pc
 * @param {MediaStream | null} [stream]
 */
export function closeConnection(pc, stream = null) {
  if (stream) for (const tr of stream.getTracks()) tr.stop();
  if (pc && pc.signalingState !== 'closed') {
    for (const s of pc.getSenders()) if (s.track) s.track.stop();
    pc.close();
  }
}
