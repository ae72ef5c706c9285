// One training session (#/broadcasts/{id}): its facts and who is connected to its media (asked
// again every 15 s while the page is open). Its trainer goes live from here — camera and
// microphone to Ferry over WHIP in three simulcast layers, with a muted preview — shares the
// screen (slides) in the camera's place and back, and ends the session; everyone else watches
// over WHEP and leaves. The session's PDF materials are listed (broadcast-materials.js). Leaving the page hangs up. Beside the
// picture, the session's questions and raised hands (broadcast-questions.js), fetched again
// when the socket says they changed; under it, whoever the trainer brought on stage
// (broadcast-stage.js).

import { api } from '../lib/api.js';
import {
  REFRESH_MS, audienceText, broadcastPath, calendarUrl, connectionKey, endPath, isBroadcastEvent, isOver, minutesText, whepUrl, whipUrl,
} from '../lib/broadcast.js';
import { h, onPageLeave, pinPage, raw, startPage } from '../lib/dom.js';
import { errorBox, reasonOf } from '../lib/errors.js';
import { dateTime, number } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { loadPeople, loadSites, siteName, who } from '../lib/people.js';
import { attendanceHash, broadcastsHash, libraryHash } from '../lib/router.js';
import { me } from '../lib/session.js';
import { listen } from '../lib/socket.js';
import { CAMERA, closeConnection, hangUp, iceConfig, negotiate, presenterConnection, viewerConnection } from '../lib/whip.js';
import { facts } from './consult-common.js';
import { liveBadge, stateTag } from './broadcast-common.js';
import { healthPanel } from './broadcast-health.js';
import { materialsPanel } from './broadcast-materials.js';
import { questionsPanel } from './broadcast-questions.js';
import { stagePanel } from './broadcast-stage.js';

/** @typedef {import('../lib/broadcast.js').Broadcast} Broadcast */

