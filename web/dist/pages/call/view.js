// The call page's elements and how they show the call: status, quality, notices, controls,
// remote video tiles, chat lines. No call logic here.

import { h, raw } from '../../lib/dom.js';
import { describe } from '../../lib/errors.js';
import { number, percent, time } from '../../lib/format.js';
import { t } from '../../lib/i18n.js';
import { whoText } from '../../lib/people.js';

/**
 * @typedef {'preview' | 'connecting' | 'connected' | 'reconnecting' | 'ended'} Status
 * @typedef {{ join: () => void, mute: () => void, camera: () => void, screen: () => void,
 *   audioOnly: () => void, videoAgain: () => void, hangup: () => void, end: () => void }} Handlers
 */

/** @param {Handlers} on */
export function createView(on) {
  const statusEl = h('span', { id: 'call-status', class: 'pill', 'data-status': 'preview', role: 'status' }, t('call.status.preview'));
  const qualityEl = h('span', { id: 'quality', class: 'pill', 'data-level': 'unknown', title: t('call.quality_title') }, t('call.quality.none'));
  const localVideo = h('video', { id: 'local', autoplay: true, playsinline: true, 'aria-label': t('call.local_video') });
  localVideo.muted = true; // never play one's own microphone back
  const remotes = h('div', { id: 'remotes' });
  const mediaNotice = h('div', { id: 'media-notice', class: 'notice', hidden: true });
  const stepDownNotice = h('div', { id: 'step-down-notice', class: 'notice', hidden: true, role: 'status' },
    t('call.step_down'), ' ',
    h('button', { id: 'video-again', class: 'small', type: 'button', onclick: on.videoAgain }, t('call.video_again')));
  const callError = h('div', { id: 'call-error', class: 'error', role: 'alert', hidden: true });
  const endedNotice = h('div', { id: 'call-ended', class: 'notice', hidden: true });
  const consultInfo = h('div', { class: 'call-consult' });
  const studiesEl = h('ul', { id: 'consult-studies' });
  const viewer = h('iframe', { id: 'viewer', title: t('call.viewer_title'), hidden: true });
  const viewerTab = h('a', { class: 'small-link', target: '_blank', rel: 'noopener', hidden: true }, t('call.viewer_tab'));
  const chatLog = h('ul', { id: 'chat-log', 'aria-live': 'polite', 'aria-label': t('call.chat') });
  const chatInput = h('input', { name: 'text', autocomplete: 'off', placeholder: t('call.chat_placeholder'), 'aria-label': t('call.chat_message'), maxlength: 2000 });
  const chatForm = h('form', { id: 'chat-form', class: 'chat-form' }, chatInput, h('button', { class: 'primary', type: 'submit' }, t('call.send')));
  const control = (/** @type {string} */ id, /** @type {string} */ label, /** @type {() => void} */ fn) =>
    h('button', { id, class: 'control', type: 'button', 'aria-pressed': 'false', onclick: fn }, label);
  const joinBtn = h('button', { id: 'join', class: 'primary control', type: 'button', disabled: true, onclick: on.join }, t('call.join'));
  const muteBtn = control('mute', t('call.mute'), on.mute);
  const cameraBtn = control('camera', t('call.camera_off'), on.camera);
  const screenBtn = control('screen', t('call.share_screen'), on.screen);
  const audioOnlyBtn = control('audio-only', t('call.audio_only'), on.audioOnly);
  // Hang up appears once the person has joined; End the consult only for those who may end it.
  const hangupBtn = h('button', { id: 'hangup', class: 'control danger', type: 'button', hidden: true, 'aria-describedby': 'call-help', onclick: on.hangup }, t('call.hangup'));
  const endBtn = h('button', { id: 'end-consult', class: 'control', type: 'button', hidden: true, 'aria-describedby': 'call-help', onclick: on.end }, t('call.end_consult'));
  const help = h('p', { id: 'call-help', class: 'muted call-help' });
  for (const b of [muteBtn, cameraBtn, screenBtn, audioOnlyBtn]) b.disabled = true;

  const view = {
    statusEl, qualityEl, localVideo, remotes, mediaNotice, stepDownNotice, callError, endedNotice, consultInfo,
    studiesEl, viewer, viewerTab, chatLog, chatInput, chatForm, joinBtn, muteBtn, cameraBtn, screenBtn, audioOnlyBtn,
    hangupBtn, endBtn, help,

    /**
     * @param {HTMLButtonElement} btn
     * @param {boolean} pressed
     * @param {string} label
     */
    press(btn, pressed, label) { btn.setAttribute('aria-pressed', String(pressed)); btn.textContent = label; },

    /** @param {string} text */
    note(text) { mediaNotice.hidden = false; mediaNotice.textContent = text; },

    /**
     * An error from the server (signalling or API) or of this page; a server code is shown
     * too, as it came, for whoever helps.
     * @param {any} e
     */
    showError(e) {
      const d = describe(e);
      callError.hidden = false;
      callError.replaceChildren(h('div', { class: 'error-message' }, d.message));
      if (d.detail || d.code) callError.append(h('div', { class: 'error-detail', lang: 'en', translate: 'no', 'data-raw': true },
          [d.detail, d.code ? `(${d.code})` : null].filter(Boolean).join(' ')));
    },
    hideError() { callError.hidden = true; },

    /**
     * @param {Status} s
     * @param {{ waiting: boolean, away: string[] }} detail
     */
    showStatus(s, detail) {
      statusEl.dataset.status = s;
      statusEl.textContent = s === 'connecting' && detail.waiting ? t('call.status.waiting')
        : s === 'reconnecting' && detail.away.length ? t('call.status.reconnecting_who', { who: detail.away.map(whoText).join(t('common.list_sep')) })
          : t(`call.status.${s}`);
    },

    /**
     * @param {import('./quality.js').Level} lvl
     * @param {import('./quality.js').Quality | null} q
     */
    showQuality(lvl, q) {
      qualityEl.dataset.level = lvl;
      qualityEl.textContent = !q ? t('call.quality.none') : [
        t(`call.quality.${lvl}`),
        q.rtt !== null ? t('call.quality.rtt', { ms: number(Math.round(q.rtt)) }) : null,
        q.loss >= 0.01 ? t('call.quality.loss', { share: percent(q.loss) }) : null,
        q.starved ? t('call.quality.starved') : null,
      ].filter(Boolean).join(' · ');
    },

    /** Explains the two ways out of a call, for the buttons shown. */
    showHelp() {
      const parts = [];
      if (!hangupBtn.hidden) parts.push(t('call.help.hangup'));
      if (!endBtn.hidden) parts.push(t('call.help.end'));
      help.textContent = parts.join(' ');
      help.hidden = !parts.length;
    },

    /** @param {string | null} message */
    showEnded(message, /** @type {string} */ back) {
      if (!message) return;
      endedNotice.hidden = false;
      endedNotice.replaceChildren(`${message} `, h('a', { href: back }, t('call.back_to_consult')));
    },

    /**
     * A remote participant's video tile, made on their first track.
     * @param {{ user: string, video: HTMLVideoElement | null, tile: HTMLElement | null, stream: MediaStream | null }} p
     * @param {MediaStreamTrack} track
     * @param {readonly MediaStream[]} streams
     */
    showRemote(p, track, streams) {
      if (!p.video) {
        p.video = h('video', { autoplay: true, playsinline: true, 'data-peer': p.user });
        p.tile = h('figure', { class: 'remote' }, p.video, h('figcaption', {}, raw(whoText(p.user))));
        remotes.append(p.tile);
      }
      let stream = streams[0];
      if (!stream) {
        p.stream = p.stream || new MediaStream();
        p.stream.addTrack(track);
        stream = p.stream;
      }
      if (p.video.srcObject !== stream) p.video.srcObject = stream;
      p.video.play().catch(() => { /* plays once the page may make sound */ });
    },

    /**
     * @param {{ from: string, at: number, text: string }} m
     * @param {boolean} mine
     */
    chatLine(m, mine) {
      chatLog.append(h('li', { 'data-from': m.from, class: mine ? 'own' : '' },
        mine ? h('span', { class: 'chat-from' }, t('call.you')) : raw(whoText(m.from), 'span', { class: 'chat-from' }), ' ',
        h('time', { class: 'muted', datetime: new Date(m.at).toISOString() }, time(m.at)), raw(m.text, 'div', { class: 'chat-text' })));
      chatLog.scrollTop = chatLog.scrollHeight;
    },

    /** @param {string} user */
    systemLine(user) {
      chatLog.append(h('li', { class: 'system', 'data-user': user }, t('call.left', { who: whoText(user) })));
    },

    /** @param {HTMLElement[]} [consultParts] */
    layout(consultParts = []) {
      return [
        h('div', { class: 'call-head' }, h('h1', {}, t('call.title')), statusEl, qualityEl),
        h('div', { class: 'call-layout' },
          h('section', { class: 'call-pane', 'aria-label': t('call.title') },
            consultInfo, ...consultParts,
            h('div', { class: 'stage' }, remotes, localVideo),
            mediaNotice, stepDownNotice, callError, endedNotice,
            h('div', { class: 'controls', role: 'group', 'aria-label': t('call.controls') }, joinBtn, muteBtn, cameraBtn, screenBtn, audioOnlyBtn, hangupBtn, endBtn),
            help,
            h('section', { class: 'chat box' }, h('h2', {}, t('call.chat')), chatLog, chatForm)),
          h('section', { class: 'viewer-pane', 'aria-label': t('call.images') },
            h('h2', {}, t('call.images')), studiesEl, viewer, viewerTab)),
      ];
    },
  };
  return view;
}

/** @typedef {ReturnType<typeof createView>} View */
