//! Reading centres: studies and ECGs routed from clinics to a centre, one reading request per
//! study or ECG, claimed by one reader at a time, reported, signed, and sent back.
//!
//! The core here is pure: [`apply`] decides whether a person may take a step on a request and
//! what the request becomes; [`due`] says what time alone changes (a study quiet long enough
//! is ready for reading; a claim left idle is released). The store saves a step only if the
//! request is as it was read, in one transaction with its audit event.

pub mod critical;
pub mod fhir;
pub mod http;
pub mod report;
pub mod route;
pub mod stats;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::network::word_enum;
use serde_json::Value;

use crate::auth::policy::ActorView;
use crate::network::{Role, SiteId, UserId};

word_enum!(
    /// What is read.
    Kind, "reading kind" { Imaging = "imaging", Ecg = "ecg" }
);
word_enum!(
    /// How soon: the order of the worklist (STAT first).
    Priority, "priority" { Stat = "stat", Urgent = "urgent", Routine = "routine" }
);
word_enum!(
    /// Where a request is in its life.
    State, "reading state" {
        Collecting = "collecting",
        Ready = "ready",
        Claimed = "claimed",
        Review = "review",
        Signed = "signed",
        Cancelled = "cancelled",
    }
);

impl Kind {
    /// Who reads this kind: imaging by specialists (radiologists), ECGs by ECG readers.
    pub fn reader_role(self) -> Role {
        match self {
            Kind::Imaging => Role::Specialist,
            Kind::Ecg => Role::Reader,
        }
    }
}

impl State {
    pub fn is_open(self) -> bool {
        matches!(self, State::Collecting | State::Ready | State::Claimed | State::Review)
    }
}

/// A reading request as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: String,
    pub kind: Kind,
    pub centre_site: SiteId,
    pub sending_site: SiteId,
    pub study_uid: String,
    pub ecg_id: Option<String>,
    pub modality: Option<String>,
    pub priority: Priority,
    pub state: State,
    pub question: Option<String>,
    pub callback_phone: Option<String>,
    pub requested_by: String,
    pub instances: i64,
    pub received_at: i64,
    pub last_instance_at: i64,
    pub ready_at: Option<i64>,
    pub claimed_by: Option<UserId>,
    pub claimed_at: Option<i64>,
    pub active_at: Option<i64>,
    pub signed_at: Option<i64>,
    /// Where reading is two-step: the junior reader who drafted the report a senior signs.
    pub drafted_by: Option<UserId>,
    /// The clinic has read the latest signed version.
    pub acknowledged_by: Option<UserId>,
    pub acknowledged_at: Option<i64>,
    pub draft: Option<Value>,
    /// Moves on every change: a step is saved only against the stamp it was decided on.
    pub stamp: i64,
}

/// A report's content: findings, impression and coded conclusions (ECG).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    #[serde(default)]
    pub findings: String,
    pub impression: String,
    #[serde(default)]
    pub conclusions: Vec<String>,
}

impl ReportBody {
    pub fn check(&self) -> Result<(), StepError> {
        if self.impression.trim().is_empty() {
            return Err(StepError::Invalid("a report needs an impression".into()));
        }
        if self.findings.chars().count() > 20_000 || self.impression.chars().count() > 5_000 {
            return Err(StepError::Invalid("the report is too long".into()));
        }
        if self.conclusions.len() > 20 || self.conclusions.iter().any(|c| c.len() > 64) {
            return Err(StepError::Invalid("too many or too long conclusion codes".into()));
        }
        Ok(())
    }
}

