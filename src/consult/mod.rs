//! Video consults (`docs/consults.md`): a clinician's request to a specialty or a named
//! specialist, its lifecycle, and the signed opinion that goes back to the clinic.
//!
//! This file is the pure core: the model, which steps a person may take in which state
//! ([`apply`]), and the timers that escalate or expire unanswered requests ([`due`]). It reads
//! no clock (time is passed in) and does no IO; `store.rs` persists, `http.rs` is the shell.

pub mod http;
pub mod store;

use serde::Serialize;

use crate::auth::policy::ActorView;
use crate::network::{Role, SiteId, Specialty, UserId, word_enum};

word_enum!(
    /// How soon the consultant is needed.
    Urgency, "urgency" { Routine = "routine", Urgent = "urgent", Emergency = "emergency" }
);
word_enum!(
    /// Where a consult is in its life.
    State, "consult state" {
        Requested = "requested",
        Accepted = "accepted",
        InCall = "in_call",
        Completed = "completed",
        Declined = "declined",
        Cancelled = "cancelled",
        Expired = "expired",
    }
);

impl State {
    /// Waiting for a specialist.
    pub fn is_open(self) -> bool {
        self == State::Requested
    }
    /// Accepted and not yet ended: the call room is open.
    pub fn has_room(self) -> bool {
        matches!(self, State::Accepted | State::InCall)
    }
}

/// A consult's identifier: `cs_` and 24 hex digits.
pub fn is_consult_id(s: &str) -> bool {
    crate::ids::is_prefixed_id(s, "cs_")
}

pub fn new_consult_id() -> String {
    crate::ids::prefixed_id("cs_")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opinion {
    pub version: i64,
    pub text: String,
    pub signed_by: UserId,
    pub signed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub by: UserId,
    pub at: i64,
    pub version: i64,
}

/// A consult as stored. `summary` and opinion texts are patient data: they are never logged
/// or put into audit events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consult {
    pub id: String,
    pub from_site: SiteId,
    pub requested_by: UserId,
    pub specialty: Specialty,
    pub specialist: Option<UserId>,
    pub urgency: Urgency,
    pub summary: String,
    pub scheduled_at: Option<i64>,
    pub state: State,
    pub accepted_by: Option<UserId>,
    pub accepted_at: Option<i64>,
    pub decline_reason: Option<String>,
    pub cancel_reason: Option<String>,
    pub escalated_at: Option<i64>,
    pub call_started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub ack: Option<Ack>,
    pub created_at: i64,
    pub updated_at: i64,
    pub studies: Vec<String>,
    pub opinions: Vec<Opinion>,
    /// Specialists who declined it (it leaves their inbox).
    pub declined_by: Vec<UserId>,
}

/// What a clinician asks for: the parts of a consult that its requester sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub from_site: SiteId,
    pub requested_by: UserId,
    pub specialty: Specialty,
    pub specialist: Option<UserId>,
    pub urgency: Urgency,
    pub summary: String,
    pub scheduled_at: Option<i64>,
    pub studies: Vec<String>,
}

impl Consult {
    /// A new request, made at `now`.
    pub fn new(r: Request, now: i64) -> Consult {
        Consult {
            id: new_consult_id(),
            from_site: r.from_site,
            requested_by: r.requested_by,
            specialty: r.specialty,
            specialist: r.specialist,
            urgency: r.urgency,
            summary: r.summary,
            scheduled_at: r.scheduled_at,
            state: State::Requested,
            accepted_by: None,
            accepted_at: None,
            decline_reason: None,
            cancel_reason: None,
            escalated_at: None,
            call_started_at: None,
            completed_at: None,
            ack: None,
            created_at: now,
            updated_at: now,
            studies: r.studies,
            opinions: vec![],
            declined_by: vec![],
        }
    }
}

/// A specialist who could answer consults: who, where, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Specialist {
    pub id: UserId,
    pub display_name: String,
    pub site: SiteId,
    pub specialties: Vec<Specialty>,
}