/** @param {string} id */
export async function broadcastPage(id) {
  const show = startPage();
  const here = location.hash;
  let left = false;
  // Still the page shown: not left, and no other page started meanwhile.
  const stillHere = () => !left && location.hash === here;

  /** @type {Broadcast} */
  let b;
  try {
    b = await api('GET', broadcastPath(id));
    await Promise.all([loadSites(), loadPeople([b.trainer])]);
  } catch (e) {
    show(h('h1', {}, t('broadcast.heading')), errorBox(e), h('p', {}, h('a', { href: broadcastsHash() }, t('broadcast.all'))));
    return;
  }
  if (!stillHere()) return;

  const role = b.trainer === me().user.id ? 'presenter' : 'viewer';
  // idle: nothing started; starting: camera or negotiation under way; on: connected to Ferry.
  /** @type {'idle' | 'starting' | 'on'} */
  let phase = 'idle';
  /** @type {{ pc: RTCPeerConnection | null, stream: MediaStream | null, resource: string | null }} */
  let live = { pc: null, stream: null, resource: null };
  // Each start counts; a start overtaken by a stop (or another start) gives up what it got.
  let attempt = 0, loadSeq = 0;
  let infoKey = '', mediaKey = '';

  const titleEl = h('h1', { id: 'broadcast-title' });
  const info = h('div', { id: 'broadcast', class: 'box broadcast-box' });
  const refreshErr = h('div');
  const mediaFacts = h('dl', { class: 'facts', id: 'media-status' });
  const waiting = h('p', { class: 'notice broadcast-notice', id: 'waiting', hidden: true }, t('broadcast.waiting'));
  const over = h('p', { class: 'notice broadcast-notice', id: 'broadcast-over', hidden: true });
  const conn = h('p', { id: 'connection-state', class: 'pill connection-state', role: 'status', 'data-state': 'idle' });
  const mediaErr = h('div');
  const soundNote = h('p', { class: 'muted', id: 'sound-note', hidden: true }, t('broadcast.sound_blocked'));
  const video = h('video', {
    id: role === 'presenter' ? 'preview' : 'stage', class: `broadcast-video${role === 'presenter' ? ' broadcast-preview' : ''}`,
    autoplay: true, playsinline: true, hidden: true,
    'aria-label': role === 'presenter' ? t('broadcast.preview_label') : t('broadcast.stage_label'),
  });
  // Never play one's own microphone back.
  if (role === 'presenter') video.muted = true;

  const questions = questionsPanel(id, { trainer: role === 'presenter', over: () => isOver(b.state), stillHere });
  // The trainer hears the stage once live (going live was the gesture browsers want for sound).
  // Who watches by site and how their links are: the session's own site (its trainer, its
  // training office), while it is live.
  const health = healthPanel(id, { stillHere });
  const showHealth = () => health.show(me().site.id === b.site && b.state === 'live');
  const materials = materialsPanel(id, { trainer: role === 'presenter', over: () => isOver(b.state), stillHere });
  const stage = stagePanel(id, { trainer: role === 'presenter', stillHere, soundOn: () => (role === 'presenter' ? !!live.pc : !video.muted) });

  const startBtn = h('button', {
    id: role === 'presenter' ? 'go-live' : 'watch', class: 'primary big', type: 'button',
    onclick: () => { if (role === 'presenter') goLive(); else watch(); },
  }, role === 'presenter' ? t('broadcast.go_live') : t('broadcast.watch'));
  // The trainer hangs up (and may go live again: a dropped link, another room) or ends the
  // session for everyone; a viewer leaves.
  const stopBtn = h('button', {
    id: role === 'presenter' ? 'stop-presenting' : 'leave', class: 'big', type: 'button', hidden: true,
    onclick: () => stop('ended'),
  }, role === 'presenter' ? t('broadcast.stop_presenting') : t('broadcast.leave'));
  const endBtn = h('button', {
    id: 'end-broadcast', class: 'big danger', type: 'button', hidden: true,
    onclick: () => endSession(),
  }, t('broadcast.end'));
  // The screen (slides) in the camera's place, and back.
  /** @type {MediaStream | null} */
  let screen = null;
  const screenBtn = h('button', {
    id: 'share-screen', class: 'big', type: 'button', hidden: true, 'aria-pressed': 'false',
    onclick: () => { if (screen) showCamera(); else shareScreen(); },
  }, t('broadcast.share_screen'));
  const soundBtn = h('button', {
    id: 'sound', class: 'big', type: 'button', hidden: true,
    onclick: () => {
      video.muted = !video.muted;
      if (!video.muted) video.play().catch(() => {});
      soundNote.hidden = true;
      drawSound();
      stage.sound();
    },
  });

  /** @param {string} state see connectionKey */
  function setConn(state) {
    conn.dataset.state = state;
    conn.textContent = t(connectionKey(role, state));
  }
  function drawSound() {
    soundBtn.textContent = video.muted ? t('broadcast.unmute') : t('broadcast.mute');
  }
  function drawButtons() {
    startBtn.hidden = phase !== 'idle';
    startBtn.disabled = isOver(b.state);
    stopBtn.hidden = phase === 'idle';
    endBtn.hidden = role !== 'presenter' || isOver(b.state);
    screenBtn.hidden = role !== 'presenter' || phase !== 'on';
    screenBtn.textContent = screen ? t('broadcast.show_camera') : t('broadcast.share_screen');
    screenBtn.setAttribute('aria-pressed', String(!!screen));
    soundBtn.hidden = role !== 'viewer' || phase !== 'on';
  }

  function drawInfo() {
    const key = JSON.stringify([b.title, b.state, b.soon, b.starts_at, b.ends_at, b.minutes, b.description, b.audience]);
    if (key === infoKey) return;
    infoKey = key;
    titleEl.replaceChildren(...[b.state === 'live' ? liveBadge() : null, b.state === 'live' ? ' ' : null, raw(b.title)].filter(x => x !== null));
    info.dataset.state = b.state;
    info.replaceChildren(facts([
      [t('broadcast.fact.state'), [stateTag(b.state), b.soon && b.state === 'scheduled' ? [' ', h('span', { class: 'soon-tag' }, t('broadcasts.soon'))] : null]],
      [t('broadcast.fact.trainer'), who(b.trainer)],
      [t('broadcast.fact.site'), raw(siteName(b.site))],
      [t('broadcast.fact.starts'), h('time', { datetime: b.starts_at }, dateTime(b.starts_at))],
      [t('broadcast.fact.length'), [minutesText(b.minutes), ' ', h('span', { class: 'muted' }, t('broadcast.until', { at: dateTime(b.ends_at) }))]],
      [t('broadcast.fact.audience'), audienceText(b.audience, siteName)],
      [t('broadcast.fact.description'), b.description ? raw(b.description, 'div', { class: 'summary' }) : null],
    ]));
  }

  function drawMedia() {
    const m = b.media || { presenter: false, viewers: 0, watching: 0 };
    const done = isOver(b.state);
    waiting.hidden = role !== 'viewer' || m.presenter || done;
    over.hidden = !done;
    over.textContent = b.state === 'cancelled' ? t('broadcast.cancelled_notice') : t('broadcast.over');
    const key = JSON.stringify(m);
    if (key === mediaKey) return;
    mediaKey = key;
    mediaFacts.dataset.presenter = String(!!m.presenter);
    mediaFacts.replaceChildren(...facts([
      [t('broadcast.media.trainer'), m.presenter ? t('broadcast.media.connected') : t('broadcast.media.not_connected')],
      [t('broadcast.media.viewers'), number(m.viewers || 0)],
      [t('broadcast.media.watching'), number(m.watching || 0)],
    ]).childNodes);
  }

  async function refresh() {
    if (!stillHere()) return;
    questions.load();
    const mine = ++loadSeq;
    try {
      const next = await api('GET', broadcastPath(id));
      if (mine !== loadSeq || !stillHere()) return;
      refreshErr.replaceChildren();
      b = next;
      drawInfo();
      drawMedia();
      drawButtons();
      showHealth();
      stage.update(b.media || {});
      // Ended by its trainer: this page's connection is closed by the server; let go of it here.
      if (isOver(b.state) && (live.pc || live.resource)) stop('ended');
    } catch (e) {
      if (mine === loadSeq && stillHere()) refreshErr.replaceChildren(errorBox(e));
    }
  }

  /**
   * Hangs up and lets go of the camera and the connection; `shown` is what the status says.
   * @param {string} shown
   */
  function stop(shown) {
    attempt++;
    if (screen) for (const tr of screen.getTracks()) tr.stop();
    screen = null;
    const { pc, stream, resource } = live;
    live = { pc: null, stream: null, resource: null };
    if (resource) hangUp(resource, { keepalive: true });
    closeConnection(pc, stream);
    video.srcObject = null;
    video.hidden = true;
    soundNote.hidden = true;
    phase = 'idle';
    pinPage(false);
    if (left) return;
    setConn(shown);
    drawButtons();
    refresh();
  }

  /**
   * Follows a connection's state in words; a connection that failed is hung up (Ferry takes
   * no ICE restart: starting again makes a new one).
   * @param {RTCPeerConnection} pc
   * @param {number} mine
   */
  function follow(pc, mine) {
    pc.addEventListener('connectionstatechange', () => {
      if (mine !== attempt) return;
      if (pc.connectionState === 'failed') stop('failed');
      else setConn(pc.connectionState);
    });
  }

  /**
   * Offers the connection to Ferry; once answered, the page shows it on.
   * @param {RTCPeerConnection} pc
   * @param {string} url
   * @param {number} mine
   */
  async function connect(pc, url, mine) {
    try {
      const resource = await negotiate(pc, url);
      if (mine !== attempt || !stillHere()) { hangUp(resource); return false; }
      live.resource = resource;
      phase = 'on';
      setConn(pc.connectionState);
      drawButtons();
      refresh();
      return true;
    } catch (e) {
      if (mine !== attempt || !stillHere()) return false;
      stop('idle');
      mediaErr.replaceChildren(errorBox(e));
      return false;
    }
  }

  async function goLive() {
    const mine = ++attempt;
    phase = 'starting';
    mediaErr.replaceChildren();
    setConn('camera');
    drawButtons();
    /** @type {MediaStream} */
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(CAMERA);
    } catch (e) {
      if (mine !== attempt || !stillHere()) return;
      phase = 'idle';
      setConn('idle');
      drawButtons();
      mediaErr.replaceChildren(errorBox(t('broadcast.no_camera', { reason: reasonOf(e) })));
      return;
    }
    if (mine !== attempt || !stillHere()) { closeConnection(null, stream); return; }
    const ice = iceConfig(await api('GET', '/api/turn').catch(() => null));
    if (mine !== attempt || !stillHere()) { closeConnection(null, stream); return; }
    const pc = presenterConnection(stream, ice, track => stage.track(track));
    live = { pc, stream, resource: null };
    pinPage(true);
    video.srcObject = stream;
    video.hidden = false;
    video.play().catch(() => {});
    follow(pc, mine);
    setConn('connecting');
    await connect(pc, whipUrl(id), mine);
  }

  /** The video sender of the trainer's connection (camera or screen). */
  function videoSender() {
    const tr = live.pc ? live.pc.getTransceivers().find(x => x.sender.track && x.sender.track.kind === 'video') : null;
    return tr ? tr.sender : null;
  }

  async function shareScreen() {
    mediaErr.replaceChildren();
    const sender = videoSender();
    if (!sender) return;
    /** @type {MediaStream} */
    let s;
    try {
      s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    } catch (e) {
      // Cancelled in the browser's picker, or not allowed: the camera goes on.
      if (e && /** @type {any} */ (e).name !== 'NotAllowedError') mediaErr.replaceChildren(errorBox(t('broadcast.no_screen', { reason: reasonOf(e) })));
      return;
    }
    const [track] = s.getVideoTracks();
    if (!track || !live.pc) { for (const x of s.getTracks()) x.stop(); return; }
    // Text on slides stays sharp: the encoder keeps resolution and lowers the frame rate.
    track.contentHint = 'detail';
    await sender.replaceTrack(track);
    screen = s;
    // The browser's own "stop sharing" brings the camera back.
    track.addEventListener('ended', () => { if (screen === s) showCamera(); });
    video.srcObject = s;
    drawButtons();
  }

  async function showCamera() {
    const s = screen;
    screen = null;
    const camera = live.stream && live.stream.getVideoTracks()[0];
    const sender = videoSender();
    if (sender && camera) await sender.replaceTrack(camera);
    if (s) for (const x of s.getTracks()) x.stop();
    if (live.stream) video.srcObject = live.stream;
    drawButtons();
  }

  /** The trainer ends the session for everyone, after saying so. */
  async function endSession() {
    if (!window.confirm(t('broadcast.end_confirm'))) return;
    mediaErr.replaceChildren();
    try {
      b = await api('POST', endPath(id));
    } catch (e) {
      mediaErr.replaceChildren(errorBox(e));
      return;
    }
    stop('ended');
  }

  function playWithSound() {
    video.muted = false;
    drawSound();
    video.play().catch(e => {
      // Sound before the browser counts a gesture is refused: play muted, with a button for it.
      if (!e || e.name !== 'NotAllowedError' || !live.pc) return;
      video.muted = true;
      video.play().catch(() => {});
      soundNote.hidden = false;
      drawSound();
      stage.sound();
    });
    stage.sound();
  }

  async function watch() {
    const mine = ++attempt;
    phase = 'starting';
    mediaErr.replaceChildren();
    setConn('connecting');
    drawButtons();
    const stream = new MediaStream();
    const ice = iceConfig(await api('GET', '/api/turn').catch(() => null));
    if (mine !== attempt || !stillHere()) return;
    const pc = viewerConnection((track, onStage) => {
      if (onStage) { stage.track(track); return; }
      stream.addTrack(track);
      if (video.srcObject !== stream) video.srcObject = stream;
    }, ice);
    live = { pc, stream: null, resource: null };
    pinPage(true);
    video.hidden = false;
    follow(pc, mine);
    if (await connect(pc, whepUrl(id), mine)) {
      if (video.srcObject !== stream) video.srcObject = stream;
      playWithSound();
    }
  }

  // The page closed or reloaded: the server is told at once, not when the connection times out.
  const onHide = () => { if (live.resource) hangUp(live.resource, { keepalive: true }); };
  window.addEventListener('pagehide', onHide);
  const timer = setInterval(refresh, REFRESH_MS);
  // Questions, votes, answers and hands of this session: pushed to its trainer, the people
  // watching and the asker; after a reconnect, whatever was missed.
  listen('broadcast', m => {
    if (isBroadcastEvent(m, 'questions', id)) questions.load();
    if (isBroadcastEvent(m, 'stage', id) || isBroadcastEvent(m, 'state', id)) refresh();
    if (isBroadcastEvent(m, 'materials', id)) materials.load();
  });
  listen('open', () => { questions.load(); materials.load(); });
  onPageLeave(() => {
    left = true;
    clearInterval(timer);
    window.removeEventListener('pagehide', onHide);
    health.show(false);
    stage.close();
    if (live.pc || live.resource || live.stream) stop('ended');
  });

  drawInfo();
  drawMedia();
  drawButtons();
  drawSound();
  setConn('idle');
  const ownSite = me().site.id === b.site;
  show(titleEl, refreshErr, info,
    h('p', { class: 'broadcast-links' },
      h('a', { href: calendarUrl(id), download: 'training-session.ics', id: 'calendar-link' }, t('broadcasts.calendar')),
      ownSite ? [' · ', h('a', { href: attendanceHash(id), id: 'attendance-link' }, t('broadcast.attendance_link'))] : null,
      ' · ', h('a', { href: broadcastsHash() }, t('broadcast.all')),
      ' · ', h('a', { href: libraryHash(), id: 'library-link' }, t('library.title'))),
    // The picture and the questions side by side on a wide screen, one under the other else.
    h('div', { class: 'broadcast-layout' },
      h('section', { class: 'box broadcast-media', id: 'broadcast-media', 'aria-labelledby': 'broadcast-media-heading', 'data-role': role },
        h('h2', { id: 'broadcast-media-heading' }, role === 'presenter' ? t('broadcast.media_title_presenter') : t('broadcast.media_title_viewer')),
        mediaFacts, waiting, over,
        role === 'presenter' ? h('p', { class: 'muted', id: 'presenter-help' }, t('broadcast.presenter_help')) : null,
        // The controls above the picture, so they stay in sight on a short screen.
        h('div', { class: 'actions-bar' }, startBtn, screenBtn, soundBtn, stopBtn, endBtn),
        conn, soundNote, mediaErr, video, stage.el, health.el),
      h('div', { class: 'broadcast-side' }, questions.el, materials.el)));
  questions.load();
  materials.load();
  stage.update(b.media || {});
  showHealth();
}
