// Training broadcasts: the pure parts of lib/broadcast.js (ordering, the audience in words, the
// start typed in local time as RFC 3339, the schedule form's body, the site tree, the words
// for a connection).
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  clockText,
  DEFAULT_MINUTES, MAX_QUESTION, answeredPath, askedText, attendanceCsvUrl, audienceText, calendarUrl, connectionKey, defaultStart,
  freshHands, freshQuestions, groupSessions, handPath, handRaised, homeSessions, invalidField, isBroadcastEvent, isOver, localDate,
  localOffset, localStart, minutesText, orderSessions, questionProblem, questionsPath, rfc3339Local, sameDay, scheduleBody, siteTree,
  splitQuestions, startsText, votePath, whepUrl, whipUrl,
} from '../dist/lib/broadcast.js';
import { setLocale } from '../dist/lib/i18n.js';

/** @typedef {import('../dist/lib/broadcast.js').Broadcast} Broadcast */
/** @typedef {import('../dist/lib/broadcast.js').Question} Question */

/** @param {Partial<Broadcast>} o @returns {Broadcast} */
const session = o => ({
  id: 'bc', site: 'city-hospital', trainer: 'trainer-sun', title: 'T', description: '', starts_at: '2026-12-08T02:00:00Z',
  ends_at: '2026-12-08T03:00:00Z', minutes: 60, state: 'scheduled', audience: [], created_at: '2026-12-01T00:00:00Z', soon: false, ...o,
});

const names = /** @type {Record<string, string>} */ ({ 'county-hospital': 'County Hospital', 'island-clinic': 'Island Clinic', 'city-hospital': 'City Hospital' });
const nameOf = (/** @type {string} */ id) => names[id] || id;

test('live sessions first, then by start, soonest first; ended and cancelled last', () => {
  const list = [
    session({ id: 'later', starts_at: '2026-12-09T02:00:00Z' }),
    session({ id: 'over', state: 'ended', starts_at: '2026-12-01T02:00:00Z' }),
    session({ id: 'live', state: 'live', starts_at: '2026-12-10T02:00:00Z' }),
    session({ id: 'soon', starts_at: '2026-12-08T02:00:00Z' }),
    session({ id: 'cancelled', state: 'cancelled', starts_at: '2026-12-02T02:00:00Z' }),
  ];
  assert.deepEqual(orderSessions(list).map(b => b.id), ['live', 'soon', 'later', 'over', 'cancelled']);
  assert.deepEqual(list.map(b => b.id)[0], 'later', 'the list given is left as it was');
  const g = groupSessions(list);
  assert.deepEqual(g.live.map(b => b.id), ['live']);
  assert.deepEqual(g.upcoming.map(b => b.id), ['soon', 'later']);
  assert.deepEqual(g.over.map(b => b.id), ['over', 'cancelled']);
  assert.equal(isOver('ended'), true);
  assert.equal(isOver('live'), false);
});

test('the home card: live ones, then the next scheduled ones, at most three', () => {
  const list = ['a', 'b', 'c', 'd'].map((id, i) => session({ id, starts_at: `2026-12-0${i + 1}T02:00:00Z` }));
  list.push(session({ id: 'live', state: 'live', starts_at: '2026-12-20T02:00:00Z' }), session({ id: 'x', state: 'cancelled' }));
  assert.deepEqual(homeSessions(list).map(b => b.id), ['live', 'a', 'b']);
  assert.deepEqual(homeSessions(list, 10).map(b => b.id), ['live', 'a', 'b', 'c', 'd']);
  assert.deepEqual(homeSessions([]), []);
});

