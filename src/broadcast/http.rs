//! `/api/broadcasts`: trainers schedule sessions; people see those of their site and those
//! their site is in the audience of, and can put one in their calendar.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use super::{attendance, store};
use crate::audit::{NewEvent, Outcome};
use crate::auth::RequestCtx;
use crate::auth::policy::{
    BroadcastAttendance, BroadcastCreate, BroadcastRead, BroadcastSearch, PeopleDirectory, Permit,
    Target,
};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::network::Role;
use crate::network::store::site_exists;
use crate::time::{parse_rfc3339, rfc3339};

/// A time as RFC 3339 text or as unix milliseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum When {
    Millis(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBroadcastBody {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub starts_at: When,
    /// The expected length in minutes (default 60).
    #[serde(default)]
    pub minutes: Option<i64>,
    /// Sites that see the session, each on its own.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Sites that see it with every site below them.
    #[serde(default)]
    pub subtrees: Vec<String>,
}

fn target(b: &Broadcast, audience: Vec<SiteId>) -> Target {
    let mut t = Target::site(&b.site, "broadcast", Some(b.id.clone()));
    t.shared_with = audience;
    t
}

pub(super) fn view(b: &Broadcast, now: i64) -> Value {
    json!({
        "id": b.id,
        "site": b.site,
        "trainer": b.trainer,
        "title": b.title,
        "description": b.description,
        "starts_at": rfc3339(b.starts_at),
        "ends_at": rfc3339(b.ends_at()),
        "minutes": b.minutes,
        "state": b.state,
        "audience": b.audience,
        "created_at": rfc3339(b.created_at),
        // Due to start within the next quarter of an hour, or running by the clock.
        "soon": b.state == State::Scheduled && b.starts_at - 15 * 60_000 <= now && now < b.ends_at(),
    })
}

pub(super) fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_value", detail)
}

/// `POST /api/broadcasts`: a trainer schedules a session for their own site.
pub async fn create(
    ctx: RequestCtx,
    JsonBody(body): JsonBody<NewBroadcastBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let me = &ctx.actor;
    let site = me.user.site.clone();
    let permit: Permit<BroadcastCreate> =
        ctx.permit(Target::site(&site, "broadcast", None)).await?;
    if !me.view.has_role(Role::Trainer) {
        let why = "only trainers schedule training sessions";
        ctx.audit(
            "broadcast.create",
            "broadcast",
            None,
            Some(site.to_string()),
            Outcome::Denied,
            Some(why.into()),
        )
        .await?;
        return Err(ApiError::Forbidden { detail: format!("broadcast.create: {why}") });
    }
    let now = ctx.now();
    let title = body.title.trim().to_string();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(bad(format!("title: name the session (at most {MAX_TITLE} characters)")));
    }
    if body.description.chars().count() > MAX_DESCRIPTION {
        return Err(bad(format!("description: at most {MAX_DESCRIPTION} characters")));
    }
    let starts_at = match &body.starts_at {
        When::Millis(ms) => Some(*ms),
        When::Text(s) => parse_rfc3339(s.trim()),
    }
    .ok_or_else(|| bad("starts_at: a time in RFC 3339 (2026-12-02T10:00:00+08:00) or unix ms"))?;
    if !(now - 3_600_000..=now + 366 * 86_400_000).contains(&starts_at) {
        return Err(bad("starts_at: must be within the coming year"));
    }
    let minutes = body.minutes.unwrap_or(DEFAULT_MINUTES);
    if !(5..=600).contains(&minutes) {
        return Err(bad("minutes: between 5 and 600"));
    }
    let mut audience: Vec<AudienceEntry> = vec![];
    for (list, subtree) in [(&body.audience, false), (&body.subtrees, true)] {
        for s in list {
            let id: SiteId =
                s.parse().map_err(|_| bad(format!("audience: {s} is not a site id")))?;
            if !site_exists(&ctx.state.db, &id).await? {
                return Err(bad(format!("audience: no site {id} in the network")));
            }
            match audience.iter_mut().find(|e| e.site == id) {
                Some(e) => e.subtree |= subtree,
                None => audience.push(AudienceEntry { site: id, subtree }),
            }
        }
    }
    if audience.is_empty() {
        return Err(bad("audience: name at least one site (audience or subtrees)"));
    }
    if audience.len() > MAX_AUDIENCE {
        return Err(bad(format!("audience: at most {MAX_AUDIENCE} sites")));
    }
    let b = Broadcast {
        id: new_broadcast_id(),
        site: site.clone(),
        trainer: me.user.id.clone(),
        title,
        description: body.description.trim().to_string(),
        starts_at,
        minutes,
        state: State::Scheduled,
        audience,
        created_at: now,
    };
    let event = NewEvent {
        at: now,
        actor: Some(me.name()),
        actor_site: Some(site.to_string()),
        site: Some(site.to_string()),
        action: "broadcast.create",
        resource_kind: "broadcast",
        resource_id: Some(b.id.clone()),
        outcome: Outcome::Success,
        client_addr: ctx.client.map(|a| a.to_string()),
        detail: Some(format!("{} audience entries", b.audience.len())),
    };
    store::create(&ctx.state.db, &permit, &b, &event).await?;
    // Home pages of the sites that see it list it at once.
    tell_audience(&ctx, &b, "scheduled").await?;
    Ok((StatusCode::CREATED, Json(view(&b, now))))
}

