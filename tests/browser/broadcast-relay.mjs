// A viewer behind a firewall that lets no UDP out: it reaches the SFU only through coturn,
// TURN over TCP (or, with TURN_RELAY=tls, over TLS), with the credentials of GET /api/turn and relayed candidates only. trainer-sun
// publishes from Chromium over WHIP; dr-zhao (island clinic) watches over WHEP with
// iceTransportPolicy "relay": the selected pair's local candidate is a relay reached over TCP,
// and frames are decoded and audio received.
// Run by tests/it/browser.rs with FERRY_URL (Ferry's TURN settings point at a coturn that
// listens on TCP only for this test's viewer).
import test, { after, before } from 'node:test';
import { expect, launchMedia, signedInPage } from './lib.mjs';
import { negotiate, publishSetup, schedule, until, untilInbound, watchSetup } from './whip.mjs';

let browser, trainer, viewer, session;

// TURN_SPKI: the TLS relay's certificate (self-signed for the test) is trusted by its key, as
// a clinic's machines trust their hospital's own certificate authority; nothing else is.
const trust = process.env.TURN_SPKI ? [`--ignore-certificate-errors-spki-list=${process.env.TURN_SPKI}`] : [];
before(async () => { browser = await launchMedia(trust); });
after(async () => { await browser?.close(); });

const pageOf = user => signedInPage(browser, user);

/** In the page: the selected candidate pair's local candidate. */
const selectedLocal = async () => {
  const s = [...(await window.pc.getStats()).values()];
  const transport = s.find(x => x.type === 'transport');
  const pair = s.find(x => x.id === transport?.selectedCandidatePairId);
  const local = s.find(x => x.id === pair?.localCandidateId) || {};
  return { ok: !!pair, type: local.candidateType, relayProtocol: local.relayProtocol, protocol: local.protocol };
};

test('trainer-sun goes live over WHIP', { timeout: 60000 }, async () => {
  trainer = await pageOf('trainer-sun');
  session = await trainer.evaluate(schedule, { title: 'Triage refresher', starts_at: Date.now(), audience: ['island-clinic'] });
  expect(/^bc_/.test(session || ''), `no session: ${session}`);
  await trainer.evaluate(publishSetup);
  await trainer.evaluate(negotiate, `/api/broadcasts/${session}/whip`);
});

// TURN_RELAY=tls: the relay is reached over TLS (turns:) instead.
const relay = process.env.TURN_RELAY === 'tls' ? 'tls' : 'tcp';

test(`a viewer that may use only the TURN relay over ${relay.toUpperCase()} watches`, { timeout: 90000 }, async () => {
  viewer = await pageOf('dr-zhao');
  const turn = await viewer.evaluate(async () => (await fetch('/api/turn')).json());
  const urls = turn.iceServers.flatMap(s => [].concat(s.urls));
  await viewer.evaluate(watchSetup, { iceServers: turn.iceServers, iceTransportPolicy: 'relay' });
  const scheme = relay === 'tls' ? /^turns:.*transport=tcp$/ : /^turn:.*transport=tcp$/;
  expect(urls.length > 0 && urls.every(u => scheme.test(u)), `TURN urls ${urls}`);
  const started = Date.now();
  await viewer.evaluate(negotiate, `/api/broadcasts/${session}/whep`);
  const local = await until(viewer, selectedLocal, null, 20000, 'a selected pair');
  expect(local.type === 'relay' && local.relayProtocol === relay, `selected local candidate ${JSON.stringify(local)}`);
  const r = await untilInbound(viewer, x => x.frames > 60 && x.audio > 100, 30000, 'frames and audio through the relay');
  console.log(`# relay: local candidate ${local.type} over ${local.relayProtocol}; ${r.frames} frames at ${r.width} px and ${r.audio} audio packets ${r.at - started} ms after the offer`);
});
