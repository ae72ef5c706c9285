//! The consult shell: HTTP handlers (`/api/consults…`, `/api/specialists`), and the
//! background work that keeps consults moving — recording joins decided by the signalling
//! core (the first one starts the call), and the timers that escalate and expire unanswered
//! requests. Every change is pushed to the people concerned over the WebSocket hub.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::archive::is_uid;
use crate::archive::store::study_sites;
use crate::audit::{NewEvent, Outcome};
use crate::auth::RequestCtx;
use crate::auth::policy::{
    self, ConsultCreate, ConsultRead, ConsultSearch, ConsultUpdate, Rule, SiteList, StudyShare,
    Target,
};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::signal::hub::JoinDecision;
use crate::state::AppState;

/// The consult as the person asking sees it, with the steps they may take now.
fn view(c: &Consult, actor: &ActorView, all: &[Specialist], now: i64) -> Value {
    json!({
        "id": c.id,
        "state": c.state,
        "urgency": c.urgency,
        "specialty": c.specialty,
        "specialist": c.specialist,
        "summary": c.summary,
        "scheduled_at": c.scheduled_at,
        "created_at": c.created_at,
        "from_site": c.from_site,
        "requested_by": c.requested_by,
        "accepted_by": c.accepted_by,
        "accepted_at": c.accepted_at,
        "decline_reason": c.decline_reason,
        "cancel_reason": c.cancel_reason,
        "escalated": c.escalated_at.is_some(),
        "call_started_at": c.call_started_at,
        "completed_at": c.completed_at,
        "studies": c.studies,
        "opinions": c.opinions,
        "acknowledged": c.ack,
        "room": c.id,
        "can": possible_steps(c, actor, all, now),
    })
}

fn target(c: &Consult, all: &[Specialist]) -> Target {
    let mut t = Target::site(&c.from_site, "consult", Some(c.id.clone()));
    t.parties = c.parties(all);
    t
}

