// A training broadcast through Ferry's SFU, over WHIP and WHEP as any client would speak
// them: trainer-sun publishes a fake camera at 960×540 with three simulcast layers and a fake
// microphone from Chromium; viewers at three sites (island, mountain, county) watch in three
// more Chromium contexts. Each viewer must decode video frames and receive audio; on this open
// link a viewer climbs from the low layer to the full 960-pixel-wide one (the SFU switched
// layers at keyframes, rewriting the stream); the session reports who watches; a hang-up is
// seen. Then questions in the session's page: the first viewer types one and sends it, and the
// trainer's page (open beside the broadcast) shows it without reloading, pushed over the socket;
// the second viewer up-votes it and the trainer sees the count; the trainer marks it answered
// and the asker sees that; a raised hand reaches the trainer, who lowers it; the trainer's page
// shows the sites watching and how their links are. On stage: a viewer
// raises a hand in the app, the trainer brings them on stage, they accept, and the other viewer
// and the trainer hear and see them; brought back, they are heard no more.
// Run by tests/it/browser.rs with FERRY_URL and VIEWERS (user ids, comma-separated).
import test, { after, before } from 'node:test';
import { base, expect, launchMedia, shot, signedInPage } from './lib.mjs';
import { inbound, inboundAt, keepConnections, negotiate, publishSetup, schedule, until, untilInbound, watchSetup } from './whip.mjs';

const viewers = (process.env.VIEWERS || 'dr-zhao,dr-ma').split(',');
const T = 60000;
let browser, trainer, session, left, liveFrom;
const watching = [];

before(async () => { browser = await launchMedia(); });
after(async () => { await browser?.close(); });

/** A signed-in page of `user` on Ferry's origin. */
const pageOf = user => signedInPage(browser, user);

test('trainer-sun schedules a session and publishes three simulcast layers over WHIP', { timeout: T }, async () => {
  trainer = await pageOf('trainer-sun');
  session = await trainer.evaluate(schedule, { title: 'ECG reading, week 3', starts_at: Date.now() + 60000, subtrees: ['county-hospital'] });
  expect(/^bc_/.test(session || ''), `no session: ${session}`);
  await trainer.evaluate(publishSetup);
  const where = await trainer.evaluate(negotiate, `/api/broadcasts/${session}/whip`);
  liveFrom = Date.now();
  expect(where.startsWith(`/api/broadcasts/${session}/whip/`), `Location ${where}`);
  // Three layers leave the trainer's browser.
  await until(trainer, async () => {
    const s = await window.pc.getStats();
    const rids = [...s.values()].filter(x => x.type === 'outbound-rtp' && x.kind === 'video' && x.framesEncoded > 10)
      .map(x => `${x.rid}:${x.frameWidth}`);
    return { ok: rids.length === 3, rids };
  }, null, 20000, 'three layers sent');
  const info = await trainer.evaluate(async id => (await (await fetch(`/api/broadcasts/${id}`)).json()), session);
  expect(info.state === 'live', `state ${info.state}`);
  expect(info.media.presenter === true, `media ${JSON.stringify(info.media)}`);
});

test('viewers at three sites watch over WHEP: frames decoded, audio received', { timeout: 90000 }, async () => {
  for (const user of viewers) {
    const page = await pageOf(user);
    await page.evaluate(watchSetup);
    const where = await page.evaluate(negotiate, `/api/broadcasts/${session}/whep`);
    expect(where.startsWith(`/api/broadcasts/${session}/whep/`), `${user}: Location ${where}`);
    watching.push({ user, page, where });
  }
  for (const { user, page } of watching) {
    await untilInbound(page, r => r.frames > 30 && r.audio > 100, 30000, `${user} decoding`);
  }
  const info = await trainer.evaluate(async id => (await (await fetch(`/api/broadcasts/${id}`)).json()), session);
  expect(info.media.watching === viewers.length, `watching ${JSON.stringify(info.media)}`);
});

