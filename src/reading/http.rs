//! `/api/readings` (worklists, requests by hand, the steps of a reading) and
//! `/api/sites/{site}/routing-rules`. Every step is decided by the pure core, saved only if
//! nobody changed the request meanwhile, audited, and pushed to the people concerned.

use axum::Json;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{self, Filter, Scope};
use super::*;
use crate::audit::{NewEvent, Outcome};
use crate::auth::RequestCtx;
use crate::auth::policy::{
    Permit, ReadingCreate, ReadingRead, ReadingSearch, ReadingUpdate, RoutingList, RoutingManage,
    Target,
};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::state::AppState;

impl From<&crate::config::ReadingSettings> for Timing {
    fn from(s: &crate::config::ReadingSettings) -> Self {
        Timing {
            quiet_ms: s.quiet_secs as i64 * 1000,
            claim_idle_ms: s.claim_idle_minutes as i64 * 60_000,
            two_step: s.two_step,
        }
    }
}

/// The service level of a priority, in milliseconds.
fn sla_ms(s: &crate::config::ReadingSettings, p: Priority) -> i64 {
    60_000
        * match p {
            Priority::Stat => s.sla_stat_minutes,
            Priority::Urgent => s.sla_urgent_minutes,
            Priority::Routine => s.sla_routine_minutes,
        } as i64
}

/// The policy's view of a request: it belongs to the sending clinic and is shared with the
/// centre it was sent to.
fn target(r: &Request) -> Target {
    let mut t = Target::site(&r.sending_site, "reading", Some(r.id.clone()));
    t.shared_with = vec![r.centre_site.clone()];
    t
}

/// Study facts for lists: patient and description, by study.
type Facts = std::collections::HashMap<String, Value>;

fn view(r: &Request, facts: &Facts, st: &AppState, now: i64) -> Value {
    let s = &st.settings.reading;
    let start = r.ready_at.unwrap_or(r.received_at);
    let due = start + sla_ms(s, r.priority);
    let breached = match r.state {
        State::Signed => r.signed_at.is_some_and(|t| t > due),
        State::Cancelled => false,
        _ => now > due,
    };
    json!({
        "id": r.id,
        "kind": r.kind,
        "priority": r.priority,
        "state": r.state,
        "study_uid": r.study_uid,
        "ecg_id": r.ecg_id,
        "modality": r.modality,
        "sending_site": r.sending_site,
        "centre_site": r.centre_site,
        "question": r.question,
        "callback_phone": r.callback_phone,
        "requested_by": r.requested_by,
        "instances": r.instances,
        "received_at": crate::time::rfc3339(r.received_at),
        "ready_at": r.ready_at.map(crate::time::rfc3339),
        "claimed_by": r.claimed_by,
        "claimed_at": r.claimed_at.map(crate::time::rfc3339),
        "signed_at": r.signed_at.map(crate::time::rfc3339),
        "drafted_by": r.drafted_by,
        "acknowledged_by": r.acknowledged_by,
        "acknowledged_at": r.acknowledged_at.map(crate::time::rfc3339),
        "due_at": crate::time::rfc3339(due),
        "breached": breached,
        "waiting_ms": if r.state.is_open() { now - start } else { 0 },
        "study": facts.get(&r.study_uid).cloned().unwrap_or(Value::Null),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `centre` (the caller's centre's worklist) or `sent` (their clinic's requests); by
    /// default readers see their centre's and everyone else their clinic's.
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    modality: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    /// Comma-separated states; by default the open ones.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    sending_site: Option<String>,
    /// Received on or after / before (RFC 3339 or a date).
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_query", format!("{what}: {e}"))
}

fn parse_time(what: &str, s: &str) -> Result<i64, ApiError> {
    crate::time::parse_rfc3339(s).ok_or_else(|| bad(what, "a date or an RFC 3339 time"))
}

/// `GET /api/readings`: a centre's worklist (STAT first, then the longest waiting) or a
/// clinic's own requests. Each listed request is recorded as read.
pub async fn list(
    ctx: RequestCtx,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let me = &ctx.actor;
    let permit: Permit<ReadingSearch> = ctx.permit(Target::network()).await?;
    let reader = me.view.has_role(Role::Reader) || me.view.has_role(Role::Specialist);
    let centre = match q.scope.as_deref() {
        None => reader,
        Some("centre") => true,
        Some("sent") => false,
        Some(other) => return Err(bad("scope", format!("`{other}` is not centre or sent"))),
    };
    let states = q
        .state
        .as_deref()
        .map(|s| s.split(',').map(str::parse).collect::<Result<Vec<State>, _>>())
        .transpose()
        .map_err(|e| bad("state", e))?;
    let f = Filter {
        kind: q.kind.as_deref().map(str::parse).transpose().map_err(|e| bad("kind", e))?,
        modality: q.modality.clone(),
        priority: q
            .priority
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| bad("priority", e))?,
        states,
        sending_site: q
            .sending_site
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| bad("sending_site", e))?,
        from_ms: q.from.as_deref().map(|s| parse_time("from", s)).transpose()?,
        to_ms: q.to.as_deref().map(|s| parse_time("to", s)).transpose()?,
        limit: q.limit.unwrap_or(200),
    };
    let site = me.user.site.clone();
    let scope = if centre { Scope::Centre(&site) } else { Scope::Sender(&site) };
    let rows = store::search(&ctx.state.db, &permit, scope, &f).await?;
    let facts = store::study_facts(&ctx.state.db, &permit, &rows).await?;
    let criticals = store::criticals_of_listed(&ctx.state.db, &permit, &rows).await?;
    let now = ctx.now();
    ctx.record_reads(
        "reading.read",
        "reading",
        rows.iter().map(|r| (r.sending_site.to_string(), r.id.clone())),
        "listed",
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = view(r, &facts, &ctx.state, now);
            v["critical"] = json!(criticals.get(&r.id).cloned().unwrap_or_default());
            v
        })
        .collect();
    Ok(Json(json!({ "scope": if centre { "centre" } else { "sent" }, "readings": items })))
}

