import test from 'node:test';
import assert from 'node:assert/strict';
import { attendanceHash, broadcastHash, broadcastsHash, callHash, consultHash, loginHash, parseRoute, safeNext, studiesHash } from '../dist/lib/router.js';

test('every route', () => {
  assert.deepEqual(parseRoute(''), { name: 'home' });
  assert.deepEqual(parseRoute('#/'), { name: 'home' });
  assert.deepEqual(parseRoute('#/tokens'), { name: 'tokens' });
  assert.deepEqual(parseRoute('#/studies'), { name: 'studies' });
  assert.deepEqual(parseRoute('#/studies?study=1.2.840.5'), { name: 'studies', study: '1.2.840.5' });
  assert.deepEqual(parseRoute('#/studies?study=x%27y'), { name: 'studies' });
  assert.deepEqual(parseRoute(studiesHash('1.2.3')), { name: 'studies', study: '1.2.3' });
  assert.deepEqual(parseRoute('#/studies?unavailable=1.2.3'), { name: 'studies', unavailable: '1.2.3' });
  assert.deepEqual(parseRoute('#/studies?unavailable=%3Cx%3E'), { name: 'studies' });
  assert.deepEqual(parseRoute('#/upload'), { name: 'upload' });
  assert.deepEqual(parseRoute('#/consults'), { name: 'consults' });
  assert.deepEqual(parseRoute('#/consults/new'), { name: 'consult-new' });
  assert.deepEqual(parseRoute('#/consults/c_1%2F2'), { name: 'consult', id: 'c_1/2' });
  assert.deepEqual(parseRoute('#/call/c_9'), { name: 'call', id: 'c_9' });
  assert.deepEqual(parseRoute('#/admin'), { name: 'admin', tab: 'sites' });
  assert.deepEqual(parseRoute('#/admin/sites'), { name: 'admin', tab: 'sites' });
  assert.deepEqual(parseRoute('#/admin/users'), { name: 'admin', tab: 'users' });
  assert.deepEqual(parseRoute('#/admin/devices'), { name: 'admin', tab: 'devices' });
  assert.deepEqual(parseRoute('#/admin/reading'), { name: 'admin', tab: 'reading' });
  assert.deepEqual(parseRoute('#/admin/audit'), { name: 'admin', tab: 'audit' });
  assert.deepEqual(parseRoute('#/admin/whatever'), { name: 'admin', tab: 'sites' });
  assert.deepEqual(parseRoute('#/broadcasts'), { name: 'broadcasts' });
  assert.deepEqual(parseRoute('#/broadcasts?schedule'), { name: 'broadcasts', schedule: true });
  assert.deepEqual(parseRoute('#/broadcasts/bc_1'), { name: 'broadcast', id: 'bc_1' });
  assert.deepEqual(parseRoute('#/broadcasts/bc_1/attendance'), { name: 'broadcast-attendance', id: 'bc_1' });
  assert.deepEqual(parseRoute('#/broadcasts/bc_1/other'), { name: 'not-found' });
  assert.deepEqual(parseRoute('#/broadcasts/library'), { name: 'broadcast-library' });
  assert.deepEqual(parseRoute('#/nowhere'), { name: 'not-found' });
  assert.deepEqual(parseRoute('#/consults/%E0%A4%A'), { name: 'consult', id: '%E0%A4%A' });
});

test('sign-in remembers where the person was going', () => {
  assert.deepEqual(parseRoute('#/login'), { name: 'login', next: null });
  assert.deepEqual(parseRoute(loginHash('#/consults/c_1')), { name: 'login', next: '#/consults/c_1' });
  assert.deepEqual(parseRoute(loginHash('/viewer/viewer?StudyInstanceUIDs=1.2.3')), { name: 'login', next: '/viewer/viewer?StudyInstanceUIDs=1.2.3' });
  assert.equal(loginHash('#/'), '#/login');
  assert.equal(loginHash(''), '#/login');
});

test('only this app and this server are places to go back to', () => {
  assert.equal(safeNext('#/call/x'), '#/call/x');
  assert.equal(safeNext('/viewer/viewer?x=1'), '/viewer/viewer?x=1');
  assert.equal(safeNext('//evil.example/'), null);
  assert.equal(safeNext('/\\evil.example'), null);
  assert.equal(safeNext('https://evil.example/'), null);
  assert.equal(safeNext('javascript:alert(1)'), null);
  assert.equal(safeNext('#/login?next=%23%2F'), null);
  assert.equal(safeNext(null), null);
  assert.deepEqual(parseRoute('#/login?next=https%3A%2F%2Fevil.example'), { name: 'login', next: null });
});

test('links to consults and calls escape the id', () => {
  assert.equal(consultHash('a/b'), '#/consults/a%2Fb');
  assert.equal(callHash('c 1'), '#/call/c%201');
});

test('links to training sessions escape the id', () => {
  assert.equal(broadcastsHash(), '#/broadcasts');
  assert.deepEqual(parseRoute(broadcastsHash(true)), { name: 'broadcasts', schedule: true });
  assert.equal(broadcastHash('bc/1'), '#/broadcasts/bc%2F1');
  assert.deepEqual(parseRoute(broadcastHash('bc/1')), { name: 'broadcast', id: 'bc/1' });
  assert.deepEqual(parseRoute(attendanceHash('bc 1')), { name: 'broadcast-attendance', id: 'bc 1' });
});