/// Tells everyone who may see the session (its site's people and its audience's) that
/// something of it changed (`what`: "scheduled", "materials"), whether or not they watch.
pub(super) async fn tell_audience(
    ctx: &RequestCtx,
    b: &Broadcast,
    what: &'static str,
) -> Result<(), ApiError> {
    let people = audience_people(ctx, b).await?;
    ctx.state.hub.notify_broadcast(people, &b.id, what).await;
    Ok(())
}

/// Everyone at the session's audience sites and at its own site.
async fn audience_people(ctx: &RequestCtx, b: &Broadcast) -> Result<Vec<String>, ApiError> {
    let mut sites = store::audience_of(&ctx.state.db, b, &mut HashMap::new()).await?;
    sites.push(b.site.clone());
    Ok(crate::network::store::people_of_sites(&ctx.state.db, &sites).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Sessions ending at this time or later (RFC 3339); default now.
    #[serde(default)]
    pub from: Option<String>,
}

/// `GET /api/broadcasts`: the sessions the caller may see, live ones and the coming ones,
/// soonest first.
pub async fn list(
    ctx: RequestCtx,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let permit: Permit<BroadcastSearch> = ctx.permit(Target::network()).await?;
    let now = ctx.now();
    let from = match &q.from {
        Some(s) => parse_rfc3339(s).ok_or_else(|| bad("from: a time in RFC 3339"))?,
        None => now,
    };
    let db = &ctx.state.db;
    let found =
        visible_pages(&ctx, 500, |page, offset| store::upcoming(db, &permit, from, page, offset))
            .await?;
    let out: Vec<Value> = found.iter().map(|b| view(b, now)).collect();
    Ok(Json(json!({ "broadcasts": out })))
}

/// Up to `want` sessions the caller may see, read page by page (`fetch(page, offset)`, in the
/// store's order) until that many are kept or the store has no more: sessions of other sites
/// do not crowd out the caller's own.
pub(super) async fn visible_pages<F, Fut, E>(
    ctx: &RequestCtx,
    want: usize,
    mut fetch: F,
) -> Result<Vec<Broadcast>, ApiError>
where
    F: FnMut(i64, i64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Broadcast>, E>>,
    ApiError: From<E>,
{
    let page = want.max(1) as i64;
    let mut out: Vec<Broadcast> = vec![];
    let mut ids = std::collections::HashSet::new();
    let mut cache = HashMap::new();
    let mut offset = 0;
    // At most this many pages: a caller who may see little does not walk the whole table.
    for _ in 0..MAX_PAGES {
        let found = fetch(page, offset).await?;
        let n = found.len() as i64;
        // A session made between two reads shifts the next page: what repeats is kept once.
        let fresh = found.into_iter().filter(|b| ids.insert(b.id.clone())).collect();
        out.extend(visible_cached(ctx, fresh, &mut cache).await?);
        if out.len() >= want || n < page {
            break;
        }
        offset += n;
    }
    out.truncate(want);
    Ok(out)
}

/// The most pages `visible_pages` reads.
const MAX_PAGES: usize = 20;

/// The sessions of `found` the caller may see: its own site's, and those whose audience has
/// its site (each subtree looked up once).
pub(super) async fn visible(
    ctx: &RequestCtx,
    found: Vec<Broadcast>,
) -> Result<Vec<Broadcast>, ApiError> {
    visible_cached(ctx, found, &mut HashMap::new()).await
}

/// `visible`, with the subtrees looked up so far in `cache`.
async fn visible_cached(
    ctx: &RequestCtx,
    found: Vec<Broadcast>,
    cache: &mut HashMap<SiteId, std::collections::HashSet<SiteId>>,
) -> Result<Vec<Broadcast>, ApiError> {
    let mine = &ctx.actor.user.site;
    let mut out = vec![];
    for b in found {
        if &b.site == mine || store::audience_of(&ctx.state.db, &b, cache).await?.contains(mine) {
            out.push(b);
        }
    }
    Ok(out)
}

/// The session `id`, or 404.
pub(super) async fn find(ctx: &RequestCtx, id: &str) -> Result<Broadcast, ApiError> {
    match is_broadcast_id(id) {
        true => store::load(&ctx.state.db, id).await?,
        false => None,
    }
    .ok_or(ApiError::NotFound { what: "broadcast" })
}

/// The session `id` if the caller may see it (404 otherwise, audited), with the permit.
pub(super) async fn readable(
    ctx: &RequestCtx,
    id: &str,
) -> Result<(Broadcast, Permit<BroadcastRead>), ApiError> {
    let b = find(ctx, id).await?;
    let audience = store::audience_of(&ctx.state.db, &b, &mut HashMap::new()).await?;
    let permit = ctx.permit(target(&b, audience)).await?;
    Ok((b, permit))
}

/// `GET /api/broadcasts/{id}`: the session, and who is connected to its media now.
pub async fn get(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    let mut v = view(&b, ctx.now());
    let live = ctx.state.media.live(&b.id);
    v["media"] = json!({
        "presenter": live.presenter,
        "viewers": live.viewers,
        "watching": live.watching,
        "stage": ctx.state.media.on_stage(&b.id),
        "stage_connected": live.stage.is_some(),
    });
    Ok(Json(v))
}

/// `POST /api/broadcasts/{id}/end`: the session's trainer ends it. Every media connection
/// closes (the presenter's, the viewers', the stage's) and the session moves to the training
/// library; its people are told over their sockets ("state").
pub async fn end(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    let action = "broadcast.end";
    trainer_only(&ctx, &b, action, "only the session's trainer ends it").await?;
    // The people to tell, found before their connections close: whoever is connected (an
    // administrator watching from elsewhere included) and the audience, whose lists of
    // coming sessions lose it and whose library gains it.
    let mut people = store::connected_people(&ctx.state.db, &b.id).await?;
    people.extend(audience_people(&ctx, &b).await?);
    let event = session_event(&ctx, &b, action, Outcome::Success, None);
    if !store::set_ended(&ctx.state.db, &b.id, ctx.now(), &event).await? {
        check_not_over(&b)?;
        // It ended between the read above and now (another end won).
        return Err(ApiError::conflict("broadcast_over", "the session is ended"));
    }
    ctx.state.media.close_room(&b.id);
    people.push(b.trainer.to_string());
    people.sort();
    people.dedup();
    ctx.state.hub.notify_broadcast(people, &b.id, "state").await;
    let b = find(&ctx, &id).await?;
    Ok(Json(view(&b, ctx.now())))
}

/// An audit event on session `b` by the caller, now, for a store to record with its change.
pub(super) fn session_event(
    ctx: &RequestCtx,
    b: &Broadcast,
    action: &'static str,
    outcome: Outcome,
    detail: Option<String>,
) -> NewEvent {
    ctx.event(action, "broadcast", Some(b.id.clone()), Some(b.site.to_string()), outcome, detail)
}

/// Records an audit event on session `b` by the caller, now.
pub(super) async fn audit_session(
    ctx: &RequestCtx,
    b: &Broadcast,
    action: &'static str,
    outcome: Outcome,
    detail: Option<String>,
) -> Result<(), ApiError> {
    crate::audit::record(&ctx.state.db, &session_event(ctx, b, action, outcome, detail)).await?;
    Ok(())
}

/// Goes on only for the session's trainer; anyone else is refused (`403`), and the refusal
/// recorded as `action` denied.
pub(super) async fn trainer_only(
    ctx: &RequestCtx,
    b: &Broadcast,
    action: &'static str,
    why: &str,
) -> Result<(), ApiError> {
    if b.trainer == ctx.actor.user.id {
        return Ok(());
    }
    audit_session(ctx, b, action, Outcome::Denied, Some(why.into())).await?;
    Err(ApiError::Forbidden { detail: format!("{action}: {why}") })
}

/// The host part of the request's Host header.
fn host_of(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::HOST)?.to_str().ok()?;
    Some(match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    })
}