async fn load(ctx: &RequestCtx, id: &str) -> Result<Request, ApiError> {
    store::find(&ctx.state.db, id).await?.ok_or(ApiError::NotFound { what: "reading request" })
}

/// `GET /api/readings/{id}`: the request, its signed reports, and the steps the caller may
/// take.
pub async fn get(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let r = load(&ctx, &id).await?;
    let permit: Permit<ReadingRead> = ctx.permit(target(&r)).await?;
    let reports = store::reports(&ctx.state.db, &permit).await?;
    let facts = store::study_facts_of(&ctx.state.db, &permit, &r.study_uid).await?;
    let now = ctx.now();
    let mut v = view(&r, &facts, &ctx.state, now);
    v["reports"] = json!(reports);
    v["draft"] = r.draft.clone().unwrap_or(Value::Null);
    v["can"] = json!(possible(&r, &ctx.actor.view, now, Timing::from(&ctx.state.settings.reading)));
    let settings = &ctx.state.settings.reading;
    let findings = super::critical::findings_for(settings, r.kind);
    if super::critical::may_raise(&r, &ctx.actor.view, &findings[0], None, findings).is_ok() {
        v["can"].as_array_mut().expect("a list").push(json!("critical"));
    }
    v["critical"] = json!(store::criticals_of(&ctx.state.db, &permit).await?);
    v["critical_findings"] = json!(findings);
    v["conclusions"] = match r.kind {
        Kind::Ecg => json!(settings.ecg_conclusions),
        Kind::Imaging => json!([]),
    };
    v["template"] = template(&ctx, &r).await?;
    let patient = facts.get(&r.study_uid).and_then(|f| f["patient_id"].as_str()).unwrap_or("");
    v["priors"] = json!(store::priors(&ctx.state.db, &permit, &r, patient).await?);
    Ok(Json(v))
}

/// What a new report starts from: for an ECG, the device's and Ferry's measurements and the
/// device's statements; for imaging, the headings of its modality.
async fn template(ctx: &RequestCtx, r: &Request) -> Result<Value, ApiError> {
    let own =
        store::template_for(&ctx.state.db, &r.centre_site, r.kind, r.modality.as_deref()).await?;
    let Some(ecg) = &r.ecg_id else {
        if let Some(t) = own {
            return Ok(json!({ "findings": t.findings, "impression": t.impression }));
        }
        let findings = match r.modality.as_deref() {
            Some("CT") | Some("MR") => "Technique:\n\nFindings:\n",
            Some("US") => "Organs examined:\n\nFindings:\n",
            _ => "Findings:\n",
        };
        return Ok(json!({ "findings": findings, "impression": "" }));
    };
    let (site, shared) = crate::ecg::store::sites_of(&ctx.state.db, ecg)
        .await?
        .ok_or(ApiError::NotFound { what: "ECG" })?;
    let mut t = Target::site(&site, "ecg", Some(ecg.clone()));
    t.shared_with = shared;
    let permit: Permit<crate::auth::policy::EcgRead> = ctx.permit(t).await?;
    let row = crate::ecg::store::get(&ctx.state.db, &permit)
        .await?
        .ok_or(ApiError::NotFound { what: "ECG" })?;
    let m = &row.summary["measurements"];
    let pick = |k: &str| m["computed"][k].as_f64().or_else(|| m["device"][k].as_f64());
    let num = |k: &str| pick(k).map_or("—".to_string(), |v| format!("{v:.0}"));
    let mut findings = format!(
        "HR {} bpm; PR {} ms; QRS {} ms; QT/QTc {}/{} ms; P/QRS/T axis {}/{}/{}°",
        num("heart_rate_bpm"),
        num("pr_ms"),
        num("qrs_ms"),
        num("qt_ms"),
        num("qtc_bazett_ms"),
        num("p_axis_deg"),
        num("qrs_axis_deg"),
        num("t_axis_deg"),
    );
    if let Some(st) = row.summary["statements"].as_array().filter(|a| !a.is_empty()) {
        let lines: Vec<&str> = st.iter().filter_map(|l| l.as_str()).collect();
        findings.push('\n');
        findings.push_str(&lines.join("\n"));
    }
    let impression = own.as_ref().map_or(String::new(), |t| t.impression.clone());
    if let Some(t) = own.filter(|t| !t.findings.is_empty()) {
        findings.push_str("\n\n");
        findings.push_str(&t.findings);
    }
    Ok(json!({ "findings": findings, "impression": impression }))
}

/// The steps the person could take now (for the page's buttons; the server still decides).
fn possible(
    r: &Request,
    actor: &crate::auth::policy::ActorView,
    now: i64,
    t: Timing,
) -> Vec<&'static str> {
    let body = ReportBody { findings: String::new(), impression: "x".into(), conclusions: vec![] };
    [
        Step::Send,
        Step::Cancel,
        Step::Claim,
        Step::Release,
        Step::Draft(body.clone()),
        Step::Sign(body.clone()),
        Step::Submit(body.clone()),
        Step::Amend { body, reason: "x".into() },
        Step::Acknowledge,
    ]
    .into_iter()
    .filter(|s| apply(r, actor, s, now, t).is_ok())
    .map(|s| s.name())
    .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReading {
    #[serde(default)]
    study_uid: Option<String>,
    #[serde(default)]
    ecg_id: Option<String>,
    #[serde(default = "routine")]
    priority: Priority,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    callback_phone: Option<String>,
    /// The centre; by default the one the site's routing rules name for this kind.
    #[serde(default)]
    centre: Option<SiteId>,
}

