// Real-browser check of a video consult between two browsers with fake cameras and microphones:
// dr-zhao (Island Clinic) asks for a radiology consult with a study; dr-li (City Hospital) sees
// it arrive live and accepts; both meet in a WebRTC call beside the image viewer, chat, and the
// call survives dr-zhao's signalling socket dropping (ICE restart on the same connection);
// dr-ma (Mountain Clinic) is refused the room; dr-li signs the opinion, dr-zhao acknowledges it.
// With CALL_MODE=relay only the call is set up, and its media must go through the TURN relay.
// With CALL_MODE=weak the relay is capped far below what video needs: the call page must step
// down to audio only by itself, say so, and the audio must go on.
// Run by tests/it/browser.rs with FERRY_URL, CONSULT_STUDY and CALL_MODE (full, relay or weak).
import test, { after, before } from 'node:test';
import { base, expect, launchMedia, shot, signIn } from './lib.mjs';

const study = process.env.CONSULT_STUDY;
if (!study) { console.error('CONSULT_STUDY is not set'); process.exit(2); }
const mode = process.env.CALL_MODE || 'full';
const T = 30000;

const browsers = [];
const pageErrors = [];

async function openAs(browser, user) {
  const context = await browser.newContext({
    locale: 'en-US', viewport: { width: 1366, height: 860 }, permissions: ['camera', 'microphone'],
  });
  const page = await context.newPage();
  page.on('pageerror', e => pageErrors.push(`${user}: ${e.message}`));
  await signIn(page, user);
  return page;
}

// Until one of the page's peer connections is connected with no negotiation under way.
function settled(page) {
  return page.waitForFunction(() => window.ferryCall && [...window.ferryCall.pcs.values()]
    .some(pc => pc.connectionState === 'connected' && pc.signalingState === 'stable'), null, { timeout: T });
}

// Samples the inbound video frames decoded and audio samples received, then polls until the
// audio — and the video, unless `video` is false (an audio-only call) — has grown and at
// least a second has passed (or the time is up).
function mediaGrows(page, video = true) {
  return page.evaluate(async ([video, timeout]) => {
    const sample = async () => {
      let frames = 0, audio = 0;
      for (const pc of window.ferryCall.pcs.values()) {
        (await pc.getStats()).forEach(r => {
          if (r.type !== 'inbound-rtp') return;
          if (r.kind === 'video') frames += r.framesDecoded || 0;
          if (r.kind === 'audio') audio += r.totalSamplesReceived || r.packetsReceived || 0;
        });
      }
      return { frames, audio, t: Date.now() };
    };
    const first = await sample();
    for (;;) {
      await new Promise(r => setTimeout(r, 250));
      const now = await sample();
      const grew = now.audio > first.audio && (!video || now.frames > first.frames);
      if (now.t - first.t >= 1000 && grew) return { ok: true, first, now };
      if (now.t - first.t > timeout) return { ok: false, first, now };
    }
  }, [video, T]);
}

// The candidate types of each connection's selected pair.
function selectedPairs(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.ferryCall.pcs.values()) {
      const stats = await pc.getStats();
      let pairId = null;
      stats.forEach(r => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
      const pair = pairId && stats.get(pairId);
      if (!pair) continue;
      out.push({ local: stats.get(pair.localCandidateId)?.candidateType, remote: stats.get(pair.remoteCandidateId)?.candidateType });
    }
    return out;
  });
}

async function screenshots(a, b) {
  try {
    await a.screenshot({ path: shot('call-zhao.png') });
    await b.screenshot({ path: shot('call-li.png') });
  } catch (e) { console.log(`(screenshots not taken: ${e.message})`); }
}

// Two browsers, as two people on two machines.
let browserA, a, b;
before(async () => {
  browserA = await launchMedia();
  browsers.push(browserA);
  const browserB = await launchMedia();
  browsers.push(browserB);
  b = await openAs(browserB, 'dr-li');
  a = await openAs(browserA, 'dr-zhao');
});
after(async () => {
  for (const br of browsers) await br.close().catch(() => {});
});
const summary = `Fell from a ladder, pain on the right of the chest; rib fracture? (${Date.now()})`;
let id = null;
const row = () => `tr[data-consult="${id}"]`;