/// The SDP answer of a new WHIP or WHEP resource (RFC 9725): 201, its address, the answer.
fn created(location: String, answer: String) -> Response {
    let mut r = (StatusCode::CREATED, answer).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    r
}

fn sdp_body(headers: &HeaderMap, body: &str) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.trim().to_ascii_lowercase().starts_with("application/sdp") {
        return Err(ApiError::bad_request(
            "unsupported_media_type",
            "send the SDP offer as application/sdp",
        ));
    }
    if body.len() > 64 * 1024 {
        return Err(bad("the SDP offer is larger than 64 KiB"));
    }
    Ok(())
}

fn join_error(e: crate::sfu::shell::JoinError) -> ApiError {
    use crate::sfu::room::RoomError;
    use crate::sfu::shell::JoinError;
    match e {
        JoinError::Room(RoomError::PresenterTaken) => {
            ApiError::conflict("presenter_connected", "someone is presenting this session already")
        }
        JoinError::Room(RoomError::StageTaken) => {
            ApiError::conflict("stage_taken", "someone is on stage already")
        }
        JoinError::Room(RoomError::Offer(why)) => ApiError::bad_request("invalid_sdp", why),
        JoinError::Busy => {
            ApiError::Unavailable { detail: "the media plane is busy; try again".into() }
        }
    }
}

