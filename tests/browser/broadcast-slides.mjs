// A training session from the app's own pages, end to end: trainer-sun schedules it with a PDF
// handout attached, then adds slides on the session's page (a Chinese file name, a progress
// bar) and the island clinic's page lists them at once and opens them byte for byte; the trainer goes live, shares the screen in the
// camera's place — the viewer's picture changes to the screen's size — and back to the camera;
// then ends the session: the viewer's page says it is over, and the training library lists it
// with its slides and its recording, which plays there.
// Run by tests/it/browser.rs with FERRY_URL.
import test, { after, before } from 'node:test';
import { createHash } from 'node:crypto';
import { base, expect, launchMedia, shot, signedInPage } from './lib.mjs';
import { inboundAt, keepConnections, schedule } from './whip.mjs';

const T = 90000;
let browser, desk, viewer, session;
const errors = [];
const name = '心电图 第三周 slides.pdf';

/** A small synthetic PDF (one page of text, padded to about `size` bytes). */
function syntheticPdf(size) {
  const parts = ['%PDF-1.4\n'];
  for (let i = 0; i < (size - 600) / 64; i++) parts.push(`% padding line ${String(i).padStart(6)} ${'x'.repeat(40)}\n`);
  let out = parts.join('');
  const text = 'BT /F1 24 Tf 72 720 Td (ECG reading, week 3) Tj ET';
  const objects = ['<< /Type /Catalog /Pages 2 0 R >>', '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${text.length} >>\nstream\n${text}\nendstream`, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'];
  const offsets = [];
  objects.forEach((o, i) => { offsets.push(out.length); out += `${i + 1} 0 obj\n${o}\nendobj\n`; });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map(o => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}
const pdf = syntheticPdf(2_000_000);
const handout = syntheticPdf(30_000);

/** Polls `read` from node until it gives something truthy; fails after `timeout` ms. */
async function poll(what, read, timeout = 15000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await read();
    if (v) return v;
    expect(Date.now() < end, `${what}: not within ${timeout} ms`);
    await new Promise(r => setTimeout(r, 100));
  }
}

/** A signed-in page of `user` on the session's page, its connections kept for their figures. */
async function sessionPage(user) {
  const first = await signedInPage(browser, user);
  const p = await first.context().newPage();
  await first.close();
  p.on('pageerror', e => errors.push(`${user}: ${e.message}`));
  p.on('dialog', d => d.accept());
  await p.addInitScript(keepConnections);
  await p.goto(`${base}/#/broadcasts/${session}`);
  await p.waitForSelector('#broadcast-materials', { timeout: 15000 });
  await poll('the socket open', () => p.evaluate(() => !!window.ferrySocket.ws && window.ferrySocket.ws.readyState === 1));
  return p;
}

/** In the trainer's page: the width of the top simulcast layer going out. */
const topLayerWidth = async () => {
  for (const pc of window.pcs) {
    if (pc.connectionState !== 'connected') continue;
    const out = [...(await pc.getStats()).values()].filter(x => x.type === 'outbound-rtp' && x.kind === 'video' && x.rid === 'h');
    if (out.length) return out[0].frameWidth || 0;
  }
  return 0;
};

before(async () => { browser = await launchMedia(); });
after(async () => { await browser?.close(); });

test('the trainer schedules with PDF slides attached, then adds more on the session page; the viewer sees them at once and opens them whole', { timeout: T }, async () => {
  // Scheduled from the Training page's form, a handout attached.
  const first = await signedInPage(browser, 'trainer-sun');
  first.on('pageerror', e => errors.push(`trainer-sun: ${e.message}`));
  await first.goto(`${base}/#/broadcasts?schedule`);
  await first.fill('#schedule-title', 'ECG reading, week 3');
  await first.check('#schedule-audience li[data-site="island-clinic"] input[name=audience]');
  await first.setInputFiles('#schedule-materials', { name: 'handout.pdf', mimeType: 'application/pdf', buffer: handout });
  await first.click('#schedule-submit');
  const notice = await poll('scheduled', () => first.$('#scheduled-notice[data-broadcast]'));
  session = await notice.getAttribute('data-broadcast');
  expect(/^bc_/.test(session || ''), `no session: ${session}`);
  expect(!(await first.textContent('#scheduled-notice')).includes('could not'), 'the handout did not arrive');
  await first.close();
  desk = await sessionPage('trainer-sun');
  viewer = await sessionPage('dr-zhao');
  expect(await viewer.isHidden('#material-file'), 'a viewer can add materials');
  const listed = await viewer.$$eval('#material-list a.material-link', as => as.map(a => a.textContent));
  expect(listed.join() === 'handout.pdf', `listed at first: ${listed}`);
  // The slides, added on the session's page with a progress bar.
  await desk.setInputFiles('#material-file', { name, mimeType: 'application/pdf', buffer: pdf });
  const status = await poll('the upload done', () => desk.textContent('#material-status').then(t => t.includes('was added') && t));
  expect(status.includes(name), `status: ${status}`);
  // Pushed to the viewer's page over the socket, without reloading.
  const link = await poll('the slides at the viewer', () => viewer.$$eval('#material-list a.material-link', as => as.map(a => ({ href: a.getAttribute('href'), text: a.textContent })).find(a => a.text !== 'handout.pdf') || null));
  expect(link.text === name, `listed as ${link.text}`);
  const got = await viewer.evaluate(async href => {
    const r = await fetch(href);
    const bytes = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, type: r.headers.get('Content-Type'), disposition: r.headers.get('Content-Disposition'), hex: [...bytes].map(b => b.toString(16).padStart(2, '0')).join('') };
  }, link.href);
  expect(got.status === 200 && got.type === 'application/pdf', `fetched: ${got.status} ${got.type}`);
  const sha = createHash('sha256').update(Buffer.from(got.hex, 'hex')).digest('hex');
  expect(sha === createHash('sha256').update(pdf).digest('hex'), 'the PDF came back changed');
  expect(/filename\*=UTF-8''%E5%BF%83/.test(got.disposition || ''), `disposition ${got.disposition}`);
  await desk.screenshot({ path: shot('broadcast-materials-trainer.png'), fullPage: true }).catch(() => {});
  console.log(`# materials: a ${handout.length}-byte handout attached when scheduling; ${pdf.length} bytes sent from the session page with a progress bar, listed at the viewer and read back whole`);
});