test('on an open link a viewer climbs to the full-size layer, the stream unbroken', { timeout: 60000 }, async () => {
  const { user, page } = watching[0];
  const before = await page.evaluate(inbound);
  const after = await untilInbound(page, r => r.width >= 960, 40000, `${user} reaching 960 px`);
  const seen = [...new Set(await page.evaluate(() => window.widths))].filter(Boolean);
  expect(seen[0] < 960, `started on a smaller layer: ${seen}`);
  // Decoding went on across the switches.
  const n = after.frames + 60;
  const later = await untilInbound(page, r => r.frames > n, 10000, `${user} decoding on the top layer`);
  expect(later.width >= 960, `fell back to ${later.width}`);
  console.log(`# broadcast: ${user} widths ${seen.join(' -> ')}; frames decoded ${before.frames} -> ${later.frames}, ` +
    `${later.dropped} dropped, ${later.plis} PLIs, ${later.nacks} NACKs, ${later.lost} video and ${later.audioLost} audio packets lost`);
});

test('a viewer hangs up with DELETE; the session sees one fewer', { timeout: T }, async () => {
  const { user, page, where } = watching.pop();
  left = user;
  const status = await page.evaluate(async url => {
    const me = await (await fetch('/api/me')).json();
    return (await fetch(url, { method: 'DELETE', headers: { 'X-CSRF-Token': me.csrf_token } })).status;
  }, where);
  expect(status === 200, `DELETE ${status}`);
  await until(trainer, async ([id, n]) => {
    const info = await (await fetch(`/api/broadcasts/${id}`)).json();
    return { ok: info.media.watching === n, media: info.media };
  }, [session, viewers.length - 1], 15000, 'one fewer watching');
});

test('attendance: each viewer by site, with media received and time watched; the CSV', { timeout: T }, async () => {
  const report = await until(trainer, async ([id, gone]) => {
    const r = await (await fetch(`/api/broadcasts/${id}/attendance`)).json();
    const viewers = r.people.filter(p => p.role === 'viewer');
    const done = viewers.find(p => p.user === gone);
    return { ok: viewers.length === 3 && !!done && !!done.left_at && done.watched_seconds > 0, ...r };
  }, [session, left], 20000, 'attendance of the one who left');
  const viewers = report.people.filter(p => p.role === 'viewer');
  const who = viewers.map(p => p.user).sort().join();
  expect(who === [...viewers.map(p => p.user)].sort().join() && who === [...process.env.VIEWERS.split(',')].sort().join(), `viewers ${who}`);
  for (const p of viewers) {
    expect(p.first_media_at && Date.parse(p.joined_at) <= Date.parse(p.first_media_at), `${p.user}: media never reached them: ${JSON.stringify(p)}`);
    // The one who left has their whole time; those still watching are saved every 10 s.
    if (p.user === left) expect(p.watched_seconds >= 3, `${p.user}: watched ${p.watched_seconds} s`);
    expect(p.name && !p.name.includes('^'), `${p.user}: no name`);
    expect(p.user === left ? !!p.left_at : !p.left_at, `${p.user}: left_at ${p.left_at}`);
  }
  const sites = report.sites.map(s => `${s.site}:${s.people}`).sort().join(' ');
  expect(sites === 'county-hospital:1 island-clinic:1 mountain-clinic:1', `sites ${sites}`);
  expect(report.people.some(p => p.role === 'presenter' && p.user === 'trainer-sun'), 'the presenter is listed');
  const csv = await trainer.evaluate(async id => (await fetch(`/api/broadcasts/${id}/attendance?format=csv`)).text(), session);
  const lines = csv.trim().split(/\r\n/);
  expect(lines[0] === 'user,name,site,role,joined_at,left_at,minutes_watched', `CSV header ${lines[0]}`);
  expect(lines.length === 5, `CSV rows: ${lines.length - 1}`);
  // Attendance is the training office's (the session's own site): a viewer is refused it.
  const { page } = watching[0];
  const status = await page.evaluate(async id => (await fetch(`/api/broadcasts/${id}/attendance`)).status, session);
  expect(status === 403, `a viewer read the attendance: ${status}`);
  console.log(`# attendance: ${viewers.map(p => `${p.user}@${p.site} ${p.watched_seconds}s`).join(', ')}`);
});

