// One WebSocket for the whole app (docs/signalling.md): the consult inbox's pushes, presence
// and the call's signalling. It reconnects by itself; pages register what must be re-sent on
// every open (a `watch`, a `join`), so a dropped connection picks up where it was.

import { api } from './api.js';
import { onPageLeave } from './dom.js';
import { session } from './session.js';

/** @typedef {Record<string, any> & { type: string }} ServerMessage */

const socket = {
  /** @type {WebSocket | null} */ ws: null,
  opens: 0, retry: 0,
  /** @type {ReturnType<typeof setTimeout> | undefined} */ timer: undefined,
  wanted: false, openedAt: 0,
};
/** @type {Map<string, Set<(msg: any) => void>>} type -> listeners */
const listeners = new Map();
/** @type {Map<string, Record<string, any>>} key -> message re-sent on every open */
const needs = new Map();
// For the tests and for anyone looking from the console.
/** @type {any} */ (window).ferrySocket = { get ws() { return socket.ws; }, get opens() { return socket.opens; } };

// Who is online, from `presence` messages. The first one after a `watch` is the whole list.
export const presence = {
  /** @type {Map<string, boolean>} */ online: new Map(),
  known: false,
  snapshot: false,
};

/**
 * The backoff before reconnecting after `retry` failures in a row: 0.5 s doubling, at most 5 s.
 * @param {number} retry
 */
export function reconnectDelay(retry) {
  return Math.min(500 * 2 ** retry, 5000);
}

export function connectSocket() {
  if (!session.me) return; // signed out meanwhile
  socket.wanted = true;
  if (socket.ws && socket.ws.readyState <= WebSocket.OPEN) return;
  clearTimeout(socket.timer);
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`);
  socket.ws = ws;
  ws.onopen = () => {
    socket.opens++;
    socket.openedAt = Date.now();
    for (const msg of needs.values()) sendSocket(msg);
    emit('open', { type: 'open' });
  };
  ws.onmessage = ev => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    if (msg && typeof msg.type === 'string') emit(msg.type, msg);
  };
  ws.onclose = ev => {
    if (socket.ws !== ws) return;
    // A socket that lived a while starts the backoff over; one that keeps failing waits longer.
    if (socket.openedAt && Date.now() - socket.openedAt > 5000) socket.retry = 0;
    const neverOpened = !socket.openedAt;
    socket.openedAt = 0;
    emit('close', { type: 'close', code: ev.code, reason: ev.reason });
    if (!socket.wanted || !session.me) return;
    // Refused again and again: perhaps the session ended. Asking who we are finds out (a 401
    // leads to the sign-in page, which stops the socket).
    if (neverOpened && socket.retry >= 3) api('GET', '/api/me').catch(() => {});
    const delay = reconnectDelay(socket.retry);
    socket.retry++;
    socket.timer = setTimeout(connectSocket, delay);
  };
}

export function closeSocket() {
  socket.wanted = false;
  clearTimeout(socket.timer);
  needs.clear();
  if (socket.ws) socket.ws.close();
}

export function socketOpen() {
  return !!(socket.ws && socket.ws.readyState === WebSocket.OPEN);
}

/**
 * Sends a client message (every one carries "v": 1); false when the socket is not open.
 * @param {Record<string, any>} msg
 */
export function sendSocket(msg) {
  if (!socketOpen()) return false;
  if (msg.type === 'watch' && msg.presence) presence.snapshot = true;
  /** @type {WebSocket} */ (socket.ws).send(JSON.stringify({ v: 1, ...msg }));
  return true;
}

/**
 * @param {string} type
 * @param {ServerMessage} msg
 */
function emit(type, msg) {
  if (type === 'presence') {
    if (presence.snapshot) { presence.online.clear(); presence.snapshot = false; presence.known = true; }
    for (const u of msg.users || []) presence.online.set(u.user, !!u.online);
  }
  for (const fn of [...(listeners.get(type) || [])]) {
    try { fn(msg); } catch (e) { console.error(e); }
  }
}

/**
 * Listens to a server message type for as long as the current page is shown.
 * @param {string} type
 * @param {(msg: any) => void} fn
 */
export function listen(type, fn) {
  onPageLeave(subscribe(type, fn));
}

/**
 * Listens to a server message type whatever page is shown (the header's alerts), until the
 * returned function is called.
 * @param {string} type
 * @param {(msg: any) => void} fn
 * @returns {() => void}
 */
export function subscribe(type, fn) {
  let set = listeners.get(type);
  if (!set) { set = new Set(); listeners.set(type, set); }
  const mine = set;
  mine.add(fn);
  return () => { mine.delete(fn); };
}

/**
 * A message to send now and again after every reconnect, until dropped.
 * @param {string} key
 * @param {Record<string, any>} msg
 */
export function setNeed(key, msg) { needs.set(key, msg); sendSocket(msg); }
/** @param {string} key */
export function dropNeed(key) { needs.delete(key); }