test('the trainer goes live and shares the screen in the camera\'s place; the viewer sees the screen, then the camera again', { timeout: T }, async () => {
  await desk.click('#go-live');
  await poll('the trainer connected', () => desk.evaluate(() => window.pcs.some(pc => pc.connectionState === 'connected')), 20000);
  await viewer.click('#watch');
  const camera = [240, 480, 960];
  const watching = await poll('the camera at the viewer', () => viewer.evaluate(inboundAt, 0).then(r => r && r.frames > 30 && camera.includes(r.width) && r), 30000);
  await desk.click('#share-screen');
  await poll('the button saying the screen is shared', () => desk.getAttribute('#share-screen', 'aria-pressed').then(v => v === 'true'), 10000);
  const screenWidth = await poll('the screen going out', () => desk.evaluate(topLayerWidth).then(w => w && w !== 960 && w), 20000);
  const sizes = [screenWidth, Math.round(screenWidth / 2), Math.round(screenWidth / 4)];
  const shared = await poll('the screen at the viewer', () => viewer.evaluate(inboundAt, 0).then(r => r && sizes.some(s => Math.abs(s - r.width) <= 2) && r), 20000);
  await desk.click('#share-screen');
  const back = await poll('the camera again at the viewer', () => viewer.evaluate(inboundAt, 0).then(r => r && camera.includes(r.width) && r.frames > shared.frames && r), 20000);
  await poll('the button saying the camera is shown', () => desk.getAttribute('#share-screen', 'aria-pressed').then(v => v === 'false'), 5000);
  console.log(`# screen share: camera ${watching.width} px at the viewer; screen ${screenWidth} px sent, ${shared.width} px at the viewer; camera again ${back.width} px`);
});

test('the trainer ends the session: the viewer is told, and the library has it with its slides and its recording, which plays', { timeout: T }, async () => {
  await desk.click('#end-broadcast');
  await poll('the viewer told it is over', () => viewer.isVisible('#broadcast-over'), 15000);
  await poll('the viewer let go of the connection', () => viewer.evaluate(() => window.pcs.every(pc => pc.connectionState === 'closed')), 15000);
  expect(await desk.isDisabled('#go-live'), 'the trainer can go live on an ended session');
  // The recording is filed once the presenter's connection has closed.
  let entry = null;
  for (const end = Date.now() + 30000; !entry;) {
    await viewer.goto(`${base}/#/broadcasts/library`);
    await viewer.waitForSelector('#library-list, #library-empty', { timeout: 15000 });
    entry = await viewer.$(`article[data-broadcast="${session}"] li[data-recording]`);
    if (!entry) {
      expect(Date.now() < end, 'no recording in the library');
      await new Promise(r => setTimeout(r, 1000));
    }
  }
  const article = `article[data-broadcast="${session}"]`;
  const inLibrary = await viewer.$$eval(`${article} .material-link`, as => as.map(a => a.textContent));
  expect(inLibrary.includes(name) && inLibrary.includes('handout.pdf'), `in the library: ${inLibrary}`);
  await viewer.click(`${article} button[data-action=play]`);
  const played = await poll('the recording playing', () => viewer.evaluate(sel => {
    const v = document.querySelector(`${sel} video`);
    return v && v.readyState >= 2 && v.currentTime > 0.5 && { duration: v.duration, width: v.videoWidth };
  }, article), 20000);
  expect(played.duration > 2, `recording of ${played.duration} s`);
  await viewer.screenshot({ path: shot('broadcast-library.png'), fullPage: true }).catch(() => {});
  expect(errors.length === 0, `script errors: ${errors.join('; ')}`);
  console.log(`# library: the session with its slides and a recording of ${played.duration.toFixed(1)} s playing at ${played.width} px`);
});