/**
 * Polls `read` from node (every 20 ms) until it gives something truthy: that and the ms since
 * `from`. Fails after `timeout` ms.
 */
async function poll(what, read, from = Date.now(), timeout = 5000) {
  for (;;) {
    const v = await read();
    if (v) return { v, ms: Date.now() - from };
    expect(Date.now() - from < timeout, `${what}: not within ${timeout} ms`);
    await new Promise(r => setTimeout(r, 20));
  }
}

/** In the page: the dataset of question `q`'s line, with its votes and list, or null. */
const questionLine = q => {
  const li = document.querySelector(`#broadcast-questions li[data-question="${q}"]`);
  return li && { ...li.dataset, list: li.closest('ol')?.id, votesText: li.querySelector('.question-votes')?.textContent,
    tag: !!li.querySelector('.answered-tag'), pressed: li.querySelector('button[data-action=vote]')?.getAttribute('aria-pressed') ?? null };
};

test('questions: a viewer asks in the page and the trainer sees it without reloading; an up-vote, an answer and a raised hand go across', { timeout: T }, async () => {
  const [asker, voter] = watching;
  const desk = await trainer.context().newPage();
  const errors = [];
  const pushes = [];
  desk.on('websocket', ws => ws.on('framereceived', f => {
    if (String(f.payload).includes('"event":"questions"')) pushes.push(Date.now());
  }));
  const pages = [desk, asker.page, voter.page];
  for (const p of pages) p.on('pageerror', e => errors.push(e.message));
  const hash = `#/broadcasts/${session}`;
  await desk.goto(`${base}/${hash}`);
  // The viewers' pages go to the session's page as a link does: the broadcast they receive goes on.
  for (const { page } of [asker, voter]) await page.evaluate(h => { location.hash = h; }, hash);
  for (const p of pages) {
    await p.waitForSelector('#broadcast-questions[data-loaded="true"]', { timeout: 15000 });
    await poll('the socket open', () => p.evaluate(() => !!window.ferrySocket.ws && window.ferrySocket.ws.readyState === 1), Date.now(), 10000);
  }
  expect(await desk.getAttribute('#broadcast-questions', 'data-trainer') === 'true', "the trainer's page is not the trainer's");
  expect(await asker.page.getAttribute('#broadcast-questions', 'data-trainer') === 'false', "the viewer's page is the trainer's");
  await desk.evaluate(() => { window.notReloaded = true; });

  // The question, typed and sent in the asker's page.
  const text = `Synthetic question ${Date.now()}: is a PR interval of 220 ms a first-degree AV block?`;
  await asker.page.fill('#question-text', text);
  const asked = Date.now();
  await asker.page.click('#question-submit');
  const atTrainer = await poll('the question at the trainer', () => desk.evaluate(x => {
    for (const li of document.querySelectorAll('#question-list li[data-question]')) {
      if (li.querySelector('.question-text')?.textContent === x) return { id: li.dataset.question, who: li.querySelector('.person')?.textContent };
    }
    return null;
  }, text), asked);
  const q = atTrainer.v.id;
  expect(await desk.evaluate(() => window.notReloaded === true), 'the trainer page reloaded');
  expect(pushes.some(at => at >= asked), 'no socket message told the trainer');
  expect(atTrainer.v.who === 'Dr Zhao · Island Clinic', `asked by ${atTrainer.v.who}`);
  expect(/Dr Zhao/.test(await desk.textContent('#questions-news')), `announced: ${await desk.textContent('#questions-news')}`);
  expect(await asker.page.inputValue('#question-text') === '', 'the question stayed in the box');
  expect((await asker.page.textContent('#question-status')).trim() === 'Your question was sent.', 'no word that it was sent');
  const line = await desk.evaluate(questionLine, q);
  expect(line.votes === '0' && line.answered === 'false' && line.list === 'question-list', `at the trainer: ${JSON.stringify(line)}`);

  // The other viewer up-votes it; the trainer's count shows 1.
  await poll('the question at the voter', () => voter.page.evaluate(questionLine, q), Date.now(), 5000);
  const voted = Date.now();
  await voter.page.click(`li[data-question="${q}"] button[data-action=vote]`);
  const counted = await poll('one vote at the trainer', () => desk.evaluate(questionLine, q).then(l => l && l.votes === '1' && l), voted);
  expect(counted.v.votesText === '1 vote', `count shown: ${counted.v.votesText}`);
  const mine = await poll('the vote pressed at the voter', () => voter.page.evaluate(questionLine, q).then(l => l && l.pressed === 'true' && l));
  expect(mine.v.voted === 'true', `the voter's line: ${JSON.stringify(mine.v)}`);

  // The trainer marks it answered; the asker sees it answered.
  const answering = Date.now();
  await desk.click(`li[data-question="${q}"] button[data-action=answer]`);
  const answered = await poll('answered at the asker', () => asker.page.evaluate(questionLine, q).then(l => l && l.answered === 'true' && l), answering);
  expect(answered.v.tag && answered.v.list === 'answered-list', `at the asker: ${JSON.stringify(answered.v)}`);
  await poll('a Reopen button at the trainer', () => desk.$(`#answered-list li[data-question="${q}"] button[data-action=reopen]`));

  // A viewer raises a hand; the trainer sees it and lowers it; the viewer sees it lowered.
  const voterId = voter.user;
  const raising = Date.now();
  await voter.page.click('#raise-hand');
  const hand = await poll('the hand at the trainer', () => desk.$(`#hand-list li[data-user="${voterId}"]`), raising);
  await poll('the hand shown raised to its owner', () => voter.page.getAttribute('#hand-bar', 'data-raised').then(v => v === 'true'));
  const lowering = Date.now();
  await desk.click(`#hand-list li[data-user="${voterId}"] button[data-action=lower]`);
  const lowered = await poll('the hand lowered at the viewer', () => voter.page.getAttribute('#hand-bar', 'data-raised').then(v => v === 'false'), lowering);
  await poll('no hand at the trainer', () => desk.$('#no-hands'));

  // Who watches, by site, and how their links are: the two sites still watching, on this open
  // link good (or fair while a viewer is still on the low layer); the one who left, gone.
  const sites = await poll('the sites watching at the trainer', () => desk.evaluate(() => {
    const rows = [...document.querySelectorAll('#site-health tr[data-site]')].map(r => `${r.dataset.site}:${r.dataset.grade}`);
    return rows.length === 2 && rows;
  }), Date.now(), 15000);
  const graded = Object.fromEntries(sites.v.map(x => x.split(':')));
  expect(['good', 'fair'].includes(graded['island-clinic']) && ['good', 'fair'].includes(graded['mountain-clinic']), `sites: ${sites.v}`);
  await desk.screenshot({ path: shot('broadcast-questions-trainer.png'), fullPage: true }).catch(() => {});
  await asker.page.screenshot({ path: shot('broadcast-questions-viewer.png'), fullPage: true }).catch(() => {});
  await desk.close();
  expect(errors.length === 0, `script errors: ${errors.join('; ')}`);
  console.log(`# questions: asked -> at the trainer ${atTrainer.ms} ms (socket message after ${pushes.find(at => at >= asked) - asked} ms); ` +
    `up-vote -> trainer's count ${counted.ms} ms; answered -> at the asker ${answered.ms} ms; ` +
    `hand raised -> at the trainer ${hand.ms} ms; lowered -> at the viewer ${lowered.ms} ms; sites watching ${sites.v.join(', ')}`);
});