test('the audience in words, in each language', () => {
  const audience = [{ site: 'county-hospital', subtree: true }, { site: 'island-clinic', subtree: false }];
  try {
    setLocale('en');
    assert.equal(audienceText(audience, nameOf), 'County Hospital and every site below and Island Clinic');
    assert.equal(audienceText([{ site: 'island-clinic', subtree: false }], nameOf), 'Island Clinic');
    assert.equal(audienceText([{ site: 'unknown-site', subtree: false }], nameOf), 'unknown-site');
    assert.equal(minutesText(1), '1 minute');
    assert.equal(minutesText(90), '90 minutes');
    setLocale('zh-CN');
    assert.equal(audienceText(audience, nameOf), 'County Hospital及其所有下级机构和Island Clinic');
    assert.equal(minutesText(90), '90 分钟');
  } finally { setLocale('en'); }
});

test('a local date and time with the offset as RFC 3339', () => {
  assert.equal(rfc3339Local('2026-12-08', '10:00', 480), '2026-12-08T10:00:00+08:00');
  assert.equal(rfc3339Local('2026-12-08', '10:00', 0), '2026-12-08T10:00:00+00:00');
  assert.equal(rfc3339Local('2026-03-01', '09:05', -300), '2026-03-01T09:05:00-05:00');
  assert.equal(rfc3339Local('2026-03-01', '09:05', 330), '2026-03-01T09:05:00+05:30');
  assert.equal(rfc3339Local('2026-03-01', '09:05', 345), '2026-03-01T09:05:00+05:45');
  assert.equal(rfc3339Local('2026-03-01', '09:05:30', -570), '2026-03-01T09:05:30-09:30');
  // The same instant whatever the offset says.
  assert.equal(Date.parse(/** @type {string} */ (rfc3339Local('2026-12-08', '10:00', 480))), Date.UTC(2026, 11, 8, 2, 0));
  for (const [d, c, o] of /** @type {[string, string, number][]} */ ([['', '10:00', 0], ['2026-12-08', '', 0], ['08/12/2026', '10:00', 0],
    ['2026-13-01', '10:00', 0], ['2026-12-08', '24:00', 0], ['2026-12-08', '10:00', 0.5], ['2026-12-08', '10:00', 1440]])) {
    assert.equal(rfc3339Local(d, c, o), null, `${d} ${c} ${o}`);
  }
});

test("the browser's own offset of that day: the time typed is the local time sent", () => {
  for (const [d, c] of [['2026-01-15', '09:30'], ['2026-07-15', '21:45'], ['2026-12-31', '00:00']]) {
    const s = /** @type {string} */ (localStart(d, c));
    assert.match(s, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00[+-]\d{2}:\d{2}$/);
    const at = new Date(s);
    assert.equal(localDate(at), d, s);
    assert.equal(`${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`, c, s);
    assert.equal(localOffset(d, c), -at.getTimezoneOffset() || 0);
  }
  assert.equal(Object.is(localOffset('nonsense', ''), -0), false);
});

test('the form suggests the next full hour, in local time', () => {
  const now = new Date(2026, 11, 8, 9, 41, 12);
  assert.deepEqual(defaultStart(now), { date: '2026-12-08', time: '10:00' });
  assert.deepEqual(defaultStart(new Date(2026, 11, 31, 23, 5)), { date: '2027-01-01', time: '00:00' });
});

test("the schedule form's body: sites on their own in audience, with the sites below in subtrees", () => {
  const body = scheduleBody({ title: '  AV blocks ', description: ' Bring a case. ', date: '2026-12-08', time: '10:00', minutes: '90' },
    [{ site: 'island-clinic', subtree: false }, { site: 'county-hospital', subtree: true }]);
  assert.equal(body.title, 'AV blocks');
  assert.equal(body.description, 'Bring a case.');
  assert.equal(body.minutes, 90);
  assert.deepEqual(body.audience, ['island-clinic']);
  assert.deepEqual(body.subtrees, ['county-hospital']);
  assert.equal(body.starts_at, localStart('2026-12-08', '10:00'));
  assert.equal(scheduleBody({ title: 'x', date: '2026-12-08', time: '10:00', minutes: '' }, []).minutes, DEFAULT_MINUTES);
  assert.equal(scheduleBody({ title: 'x', date: '', time: '10:00' }, []).starts_at, null);
});