fn routine() -> Priority {
    Priority::Routine
}

fn short_text(what: &str, s: &Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match s.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) if t.chars().count() > max || t.chars().any(char::is_control) => {
            Err(ApiError::bad_request("invalid_value", format!("{what}: at most {max} characters")))
        }
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// `POST /api/readings`: a clinician asks a centre to read a study or an ECG of their site.
pub async fn create(
    ctx: RequestCtx,
    JsonBody(body): JsonBody<NewReading>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let db = &ctx.state.db;
    let question = short_text("question", &body.question, 2000)?;
    let phone = short_text("callback_phone", &body.callback_phone, 40)?;
    // What is to be read, and whose it is.
    let (kind, study, ecg, modality, site) = match (&body.study_uid, &body.ecg_id) {
        (Some(study), None) => {
            let (site, _) = crate::archive::store::study_sites(db, study)
                .await?
                .ok_or(ApiError::NotFound { what: "study" })?;
            (Kind::Imaging, study.clone(), None, None, site)
        }
        (None, Some(ecg)) => {
            let (site, study) = crate::ecg::store::site_and_study(db, ecg)
                .await?
                .ok_or(ApiError::NotFound { what: "ECG" })?;
            (Kind::Ecg, study, Some(ecg.clone()), Some("ECG".to_string()), site)
        }
        _ => {
            return Err(ApiError::bad_request("invalid_value", "give either study_uid or ecg_id"));
        }
    };
    let permit: Permit<ReadingCreate> = ctx
        .permit(Target::site(&site, "reading", Some(ecg.clone().unwrap_or(study.clone()))))
        .await?;
    if !ctx.actor.view.has_role(Role::Clinician) {
        let why = "only clinicians ask for a reading";
        ctx.audit(
            "reading.create",
            "reading",
            None,
            Some(site.to_string()),
            Outcome::Denied,
            Some(why.into()),
        )
        .await?;
        return Err(ApiError::Forbidden { detail: format!("reading.create: {why}") });
    }
    let centre = match body.centre {
        Some(c) => c,
        None => store::centre_for(db, &site, kind).await?.ok_or_else(|| {
            ApiError::bad_request(
                "no_centre",
                format!("no reading centre reads this site's {kind}; name one (centre)"),
            )
        })?,
    };
    if centre == site || !crate::network::store::site_exists(db, &centre).await? {
        return Err(ApiError::bad_request("invalid_value", "centre: another existing site"));
    }
    let modality = match modality {
        Some(m) => Some(m),
        None => store::study_modality(db, &study).await?,
    };
    let m = store::Manual {
        kind,
        centre: &centre,
        study_uid: &study,
        ecg_id: ecg.as_deref(),
        modality: modality.as_deref(),
        priority: body.priority,
        question: question.as_deref(),
        callback_phone: phone.as_deref(),
    };
    let (r, fresh) = store::create(db, &permit, &m, &ctx.actor.name(), ctx.now()).await?;
    announce(&ctx.state, &r, if fresh { "requested" } else { "updated" }).await;
    let now = ctx.now();
    let facts = Facts::new();
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(&r, &facts, &ctx.state, now))))
}

/// Tells the centre's readers of the kind and the clinic's clinicians that a request changed.
async fn announce(st: &AppState, r: &Request, event: &'static str) {
    let db = &st.db;
    let mut users =
        crate::network::store::people_with_role(db, &r.centre_site, r.kind.reader_role())
            .await
            .unwrap_or_default();
    users.extend(
        crate::network::store::people_with_role(db, &r.sending_site, Role::Clinician)
            .await
            .unwrap_or_default(),
    );
    st.hub.notify_reading(users, &r.id, event, r.state.as_str()).await;
}