/// `POST /api/broadcasts/{id}/whip`: the session's trainer publishes (WHIP, RFC 9725): an SDP
/// offer in, the answer out, and the session is live.
pub async fn whip(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    body: String,
) -> Result<Response, ApiError> {
    connect(&ctx, headers, id, body, crate::sfu::room::Role::Presenter).await
}

/// `POST /api/broadcasts/{id}/whep`: a person of the audience watches (WHEP).
pub async fn whep(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    body: String,
) -> Result<Response, ApiError> {
    connect(&ctx, headers, id, body, crate::sfu::room::Role::Viewer).await
}

/// WHIP and WHEP alike: the session's read permit, then (presenting) its trainer only, (on
/// stage) the person the trainer brought there only; the room answers the offer; the
/// connection joins the attendance (a stage connection does not: its owner is counted by the
/// connection they watch on) and the trail.
pub(super) async fn connect(
    ctx: &RequestCtx,
    headers: HeaderMap,
    id: String,
    body: String,
    role: crate::sfu::room::Role,
) -> Result<Response, ApiError> {
    use crate::sfu::room::Role as MediaRole;
    let presenting = role == MediaRole::Presenter;
    let (action, kind) = match role {
        MediaRole::Presenter => ("broadcast.present", "whip"),
        MediaRole::Viewer => ("broadcast.watch", "whep"),
        MediaRole::Stage => ("broadcast.stage_publish", "stage/whip"),
    };
    sdp_body(&headers, &body)?;
    let (b, permit) = readable(ctx, &id).await?;
    let audit = |outcome, detail: Option<String>| audit_session(ctx, &b, action, outcome, detail);
    if presenting && b.trainer != ctx.actor.user.id {
        let why = "only the session's trainer presents it";
        audit(Outcome::Denied, Some(why.into())).await?;
        return Err(ApiError::Forbidden { detail: format!("{action}: {why}") });
    }
    let staged = role == MediaRole::Stage;
    if staged {
        on_stage_or_denied(ctx, &b, action).await?;
    }
    check_not_over(&b)?;
    let media = &ctx.state.media;
    let local = media.address_for(host_of(&headers));
    let (peer, answer) =
        media.join(&b.id, role, &body, local, &ctx.actor.name()).await.map_err(join_error)?;
    // The peer is in the room now: if what follows fails, it must not stay there holding
    // the presenter's place (or counting as a viewer) for a client that got no answer.
    // Until the answer goes out the peer is this request's: if the request fails, or ends
    // unanswered (the client hung up meanwhile), the guard takes it out of the room again.
    let guard = PeerGuard { media, room: &b.id, peer, owner: ctx.actor.name(), answered: false };
    let done = async {
        // The trainer may have ended the session, or taken the stage back, while the room
        // answered: a connection that raced past either is closed again, not left behind.
        check_not_over(&find(ctx, &b.id).await?)?;
        if staged {
            on_stage_or_denied(ctx, &b, action).await?;
        }
        if role != MediaRole::Stage {
            joined(ctx, &permit, &b, peer, presenting).await?;
        }
        if presenting {
            store::set_live(&ctx.state.db, &b.id, ctx.now()).await?;
        }
        audit(Outcome::Success, Some(format!("peer {peer}"))).await
    };
    done.await?;
    guard.answered();
    Ok(created(format!("/api/broadcasts/{}/{kind}/{peer}", b.id), answer))
}

