//! Permits for those who act without a person's session: the operator at the server's console
//! (whoever can run the binary against the database holds every power), devices over DIMSE,
//! and the server's own steps. Each is made here, inside `auth`, and recorded in the audit
//! trail before it is handed out — no record, no permit — except the server's own steps,
//! which record their events in the transaction that carries them out.

use super::policy::{self, Action, Permit, Rule, SiteList, Target};
use crate::audit::{self, NewEvent, Outcome};
use crate::network::SiteId;
use crate::storage::{Db, DbError};
use crate::time::now_ms;

/// The actor of console actions in the audit trail.
pub const OPERATOR: &str = "operator";

/// A permit for the operator, recorded with actor `operator`.
pub async fn operator_permit<A: Action>(db: &Db, target: Target) -> Result<Permit<A>, DbError> {
    audit::record(
        db,
        &NewEvent {
            at: now_ms(),
            actor: Some(OPERATOR.into()),
            actor_site: None,
            site: target.site.as_ref().map(|s| s.to_string()),
            action: A::NAME,
            resource_kind: target.kind,
            resource_id: target.id.clone(),
            outcome: Outcome::Allowed,
            client_addr: Some("console".into()),
            detail: None,
        },
    )
    .await?;
    Ok(policy::operator_permit(target))
}

/// Listing the sites (the network directory, no patient data) at the console: not recorded.
pub fn site_list_permit() -> Permit<SiteList> {
    policy::operator_permit(Target::network())
}

/// A registered device's permit to act for its own site (`OwnSite` actions only, checked at
/// compile time), recorded with the device as actor before it is handed out.
pub async fn device_permit<A: Action>(
    db: &Db,
    ae_title: &str,
    site: &SiteId,
    client: std::net::IpAddr,
    target: Target,
    detail: &str,
) -> Result<Permit<A>, DbError> {
    const { assert!(matches!(A::RULE, Rule::OwnSite), "devices only act for their own site") };
    audit::record(
        db,
        &NewEvent {
            at: now_ms(),
            actor: Some(format!("device:{ae_title}")),
            actor_site: Some(site.to_string()),
            site: Some(site.to_string()),
            action: A::NAME,
            resource_kind: target.kind,
            resource_id: target.id.clone(),
            outcome: Outcome::Allowed,
            client_addr: Some(client.to_string()),
            detail: Some(detail.to_string()),
        },
    )
    .await?;
    Ok(policy::device_permit(target))
}

/// A permit for a step the server takes itself on behalf of a decision already made and
/// recorded (a consult's studies shared when it is accepted: the requester attached them under
/// their own permit). The caller records the step's event in the same transaction.
pub fn carried_out<A: Action>(target: Target) -> Permit<A> {
    policy::operator_permit(target)
}