/// Who did something to a consult, for the audit trail.
enum By<'a> {
    /// A person over HTTP (with their address).
    Request(&'a RequestCtx),
    /// A person through the signalling socket (joining the call).
    User(&'a crate::network::User),
    /// The server's own timers.
    Server,
}

fn event(
    by: By<'_>,
    at: i64,
    c: &Consult,
    action: &'static str,
    outcome: Outcome,
    detail: impl Into<String>,
) -> NewEvent {
    let (user, client) = match by {
        By::Request(ctx) => (Some(&ctx.actor.user), ctx.client.map(|a| a.to_string())),
        By::User(u) => (Some(u), None),
        By::Server => (None, None),
    };
    NewEvent {
        at,
        actor: user.map(|u| u.id.to_string()),
        actor_site: user.map(|u| u.site.to_string()),
        site: Some(c.from_site.to_string()),
        action,
        resource_kind: "consult",
        resource_id: Some(c.id.clone()),
        outcome,
        client_addr: client,
        detail: Some(detail.into()),
    }
}

/// Everyone who should hear about a change from `was` to `c`.
fn concerned(was: &Consult, c: &Consult, all: &[Specialist]) -> Vec<String> {
    let mut users: Vec<String> =
        was.parties(all).into_iter().chain(c.parties(all)).map(|u| u.to_string()).collect();
    users.sort();
    users.dedup();
    users
}

/// After a saved change: the call room follows the state, and the people concerned hear of it.
async fn announce(state: &AppState, was: &Consult, c: &Consult, ev: Event, all: &[Specialist]) {
    let hub = &state.hub;
    if c.state.has_room() && !was.state.has_room() {
        let who = c.participants().iter().map(|u| u.to_string()).collect();
        hub.open_room(&c.id, who).await;
    }
    if was.state.has_room() && !c.state.has_room() {
        hub.close_room(&c.id).await;
    }
    hub.notify(concerned(was, c, all), &c.id, ev.name(), c.state.as_str()).await;
}

/// The shares that give the consultant's site (`to`) the consult's studies, so the policy lets
/// them open the images; stored with the acceptance, in its transaction. Nobody else's site
/// gets them: specialists who only could have answered decide on the case summary.
fn shares_for(c: &Consult, to: &SiteId, by: &str, now: i64) -> Vec<store::Share> {
    if *to == c.from_site {
        return vec![];
    }
    c.studies
        .iter()
        .map(|study| {
            let t = Target::site(&c.from_site, "study", Some(study.clone()));
            // The requester attached the study under their own StudyShare permit (checked and
            // audited when the consult was made); accepting the consult carries it out.
            let permit: Permit<StudyShare> = crate::auth::console::carried_out(t);
            let event = NewEvent {
                at: now,
                actor: Some(by.to_string()),
                actor_site: Some(c.from_site.to_string()),
                site: Some(c.from_site.to_string()),
                action: "study.shared",
                resource_kind: "study",
                resource_id: Some(study.clone()),
                outcome: Outcome::Success,
                detail: Some(format!("with {to} for consult {}", c.id)),
                client_addr: None,
            };
            store::Share::new(&permit, to.clone(), event)
        })
        .collect()
}

use crate::auth::policy::Permit;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConsultBody {
    specialty: Specialty,
    #[serde(default)]
    specialist: Option<UserId>,
    urgency: Urgency,
    summary: String,
    #[serde(default)]
    studies: Vec<String>,
    /// Unix milliseconds; absent or null for now.
    #[serde(default)]
    scheduled_at: Option<i64>,
}

/// Most studies one consult carries.
const MAX_STUDIES: usize = 50;

pub async fn create(
    ctx: RequestCtx,
    JsonBody(body): JsonBody<NewConsultBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let me = &ctx.actor;
    let site = me.user.site.clone();
    let _permit: Permit<ConsultCreate> = ctx.permit(Target::site(&site, "consult", None)).await?;
    if !me.view.has_role(Role::Clinician) {
        let why = "only clinicians request consults";
        ctx.audit(
            "consult.create",
            "consult",
            None,
            Some(site.to_string()),
            Outcome::Denied,
            Some(why.into()),
        )
        .await?;
        return Err(ApiError::Forbidden { detail: format!("consult.create: {why}") });
    }
    let now = ctx.now();
    if body.summary.trim().is_empty() || body.summary.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request(
            "invalid_value",
            "summary: describe the case (at most 20000 characters)",
        ));
    }
    if let Some(at) = body.scheduled_at
        && !(now - 3_600_000..=now + 366 * 86_400_000).contains(&at)
    {
        return Err(ApiError::bad_request(
            "invalid_value",
            "scheduled_at: must be within the coming year (unix milliseconds)",
        ));
    }
    let mut studies = body.studies;
    studies.sort();
    studies.dedup();
    if studies.len() > MAX_STUDIES {
        return Err(ApiError::bad_request(
            "invalid_value",
            format!("studies: at most {MAX_STUDIES}"),
        ));
    }
    let all =
        store::specialists(&ctx.state.db, Some(std::slice::from_ref(&body.specialty))).await?;
    if let Some(named) = &body.specialist
        && !all.iter().any(|s| &s.id == named && s.specialties.contains(&body.specialty))
    {
        return Err(ApiError::bad_request(
            "invalid_value",
            format!("specialist: {named} is not a specialist of {}", body.specialty),
        ));
    }
    // Only studies of one's own site can be attached (and so shared); others do not exist.
    for study in &studies {
        let (origin, shared) = match is_uid(study) {
            true => study_sites(&ctx.state.db, study).await?,
            false => None,
        }
        .ok_or(ApiError::NotFound { what: "study" })?;
        let mut t = Target::site(&origin, "study", Some(study.clone()));
        t.shared_with = shared;
        let _: Permit<StudyShare> = ctx.permit(t).await?;
    }
    let request = Request {
        from_site: site,
        requested_by: me.user.id.clone(),
        specialty: body.specialty,
        specialist: body.specialist,
        urgency: body.urgency,
        summary: body.summary,
        scheduled_at: body.scheduled_at,
        studies,
    };
    let c = Consult::new(request, now);
    if c.answerers(&all).is_empty() {
        return Err(ApiError::bad_request(
            "invalid_value",
            format!("specialty: no specialist of {} in the network", c.specialty),
        ));
    }
    let detail = format!("{} {}", c.urgency, c.specialty);
    let ev = event(By::Request(&ctx), now, &c, "consult.create", Outcome::Success, detail);
    store::create(&ctx.state.db, &_permit, &c, &ev).await?;
    let users = c.parties(&all).iter().map(|u| u.to_string()).collect();
    ctx.state.hub.notify(users, &c.id, Event::Requested.name(), c.state.as_str()).await;
    Ok((StatusCode::CREATED, Json(view(&c, &me.view, &all, now))))
}

