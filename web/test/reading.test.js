// The reading pages' pure parts: durations, the service-level clock, the list's query, the
// clinic's unread reports, the turnaround charts' geometry, the routes, the alarm's safety, the
// admin's routing rules and report templates.
import test from 'node:test';
import assert from 'node:assert/strict';
import { setLocale } from '../dist/lib/i18n.js';
import {
  barChart, clockOffset, duration, firstLine, isUnread, modalityCodes, readingQuery, requestFor, ruleBody, rulePath, rulesPath,
  slaClock, stateParam, templateBody, templatesPath, tickStep, worklistCounts,
} from '../dist/lib/reading.js';
import { parseRoute, readingHash, readingsHash, turnaroundHash } from '../dist/lib/router.js';
import { alarmOn, beep, startAlarm, stopAlarm } from '../dist/lib/alarm.js';

const MIN = 60_000, HOUR = 60 * MIN;

/** @param {Partial<import('../dist/lib/reading.js').Reading>} o @returns {import('../dist/lib/reading.js').Reading} */
const reading = o => ({
  id: 'rd_1', kind: 'imaging', priority: 'stat', state: 'ready', study_uid: '1.2.3', sending_site: 'island-clinic',
  centre_site: 'city-hospital', requested_by: 'routing', instances: 1, received_at: '2024-01-19T14:00:00Z',
  ready_at: '2024-01-19T14:00:00Z', due_at: '2024-01-19T14:30:00Z', breached: false, waiting_ms: 0, ...o,
});
const at = (/** @type {string} */ s) => Date.parse(s);

test('durations for people, in both languages', () => {
  assert.equal(duration(0), '0 s');
  assert.equal(duration(400), '<1 s');
  assert.equal(duration(45_400), '45 s');
  assert.equal(duration(12 * MIN + 59_000), '12 min');
  assert.equal(duration(65 * MIN), '1 h 5 min');
  assert.equal(duration(2 * HOUR), '2 h');
  assert.equal(duration(26 * HOUR + 10 * MIN), '1 d 2 h');
  assert.equal(duration(48 * HOUR), '2 d');
  assert.equal(duration(-5 * MIN), '5 min');
  setLocale('zh-CN');
  try {
    assert.equal(duration(12 * MIN), '12 分钟');
    assert.equal(duration(65 * MIN), '1 小时 5 分钟');
    assert.equal(duration(30_000), '30 秒');
    assert.equal(duration(26 * HOUR), '1 天 2 小时');
  } finally { setLocale('en'); }
});

test('the service-level clock: time left, its last quarter, overdue, and signed in time or late', () => {
  const r = reading({});
  assert.deepEqual(slaClock(r, at('2024-01-19T14:10:00Z')), { level: 'left', ms: 20 * MIN, text: '20 min left' });
  assert.equal(slaClock(r, at('2024-01-19T14:25:00Z')).level, 'soon');
  assert.deepEqual(slaClock(r, at('2024-01-19T14:42:00Z')), { level: 'overdue', ms: 12 * MIN, text: 'overdue by 12 min' });
  // The server said breached though this clock is behind: overdue all the same.
  assert.equal(slaClock(reading({ breached: true }), at('2024-01-19T14:10:00Z')).level, 'overdue');
  assert.equal(slaClock(reading({ state: 'signed', signed_at: '2024-01-19T14:20:00Z' }), 0).text, 'signed in time');
  assert.deepEqual(slaClock(reading({ state: 'signed', signed_at: '2024-01-19T15:35:00Z', breached: true }), 0),
    { level: 'late', ms: 65 * MIN, text: 'signed 1 h 5 min late' });
  assert.equal(slaClock(reading({ state: 'cancelled' }), 0).level, 'none');
  setLocale('zh-CN');
  try {
    assert.equal(slaClock(r, at('2024-01-19T14:42:00Z')).text, '已超时 12 分钟');
    assert.equal(slaClock(r, at('2024-01-19T14:10:00Z')).text, '剩余 20 分钟');
  } finally { setLocale('en'); }
});

test("the server's clock from the waiting times", () => {
  const r = reading({ waiting_ms: 10 * MIN });
  // The server answered at 14:10; this clock said 14:07.
  assert.equal(clockOffset([r], at('2024-01-19T14:07:00Z')), 3 * MIN);
  assert.equal(clockOffset([r], at('2024-01-19T14:10:02Z')), 0, 'a couple of seconds is travel time');
  assert.equal(clockOffset([reading({ state: 'signed', waiting_ms: 0 })], 0), 0);
});

