// What the home page puts first (pure parts of pages/home.js and consult-common.js).
import test from 'node:test';
import assert from 'node:assert/strict';

// pages/home.js imports the socket module, which touches `window` when loaded.
Object.assign(globalThis, { window: globalThis });
const { sortForHome } = await import('../dist/pages/home.js');
const { attention } = await import('../dist/pages/consult-common.js');

/** @param {Partial<import('../dist/pages/consult-common.js').Consult>} o */
const consult = o => /** @type {import('../dist/pages/consult-common.js').Consult} */ ({
  id: 'c', state: 'requested', urgency: 'routine', specialty: 'radiology', summary: '', from_site: 's',
  requested_by: 'me', created_at: 0, studies: [], can: [], opinions: [], ...o,
});

test('what a consult asks of the person now', () => {
  assert.equal(attention(consult({ can: ['acknowledge'] })), 'acknowledge');
  assert.equal(attention(consult({ can: ['accept', 'decline'] })), 'answer');
  assert.equal(attention(consult({ state: 'accepted', can: ['join', 'complete', 'sign'] })), 'sign');
  assert.equal(attention(consult({ state: 'completed', can: ['sign'], opinions: [{ version: 1, signed_by: 'x', signed_at: 0, text: '' }] })), null);
  assert.equal(attention(consult({ state: 'in_call', can: ['join'], opinions: [{ version: 1, signed_by: 'x', signed_at: 0, text: '' }] })), 'join');
  assert.equal(attention(consult({ can: ['cancel'] })), null);
});

test('the home page: things to do first, emergencies first, then open consults; closed ones left out', () => {
  const list = [
    consult({ id: 'old-done', state: 'completed' }),
    consult({ id: 'mine-open', state: 'requested', can: ['cancel'], created_at: 5 }),
    consult({ id: 'ack', state: 'completed', can: ['acknowledge'], created_at: 1 }),
    consult({ id: 'ack-emergency', state: 'completed', urgency: 'emergency', can: ['acknowledge'], created_at: 0 }),
    consult({ id: 'accepted', state: 'accepted', requested_by: 'other', accepted_by: 'me', can: ['join', 'complete'], created_at: 9 }),
  ];
  const { act, open } = sortForHome(list, 'me');
  assert.deepEqual(act.map(c => c.id), ['ack-emergency', 'ack']);
  assert.deepEqual(open.map(c => c.id), ['accepted', 'mine-open']);
});
