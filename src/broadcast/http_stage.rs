//! `/api/broadcasts/{id}/stage`: the session's trainer brings one person watching on stage
//! (`PUT`, `{"user": …}`), and brings them back (`DELETE`; they may step down themselves).
//! The person on stage publishes their camera and microphone over WHIP at `…/stage/whip`; the
//! room sends them to every viewer and to the trainer (`crate::sfu::room`). Each step is
//! audited, and the people in the session are told over their sockets ("stage").
//! Who is on stage lives with the media plane: a restart ends every connection, and the stage
//! with them.

use axum::Json;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{audit_session, bad, connect, find, readable, trainer_only};
use super::http_questions::{names, open, tell};
use super::{Broadcast, store};
use crate::audit::Outcome;
use crate::auth::RequestCtx;
use crate::error::{ApiError, JsonBody, PathParams};
use crate::network::UserId;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageBody {
    pub user: String,
}

/// Who is on stage, as the page shows it.
async fn stage_view(ctx: &RequestCtx, b: &Broadcast) -> Result<Json<Value>, ApiError> {
    let user = ctx.state.media.on_stage(&b.id);
    let name = match &user {
        Some(u) => match u.parse::<UserId>() {
            Ok(id) => names(ctx, vec![id]).await?.remove(u.as_str()),
            Err(_) => None,
        },
        None => None,
    };
    let connected = ctx.state.media.live(&b.id).stage.is_some();
    Ok(Json(json!({ "user": user, "name": name, "connected": connected })))
}

/// `GET /api/broadcasts/{id}/stage`: who is on stage, and whether their media is connected.
pub async fn get(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    stage_view(&ctx, &b).await
}

/// `PUT /api/broadcasts/{id}/stage`: the trainer brings someone connected to the session on
/// stage, in place of whoever was there.
pub async fn invite(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<StageBody>,
) -> Result<Json<Value>, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    trainer_only(&ctx, &b, "broadcast.stage", "only the session's trainer brings people on stage")
        .await?;
    open(&b)?;
    let user: UserId =
        body.user.parse().map_err(|_| bad(format!("user: {} is not a user id", body.user)))?;
    if user == b.trainer {
        return Err(bad("user: the trainer is on stage already"));
    }
    let watching = store::connected_people(&ctx.state.db, &b.id).await?;
    if !watching.iter().any(|u| u == user.as_str()) {
        return Err(ApiError::conflict(
            "not_watching",
            "only someone connected to the session can be brought on stage",
        ));
    }
    // The trail first: a stage the trail cannot record does not change.
    let detail = Some(format!("{user} on stage"));
    audit_session(&ctx, &b, "broadcast.stage", Outcome::Success, detail).await?;
    let replaced = ctx.state.media.invite_to_stage(&b.id, user.as_str());
    if let Some(r) = replaced.and_then(|r| r.parse::<UserId>().ok()) {
        tell(&ctx, &b, &r, "stage").await?;
    }
    tell(&ctx, &b, &user, "stage").await?;
    stage_view(&ctx, &b).await
}

/// `DELETE /api/broadcasts/{id}/stage`: the trainer brings the person on stage back (or they
/// step down): their stage connection closes.
pub async fn end(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (b, _) = readable(&ctx, &id).await?;
    let me = ctx.actor.user.id.as_str();
    let on = ctx.state.media.on_stage(&b.id);
    if on.as_deref() != Some(me) {
        trainer_only(
            &ctx,
            &b,
            "broadcast.stage",
            "only the trainer or the person on stage ends it",
        )
        .await?;
    }
    // Only if they are still the one on stage (the trainer may have brought someone else, or
    // a second request taken them off already): one change, one row in the trail.
    let Some(was) = on.filter(|u| ctx.state.media.take_stage_from(&b.id, u)) else {
        return stage_view(&ctx, &b).await;
    };
    let detail = Some(format!("{was} off stage"));
    if let Err(e) = audit_session(&ctx, &b, "broadcast.stage", Outcome::Success, detail).await {
        ctx.state.media.restore_stage(&b.id, &was);
        return Err(e);
    }
    ctx.state.media.end_stage_media(&b.id);
    if let Ok(u) = was.parse::<UserId>() {
        tell(&ctx, &b, &u, "stage").await?;
    }
    stage_view(&ctx, &b).await
}

/// `POST /api/broadcasts/{id}/stage/whip`: the person on stage publishes (WHIP).
pub async fn whip(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    body: String,
) -> Result<Response, ApiError> {
    let out = connect(&ctx, headers, id.clone(), body, crate::sfu::room::Role::Stage).await?;
    let b = find(&ctx, &id).await?;
    tell(&ctx, &b, &ctx.actor.user.id, "stage").await?;
    Ok(out)
}