/// A peer a request added to a room, taken out again when dropped before `answered`.
struct PeerGuard<'a> {
    media: &'a crate::sfu::shell::MediaPlane,
    room: &'a str,
    peer: crate::sfu::room::PeerId,
    owner: String,
    answered: bool,
}

impl PeerGuard<'_> {
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for PeerGuard<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.media.leave(self.room, self.peer, &self.owner);
        }
    }
}

/// Publishing on stage is for the person the trainer brought there (403, audited, otherwise).
async fn on_stage_or_denied(
    ctx: &RequestCtx,
    b: &Broadcast,
    action: &'static str,
) -> Result<(), ApiError> {
    if ctx.state.media.on_stage(&b.id).as_deref() == Some(ctx.actor.user.id.as_str()) {
        return Ok(());
    }
    let why = "only the person the trainer brought on stage publishes there";
    audit_session(ctx, b, action, Outcome::Denied, Some(why.into())).await?;
    Err(ApiError::Forbidden { detail: format!("{action}: {why}") })
}

/// 409 for a session that has ended or was cancelled: nobody connects to it any more.
fn check_not_over(b: &Broadcast) -> Result<(), ApiError> {
    match b.state {
        State::Ended | State::Cancelled => Err(ApiError::conflict(
            "broadcast_over",
            format!("the session is {}", b.state.as_str()),
        )),
        _ => Ok(()),
    }
}

/// Records a new media connection in the session's attendance.
async fn joined(
    ctx: &RequestCtx,
    permit: &Permit<BroadcastRead>,
    b: &Broadcast,
    peer: crate::sfu::room::PeerId,
    presenter: bool,
) -> Result<(), ApiError> {
    let key = attendance::peer_key(ctx.state.media.instance(), peer);
    let j = store::Joined {
        broadcast: &b.id,
        peer: &key,
        user: &ctx.actor.user.id,
        site: &ctx.actor.user.site,
        presenter,
        at: ctx.now(),
    };
    if !store::attendance_join(&ctx.state.db, permit, &j).await? {
        // The session ended after the re-read in `connect`: not filed, and refused.
        return Err(ApiError::conflict("broadcast_over", "the session is ended"));
    }
    Ok(())
}

/// `DELETE /api/broadcasts/{id}/whip/{peer}` and `…/whep/{peer}`: hang up (the one who
/// joined only).
pub async fn hang_up(
    ctx: RequestCtx,
    PathParams((id, peer)): PathParams<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    if !ctx.state.media.leave(&b.id, peer, &ctx.actor.name()) {
        return Err(ApiError::NotFound { what: "media session" });
    }
    Ok(StatusCode::OK)
}

