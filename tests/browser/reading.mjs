// Real-browser check of a reading centre, three people in three browser contexts: dr-zhao
// (clinician, Island Clinic), dr-li (radiologist, City Hospital, in Chinese) and dr-chen (ECG
// reader, City Hospital). dr-li has the worklist open while a CT is sent by C-STORE: it appears
// within a second of the send finishing, without a reload; dr-zhao sends it for reading from the
// study list; dr-chen may not claim it (403); dr-li claims it, the OHIF viewer is framed beside
// the report editor, writes the report in Chinese (the draft saves itself) and signs it;
// dr-zhao's open page shows the report live, its PDF is a PDF, and dr-zhao acknowledges it. The
// island's ECG cart posts an ECG with its device token; dr-chen opens it from the worklist in the
// 12-lead viewer, claims it and marks ventricular tachycardia critical; dr-zhao's red banner
// shows within 2 s, dr-zhao acknowledges with a read-back line, and dr-chen's page shows it
// acknowledged. The turnaround page shows the three intervals for imaging, as table and chart.
// No script error, console error or unexpected failed request anywhere.
// Run by tests/it/browser.rs with FERRY_URL, CT_DIR (DICOM slices of one CT), DIMSE_PORT,
// CART_TOKEN and ECG_FILE set. The script sends the CT itself with storescu when it is time.
import test, { after, before } from 'node:test';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { catalogueArgs, englishOnPage } from './catalogue-check.mjs';
import { base, expect, launch, shot, signIn } from './lib.mjs';

const env = name => {
  const v = process.env[name];
  if (!v) { console.error(`${name} is not set`); process.exit(2); }
  return v;
};
const ctDir = env('CT_DIR'), dimsePort = env('DIMSE_PORT'), cartToken = env('CART_TOKEN'), ecgFile = env('ECG_FILE');
const T = 20000;
const slices = readdirSync(ctDir).filter(f => !f.startsWith('.')).map(f => join(ctDir, f)).sort();
// The CT's Study Instance UID, as DCMTK reads it.
const studyUid = /\[([0-9.]+)\]/.exec(execFileSync('/usr/bin/dcmdump', ['+P', '0020,000d', slices[0]]).toString())[1];

const problems = [];
let browser;
const people = {};

/** A signed-in page whose script errors, console errors and unexpected failures are problems. */
async function openAs(user, locale) {
  const context = await browser.newContext({ locale, viewport: { width: 1366, height: 900 } });
  // OHIF itself is checked by viewer.mjs; here its frame only has to be there.
  await context.route('**/viewer/**', route => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>viewer</title>' }));
  const page = await context.newPage();
  page.on('pageerror', e => problems.push(`${user}: script error: ${e.message}`));
  page.on('console', m => { if (m.type() === 'error' && !/status of 403/.test(m.text())) problems.push(`${user}: console: ${m.text()}`); });
  page.on('requestfailed', r => { if (!/ERR_ABORTED/.test(r.failure()?.errorText || '')) problems.push(`${user}: failed ${r.method()} ${r.url()}`); });
  page.on('response', r => {
    // dr-chen's claim of the imaging request is refused on purpose.
    if (r.status() >= 400 && !(user === 'dr-chen' && r.status() === 403 && /\/claim$/.test(r.url()))) {
      problems.push(`${user}: ${r.status()} ${r.request().method()} ${r.url()}`);
    }
  });
  await signIn(page, user);
  return page;
}

before(async () => {
  browser = await launch();
  people.li = await openAs('dr-li', 'zh-CN');
  people.zhao = await openAs('dr-zhao', 'en-US');
  people.chen = await openAs('dr-chen', 'en-US');
});
after(async () => { await browser?.close(); });

const mark = p => p.evaluate(() => { window.ferryTestMark = true; });
const marked = p => p.evaluate(() => window.ferryTestMark === true);
const row = uid => `#reading-list tr[data-study="${uid}"]`;
let readingId = null, ecgId = null, ecgReading = null;
const findings = '右肺上叶见一约8毫米结节，边缘光整，未见胸腔积液。';
const impression = '右肺上叶小结节，建议三个月后复查胸部CT。';

function storescu() {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/storescu', ['-aet', 'ISLANDCT', '-aec', 'FERRY', '127.0.0.1', dimsePort, ...slices], (err, stdout, stderr) => {
      if (err) reject(new Error(`storescu: ${err.message}\n${stderr}`)); else resolve(Date.now());
    });
  });
}

test('dr-li has the worklist open; the CT sent by C-STORE appears in it within a second, without a reload', async () => {
  const { li } = people;
  await li.goto(`${base}/#/readings`);
  await li.waitForSelector('#reading-list[data-scope="centre"]', { timeout: T });
  await mark(li);
  const sent = await storescu();
  await li.waitForSelector(row(studyUid), { timeout: T });
  const late = Date.now() - sent;
  console.log(`# the CT showed in the worklist ${late} ms after storescu ended`);
  expect(late < 1500, `the CT showed ${late} ms after the send ended`);
  expect(await marked(li), 'the worklist was reloaded, not updated live');
  readingId = await li.getAttribute(row(studyUid), 'data-reading');
  const text = await li.textContent(row(studyUid));
  expect(text.includes('王小东') && !text.includes('^'), `the row names the patient: ${text}`);
});

