// The catalogue-walking language check shared by i18n.mjs and pages.mjs: every English
// message of web/dist/i18n/en.js that differs from its Chinese one, as exact texts and (for
// templates with enough English words of their own) as patterns; `englishOnPage` runs in the
// page and returns the English messages it shows outside data marked translate="no"/data-raw.
import en from '../../web/dist/i18n/en.js';
import zh from '../../web/dist/i18n/zh-CN.js';

// English messages that differ from their Chinese ones: exact texts, and templates as patterns
// (those with enough English words of their own to be told apart from data).
export const exact = new Map();
export const patterns = [];
for (const [k, v] of Object.entries(en)) {
  if (v === zh[k]) continue;
  if (/\{\w+\}/.test(v)) {
    const literal = v.replace(/\{\w+\}/g, '');
    if ((literal.match(/[A-Za-z]/g) || []).length < 6) continue;
    const src = v.split(/\{\w+\}/).map(p => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.+?');
    patterns.push([k, src]);
  } else {
    exact.set(v.trim(), k);
  }
}

// In the page: every visible text and label (text nodes, placeholders, aria-labels, titles,
// options of visible selects) outside data marked as such; the English messages among them.
export function englishOnPage([exactEntries, patternEntries]) {
  const exact = new Map(exactEntries);
  const pats = patternEntries.map(([k, src]) => [k, new RegExp(`^${src}$`, 's')]);
  const norm = s => s.replace(/\s+/g, ' ').trim();
  const excluded = el => !!el.closest('[translate="no"], [data-raw], script, style, noscript');
  const visible = el => (el.checkVisibility ? el.checkVisibility({ checkVisibilityCSS: true }) : !!el.getClientRects().length);
  const found = [];
  const judge = (text, where) => {
    const s = norm(text);
    if (!s || !/[A-Za-z]/.test(s)) return;
    if (exact.has(s)) { found.push(`${where}: "${s}" (${exact.get(s)})`); return; }
    for (const [k, re] of pats) if (re.test(s)) { found.push(`${where}: "${s}" (${k})`); return; }
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || excluded(el)) continue;
    if (el.tagName === 'OPTION') {
      const sel = el.closest('select');
      if (sel && visible(sel)) judge(n.textContent, 'option');
      continue;
    }
    if (visible(el)) judge(n.textContent, el.tagName.toLowerCase());
  }
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    if (excluded(el) || !visible(el)) continue;
    for (const a of ['placeholder', 'aria-label', 'title']) if (el.hasAttribute(a)) judge(el.getAttribute(a), `@${a}`);
  }
  judge(document.title, 'title');
  return found;
}


/** The check's arguments for `page.evaluate(englishOnPage, catalogueArgs())`. */
export const catalogueArgs = () => [[...exact], patterns];
