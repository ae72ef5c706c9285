// DICOM failure statuses (PS3.4 Annex B, as STOW-RS and the upload answer them) in plain words
// for people. Pure.

import { t } from './i18n.js';

/**
 * The catalogue key (`refusal.<reason>`) for a failure status: by its class (A7xx out of
 * resources, A9xx data set does not match, Cxxx cannot understand) or the exact code.
 * @param {number | null | undefined} status
 */
export function failureKey(status) {
  if (typeof status !== 'number') return 'refusal.other';
  if (status === 0x0110) return 'refusal.processing';
  if (status === 0x0111) return 'refusal.duplicate';
  if (status === 0x0122) return 'refusal.sop_class';
  if (status === 0x0124) return 'refusal.not_authorised';
  if ((status & 0xff00) === 0xa700) return 'refusal.too_large';
  if ((status & 0xff00) === 0xa900) return 'refusal.mismatch';
  if ((status & 0xf000) === 0xc000) return 'refusal.not_dicom';
  return 'refusal.other';
}

/** @param {number | null | undefined} status */
export function failureText(status) { return t(failureKey(status)); }

/**
 * A status as DICOM writes it: 0x and four upper-case hex digits.
 * @param {number} status
 */
export function statusHex(status) {
  return `0x${status.toString(16).toUpperCase().padStart(4, '0')}`;
}