impl Consult {
    /// The specialists who may answer it now, out of every specialist of the network: the
    /// named one (until it escalates), else all of the specialty; never those who declined,
    /// never the requester.
    pub fn answerers<'a>(&self, all: &'a [Specialist]) -> Vec<&'a Specialist> {
        all.iter()
            .filter(|s| s.specialties.contains(&self.specialty))
            .filter(|s| match (&self.specialist, self.escalated_at) {
                (Some(named), None) => &s.id == named,
                _ => true,
            })
            .filter(|s| !self.declined_by.contains(&s.id) && s.id != self.requested_by)
            .collect()
    }

    /// People beyond the requesting site who may read it: the answerers while it is open,
    /// the one who accepted it afterwards.
    pub fn parties(&self, all: &[Specialist]) -> Vec<UserId> {
        let mut p: Vec<UserId> = match self.state {
            State::Requested => self.answerers(all).into_iter().map(|s| s.id.clone()).collect(),
            _ => vec![],
        };
        p.extend(self.accepted_by.clone());
        p.push(self.requested_by.clone());
        p.sort();
        p.dedup();
        p
    }

    /// Who is in the call: the requester and the specialist who accepted.
    pub fn participants(&self) -> Vec<UserId> {
        let mut p = vec![self.requested_by.clone()];
        p.extend(self.accepted_by.clone());
        p
    }

    /// When its timers count from: its scheduled time, else its creation.
    pub fn starts_at(&self) -> i64 {
        self.scheduled_at.unwrap_or(self.created_at).max(self.created_at)
    }
}

/// A step someone takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Accept,
    Decline {
        reason: String,
    },
    Cancel {
        reason: Option<String>,
    },
    /// Joining the call (the first join starts it).
    Join,
    Complete,
    Sign {
        text: String,
    },
    Acknowledge,
}

impl Step {
    /// The audit action of the step.
    pub fn action(&self) -> &'static str {
        match self {
            Step::Accept => "consult.accept",
            Step::Decline { .. } => "consult.decline",
            Step::Cancel { .. } => "consult.cancel",
            Step::Join => "consult.join",
            Step::Complete => "consult.complete",
            Step::Sign { .. } => "consult.sign",
            Step::Acknowledge => "consult.acknowledge",
        }
    }
}

/// What a step did, as pushed to the people concerned (`consult` events, docs/signalling.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Requested,
    Accepted,
    /// Declined by one specialist; `ended` when nobody is left to answer.
    Declined {
        ended: bool,
    },
    Cancelled,
    InCall,
    Completed,
    Opinion,
    Acknowledged,
    Escalated,
    Expired,
    /// Nothing changed (a second join of a call in progress).
    None,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Requested => "requested",
            Event::Accepted => "accepted",
            Event::Declined { .. } => "declined",
            Event::Cancelled => "cancelled",
            Event::InCall => "in-call",
            Event::Completed => "completed",
            Event::Opinion => "opinion",
            Event::Acknowledged => "acknowledged",
            Event::Escalated => "escalated",
            Event::Expired => "expired",
            Event::None => "none",
        }
    }
}

