// Training broadcasts: the pure parts the pages share — the sessions in the order people look
// for them (live first), the audience in words, the start typed in local time as RFC 3339, the
// schedule form's body, the words for a connection's state, a session's questions and raised
// hands. No DOM, so node --test runs them.

import { list, shortDateTime, time } from './format.js';
import { t } from './i18n.js';

/**
 * @typedef {'scheduled' | 'live' | 'ended' | 'cancelled'} BroadcastState
 * @typedef {{ site: string, subtree: boolean }} AudienceEntry
 * @typedef {{ presenter: boolean, viewers: number, watching: number, stage?: string | null,
 *   stage_connected?: boolean }} Media
 * @typedef {{ id: string, site: string, trainer: string, title: string, description: string,
 *   starts_at: string, ends_at: string, minutes: number, state: BroadcastState,
 *   audience: AudienceEntry[], created_at: string, soon: boolean, media?: Media }} Broadcast
 * @typedef {{ user: string, name?: string | null, site: string, role: 'presenter' | 'viewer',
 *   joined_at: string, left_at: string | null, first_media_at: string | null,
 *   watched_seconds: number, minutes: number, connections: number }} Attendee
 * @typedef {{ broadcast: string, title: string, starts_at: string, people: Attendee[],
 *   sites: { site: string, people: number, minutes: number }[] }} Attendance
 * @typedef {{ id: string, name: string, parent?: string | null }} SiteNode
 * @typedef {{ id: string, author: string, author_name?: string | null, site: string, text: string,
 *   created_at: string, answered_at: string | null, votes: number, voted: boolean }} Question
 * @typedef {{ user: string, name?: string | null, site: string, raised_at: string }} Hand
 * @typedef {{ questions: Question[], hands: Hand[], trainer: boolean }} QuestionList
 */

export const STATES = /** @type {BroadcastState[]} */ (['scheduled', 'live', 'ended', 'cancelled']);
export const ROLES = ['presenter', 'viewer'];
/** The server's limits (docs/broadcasts.md), checked by the form before it sends. */
export const DEFAULT_MINUTES = 60;
export const MIN_MINUTES = 5;
export const MAX_MINUTES = 600;
export const MAX_TITLE = 200;
export const MAX_DESCRIPTION = 4000;
/** The longest question, in characters (as the server counts them: code points, trimmed). */
export const MAX_QUESTION = 1000;
/** How often the session page asks who is connected. */
export const REFRESH_MS = 15000;
/** The most sessions the home page's card lists. */
export const HOME_SESSIONS = 3;

/** @param {string} id */
export const broadcastPath = id => `/api/broadcasts/${encodeURIComponent(id)}`;
/** The session as an iCalendar file. @param {string} id */
export const calendarUrl = id => `${broadcastPath(id)}/calendar.ics`;
/** @param {string} id */
export const attendancePath = id => `${broadcastPath(id)}/attendance`;
/** @param {string} id */
export const attendanceCsvUrl = id => `${attendancePath(id)}?format=csv`;
/** Where the trainer publishes (WHIP). @param {string} id */
export const whipUrl = id => `${broadcastPath(id)}/whip`;
/** Where a viewer watches (WHEP). @param {string} id */
export const whepUrl = id => `${broadcastPath(id)}/whep`;
/** The session's questions and raised hands. @param {string} id */
export const questionsPath = id => `${broadcastPath(id)}/questions`;
/** @param {string} id @param {string} q */
export const votePath = (id, q) => `${questionsPath(id)}/${encodeURIComponent(q)}/vote`;
/** @param {string} id @param {string} q */
export const answeredPath = (id, q) => `${questionsPath(id)}/${encodeURIComponent(q)}/answered`;
/** @param {string} id */
export const handPath = id => `${broadcastPath(id)}/hand`;
/** The session's PDF materials. @param {string} id */
export const materialsPath = id => `${broadcastPath(id)}/materials`;
/** The trainer ends the session (POST). @param {string} id */
export const endPath = id => `${broadcastPath(id)}/end`;
/** Sessions that are over, with their recordings and materials. */
export const LIBRARY_PATH = '/api/broadcasts/library';