pub async fn list(ctx: RequestCtx) -> Result<Json<Value>, ApiError> {
    let permit: Permit<ConsultSearch> = ctx.permit(Target::network()).await?;
    let me = &ctx.actor;
    let mut found =
        store::candidates(&ctx.state.db, &permit, &me.view, &me.user.specialties, 200).await?;
    let all = store::answerers_of(&ctx.state.db, &found.iter().collect::<Vec<_>>()).await?;
    found.retain(|c| {
        policy::decide(&me.view, Rule::SiteOrParty, &target(c, &all)) == policy::Decision::Allow
    });
    // Open emergencies first, then open urgent ones, then the newest.
    found.sort_by_key(|c| {
        let open_rank = match (c.state.is_open(), c.urgency) {
            (true, Urgency::Emergency) => 0,
            (true, Urgency::Urgent) => 1,
            (true, Urgency::Routine) => 2,
            _ => 3,
        };
        (open_rank, -c.created_at)
    });
    let now = ctx.now();
    // The list carries each case's summary: every consult in it is a read, and recorded so.
    let reads: Vec<NewEvent> = found
        .iter()
        .map(|c| event(By::Request(&ctx), now, c, "consult.read", Outcome::Allowed, "listed"))
        .collect();
    crate::audit::record_all(&ctx.state.db, &reads).await?;
    let consults: Vec<Value> = found.iter().map(|c| view(c, &me.view, &all, now)).collect();
    Ok(Json(json!({ "consults": consults })))
}

async fn load_for(ctx: &RequestCtx, id: &str) -> Result<(Consult, Vec<Specialist>), ApiError> {
    let c = match is_consult_id(id) {
        true => store::load(&ctx.state.db, id).await?,
        false => None,
    }
    .ok_or(ApiError::NotFound { what: "consult" })?;
    let all = store::answerers_of(&ctx.state.db, &[&c]).await?;
    Ok((c, all))
}

pub async fn get(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (c, all) = load_for(&ctx, &id).await?;
    let _: Permit<ConsultRead> = ctx.permit(target(&c, &all)).await?;
    Ok(Json(view(&c, &ctx.actor.view, &all, ctx.now())))
}

/// Takes a step for the person asking: the policy lets them see the consult at all, the core
/// decides the step, the store saves it only if nobody changed the consult meanwhile.
async fn step(ctx: RequestCtx, id: String, step: Step) -> Result<Json<Value>, ApiError> {
    let (mut c, all) = load_for(&ctx, &id).await?;
    let permit: Permit<ConsultUpdate> = ctx.permit(target(&c, &all)).await?;
    let was = c.clone();
    let action = step.action();
    let now = ctx.now();
    let refused =
        |r: &Refusal| event(By::Request(&ctx), now, &was, action, Outcome::Failure, r.to_string());
    let ev = match apply(&mut c, &ctx.actor.view, &all, step, now) {
        Ok(ev) => ev,
        Err(r) => {
            crate::audit::record(&ctx.state.db, &refused(&r)).await?;
            return Err(match r {
                Refusal::NotYours(why) => {
                    ApiError::Forbidden { detail: format!("{action}: {why}") }
                }
                Refusal::WrongState(why) => ApiError::conflict("conflict", why),
                Refusal::Invalid(why) => ApiError::bad_request("invalid_value", why),
            });
        }
    };
    let detail = match ev {
        Event::Opinion => format!("signed version {}", c.opinions.last().map_or(0, |o| o.version)),
        Event::Acknowledged => format!("version {}", c.ack.as_ref().map_or(0, |a| a.version)),
        other => other.name().to_string(),
    };
    // The consultant's site receives the studies with the acceptance, all or nothing.
    let shares = match ev {
        Event::Accepted => shares_for(&c, &ctx.actor.user.site, c.requested_by.as_str(), now),
        _ => vec![],
    };
    let e = event(By::Request(&ctx), now, &c, action, Outcome::Success, detail);
    let saved = store::save(&ctx.state.db, &permit, &was, &c, &e, &shares).await?;
    if !saved {
        let r = Refusal::WrongState("someone changed this consult a moment ago; look again");
        crate::audit::record(&ctx.state.db, &refused(&r)).await?;
        return Err(ApiError::conflict("conflict", r.to_string()));
    }
    announce(&ctx.state, &was, &c, ev, &all).await;
    Ok(Json(view(&c, &ctx.actor.view, &all, now)))
}

pub async fn accept(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Accept).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

pub async fn decline(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Decline { reason: body.reason.unwrap_or_default() }).await
}

pub async fn cancel(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Cancel { reason: body.reason }).await
}

pub async fn complete(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Complete).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpinionBody {
    text: String,
}

pub async fn sign(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<OpinionBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Sign { text: body.text }).await
}

pub async fn acknowledge(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Acknowledge).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistQuery {
    #[serde(default)]
    specialty: Option<Specialty>,
}