test("a refusal's field from its detail", () => {
  assert.equal(invalidField('title: name the session (at most 200 characters)'), 'title');
  assert.equal(invalidField('starts_at: must be within the coming year'), 'starts_at');
  assert.equal(invalidField('minutes: between 5 and 600'), 'minutes');
  assert.equal(invalidField('audience: no site x in the network'), 'audience');
  assert.equal(invalidField('description: at most 4000 characters'), 'description');
  assert.equal(invalidField('the SDP offer is larger than 64 KiB'), null);
  assert.equal(invalidField('password: too short'), null);
  assert.equal(invalidField(undefined), null);
  // The question form's one field.
  assert.equal(invalidField('text: write the question', ['text']), 'text');
  assert.equal(invalidField('text: at most 1000 characters', ['text']), 'text');
  assert.equal(invalidField('title: too long', ['text']), null);
  assert.equal(invalidField('text: write the question'), null, 'not a field of the schedule form');
});

test('the sites as a tree: each under its parent, depth first, siblings by name', () => {
  const sites = [
    { id: 'mountain-clinic', name: 'Mountain Clinic', parent: 'county-hospital' },
    { id: 'island-clinic', name: 'Island Clinic', parent: 'county-hospital' },
    { id: 'county-hospital', name: 'County Hospital', parent: 'city-hospital' },
    { id: 'city-hospital', name: 'City Hospital', parent: null },
    { id: 'orphan', name: 'Orphan', parent: 'gone' },
  ];
  assert.deepEqual(siteTree(sites).map(x => `${'-'.repeat(x.depth)}${x.site.id}${x.below ? '+' : ''}`),
    ['city-hospital+', '-county-hospital+', '--island-clinic', '--mountain-clinic', 'orphan']);
  // A loop of parents still lists every site once.
  const loop = siteTree([{ id: 'a', name: 'A', parent: 'b' }, { id: 'b', name: 'B', parent: 'a' }]);
  assert.deepEqual(loop.map(x => x.site.id).sort(), ['a', 'b']);
});

test('when a session starts, for lists: today with the time, else the day', () => {
  const now = new Date(Date.UTC(2026, 11, 8, 1, 0));
  try {
    setLocale('en');
    assert.match(startsText('2026-12-08T02:00:00Z', { now, timeZone: 'UTC' }), /^today, 02:00/);
    assert.doesNotMatch(startsText('2026-12-09T02:00:00Z', { now, timeZone: 'UTC' }), /today/);
    assert.equal(startsText('nonsense', { now }), '—');
    setLocale('zh-CN');
    assert.equal(startsText('2026-12-08T02:00:00Z', { now, timeZone: 'UTC' }), '今天 02:00');
    // 23:30 UTC on the 8th is the 9th in Shanghai.
    assert.equal(startsText('2026-12-08T23:30:00Z', { now, timeZone: 'Asia/Shanghai' }).startsWith('今天'), false);
  } finally { setLocale('en'); }
  assert.equal(sameDay(new Date(Date.UTC(2026, 0, 1, 23)), new Date(Date.UTC(2026, 0, 1, 1)), 'UTC'), true);
  assert.equal(sameDay(new Date(Date.UTC(2026, 0, 1, 23)), new Date(Date.UTC(2026, 0, 1, 1)), 'Asia/Shanghai'), false);
});

