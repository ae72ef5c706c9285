// The must-show check of every page: for each demo role (clinician dr-zhao, specialist dr-li,
// ECG reader dr-chen, trainer trainer-sun, admin), in English and Chinese (the browser
// context's locale), at 1280×800 and 800×1280, every page the role can reach is visited and
// fails on: the page scrolling sideways; a console error, an uncaught script error, a failed
// request, or a response ≥ 400 the page does not expect (EXPECTED below says which); a Study
// Instance UID shown outside a <details>; a `^` in any text shown (DICOM names unformatted);
// an English message of the catalogue in the Chinese interface (the check of i18n.mjs); a
// control without a label; and any serious or critical axe-core violation on Ferry's pages.
// The data is seeded through the API first: dr-zhao stores CT_small and MR_small (from the
// pydicom wheel) and requests three consults; dr-li accepts two and signs an opinion on one;
// dr-zhao posts the wheel's 12-lead ECG (the ECG list, viewer and calibration pages). The CT
// and the ECG go to City Hospital's reading centre by the demo's routing: dr-zhao sends the CT
// for reading, dr-li claims it and signs a report, dr-chen claims the ECG and marks a critical
// result, which dr-zhao leaves unacknowledged (its banner is on every page of dr-zhao's).
// trainer-sun schedules a training session an hour ahead for City Hospital and every site below
// it, so every role walks the training list and the session's page (no media is started) with
// its questions panel — dr-zhao's question waiting, dr-li's answered, dr-chen's hand raised (the
// trainer's page lists it with its Lower button) — and trainer-sun its attendance page.
// Then, in both languages, admin issues a device token to the island clinic's ECG cart (its
// secret shown once), sees it active, revokes it and sees it revoked, the panel passing the
// same checks; and on City Hospital's reading centre tab sees the demo's four routing rules,
// saves a report template for imaging CT, sees it listed and removes it, adds a rule (County
// Hospital's ECGs, urgent), sees it listed and removes it. Last, a signed-out deep link to a
// consult lands on it after sign-in.
// Run by tests/it/browser.rs with FERRY_URL set (DICOM_TEST_FILES: the folder of the pydicom
// wheel's test files; found through python3 if not set). The OHIF viewer is not checked here
// (viewer.mjs does): its frame on the call page is answered with an empty page.
import test, { after, before } from 'node:test';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { catalogueArgs, englishOnPage } from './catalogue-check.mjs';
import { base, expect, launchMedia, shot, signIn, unlabelledControls } from './lib.mjs';
import en from '../../web/dist/i18n/en.js';
import zh from '../../web/dist/i18n/zh-CN.js';

const T = 20000;
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const filesDir = process.env.DICOM_TEST_FILES || execFileSync('python3',
  ['-c', 'import pydicom, os; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))']).toString().trim();

const LOCALES = ['en', 'zh-CN'];
const VIEWPORTS = [{ width: 1280, height: 800 }, { width: 800, height: 1280 }];

// Responses ≥ 400 a page asks for knowingly: (page hash pattern, method, path pattern, status).
// Only the sign-in page reached signed out asks who is signed in and hears 401.
const EXPECTED = [
  { page: /^#\/(login|consults\/)/, method: 'GET', path: /^\/api\/me$/, status: 401, signedOut: true },
];

// ---- seeding through the API ----

async function login(user) {
  const r = await fetch(`${base}/api/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: user, password: 'ferry-demo' }),
  });
  expect(r.ok, `login ${user}: ${r.status}`);
  const cookie = r.headers.getSetCookie().map(c => c.split(';')[0]).join('; ');
  const { csrf_token: csrf } = await r.json();
  const call = async (method, path, body, headers = {}) => {
    const resp = await fetch(`${base}${path}`, {
      method,
      headers: { Cookie: cookie, 'X-CSRF-Token': csrf, Accept: 'application/json', ...(body && !(body instanceof Uint8Array) ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body: body instanceof Uint8Array ? body : body ? JSON.stringify(body) : undefined,
    });
    const text = await resp.text();
    expect(resp.ok, `${user} ${method} ${path}: ${resp.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  };
  return call;
}

/** STOW-RS of files of the pydicom wheel; returns the Study Instance UID of each. */
async function stow(call, names) {
  const boundary = `ferry-pages-${Date.now()}`;
  const parts = [];
  for (const n of names) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), readFileSync(join(filesDir, n)), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  const r = await call('POST', '/dicomweb/studies', new Uint8Array(Buffer.concat(parts)), {
    'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, Accept: 'application/dicom+json',
  });
  const urls = (r['00081199']?.Value || []).map(x => x['00081190'].Value[0]);
  return urls.map(u => /\/studies\/([0-9.]+)/.exec(u)[1]);
}

const seeded = {};

// ---- the checks in the page ----

function inPage() {
  const visible = el => (el.checkVisibility ? el.checkVisibility({ checkVisibilityCSS: true }) : !!el.getClientRects().length);
  const out = { overflow: 0, uids: [], carets: [] };
  const se = document.scrollingElement;
  out.overflow = se.scrollWidth - se.clientWidth;
  const uid = /\d+(\.\d+){5,}/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    const s = n.textContent;
    if (!el || !s.trim() || el.closest('script, style, noscript') || !visible(el)) continue;
    if (uid.test(s) && !el.closest('details')) out.uids.push(`${el.tagName.toLowerCase()}: ${s.trim().slice(0, 80)}`);
    if (s.includes('^')) out.carets.push(`${el.tagName.toLowerCase()}: ${s.trim().slice(0, 80)}`);
  }
  return out;
}

