import test from 'node:test';
import assert from 'node:assert/strict';
import { dateTime, dicomDate, list, megabytes, number, percent, personName, personNameGroups, shortDateTime, time } from '../dist/lib/format.js';

const at = Date.UTC(2024, 0, 19, 14, 5); // 2024-01-19 14:05 UTC
const utc = { timeZone: 'UTC' };

test('DICOM person names in English: Given Family', () => {
  assert.equal(personName('Wang^XiaoDong', { loc: 'en' }), 'XiaoDong Wang');
  assert.equal(personName('Doe^John^Q^Dr^Jr', { loc: 'en' }), 'Dr John Q Doe, Jr');
  assert.equal(personName('Smith', { loc: 'en' }), 'Smith');
  assert.equal(personName('Wang^XiaoDong=王^小东', { loc: 'en' }), 'XiaoDong Wang');
  assert.equal(personName({ Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小东' }, { loc: 'en' }), 'XiaoDong Wang');
});

test('DICOM person names in Chinese: the ideographic group, family then given', () => {
  assert.equal(personName('Wang^XiaoDong=王^小东', { loc: 'zh-CN' }), '王小东');
  assert.equal(personName({ Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小东' }, { loc: 'zh-CN' }), '王小东');
  // Without an ideographic group: the alphabetic one, family first.
  assert.equal(personName('Wang^XiaoDong', { loc: 'zh-CN' }), 'Wang XiaoDong');
  assert.equal(personName('Wang^XiaoDong=', { loc: 'zh-CN' }), 'Wang XiaoDong');
  assert.equal(personName('Wang^XiaoDong=^', { loc: 'zh-CN' }), 'Wang XiaoDong');
});

test('only an ideographic group, and empty names', () => {
  assert.equal(personName('=王^小东', { loc: 'en' }), '王小东');
  assert.equal(personName('', { loc: 'en' }), '');
  assert.equal(personName(null, { loc: 'zh-CN' }), '');
  assert.deepEqual(personNameGroups('A^B=C^D=E^F'), ['A^B', 'C^D', 'E^F']);
  assert.deepEqual(personNameGroups({ Phonetic: 'x' }), ['', '', 'x']);
});

test('dates and times in each language, in the given time zone', () => {
  assert.equal(dateTime(at, { loc: 'zh-CN', ...utc }), '2024年1月19日 14:05');
  assert.match(dateTime(at, { loc: 'en', ...utc }), /^Jan 19, 2024, 2:05\s?PM$/);
  assert.equal(dateTime(new Date(at).toISOString(), { loc: 'zh-CN', ...utc }), '2024年1月19日 14:05');
  assert.equal(dateTime(at, { loc: 'zh-CN', timeZone: 'Asia/Shanghai' }), '2024年1月19日 22:05');
  assert.equal(dateTime(null), '—');
  assert.equal(dateTime('not a date'), '—');
  assert.equal(time(at, { loc: 'zh-CN', ...utc }), '14:05');
});

test('short dates leave out the current year', () => {
  const now = new Date(Date.UTC(2024, 5, 1));
  assert.doesNotMatch(shortDateTime(at, { loc: 'en', now, ...utc }), /2024/);
  assert.match(shortDateTime(at, { loc: 'en', now: new Date(Date.UTC(2025, 0, 1)), ...utc }), /2024/);
  assert.match(shortDateTime(at, { loc: 'zh-CN', now, ...utc }), /^1月19日/);
});

test('DICOM dates are calendar days, not shifted by the time zone', () => {
  assert.equal(dicomDate('20040119', { loc: 'zh-CN' }), '2004年1月19日');
  assert.equal(dicomDate('20040119', { loc: 'en' }), 'Jan 19, 2004');
  assert.equal(dicomDate('', { loc: 'en' }), '');
  assert.equal(dicomDate('2004', { loc: 'en' }), '2004');
});

test('numbers, megabytes, shares and lists', () => {
  assert.equal(number(1234567, { loc: 'en' }), '1,234,567');
  assert.equal(megabytes(3_145_728, { loc: 'en' }), '3.1');
  assert.equal(megabytes(0, { loc: 'zh-CN' }), '0.0');
  assert.equal(percent(0.123, { loc: 'en' }), '12%');
  assert.equal(list(['CT', 'MR'], { loc: 'en' }), 'CT and MR');
  assert.equal(list(['CT', 'MR'], { loc: 'zh-CN' }), 'CT和MR');
});

test('ages: from Patient\'s Age, or from the birth date to the study date', async () => {
  const { ageBetween, parseAge, patientAge, patientSex, personLabel } = await import('../dist/lib/format.js');
  const { setLocale } = await import('../dist/lib/i18n.js');
  assert.deepEqual(parseAge('045Y'), { count: 45, unit: 'years' });
  assert.deepEqual(parseAge('006M'), { count: 6, unit: 'months' });
  assert.equal(parseAge('45'), null);
  assert.deepEqual(ageBetween('19800301', '20240119'), { count: 43, unit: 'years' });
  assert.deepEqual(ageBetween('19800119', '20240119'), { count: 44, unit: 'years' });
  assert.deepEqual(ageBetween('20230301', '20240119'), { count: 10, unit: 'months' });
  assert.deepEqual(ageBetween('20240101', '20240119'), { count: 18, unit: 'days' });
  assert.equal(ageBetween('20250101', '20240119'), null);
  assert.equal(ageBetween('', '20240119'), null);
  setLocale('en');
  assert.equal(patientAge({ age: '045Y', birthDate: '19000101', date: '20240119' }), '45 years');
  assert.equal(patientAge({ birthDate: '20230301', date: '20240119' }), '10 months');
  assert.equal(patientAge({ age: '001Y' }), '1 year');
  assert.equal(patientAge({}), '');
  assert.equal(patientSex('F'), 'female');
  assert.equal(patientSex(''), '');
  assert.equal(personLabel({ display_name: 'Dr A', site_name: 'Clinic B' }, 'a'), 'Dr A · Clinic B');
  assert.equal(personLabel(undefined, 'a'), 'a');
  setLocale('zh-CN');
  assert.equal(patientAge({ age: '045Y' }), '45岁');
  assert.equal(patientSex('M'), '男');
  setLocale('en');
});