test('on stage: the trainer brings a viewer who raised a hand on stage; the other viewer and the trainer hear and see them, then no more', { timeout: 90000 }, async () => {
  const [speaker, listener] = watching;
  const hash = `#/broadcasts/${session}`;
  const errors = [];
  /** A new page of the same person at the session, its connections kept for their figures. */
  const sessionPage = async (context) => {
    const p = await context.newPage();
    p.on('pageerror', e => errors.push(e.message));
    await p.addInitScript(keepConnections);
    await p.goto(`${base}/${hash}`);
    await p.waitForSelector('#broadcast-questions[data-loaded="true"]', { timeout: 15000 });
    await poll('the socket open', () => p.evaluate(() => !!window.ferrySocket.ws && window.ferrySocket.ws.readyState === 1), Date.now(), 10000);
    return p;
  };
  const desk = await sessionPage(trainer.context());
  const speak = await sessionPage(speaker.page.context());
  const hear = await sessionPage(listener.page.context());
  // Both watch in the app (its connection asks for the stage too).
  for (const p of [speak, hear]) {
    await p.click('#watch');
    await poll('watching in the app', () => p.evaluate(() => window.pcs.some(pc => pc.connectionState === 'connected')), Date.now(), 20000);
  }
  await speak.click('#raise-hand');
  await poll('the hand at the trainer', () => desk.$(`#hand-list li[data-user="${speaker.user}"] button[data-action=stage]`), Date.now(), 10000);
  const inviting = Date.now();
  await desk.click(`#hand-list li[data-user="${speaker.user}"] button[data-action=stage]`);
  const asked = await poll('the invitation at the speaker', () => speak.isVisible('#stage-join'), inviting, 10000);
  expect(await hear.isVisible('#stage-join') === false, 'the listener was asked too');
  const accepting = Date.now();
  await speak.click('#stage-join');
  await poll('the speaker connected', () => speak.getAttribute('#on-stage', 'data-connection').then(v => v === 'connected'), accepting, 20000);
  // The listener and the trainer (on its WHIP connection) hear the speaker's microphone and
  // decode their camera. The listener's page plays it with sound: the fake device's beep has
  // energy there (not only packets). The trainer's test page plays it muted, which Chromium
  // decodes without measuring energy: its samples count.
  const heard = {};
  for (const [who, p] of [['listener', hear], ['trainer', trainer]]) {
    const from = await p.evaluate(inboundAt, 2);
    expect(from, `${who}: no connection with the stage`);
    const end = Date.now() + 20000;
    for (;;) {
      const r = await p.evaluate(inboundAt, 2);
      const sound = who === 'listener' ? r.energy > from.energy : r.samples > from.samples + 48000;
      if (r.audio > from.audio + 100 && sound && r.frames > from.frames + 30) { heard[who] = { ...r, ms: r.at - accepting }; break; }
      expect(Date.now() < end, `${who} did not hear and see the stage: ${JSON.stringify(r)} (from ${JSON.stringify(from)})`);
      await new Promise(done => setTimeout(done, 250));
    }
  }
  // Everyone's page says who is on stage; the speaker sees their own camera, without their voice back.
  const name = await hear.textContent('#stage-who');
  expect(/Dr Zhao/.test(name), `the listener's page says ${name}`);
  expect(await speak.evaluate(() => { const v = document.querySelector('#stage-video'); return v.muted && v.srcObject && v.srcObject.getAudioTracks().length > 0 && v.srcObject.getVideoTracks()[0].readyState === 'live'; }),
    "the speaker's own stage picture is not their muted camera");
  // The listener's stage plays with sound as the broadcast does (the sound button covers both).
  const sound = await hear.evaluate(() => [document.querySelector('#stage-video').muted, document.querySelector('video#stage').muted]);
  expect(sound[0] === sound[1], `the stage muted ${sound[0]}, the broadcast muted ${sound[1]}`);
  await desk.screenshot({ path: shot('broadcast-stage-trainer.png'), fullPage: true }).catch(() => {});
  await hear.screenshot({ path: shot('broadcast-stage-viewer.png'), fullPage: true }).catch(() => {});
  // Brought back: the speaker's connection closes, nobody hears them any more.
  await desk.click('#stage-end');
  await poll('the speaker off stage', () => speak.isHidden('#on-stage'), Date.now(), 10000);
  expect(await speak.evaluate(() => window.pcs.filter(pc => pc.connectionState !== 'closed').length) === 1, 'the stage connection stayed open');
  await poll('the listener told', () => hear.isHidden('#on-stage'), Date.now(), 10000);
  await new Promise(done => setTimeout(done, 1000));
  const a = await hear.evaluate(inboundAt, 2);
  await new Promise(done => setTimeout(done, 1500));
  const b = await hear.evaluate(inboundAt, 2);
  expect(b.audio === a.audio, `stage audio after the end: ${a.audio} -> ${b.audio}`);
  // The trainer's own broadcast went on for the listener all along.
  await untilInbound(listener.page, r => r.audio > 0, 5000, 'the trainer still heard');
  for (const p of [desk, speak, hear]) await p.close();
  expect(errors.length === 0, `script errors: ${errors.join('; ')}`);
  console.log(`# stage: invited -> asked at the speaker ${asked.ms} ms; accepted -> 100 stage audio packets and 30 frames at the listener after ${heard.listener.ms} ms ` +
    `(${heard.listener.width} px), by the trainer ${heard.trainer.ms} ms (${heard.trainer.width} px)`);
});

