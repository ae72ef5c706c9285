// DOM helpers and the page lifecycle. Every value from the server goes into the page as text,
// never as HTML.

import { t } from './i18n.js';

/** @typedef {Node | string | number | null | undefined | false} Child */
/** @typedef {Child | Child[] | Child[][]} Children */

/**
 * An element with attributes (`on…` are listeners; true is an empty attribute; false, null
 * and undefined are left out) and children (text or nodes, arrays flattened).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...Children} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of /** @type {Child[]} */ (children.flat(2))) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * Data shown as it is (names, ids, UIDs, free text people wrote): marked so that neither the
 * browser's translator nor the language check takes it for a message of the app.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {any} value
 * @param {K} [tag]
 * @param {Record<string, any>} [attrs]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function raw(value, tag = /** @type {K} */ ('span'), attrs = {}) {
  return h(tag, { translate: 'no', 'data-raw': true, ...attrs }, value === null || value === undefined ? '' : String(value));
}

/**
 * A labelled control.
 * @param {string} label
 * @param {HTMLElement} input
 */
export function field(label, input) {
  return h('div', {}, h('label', {}, label, input));
}

/**
 * A table inside a wrapper that scrolls sideways, so a wide table never widens the page.
 * @param {Children[]} headers
 * @param {HTMLElement[]} rows
 * @param {Record<string, any>} [attrs] for the table element
 */
export function table(headers, rows, attrs = {}) {
  // Focusable, so that a keyboard can scroll it too.
  return h('div', { class: 'table-wrap', tabindex: 0 }, h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map(x => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, t('common.nothing_yet')))])));
}

/**
 * @param {HTMLFormElement} form
 * @returns {Record<string, string>}
 */
export function formValues(form) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = String(v);
  return out;
}

/** @returns {HTMLElement} */
export function mainEl() { return /** @type {HTMLElement} */ (document.getElementById('main')); }

// A message for the next page shown (e.g. a new token's secret after the list reloads).
/** @type {HTMLElement | null} */
let flash = null;
/** @param {HTMLElement} el */
export function setFlash(el) { flash = el; }

/** @param {...Children} nodes */
export function show(...nodes) {
  const main = mainEl();
  main.replaceChildren(.../** @type {Node[]} */ (nodes.flat(2).filter(n => n !== null && n !== undefined && n !== false)));
  if (flash) { main.prepend(flash); flash = null; }
}

// Pages load asynchronously; only the most recently started one may draw, so a quick second
// click is never overwritten by a slower first one.
let renderSeq = 0;
/** @returns {(...nodes: Children[]) => void} */
export function startPage() {
  const mine = ++renderSeq;
  return (...nodes) => { if (mine === renderSeq) show(...nodes); };
}

// What the page shown needs undone when another one replaces it (listeners, needs, calls).
/** @type {(() => void)[]} */
let pageCleanups = [];
/** @param {() => void} fn */
export function onPageLeave(fn) { pageCleanups.push(fn); }
export function leavePage() {
  pinned = false;
  for (const fn of pageCleanups.splice(0).reverse()) {
    try { fn(); } catch (e) { console.error(e); }
  }
}

// A page whose work a redraw would end (a broadcast's media under way) is kept as it is when
// the language changes; leaving it unpins it.
let pinned = false;
/** @param {boolean} on */
export function pinPage(on) { pinned = on; }
export function pagePinned() { return pinned; }
