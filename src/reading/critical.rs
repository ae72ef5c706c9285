//! Critical results (危急值): a reader marks a finding the sending clinic must hear about at
//! once; a clinician of the clinic acknowledges it with a read-back line; unacknowledged after
//! `reading.critical_ack_minutes`, it escalates (the clinic's admins are alerted, the reader is
//! told to phone the number on the request) and every call is logged. Pure rules here; SQL in
//! `store.rs`.

use serde::Serialize;

use super::{Kind, Request, State, StepError, reader_of};
use crate::auth::policy::ActorView;
use crate::network::Role;

/// A call the reader made about a critical result.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub by: String,
    pub at: i64,
    pub outcome: String,
    pub note: Option<String>,
}

/// A critical result as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Critical {
    pub id: String,
    pub reading: String,
    pub sending_site: String,
    pub finding: String,
    pub note: Option<String>,
    pub raised_by: String,
    pub raised_at: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub readback: Option<String>,
    pub escalated_at: Option<i64>,
    pub calls: Vec<Call>,
}

impl Critical {
    pub fn is_open(&self) -> bool {
        self.acknowledged_at.is_none()
    }
}

/// The outcomes a logged call may have.
pub const OUTCOMES: &[&str] = &["reached", "no_answer", "left_message"];

fn text(
    what: &str,
    s: Option<&str>,
    max: usize,
    required: bool,
) -> Result<Option<String>, StepError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None if required => Err(StepError::Invalid(format!("{what} is required"))),
        None => Ok(None),
        Some(t) if t.chars().count() > max || t.chars().any(char::is_control) => {
            Err(StepError::Invalid(format!("{what}: at most {max} characters")))
        }
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// May this reader mark `finding` on the request? Returns the checked note.
pub fn may_raise(
    req: &Request,
    actor: &ActorView,
    finding: &str,
    note: Option<&str>,
    findings: &[String],
) -> Result<Option<String>, StepError> {
    if !reader_of(actor, req) {
        return Err(StepError::NotYours(
            "only the centre's readers of this kind mark critical results",
        ));
    }
    if !matches!(req.state, State::Claimed | State::Signed) {
        return Err(StepError::NotNow(format!("the request is {}", req.state)));
    }
    if !findings.iter().any(|f| f == finding) {
        return Err(StepError::Invalid(format!(
            "`{finding}` is not a critical finding for {} (one of: {})",
            req.kind,
            findings.join(", ")
        )));
    }
    text("note", note, 1000, false)
}

/// May this person acknowledge it? Returns the checked read-back line.
pub fn may_acknowledge(
    c: &Critical,
    req: &Request,
    actor: &ActorView,
    readback: Option<&str>,
) -> Result<String, StepError> {
    if !(actor.site == req.sending_site && actor.has_role(Role::Clinician)) {
        return Err(StepError::NotYours("a clinician of the sending clinic acknowledges"));
    }
    if !c.is_open() {
        return Err(StepError::NotNow("already acknowledged".into()));
    }
    Ok(text("readback", readback, 500, true)?.expect("required"))
}

/// May this reader log a call? Returns the checked note.
pub fn may_log_call(
    req: &Request,
    actor: &ActorView,
    outcome: &str,
    note: Option<&str>,
) -> Result<Option<String>, StepError> {
    if !reader_of(actor, req) {
        return Err(StepError::NotYours("only the centre's readers log calls"));
    }
    if !OUTCOMES.contains(&outcome) {
        return Err(StepError::Invalid(format!("outcome: one of {}", OUTCOMES.join(", "))));
    }
    text("note", note, 1000, false)
}

/// Is it time to escalate?
pub fn due(c: &Critical, now: i64, ack_ms: i64) -> bool {
    c.is_open() && c.escalated_at.is_none() && now - c.raised_at >= ack_ms
}

/// The findings a kind may be marked with, from the settings.
pub fn findings_for(s: &crate::config::ReadingSettings, kind: Kind) -> &[String] {
    match kind {
        Kind::Ecg => &s.critical_ecg,
        Kind::Imaging => &s.critical_imaging,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::tests::{actor, request};

    fn raised() -> Critical {
        Critical {
            id: "cr_1".into(),
            reading: "rd_1".into(),
            sending_site: "island-clinic".into(),
            finding: "vt".into(),
            note: None,
            raised_by: "dr-chen".into(),
            raised_at: 1_000,
            acknowledged_by: None,
            acknowledged_at: None,
            readback: None,
            escalated_at: None,
            calls: vec![],
        }
    }

    #[test]
    fn raise_acknowledge_escalate() {
        let mut r = request(Kind::Ecg);
        r.state = State::Claimed;
        let chen = actor("dr-chen", "city-hospital", &[Role::Reader]);
        let li = actor("dr-li", "city-hospital", &[Role::Specialist]);
        let zhao = actor("dr-zhao", "island-clinic", &[Role::Clinician]);
        let list = vec!["vt".to_string(), "stemi".to_string()];
        assert!(may_raise(&r, &chen, "vt", Some("rate 180"), &list).is_ok());
        assert!(matches!(may_raise(&r, &li, "vt", None, &list), Err(StepError::NotYours(_))));
        assert!(matches!(may_raise(&r, &chen, "flu", None, &list), Err(StepError::Invalid(_))));
        let c = raised();
        assert!(matches!(may_acknowledge(&c, &r, &chen, Some("VT")), Err(StepError::NotYours(_))));
        assert!(matches!(may_acknowledge(&c, &r, &zhao, Some("  ")), Err(StepError::Invalid(_))));
        assert_eq!(may_acknowledge(&c, &r, &zhao, Some(" 室速，已知晓 ")).unwrap(), "室速，已知晓");
        // Escalation: after the time, once, and never once acknowledged.
        assert!(!due(&c, 500_000, 600_000));
        assert!(due(&c, 601_000, 600_000));
        let escalated = Critical { escalated_at: Some(601_000), ..c.clone() };
        assert!(!due(&escalated, 700_000, 600_000));
        let acked = Critical { acknowledged_at: Some(2_000), ..c };
        assert!(!due(&acked, 700_000, 600_000));
        assert!(matches!(may_acknowledge(&acked, &r, &zhao, Some("x")), Err(StepError::NotNow(_))));
        assert!(may_log_call(&r, &chen, "reached", None).is_ok());
        assert!(matches!(may_log_call(&r, &chen, "emailed", None), Err(StepError::Invalid(_))));
    }
}