/// Takes a step for the person asking: the policy lets them see the request at all, the core
/// decides the step, the store saves it only if nobody changed the request meanwhile.
async fn step(ctx: RequestCtx, id: String, step: Step) -> Result<Json<Value>, ApiError> {
    let r = load(&ctx, &id).await?;
    let permit: Permit<ReadingUpdate> = ctx.permit(target(&r)).await?;
    let now = ctx.now();
    let timing = Timing::from(&ctx.state.settings.reading);
    let action = match step.name() {
        "send" => "reading.send",
        "cancel" => "reading.cancel",
        "claim" => "reading.claim",
        "release" => "reading.release",
        "reassign" => "reading.reassign",
        "draft" => "reading.draft",
        "sign" => "reading.sign",
        "submit" => "reading.submit",
        "acknowledge" => "reading.acknowledge",
        _ => "reading.amend",
    };
    let event = |outcome, detail: String| NewEvent {
        at: now,
        actor: Some(ctx.actor.name()),
        actor_site: Some(ctx.actor.user.site.to_string()),
        site: Some(r.sending_site.to_string()),
        action,
        resource_kind: "reading",
        resource_id: Some(r.id.clone()),
        outcome,
        client_addr: ctx.client.map(|c| c.to_string()),
        detail: Some(detail),
    };
    let change = match apply(&r, &ctx.actor.view, &step, now, timing) {
        Ok(c) => c,
        Err(e) => {
            crate::audit::record(&ctx.state.db, &event(Outcome::Failure, e.to_string())).await?;
            return Err(match e {
                StepError::NotYours(why) => {
                    ApiError::Forbidden { detail: format!("{action}: {why}") }
                }
                StepError::NotNow(why) => ApiError::conflict("conflict", why),
                StepError::Invalid(why) => ApiError::bad_request("invalid_value", why),
            });
        }
    };
    let detail = match &step {
        Step::Reassign { to, .. } => format!("to {to}"),
        Step::Amend { reason, .. } => format!("reason: {reason}"),
        _ => format!("{} → {}", r.state, change.after.state),
    };
    let me = ctx.actor.user.id.to_string();
    let saved =
        store::save(&ctx.state.db, &permit, &r, &change, &me, &event(Outcome::Success, detail))
            .await?;
    let Some(after) = saved else {
        let why = "someone changed this request a moment ago; look again";
        crate::audit::record(&ctx.state.db, &event(Outcome::Failure, why.into())).await?;
        return Err(ApiError::conflict("conflict", why));
    };
    if !matches!(step, Step::Draft(_)) {
        announce(&ctx.state, &after, step.name()).await;
    }
    // The clinic is told first; the report's copy in the archive follows.
    if matches!(step, Step::Sign(_) | Step::Amend { .. }) {
        file_report(&ctx.state, &after).await;
    }
    let facts = Facts::new();
    let mut v = view(&after, &facts, &ctx.state, now);
    v["can"] = json!(possible(&after, &ctx.actor.view, now, timing));
    Ok(Json(v))
}

pub async fn send(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Send).await
}
pub async fn cancel(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Cancel).await
}
pub async fn claim(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Claim).await
}
pub async fn release(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Release).await
}

pub async fn submit(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<ReportBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Submit(b)).await
}

pub async fn acknowledge(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Acknowledge).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    to: UserId,
}

pub async fn reassign(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<ReassignBody>,
) -> Result<Json<Value>, ApiError> {
    let to = crate::network::store::user_by_id(&ctx.state.db, b.to.as_str())
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::bad_request("invalid_value", "to: no such active person"))?;
    let s =
        Step::Reassign { to: to.id.clone(), to_roles: to.roles.clone(), to_site: to.site.clone() };
    step(ctx, id, s).await
}

pub async fn draft(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<ReportBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Draft(b)).await
}