test('dr-li watches the inbox; dr-zhao requests a radiology consult with a study', async () => {
  await b.goto(`${base}/#/consults`);
  await b.waitForSelector('table#consult-list', { timeout: T });
  // Marks this document: if the page were reloaded, the mark would be gone.
  await b.evaluate(() => { window.ferryTestMark = true; });
  await a.goto(`${base}/#/consults/new`);
  await a.waitForSelector('form#consult-form', { timeout: T });
  await a.selectOption('select[name=specialty]', 'radiology');
  await a.selectOption('select[name=urgency]', 'urgent');
  await a.fill('textarea[name=summary]', summary);
  await a.check(`input[type=checkbox][name=study][value="${study}"]`);
  await a.click('#consult-form button[type=submit]');
  await a.waitForSelector('#consult[data-state="requested"]', { timeout: T });
  const m = /#\/consults\/([^/]+)$/.exec(a.url());
  expect(m && m[1] !== 'new', `landed on ${a.url()}`);
  id = decodeURIComponent(m[1]);
  const shown = await a.textContent('#consult');
  // People by name and site, never by login id.
  expect(shown.includes(summary) && shown.includes('Dr Zhao') && shown.includes('Island Clinic') && !shown.includes('dr-zhao')
    && /urgent/i.test(shown), `the consult page shows: ${shown}`);
  expect(await a.$('#consult-studies a.open-study'), 'the study is not listed on the consult page');
});
test('the request reaches dr-li live; dr-zhao shows online; dr-li accepts', async () => {
  await b.waitForSelector(`${row()}[data-state="requested"]`, { timeout: T });
  expect(await b.evaluate(() => window.ferryTestMark === true), 'the inbox was reloaded, not updated live');
  const urgency = await b.textContent(`${row()} .urgency`);
  expect(/urgent/i.test(urgency), `urgency shown: ${urgency}`);
  await b.waitForSelector('#presence li[data-user="dr-zhao"][data-online="true"]', { timeout: T });
  await b.click(`${row()} button.accept`);
  await b.waitForSelector('#consult[data-state="accepted"]', { timeout: T });
  await b.waitForSelector('a#join-call', { timeout: T });
  // dr-zhao's consult page follows by itself.
  await a.waitForSelector('#consult[data-state="accepted"]', { timeout: T });
});

test('both join the call and connect', async () => {
  await Promise.all([a, b].map(async p => {
    await p.goto(`${base}/#/call/${encodeURIComponent(id)}`);
    await p.waitForSelector('video#local', { timeout: T });
    await p.click('#join', { timeout: T });
  }));
  await Promise.all([a, b].map(settled));
  await Promise.all([a, b].map(p => p.waitForSelector('#call-status[data-status="connected"]', { timeout: T })));
  expect(await a.$('#remotes video[data-peer="dr-li"]'), 'dr-zhao has no video of dr-li');
  expect(await b.$('#remotes video[data-peer="dr-zhao"]'), 'dr-li has no video of dr-zhao');
});

