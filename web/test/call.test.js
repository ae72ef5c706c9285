import test from 'node:test';
import assert from 'node:assert/strict';
import { STEP_DOWN_AFTER, combine, isBad, level, summarize } from '../dist/pages/call/quality.js';
import { callStatus } from '../dist/pages/call/status.js';

const base = { ended: false, wantIn: true, inRoom: true, wasIn: true, away: 0, states: ['connected'] };

test('the call status', () => {
  assert.equal(callStatus({ ...base, ended: true }), 'ended');
  assert.equal(callStatus({ ...base, wantIn: false }), 'preview');
  assert.equal(callStatus({ ...base, inRoom: false, wasIn: false }), 'connecting');
  assert.equal(callStatus({ ...base, inRoom: false }), 'reconnecting');
  assert.equal(callStatus({ ...base, away: 1 }), 'reconnecting');
  assert.equal(callStatus({ ...base, states: ['failed'] }), 'reconnecting');
  assert.equal(callStatus(base), 'connected');
  assert.equal(callStatus({ ...base, states: [] }), 'connecting');
});

test('quality levels', () => {
  assert.equal(level(null), 'unknown');
  assert.equal(level({ rtt: 40, loss: 0, starved: false }), 'good');
  assert.equal(level({ rtt: 200, loss: 0, starved: false }), 'fair');
  assert.equal(level({ rtt: 40, loss: 0, starved: true }), 'fair');
  assert.equal(level({ rtt: 40, loss: 0.2, starved: false }), 'poor');
  assert.equal(level({ rtt: null, loss: 0, starved: false }), 'good');
  assert.equal(isBad({ rtt: 40, loss: 0, starved: true }), true);
  assert.ok(STEP_DOWN_AFTER >= 2);
});

test('figures from stats: rtt of the selected pair, loss since the last sample, starved video', () => {
  const reports = (/** @type {number} */ lost, /** @type {number} */ received, /** @type {number} */ bytes) => [
    { type: 'transport', selectedCandidatePairId: 'p1' },
    { type: 'candidate-pair', id: 'p1', currentRoundTripTime: 0.05 },
    { type: 'candidate-pair', id: 'p2', currentRoundTripTime: 0.9 },
    { type: 'inbound-rtp', kind: 'audio', packetsLost: lost, packetsReceived: received },
    { type: 'outbound-rtp', kind: 'video', qualityLimitationReason: 'bandwidth', framesPerSecond: 4, bytesSent: bytes, frameHeight: 240 },
  ];
  const mode = { audioOnly: false, sharing: false };
  const a = summarize(reports(10, 90, 1000), null, 1000, mode);
  assert.equal(a.quality.rtt, 50);
  assert.equal(a.quality.loss, 0.1);
  assert.equal(a.quality.starved, true);
  const b = summarize(reports(10, 190, 2000), a.counts, 3000, mode);
  assert.equal(b.quality.loss, 0, 'no new loss in the interval');
  assert.equal(summarize(reports(10, 190, 2000), a.counts, 3000, { audioOnly: false, sharing: true }).quality.starved, false);
});

test('several connections: the worst of each figure', () => {
  assert.deepEqual(combine([{ rtt: 10, loss: 0.01, starved: false }, { rtt: null, loss: 0.2, starved: true }]), { rtt: 10, loss: 0.2, starved: true });
  assert.deepEqual(combine([]), { rtt: null, loss: 0, starved: false });
});
