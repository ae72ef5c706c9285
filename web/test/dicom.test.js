import test from 'node:test';
import assert from 'node:assert/strict';
import { all, first, study, studyQuery, text, viewerUrl } from '../dist/lib/dicom.js';

// A QIDO-RS study result as Ferry answers it (synthetic values, no patient data).
const item = {
  '0020000D': { vr: 'UI', Value: ['1.2.3.4'] },
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Test^Alpha', Ideographic: '测^试' }] },
  '00100020': { vr: 'LO', Value: ['ID-1'] },
  '00080020': { vr: 'DA', Value: ['20240119'] },
  '00080061': { vr: 'CS', Value: ['CT', 'SR'] },
  '00201206': { vr: 'IS', Value: [2] },
  '00201208': { vr: 'IS', Value: [37] },
  '00081030': { vr: 'LO' },
  '00100040': { vr: 'CS', Value: ['F'] },
  '00100030': { vr: 'DA', Value: ['19800301'] },
};

test('values of DICOM JSON attributes', () => {
  assert.equal(first(item, '0020000D'), '1.2.3.4');
  assert.equal(text(item, '00100010'), 'Test^Alpha');
  assert.deepEqual(all(item, '00080061'), ['CT', 'SR']);
  assert.equal(text(item, '00081030'), '');
  assert.equal(text(item, 'FFFFFFFF'), '');
});

test('a study row', () => {
  assert.deepEqual(study(item), {
    uid: '1.2.3.4', patientName: { Alphabetic: 'Test^Alpha', Ideographic: '测^试' }, patientId: 'ID-1', sex: 'F', birthDate: '19800301', age: '', date: '20240119',
    modalities: ['CT', 'SR'], description: '', series: '2', instances: '37',
  });
});

test('the study search as a QIDO query', () => {
  assert.equal(studyQuery({}).toString(), 'includefield=00100040%2C00100030%2C00101010&limit=200');
  assert.equal(studyQuery({ name: 'ab', id: '7', modality: 'CT', from: '2024-01-01', to: '2024-02-01' }, 50).toString(),
    'PatientName=*ab*&PatientID=*7*&ModalitiesInStudy=CT&StudyDate=20240101-20240201&includefield=00100040%2C00100030%2C00101010&limit=50');
  assert.equal(studyQuery({ study: '1.2.3' }).get('StudyInstanceUID'), '1.2.3');
  assert.equal(studyQuery({ from: '2024-01-01' }).get('StudyDate'), '20240101-');
});

test('viewer links carry the language OHIF should use', () => {
  assert.equal(viewerUrl('1.2.3'), '/viewer/viewer?StudyInstanceUIDs=1.2.3');
  assert.equal(viewerUrl('1.2.3', 'zh'), '/viewer/viewer?StudyInstanceUIDs=1.2.3&lng=zh');
});

test('DICOM failure statuses in plain words', async () => {
  const { failureKey, statusHex } = await import('../dist/lib/dicom-status.js');
  assert.deepEqual([0xA700, 0xA7FF, 0xA900, 0xC000, 0xC123, 0x0110, 0x0111, 0x0122, 0x0124, 0x0001, undefined].map(failureKey), [
    'refusal.too_large', 'refusal.too_large', 'refusal.mismatch', 'refusal.not_dicom', 'refusal.not_dicom', 'refusal.processing',
    'refusal.duplicate', 'refusal.sop_class', 'refusal.not_authorised', 'refusal.other', 'refusal.other']);
  assert.equal(statusHex(0xA700), '0xA700');
  assert.equal(statusHex(0x0111), '0x0111');
});