/// One step a person takes on a request.
#[derive(Debug, Clone)]
pub enum Step {
    /// The clinic: the study is complete, read it now (collecting → ready).
    Send,
    /// The clinic: withdraw a request nobody has claimed.
    Cancel,
    /// A reader of the centre takes it (a claim idle past its time may be taken over).
    Claim,
    /// The claimant gives it back.
    Release,
    /// An admin of the centre gives it to another reader of the centre.
    Reassign { to: UserId, to_roles: Vec<Role>, to_site: SiteId },
    /// The claimant keeps a draft.
    Draft(ReportBody),
    /// The claimant signs the report (version 1). Where reading is two-step, only a senior.
    Sign(ReportBody),
    /// Where reading is two-step: a junior claimant hands their draft to the seniors.
    Submit(ReportBody),
    /// A reader of the centre signs a new version of a signed report, with a reason.
    Amend { body: ReportBody, reason: String },
    /// A clinician of the sending site has read the signed report (its latest version).
    Acknowledge,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Send => "send",
            Step::Cancel => "cancel",
            Step::Claim => "claim",
            Step::Release => "release",
            Step::Reassign { .. } => "reassign",
            Step::Draft(_) => "draft",
            Step::Sign(_) => "sign",
            Step::Submit(_) => "submit",
            Step::Amend { .. } => "amend",
            Step::Acknowledge => "acknowledge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// Not this person's step (403).
    #[error("{0}")]
    NotYours(&'static str),
    /// Not now: the request is not in a state that allows it (409).
    #[error("{0}")]
    NotNow(String),
    #[error("{0}")]
    Invalid(String),
}

/// Timing rules (from settings).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A study with no new instance for this long is ready for reading.
    pub quiet_ms: i64,
    /// A claim with no activity for this long is released.
    pub claim_idle_ms: i64,
    /// Juniors draft and submit; seniors sign (`reading.two_step`).
    pub two_step: bool,
}

/// What a step makes of a request (the new request and, for a signature, the report).
#[derive(Debug, Clone)]
pub struct Change {
    pub after: Request,
    pub report: Option<(ReportBody, Option<String>)>,
}

pub(crate) fn reader_of(actor: &ActorView, req: &Request) -> bool {
    actor.site == req.centre_site && actor.has_role(req.kind.reader_role()) && !actor.device
}

fn of_sender(actor: &ActorView, req: &Request) -> bool {
    actor.site == req.sending_site && actor.has_role(Role::Clinician)
}