test("the words for a connection's state, by role", () => {
  assert.equal(connectionKey('presenter', 'idle'), 'broadcast.conn.idle_presenter');
  assert.equal(connectionKey('viewer', 'idle'), 'broadcast.conn.idle_viewer');
  assert.equal(connectionKey('presenter', 'camera'), 'broadcast.conn.camera');
  assert.equal(connectionKey('viewer', 'new'), 'broadcast.conn.connecting');
  assert.equal(connectionKey('viewer', 'connecting'), 'broadcast.conn.connecting');
  assert.equal(connectionKey('presenter', 'connected'), 'broadcast.conn.connected_presenter');
  assert.equal(connectionKey('viewer', 'disconnected'), 'broadcast.conn.interrupted');
  assert.equal(connectionKey('viewer', 'failed'), 'broadcast.conn.failed_viewer');
  assert.equal(connectionKey('presenter', 'closed'), 'broadcast.conn.ended_presenter');
  assert.equal(connectionKey('viewer', 'ended'), 'broadcast.conn.ended_viewer');
});

test('the API addresses escape the id', () => {
  assert.equal(calendarUrl('bc/1'), '/api/broadcasts/bc%2F1/calendar.ics');
  assert.equal(attendanceCsvUrl('bc_1'), '/api/broadcasts/bc_1/attendance?format=csv');
  assert.equal(whipUrl('bc_1'), '/api/broadcasts/bc_1/whip');
  assert.equal(whepUrl('bc_1'), '/api/broadcasts/bc_1/whep');
  assert.equal(questionsPath('bc_1'), '/api/broadcasts/bc_1/questions');
  assert.equal(votePath('bc_1', 'bq/2'), '/api/broadcasts/bc_1/questions/bq%2F2/vote');
  assert.equal(answeredPath('bc_1', 'bq_2'), '/api/broadcasts/bc_1/questions/bq_2/answered');
  assert.equal(handPath('bc_1'), '/api/broadcasts/bc_1/hand');
});

/** @param {Partial<Question>} o @returns {Question} */
const question = o => ({
  id: 'bq', author: 'dr-zhao', author_name: 'Dr Zhao', site: 'island-clinic', text: 'Why?', created_at: '2026-12-08T02:05:00Z',
  answered_at: null, votes: 0, voted: false, ...o,
});

test("the socket's broadcast messages, by event and session", () => {
  const msg = { type: 'broadcast', broadcast: 'bc_1', event: 'questions' };
  assert.equal(isBroadcastEvent(msg, 'questions', 'bc_1'), true);
  assert.equal(isBroadcastEvent(msg, 'questions', 'bc_2'), false, 'another session');
  assert.equal(isBroadcastEvent(msg, 'scheduled', 'bc_1'), false, 'another event');
  assert.equal(isBroadcastEvent(msg, 'questions'), true, 'any session');
  assert.equal(isBroadcastEvent({ type: 'broadcast', broadcast: 'bc_9', event: 'scheduled' }, 'scheduled'), true);
  assert.equal(isBroadcastEvent({ type: 'consult', broadcast: 'bc_1', event: 'questions' }, 'questions', 'bc_1'), false);
  assert.equal(isBroadcastEvent(null, 'questions'), false);
  assert.equal(isBroadcastEvent(undefined, 'scheduled'), false);
});

test('a question before it is sent: not empty, at most 1,000 characters once trimmed, counted as the server counts', () => {
  assert.equal(questionProblem('Why a PR of 220 ms?'), null);
  assert.equal(questionProblem(''), 'empty');
  assert.equal(questionProblem('  \n\t '), 'empty');
  assert.equal(questionProblem(null), 'empty');
  assert.equal(questionProblem('x'.repeat(MAX_QUESTION)), null);
  assert.equal(questionProblem(`  ${'x'.repeat(MAX_QUESTION)}  `), null, 'the spaces around do not count');
  assert.equal(questionProblem('x'.repeat(MAX_QUESTION + 1)), 'too_long');
  // Characters, not UTF-16 units: 1,000 Chinese characters or emoji are allowed.
  assert.equal(questionProblem('长'.repeat(MAX_QUESTION)), null);
  assert.equal(questionProblem('🫀'.repeat(MAX_QUESTION)), null);
  assert.equal(questionProblem('🫀'.repeat(MAX_QUESTION + 1)), 'too_long');
});