/// Why a step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The person may read the consult but not take this step (403).
    #[error("{0}")]
    NotYours(&'static str),
    /// The consult is not in a state that allows the step (409).
    #[error("{0}")]
    WrongState(&'static str),
    /// The step's input is unusable (400).
    #[error("{0}")]
    Invalid(&'static str),
}

/// Most characters of a case summary, an opinion, or a reason.
pub const MAX_TEXT: usize = 20_000;
pub const MAX_REASON: usize = 500;

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max
}

/// Takes `step` on `c` for `actor` at `now`, or says why not. `all` is every specialist of
/// the network (to know who may answer).
pub fn apply(
    c: &mut Consult,
    actor: &ActorView,
    all: &[Specialist],
    step: Step,
    now: i64,
) -> Result<Event, Refusal> {
    use Refusal::*;
    let me = &actor.user;
    let is_requester = &c.requested_by == me;
    let is_accepter = c.accepted_by.as_ref() == Some(me);
    let may_answer =
        actor.has_role(Role::Specialist) && c.answerers(all).iter().any(|s| &s.id == me);
    let clinician_of_site = actor.site == c.from_site && actor.has_role(Role::Clinician);
    let event = match step {
        // The state first: whoever may read the consult may learn that it is taken.
        Step::Accept | Step::Decline { .. } if !c.state.is_open() => {
            return Err(WrongState(match c.state {
                State::Accepted | State::InCall | State::Completed => {
                    "this consult has already been accepted"
                }
                _ => "this consult is no longer open",
            }));
        }
        Step::Accept | Step::Decline { .. } if !may_answer => {
            return Err(NotYours("only a specialist this consult is addressed to can answer it"));
        }
        Step::Accept => {
            c.state = State::Accepted;
            c.accepted_by = Some(me.clone());
            c.accepted_at = Some(now);
            Event::Accepted
        }
        Step::Decline { reason } => {
            if !text_ok(&reason, MAX_REASON) {
                return Err(Invalid("a decline needs a reason (at most 500 characters)"));
            }
            c.declined_by.push(me.clone());
            // The latest reason is kept (and stored with each decline); the clinic sees why.
            c.decline_reason = Some(reason);
            let ended = c.answerers(all).is_empty();
            if ended {
                c.state = State::Declined;
            }
            Event::Declined { ended }
        }
        Step::Cancel { .. }
            if !matches!(c.state, State::Requested | State::Accepted | State::InCall) =>
        {
            return Err(WrongState("this consult has already ended"));
        }
        Step::Cancel { .. } if !is_requester => {
            return Err(NotYours("only the clinician who requested it can cancel it"));
        }
        Step::Cancel { reason } => {
            if reason.as_deref().is_some_and(|r| r.chars().count() > MAX_REASON) {
                return Err(Invalid("a reason has at most 500 characters"));
            }
            c.state = State::Cancelled;
            c.cancel_reason = reason.filter(|r| !r.trim().is_empty());
            Event::Cancelled
        }
        Step::Join | Step::Complete if !(is_requester || is_accepter) => {
            return Err(NotYours("only the consult's participants can do that"));
        }
        Step::Join => match c.state {
            State::Accepted => {
                c.state = State::InCall;
                c.call_started_at = Some(now);
                Event::InCall
            }
            State::InCall => Event::None,
            _ => return Err(WrongState("the call is not open")),
        },
        Step::Complete => {
            if !c.state.has_room() {
                return Err(WrongState("only an accepted consult can be completed"));
            }
            c.state = State::Completed;
            c.completed_at = Some(now);
            Event::Completed
        }
        Step::Sign { .. } if !is_accepter => {
            return Err(NotYours("only the specialist who accepted the consult signs its opinion"));
        }
        Step::Sign { text } => {
            if !matches!(c.state, State::Accepted | State::InCall | State::Completed) {
                return Err(WrongState("an opinion needs an accepted consult"));
            }
            if !text_ok(&text, MAX_TEXT) {
                return Err(Invalid("an opinion needs text (at most 20000 characters)"));
            }
            let version = c.opinions.last().map_or(1, |o| o.version + 1);
            c.opinions.push(Opinion { version, text, signed_by: me.clone(), signed_at: now });
            if c.state != State::Completed {
                c.state = State::Completed;
                c.completed_at = Some(now);
            }
            Event::Opinion
        }
        Step::Acknowledge if !(is_requester || clinician_of_site) => {
            return Err(NotYours("only the requesting clinic acknowledges the opinion"));
        }
        Step::Acknowledge => {
            let Some(latest) = c.opinions.last() else {
                return Err(WrongState("there is no signed opinion to acknowledge yet"));
            };
            if c.ack.as_ref().is_some_and(|a| a.version == latest.version) {
                return Err(WrongState("the latest opinion is already acknowledged"));
            }
            c.ack = Some(Ack { by: me.clone(), at: now, version: latest.version });
            Event::Acknowledged
        }
    };
    c.updated_at = next_stamp(c, now);
    Ok(event)
}

/// The steps `actor` could take now, for the page (`can` in the JSON). Derived by trying each
/// step on a copy, so it never disagrees with [`apply`].
pub fn possible_steps(
    c: &Consult,
    actor: &ActorView,
    all: &[Specialist],
    now: i64,
) -> Vec<&'static str> {
    let tries: [(&'static str, Step); 7] = [
        ("accept", Step::Accept),
        ("decline", Step::Decline { reason: "x".into() }),
        ("cancel", Step::Cancel { reason: None }),
        ("join", Step::Join),
        ("complete", Step::Complete),
        ("sign", Step::Sign { text: "x".into() }),
        ("acknowledge", Step::Acknowledge),
    ];
    tries
        .into_iter()
        .filter(|(_, step)| apply(&mut c.clone(), actor, all, step.clone(), now).is_ok())
        .map(|(name, _)| name)
        .collect()
}

/// The change stamp after a change at `now`: always later than the one read, so that the
/// store's "nobody changed it since" check catches two changes within one millisecond.
fn next_stamp(c: &Consult, now: i64) -> i64 {
    now.max(c.updated_at + 1)
}

/// Timers of unanswered requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub emergency_escalate_ms: i64,
    pub emergency_expire_ms: i64,
    pub expire_ms: i64,
}