/**
 * A recording's length as a clock reads it: "0:42", "12:05", "1:02:09".
 * @param {number} seconds
 */
export function clockText(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

/** Who is on stage: PUT brings someone on, DELETE ends it. @param {string} id */
export const stagePath = id => `${broadcastPath(id)}/stage`;
/** Where the person on stage publishes (WHIP). @param {string} id */
export const stageWhipUrl = id => `${stagePath(id)}/whip`;

/** @param {string} s */
const ms = s => {
  const v = Date.parse(s);
  return Number.isNaN(v) ? Infinity : v;
};

/** @param {BroadcastState} s */
export const isOver = s => s === 'ended' || s === 'cancelled';

/**
 * The sessions as people look for them: live ones first, then by start, soonest first.
 * @template {Broadcast} B
 * @param {B[]} sessions
 * @returns {B[]}
 */
export function orderSessions(sessions) {
  const rank = (/** @type {Broadcast} */ b) => (b.state === 'live' ? 0 : isOver(b.state) ? 2 : 1);
  return [...sessions].sort((a, b) => rank(a) - rank(b) || ms(a.starts_at) - ms(b.starts_at) || a.title.localeCompare(b.title));
}

/**
 * The list page's groups: live now, coming up, and those ended or cancelled before their time
 * was up (the server lists a session until its expected end).
 * @template {Broadcast} B
 * @param {B[]} sessions
 * @returns {{ live: B[], upcoming: B[], over: B[] }}
 */
export function groupSessions(sessions) {
  const all = orderSessions(sessions);
  return {
    live: all.filter(b => b.state === 'live'),
    upcoming: all.filter(b => b.state === 'scheduled'),
    over: all.filter(b => isOver(b.state)),
  };
}

/**
 * What the home page's card lists: live sessions, then the next scheduled ones; at most `limit`.
 * @template {Broadcast} B
 * @param {B[]} sessions
 * @param {number} [limit]
 * @returns {B[]}
 */
export function homeSessions(sessions, limit = HOME_SESSIONS) {
  const { live, upcoming } = groupSessions(sessions);
  return [...live, ...upcoming].slice(0, limit);
}

/**
 * The audience in words: "County Hospital and every site below, Island Clinic" joined as the
 * language joins lists.
 * @param {AudienceEntry[]} audience
 * @param {(site: string) => string} nameOf a site's name by id
 */
export function audienceText(audience, nameOf) {
  return list(audience.map(e => (e.subtree ? t('broadcast.site_and_below', { site: nameOf(e.site) }) : nameOf(e.site))));
}

/**
 * A length in minutes, in words ("90 minutes").
 * @param {number} minutes
 */
export const minutesText = minutes => t('broadcast.minutes', { count: minutes });

/**
 * Whether two times fall on the same day where the browser is (or in `timeZone`).
 * @param {Date} a
 * @param {Date} b
 * @param {string} [timeZone]
 */
export function sameDay(a, b, timeZone) {
  const day = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit', timeZone });
  return day.format(a) === day.format(b);
}

/**
 * When a session starts, for lists: "today, 14:00", else day and time.
 * @param {string} startsAt
 * @param {{ now?: Date, timeZone?: string }} [o]
 */
export function startsText(startsAt, o = {}) {
  const d = new Date(startsAt);
  if (Number.isNaN(d.getTime())) return '—';
  const now = o.now || new Date();
  return sameDay(d, now, o.timeZone) ? t('broadcast.today_at', { time: time(d, { timeZone: o.timeZone }) })
    : shortDateTime(d, { now, timeZone: o.timeZone });
}

/** @param {number} n */
const pad = n => String(n).padStart(2, '0');

/**
 * A local date and time as typed in the form (`2026-12-08`, `10:00`) with the zone's offset
 * east of UTC in minutes (480 for China) as RFC 3339: `2026-12-08T10:00:00+08:00`. Null when
 * the date or time is not in the form an `<input type=date|time>` gives.
 * @param {string} date
 * @param {string} clock
 * @param {number} offsetMinutes
 */
export function rfc3339Local(date, clock, offsetMinutes) {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date || '');
  const c = /^(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/.exec(clock || '');
  if (!d || !c || !Number.isInteger(offsetMinutes) || Math.abs(offsetMinutes) >= 24 * 60) return null;
  const [mo, da, hh, mi, ss] = [Number(d[2]), Number(d[3]), Number(c[1]), Number(c[2]), Number(c[3] || 0)];
  if (mo < 1 || mo > 12 || da < 1 || da > 31 || hh > 23 || mi > 59 || ss > 59) return null;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${date}T${pad(hh)}:${pad(mi)}:${pad(ss)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/**
 * The browser's offset east of UTC, in minutes, at a local date and time (it changes with
 * summer time, so it is the offset of that day, not of today).
 * @param {string} date
 * @param {string} clock
 */
export function localOffset(date, clock) {
  const [y, mo, d] = (date || '').split('-').map(Number);
  const [hh, mi] = (clock || '').split(':').map(Number);
  const at = new Date(y, (mo || 1) - 1, d || 1, hh || 0, mi || 0);
  const off = Number.isNaN(at.getTime()) ? 0 : -Math.round(at.getTimezoneOffset());
  return off === 0 ? 0 : off; // never -0
}

/**
 * A local date and time from the form as RFC 3339 with the browser's offset of that day.
 * @param {string} date
 * @param {string} clock
 */
export const localStart = (date, clock) => rfc3339Local(date, clock, localOffset(date, clock));

/**
 * The form's first suggestion: the next full hour, in local time.
 * @param {Date} now
 * @returns {{ date: string, time: string }}
 */
export function defaultStart(now) {
  const next = new Date(now.getTime());
  next.setMinutes(0, 0, 0);
  next.setHours(next.getHours() + 1);
  return { date: localDate(next), time: `${pad(next.getHours())}:00` };
}

/** A Date's local calendar day as `<input type=date>` wants it. @param {Date} d */
export const localDate = d => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

/**
 * The body of POST /api/broadcasts from the form's values and the audience ticked (a site
 * ticked with "and every site below" goes in `subtrees` only).
 * @param {Record<string, string>} v title, description, date, time, minutes
 * @param {AudienceEntry[]} picks
 */
export function scheduleBody(v, picks) {
  const minutes = Number(v.minutes);
  return {
    title: (v.title || '').trim(),
    description: (v.description || '').trim(),
    starts_at: localStart(v.date, v.time),
    minutes: v.minutes && Number.isFinite(minutes) ? Math.round(minutes) : DEFAULT_MINUTES,
    audience: picks.filter(p => !p.subtree).map(p => p.site),
    subtrees: picks.filter(p => p.subtree).map(p => p.site),
  };
}

/** The form's fields the server may name in a refusal. */
export const FIELDS = ['title', 'description', 'starts_at', 'minutes', 'audience'];

/**
 * The field a refusal (`400 invalid_value`) names: its detail starts with the field's name
 * (one of `fields`, the schedule form's by default).
 * @param {string | null | undefined} detail
 * @param {string[]} [fields]
 * @returns {string | null}
 */
export function invalidField(detail, fields = FIELDS) {
  const m = /^\s*([a-z_]+)\s*:/.exec(detail || '');
  return m && fields.includes(m[1]) ? m[1] : null;
}

/**
 * The sites as a tree, depth first, each under its parent (sites whose parent is not listed
 * are roots), with whether sites hang below it; siblings by name.
 * @param {SiteNode[]} sites
 * @returns {{ site: SiteNode, depth: number, below: boolean }[]}
 */
export function siteTree(sites) {
  const ids = new Set(sites.map(s => s.id));
  /** @type {Map<string | null, SiteNode[]>} */
  const children = new Map();
  for (const s of sites) {
    const parent = s.parent && ids.has(s.parent) && s.parent !== s.id ? s.parent : null;
    children.set(parent, [...(children.get(parent) || []), s]);
  }
  for (const kids of children.values()) kids.sort((a, b) => a.name.localeCompare(b.name));
  /** @type {{ site: SiteNode, depth: number, below: boolean }[]} */
  const out = [];
  const seen = new Set();
  /** @param {string | null} parent @param {number} depth */
  const walk = (parent, depth) => {
    for (const s of children.get(parent) || []) {
      if (seen.has(s.id)) continue; // a loop in the data: each site once
      seen.add(s.id);
      out.push({ site: s, depth, below: (children.get(s.id) || []).length > 0 });
      walk(s.id, depth + 1);
    }
  };
  walk(null, 0);
  // Sites only reachable through a loop of parents: listed at the top.
  for (const s of sites) if (!seen.has(s.id)) { seen.add(s.id); out.push({ site: s, depth: 0, below: false }); }
  return out;
}

/**
 * The catalogue key of what a connection is doing, for the presenter or a viewer: `idle`
 * before anything started, `camera` while the camera starts, `ended` after hanging up, else
 * the RTCPeerConnection's connectionState.
 * @param {'presenter' | 'viewer'} role
 * @param {string} state
 */
export function connectionKey(role, state) {
  switch (state) {
    case 'camera': return 'broadcast.conn.camera';
    case 'new': case 'connecting': return 'broadcast.conn.connecting';
    case 'connected': return `broadcast.conn.connected_${role}`;
    case 'disconnected': return 'broadcast.conn.interrupted';
    case 'failed': return `broadcast.conn.failed_${role}`;
    case 'closed': case 'ended': return `broadcast.conn.ended_${role}`;
    default: return `broadcast.conn.idle_${role}`;
  }
}

/**
 * Whether a message of the socket tells of `event` (`scheduled`, `questions`) for a session —
 * for session `id` when given, for any otherwise.
 * @param {any} msg
 * @param {string} event
 * @param {string} [id]
 */
export function isBroadcastEvent(msg, event, id) {
  return !!msg && msg.type === 'broadcast' && msg.event === event && (id === undefined || msg.broadcast === id);
}

/** What the question form refuses before sending. */
export const QUESTION_PROBLEMS = ['empty', 'too_long'];

/**
 * What is wrong with a question before it is sent, as the server judges it: `empty` (nothing
 * but spaces), `too_long` (over MAX_QUESTION characters once trimmed), or null.
 * @param {string | null | undefined} text
 * @returns {'empty' | 'too_long' | null}
 */
export function questionProblem(text) {
  const s = (text || '').trim();
  if (!s) return 'empty';
  return [...s].length > MAX_QUESTION ? 'too_long' : null;
}

/**
 * The questions still waiting and those answered, each in the order the server gave (waiting:
 * the most up-voted first; answered: the last answered first).
 * @param {Question[]} list
 */
export function splitQuestions(list) {
  return { waiting: list.filter(q => !q.answered_at), answered: list.filter(q => !!q.answered_at) };
}

/**
 * Whether `user`'s hand is raised.
 * @param {Hand[]} hands
 * @param {string} user
 */
export const handRaised = (hands, user) => hands.some(x => x.user === user);

/**
 * The questions to announce: those of `list` not seen before and not asked by `me`. On the
 * first load (`seen` null) nothing is new.
 * @param {Set<string> | null} seen ids shown before
 * @param {Question[]} list
 * @param {string} me
 */
export function freshQuestions(seen, list, me) {
  return seen ? list.filter(q => !seen.has(q.id) && q.author !== me) : [];
}

/**
 * The hands to announce to the trainer: those of `hands` not raised before (by user) and not
 * `me`'s. On the first load (`seen` null) nothing is new.
 * @param {Set<string> | null} seen users whose hands were up before
 * @param {Hand[]} hands
 * @param {string} me
 */
export function freshHands(seen, hands, me) {
  return seen ? hands.filter(x => !seen.has(x.user) && x.user !== me) : [];
}

/**
 * When a question was asked, for its line: the time alone today, else day and time.
 * @param {string} at
 * @param {{ now?: Date, timeZone?: string }} [o]
 */
export function askedText(at, o = {}) {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return '—';
  const now = o.now || new Date();
  return sameDay(d, now, o.timeZone) ? time(d, { timeZone: o.timeZone }) : shortDateTime(d, { now, timeZone: o.timeZone });
}