/// Decides a step. Pure: the caller saves `after` only if the request is unchanged.
pub fn apply(
    req: &Request,
    actor: &ActorView,
    step: &Step,
    now: i64,
    timing: Timing,
) -> Result<Change, StepError> {
    let mut after = req.clone();
    after.stamp = req.stamp + 1;
    let mine = req.claimed_by.as_ref() == Some(&actor.user);
    let mut report = None;
    if req.state == State::Cancelled {
        return Err(StepError::NotNow("the request was cancelled".into()));
    }
    match step {
        Step::Send => {
            if !of_sender(actor, req) {
                return Err(StepError::NotYours("only the sending clinic sends for reading"));
            }
            if req.state != State::Collecting {
                return Err(StepError::NotNow(format!("the request is {}", req.state)));
            }
            after.state = State::Ready;
            after.ready_at = Some(now);
        }
        Step::Cancel => {
            if !of_sender(actor, req) {
                return Err(StepError::NotYours("only the sending clinic cancels its request"));
            }
            if !matches!(req.state, State::Collecting | State::Ready) {
                return Err(StepError::NotNow(format!(
                    "a request that is {} cannot be cancelled",
                    req.state
                )));
            }
            after.state = State::Cancelled;
        }
        Step::Claim => {
            if !reader_of(actor, req) {
                return Err(StepError::NotYours(match req.kind {
                    Kind::Imaging => {
                        "only the centre's imaging readers (specialists) claim imaging"
                    }
                    Kind::Ecg => "only the centre's ECG readers claim ECGs",
                }));
            }
            let idle = req.active_at.is_some_and(|a| now - a >= timing.claim_idle_ms);
            match req.state {
                State::Ready => {}
                State::Review if actor.senior => {}
                State::Review => {
                    return Err(StepError::NotYours("a senior reader signs a submitted draft"));
                }
                State::Claimed if mine => {}
                State::Claimed if idle => {}
                State::Claimed => {
                    return Err(StepError::NotNow("another reader has claimed it".into()));
                }
                s => return Err(StepError::NotNow(format!("the request is {s}"))),
            }
            after.state = State::Claimed;
            after.claimed_by = Some(actor.user.clone());
            after.claimed_at = Some(now);
            after.active_at = Some(now);
        }
        Step::Release => {
            if !(mine && req.state == State::Claimed) {
                return Err(StepError::NotYours("only its reader releases a claim"));
            }
            release(&mut after);
        }
        Step::Submit(body) => {
            if !timing.two_step || actor.senior {
                return Err(StepError::NotNow("sign it: nobody else signs here".into()));
            }
            if !(mine && req.state == State::Claimed) {
                return Err(StepError::NotYours("claim the request before submitting its draft"));
            }
            body.check()?;
            after.state = State::Review;
            after.draft = Some(serde_json::to_value(body).expect("serialisable"));
            after.drafted_by = Some(actor.user.clone());
            after.claimed_by = None;
            after.claimed_at = None;
            after.active_at = None;
        }
        Step::Reassign { to, to_roles, to_site } => {
            let senior_reader = actor.senior && reader_of(actor, req);
            if !((actor.has_role(Role::Admin) || senior_reader) && actor.site == req.centre_site) {
                return Err(StepError::NotYours(
                    "only the centre's admins and senior readers reassign",
                ));
            }
            if *to_site != req.centre_site || !to_roles.contains(&req.kind.reader_role()) {
                return Err(StepError::Invalid(format!("{to} does not read {} here", req.kind)));
            }
            if !matches!(req.state, State::Ready | State::Claimed) {
                return Err(StepError::NotNow(format!("the request is {}", req.state)));
            }
            after.state = State::Claimed;
            after.claimed_by = Some(to.clone());
            after.claimed_at = Some(now);
            after.active_at = Some(now);
        }
        Step::Draft(body) => {
            if !(mine && req.state == State::Claimed) {
                return Err(StepError::NotYours("claim the request before writing its report"));
            }
            after.draft = Some(serde_json::to_value(body).expect("serialisable"));
            after.active_at = Some(now);
        }
        Step::Sign(body) => {
            if !(mine && req.state == State::Claimed) {
                return Err(StepError::NotYours("only the reader who claimed it signs"));
            }
            if timing.two_step && !actor.senior {
                return Err(StepError::NotYours("a senior reader signs here; submit the draft"));
            }
            body.check()?;
            after.state = State::Signed;
            after.signed_at = Some(now);
            after.draft = None;
            report = Some((body.clone(), None));
        }
        Step::Amend { body, reason } => {
            if !reader_of(actor, req) {
                return Err(StepError::NotYours("only the centre's readers amend its reports"));
            }
            if req.state != State::Signed {
                return Err(StepError::NotNow("only a signed report is amended".into()));
            }
            if reason.trim().is_empty() {
                return Err(StepError::Invalid("an amendment needs a reason".into()));
            }
            body.check()?;
            report = Some((body.clone(), Some(reason.trim().to_string())));
            // The clinic acknowledges the new version afresh.
            after.acknowledged_by = None;
            after.acknowledged_at = None;
        }
        Step::Acknowledge => {
            if !of_sender(actor, req) {
                return Err(StepError::NotYours("the sending clinic acknowledges its reports"));
            }
            if req.state != State::Signed {
                return Err(StepError::NotNow("there is no signed report yet".into()));
            }
            if req.acknowledged_at.is_some() {
                return Err(StepError::NotNow("already acknowledged".into()));
            }
            after.acknowledged_by = Some(actor.user.clone());
            after.acknowledged_at = Some(now);
        }
    }
    Ok(Change { after, report })
}

fn release(r: &mut Request) {
    // A senior's claim of a submitted draft goes back to the seniors' queue.
    r.state = if r.drafted_by.is_some() { State::Review } else { State::Ready };
    r.claimed_by = None;
    r.claimed_at = None;
    r.active_at = None;
}