test("the list's query: the centre's open requests by default, the clinic's all but cancelled", () => {
  assert.equal(readingQuery('centre').toString(), 'scope=centre');
  assert.equal(readingQuery('sent').toString(), 'scope=sent&state=collecting%2Cready%2Cclaimed%2Creview%2Csigned');
  assert.equal(readingQuery('centre', { kind: 'ecg', priority: 'stat', state: 'signed', from: '2024-01-01', junk: 'x' }).toString(),
    'scope=centre&kind=ecg&priority=stat&from=2024-01-01&state=signed');
  assert.equal(stateParam('all', 'centre'), 'collecting,ready,claimed,review,signed,cancelled');
  assert.equal(stateParam('open', 'sent'), 'collecting,ready,claimed,review');
  assert.equal(stateParam('bogus', 'centre'), null);
});

test("the clinic's unread reports, a study's request, the worklist's counts", () => {
  assert.equal(isUnread(reading({ state: 'signed' })), true);
  assert.equal(isUnread(reading({ state: 'signed', acknowledged_at: '2024-01-19T15:00:00Z' })), false);
  assert.equal(isUnread(reading({ state: 'claimed' })), false);
  const list = [
    reading({ id: 'old', state: 'signed', received_at: '2024-01-01T00:00:00Z' }),
    reading({ id: 'new', state: 'collecting', received_at: '2024-01-02T00:00:00Z' }),
    reading({ id: 'gone', state: 'cancelled', received_at: '2024-01-03T00:00:00Z' }),
    reading({ id: 'ecg', kind: 'ecg', ecg_id: 'ecg_1', study_uid: '9.9' }),
  ];
  assert.equal(requestFor(list, { study_uid: '1.2.3' })?.id, 'new');
  assert.equal(requestFor(list, { ecg_id: 'ecg_1' })?.id, 'ecg');
  assert.equal(requestFor(list, { study_uid: '9.9' }), null, "an ECG's study is not an imaging request");
  const work = [reading({ state: 'ready' }), reading({ state: 'ready', breached: true }),
    reading({ state: 'claimed', claimed_by: 'dr-li', breached: true }), reading({ state: 'signed', breached: true })];
  assert.deepEqual(worklistCounts(work, 'dr-li'), { ready: 2, breached: 2, mine: 1 });
});

test('turnaround charts: round ticks, bars on one scale, p90 beneath p50, rows without values keep their label', () => {
  assert.equal(tickStep(7 * MIN), 2 * MIN);
  assert.equal(tickStep(50 * MIN), 15 * MIN);
  assert.equal(tickStep(3 * HOUR), HOUR);
  assert.equal(tickStep(40_000), 10_000);
  const c = barChart([
    { label: 'Imaging · STAT · Island', p50: 5 * MIN, p90: 10 * MIN },
    { label: 'ECG · Routine · Island', p50: 20 * MIN, p90: null },
    { label: 'nothing', p50: null, p90: null },
  ], { width: 600, valueW: 100, labelH: 16, barH: 12, barGap: 2, groupGap: 10, axisH: 20 });
  assert.equal(c.max, 20 * MIN);
  assert.equal(c.plotW, 500);
  assert.deepEqual(c.bars.map(b => [b.row, b.which, b.w, b.y]), [
    [0, 'p50', 125, 16], [0, 'p90', 250, 30],
    [1, 'p50', 500, 52 + 16],
  ]);
  assert.deepEqual(c.labels.map(l => l.y), [12, 64, 116]);
  assert.deepEqual(c.bands.map(b => [b.y, b.h]), [[16, 26], [68, 26], [120, 26]]);
  assert.equal(c.axisY, 3 * 52);
  assert.equal(c.height, 3 * 52 + 20);
  assert.deepEqual(c.ticks.map(t => t.ms), [0, 5 * MIN, 10 * MIN, 15 * MIN, 20 * MIN]);
  assert.deepEqual(c.ticks.map(t => t.x), [0, 125, 250, 375, 500]);
  const empty = barChart([{ label: 'x', p50: null, p90: null }]);
  assert.deepEqual([empty.bars.length, empty.ticks.length, empty.max], [0, 0, 0]);
});