/// `GET /api/broadcasts/{id}/calendar.ics`: the session for a calendar.
pub async fn calendar(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    let directory: Permit<PeopleDirectory> = ctx.permit(Target::network()).await?;
    let people =
        crate::network::store::people(&ctx.state.db, &directory, std::slice::from_ref(&b.trainer))
            .await?;
    let trainer = people.first().map(|p| p.display_name.clone()).unwrap_or(b.trainer.to_string());
    // The session's page on the address the caller used to reach Ferry.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if ctx.state.settings.tls_enabled() { "https" } else { "http" };
    let url = format!("{scheme}://{host}/#/broadcasts/{}", b.id);
    let body = ics(&b, &trainer, &url, ctx.now());
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8"));
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"training-session.ics\""),
    );
    Ok(r)
}

/// Saves what the media plane sees into the sessions' attendance: started with the server;
/// connections left open by an earlier run are closed first, and all are closed at shutdown.
pub async fn start_background(
    state: crate::state::AppState,
    mut events: tokio::sync::mpsc::Receiver<crate::sfu::shell::MediaEvent>,
) -> anyhow::Result<()> {
    let closed = store::attendance_close_all(&state.db, crate::time::now_ms()).await?;
    if closed > 0 {
        tracing::info!(closed, "closed the attendance of connections of an earlier run");
    }
    tokio::spawn(async move {
        let mut tracker = attendance::Tracker::default();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        let instance = state.media.instance().to_string();
        loop {
            let updates = tokio::select! {
                ev = events.recv() => match ev {
                    Some(crate::sfu::shell::MediaEvent {
                        room, event: crate::sfu::room::RoomEvent::Recorded(done), ..
                    }) => {
                        // Filing a long recording takes a while: not in this loop.
                        tokio::spawn(file_recording(state.clone(), room, done));
                        continue;
                    }
                    Some(ev) => tracker.apply(&ev.room, &ev.event, ev.at),
                    None => break,
                },
                _ = tick.tick() => tracker.flush(crate::time::now_ms()),
                _ = state.shutdown.cancelled() => break,
            };
            for u in updates {
                let peer = match &u {
                    attendance::Update::FirstMedia { peer, .. }
                    | attendance::Update::Watched { peer, .. }
                    | attendance::Update::Left { peer, .. } => *peer,
                };
                let key = attendance::peer_key(&instance, peer);
                if let Err(e) = store::attendance_update(&state.db, &key, &u).await {
                    tracing::warn!(error = %e, "attendance not saved");
                }
            }
        }
        // Nobody stays connected to a plane that stops: what they watched so far stands.
        for u in tracker.flush(crate::time::now_ms()) {
            if let attendance::Update::Watched { peer, .. } = &u {
                let key = attendance::peer_key(&instance, *peer);
                let _ = store::attendance_update(&state.db, &key, &u).await;
            }
        }
        let _ = store::attendance_close_all(&state.db, crate::time::now_ms()).await;
    });
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceQuery {
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /api/broadcasts/{id}/attendance[?format=csv]`: who watched, from which site, when and
/// for how long — per person (connections summed), per site, and each connection; for the
/// people of the session's own site (its training office).
pub async fn attendance_report(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<AttendanceQuery>,
) -> Result<Response, ApiError> {
    let b = find(&ctx, &id).await?;
    let permit: Permit<BroadcastAttendance> =
        ctx.permit(Target::site(&b.site, "broadcast", Some(b.id.clone()))).await?;
    let rows = store::attendance(&ctx.state.db, &permit).await?;
    let directory: Permit<PeopleDirectory> = ctx.permit(Target::network()).await?;
    let mut ids: Vec<crate::network::UserId> =
        rows.iter().filter_map(|r| r.user.parse().ok()).collect();
    ids.sort();
    ids.dedup();
    let names: HashMap<String, String> =
        crate::network::store::people(&ctx.state.db, &directory, &ids)
            .await?
            .into_iter()
            .map(|p| (p.id.to_string(), p.display_name))
            .collect();
    let people = per_person(&rows);
    let minutes = |ms: i64| (ms as f64 / 60_000.0 * 10.0).round() / 10.0;
    let time = |ms: Option<i64>| ms.map(rfc3339);
    if q.format.as_deref() == Some("csv") {
        let mut out = String::from("user,name,site,role,joined_at,left_at,minutes_watched\r\n");
        for p in &people {
            let name = names.get(&p.user).cloned().unwrap_or_default();
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\r\n",
                crate::audit::csv_field(&p.user),
                crate::audit::csv_field(&name),
                crate::audit::csv_field(&p.site),
                p.role,
                rfc3339(p.joined_at),
                p.left_at.map(rfc3339).unwrap_or_default(),
                minutes(p.watched_ms)
            ));
        }
        let mut r = out.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        r.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"attendance.csv\""),
        );
        return Ok(r);
    }
    let mut sites: Vec<(String, usize, i64)> = vec![];
    for p in people.iter().filter(|p| p.role == "viewer") {
        match sites.iter_mut().find(|s| s.0 == p.site) {
            Some(s) => {
                s.1 += 1;
                s.2 += p.watched_ms;
            }
            None => sites.push((p.site.clone(), 1, p.watched_ms)),
        }
    }
    sites.sort();
    Ok(Json(json!({
        "broadcast": b.id,
        "title": b.title,
        "starts_at": rfc3339(b.starts_at),
        "people": people.iter().map(|p| json!({
            "user": p.user,
            "name": names.get(&p.user),
            "site": p.site,
            "role": p.role,
            "joined_at": rfc3339(p.joined_at),
            "left_at": time(p.left_at),
            "first_media_at": time(p.first_media_at),
            "watched_seconds": p.watched_ms / 1000,
            "minutes": minutes(p.watched_ms),
            "connections": p.connections,
        })).collect::<Vec<_>>(),
        "sites": sites.iter().map(|(site, n, ms)| json!({
            "site": site, "people": n, "minutes": minutes(*ms),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// One person's attendance: their connections summed.
struct Person {
    user: String,
    site: String,
    role: String,
    joined_at: i64,
    left_at: Option<i64>,
    first_media_at: Option<i64>,
    watched_ms: i64,
    connections: usize,
}

fn per_person(rows: &[store::Attended]) -> Vec<Person> {
    let mut out: Vec<Person> = vec![];
    for r in rows {
        match out.iter_mut().find(|p| p.user == r.user && p.role == r.role) {
            Some(p) => {
                p.joined_at = p.joined_at.min(r.joined_at);
                // Still connected on one of them: not left.
                p.left_at = match (p.left_at, r.left_at) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                p.first_media_at = match (p.first_media_at, r.first_media_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                p.watched_ms += r.watched_ms;
                p.connections += 1;
            }
            None => out.push(Person {
                user: r.user.clone(),
                site: r.site.clone(),
                role: r.role.clone(),
                joined_at: r.joined_at,
                left_at: r.left_at,
                first_media_at: r.first_media_at,
                watched_ms: r.watched_ms,
                connections: 1,
            }),
        }
    }
    out
}

/// Files a finished recording: its bytes into the object store
/// (`recordings/{broadcast}/{id}.webm`), its row and audit event, and the local file is
/// removed. A recording that cannot be filed stays on local disk, said in the log.
async fn file_recording(
    state: crate::state::AppState,
    broadcast: String,
    done: crate::sfu::record::Recorded,
) {
    let id = crate::ids::random_id(9).replace(['-', '_'], "x");
    let key = format!("recordings/{broadcast}/{id}.webm");
    let filed = async {
        let file = tokio::fs::File::open(&done.path).await?;
        let chunks = Box::pin(futures::stream::try_unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            let n = f.read(&mut buf).await?;
            buf.truncate(n);
            Ok((n > 0).then(|| (bytes::Bytes::from(buf), f)))
        }));
        state.objects.put_stream(&key, chunks).await.map_err(std::io::Error::other)?;
        let now = crate::time::now_ms();
        let site = store::load(&state.db, &broadcast)
            .await
            .map_err(std::io::Error::other)?
            .map(|b| b.site.to_string());
        let r = store::Recording {
            id: id.clone(),
            broadcast_id: broadcast.clone(),
            object_key: key.clone(),
            bytes: done.bytes as i64,
            duration_ms: done.duration_ms,
            video_frames: done.video_frames as i64,
            created_at: now,
        };
        let event = NewEvent {
            at: now,
            actor: Some(crate::auth::console::OPERATOR.to_string()),
            actor_site: None,
            site,
            action: "broadcast.record",
            resource_kind: "broadcast",
            resource_id: Some(broadcast.clone()),
            outcome: Outcome::Success,
            client_addr: None,
            detail: Some(format!("recording {id}, {} s", done.duration_ms / 1000)),
        };
        store::add_recording(&state.db, &r, &event).await.map_err(std::io::Error::other)?;
        std::io::Result::Ok(())
    };
    match filed.await {
        Ok(()) => {
            let _ = tokio::fs::remove_file(&done.path).await;
            tracing::info!(%broadcast, recording = %id, bytes = done.bytes, "recording filed");
        }
        Err(e) => tracing::warn!(
            error = %e,
            path = %done.path.display(),
            "a recording could not be filed; it stays on local disk"
        ),
    }
}

/// `GET /api/broadcasts/{id}/recordings`: the session's recordings (its site's and audience's
/// people).
pub async fn recordings(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, permit) = readable(&ctx, &id).await?;
    let list = store::recordings(&ctx.state.db, &permit).await?;
    let out: Vec<Value> = list.iter().map(recording_view).collect();
    Ok(Json(json!({ "recordings": out })))
}

pub(super) fn recording_view(r: &store::Recording) -> Value {
    json!({
        "id": r.id,
        "duration_seconds": r.duration_ms as f64 / 1000.0,
        "bytes": r.bytes,
        "created_at": rfc3339(r.created_at),
        "url": format!("/api/broadcasts/{}/recordings/{}", r.broadcast_id, r.id),
    })
}

/// A `Range: bytes=…` header against a body of `len` bytes: the one range asked for, or
/// `Err(())` when it cannot be satisfied (several ranges are answered whole).
fn byte_range(h: Option<&str>, len: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            len.saturating_sub(n)..len
        }
        (a, "") => a.parse::<u64>().map_err(|_| ())?..len,
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
            if b < a {
                return Err(());
            }
            a..(b + 1).min(len)
        }
    };
    if range.start >= len || range.is_empty() {
        return Err(());
    }
    Ok(Some(range))
}

/// `GET /api/broadcasts/{id}/recordings/{rec}`: the WebM, with ranges (players seek with them).
pub async fn recording(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams((id, rec)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, permit) = readable(&ctx, &id).await?;
    let list = store::recordings(&ctx.state.db, &permit).await?;
    let r =
        list.into_iter().find(|r| r.id == rec).ok_or(ApiError::NotFound { what: "recording" })?;
    ranged(&ctx, &headers, &r.object_key, r.bytes as u64, "video/webm").await
}

/// An object of `len` bytes as a response, whole or the range asked for (players and PDF
/// viewers seek with ranges), with its media type.
pub(super) async fn ranged(
    ctx: &RequestCtx,
    headers: &HeaderMap,
    key: &str,
    len: u64,
    media_type: &'static str,
) -> Result<Response, ApiError> {
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match byte_range(asked, len) {
        Ok(Some(range)) => (StatusCode::PARTIAL_CONTENT, range),
        Ok(None) => (StatusCode::OK, 0..len),
        Err(()) => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let body = ctx.state.objects.get_range(key, range.clone()).await.map_err(ApiError::internal)?;
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{len}", range.start, range.end - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_as_players_ask_for_them() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-"), 100), Ok(Some(0..100)));
        assert_eq!(byte_range(Some("bytes=10-19"), 100), Ok(Some(10..20)));
        assert_eq!(byte_range(Some("bytes=90-200"), 100), Ok(Some(90..100)));
        assert_eq!(byte_range(Some("bytes=-30"), 100), Ok(Some(70..100)));
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(byte_range(Some("bytes=5-2"), 100), Err(()));
        assert_eq!(byte_range(Some("items=1-2"), 100), Ok(None));
    }
}
