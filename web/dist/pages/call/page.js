// The call page (#/call/{id}): WebRTC between the browsers, Ferry only relays the signalling.
// This module ties the parts together — view (elements), media (local tracks), negotiation
// (connections), quality (statistics) — and follows the room's messages on the socket.

import { api, studiesByUid } from '../../lib/api.js';
import { viewerUrl } from '../../lib/dicom.js';
import { h, mainEl, onPageLeave, raw, startPage } from '../../lib/dom.js';
import { errorBox, reasonOf } from '../../lib/errors.js';
import { label, locale, ohifLanguage, t } from '../../lib/i18n.js';
import { consultHash } from '../../lib/router.js';
import { loadPeople, loadSites, whoText } from '../../lib/people.js';
import { me } from '../../lib/session.js';
import { studyFacts, studyTitle, uidDetails } from '../../lib/study-view.js';
import { connectSocket, dropNeed, listen, sendSocket, setNeed } from '../../lib/socket.js';
import { consultPath, urgencyBadge } from '../consult-common.js';
import { createMedia } from './media.js';
import { createNegotiation } from './negotiation.js';
import { STEP_DOWN_AFTER, combine, isBad, level, summarize } from './quality.js';
import { callStatus } from './status.js';
import { createView } from './view.js';

/** @param {string} id */
export function callPage(id) {
  const show = startPage();
  const room = id;
  // For the tests and for anyone looking from the console.
  const call = {
    /** @type {Map<string, RTCPeerConnection>} */ pcs: new Map(),
    restarts: 0, status: /** @type {import('./view.js').Status} */ ('preview'), audioOnly: false,
    /** @type {any} */ quality: null,
  };
  /** @type {any} */ (window).ferryCall = call;
  /** @type {Map<string, import('./negotiation.js').Peer>} one entry per other participant */
  const peers = new Map();
  /** @type {Set<string>} participants whose socket dropped (they keep their place a while) */
  const away = new Set();
  // wantIn: the person pressed join and has not hung up; inRoom: the server said `joined` on
  // the socket open now; wasIn: it did once (a later drop is "reconnecting", not "connecting").
  let wantIn = false, inRoom = false, wasIn = false, ended = false;
  /** @type {any} */
  let consult = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  let statsTimer = null;
  let sampling = false, badSamples = 0;
  const lng = ohifLanguage(locale());

  const view = createView({
    join: () => join(),
    mute: () => media.toggleMute(),
    camera: () => media.toggleCamera(),
    screen: () => media.toggleScreen(),
    audioOnly: () => { view.stepDownNotice.hidden = true; badSamples = 0; media.setAudioOnly(!call.audioOnly); },
    videoAgain: () => { view.stepDownNotice.hidden = true; badSamples = 0; media.setAudioOnly(false); },
    hangup: () => hangup(),
    end: () => endConsult(),
  });
  const media = createMedia({
    call, view,
    connections: () => [...peers.values()].map(p => p.pc),
    ended: () => ended,
    onReady: () => { view.joinBtn.disabled = false; },
  });
  const neg = createNegotiation({
    call, peers, away, room, myId: me().user.id, inRoom: () => inRoom, media, view,
    updateStatus: () => updateStatus(), send: msg => sendSocket(msg),
  });

  function updateStatus() {
    const s = callStatus({ ended, wantIn, inRoom, wasIn, away: away.size, states: [...peers.values()].map(p => p.pc.connectionState) });
    call.status = s;
    view.showStatus(s, { waiting: inRoom && !peers.size, away: [...away] });
    view.hangupBtn.hidden = ended || !wantIn;
    view.showHelp();
  }

  // ---- the consult beside the call: its studies in the viewer ----
  /** @param {string} uid */
  function openStudy(uid) {
    view.viewer.hidden = false;
    view.viewer.src = viewerUrl(uid, lng);
    view.viewer.dataset.study = uid;
    view.viewerTab.hidden = false;
    view.viewerTab.href = viewerUrl(uid, lng);
    markOpen();
  }
  function markOpen() {
    for (const a of view.studiesEl.querySelectorAll('a.open-study')) {
      const el = /** @type {HTMLElement} */ (a);
      el.classList.toggle('on', el.dataset.study === view.viewer.dataset.study);
    }
  }
  async function loadConsult() {
    /** @type {Map<string, import('../../lib/dicom.js').Study>} */
    let seen = new Map();
    try {
      consult = await api('GET', consultPath(id));
      [seen] = await Promise.all([studiesByUid(consult.studies).catch(() => new Map()), loadSites(),
        loadPeople([consult.requested_by, consult.accepted_by])]);
    } catch (e) { view.consultInfo.replaceChildren(errorBox(e)); return; }
    const c = consult;
    view.consultInfo.replaceChildren(
      h('div', {}, urgencyBadge(c.urgency), ' ',
        t('call.consult_line', { specialty: label('specialty', c.specialty), who: whoText(c.requested_by) }),
        c.accepted_by ? ` · ${t('call.with', { who: whoText(c.accepted_by) })}` : ''),
      h('details', {}, h('summary', {}, t('consult.summary')), raw(c.summary, 'div', { class: 'summary' })));
    view.studiesEl.replaceChildren(...c.studies.map((/** @type {string} */ uid) => {
      const st = seen.get(uid);
      return h('li', { 'data-study': uid }, h('a', {
        class: 'open-study', href: viewerUrl(uid, lng), 'data-study': uid,
        onclick: (/** @type {Event} */ ev) => { ev.preventDefault(); openStudy(uid); },
      }, st ? studyTitle(st) : t('study.not_visible')), st ? [' ', studyFacts(st)] : null, uidDetails(uid));
    }));
    if (!c.studies.length) view.studiesEl.append(h('li', { class: 'muted' }, t('consult.no_studies')));
    // The first study opens by itself; later refreshes leave the one being read alone.
    if (c.studies.length && view.viewer.hidden) openStudy(c.studies[0]);
    else markOpen();
    view.endBtn.hidden = !c.can.includes('complete') || ended;
    view.showHelp();
  }

  // ---- connection quality ----
  async function sample() {
    if (sampling || ended) return;
    sampling = true;
    try {
      const live = [...peers.values()].filter(p => p.pc.connectionState === 'connected');
      if (!live.length) { view.showQuality('unknown', null); call.quality = null; badSamples = 0; return; }
      const qs = await Promise.all(live.map(async p => {
        const { quality, counts } = summarize((await p.pc.getStats()).values(), p.counts, performance.now(),
          { audioOnly: call.audioOnly, sharing: media.sharing });
        p.counts = counts;
        return quality;
      }));
      const q = combine(qs);
      const lvl = level(q);
      view.showQuality(lvl, q);
      call.quality = { level: lvl, ...q };
      // Several bad samples in a row, not one spike, step video down by itself.
      badSamples = isBad(q) ? badSamples + 1 : 0;
      if (badSamples >= STEP_DOWN_AFTER && !call.audioOnly) {
        await media.setAudioOnly(true);
        view.stepDownNotice.hidden = false;
      }
    } catch (e) {
      console.warn('stats', e);
    } finally {
      sampling = false;
    }
  }

  // ---- joining, leaving ----
  async function join() {
    view.joinBtn.disabled = true;
    view.hideError();
    wantIn = true;
    updateStatus();
    try { await neg.loadIce(); }
    catch (e) { view.note(t('call.no_relay', { reason: reasonOf(e) })); }
    if (ended || !wantIn) return;
    connectSocket();
    setNeed('call', { type: 'join', room }); // re-sent by the socket after every reconnect
    statsTimer = statsTimer || setInterval(sample, 2000);
  }

  /** @param {string | null} [message] */
  function teardown(message = null) {
    if (ended) return;
    ended = true;
    wantIn = false;
    inRoom = false;
    dropNeed('call');
    if (statsTimer) clearInterval(statsTimer);
    for (const u of [...peers.keys()]) neg.closePeer(u);
    media.stopAll();
    for (const b of [view.joinBtn, view.muteBtn, view.cameraBtn, view.screenBtn, view.audioOnlyBtn, view.endBtn]) b.disabled = true;
    view.joinBtn.hidden = true;
    view.endBtn.hidden = true;
    view.showEnded(message, consultHash(id));
    view.showQuality('unknown', null);
    call.quality = null;
    updateStatus();
  }

  function hangup() {
    if (inRoom) sendSocket({ type: 'leave', room });
    teardown();
    location.hash = consultHash(id);
  }

  async function endConsult() {
    view.endBtn.disabled = true;
    try {
      await api('POST', `${consultPath(id)}/complete`);
      hangup();
    } catch (e) {
      view.showError(e);
      view.endBtn.disabled = false;
    }
  }

  // ---- server messages ----
  const mine = (/** @type {any} */ m) => m.room === room && !ended;
  listen('joined', m => {
    if (!mine(m) || !wantIn) return;
    inRoom = true;
    wasIn = true;
    view.joinBtn.hidden = true;
    view.hideError();
    const here = new Set(m.peers.map((/** @type {any} */ x) => x.user));
    // Connections to people who left while we were away are over.
    for (const u of [...peers.keys()]) if (!here.has(u)) neg.closePeer(u);
    for (const x of m.peers) {
      if (x.online) away.delete(x.user); else away.add(x.user);
      const p = peers.get(x.user);
      if (!m.resumed) {
        // A fresh entry: whatever we held is stale. We are the newcomer, so we offer.
        if (p) neg.closePeer(x.user);
        if (x.online) neg.ensurePeer(x.user, false);
      } else if (p && p.pc.signalingState === 'have-local-offer') {
        // An offer made as our socket dropped may be lost; take it back, negotiation re-fires.
        neg.inOrder(p, () => p.pc.setLocalDescription({ type: 'rollback' }));
      }
      // Resumed with a connection kept: they restart ICE (peer-resumed) and send an offer.
    }
    updateStatus();
  });
  listen('peer-joined', m => {
    if (!mine(m) || !inRoom) return;
    neg.closePeer(m.user);
    away.delete(m.user);
    neg.ensurePeer(m.user, true);
  });
  listen('peer-away', m => { if (mine(m)) { away.add(m.user); updateStatus(); } });
  listen('peer-resumed', m => {
    if (!mine(m) || !inRoom) return;
    away.delete(m.user);
    const p = peers.get(m.user);
    if (p && p.pc.signalingState !== 'closed') neg.restart(p); else { neg.closePeer(m.user); neg.ensurePeer(m.user, false); }
    updateStatus();
  });
  listen('peer-left', m => {
    if (!mine(m)) return;
    away.delete(m.user);
    neg.closePeer(m.user);
    view.systemLine(m.user);
    updateStatus();
  });
  listen('left', m => { if (mine(m)) teardown(t('call.ended')); });
  listen('offer', m => {
    if (!mine(m) || !inRoom) return;
    const p = neg.ensurePeer(m.from, true);
    neg.inOrder(p, () => neg.onDescription(p, 'offer', m.sdp));
  });
  listen('answer', m => {
    const p = mine(m) && peers.get(m.from);
    if (p) neg.inOrder(p, () => neg.onDescription(p, 'answer', m.sdp));
  });
  listen('candidate', m => {
    const p = mine(m) && peers.get(m.from);
    if (p) neg.inOrder(p, () => neg.onCandidate(p, m.candidate));
  });
  listen('chat', m => {
    if (!mine(m)) return;
    view.chatLine(m, m.from === me().user.id);
  });
  listen('error', m => {
    if (ended || !wantIn) return;
    // Races around a dropped socket (a message for someone who just left, or sent as ours
    // dropped); the rejoin and the ICE restart that follows set things right.
    if (m.code === 'peer_unavailable' || m.code === 'not_in_room') { console.warn('signalling', m); return; }
    view.showError(m);
    if (!inRoom && (m.code === 'not_allowed' || m.code === 'too_many_rooms')) {
      // The join itself was refused: stop asking on every reconnect.
      wantIn = false;
      dropNeed('call');
      view.joinBtn.disabled = false;
      updateStatus();
    }
  });
  listen('close', ev => {
    if (!wantIn) return;
    inRoom = false;
    // The same person joined from another window, which now holds the call: end it here,
    // or the two windows would keep taking it from each other.
    if (/replaced/.test(ev.reason || '')) teardown(t('call.elsewhere'));
    updateStatus();
  });
  listen('consult', m => {
    if (m.consult !== id) return;
    loadConsult();
    if (m.state === 'completed' || m.state === 'cancelled') teardown(t('call.consult_ended'));
  });

  view.chatForm.addEventListener('submit', ev => {
    ev.preventDefault();
    const text = view.chatInput.value.trim();
    if (!text) return;
    if (!inRoom) { view.showError(t('call.join_to_chat')); return; }
    if (sendSocket({ type: 'chat', room, text })) view.chatInput.value = ''; // the server echoes it to everyone
  });

  const main = mainEl();
  main.classList.add('wide');
  onPageLeave(() => {
    main.classList.remove('wide');
    if (!ended) {
      if (inRoom) sendSocket({ type: 'leave', room });
      teardown();
    }
  });

  show(...view.layout());
  updateStatus();
  media.preview();
  loadConsult();
}
