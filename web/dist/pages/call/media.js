// Local media for the call: camera and microphone preview, mute, camera off, screen sharing
// and audio only, and putting the current video source on every connection.

import { reasonOf } from '../../lib/errors.js';
import { t } from '../../lib/i18n.js';

/** @param {RTCPeerConnection} pc */
const videoTransceivers = pc => pc.getTransceivers()
  .filter(tr => tr.receiver.track.kind === 'video' && tr.currentDirection !== 'stopped');

/**
 * @param {{
 *   call: { audioOnly: boolean },
 *   view: import('./view.js').View,
 *   connections: () => RTCPeerConnection[],
 *   ended: () => boolean,
 *   onReady: () => void,
 * }} ctx
 */
export function createMedia(ctx) {
  const { call, view } = ctx;
  let local = new MediaStream();
  /** @type {MediaStreamTrack | null} */ let mic = null;
  /** @type {MediaStreamTrack | null} */ let cam = null;
  /** @type {MediaStreamTrack | null} */ let screen = null;

  const currentVideo = () => (call.audioOnly ? null : screen || cam);

  // Puts the current video source (camera, screen, or none in audio-only) on a connection's
  // video senders. Audio only also stops receiving: "inactive" renegotiates, so the other side
  // stops sending video too.
  /** @param {RTCPeerConnection} pc */
  async function applyVideoTo(pc) {
    const track = currentVideo();
    const dir = call.audioOnly ? 'inactive' : track ? 'sendrecv' : 'recvonly';
    for (const tr of videoTransceivers(pc)) {
      try {
        if (tr.sender.track !== track) await tr.sender.replaceTrack(track);
        if (tr.direction !== dir) tr.direction = dir;
      } catch (e) { console.warn('video sender', e); }
    }
  }
  async function applyVideo() {
    await Promise.all(ctx.connections().map(applyVideoTo));
  }

  async function stopScreen() {
    if (!screen) return;
    screen.stop();
    screen = null;
    if (!ctx.ended()) view.localVideo.srcObject = local;
    view.press(view.screenBtn, false, t('call.share_screen'));
    await applyVideo(); // back to the camera
  }

  /** @param {boolean} on */
  async function setAudioOnly(on) {
    call.audioOnly = on;
    view.press(view.audioOnlyBtn, on, on ? t('call.video_back') : t('call.audio_only'));
    if (!on) view.stepDownNotice.hidden = true;
    view.remotes.classList.toggle('audio-only', on);
    await applyVideo();
  }

  return {
    get local() { return local; },
    get sharing() { return !!screen; },

    async preview() {
      try {
        local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      } catch (e) {
        try {
          local = await navigator.mediaDevices.getUserMedia({ audio: true });
          view.note(t('call.no_camera', { reason: reasonOf(e) }));
        } catch (e2) {
          view.note(t('call.no_media', { reason: reasonOf(e2) }));
        }
      }
      if (ctx.ended()) { local.getTracks().forEach(tr => tr.stop()); return; }
      mic = local.getAudioTracks()[0] || null;
      cam = local.getVideoTracks()[0] || null;
      view.localVideo.srcObject = local;
      view.muteBtn.disabled = !mic;
      view.cameraBtn.disabled = !cam;
      view.screenBtn.disabled = !(navigator.mediaDevices && 'getDisplayMedia' in navigator.mediaDevices);
      view.audioOnlyBtn.disabled = false;
      ctx.onReady();
    },

    /** Adds our tracks (or receive-only slots) to a new connection. @param {RTCPeerConnection} pc */
    attach(pc) {
      if (mic) pc.addTrack(mic, local); else pc.addTransceiver('audio', { direction: 'recvonly' });
      const video = screen || cam;
      if (video) pc.addTrack(video, local); else pc.addTransceiver('video', { direction: 'recvonly' });
      if (call.audioOnly) applyVideoTo(pc);
    },

    toggleMute() {
      if (!mic) return;
      mic.enabled = !mic.enabled;
      view.press(view.muteBtn, !mic.enabled, mic.enabled ? t('call.mute') : t('call.unmute'));
    },

    toggleCamera() {
      if (!cam) return;
      cam.enabled = !cam.enabled; // the others see black frames; the connection stays as it is
      view.press(view.cameraBtn, !cam.enabled, cam.enabled ? t('call.camera_off') : t('call.camera_on'));
    },

    async toggleScreen() {
      if (screen) return stopScreen();
      let s;
      try { s = await navigator.mediaDevices.getDisplayMedia({ video: true }); }
      catch (e) { if (!(e instanceof DOMException && e.name === 'NotAllowedError')) view.note(t('call.no_screen', { reason: reasonOf(e) })); return; }
      if (ctx.ended()) { s.getTracks().forEach(tr => tr.stop()); return; }
      screen = s.getVideoTracks()[0];
      screen.addEventListener('ended', () => stopScreen()); // the browser's own "stop sharing" button
      view.localVideo.srcObject = new MediaStream([screen]);
      view.press(view.screenBtn, true, t('call.stop_sharing'));
      // Sharing is asking to send video: it ends audio-only.
      if (call.audioOnly) await setAudioOnly(false); else await applyVideo();
    },

    stopScreen,
    setAudioOnly,

    /** Stops every local track (the call is over). */
    stopAll() {
      for (const tr of [...local.getTracks(), screen]) if (tr) tr.stop();
      view.localVideo.srcObject = null;
    },
  };
}

/** @typedef {ReturnType<typeof createMedia>} Media */