/// What time alone does to a request: a collecting study quiet for long enough becomes ready;
/// a claim idle for too long is released. None when nothing is due.
pub fn due(req: &Request, now: i64, timing: Timing) -> Option<(Request, &'static str)> {
    let mut after = req.clone();
    after.stamp = req.stamp + 1;
    match req.state {
        State::Collecting if now - req.last_instance_at >= timing.quiet_ms => {
            after.state = State::Ready;
            after.ready_at = Some(now);
            Some((after, "ready"))
        }
        State::Claimed if req.active_at.is_some_and(|a| now - a >= timing.claim_idle_ms) => {
            release(&mut after);
            Some((after, "released"))
        }
        _ => None,
    }
}

/// The SHA-256 of a signed report's content, signer and time: what the signature covers.
pub fn content_hash(request: &str, version: i64, body: &ReportBody, by: &str, at: i64) -> String {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::json!({
        "request": request,
        "version": version,
        "findings": body.findings,
        "impression": body.impression,
        "conclusions": body.conclusions,
        "signed_by": by,
        "signed_at": at,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const T: Timing = Timing { quiet_ms: 60_000, claim_idle_ms: 900_000, two_step: false };

    pub(crate) fn actor(user: &str, site: &str, roles: &[Role]) -> ActorView {
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

    pub(crate) fn request(kind: Kind) -> Request {
        Request {
            id: "rd_1".into(),
            kind,
            centre_site: "city-hospital".parse().unwrap(),
            sending_site: "island-clinic".parse().unwrap(),
            study_uid: "1.2.3".into(),
            ecg_id: None,
            modality: Some("CT".into()),
            priority: Priority::Routine,
            state: State::Collecting,
            question: None,
            callback_phone: None,
            requested_by: "routing".into(),
            instances: 3,
            received_at: 0,
            last_instance_at: 1_000,
            ready_at: None,
            claimed_by: None,
            claimed_at: None,
            active_at: None,
            signed_at: None,
            drafted_by: None,
            acknowledged_by: None,
            acknowledged_at: None,
            draft: None,
            stamp: 0,
        }
    }

    fn body() -> ReportBody {
        ReportBody {
            findings: "No acute findings.".into(),
            impression: "Normal CT.".into(),
            conclusions: vec![],
        }
    }

    #[test]
    fn a_study_is_read_and_signed() {
        let zhao = actor("dr-zhao", "island-clinic", &[Role::Clinician]);
        let li = actor("dr-li", "city-hospital", &[Role::Specialist]);
        let chen = actor("dr-chen", "city-hospital", &[Role::Reader]);
        let r = request(Kind::Imaging);
        // Not ready yet: nobody claims a study still arriving; time makes it ready.
        assert!(matches!(apply(&r, &li, &Step::Claim, 2_000, T), Err(StepError::NotNow(_))));
        assert!(due(&r, 30_000, T).is_none());
        let (r, what) = due(&r, 61_000, T).unwrap();
        assert_eq!((r.state, what), (State::Ready, "ready"));
        // An ECG reader cannot claim imaging; the radiologist can.
        assert!(matches!(apply(&r, &chen, &Step::Claim, 62_000, T), Err(StepError::NotYours(_))));
        let r = apply(&r, &li, &Step::Claim, 62_000, T).unwrap().after;
        assert_eq!(r.claimed_by.as_ref().map(|u| u.as_str()), Some("dr-li"));
        // The clinic cannot cancel what is being read.
        assert!(matches!(apply(&r, &zhao, &Step::Cancel, 63_000, T), Err(StepError::NotNow(_))));
        let r = apply(&r, &li, &Step::Draft(body()), 64_000, T).unwrap().after;
        assert!(r.draft.is_some());
        let empty = ReportBody { impression: " ".into(), ..body() };
        assert!(matches!(
            apply(&r, &li, &Step::Sign(empty), 65_000, T),
            Err(StepError::Invalid(_))
        ));
        let c = apply(&r, &li, &Step::Sign(body()), 65_000, T).unwrap();
        assert_eq!(c.after.state, State::Signed);
        assert_eq!(c.report.as_ref().unwrap().0, body());
        // An amendment needs a reason.
        let r = c.after;
        // The clinic acknowledges once; the radiologist cannot do it for them.
        assert!(matches!(
            apply(&r, &li, &Step::Acknowledge, 65_500, T),
            Err(StepError::NotYours(_))
        ));
        let r = apply(&r, &zhao, &Step::Acknowledge, 65_500, T).unwrap().after;
        assert_eq!(r.acknowledged_at, Some(65_500));
        assert!(matches!(
            apply(&r, &zhao, &Step::Acknowledge, 65_600, T),
            Err(StepError::NotNow(_))
        ));
        let amend = |reason: &str| Step::Amend { body: body(), reason: reason.into() };
        assert!(matches!(apply(&r, &li, &amend(""), 66_000, T), Err(StepError::Invalid(_))));
        let amended = apply(&r, &li, &amend("laterality corrected"), 66_000, T).unwrap().after;
        assert_eq!(amended.acknowledged_at, None, "an amendment is acknowledged afresh");
    }

    #[test]
    fn claims_are_one_at_a_time_and_idle_ones_end() {
        let li = actor("dr-li", "city-hospital", &[Role::Specialist]);
        let wang = actor("dr-wang", "city-hospital", &[Role::Specialist]);
        let other = actor("dr-x", "county-hospital", &[Role::Specialist]);
        let mut r = request(Kind::Imaging);
        r.state = State::Ready;
        assert!(matches!(apply(&r, &other, &Step::Claim, 0, T), Err(StepError::NotYours(_))));
        let r = apply(&r, &li, &Step::Claim, 100_000, T).unwrap().after;
        assert!(matches!(apply(&r, &wang, &Step::Claim, 200_000, T), Err(StepError::NotNow(_))));
        assert!(matches!(
            apply(&r, &wang, &Step::Release, 200_000, T),
            Err(StepError::NotYours(_))
        ));
        // Idle past its time: taken over by another reader, or released by the clock.
        assert!(apply(&r, &wang, &Step::Claim, 100_000 + 900_000, T).is_ok());
        let (released, what) = due(&r, 100_000 + 900_000, T).unwrap();
        assert_eq!((released.state, what), (State::Ready, "released"));
        assert!(released.claimed_by.is_none());
    }

    #[test]
    fn the_clinic_sends_and_cancels_its_own() {
        let zhao = actor("dr-zhao", "island-clinic", &[Role::Clinician]);
        let ma = actor("dr-ma", "mountain-clinic", &[Role::Clinician]);
        let r = request(Kind::Ecg);
        assert!(matches!(apply(&r, &ma, &Step::Send, 0, T), Err(StepError::NotYours(_))));
        let sent = apply(&r, &zhao, &Step::Send, 5, T).unwrap().after;
        assert_eq!((sent.state, sent.ready_at), (State::Ready, Some(5)));
        let cancelled = apply(&sent, &zhao, &Step::Cancel, 6, T).unwrap().after;
        assert_eq!(cancelled.state, State::Cancelled);
        assert!(apply(&cancelled, &zhao, &Step::Send, 7, T).is_err());
    }

    #[test]
    fn admins_of_the_centre_reassign_to_its_readers() {
        let admin = actor("admin", "city-hospital", &[Role::Admin]);
        let li = actor("dr-li", "city-hospital", &[Role::Specialist]);
        let mut r = request(Kind::Imaging);
        r.state = State::Ready;
        let r = apply(&r, &li, &Step::Claim, 1, T).unwrap().after;
        let to = |u: &str, roles: &[Role]| Step::Reassign {
            to: u.parse().unwrap(),
            to_roles: roles.to_vec(),
            to_site: "city-hospital".parse().unwrap(),
        };
        assert!(matches!(
            apply(&r, &li, &to("dr-wang", &[Role::Specialist]), 2, T),
            Err(StepError::NotYours(_))
        ));
        assert!(matches!(
            apply(&r, &admin, &to("dr-chen", &[Role::Reader]), 2, T),
            Err(StepError::Invalid(_))
        ));
        let r = apply(&r, &admin, &to("dr-wang", &[Role::Specialist]), 2, T).unwrap().after;
        assert_eq!(r.claimed_by.as_ref().unwrap().as_str(), "dr-wang");
        // A senior reader of the centre reassigns too; a senior of another kind does not.
        let mut senior = actor("dr-zhou", "city-hospital", &[Role::Specialist]);
        senior.senior = true;
        let r = apply(&r, &senior, &to("dr-li", &[Role::Specialist]), 3, T).unwrap().after;
        assert_eq!(r.claimed_by.unwrap().as_str(), "dr-li");
        let mut ecg_senior = actor("dr-chen", "city-hospital", &[Role::Reader]);
        ecg_senior.senior = true;
        let mut imaging = request(Kind::Imaging);
        imaging.state = State::Ready;
        assert!(matches!(
            apply(&imaging, &ecg_senior, &to("dr-li", &[Role::Specialist]), 4, T),
            Err(StepError::NotYours(_))
        ));
    }

    #[test]
    fn the_signature_covers_content_signer_and_time() {
        let h = content_hash("rd_1", 1, &body(), "dr-li", 5);
        assert_eq!(h.len(), 64);
        assert_ne!(h, content_hash("rd_1", 1, &body(), "dr-li", 6));
        assert_ne!(h, content_hash("rd_1", 1, &body(), "dr-wang", 5));
        let other = ReportBody { impression: "Abnormal.".into(), ..body() };
        assert_ne!(h, content_hash("rd_1", 1, &other, "dr-li", 5));
    }

    #[test]
    fn where_reading_is_two_step_juniors_submit_and_seniors_sign() {
        let two = Timing { two_step: true, ..T };
        let junior = actor("dr-li", "city-hospital", &[Role::Specialist]);
        let mut senior = actor("dr-wang", "city-hospital", &[Role::Specialist]);
        senior.senior = true;
        let mut r = request(Kind::Imaging);
        r.state = State::Ready;
        let r = apply(&r, &junior, &Step::Claim, 1, two).unwrap().after;
        assert!(matches!(
            apply(&r, &junior, &Step::Sign(body()), 2, two),
            Err(StepError::NotYours(_))
        ));
        // Without two-step, the same junior signs; and nobody submits.
        assert!(apply(&r, &junior, &Step::Sign(body()), 2, T).is_ok());
        assert!(matches!(
            apply(&r, &junior, &Step::Submit(body()), 2, T),
            Err(StepError::NotNow(_))
        ));
        let r = apply(&r, &junior, &Step::Submit(body()), 3, two).unwrap().after;
        assert_eq!(
            (r.state, r.drafted_by.as_ref().map(|u| u.as_str())),
            (State::Review, Some("dr-li"))
        );
        assert!(r.claimed_by.is_none() && r.draft.is_some());
        // Another junior cannot take it; a senior can, and a released review goes back.
        let other = actor("dr-x", "city-hospital", &[Role::Specialist]);
        assert!(matches!(apply(&r, &other, &Step::Claim, 4, two), Err(StepError::NotYours(_))));
        let taken = apply(&r, &senior, &Step::Claim, 4, two).unwrap().after;
        let back = apply(&taken, &senior, &Step::Release, 5, two).unwrap().after;
        assert_eq!(back.state, State::Review);
        let signed = apply(&taken, &senior, &Step::Sign(body()), 6, two).unwrap();
        assert_eq!(signed.after.state, State::Signed);
        assert_eq!(signed.after.drafted_by.as_ref().map(|u| u.as_str()), Some("dr-li"));
    }
}