async function axeViolations(page) {
  // Ferry's Content-Security-Policy (script-src 'self') refuses an inline <script>, so axe-core
  // goes in through the DevTools protocol rather than page.addScriptTag (the CSP stays on).
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(axeSource);
  return page.evaluate(async () => {
    // Ferry's own page: the viewer's frame (OHIF) is not ours to judge here.
    const r = await window.axe.run({ exclude: [['iframe#viewer']] }, { iframes: false, resultTypes: ['violations'] });
    return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
      .map(v => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
  });
}

let browser;
before(async () => { browser = await launchMedia(); });
after(async () => { await browser?.close(); });

/** A browser context for one person, language and size, watching for errors and failures. */
async function openAs(user, locale, viewport) {
  const context = await browser.newContext({ locale, viewport, permissions: ['camera', 'microphone'] });
  await context.route('**/viewer/**', route => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>viewer</title>' }));
  const page = await context.newPage();
  const s = { context, page, problems: [], hash: '', signedOut: !user };
  const note = msg => s.problems.push(`${s.hash || '(start)'}: ${msg}`);
  page.on('pageerror', e => note(`script error: ${e.message}`));
  page.on('console', m => {
    if (m.type() !== 'error') return;
    // The browser logs every response ≥ 400 as a console error; expected ones are not errors.
    if (/status of 401/.test(m.text()) && s.signedOut) return;
    note(`console error: ${m.text()}`);
  });
  page.on('requestfailed', r => {
    const f = r.failure()?.errorText || '';
    // A page left while its request was under way (ERR_ABORTED) is not a failure.
    if (/ERR_ABORTED/.test(f)) return;
    note(`request failed: ${r.method()} ${new URL(r.url()).pathname} ${f}`);
  });
  page.on('response', r => {
    if (r.status() < 400) return;
    const u = new URL(r.url());
    const ok = EXPECTED.some(e => e.page.test(s.hash) && e.method === r.request().method() && e.path.test(u.pathname)
      && e.status === r.status() && (!e.signedOut || s.signedOut));
    if (!ok) note(`unexpected ${r.status()} for ${r.request().method()} ${u.pathname}`);
  });
  if (user) await signIn(page, user);
  return s;
}

/** Visits `hash`, waits for `ready` and a quiet network, and runs every check. */
async function visit(s, hash, ready = 'main h1', locale = 'en') {
  s.hash = hash;
  const { page } = s;
  await page.evaluate(() => document.getElementById('main').replaceChildren());
  const url = `${base}/${hash}`;
  if (page.url() === url) await page.reload(); else await page.goto(url);
  await page.waitForSelector(ready, { timeout: T });
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.waitForTimeout(200);
  await check(s, locale);
}

async function check(s, locale) {
  const { page } = s;
  const note = msg => s.problems.push(`${s.hash}: ${msg}`);
  const r = await page.evaluate(inPage);
  if (r.overflow > 0) note(`scrolls sideways by ${r.overflow}px`);
  for (const u of r.uids) note(`Study Instance UID shown outside <details>: ${u}`);
  for (const c of r.carets) note(`'^' shown: ${c}`);
  const lang = await page.evaluate(() => document.documentElement.lang);
  if (lang !== locale) note(`<html lang="${lang}">, expected ${locale}`);
  if (locale === 'zh-CN') for (const e of await page.evaluate(englishOnPage, catalogueArgs())) note(`English in the Chinese interface: ${e}`);
  for (const c of await unlabelledControls(page)) note(`control without a label: ${c}`);
  for (const v of await axeViolations(page)) note(`axe ${v}`);
}

/** Every page a role can reach, with what shows it is drawn. */
function pagesOf(user) {
  const { consults: c, studies, readings: rd } = seeded;
  const reading = id => [`#/readings/${encodeURIComponent(id)}`, '#reading[data-state]'];
  const consult = id => [`#/consults/${encodeURIComponent(id)}`, '#consult'];
  const call = id => [`#/call/${encodeURIComponent(id)}`, '#join:not([disabled])'];
  const bc = seeded.broadcast;
  const common = [['#/', '#home-title'], ['#/studies', '#study-list'], ['#/tokens', 'main h1'],
    ['#/broadcasts', `#broadcast-list tr[data-broadcast="${bc}"]`],
    // The session's page with its questions drawn: the waiting one, the answered one, and (for
    // the trainer) the raised hand.
    [`#/broadcasts/${encodeURIComponent(bc)}`, `main:has(${user === 'trainer-sun' ? '#go-live:not([disabled])' : '#watch:not([disabled])'})`
      + `:has(#question-list li[data-question="${seeded.questions.waiting}"]):has(#answered-list li[data-question="${seeded.questions.answered}"])`
      + `:has(#material-list li[data-material="${seeded.material}"])`
      + (user === 'trainer-sun' ? ' #hand-list li[data-user="dr-chen"] button' : ' #question-form')],
    ['#/broadcasts/library', `#library-list article[data-broadcast="${seeded.past}"] .material-link`]];
  switch (user) {
    case 'dr-zhao': return [...common, [`#/studies?study=${studies.ct}`, `tr[data-study="${studies.ct}"]`], ['#/upload', '#upload-drop'],
      ['#/ecgs', `tr[data-ecg="${seeded.ecg}"]`], [`#/ecgs/${encodeURIComponent(seeded.ecg)}`, '#ecg-measurements'], ['#/ecgs/calibrate', '#calibration-canvas'],
      ['#/consults', '#consult-list'], ['#/consults/new', 'form#consult-form'],
      consult(c.signed), consult(c.accepted), consult(c.requested), call(c.accepted),
      ['#/readings', `#reading-list tr[data-reading="${rd.ct}"]`], reading(rd.ct), reading(rd.ecg), ['#/nowhere', 'main h1']];
    case 'dr-li': return [...common, ['#/ecgs', '#ecg-list'], ['#/consults', '#consult-list'], consult(c.signed), consult(c.accepted), consult(c.requested), call(c.accepted),
      ['#/readings', '#reading-list'], reading(rd.ct), ['#/readings/turnaround', '#turnaround-table']];
    case 'admin': return [...common, ['#/admin/sites', 'table'], ['#/admin/users', 'table'], ['#/admin/devices', 'table'],
      ['#/admin/reading', '#reading-templates'], ['#/admin/audit', 'table'], ['#/readings/turnaround', '#turnaround-table']];
    case 'dr-chen': return [...common, ['#/ecgs', `#ecg-list tr[data-ecg="${seeded.ecg}"]`], ['#/admin/sites', '#not-permitted'],
      ['#/readings', `#reading-list tr[data-reading="${rd.ecg}"]`], reading(rd.ecg), ['#/readings/turnaround', '#turnaround-table']];
    case 'trainer-sun': return [...common, [`#/broadcasts/${encodeURIComponent(bc)}/attendance`, '#attendance-people']];
    default: return common;
  }
}

test('seed: dr-zhao stores a CT and an MR and requests three consults; dr-li accepts two and signs an opinion on one; the reading centre reads the CT and marks the ECG critical; trainer-sun schedules a training session', async () => {
  const zhao = await login('dr-zhao');
  const [ct, mr] = await stow(zhao, ['CT_small.dcm', 'MR_small.dcm']);
  expect(ct && mr && ct !== mr, `studies ${ct}, ${mr}`);
  seeded.studies = { ct, mr };
  const ask = (summary, studies, urgency) => zhao('POST', '/api/consults', { specialty: 'radiology', urgency, summary, studies });
  const signed = await ask('Synthetic case: chest CT after a fall, rib fracture?', [ct], 'urgent');
  const accepted = await ask('Synthetic case: head MR, headache for two weeks.', [mr], 'routine');
  const requested = await ask('Synthetic case: a question without images.', [], 'emergency');
  const li = await login('dr-li');
  await li('POST', `/api/consults/${signed.id}/accept`);
  await li('POST', `/api/consults/${signed.id}/opinions`, { text: 'Fracture of one right rib, no pneumothorax. Analgesia; review in two weeks.' });
  await li('POST', `/api/consults/${accepted.id}/accept`);
  seeded.consults = { signed: signed.id, accepted: accepted.id, requested: requested.id };
  // An ECG (the pydicom wheel's 12-lead waveform) for the ECG list and viewer.
  const ecg = await zhao('POST', '/api/ecgs', new Uint8Array(readFileSync(join(filesDir, 'waveform_ecg.dcm'))), { 'Content-Type': 'application/dicom' });
  seeded.ecg = ecg.id;
  // The reading centre: the CT read and signed, the ECG claimed with a critical result open.
  const sent = (await zhao('GET', '/api/readings?scope=sent')).readings;
  const ctReading = sent.find(r => r.study_uid === ct && r.kind === 'imaging');
  const ecgReading = sent.find(r => r.ecg_id === ecg.id);
  expect(ctReading && ecgReading, `reading requests: ${JSON.stringify(sent.map(r => [r.kind, r.state]))}`);
  if (ctReading.state === 'collecting') await zhao('POST', `/api/readings/${ctReading.id}/send`, {});
  await li('POST', `/api/readings/${ctReading.id}/claim`, {});
  await li('POST', `/api/readings/${ctReading.id}/sign`, { findings: 'Synthetic case: no fracture seen.', impression: 'Normal study.', conclusions: [] });
  const chen = await login('dr-chen');
  await chen('POST', `/api/readings/${ecgReading.id}/claim`, {});
  await chen('POST', `/api/readings/${ecgReading.id}/critical`, { finding: 'stemi', note: 'Synthetic case: ST elevation in V1–V4.' });
  seeded.readings = { ct: ctReading.id, ecg: ecgReading.id };
  // A training session an hour ahead, for City Hospital and every site below it: every demo
  // role sees it.
  const sun = await login('trainer-sun');
  const session = await sun('POST', '/api/broadcasts', {
    title: 'Synthetic session: ECG reading, week 3 (AV blocks)', description: 'Bring one case each.',
    starts_at: new Date(Date.now() + 3600000).toISOString(), minutes: 90, subtrees: ['city-hospital'],
  });
  expect(/^bc_/.test(session?.id || ''), `no session: ${JSON.stringify(session)}`);
  seeded.broadcast = session.id;
  // Its questions: dr-zhao's waiting (up-voted by dr-li), dr-li's answered; dr-chen's hand up.
  const questions = `/api/broadcasts/${session.id}/questions`;
  const waiting = await zhao('POST', questions, { text: 'Synthetic question: is a PR interval of 220 ms a first-degree AV block?' });
  const answered = await li('POST', questions, { text: 'Synthetic question: will the slides be shared after the session?' });
  await li('PUT', `${questions}/${waiting.id}/vote`, { up: true });
  await sun('PUT', `${questions}/${answered.id}/answered`, { answered: true });
  await chen('PUT', `/api/broadcasts/${session.id}/hand`, { raised: true });
  seeded.questions = { waiting: waiting.id, answered: answered.id };
  // Slides for it, and a past session (ended by its trainer) with its own, for the library.
  const pdf = new TextEncoder().encode('%PDF-1.4\n% synthetic slides\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
  const slides = (id, name) => sun('POST', `/api/broadcasts/${id}/materials?name=${encodeURIComponent(name)}`, pdf, { 'Content-Type': 'application/pdf' });
  seeded.material = (await slides(session.id, 'Week 3 slides.pdf')).id;
  const past = await sun('POST', '/api/broadcasts', {
    title: 'Synthetic session: ECG reading, week 2 (sinus rhythm)', starts_at: new Date(Date.now() - 600000).toISOString(), minutes: 30,
    subtrees: ['city-hospital'],
  });
  await slides(past.id, '第二周 讲义.pdf');
  await sun('POST', `/api/broadcasts/${past.id}/end`, {});
  seeded.past = past.id;
});

for (const user of ['dr-zhao', 'dr-li', 'dr-chen', 'trainer-sun', 'admin']) {
  for (const locale of LOCALES) {
    for (const viewport of VIEWPORTS) {
      test(`${user}, ${locale}, ${viewport.width}×${viewport.height}: every page passes`, async () => {
        expect(seeded.consults && seeded.broadcast, 'not seeded');
        const s = await openAs(user, locale, viewport);
        try {
          for (const [hash, ready] of pagesOf(user)) await visit(s, hash, ready, locale);
          if (viewport.width === 1280 && locale === 'zh-CN') await s.page.screenshot({ path: shot(`pages-${user}-home.png`) }).catch(() => {});
        } finally {
          await s.context.close();
        }
        expect(s.problems.length === 0, `${s.problems.length} problem(s):\n  ${s.problems.join('\n  ')}`);
      });
    }
  }
}

// A message of the catalogue as a pattern of the text shown, its placeholders any text.
const shownAs = msg => new RegExp(`^${msg.split(/\{\w+\}/).map(p => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.+')}$`);

for (const locale of LOCALES) {
  test(`admin, ${locale}: a device token for the island clinic's ECG cart is shown once, listed active, revoked`, async () => {
    const msg = { en, 'zh-CN': zh }[locale];
    const s = await openAs('admin', locale, VIEWPORTS[0]);
    const { page } = s;
    const label = `export PC ${Date.now()}`;
    const row = `#device-tokens tr:has(span:text-is("${label}"))`;
    const status = async () => (await page.textContent(`${row} td:nth-child(6)`)).trim();
    try {
      await visit(s, '#/admin/devices', 'table', locale);
      await page.selectOption('select[name=site]', 'island-clinic');
      await page.click('tr:has(code:text-is("ISLANDECG")) button[aria-expanded="false"]', { timeout: T });
      // The demo seeds a token of the cart's own.
      await page.waitForSelector('#device-tokens tr:has(span:text-is("demo cart export"))', { timeout: T });
      await page.fill('#device-tokens input[name=label]', label);
      await page.click('#device-tokens button[type=submit]');
      const secret = (await (await page.waitForSelector('#new-device-token code.secret', { timeout: T })).textContent()).trim();
      expect(/^fy_[A-Za-z0-9_-]{20,}$/.test(secret), `secret shown: ${secret}`);
      const command = await page.textContent('#new-device-token p:last-child code');
      expect(command.includes(`--token ${secret}`), `command shown: ${command}`);
      await page.waitForSelector(row, { timeout: T });
      expect(await status() === msg['tokens.active'], `the new token's status: ${await status()}`);
      await check(s, locale);
      await page.click(`${row} button`);
      await page.waitForSelector(`${row}:not(:has(button))`, { timeout: T });
      expect(shownAs(msg['tokens.revoked_at']).test(await status()), `the revoked token's status: ${await status()}`);
      expect(!(await page.$('#new-device-token')), 'the secret is shown again after revoking');
      await page.waitForLoadState('networkidle').catch(() => {});
      await check(s, locale);
    } finally {
      await s.context.close();
    }
    expect(s.problems.length === 0, `${s.problems.length} problem(s):\n  ${s.problems.join('\n  ')}`);
  });
}

for (const locale of LOCALES) {
  test(`admin, ${locale}: the reading centre's routing rules and report templates are listed, saved, added and removed`, async () => {
    const msg = { en, 'zh-CN': zh }[locale];
    const s = await openAs('admin', locale, VIEWPORTS[0]);
    const { page } = s;
    const rules = () => page.$$eval('#routing-rules tr[data-rule]', trs => trs.map(tr => `${tr.dataset.from} ${tr.dataset.kind}`).sort().join(', '));
    const demo = 'island-clinic ecg, island-clinic imaging, mountain-clinic ecg, mountain-clinic imaging';
    const rule = '#routing-rules tr[data-from="county-hospital"][data-kind="ecg"]';
    const tpl = '#reading-templates tr[data-template-kind="imaging"][data-template-modality="CT"]';
    const line = `Technique: pages check, ${locale} ${Date.now()}`;
    const text = async sel => (await page.textContent(sel)).trim();
    try {
      await visit(s, '#/admin/reading', '#reading-templates', locale);
      // The admin's own site is the centre shown, with the demo's rules by site name.
      expect(await page.inputValue('select[name=site]') === 'city-hospital', `centre shown: ${await page.inputValue('select[name=site]')}`);
      expect(await rules() === demo, `rules listed: ${await rules()}`);
      expect(await text('#routing-rules tr[data-from="island-clinic"][data-kind="imaging"] td:first-child') === 'Island Clinic', 'the sending site by name');
      // A template for imaging CT: saved, listed by its first line, back in the editor, removed.
      expect(!(await page.$(tpl)), 'a CT template exists before the check');
      await page.selectOption('#template-form select[name=kind]', 'imaging');
      await page.selectOption('#template-form select[name=modality]', 'CT');
      await page.fill('#template-form textarea[name=findings]', `${line}\n\nFindings:\n`);
      await page.fill('#template-form textarea[name=impression]', 'No acute abnormality.');
      await page.click('#template-form button[type=submit]');
      await page.waitForSelector(tpl, { timeout: T });
      expect(await text(`${tpl} .template-first-line`) === line, `first line listed: ${await text(`${tpl} .template-first-line`)}`);
      await page.click(`${tpl} td.actions button:first-child`);
      expect(await page.inputValue('#template-form textarea[name=findings]') === `${line}\n\nFindings:\n`, 'Edit fills the editor');
      await page.waitForLoadState('networkidle').catch(() => {});
      await check(s, locale);
      await page.click(`${tpl} td.actions button:last-child`);
      await page.waitForSelector(tpl, { state: 'detached', timeout: T });
      // A rule: County Hospital's ECGs, urgent; listed, then removed.
      await page.selectOption('#rule-form select[name=from_site]', 'county-hospital');
      await page.selectOption('#rule-form select[name=kind]', 'ecg');
      await page.selectOption('#rule-form select[name=priority]', 'urgent');
      await page.click('#rule-form button[type=submit]');
      await page.waitForSelector(rule, { timeout: T });
      expect(await text(`${rule} td:first-child`) === 'County Hospital', `the new rule's site: ${await text(`${rule} td:first-child`)}`);
      expect(await text(`${rule} td:nth-child(2)`) === msg['reading_kind.ecg'], `the new rule's kind: ${await text(`${rule} td:nth-child(2)`)}`);
      expect(await text(`${rule} td:nth-child(4)`) === msg['priority.urgent'], `the new rule's priority: ${await text(`${rule} td:nth-child(4)`)}`);
      await page.waitForLoadState('networkidle').catch(() => {});
      await check(s, locale);
      await page.click(`${rule} td.actions button`);
      await page.waitForSelector(rule, { state: 'detached', timeout: T });
      expect(await rules() === demo, `rules listed after removing: ${await rules()}`);
      await page.waitForLoadState('networkidle').catch(() => {});
      await check(s, locale);
    } finally {
      await s.context.close();
    }
    expect(s.problems.length === 0, `${s.problems.length} problem(s):\n  ${s.problems.join('\n  ')}`);
  });
}

test('a signed-out deep link to a consult lands on that consult after sign-in', async () => {
  const id = seeded.consults.signed;
  const s = await openAs(null, 'en', VIEWPORTS[0]);
  try {
    s.hash = `#/consults/${encodeURIComponent(id)}`;
    await s.page.goto(`${base}/${s.hash}`);
    await s.page.waitForSelector('#login-form', { timeout: T });
    expect(s.page.url().includes('#/login?next='), `sign-in page at ${s.page.url()}`);
    s.hash = '#/login';
    await check(s, 'en');
    await signIn(s.page, 'dr-zhao', 'ferry-demo', { deepLink: true });
    s.signedOut = false;
    await s.page.waitForSelector('#consult', { timeout: T });
    s.hash = `#/consults/${encodeURIComponent(id)}`;
    expect(new URL(s.page.url()).hash === s.hash, `landed on ${s.page.url()}`);
    await s.page.waitForLoadState('networkidle').catch(() => {});
    await check(s, 'en');
  } finally {
    await s.context.close();
  }
  expect(s.problems.length === 0, `${s.problems.length} problem(s):\n  ${s.problems.join('\n  ')}`);
});
