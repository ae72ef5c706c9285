// Connection quality from WebRTC statistics: pure functions the call page samples every two
// seconds, and the tests read directly.

/**
 * @typedef {{ rtt: number | null, loss: number, starved: boolean }} Quality
 * @typedef {{ lost: number, received: number, sentBytes: number, at: number }} Counts
 * @typedef {'good' | 'fair' | 'poor' | 'unknown'} Level
 */

/**
 * One connection's figures from its `getStats()` reports: round-trip time (ms), loss since
 * the previous sample, and whether camera video is starved by the link.
 * @param {Iterable<any>} reports the values of an RTCStatsReport
 * @param {Counts | null} prev the counts of the previous sample
 * @param {number} at now, in ms (performance.now())
 * @param {{ audioOnly: boolean, sharing: boolean }} mode
 * @returns {{ quality: Quality & { limit: string | null, fps: number | null }, counts: Counts }}
 */
export function summarize(reports, prev, at, mode) {
  const all = [...reports];
  let pairId = null;
  for (const r of all) if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  let pair = null, remoteRtt, lost = 0, received = 0, limit = null, fps, sentBytes = 0, height;
  for (const r of all) {
    if (r.type === 'candidate-pair' && (pairId ? r.id === pairId : r.nominated && r.state === 'succeeded')) pair = r;
    else if (r.type === 'inbound-rtp') { lost += r.packetsLost || 0; received += r.packetsReceived || 0; }
    else if (r.type === 'outbound-rtp' && r.kind === 'video') {
      limit = r.qualityLimitationReason; fps = r.framesPerSecond; sentBytes += r.bytesSent || 0; height = r.frameHeight;
    } else if (r.type === 'remote-inbound-rtp' && r.roundTripTime !== undefined && remoteRtt === undefined) remoteRtt = r.roundTripTime;
  }
  const rtt = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime : remoteRtt;
  // Loss over the last interval, not since the call began.
  const before = prev || { lost: 0, received: 0, sentBytes: 0, at: 0 };
  const dl = Math.max(0, lost - before.lost), dr = Math.max(0, received - before.received);
  const kbps = before.at ? Math.max(0, sentBytes - before.sentBytes) * 8 / (at - before.at) : null;
  // Camera video that the link cannot carry: held back for bandwidth to a few frames a
  // second, to a postage stamp, or to a trickle of bits no picture can be made of. (A shared
  // screen is often sent slowly on purpose, so it does not count.)
  const starved = !mode.audioOnly && !mode.sharing && limit === 'bandwidth'
    && ((fps !== undefined && fps < 8) || (height !== undefined && height < 120) || (kbps !== null && kbps < 40));
  return {
    quality: { rtt: rtt === undefined ? null : rtt * 1000, loss: dl + dr ? dl / (dl + dr) : 0, starved, limit, fps: fps ?? null },
    counts: { lost, received, sentBytes, at },
  };
}

/**
 * The call's quality over all its connections: the worst of each figure.
 * @param {Quality[]} qs
 * @returns {Quality}
 */
export function combine(qs) {
  const rtts = qs.map(q => q.rtt).filter(r => r !== null);
  return { rtt: rtts.length ? Math.max(...rtts) : null, loss: Math.max(0, ...qs.map(x => x.loss)), starved: qs.some(x => x.starved) };
}

/**
 * @param {Quality | null} q
 * @returns {Level}
 */
export function level(q) {
  if (!q) return 'unknown';
  const rtt = q.rtt ?? 0;
  if (q.loss > 0.10 || rtt > 400) return 'poor';
  if (q.loss > 0.02 || rtt > 150 || q.starved) return 'fair';
  return 'good';
}

/** A sample bad enough to count towards stepping down to audio. @param {Quality} q */
export function isBad(q) {
  return q.loss > 0.10 || q.starved;
}

/** Bad samples in a row (2 s apart) before video steps down by itself: 6 s, not one spike. */
export const STEP_DOWN_AFTER = 3;
