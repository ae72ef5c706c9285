// The message catalogues: both complete, same keys, same placeholders, and every key the code
// asks for exists.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import en from '../dist/i18n/en.js';
import zh from '../dist/i18n/zh-CN.js';
import { CALL_OUTCOMES, CRITICAL_FINDINGS, ECG_CONCLUSIONS, INTERVALS, KINDS, PRIORITIES, STATES } from '../dist/lib/reading.js';
import { FIELDS, QUESTION_PROBLEMS, ROLES as BROADCAST_ROLES, STATES as BROADCAST_STATES, connectionKey } from '../dist/lib/broadcast.js';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const placeholders = (/** @type {string} */ s) => [...s.matchAll(/\{(\w+)\}/g)].map(m => m[1]).sort();

/** @param {string} dir @returns {string[]} */
function sources(dir) {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'i18n' ? [] : sources(p);
    return p.endsWith('.js') ? [p] : [];
  });
}

test('both catalogues have the same keys', () => {
  const a = Object.keys(en).sort(), b = Object.keys(zh).sort();
  assert.deepEqual(a.filter(k => !(k in zh)), [], 'keys missing in zh-CN');
  assert.deepEqual(b.filter(k => !(k in en)), [], 'keys only in zh-CN');
});

test('no message is empty', () => {
  for (const [name, cat] of [['en', en], ['zh-CN', zh]]) {
    for (const [k, v] of Object.entries(cat)) {
      assert.equal(typeof v, 'string', `${name} ${k}`);
      assert.ok(v.trim().length > 0, `${name} ${k} is empty`);
    }
  }
});

test('each message has the same placeholders in both languages', () => {
  for (const k of Object.keys(en)) assert.deepEqual(placeholders(zh[k]), placeholders(en[k]), k);
});

test('plural messages have both forms', () => {
  for (const k of Object.keys(en)) {
    if (k.endsWith('_one')) assert.ok(`${k.slice(0, -4)}_other` in en, `${k} without _other`);
  }
});

test('the Chinese catalogue is Chinese: messages with English words in en have Chinese in zh-CN', () => {
  // Language names, brand-only and symbol-only messages may be the same in both.
  const same = Object.keys(en).filter(k => /[a-z]{3}/i.test(en[k].replace(/\{\w+\}/g, '')) && !/[\u4e00-\u9fff]/.test(zh[k]));
  assert.deepEqual(same, ['lang.en']);
});

test('medical terms follow hospital usage', () => {
  assert.match(zh['nav.consults'], /会诊/);
  assert.match(zh['studies.title'], /影像/);
  assert.match(zh['studies.title'], /检查/);
  assert.match(zh['role.reader'], /阅片/);
  assert.match(zh['consult_new.title'], /视频会诊/);
  // 危急值, and the hospital names of the findings the brief lists.
  assert.equal(zh['critical.title'], '危急值');
  assert.equal(zh['critical_finding.vt'], '室性心动过速');
  assert.equal(zh['critical_finding.complete_av_block'], '三度房室传导阻滞');
  assert.equal(zh['reading_state.ready'], '待阅');
  assert.equal(zh['reading_state.signed'], '已签发');
});

test('every key the code asks for is in the catalogue', () => {
  const missing = [];
  for (const file of sources(dist)) {
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/\bt\(\s*'([a-z0-9_.-]+)'/gi)) {
      const k = m[1];
      if (!(k in en) && !(`${k}_one` in en && `${k}_other` in en)) missing.push(`${file.slice(dist.length)}: ${k}`);
    }
    for (const m of src.matchAll(/data-i18n="([^"]+)"/g)) if (!(m[1] in en)) missing.push(`index.html: ${m[1]}`);
  }
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  for (const m of html.matchAll(/data-i18n="([^"]+)"/g)) if (!(m[1] in en)) missing.push(`index.html: ${m[1]}`);
  assert.deepEqual(missing, []);
});