test('the trainer hangs up; the recording is filed and plays in Chromium, seeking with ranges', { timeout: 90000 }, async () => {
  const status = await trainer.evaluate(async () => {
    const me = await (await fetch('/api/me')).json();
    return (await fetch(window.resource, { method: 'DELETE', headers: { 'X-CSRF-Token': me.csrf_token } })).status;
  });
  expect(status === 200, `DELETE ${status}`);
  const liveFor = (Date.now() - liveFrom) / 1000;
  const list = await until(trainer, async id => {
    const r = await (await fetch(`/api/broadcasts/${id}/recordings`)).json();
    return { ok: r.recordings.length === 1, ...r };
  }, session, 30000, 'the recording filed');
  const rec = list.recordings[0];
  expect(rec.duration_seconds > liveFor - 3 && rec.duration_seconds <= liveFor + 0.5,
    `recorded ${rec.duration_seconds} s of ${liveFor.toFixed(1)} s live`);
  // A range, as players ask.
  const part = await trainer.evaluate(async url => {
    const r = await fetch(url, { headers: { Range: 'bytes=0-3' } });
    return { status: r.status, range: r.headers.get('Content-Range'), type: r.headers.get('Content-Type'),
      magic: [...new Uint8Array(await r.arrayBuffer())].map(b => b.toString(16)).join(' ') };
  }, rec.url);
  expect(part.status === 206 && part.range === `bytes 0-3/${rec.bytes}` && part.type === 'video/webm', `range: ${JSON.stringify(part)}`);
  expect(part.magic === '1a 45 df a3', `not EBML: ${part.magic}`);
  // Played in Chromium: its duration, a seek to the middle, frames decoded at full size.
  const played = await trainer.evaluate(async url => {
    const v = document.createElement('video');
    v.muted = true;
    document.body.append(v);
    const once = (what) => new Promise((done, fail) => {
      v.addEventListener(what, done, { once: true });
      v.addEventListener('error', () => fail(new Error(`video error ${v.error && v.error.code}: ${v.error && v.error.message}`)), { once: true });
    });
    v.src = url;
    await once('loadedmetadata');
    const duration = v.duration;
    v.currentTime = duration / 2;
    await once('seeked');
    const at = v.currentTime;
    await v.play();
    await new Promise(r => setTimeout(r, 2000));
    const q = v.getVideoPlaybackQuality();
    return { duration, at, width: v.videoWidth, height: v.videoHeight, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, now: v.currentTime };
  }, rec.url);
  expect(Math.abs(played.duration - rec.duration_seconds) < 1, `Chromium says ${played.duration} s, the server ${rec.duration_seconds} s`);
  expect(Math.abs(played.at - played.duration / 2) < 1.5, `seeked to ${played.at} of ${played.duration}`);
  expect(played.frames > 20 && played.now > played.at, `played ${JSON.stringify(played)}`);
  expect(played.width === 960 && played.height === 540, `recorded at ${played.width}x${played.height}`);
  console.log(`# recording: ${rec.duration_seconds} s of ${liveFor.toFixed(1)} s live, ${rec.bytes} bytes; Chromium: ${played.duration.toFixed(2)} s, seeked to ${played.at.toFixed(2)}, ${played.frames} frames decoded at ${played.width}x${played.height}`);
});
