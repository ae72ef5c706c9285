// One RTCPeerConnection per other participant, negotiated by "perfect negotiation" over the
// signalling socket; ICE servers from /api/turn; ICE restarts when a path fails or a peer
// comes back.

import { api } from '../../lib/api.js';

/**
 * @typedef {{
 *   user: string, pc: RTCPeerConnection, polite: boolean, makingOffer: boolean, ignoreOffer: boolean,
 *   awaitOffer: boolean, pending: RTCIceCandidateInit[], queue: Promise<unknown>, remoteUfrag: string | null,
 *   counts: import('./quality.js').Counts | null, tile: HTMLElement | null, video: HTMLVideoElement | null,
 *   stream: MediaStream | null,
 * }} Peer
 */

/**
 * The ICE username fragment of a session description (it changes on an ICE restart).
 * @param {string | null | undefined} sdp
 */
export const iceUfrag = sdp => (/^a=ice-ufrag:(\S+)/m.exec(sdp || '') || [])[1] || null;

/**
 * The polite side of a pair gives way when both offer at once: the lower user id.
 * @param {string} mine
 * @param {string} theirs
 */
export const isPolite = (mine, theirs) => mine < theirs;

/**
 * @param {{
 *   call: { pcs: Map<string, RTCPeerConnection>, restarts: number },
 *   peers: Map<string, Peer>,
 *   away: Set<string>,
 *   room: string,
 *   myId: string,
 *   inRoom: () => boolean,
 *   media: import('./media.js').Media,
 *   view: import('./view.js').View,
 *   updateStatus: () => void,
 *   send: (msg: Record<string, any>) => boolean,
 * }} ctx
 */