test('computed keys: every value the pages look up has a message', () => {
  const need = [
    ...['preview', 'connecting', 'connected', 'reconnecting', 'ended'].map(s => `call.status.${s}`),
    ...['good', 'fair', 'poor', 'unknown'].map(s => `call.quality.${s}`),
    ...['sites', 'users', 'devices', 'reading', 'audit'].map(s => `admin.tab.${s}`),
    ...['imaging.send', 'consult.request', 'imaging.read', 'consult.answer', 'admin.sites', 'admin.users', 'admin.devices', 'admin.audit']
      .flatMap(c => [`card.${c}.title`, `card.${c}.text`]),
    ...['admin', 'specialist', 'reader', 'clinician', 'trainer'].flatMap(r => [`role.${r}`, `role_title.${r}`]),
    ...['city', 'county', 'township', 'village'].map(x => `tier.${x}`),
    ...['hospital', 'clinic', 'reading-centre'].map(x => `site_kind.${x}`),
    ...['modality', 'ecg-cart', 'uploader'].map(x => `device_kind.${x}`),
    ...['allowed', 'denied', 'success', 'failure'].map(x => `outcome.${x}`),
    ...['routine', 'urgent', 'emergency'].map(x => `urgency.${x}`),
    ...['requested', 'accepted', 'in_call', 'completed', 'declined', 'cancelled', 'expired'].map(x => `consult_state.${x}`),
    'lang.en', 'lang.zh-CN',
    ...['acknowledge', 'answer', 'sign', 'join'].map(x => `attention.${x}`),
    // training broadcasts: states, roles, the form's fields, the connection's words
    ...BROADCAST_STATES.map(x => `broadcast_state.${x}`),
    ...BROADCAST_ROLES.map(x => `broadcast_role.${x}`),
    ...FIELDS.map(x => `broadcasts.invalid.${x}`),
    ...['presenter', 'viewer'].flatMap(r => ['idle', 'camera', 'new', 'connecting', 'connected', 'disconnected', 'failed', 'closed', 'ended']
      .map(s => connectionKey(/** @type {'presenter' | 'viewer'} */ (r), s))),
    'broadcasts.watch', 'broadcasts.open', 'broadcasts.watch_named', 'broadcasts.open_named',
    // a session's questions: what the form refuses before sending, and the counted messages
    ...QUESTION_PROBLEMS.map(x => `questions.invalid.${x}`),
    ...['questions.votes', 'questions.new_count'].flatMap(x => [`${x}_one`, `${x}_other`]),
    ...['link', 'server', 'busy'].map(x => `upload.wait_${x}`),
    ...['too_large', 'mismatch', 'not_dicom', 'processing', 'duplicate', 'sop_class', 'not_authorised', 'other'].map(x => `refusal.${x}`),
    ...['years', 'months', 'weeks', 'days'].flatMap(x => [`age.${x}_one`, `age.${x}_other`]),
    ...['M', 'F', 'O'].map(x => `sex.${x}`),
    'error.upload_stopped', 'error.upload_gave_up',
    // reading centres: the codes the server speaks in
    ...KINDS.map(x => `reading_kind.${x}`),
    ...PRIORITIES.map(x => `priority.${x}`),
    ...STATES.map(x => `reading_state.${x}`),
    ...CRITICAL_FINDINGS.map(x => `critical_finding.${x}`),
    ...ECG_CONCLUSIONS.map(x => `ecg_conclusion.${x}`),
    ...CALL_OUTCOMES.map(x => `call_outcome.${x}`),
    ...INTERVALS.map(x => `turnaround.interval.${x}`),
    'turnaround.p50', 'turnaround.p90',
  ];
  assert.deepEqual(need.filter(k => !(k in en)), []);
});

test("every problem code the server sends has a message (src/error.rs and the handlers' codes)", () => {
  const codes = ['invalid_json', 'invalid_body', 'unreadable_body', 'invalid_query', 'invalid_path', 'invalid_value',
    'invalid_parameter', 'invalid_uid', 'invalid_tag', 'invalid_multipart', 'invalid_frames', 'invalid_upload',
    'empty_request', 'weak_password', 'invalid_credentials', 'unauthenticated', 'session_expired', 'token_revoked',
    'token_expired', 'csrf_failed', 'forbidden', 'not_found', 'already_exists', 'conflict', 'upload_busy',
    'account_locked', 'rate_limited', 'unsupported_media_type', 'payload_too_large', 'not_acceptable',
    'method_not_allowed', 'cannot_decode', 'unavailable', 'internal',
    // reading centres (src/reading/http.rs)
    'no_centre', 'exists',
    // signalling (docs/signalling.md)
    'not_allowed', 'not_in_room', 'peer_unavailable', 'too_many_rooms', 'message_too_large', 'invalid_message',
    'unsupported_version',
    // training broadcasts (docs/broadcasts.md)
    'presenter_connected', 'broadcast_over', 'invalid_sdp', 'too_many_questions', 'stage_taken', 'not_watching',
    'too_many_materials', 'upload_incomplete'];
  assert.deepEqual(codes.filter(c => !(`error.${c}` in en)), []);
});