pub async fn sign(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<ReportBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Sign(b)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendBody {
    #[serde(flatten)]
    body: ReportBody,
    reason: String,
}

pub async fn amend(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    Json(b): Json<AmendBody>,
) -> Result<Json<Value>, ApiError> {
    step(ctx, id, Step::Amend { body: b.body, reason: b.reason }).await
}

// ---- routing rules ----

/// `GET /api/sites/{site}/routing-rules`: what is routed to this centre.
pub async fn rules(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let site = crate::auth::existing_site(&ctx.state, &site).await?;
    let permit: Permit<RoutingList> = ctx.permit(Target::site(&site, "routing", None)).await?;
    Ok(Json(json!({ "rules": store::rules(&ctx.state.db, &permit).await? })))
}

/// `POST /api/sites/{site}/routing-rules`: a site's (or subtree's) imaging or ECGs to this
/// centre.
pub async fn add_rule(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
    JsonBody(new): JsonBody<store::NewRule>,
) -> Result<(StatusCode, Json<store::Rule>), ApiError> {
    let site = crate::auth::existing_site(&ctx.state, &site).await?;
    let permit: Permit<RoutingManage> = ctx.permit(Target::site(&site, "routing", None)).await?;
    let rule = store::add_rule(&ctx.state.db, &permit, &new, &ctx.actor.name(), ctx.now())
        .await
        .map_err(|e| match e {
            store::RuleError::Invalid(why) => ApiError::bad_request("invalid_value", why),
            store::RuleError::Exists => ApiError::conflict("exists", e.to_string()),
            store::RuleError::Sql(e) => e.into(),
        })?;
    ctx.audit(
        "routing.added",
        "routing",
        Some(rule.id.clone()),
        Some(site.to_string()),
        Outcome::Success,
        Some(format!("{} {} from {}", rule.kind, rule.priority, rule.from_site)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// `DELETE /api/routing-rules/{id}`.
pub async fn delete_rule(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let centre = store::rule_centre(&ctx.state.db, &id)
        .await?
        .ok_or(ApiError::NotFound { what: "routing rule" })?;
    let permit: Permit<RoutingManage> =
        ctx.permit(Target::site(&centre, "routing", Some(id))).await?;
    store::delete_rule(&ctx.state.db, &permit).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- background ----

/// How often new requests are looked for (routing opens them inside ingest transactions, which
/// know nothing of sockets), so a centre's worklist shows them within a second.
const NEW_EVERY: std::time::Duration = std::time::Duration::from_millis(400);
/// How often time-driven changes are looked for.
const TIMERS_EVERY: u32 = 5;

/// Until shutdown: tells the centre and the clinic about requests routing opened, and runs
/// what time alone changes (quiet studies become ready; idle claims are released).
pub fn start_background(state: AppState) {
    tokio::spawn(async move {
        let stop = state.shutdown.clone();
        let mut tick = tokio::time::interval(NEW_EVERY);
        let mut news = News::new(crate::time::now_ms());
        let mut n: u32 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let now = crate::time::now_ms();
                    if let Err(e) = news.announce(&state, now).await {
                        tracing::warn!(error = %e, "reading announcements failed; trying again");
                    }
                    n = n.wrapping_add(1);
                    if n % TIMERS_EVERY == 0
                        && let Err(e) = timers_once(&state, now).await
                    {
                        tracing::warn!(error = %e, "reading timers failed; trying again");
                    }
                }
            }
        }
    });
}

/// Which new requests have been announced. Looks back a few seconds each time, since a
/// transaction may commit a little after the time it stamped on its request.
struct News {
    since: i64,
    told: std::collections::HashMap<String, i64>,
}

const LOOK_BACK_MS: i64 = 10_000;

impl News {
    fn new(now: i64) -> News {
        News { since: now, told: Default::default() }
    }

    async fn announce(
        &mut self,
        state: &AppState,
        now: i64,
    ) -> Result<(), crate::storage::DbError> {
        let from = self.since.min(now) - LOOK_BACK_MS;
        for r in store::received_since(&state.db, from).await? {
            if self.told.insert(r.id.clone(), r.received_at).is_none() {
                announce(state, &r, "requested").await;
            }
        }
        self.told.retain(|_, at| *at >= now - 3 * LOOK_BACK_MS);
        self.since = now;
        Ok(())
    }
}

/// Applies what is due at `now` (quiet studies ready, idle claims released, unacknowledged
/// critical results escalated); returns how many things changed.
pub async fn timers_once(state: &AppState, now: i64) -> Result<usize, crate::storage::DbError> {
    let ack_ms = state.settings.reading.critical_ack_minutes as i64 * 60_000;
    let escalated = store::escalate_due(&state.db, now, ack_ms).await?;
    for c in &escalated {
        if let Some(r) = store::find(&state.db, &c.reading).await? {
            announce_critical(state, &r, c, "escalated").await;
        }
    }
    let changed = store::run_due(&state.db, now, Timing::from(&state.settings.reading)).await?;
    for (r, what) in &changed {
        announce(state, r, what).await;
    }
    Ok(changed.len() + escalated.len())
}

// ---- critical results ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiseBody {
    finding: String,
    #[serde(default)]
    note: Option<String>,
}

fn refused(action: &str, e: StepError) -> ApiError {
    match e {
        StepError::NotYours(why) => ApiError::Forbidden { detail: format!("{action}: {why}") },
        StepError::NotNow(why) => ApiError::conflict("conflict", why),
        StepError::Invalid(why) => ApiError::bad_request("invalid_value", why),
    }
}

/// Tells the clinic's clinicians and the centre's readers (and, on escalation, the clinic's
/// admins) about a critical result.
async fn announce_critical(
    st: &AppState,
    r: &Request,
    c: &super::critical::Critical,
    event: &'static str,
) {
    let db = &st.db;
    let mut users = crate::network::store::people_with_role(db, &r.sending_site, Role::Clinician)
        .await
        .unwrap_or_default();
    users.extend(
        crate::network::store::people_with_role(db, &r.centre_site, r.kind.reader_role())
            .await
            .unwrap_or_default(),
    );
    if event == "escalated" {
        users.extend(
            crate::network::store::people_with_role(db, &r.sending_site, Role::Admin)
                .await
                .unwrap_or_default(),
        );
    }
    st.hub.notify_critical(users, &c.id, &r.id, event).await;
}

fn critical_event(
    ctx: &RequestCtx,
    r: &Request,
    action: &'static str,
    id: Option<String>,
    outcome: Outcome,
    detail: String,
) -> NewEvent {
    NewEvent {
        at: ctx.now(),
        actor: Some(ctx.actor.name()),
        actor_site: Some(ctx.actor.user.site.to_string()),
        site: Some(r.sending_site.to_string()),
        action,
        resource_kind: "critical",
        resource_id: id,
        outcome,
        client_addr: ctx.client.map(|c| c.to_string()),
        detail: Some(detail),
    }
}

/// `POST /api/readings/{id}/critical`: a reader marks a critical finding.
pub async fn raise(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<RaiseBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let r = load(&ctx, &id).await?;
    let permit: Permit<ReadingUpdate> = ctx.permit(target(&r)).await?;
    let findings = super::critical::findings_for(&ctx.state.settings.reading, r.kind);
    let note = match super::critical::may_raise(
        &r,
        &ctx.actor.view,
        &b.finding,
        b.note.as_deref(),
        findings,
    ) {
        Ok(n) => n,
        Err(e) => {
            let ev =
                critical_event(&ctx, &r, "critical.raised", None, Outcome::Failure, e.to_string());
            crate::audit::record(&ctx.state.db, &ev).await?;
            return Err(refused("critical.raised", e));
        }
    };
    let ev = critical_event(&ctx, &r, "critical.raised", None, Outcome::Success, String::new());
    let me = ctx.actor.user.id.to_string();
    let c =
        store::raise_critical(&ctx.state.db, &permit, &r, &b.finding, note.as_deref(), &me, &ev)
            .await?;
    announce_critical(&ctx.state, &r, &c, "raised").await;
    Ok((StatusCode::CREATED, Json(json!(c))))
}

async fn load_critical(
    ctx: &RequestCtx,
    id: &str,
) -> Result<(super::critical::Critical, Request), ApiError> {
    let c = store::critical(&ctx.state.db, id)
        .await?
        .ok_or(ApiError::NotFound { what: "critical result" })?;
    let r = load(ctx, &c.reading).await?;
    Ok((c, r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    #[serde(default)]
    readback: Option<String>,
}

/// `POST /api/critical/{id}/acknowledge`: a clinician of the clinic, with the read-back line.
pub async fn acknowledge_critical(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<AckBody>,
) -> Result<Json<Value>, ApiError> {
    let (c, r) = load_critical(&ctx, &id).await?;
    let permit: Permit<ReadingUpdate> = ctx.permit(target(&r)).await?;
    let action = "critical.acknowledged";
    let readback =
        match super::critical::may_acknowledge(&c, &r, &ctx.actor.view, b.readback.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                let ev = critical_event(
                    &ctx,
                    &r,
                    action,
                    Some(id.clone()),
                    Outcome::Failure,
                    e.to_string(),
                );
                crate::audit::record(&ctx.state.db, &ev).await?;
                return Err(refused(action, e));
            }
        };
    let ev = critical_event(
        &ctx,
        &r,
        action,
        Some(id.clone()),
        Outcome::Success,
        format!("read back: {readback}"),
    );
    let me = ctx.actor.user.id.to_string();
    if !store::acknowledge_critical(&ctx.state.db, &permit, &id, &me, &readback, &ev).await? {
        return Err(ApiError::conflict("conflict", "someone acknowledged it a moment ago"));
    }
    let c = store::critical(&ctx.state.db, &id)
        .await?
        .ok_or(ApiError::NotFound { what: "critical result" })?;
    announce_critical(&ctx.state, &r, &c, "acknowledged").await;
    Ok(Json(json!(c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    outcome: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/critical/{id}/calls`: the reader logs a phone call to the clinic.
pub async fn log_call(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<CallBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (_, r) = load_critical(&ctx, &id).await?;
    let permit: Permit<ReadingUpdate> = ctx.permit(target(&r)).await?;
    let action = "critical.call";
    let note =
        match super::critical::may_log_call(&r, &ctx.actor.view, &b.outcome, b.note.as_deref()) {
            Ok(n) => n,
            Err(e) => {
                let ev = critical_event(
                    &ctx,
                    &r,
                    action,
                    Some(id.clone()),
                    Outcome::Failure,
                    e.to_string(),
                );
                crate::audit::record(&ctx.state.db, &ev).await?;
                return Err(refused(action, e));
            }
        };
    let ev =
        critical_event(&ctx, &r, action, Some(id.clone()), Outcome::Success, b.outcome.clone());
    let me = ctx.actor.user.id.to_string();
    store::log_call(&ctx.state.db, &permit, &id, &me, &b.outcome, note.as_deref(), &ev).await?;
    let c = store::critical(&ctx.state.db, &id)
        .await?
        .ok_or(ApiError::NotFound { what: "critical result" })?;
    announce_critical(&ctx.state, &r, &c, "call").await;
    Ok((StatusCode::CREATED, Json(json!(c))))
}

/// `GET /api/critical`: a clinic's critical results (open ones and the last week's), or a
/// centre's for its readers. Each is recorded as read.
pub async fn criticals(ctx: RequestCtx) -> Result<Json<Value>, ApiError> {
    let me = &ctx.actor;
    let permit: Permit<ReadingSearch> = ctx.permit(Target::network()).await?;
    let site = me.user.site.clone();
    let reader = me.view.has_role(Role::Reader) || me.view.has_role(Role::Specialist);
    let scope = if reader { Scope::Centre(&site) } else { Scope::Sender(&site) };
    let now = ctx.now();
    let list = store::criticals_for(&ctx.state.db, &permit, scope, now).await?;
    ctx.record_reads(
        "reading.read",
        "critical",
        list.iter().map(|c| (c.sending_site.clone(), c.id.clone())),
        "listed",
    )
    .await?;
    Ok(Json(json!({ "critical": list })))
}

// ---- the report on paper and in the archive ----

/// What a printed report needs beside the report itself.
async fn paper_facts(
    st: &AppState,
    r: &Request,
    report: &store::Report,
) -> Result<(Value, String, String, String, Option<String>), ApiError> {
    let db = &st.db;
    let study = store::facts_of_study(db, &r.study_uid).await?.unwrap_or(Value::Null);
    let name_of = |id: String| async move {
        Ok::<_, ApiError>(
            crate::network::store::user_by_id(db, &id).await?.map_or(id, |u| u.display_name),
        )
    };
    let signer = name_of(report.signed_by.clone()).await?;
    let drafter = match report.drafted_by.clone() {
        Some(d) => Some(name_of(d).await?),
        None => None,
    };
    let name = |s: Option<String>, id: &SiteId| s.unwrap_or_else(|| id.to_string());
    let sending =
        name(crate::network::store::site_name(db, &r.sending_site).await?, &r.sending_site);
    let centre = name(crate::network::store::site_name(db, &r.centre_site).await?, &r.centre_site);
    Ok((study, signer, sending, centre, drafter))
}

/// Files the latest signed version as an Encapsulated PDF in the request's study (for the
/// sending site, which owns the study: the signature is the recorded decision). A failure is
/// logged; the signed report stands.
async fn file_report(st: &AppState, r: &Request) {
    let filed = async {
        let report = store::latest_report(&st.db, &r.id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no signed version")))?;
        let (study, signer, sending, centre, drafter) = paper_facts(st, r, &report).await?;
        let offset = st.settings.reading.report_utc_offset_minutes as i32;
        let (req, rep) = (r.clone(), report.clone());
        let dicom = tokio::task::spawn_blocking(move || {
            let paper = super::report::Paper {
                request: &req,
                report: &rep,
                study: &study,
                signer: &signer,
                drafter: drafter.as_deref(),
                sending_site: &sending,
                centre: &centre,
                lang: super::report::Lang::Zh,
                utc_offset_minutes: offset,
            };
            let pdf = super::report::pdf(&paper).map_err(|e| e.to_string())?;
            let uids = super::report::Uids {
                series: crate::ecg::dicom_out::new_uid(),
                instance: crate::ecg::dicom_out::new_uid(),
            };
            super::report::encapsulate(&pdf, &req, &rep, &study, &uids, offset)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let target = Target::site(&r.sending_site, "study", Some(r.study_uid.clone()));
        let permit: Permit<crate::auth::policy::ImagingStore> =
            crate::auth::console::carried_out(target);
        crate::archive::store::ingest(
            &st.db,
            &st.objects,
            &permit,
            dicom.into(),
            None,
            None,
            crate::time::now_ms(),
        )
        .await
        .map_err(|(_, why)| ApiError::internal(anyhow::anyhow!(why.reason)))?;
        Ok::<(), ApiError>(())
    };
    if let Err(e) = filed.await {
        tracing::error!(reading = %r.id, error = %e, "a signed report could not be filed in its study");
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PdfQuery {
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    version: Option<i64>,
}

/// `GET /api/readings/{id}/report.pdf[?lang=zh-CN&version=N]`: a signed version on A4.
pub async fn report_pdf(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<PdfQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let r = load(&ctx, &id).await?;
    let permit: Permit<ReadingRead> = ctx.permit(target(&r)).await?;
    let reports = store::reports(&ctx.state.db, &permit).await?;
    let report = match q.version {
        Some(v) => reports.into_iter().find(|x| x.version == v),
        None => reports.into_iter().last(),
    }
    .ok_or(ApiError::NotFound { what: "signed report" })?;
    let (study, signer, sending, centre, drafter) = paper_facts(&ctx.state, &r, &report).await?;
    let lang = super::report::Lang::from_tag(q.lang.as_deref().unwrap_or("en"));
    let offset = ctx.state.settings.reading.report_utc_offset_minutes as i32;
    let pdf = tokio::task::spawn_blocking(move || {
        let paper = super::report::Paper {
            request: &r,
            report: &report,
            study: &study,
            signer: &signer,
            drafter: drafter.as_deref(),
            sending_site: &sending,
            centre: &centre,
            lang,
            utc_offset_minutes: offset,
        };
        super::report::pdf(&paper)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        crate::print::PrintError::NoFont => ApiError::Unavailable { detail: e.to_string() },
        e => ApiError::internal(anyhow::anyhow!(e)),
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/pdf"),
            (axum::http::header::CACHE_CONTROL, "private, no-store"),
        ],
        pdf,
    )
        .into_response())
}

// ---- FHIR ----

/// The requests the caller may see (a reader: their centre's; others: their site's), each
/// recorded as read, with their study facts.
async fn fhir_requests(
    ctx: &RequestCtx,
    states: Option<Vec<State>>,
) -> Result<(Vec<Request>, Facts, Permit<ReadingSearch>), ApiError> {
    let me = &ctx.actor;
    let permit: Permit<ReadingSearch> = ctx.permit(Target::network()).await?;
    let reader = me.view.has_role(Role::Reader) || me.view.has_role(Role::Specialist);
    let site = me.user.site.clone();
    let scope = if reader { Scope::Centre(&site) } else { Scope::Sender(&site) };
    let states = states.or(Some(State::ALL.to_vec()));
    let f = Filter { states, limit: 1000, ..Filter::default() };
    let rows = store::search(&ctx.state.db, &permit, scope, &f).await?;
    let facts = store::study_facts(&ctx.state.db, &permit, &rows).await?;
    ctx.record_reads(
        "reading.read",
        "reading",
        rows.iter().map(|r| (r.sending_site.to_string(), r.id.clone())),
        "FHIR search",
    )
    .await?;
    Ok((rows, facts, permit))
}

fn fhir_json(v: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "application/fhir+json")], v.to_string()).into_response()
}

/// This server's address as the client reached it (for a Bundle's `fullUrl`s).
fn base_url(ctx: &RequestCtx, headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("localhost");
    let scheme = if ctx.state.settings.http.tls_cert.is_some() { "https" } else { "http" };
    format!("{scheme}://{host}")
}

#[derive(Deserialize, Default)]
pub struct FhirQuery {
    /// ServiceRequest: active, completed, revoked (comma-separated).
    #[serde(default)]
    status: Option<String>,
}

fn fhir_states(status: Option<&str>) -> Result<Option<Vec<State>>, ApiError> {
    let Some(s) = status else { return Ok(None) };
    let mut out = vec![];
    for st in s.split(',') {
        match st {
            "active" => out.extend([State::Collecting, State::Ready, State::Claimed]),
            "completed" => out.push(State::Signed),
            "revoked" => out.push(State::Cancelled),
            other => return Err(bad("status", format!("`{other}`: active, completed or revoked"))),
        }
    }
    Ok(Some(out))
}

/// `GET /fhir/ServiceRequest[?status=active]`: a searchset `Bundle`.
pub async fn fhir_service_requests(
    ctx: RequestCtx,
    headers: axum::http::HeaderMap,
    QueryParams(q): QueryParams<FhirQuery>,
) -> Result<axum::response::Response, ApiError> {
    let (rows, facts, _) = fhir_requests(&ctx, fhir_states(q.status.as_deref())?).await?;
    let list = rows
        .iter()
        .map(|r| super::fhir::service_request(r, facts.get(&r.study_uid).unwrap_or(&Value::Null)))
        .collect();
    Ok(fhir_json(super::fhir::bundle(&base_url(&ctx, &headers), "ServiceRequest", list)))
}

/// `GET /fhir/DiagnosticReport`: the signed reports the caller may see, as a `Bundle`.
pub async fn fhir_diagnostic_reports(
    ctx: RequestCtx,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let (rows, facts, permit) = fhir_requests(&ctx, Some(vec![State::Signed])).await?;
    let mut list = vec![];
    for r in &rows {
        let reports = store::reports_of_listed(&ctx.state.db, &permit, &r.id).await?;
        let study = facts.get(&r.study_uid).unwrap_or(&Value::Null);
        list.extend(super::fhir::diagnostic_report(r, study, &reports));
    }
    Ok(fhir_json(super::fhir::bundle(&base_url(&ctx, &headers), "DiagnosticReport", list)))
}

async fn fhir_one(
    ctx: &RequestCtx,
    id: &str,
) -> Result<(Request, Value, Permit<ReadingRead>), ApiError> {
    let r = load(ctx, &super::fhir::request_id(id)).await?;
    let permit: Permit<ReadingRead> = ctx.permit(target(&r)).await?;
    let study = store::study_facts_of(&ctx.state.db, &permit, &r.study_uid)
        .await?
        .remove(&r.study_uid)
        .unwrap_or(Value::Null);
    Ok((r, study, permit))
}

/// `GET /fhir/ServiceRequest/{id}`.
pub async fn fhir_service_request(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<axum::response::Response, ApiError> {
    let (r, study, _) = fhir_one(&ctx, &id).await?;
    Ok(fhir_json(super::fhir::service_request(&r, &study)))
}

/// `GET /fhir/DiagnosticReport/{id}`: the latest signed version (404 before signing).
pub async fn fhir_diagnostic_report(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<axum::response::Response, ApiError> {
    let (r, study, permit) = fhir_one(&ctx, &id).await?;
    let reports = store::reports(&ctx.state.db, &permit).await?;
    let v = super::fhir::diagnostic_report(&r, &study, &reports)
        .ok_or(ApiError::NotFound { what: "DiagnosticReport" })?;
    Ok(fhir_json(v))
}

// ---- turnaround ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    #[serde(default)]
    days: Option<i64>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/reading-stats?days=7|30[&format=csv]`: the turnaround of the caller's site as a
/// reading centre (no patient data: counts and durations).
pub async fn stats(
    ctx: RequestCtx,
    QueryParams(q): QueryParams<StatsQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let days = q.days.unwrap_or(7);
    if !(1..=366).contains(&days) {
        return Err(bad("days", "between 1 and 366"));
    }
    let permit: Permit<ReadingSearch> = ctx.permit(Target::network()).await?;
    let centre = ctx.actor.user.site.clone();
    let since = ctx.now() - days * 86_400_000;
    let times = store::times_since(&ctx.state.db, &permit, &centre, since).await?;
    let settings = &ctx.state.settings.reading;
    let rows = super::stats::turnaround(&times, |p| sla_ms(settings, p));
    match q.format.as_deref() {
        None | Some("json") => {
            Ok(Json(json!({ "centre": centre, "days": days, "rows": rows })).into_response())
        }
        Some("csv") => Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"ferry-turnaround.csv\"",
                ),
            ],
            super::stats::csv(&rows),
        )
            .into_response()),
        Some(other) => Err(bad("format", format!("`{other}` is not json or csv"))),
    }
}

// ---- report templates ----

/// `GET /api/sites/{site}/reading-templates`: the centre's report templates.
pub async fn templates(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let site = crate::auth::existing_site(&ctx.state, &site).await?;
    let permit: Permit<ReadingSearch> = ctx.permit(Target::network()).await?;
    Ok(Json(json!({ "templates": store::templates(&ctx.state.db, &permit, &site).await? })))
}

/// `PUT /api/sites/{site}/reading-templates`: creates or replaces one.
pub async fn put_template(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
    JsonBody(t): JsonBody<store::Template>,
) -> Result<Json<store::Template>, ApiError> {
    let site = crate::auth::existing_site(&ctx.state, &site).await?;
    let permit: Permit<crate::auth::policy::TemplateManage> = ctx
        .permit(Target::site(&site, "template", Some(format!("{}:{}", t.kind, t.modality))))
        .await?;
    let saved = store::put_template(&ctx.state.db, &permit, &t, &ctx.actor.name(), ctx.now())
        .await
        .map_err(|e| match e {
            store::RuleError::Invalid(why) => ApiError::bad_request("invalid_value", why),
            store::RuleError::Exists => ApiError::conflict("exists", e.to_string()),
            store::RuleError::Sql(e) => e.into(),
        })?;
    Ok(Json(saved))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateKey {
    kind: Kind,
    #[serde(default)]
    modality: String,
}

/// `DELETE /api/sites/{site}/reading-templates?kind=…&modality=…`.
pub async fn delete_template(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
    QueryParams(k): QueryParams<TemplateKey>,
) -> Result<StatusCode, ApiError> {
    let site = crate::auth::existing_site(&ctx.state, &site).await?;
    let permit: Permit<crate::auth::policy::TemplateManage> = ctx
        .permit(Target::site(&site, "template", Some(format!("{}:{}", k.kind, k.modality))))
        .await?;
    if !store::delete_template(&ctx.state.db, &permit, k.kind, &k.modality).await? {
        return Err(ApiError::NotFound { what: "template" });
    }
    Ok(StatusCode::NO_CONTENT)
}
