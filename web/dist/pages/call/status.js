// The call's status from the page's state (pure).

/**
 * What the status pill says, from the page's state.
 * @param {{ ended: boolean, wantIn: boolean, inRoom: boolean, wasIn: boolean, away: number, states: string[] }} s
 * @returns {import('./view.js').Status}
 */
export function callStatus(s) {
  if (s.ended) return 'ended';
  if (!s.wantIn) return 'preview';
  if (!s.inRoom) return s.wasIn ? 'reconnecting' : 'connecting';
  if (s.away || s.states.some(st => st === 'disconnected' || st === 'failed')) return 'reconnecting';
  if (s.states.includes('connected')) return 'connected';
  return 'connecting';
}
