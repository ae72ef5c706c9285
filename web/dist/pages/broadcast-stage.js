// The stage of a training session, on the session's page: whoever the trainer brought on stage,
// seen and heard by everyone (the second pair of tracks of each connection, see lib/whip.js).
// The person brought on stage is asked first: they go on with camera and microphone over WHIP
// (…/stage/whip) or decline; they step down when they like, and the trainer brings them back.
// The page tells the panel what the server says (`update`, from GET /api/broadcasts/{id}) and
// hands it the stage's tracks (`track`).

import { api } from '../lib/api.js';
import { stagePath, stageWhipUrl } from '../lib/broadcast.js';
import { h } from '../lib/dom.js';
import { errorBox, reasonOf } from '../lib/errors.js';
import { t } from '../lib/i18n.js';
import { loadPeople, who } from '../lib/people.js';
import { me } from '../lib/session.js';
import { STAGE_CAMERA, closeConnection, hangUp, iceConfig, negotiate, stageConnection } from '../lib/whip.js';

/**
 * @param {string} id the session
 * @param {{ trainer: boolean, stillHere: () => boolean, soundOn: () => boolean }} o `trainer`:
 *   the person is the session's trainer; `soundOn`: the page plays sound now
 */
export function stagePanel(id, o) {
  const myId = me().user.id;
  /** @type {string | null} */
  let onStage = null;
  // Publishing: this person's own stage connection.
  /** @type {{ pc: RTCPeerConnection | null, stream: MediaStream | null, resource: string | null }} */
  let mine = { pc: null, stream: null, resource: null };
  let attempt = 0;
  const remote = new MediaStream();

  const whoEl = h('p', { id: 'stage-who' });
  const state = h('p', { class: 'muted', id: 'stage-state', role: 'status' });
  const err = h('div');
  const video = h('video', { id: 'stage-video', class: 'broadcast-video stage-video', autoplay: true, playsinline: true, 'aria-label': t('stage.video_label') });
  const join = h('button', { id: 'stage-join', class: 'primary', type: 'button', hidden: true, onclick: () => goOn() }, t('stage.join'));
  const decline = h('button', { id: 'stage-decline', type: 'button', hidden: true, onclick: () => end() }, t('stage.decline'));
  const leave = h('button', { id: 'stage-leave', type: 'button', hidden: true, onclick: () => end() }, t('stage.leave'));
  const back = h('button', { id: 'stage-end', type: 'button', hidden: true, onclick: () => end() }, t('stage.end'));
  const el = h('section', { class: 'box on-stage', id: 'on-stage', hidden: true, 'aria-labelledby': 'on-stage-heading' },
    h('h2', { id: 'on-stage-heading' }, t('stage.title')), whoEl,
    h('div', { class: 'actions-bar' }, join, decline, leave, back), state, err, video);

  function publishing() { return !!mine.pc; }

  function draw() {
    const meOn = onStage === myId;
    el.hidden = !onStage;
    el.dataset.user = onStage || '';
    el.dataset.publishing = String(publishing());
    whoEl.replaceChildren(...(meOn ? [t('stage.you')] : onStage ? [who(onStage), ' ', t('stage.is_on')] : []));
    join.hidden = !meOn || publishing();
    decline.hidden = !meOn || publishing();
    leave.hidden = !meOn || !publishing();
    back.hidden = !o.trainer || !onStage;
    // One's own picture from the camera, never one's own voice back from the server.
    const own = meOn && mine.stream;
    const src = own ? mine.stream : remote;
    if (video.srcObject !== src) video.srcObject = src;
    video.muted = meOn || !o.soundOn();
    if (onStage) video.play().catch(() => {});
    if (meOn && !publishing() && !state.textContent) state.textContent = t('stage.invited');
  }

  /** Stops publishing here (the connection, the camera). */
  function stopMine() {
    attempt++;
    const { pc, stream, resource } = mine;
    mine = { pc: null, stream: null, resource: null };
    if (resource) hangUp(resource, { keepalive: true });
    closeConnection(pc, stream);
  }

  async function goOn() {
    const n = ++attempt;
    err.replaceChildren();
    state.textContent = t('stage.camera');
    join.disabled = true;
    try {
      const stream = await navigator.mediaDevices.getUserMedia(STAGE_CAMERA);
      if (n !== attempt || !o.stillHere()) { closeConnection(null, stream); return; }
      const ice = iceConfig(await api('GET', '/api/turn').catch(() => null));
      const pc = stageConnection(stream, ice);
      mine = { pc, stream, resource: null };
      pc.addEventListener('connectionstatechange', () => {
        if (n !== attempt) return;
        state.textContent = t(pc.connectionState === 'connected' ? 'stage.live' : pc.connectionState === 'failed' ? 'stage.failed' : 'stage.connecting');
        el.dataset.connection = pc.connectionState;
        if (pc.connectionState === 'failed') { stopMine(); draw(); }
      });
      state.textContent = t('stage.connecting');
      draw();
      const resource = await negotiate(pc, stageWhipUrl(id));
      if (n !== attempt || !o.stillHere()) { hangUp(resource); return; }
      mine.resource = resource;
    } catch (e) {
      if (n !== attempt) return;
      stopMine();
      state.textContent = '';
      const name = e && /** @type {any} */ (e).name;
      err.replaceChildren(errorBox(name === 'NotAllowedError' || name === 'NotFoundError' ? t('stage.no_camera', { reason: reasonOf(e) }) : e));
    } finally {
      join.disabled = false;
      draw();
    }
  }

  /** Ends the stage: the trainer brings the person back, or they decline or step down. */
  async function end() {
    err.replaceChildren();
    try {
      const r = await api('DELETE', stagePath(id));
      stopMine();
      update({ stage: r.user || null });
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  }

  /**
   * What the server says of the stage now.
   * @param {{ stage?: string | null }} media
   */
  async function update(media) {
    const next = media.stage || null;
    if (next !== myId && publishing()) stopMine();
    if (next !== onStage) state.textContent = '';
    onStage = next;
    if (next) await loadPeople([next]);
    if (!o.stillHere()) return;
    draw();
  }

  return {
    el,
    update,
    /** A track of the stage arriving on the page's connection. @param {MediaStreamTrack} track */
    track(track) {
      for (const old of remote.getTracks().filter(x => x.kind === track.kind)) remote.removeTrack(old);
      remote.addTrack(track);
      draw();
    },
    /** The page's sound went on or off. */
    sound() { draw(); },
    /** The page is left: stop publishing. */
    close() { stopMine(); },
  };
}