test('dr-zhao finds the request on the study list and sends it for reading', async () => {
  const { zhao, li } = people;
  await zhao.goto(`${base}/#/studies?study=${studyUid}`);
  await zhao.click(`tr[data-study="${studyUid}"] a.reading-link`, { timeout: T });
  await zhao.waitForSelector(`#reading[data-state]`, { timeout: T });
  expect(new URL(zhao.url()).hash === `#/readings/${readingId}`, `the link led to ${zhao.url()}`);
  await mark(zhao);
  if (await zhao.$('#send')) await zhao.click('#send');
  await zhao.waitForSelector('#reading[data-state="ready"]', { timeout: T });
  // The worklist follows.
  await li.waitForSelector(`${row(studyUid)}[data-state="ready"]`, { timeout: T });
});

test("dr-chen (ECG reader) may not claim the imaging request: the server answers 403", async () => {
  const { chen } = people;
  await chen.goto(`${base}/#/readings/${encodeURIComponent(readingId)}`);
  await chen.waitForSelector('#reading[data-state="ready"]', { timeout: T });
  expect(!(await chen.$('#claim')), 'dr-chen is offered the claim of an imaging request');
  const status = await chen.evaluate(async id => {
    const me = await (await fetch('/api/me')).json();
    const r = await fetch(`/api/readings/${encodeURIComponent(id)}/claim`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token }, body: '{}',
    });
    return r.status;
  }, readingId);
  expect(status === 403, `dr-chen's claim answered ${status}`);
});

test('dr-li opens it from the worklist and claims it; the OHIF viewer is framed beside the report editor', async () => {
  const { li } = people;
  await li.click(`${row(studyUid)} a.open-reading`);
  await li.waitForSelector('#reading[data-state="ready"]', { timeout: T });
  await li.click('#claim');
  await li.waitForSelector('#reading[data-state="claimed"]', { timeout: T });
  await li.waitForSelector('#report-form:not([hidden]) #report-impression', { timeout: T });
  const src = await li.getAttribute('iframe#viewer', 'src');
  expect(src && src.startsWith('/viewer/') && src.includes(`StudyInstanceUIDs=${studyUid}`), `viewer frame: ${src}`);
  expect(await li.getAttribute('#viewer-tab', 'target') === '_blank', 'no link to the viewer in a tab of its own');
  const side = await li.evaluate(() => {
    const v = document.querySelector('iframe#viewer').getBoundingClientRect(), e = document.querySelector('#report-form').getBoundingClientRect();
    return v.right <= e.left + 1;
  });
  expect(side, 'the viewer is not beside the report editor');
  const english = await li.evaluate(englishOnPage, catalogueArgs());
  expect(english.length === 0, `English in dr-li's Chinese reading page:\n  ${english.join('\n  ')}`);
});

test('dr-li writes the report in Chinese: the draft saves itself; the report is signed after a confirmation', async () => {
  const { li } = people;
  await li.fill('#report-findings', findings);
  await li.fill('#report-impression', impression);
  await li.waitForFunction(() => /草稿已于/.test(document.querySelector('#draft-status')?.textContent || ''), null, { timeout: T });
  const draft = await li.evaluate(async id => (await (await fetch(`/api/readings/${encodeURIComponent(id)}`)).json()).draft, readingId);
  expect(draft && draft.impression === impression, `the draft kept: ${JSON.stringify(draft)}`);
  await li.click('#sign-report');
  await li.click('#sign-confirm', { timeout: T });
  await li.waitForSelector('#reports li[data-version="1"]', { timeout: T });
  await li.waitForSelector('#reading[data-state="signed"]', { timeout: T });
  const shown = await li.textContent('#reports li[data-version="1"]');
  expect(shown.includes(impression) && shown.includes('Dr Li'), `the signed report: ${shown}`);
});

test("dr-zhao's open page shows the report live; its PDF is a PDF; dr-zhao acknowledges it", async () => {
  const { zhao } = people;
  await zhao.waitForSelector('#reports li[data-version="1"]', { timeout: T });
  expect(await marked(zhao), "dr-zhao's page was reloaded, not updated live");
  const text = await zhao.textContent('#reports li[data-version="1"] .report-impression');
  expect(text === impression, `dr-zhao reads: ${text}`);
  const href = await zhao.getAttribute('#reports li[data-version="1"] a.report-pdf', 'href');
  expect(href.includes('/report.pdf?lang=en'), `PDF link: ${href}`);
  const pdf = await zhao.evaluate(async h => {
    const r = await fetch(h);
    const b = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...b.slice(0, 5)) };
  }, href);
  expect(pdf.status === 200 && /^application\/pdf/.test(pdf.type) && pdf.head === '%PDF-', `the PDF: ${JSON.stringify(pdf)}`);
  await zhao.click('#acknowledge');
  await zhao.waitForFunction(() => !document.querySelector('#acknowledge') && document.querySelector('#reading').textContent.includes('Dr Zhao'), null, { timeout: T });
});