/// The network's specialists (directory information), with who is online now.
pub async fn specialists(
    ctx: RequestCtx,
    QueryParams(q): QueryParams<SpecialistQuery>,
) -> Result<Json<Value>, ApiError> {
    let _: Permit<SiteList> = ctx.permit(Target::network()).await?;
    let of = q.specialty.clone().map(|s| vec![s]);
    let all = store::specialists(&ctx.state.db, of.as_deref()).await?;
    let hub = &ctx.state.hub;
    let list: Vec<Value> = all
        .iter()
        .filter(|s| q.specialty.as_ref().is_none_or(|want| s.specialties.contains(want)))
        .map(|s| {
            json!({
                "id": s.id, "display_name": s.display_name, "site": s.site,
                "specialties": s.specialties, "online": hub.is_online(s.id.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({ "specialists": list })))
}

// ---- background ----

/// Opens the rooms of accepted consults (after a restart), then records the joins that the
/// signalling core decides and runs the request timers, until shutdown.
pub async fn start_background(
    state: AppState,
    joins: mpsc::Receiver<JoinDecision>,
) -> anyhow::Result<()> {
    for c in store::in_states(&state.db, &[State::Accepted, State::InCall]).await? {
        let who = c.participants().iter().map(|u| u.to_string()).collect();
        state.hub.open_room(&c.id, who).await;
    }
    tokio::spawn(record_joins(state.clone(), joins));
    tokio::spawn(run_timers(state));
    Ok(())
}

async fn record_joins(state: AppState, mut joins: mpsc::Receiver<JoinDecision>) {
    let stop = state.shutdown.clone();
    loop {
        let d = tokio::select! {
            _ = stop.cancelled() => break,
            d = joins.recv() => match d { Some(d) => d, None => break },
        };
        if let Err(e) = record_join(&state, &d).await {
            tracing::error!(error = %e, "could not record a call join");
        }
    }
}

async fn record_join(state: &AppState, d: &JoinDecision) -> anyhow::Result<()> {
    let now = crate::time::now_ms();
    let user = crate::network::store::user_by_id(&state.db, &d.user).await?;
    let consult = match is_consult_id(&d.room) {
        true => store::load(&state.db, &d.room).await?,
        false => None,
    };
    crate::audit::record(
        &state.db,
        &NewEvent {
            at: now,
            actor: Some(d.user.clone()),
            actor_site: user.as_ref().map(|u| u.site.to_string()),
            site: consult.as_ref().map(|c| c.from_site.to_string()),
            action: "consult.join",
            resource_kind: "consult",
            resource_id: Some(d.room.chars().take(64).collect()),
            outcome: if d.allowed { Outcome::Allowed } else { Outcome::Denied },
            client_addr: None,
            detail: Some(if d.allowed { "call room".into() } else { "not a participant".into() }),
        },
    )
    .await?;
    let (Some(mut c), Some(user), true) = (consult, user, d.allowed) else { return Ok(()) };
    let view = crate::auth::actor_view(state, &user).await?;
    // A consult with a call room is accepted: nobody beyond its participants is concerned.
    let all = store::answerers_of(&state.db, &[&c]).await?;
    let was = c.clone();
    if let Ok(Event::InCall) = apply(&mut c, &view, &all, Step::Join, now) {
        let e =
            event(By::User(&user), now, &c, "consult.call", Outcome::Success, "the call started");
        // The join was decided by the core and recorded above; starting the call follows.
        let permit = crate::auth::console::carried_out(target(&c, &all));
        if store::save(&state.db, &permit, &was, &c, &e, &[]).await? {
            announce(state, &was, &c, Event::InCall, &all).await;
        }
    }
    Ok(())
}

/// How often the request timers are looked at.
const TIMER_EVERY: Duration = Duration::from_secs(2);

async fn run_timers(state: AppState) {
    let stop = state.shutdown.clone();
    let mut tick = tokio::time::interval(TIMER_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = timers_once(&state, crate::time::now_ms()).await {
                    tracing::warn!(error = %e, "consult timers failed; trying again");
                }
            }
        }
    }
}

/// Escalates and expires what is due at `now`.
pub async fn timers_once(state: &AppState, now: i64) -> anyhow::Result<usize> {
    let timers = Timers::from(&state.settings.consult);
    let open = store::in_states(&state.db, &[State::Requested]).await?;
    if open.is_empty() {
        return Ok(0);
    }
    let all = store::answerers_of(&state.db, &open.iter().collect::<Vec<_>>()).await?;
    let mut changed = 0;
    for mut c in open {
        let was = c.clone();
        let Some(ev) = due(&mut c, &timers, now) else { continue };
        let action = if ev == Event::Escalated { "consult.escalate" } else { "consult.expire" };
        let e = event(By::Server, now, &c, action, Outcome::Success, ev.name());
        // The server's own step, recorded as such with the change it makes.
        let permit = crate::auth::console::carried_out(target(&c, &all));
        match store::save(&state.db, &permit, &was, &c, &e, &[]).await {
            Ok(true) => {}
            Ok(false) => continue, // answered meanwhile
            Err(err) => {
                tracing::warn!(error = %err, consult = %c.id, "could not save a consult timer");
                continue;
            }
        }
        announce(state, &was, &c, ev, &all).await;
        changed += 1;
    }
    Ok(changed)
}
