// ECG records for people: the search query, the cart's wall-clock time, the measurements
// side by side with large differences marked, the list's rate.
import test from 'node:test';
import assert from 'node:assert/strict';
import { acquiredDay, acquiredText, axisDifference, compareMeasurements, differs, ecgQuery, listRate, wallClock } from '../dist/lib/ecg.js';
import { ecgHash, ecgOfStudyHash, calibrateHash, parseRoute } from '../dist/lib/router.js';

test('the search form as the list API query: empty fields left out, unknown formats dropped', () => {
  assert.equal(String(ecgQuery({ name: ' li ', patient_id: '', from: '2024-01-01', format: 'scp' })), 'name=li&from=2024-01-01&format=scp&limit=200');
  assert.equal(String(ecgQuery({ format: 'pdf' }, 5)), 'limit=5');
});

test("the cart's wall-clock time is shown as the cart showed it, in each language", () => {
  assert.equal(wallClock('2013-01-25T10:59:19')?.toISOString(), '2013-01-25T10:59:19.000Z');
  assert.equal(acquiredText('2013-01-25T10:59:19', { loc: 'zh-CN' }), '2013年1月25日 10:59');
  assert.match(acquiredText('2013-01-25T10:59:19', { loc: 'en' }), /^Jan 25, 2013, 10:59\s?AM$/);
  assert.equal(acquiredText(null), '—');
  assert.equal(acquiredText('soon'), '—');
  assert.equal(acquiredDay('2013-01-25T10:59:19'), '20130125');
  assert.equal(acquiredDay(null), '');
});

test('axes differ by the smaller angle; rates and intervals by more than 10%', () => {
  assert.equal(axisDifference(-90, 270), 0);
  assert.equal(axisDifference(170, -170), 20);
  assert.equal(differs('deg', 52, 44), false);
  assert.equal(differs('deg', 52, 36), true);
  assert.equal(differs('ms', 982, 983), false);
  assert.equal(differs('ms', 100, 120), true);
  assert.equal(differs('ms', 100, 110), false);
  assert.equal(differs('bpm', 0, 0), false);
});

test('device and computed side by side; a rate from the device RR marked as derived; absent rows left out', () => {
  const rows = compareMeasurements({ rr_ms: 982, qrs_ms: 75, qrs_axis_deg: 52, t_axis_deg: 57 }, { heart_rate_bpm: 61, rr_ms: 983, qrs_axis_deg: 20 });
  assert.deepEqual(rows.map(r => r.key), ['heart_rate_bpm', 'rr_ms', 'qrs_ms', 'qrs_axis_deg', 't_axis_deg']);
  const rate = rows[0];
  assert.equal(Math.round(/** @type {number} */ (rate.device)), 61);
  assert.equal(rate.deviceDerived, true);
  assert.equal(rate.differs, false);
  assert.equal(rows.find(r => r.key === 'qrs_axis_deg')?.differs, true);
  assert.equal(rows.find(r => r.key === 'qrs_ms')?.computed, null);
  assert.deepEqual(compareMeasurements(undefined, undefined), []);
});

test("the list's rate: the device's, else Ferry's", () => {
  assert.deepEqual(listRate({ device: { heart_rate_bpm: 72 }, computed: { heart_rate_bpm: 70 } }), { value: 72, from: 'device' });
  assert.deepEqual(listRate({ device: {}, computed: { heart_rate_bpm: 70 } }), { value: 70, from: 'computed' });
  assert.equal(listRate({}), null);
});

test('ECG routes: the list with its checked search, the viewer, the calibration', () => {
  assert.deepEqual(parseRoute('#/ecgs'), { name: 'ecgs', query: {} });
  assert.deepEqual(parseRoute('#/ecgs?name=Li&from=2024-01-01&to=bad&format=scp&study=1.2.3&x=1'),
    { name: 'ecgs', query: { name: 'Li', from: '2024-01-01', format: 'scp', study: '1.2.3' } });
  assert.deepEqual(parseRoute('#/ecgs?format=pdf&study=1.2%3Cx'), { name: 'ecgs', query: {} });
  assert.deepEqual(parseRoute(ecgHash('ecg_a/b')), { name: 'ecg', id: 'ecg_a/b' });
  assert.deepEqual(parseRoute(ecgOfStudyHash('1.2.3', 'P 1')), { name: 'ecgs', query: { study: '1.2.3', patient_id: 'P 1' } });
  assert.deepEqual(parseRoute(calibrateHash(ecgHash('ecg_1'))), { name: 'ecg-calibrate', next: '#/ecgs/ecg_1' });
  assert.deepEqual(parseRoute('#/ecgs/calibrate?next=https://evil.example/'), { name: 'ecg-calibrate', next: null });
});