if (mode === 'weak') {
  test('over a link too thin for video, the call steps down to audio only and says so', async () => {
    for (const [who, p] of [['dr-zhao', a], ['dr-li', b]]) {
      await p.waitForSelector('#step-down-notice:not([hidden])', { timeout: 60000 })
        .catch(async () => {
          const q = await p.evaluate(async () => {
            const out = { quality: window.ferryCall.quality, rtp: [] };
            for (const pc of window.ferryCall.pcs.values()) {
              (await pc.getStats()).forEach(r => {
                if ((r.type === 'outbound-rtp' || r.type === 'inbound-rtp') && r.kind === 'video') {
                  out.rtp.push({ type: r.type, fps: r.framesPerSecond, limit: r.qualityLimitationReason,
                    height: r.frameHeight, target: r.targetBitrate, lost: r.packetsLost });
                }
              });
            }
            return out;
          });
          throw new Error(`${who}: no step down; last stats ${JSON.stringify(q)}`);
        });
      const pressed = await p.getAttribute('#audio-only', 'aria-pressed');
      expect(pressed === 'true', `${who}: audio-only control shows ${pressed}`);
      const r = await mediaGrows(p, false);
      expect(r.ok, `${who}: audio stopped: ${JSON.stringify(r)}`);
    }
    await screenshots(a, b);
  });
} else if (mode === 'relay') {
  test('the media goes through the TURN relay on both sides', async () => {
    for (const [who, p] of [['dr-zhao', a], ['dr-li', b]]) {
      const pairs = await selectedPairs(p);
      expect(pairs.length > 0, `${who}: no selected candidate pair`);
      expect(pairs.every(x => x.local === 'relay' || x.remote === 'relay'), `${who}: selected ${JSON.stringify(pairs)}`);
      const r = await mediaGrows(p);
      expect(r.ok, `${who}: media does not flow through the relay: ${JSON.stringify(r)}`);
    }
    await screenshots(a, b);
  });
} else {
  test('video frames and audio arrive on both sides; quality is measured', async () => {
    for (const [who, p] of [['dr-zhao', a], ['dr-li', b]]) {
      const r = await mediaGrows(p);
      expect(r.ok, `${who}: ${JSON.stringify(r)}`);
    }
    await Promise.all([a, b].map(p => p.waitForFunction(() => {
      const q = document.querySelector('#quality');
      return q && q.dataset.level && q.dataset.level !== 'unknown';
    }, null, { timeout: T })));
  });

  test('a chat line from dr-zhao reaches dr-li', async () => {
    const line = 'Please look at the seventh rib on the right.';
    await a.fill('#chat-form input[name=text]', line);
    await a.press('#chat-form input[name=text]', 'Enter');
    // Everyone in the room gets the line from the server, the sender too.
    for (const p of [b, a]) {
      await p.waitForFunction(t => [...document.querySelectorAll('#chat-log li')].some(li => li.textContent.includes(t)),
        line, { timeout: T });
    }
  });

  test('mute, camera off and screen sharing do what they say', async () => {
    const localTracks = p => p.evaluate(() => {
      const s = document.querySelector('video#local').srcObject;
      return { audio: s.getAudioTracks().map(t => t.enabled), video: s.getVideoTracks().map(t => t.enabled) };
    });
    await a.click('#mute');
    expect(await a.getAttribute('#mute', 'aria-pressed') === 'true', 'mute not pressed');
    expect((await localTracks(a)).audio.every(e => !e), 'microphone still on after mute');
    await a.click('#mute');
    expect((await localTracks(a)).audio.every(e => e), 'microphone not back on');
    await a.click('#camera');
    expect((await localTracks(a)).video.every(e => !e), 'camera still on');
    await a.click('#camera');
    expect((await localTracks(a)).video.every(e => e), 'camera not back on');
    // dr-li shares the screen (16:9); dr-zhao receives it instead of the camera (4:3), and
    // the camera again when the sharing stops.
    const shapeBecomes = (p, wide) => p.evaluate(async ([wide, timeout]) => {
      const start = Date.now();
      let shape = null;
      while (Date.now() - start < timeout) {
        for (const pc of window.ferryCall.pcs.values()) {
          (await pc.getStats()).forEach(r => {
            if (r.type === 'inbound-rtp' && r.kind === 'video' && r.frameWidth) shape = r.frameWidth / r.frameHeight;
          });
        }
        if (shape && (wide ? shape > 1.6 : shape < 1.5)) return shape;
        await new Promise(r => setTimeout(r, 250));
      }
      return shape;
    }, [wide, T]);
    await b.click('#screen');
    await b.waitForSelector('#screen[aria-pressed="true"]', { timeout: T });
    const shared = await shapeBecomes(a, true);
    expect(shared > 1.6, `dr-zhao does not receive the screen (frame shape ${shared})`);
    await b.click('#screen');
    const camera = await shapeBecomes(a, false);
    expect(camera < 1.5, `the camera did not come back after sharing (frame shape ${camera})`);
  });

  test("dr-zhao's socket drops mid-call: it reconnects, ICE restarts, media goes on", async () => {
    const opens = await a.evaluate(() => {
      window.ferryTestPc = window.ferryCall.pcs.get('dr-li');
      const n = window.ferrySocket.opens;
      window.ferrySocket.ws.close();
      return n;
    });
    await a.waitForFunction(n => window.ferrySocket.opens > n, opens, { timeout: T });
    // dr-li restarts ICE when dr-zhao is back; dr-zhao answers the restart.
    await b.waitForFunction(() => window.ferryCall.restarts >= 1, null, { timeout: T });
    await a.waitForFunction(() => window.ferryCall.restarts >= 1, null, { timeout: T });
    await Promise.all([a, b].map(settled));
    await Promise.all([a, b].map(p => p.waitForSelector('#call-status[data-status="connected"]', { timeout: T })));
    expect(await a.evaluate(() => window.ferryCall.pcs.get('dr-li') === window.ferryTestPc),
      "dr-zhao's peer connection was replaced instead of kept");
    for (const [who, p] of [['dr-zhao', a], ['dr-li', b]]) {
      const r = await mediaGrows(p);
      expect(r.ok, `${who} after the restart: ${JSON.stringify(r)}`);
    }
  });

  test("the viewer beside the call shows the consult's study", async () => {
    for (const p of [a, b]) {
      await p.waitForFunction(uid => (document.querySelector('iframe#viewer')?.src || '').includes(uid), study, { timeout: T });
      // The viewer itself loaded in the frame (a refused frame shows an error page instead).
      await p.waitForFunction(() => {
        const d = document.querySelector('iframe#viewer')?.contentDocument;
        return !!d && d.location.pathname.startsWith('/viewer/') && d.readyState !== 'loading';
      }, null, { timeout: T });
    }
    await screenshots(a, b);
  });

  test('dr-ma of Mountain Clinic is refused the open room', async () => {
    const ma = await openAs(browserA, 'dr-ma');
    await ma.goto(`${base}/#/call/${encodeURIComponent(id)}`);
    await ma.click('#join', { timeout: T });
    await ma.waitForSelector('#call-error', { state: 'visible', timeout: T });
    const text = await ma.textContent('#call-error');
    expect(text.includes('not_allowed'), `error shown: ${text}`);
    const live = await ma.evaluate(() => [...window.ferryCall.pcs.values()].filter(pc => pc.connectionState === 'connected').length);
    expect(live === 0, `${live} connections for dr-ma`);
    expect((await ma.getAttribute('#call-status', 'data-status')) !== 'connected', 'dr-ma shows as connected');
    // The call of the participants goes on.
    expect(await b.evaluate(() => window.ferryCall.status) === 'connected', 'the call was disturbed');
    await ma.context().close();
  });

  test('dr-li hangs up and signs the opinion; dr-zhao sees it live and acknowledges', async () => {
    const opinion = 'Fracture of the seventh right rib, no pneumothorax. Analgesia; review in two weeks.';
    await b.click('#hangup');
    await b.waitForSelector('#consult', { timeout: T });
    await a.click('#hangup');
    await a.waitForSelector('#consult', { timeout: T });
    await a.evaluate(() => { window.ferryTestMark = true; });
    expect((await b.textContent('#sign-opinion')).trim() === 'Sign opinion', 'sign button label');
    await b.fill('#opinion-form textarea[name=text]', opinion);
    await b.click('#sign-opinion');
    await b.waitForSelector('#consult[data-state="completed"]', { timeout: T });
    await b.waitForSelector('ol#opinions li[data-version="1"]', { timeout: T });
    await a.waitForSelector('ol#opinions li[data-version="1"]', { timeout: T });
    expect(await a.evaluate(() => window.ferryTestMark === true), "dr-zhao's page was reloaded, not updated live");
    const text = await a.textContent('ol#opinions li[data-version="1"]');
    expect(text.includes(opinion) && text.includes('Dr Li') && text.includes('City Hospital') && !text.includes('dr-li'), `opinion shown: ${text}`);
    await a.waitForSelector('#consult[data-state="completed"]', { timeout: T });
    await a.click('#acknowledge');
    await a.waitForSelector('#acknowledged', { timeout: T });
  });
}

test('no script errors on the pages', async () => {
  expect(pageErrors.length === 0, pageErrors.slice(0, 5).join('; '));
});
