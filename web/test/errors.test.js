import test from 'node:test';
import assert from 'node:assert/strict';
import { describe, reasonOf } from '../dist/lib/errors.js';
import { setLocale } from '../dist/lib/i18n.js';

test('a problem code in the chosen language, the English detail beneath', () => {
  setLocale('zh-CN');
  try {
    assert.deepEqual(describe({ code: 'forbidden', detail: 'admins of island-clinic only', message: 'admins of island-clinic only' }),
      { message: '您无权执行此操作。', detail: 'admins of island-clinic only', code: 'forbidden' });
    assert.equal(describe({ code: 'internal', incident: 'ab12', detail: 'internal error (incident ab12)' }).message, '服务器发生错误（事件编号 ab12）。');
    assert.equal(describe({ code: 'brand_new', detail: 'x' }).message, '服务器拒绝了该请求（brand_new）。');
  } finally { setLocale('en'); }
  assert.deepEqual(describe('Give a reason for declining.'), { message: 'Give a reason for declining.', detail: null, code: null });
  assert.deepEqual(describe(new Error('Failed to fetch')), { message: 'Failed to fetch', detail: null, code: null });
});

test('reasons from anything thrown', () => {
  assert.equal(reasonOf(new Error('boom')), 'boom');
  assert.equal(reasonOf({ name: 'NotAllowedError' }), 'NotAllowedError');
  assert.equal(reasonOf('x'), 'x');
});