test("the cart's ECG reaches dr-chen's worklist; dr-chen opens it in the 12-lead viewer, claims it and marks ventricular tachycardia critical", async () => {
  const { chen } = people;
  await chen.goto(`${base}/#/readings`);
  await chen.waitForSelector('#reading-list', { timeout: T });
  const r = await fetch(`${base}/api/ecgs`, {
    method: 'POST', headers: { Authorization: `Bearer ${cartToken}`, 'Content-Type': 'application/octet-stream' }, body: readFileSync(ecgFile),
  });
  const rec = await r.json();
  expect(r.status === 201 || r.status === 200, `the cart's POST answered ${r.status}: ${JSON.stringify(rec)}`);
  ecgId = rec.id;
  const ecgRow = `#reading-list tr[data-ecg="${ecgId}"]`;
  await chen.waitForSelector(ecgRow, { timeout: T });
  ecgReading = await chen.getAttribute(ecgRow, 'data-reading');
  await chen.click(`${ecgRow} a.open-reading`);
  await chen.waitForSelector('#reading[data-state="ready"]', { timeout: T });
  await chen.waitForFunction(() => window.__ecgView && window.__ecgView.boxes.length >= 12, null, { timeout: T });
  await chen.click('#claim');
  await chen.waitForSelector('#critical-form select[name=finding]', { timeout: T });
  await chen.selectOption('#critical-form select[name=finding]', 'vt');
  await chen.fill('#critical-form input[name=note]', 'VT at 180/min on the rhythm strip');
  await mark(chen);
  people.raisedAt = Date.now();
  await chen.click('#raise-critical');
  await chen.waitForSelector('#critical-list li[data-state="open"]', { timeout: T });
});

test("dr-zhao's page shows the red critical-result banner within 2 s", async () => {
  const { zhao } = people;
  await zhao.waitForSelector(`#critical-banner[role="alert"] .critical-alert[data-reading="${ecgReading}"]`, { timeout: 2000 });
  const late = Date.now() - people.raisedAt;
  console.log(`# the banner showed ${late} ms after the click`);
  expect(late < 2000, `the banner showed after ${late} ms`);
  const text = await zhao.textContent('#critical-banner');
  expect(/Ventricular tachycardia/.test(text) && text.includes('Dr Chen'), `the banner says: ${text}`);
  const red = await zhao.evaluate(() => getComputedStyle(document.querySelector('#critical-banner')).backgroundColor);
  expect(red === 'rgb(161, 42, 42)', `the banner's colour: ${red}`);
});

test("dr-zhao acknowledges with a read-back line; dr-chen's page shows it acknowledged, live", async () => {
  const { zhao, chen } = people;
  const form = `#critical-banner .critical-alert[data-reading="${ecgReading}"] form`;
  // Without the read-back line it is refused by the page.
  await zhao.click(`${form} button[type=submit]`);
  await zhao.waitForSelector(`${form} .error`, { timeout: T });
  const line = 'VT 180 per minute, patient on the monitor, amiodarone started';
  await zhao.fill(`${form} input[name=readback]`, line);
  await zhao.click(`${form} button[type=submit]`);
  await zhao.waitForSelector('#critical-banner', { state: 'hidden', timeout: T });
  await chen.waitForSelector('#critical-list li[data-state="acknowledged"]', { timeout: T });
  const text = await chen.textContent('#critical-list li[data-state="acknowledged"]');
  expect(text.includes(line) && text.includes('Dr Zhao'), `dr-chen reads: ${text}`);
  expect(await marked(chen), "dr-chen's page was reloaded, not updated live");
});

test('the turnaround page shows the three intervals for imaging, as a table and as charts', async () => {
  const { li } = people;
  await li.goto(`${base}/#/readings`);
  await li.click('#turnaround-link');
  await li.waitForSelector('#turnaround-table', { timeout: T });
  const cells = await li.$$eval('#turnaround-table tr[data-kind="imaging"] td[data-interval]', tds => tds.map(td => [td.dataset.interval, td.textContent.trim()]));
  expect(cells.length === 3 && cells.every(([, v]) => v && v !== '—'), `imaging intervals: ${JSON.stringify(cells)}`);
  for (const k of ['claimed', 'signed', 'acknowledged']) {
    const bars = await li.$$(`svg[data-interval="${k}"] rect.bar`);
    expect(bars.length >= 1, `no bar in the ${k} chart`);
  }
  const csv = await li.getAttribute('#turnaround-csv', 'href');
  const got = await li.evaluate(async h => { const r = await fetch(h); return { status: r.status, type: r.headers.get('content-type') }; }, csv);
  expect(got.status === 200 && /csv/.test(got.type), `the CSV: ${JSON.stringify(got)}`);
  await li.screenshot({ path: shot('reading-turnaround.png'), fullPage: true }).catch(() => {});
});

test('no script error, console error or unexpected failure on any page', async () => {
  expect(problems.length === 0, `${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
});
