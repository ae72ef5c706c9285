import test from 'node:test';
import assert from 'node:assert/strict';
import { CATALOGUES, STORAGE_KEY, initialLocale, interpolate, label, locale, ohifLanguage, onLocaleChange, pickLocale, setLocale, t, translate } from '../dist/lib/i18n.js';

test('the language follows navigator.languages: any Chinese is zh-CN, else English', () => {
  assert.equal(pickLocale(['zh-CN', 'en']), 'zh-CN');
  assert.equal(pickLocale(['zh']), 'zh-CN');
  assert.equal(pickLocale(['zh-TW']), 'zh-CN');
  assert.equal(pickLocale(['fr-FR', 'zh-Hans-CN']), 'zh-CN');
  assert.equal(pickLocale(['en-GB', 'zh-CN']), 'en');
  assert.equal(pickLocale(['fr', 'de']), 'en');
  assert.equal(pickLocale([]), 'en');
  assert.equal(pickLocale(undefined), 'en');
});

test('a remembered choice wins over the browser; a bad one is ignored', () => {
  const store = (/** @type {string | null} */ v) => ({ getItem: (/** @type {string} */ k) => (k === STORAGE_KEY ? v : null) });
  assert.equal(initialLocale(store('en'), ['zh-CN']), 'en');
  assert.equal(initialLocale(store('zh-CN'), ['en-US']), 'zh-CN');
  assert.equal(initialLocale(store('xx'), ['zh-CN']), 'zh-CN');
  assert.equal(initialLocale(null, ['zh-CN']), 'zh-CN');
  const throwing = { getItem() { throw new Error('denied'); } };
  assert.equal(initialLocale(throwing, ['zh']), 'zh-CN');
});

test('placeholders are filled; unknown ones stay', () => {
  assert.equal(interpolate('New token for {user}', { user: 'dr-zhao' }), 'New token for dr-zhao');
  assert.equal(interpolate('{a} and {b}', { a: 1 }), '1 and {b}');
  assert.equal(interpolate('no params'), 'no params');
});

test('lookup in each language', () => {
  assert.equal(translate('en', 'nav.consults'), 'Consults');
  assert.equal(translate('zh-CN', 'nav.consults'), '会诊');
  assert.equal(translate('zh-CN', 'tokens.new_for', { user: 'dr-zhao' }), '为 dr-zhao 创建新令牌');
});

test('a key missing in Chinese falls back to English, a key missing everywhere to itself', () => {
  CATALOGUES.en['test.only_en'] = 'Only in English';
  try {
    assert.equal(translate('zh-CN', 'test.only_en'), 'Only in English');
  } finally {
    delete CATALOGUES.en['test.only_en'];
  }
  assert.equal(translate('zh-CN', 'no.such.key'), 'no.such.key');
});

test('plural forms by count, numbers in the locale', () => {
  assert.equal(translate('en', 'consult.studies_on_accept', { count: 1 }), '1 study attached; the images open once you accept.');
  assert.equal(translate('en', 'consult.studies_on_accept', { count: 3 }), '3 studies attached; the images open once you accept.');
  assert.match(translate('zh-CN', 'consult.studies_on_accept', { count: 1 }), /^附有 1 项检查/);
  assert.equal(translate('en', 'upload.stored', { count: 1200 }), 'Stored: 1,200 images.');
  assert.equal(translate('en', 'upload.stored', { count: 1 }), 'Stored: 1 image.');
});

test('labels of server values: known ones translated, others as they came', () => {
  setLocale('zh-CN');
  try {
    assert.equal(label('role', 'clinician'), '临床医生');
    assert.equal(label('specialty', 'dermatology'), 'dermatology');
    assert.equal(label('tier', ''), '');
  } finally { setLocale('en'); }
});

test('switching the language tells the watchers, once per change', () => {
  /** @type {string[]} */
  const seen = [];
  const stop = onLocaleChange(l => seen.push(l));
  setLocale('zh-CN');
  setLocale('zh-CN');
  // @ts-expect-error not a locale: ignored
  setLocale('fr');
  setLocale('en');
  stop();
  assert.deepEqual(seen, ['zh-CN', 'en']);
  assert.equal(locale(), 'en');
  assert.equal(t('nav.home'), 'Home');
});

test("OHIF's language tags", () => {
  assert.equal(ohifLanguage('zh-CN'), 'zh');
  assert.equal(ohifLanguage('en'), 'en-US');
});