test('the reading routes and their links', () => {
  assert.deepEqual(parseRoute('#/readings'), { name: 'readings', query: {} });
  assert.deepEqual(parseRoute('#/readings?kind=ecg&priority=stat&state=all&sending_site=island-clinic&from=2024-01-01&modality=CT'),
    { name: 'readings', query: { kind: 'ecg', modality: 'CT', priority: 'stat', state: 'all', sending_site: 'island-clinic', from: '2024-01-01' } });
  assert.deepEqual(parseRoute('#/readings?kind=x&state=%3Cb%3E&modality=ct'), { name: 'readings', query: {} });
  assert.deepEqual(parseRoute('#/readings/rd_abc'), { name: 'reading', id: 'rd_abc' });
  assert.deepEqual(parseRoute(readingHash('rd/1')), { name: 'reading', id: 'rd/1' });
  assert.deepEqual(parseRoute('#/readings/turnaround'), { name: 'reading-stats', days: 7 });
  assert.deepEqual(parseRoute(turnaroundHash(30)), { name: 'reading-stats', days: 30 });
  assert.deepEqual(parseRoute('#/readings/turnaround?days=99'), { name: 'reading-stats', days: 7 });
  assert.equal(readingsHash({ kind: 'ecg', state: '' }), '#/readings?kind=ecg');
  assert.equal(readingsHash(), '#/readings');
});

test("the admin's routing rules and report templates: paths, bodies from the forms, a template's first line", () => {
  assert.equal(rulesPath('city-hospital'), '/api/sites/city-hospital/routing-rules');
  assert.equal(rulePath('rr_a/b'), '/api/routing-rules/rr_a%2Fb');
  assert.equal(templatesPath('city-hospital'), '/api/sites/city-hospital/reading-templates');
  assert.equal(templatesPath('city-hospital', { kind: 'imaging', modality: 'CT' }), '/api/sites/city-hospital/reading-templates?kind=imaging&modality=CT');
  assert.equal(templatesPath('c h', { kind: 'ecg', modality: '' }), '/api/sites/c%20h/reading-templates?kind=ecg&modality=');
  assert.deepEqual(modalityCodes([' ct', 'MR', 'CT', '', ' ']), ['CT', 'MR']);
  assert.deepEqual(ruleBody({ from_site: 'county-hospital', kind: 'ecg', priority: 'urgent' }, ['CT']),
    { from_site: 'county-hospital', subtree: false, kind: 'ecg', modalities: [], priority: 'urgent' }, 'an ECG rule names no modality');
  assert.deepEqual(ruleBody({ from_site: 'island-clinic', subtree: 'on', kind: 'imaging', priority: 'stat' }, ['CT', 'mr']),
    { from_site: 'island-clinic', subtree: true, kind: 'imaging', modalities: ['CT', 'MR'], priority: 'stat' });
  assert.deepEqual(ruleBody({ from_site: 'x', kind: 'other', priority: 'soon' }, []),
    { from_site: 'x', subtree: false, kind: 'imaging', modalities: [], priority: 'routine' });
  assert.deepEqual(templateBody({ kind: 'imaging', modality: ' us', findings: 'Organs:\n', impression: 'Normal.' }),
    { kind: 'imaging', modality: 'US', findings: 'Organs:\n', impression: 'Normal.' });
  assert.deepEqual(templateBody({ kind: 'ecg', modality: 'CT', findings: 'Rhythm:', impression: '' }),
    { kind: 'ecg', modality: '', findings: 'Rhythm:', impression: '' }, "an ECG's template is for any modality");
  assert.deepEqual(templateBody({ kind: 'imaging' }), { kind: 'imaging', modality: '', findings: '', impression: '' });
  assert.equal(firstLine('\n  \r\n  Technique: axial 5 mm\r\nFindings:'), 'Technique: axial 5 mm');
  assert.equal(firstLine(''), '');
  assert.equal(firstLine(null), '');
  assert.equal(firstLine('abcdef', 4), 'abc…');
  assert.equal(firstLine('心电图检查所见', 4), '心电图…');
  assert.equal(firstLine('abcd', 4), 'abcd');
});

test('the alarm never throws where there is no sound', () => {
  assert.equal(beep(), false);
  startAlarm();
  assert.equal(alarmOn(), true);
  stopAlarm();
  assert.equal(alarmOn(), false);
});