test("the questions waiting and those answered, each in the server's order; my hand", () => {
  const list = [question({ id: 'a', votes: 3 }), question({ id: 'b', votes: 1 }), question({ id: 'c', answered_at: '2026-12-08T02:30:00Z' }),
    question({ id: 'd', answered_at: '2026-12-08T02:20:00Z' })];
  const { waiting, answered } = splitQuestions(list);
  assert.deepEqual(waiting.map(q => q.id), ['a', 'b']);
  assert.deepEqual(answered.map(q => q.id), ['c', 'd']);
  assert.deepEqual(splitQuestions([]), { waiting: [], answered: [] });
  const hands = [{ user: 'dr-zhao', name: 'Dr Zhao', site: 'island-clinic', raised_at: '2026-12-08T02:10:00Z' }];
  assert.equal(handRaised(hands, 'dr-zhao'), true);
  assert.equal(handRaised(hands, 'dr-ma'), false);
  assert.equal(handRaised([], 'dr-zhao'), false);
});

test("what is announced: others' questions and hands not seen before, nothing on the first load", () => {
  const list = [question({ id: 'a' }), question({ id: 'b', author: 'dr-ma' }), question({ id: 'c', author: 'trainer-sun' })];
  assert.deepEqual(freshQuestions(null, list, 'trainer-sun'), [], 'the first load');
  assert.deepEqual(freshQuestions(new Set(['a']), list, 'trainer-sun').map(q => q.id), ['b'], 'not my own');
  assert.deepEqual(freshQuestions(new Set(['a', 'b', 'c']), list, 'trainer-sun'), []);
  const hands = [{ user: 'dr-zhao', site: 'island-clinic', raised_at: '' }, { user: 'dr-ma', site: 'mountain-clinic', raised_at: '' }];
  assert.deepEqual(freshHands(null, hands, 'trainer-sun'), []);
  assert.deepEqual(freshHands(new Set(['dr-zhao']), hands, 'trainer-sun').map(x => x.user), ['dr-ma']);
  assert.deepEqual(freshHands(new Set(), hands, 'dr-ma').map(x => x.user), ['dr-zhao'], 'not my own');
});

test('when a question was asked: the time alone today, else the day too', () => {
  const now = new Date(Date.UTC(2026, 11, 8, 3, 0));
  try {
    setLocale('en');
    assert.match(askedText('2026-12-08T02:05:00Z', { now, timeZone: 'UTC' }), /^02:05/);
    assert.match(askedText('2026-12-07T02:05:00Z', { now, timeZone: 'UTC' }), /Dec.*7.*02:05/);
    assert.equal(askedText('nonsense', { now }), '—');
    setLocale('zh-CN');
    assert.equal(askedText('2026-12-08T02:05:00Z', { now, timeZone: 'Asia/Shanghai' }), '10:05');
  } finally { setLocale('en'); }
});

test('the ICE servers of /api/turn go to the connection, relay-only when the server says so', async () => {
  const { iceConfig } = await import('../dist/lib/whip.js');
  assert.deepEqual(iceConfig(null), {});
  assert.deepEqual(iceConfig({ error: 'x' }), {});
  const servers = [{ urls: ['turn:turn.example:3478?transport=tcp'], username: 'u', credential: 'c' }];
  assert.deepEqual(iceConfig({ iceServers: servers, iceTransportPolicy: 'all' }), { iceServers: servers });
  assert.deepEqual(iceConfig({ iceServers: servers, iceTransportPolicy: 'relay' }), { iceServers: servers, iceTransportPolicy: 'relay' });
});

test("a recording's length as a clock reads it", () => {
  assert.equal(clockText(42.4), '0:42');
  assert.equal(clockText(725), '12:05');
  assert.equal(clockText(3729), '1:02:09');
  assert.equal(clockText(-3), '0:00');
});