export function createNegotiation(ctx) {
  const { call, peers, away, room, media, view } = ctx;
  /** @type {RTCConfiguration} */
  let ice = { iceServers: [] };
  let iceExpires = 0;

  /** @param {any} turn the answer of GET /api/turn */
  function setIce(turn) {
    ice = { iceServers: turn.iceServers || [] };
    if (turn.iceTransportPolicy) ice.iceTransportPolicy = turn.iceTransportPolicy;
    iceExpires = turn.expires || 0;
  }

  /** Asks for ICE servers; throws if there are none to be had. */
  async function loadIce() {
    setIce(await api('GET', '/api/turn'));
  }

  // TURN credentials expire; an ICE restart late in a long call asks for new ones first.
  async function freshIce() {
    if (!iceExpires || Date.now() / 1000 < iceExpires - 60) return;
    try {
      setIce(await api('GET', '/api/turn'));
      for (const p of peers.values()) p.pc.setConfiguration(ice);
    } catch (e) { console.warn('turn', e); }
  }

  /**
   * @param {string} to
   * @param {Record<string, any>} msg
   */
  function signal(to, msg) {
    // Nothing reaches someone whose socket dropped, nor leaves while ours is down (before
    // `joined` again the server would refuse it); the return brings an ICE restart.
    if (!ctx.inRoom() || away.has(to)) return;
    ctx.send({ ...msg, room, to });
  }

  /**
   * The connection to `user`, made if there is none. awaitOffer: they make the first offer
   * (they joined after us); we do not offer until then.
   * @param {string} user
   * @param {boolean} awaitOffer
   * @returns {Peer}
   */
  function ensurePeer(user, awaitOffer) {
    const known = peers.get(user);
    if (known) return known;
    const pc = new RTCPeerConnection(ice);
    /** @type {Peer} */
    const p = {
      user, pc, polite: isPolite(ctx.myId, user), makingOffer: false, ignoreOffer: false, awaitOffer,
      pending: [], queue: Promise.resolve(), remoteUfrag: null, counts: null, tile: null, video: null, stream: null,
    };
    peers.set(user, p);
    call.pcs.set(user, pc);
    media.attach(pc);
    pc.onnegotiationneeded = () => negotiate(p);
    pc.onicecandidate = ({ candidate }) => { if (candidate) signal(user, { type: 'candidate', candidate: candidate.toJSON() }); };
    pc.ontrack = ({ track, streams }) => view.showRemote(p, track, streams);
    pc.onconnectionstatechange = () => {
      // A path that failed (network change, NAT timeout) gets new candidates.
      if (pc.connectionState === 'failed' && ctx.inRoom() && !away.has(user)) restart(p);
      ctx.updateStatus();
    };
    if (awaitOffer) {
      // Should their offer never come, make one ourselves.
      setTimeout(() => {
        if (peers.get(user) === p && p.awaitOffer && !pc.remoteDescription) { p.awaitOffer = false; negotiate(p); }
      }, 5000);
    }
    ctx.updateStatus();
    return p;
  }

  /** @param {Peer} p */
  async function negotiate(p) {
    const pc = p.pc;
    if (p.awaitOffer || !ctx.inRoom() || away.has(p.user) || p.makingOffer || pc.signalingState !== 'stable') return;
    try {
      p.makingOffer = true;
      await pc.setLocalDescription();
      signal(p.user, { type: 'offer', sdp: pc.localDescription?.sdp });
    } catch (e) {
      console.warn('offer failed', e);
    } finally {
      p.makingOffer = false;
    }
  }

  /**
   * @param {Peer} p
   * @param {'offer' | 'answer'} type
   * @param {string} sdp
   */
  async function onDescription(p, type, sdp) {
    const pc = p.pc;
    if (pc.signalingState === 'closed') return;
    // Glare: both offered at once. The polite side (lower user id) gives way and takes
    // theirs (setRemoteDescription rolls its own back); the impolite side ignores theirs.
    const collision = type === 'offer' && (p.makingOffer || pc.signalingState !== 'stable');
    p.ignoreOffer = !p.polite && collision;
    if (p.ignoreOffer) return;
    if (type === 'answer' && pc.signalingState !== 'have-local-offer') return; // a stale answer
    const ufrag = iceUfrag(sdp);
    // A new ufrag in their offer: they restarted ICE, and answering it is our part of it.
    if (type === 'offer' && p.remoteUfrag && ufrag && ufrag !== p.remoteUfrag) call.restarts++;
    if (type === 'offer') p.awaitOffer = false;
    await pc.setRemoteDescription({ type, sdp });
    p.remoteUfrag = ufrag || p.remoteUfrag;
    for (const c of p.pending.splice(0)) await pc.addIceCandidate(c).catch(e => console.warn('candidate', e));
    if (type === 'offer') {
      await pc.setLocalDescription();
      signal(p.user, { type: 'answer', sdp: pc.localDescription?.sdp });
    }
  }

  /**
   * @param {Peer} p
   * @param {RTCIceCandidateInit} candidate
   */
  async function onCandidate(p, candidate) {
    // Candidates may overtake the description they belong to: keep them until it is set.
    if (!p.pc.remoteDescription) { p.pending.push(candidate); return; }
    try { await p.pc.addIceCandidate(candidate); }
    catch (e) { if (!p.ignoreOffer) console.warn('candidate', e); }
  }

  /**
   * Each peer's signalling is handled in order of arrival, one message at a time.
   * @param {Peer} p
   * @param {() => Promise<unknown>} fn
   */
  function inOrder(p, fn) {
    p.queue = p.queue.then(fn).catch(e => console.warn('signalling', e));
  }

  /** @param {Peer} p */
  async function restart(p) {
    await freshIce();
    const pc = p.pc;
    if (pc.signalingState === 'closed' || peers.get(p.user) !== p) return;
    // An offer of ours still waiting for an answer never reached them: take it back.
    if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    pc.restartIce();
    call.restarts++;
    // restartIce fires negotiationneeded only if no negotiation was already pending.
    negotiate(p);
  }

  /** @param {string} user */
  function closePeer(user) {
    const p = peers.get(user);
    if (!p) return;
    p.pc.close();
    if (p.tile) p.tile.remove();
    peers.delete(user);
    call.pcs.delete(user);
  }

  return { loadIce, ensurePeer, onDescription, onCandidate, inOrder, restart, closePeer };
}