impl From<&crate::config::ConsultSettings> for Timers {
    fn from(s: &crate::config::ConsultSettings) -> Self {
        Timers {
            emergency_escalate_ms: s.emergency_escalate_secs as i64 * 1000,
            emergency_expire_ms: s.emergency_expire_secs as i64 * 1000,
            expire_ms: s.expire_hours as i64 * 3_600_000,
        }
    }
}

/// What a timer does to an unanswered request at `now`, if anything; applies it to `c`.
pub fn due(c: &mut Consult, t: &Timers, now: i64) -> Option<Event> {
    if !c.state.is_open() {
        return None;
    }
    let waited = now - c.starts_at();
    let expire_after =
        if c.urgency == Urgency::Emergency { t.emergency_expire_ms } else { t.expire_ms };
    if waited >= expire_after {
        c.state = State::Expired;
        c.updated_at = next_stamp(c, now);
        return Some(Event::Expired);
    }
    if c.urgency == Urgency::Emergency
        && c.escalated_at.is_none()
        && waited >= t.emergency_escalate_ms
    {
        c.escalated_at = Some(now);
        c.updated_at = next_stamp(c, now);
        return Some(Event::Escalated);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(user: &str, site: &str, roles: &[Role]) -> ActorView {
        ActorView {
            user: user.parse().unwrap(),
            site: site.parse().unwrap(),
            roles: roles.to_vec(),
            admin_scope: Default::default(),
            at_root_site: false,
            device: false,
            senior: false,
        }
    }

    fn specialists() -> Vec<Specialist> {
        [
            ("dr-li", "city-hospital", "radiology"),
            ("dr-wu", "county-hospital", "radiology"),
            ("dr-chen", "city-hospital", "cardiology"),
        ]
        .iter()
        .map(|(id, site, spec)| Specialist {
            id: id.parse().unwrap(),
            display_name: id.to_string(),
            site: site.parse().unwrap(),
            specialties: vec![spec.parse().unwrap()],
        })
        .collect()
    }

    fn consult(urgency: Urgency, named: Option<&str>) -> Consult {
        let r = Request {
            from_site: "island-clinic".parse().unwrap(),
            requested_by: "dr-zhao".parse().unwrap(),
            specialty: "radiology".parse().unwrap(),
            specialist: named.map(|n| n.parse().unwrap()),
            urgency,
            summary: "case".into(),
            scheduled_at: None,
            studies: vec![],
        };
        Consult::new(r, 1_000)
    }

    #[test]
    fn a_consult_goes_from_request_to_acknowledged_opinion() {
        let all = specialists();
        let (zhao, li, wu, ma) = (
            actor("dr-zhao", "island-clinic", &[Role::Clinician]),
            actor("dr-li", "city-hospital", &[Role::Specialist]),
            actor("dr-wu", "county-hospital", &[Role::Specialist]),
            actor("dr-ma", "mountain-clinic", &[Role::Clinician]),
        );
        let mut c = consult(Urgency::Urgent, None);
        let ids = |v: Vec<&Specialist>| v.iter().map(|s| s.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(c.answerers(&all)), ["dr-li", "dr-wu"], "radiology only");
        assert_eq!(possible_steps(&c, &zhao, &all, 2_000), ["cancel"]);
        assert_eq!(possible_steps(&c, &li, &all, 2_000), ["accept", "decline"]);
        assert!(possible_steps(&c, &ma, &all, 2_000).is_empty());
        assert_eq!(
            apply(&mut c, &zhao, &all, Step::Accept, 2_000),
            Err(Refusal::NotYours("only a specialist this consult is addressed to can answer it"))
        );
        assert_eq!(apply(&mut c, &li, &all, Step::Accept, 2_000), Ok(Event::Accepted));
        // Taken: the other specialist is told so.
        assert_eq!(
            apply(&mut c, &wu, &all, Step::Accept, 2_001),
            Err(Refusal::WrongState("this consult has already been accepted"))
        );
        assert_eq!(c.parties(&all), ["dr-li", "dr-zhao"].map(|u| u.parse().unwrap()));
        assert_eq!(
            apply(&mut c, &ma, &all, Step::Join, 2_100),
            Err(Refusal::NotYours("only the consult's participants can do that"))
        );
        assert_eq!(apply(&mut c, &zhao, &all, Step::Join, 2_100), Ok(Event::InCall));
        assert_eq!(apply(&mut c, &li, &all, Step::Join, 2_200), Ok(Event::None));
        assert_eq!(c.call_started_at, Some(2_100));
        assert!(matches!(
            apply(&mut c, &zhao, &all, Step::Sign { text: "x".into() }, 3_000),
            Err(Refusal::NotYours(_))
        ));
        assert!(matches!(
            apply(&mut c, &zhao, &all, Step::Acknowledge, 3_000),
            Err(Refusal::WrongState(_))
        ));
        assert!(matches!(
            apply(&mut c, &li, &all, Step::Sign { text: "  ".into() }, 3_000),
            Err(Refusal::Invalid(_))
        ));
        assert_eq!(
            apply(&mut c, &li, &all, Step::Sign { text: "No fracture.".into() }, 3_000),
            Ok(Event::Opinion)
        );
        assert_eq!(c.state, State::Completed);
        assert_eq!(apply(&mut c, &zhao, &all, Step::Acknowledge, 3_500), Ok(Event::Acknowledged));
        assert!(matches!(
            apply(&mut c, &zhao, &all, Step::Acknowledge, 3_600),
            Err(Refusal::WrongState(_))
        ));
        // An amendment is a new version; the first is kept as it was.
        assert_eq!(
            apply(
                &mut c,
                &li,
                &all,
                Step::Sign { text: "Amended: hairline fracture.".into() },
                4_000
            ),
            Ok(Event::Opinion)
        );
        assert_eq!(
            c.opinions.iter().map(|o| (o.version, o.text.as_str())).collect::<Vec<_>>(),
            [(1, "No fracture."), (2, "Amended: hairline fracture.")]
        );
        assert_eq!(possible_steps(&c, &zhao, &all, 4_100), ["acknowledge"]);
        assert_eq!(apply(&mut c, &zhao, &all, Step::Acknowledge, 4_100), Ok(Event::Acknowledged));
        assert_eq!(c.ack.as_ref().unwrap().version, 2);
        assert!(matches!(
            apply(&mut c, &zhao, &all, Step::Cancel { reason: None }, 5_000),
            Err(Refusal::WrongState(_))
        ));
    }

    #[test]
    fn declines_leave_the_inbox_and_the_last_one_ends_the_request() {
        let all = specialists();
        let li = actor("dr-li", "city-hospital", &[Role::Specialist]);
        let wu = actor("dr-wu", "county-hospital", &[Role::Specialist]);
        let mut c = consult(Urgency::Routine, None);
        assert!(matches!(
            apply(&mut c, &li, &all, Step::Decline { reason: "".into() }, 2),
            Err(Refusal::Invalid(_))
        ));
        assert_eq!(
            apply(&mut c, &li, &all, Step::Decline { reason: "off duty".into() }, 2),
            Ok(Event::Declined { ended: false })
        );
        assert_eq!((c.state, c.decline_reason.as_deref()), (State::Requested, Some("off duty")));
        assert!(possible_steps(&c, &li, &all, 3).is_empty(), "out of dr-li's inbox");
        assert!(!c.parties(&all).iter().any(|p| p.as_str() == "dr-li"), "and out of its readers");
        assert_eq!(
            apply(&mut c, &wu, &all, Step::Decline { reason: "not my field".into() }, 4),
            Ok(Event::Declined { ended: true })
        );
        assert_eq!((c.state, c.decline_reason.as_deref()), (State::Declined, Some("not my field")));

        // A named specialist's decline ends it at once, and they keep no access to it.
        let mut c = consult(Urgency::Routine, Some("dr-wu"));
        assert!(possible_steps(&c, &li, &all, 1).is_empty(), "named someone else");
        assert_eq!(
            apply(&mut c, &wu, &all, Step::Decline { reason: "busy".into() }, 2),
            Ok(Event::Declined { ended: true })
        );
        assert_eq!(c.parties(&all), ["dr-zhao".parse::<UserId>().unwrap()]);
        // Two changes within one millisecond still leave different stamps, so the store's
        // "unchanged since read" check tells them apart.
        let mut c = consult(Urgency::Routine, None);
        let before = c.updated_at;
        apply(&mut c, &li, &all, Step::Decline { reason: "later".into() }, before).unwrap();
        assert!(c.updated_at > before);
        // The requester can cancel while open; not twice.
        let zhao = actor("dr-zhao", "island-clinic", &[Role::Clinician]);
        let mut c = consult(Urgency::Routine, None);
        assert_eq!(
            apply(&mut c, &zhao, &all, Step::Cancel { reason: Some("resolved".into()) }, 2),
            Ok(Event::Cancelled)
        );
        assert!(matches!(apply(&mut c, &li, &all, Step::Accept, 3), Err(Refusal::WrongState(_))));
    }

    #[test]
    fn an_unanswered_emergency_escalates_then_expires() {
        let all = specialists();
        let t = Timers {
            emergency_escalate_ms: 60_000,
            emergency_expire_ms: 600_000,
            expire_ms: 3_600_000,
        };
        let mut c = consult(Urgency::Emergency, Some("dr-wu"));
        assert_eq!(c.answerers(&all).len(), 1);
        assert_eq!(due(&mut c, &t, 60_999), None);
        assert_eq!(due(&mut c, &t, 61_000), Some(Event::Escalated));
        assert_eq!(c.answerers(&all).len(), 2, "now every radiologist");
        assert_eq!(due(&mut c, &t, 62_000), None, "escalates once");
        assert_eq!(due(&mut c, &t, 601_000), Some(Event::Expired));
        assert_eq!(c.state, State::Expired);
        assert_eq!(due(&mut c, &t, 10_000_000), None);

        // Routine requests only expire, later; scheduled ones count from their time.
        let mut c = consult(Urgency::Routine, None);
        c.scheduled_at = Some(1_000_000);
        assert_eq!(due(&mut c, &t, 3_600_999), None);
        assert_eq!(due(&mut c, &t, 4_600_000), Some(Event::Expired));
        // Accepted requests have no timers.
        let mut c = consult(Urgency::Emergency, None);
        c.state = State::Accepted;
        assert_eq!(due(&mut c, &t, 10_000_000), None);
    }
}
