//! Network administration: sites, users, devices, tokens, and the audit trail.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, Filter, Outcome};
use crate::auth::policy::*;
use crate::auth::{RequestCtx, existing_site, password, tokens};
use crate::error::{ApiError, JsonBody, PathParams, QueryParams};
use crate::network::store;
use crate::network::{NewDevice, NewSite, NewUser, SiteId, UserId, UserPatch};

// ---- sites ----

pub async fn list_sites(ctx: RequestCtx) -> Result<Json<serde_json::Value>, ApiError> {
    let permit = ctx.permit::<SiteList>(Target::network()).await?;
    let sites = store::list_sites(&ctx.state.db, &permit).await?;
    Ok(Json(json!({ "sites": sites })))
}

/// `GET /api/people?ids=a,b`: names, sites and roles of the given people, for anyone signed
/// in (pages show people by name, not by id).
pub async fn people(
    ctx: RequestCtx,
    crate::error::QueryParams(q): crate::error::QueryParams<PeopleQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let permit = ctx.permit::<crate::auth::policy::PeopleDirectory>(Target::network()).await?;
    let ids: Vec<crate::network::UserId> =
        q.ids.split(',').filter_map(|i| i.trim().parse().ok()).collect();
    let people = store::people(&ctx.state.db, &permit, &ids).await?;
    Ok(Json(json!({ "people": people })))
}

#[derive(serde::Deserialize)]
pub struct PeopleQuery {
    #[serde(default)]
    ids: String,
}

pub async fn get_site(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
) -> Result<Json<crate::network::Site>, ApiError> {
    let site = existing_site(&ctx.state, &site).await?;
    let permit =
        ctx.permit::<SiteRead>(Target::site(&site, "site", Some(site.to_string()))).await?;
    Ok(Json(store::get_site(&ctx.state.db, &permit).await?))
}

pub async fn create_site(
    ctx: RequestCtx,
    JsonBody(new): JsonBody<NewSite>,
) -> Result<(StatusCode, Json<crate::network::Site>), ApiError> {
    if let Some(p) = &new.parent {
        existing_site(&ctx.state, p.as_str()).await?;
    }
    let target = Target {
        site: new.parent.clone(),
        subject: None,
        kind: "site",
        id: Some(new.id.to_string()),
        shared_with: vec![],
        parties: vec![],
    };
    let permit = ctx.permit::<SiteCreate>(target).await?;
    let site = store::create_site(&ctx.state.db, &permit, new, ctx.now()).await?;
    Ok((StatusCode::CREATED, Json(site)))
}

// ---- users ----

pub async fn list_users(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let site = existing_site(&ctx.state, &site).await?;
    let permit = ctx.permit::<UserList>(Target::site(&site, "user", None)).await?;
    let users = store::list_users(&ctx.state.db, &permit).await?;
    Ok(Json(json!({ "users": users })))
}

async fn user_target(ctx: &RequestCtx, user: &str) -> Result<Target, ApiError> {
    let id: UserId = user.parse().map_err(|_| ApiError::NotFound { what: "user" })?;
    let site = store::site_of_user(&ctx.state.db, &id)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    Ok(Target::of_user(&site, &id, "user", Some(id.to_string())))
}

pub async fn get_user(
    ctx: RequestCtx,
    PathParams(user): PathParams<String>,
) -> Result<Json<crate::network::User>, ApiError> {
    let permit = ctx.permit::<UserRead>(user_target(&ctx, &user).await?).await?;
    Ok(Json(store::get_user(&ctx.state.db, &permit).await?))
}

async fn hash_new_password(
    ctx: &RequestCtx,
    pw: Option<String>,
) -> Result<Option<String>, ApiError> {
    match pw {
        None => Ok(None),
        Some(pw) => {
            password::check_rules(&pw)
                .map_err(|why| ApiError::bad_request("weak_password", why))?;
            let cost = password::Cost::from(&ctx.state.settings.auth);
            Ok(Some(password::hash(pw, cost).await.map_err(ApiError::internal)?))
        }
    }
}

pub async fn create_user(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
    JsonBody(mut new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<crate::network::User>), ApiError> {
    let site = existing_site(&ctx.state, &site).await?;
    let permit =
        ctx.permit::<UserCreate>(Target::site(&site, "user", Some(new.id.to_string()))).await?;
    let hash = hash_new_password(&ctx, new.password.take()).await?;
    let user = store::create_user(&ctx.state.db, &permit, new, hash, ctx.now()).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn update_user(
    ctx: RequestCtx,
    PathParams(user): PathParams<String>,
    JsonBody(mut patch): JsonBody<UserPatch>,
) -> Result<Json<crate::network::User>, ApiError> {
    let target = user_target(&ctx, &user).await?;
    let permit = ctx.permit::<UserUpdate>(target).await?;
    let hash = hash_new_password(&ctx, patch.password.take()).await?;
    let disabled = patch.disabled == Some(true);
    let updated = store::update_user(&ctx.state.db, &permit, patch, hash).await?;
    if disabled {
        // A disabled account's live sockets (calls, inbox) end now, not at their next reconnect.
        let who = crate::signal::hub::Revoke::User(updated.id.to_string());
        ctx.state.hub.revoke(who).await;
    }
    Ok(Json(updated))
}

// ---- devices ----

pub async fn list_devices(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let site = existing_site(&ctx.state, &site).await?;
    let permit = ctx.permit::<DeviceList>(Target::site(&site, "device", None)).await?;
    let devices = store::list_devices(&ctx.state.db, &permit).await?;
    Ok(Json(json!({ "devices": devices })))
}

pub async fn create_device(
    ctx: RequestCtx,
    PathParams(site): PathParams<String>,
    JsonBody(new): JsonBody<NewDevice>,
) -> Result<(StatusCode, Json<crate::network::Device>), ApiError> {
    let site = existing_site(&ctx.state, &site).await?;
    let permit = ctx.permit::<DeviceCreate>(Target::site(&site, "device", None)).await?;
    let device = store::create_device(&ctx.state.db, &permit, new, ctx.now()).await?;
    Ok((StatusCode::CREATED, Json(device)))
}

pub async fn delete_device(
    ctx: RequestCtx,
    PathParams(device): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let site = store::site_of_device(&ctx.state.db, &device)
        .await?
        .ok_or(ApiError::NotFound { what: "device" })?;
    let permit = ctx.permit::<DeviceDelete>(Target::site(&site, "device", Some(device))).await?;
    store::delete_device(&ctx.state.db, &permit).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- device tokens ----

/// The site of an existing device, or 404.
async fn device_site(ctx: &RequestCtx, device: &str) -> Result<SiteId, ApiError> {
    store::site_of_device(&ctx.state.db, device).await?.ok_or(ApiError::NotFound { what: "device" })
}

/// `GET /api/devices/{device}/tokens`: the device's tokens (never their secrets).
pub async fn list_device_tokens(
    ctx: RequestCtx,
    PathParams(device): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let site = device_site(&ctx, &device).await?;
    let permit = ctx.permit::<DeviceList>(Target::site(&site, "device", Some(device))).await?;
    Ok(Json(json!({ "tokens": tokens::list_for_device(&ctx.state.db, &permit).await? })))
}

/// `POST /api/devices/{device}/tokens`: a token for a device of the admin's site, shown once.
pub async fn create_device_token(
    ctx: RequestCtx,
    PathParams(device): PathParams<String>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let site = device_site(&ctx, &device).await?;
    let permit =
        ctx.permit::<DeviceTokenCreate>(Target::site(&site, "device", Some(device))).await?;
    let now = ctx.now();
    if body.expires_in_days == Some(0) {
        return Err(ApiError::bad_request("invalid_value", "expires_in_days must be at least 1"));
    }
    let expires = body.expires_in_days.map(|d| now + d as i64 * 86_400_000);
    let (token, secret) =
        tokens::create_for_device(&ctx.state.db, &permit, &body.label, expires, None, now).await?;
    ctx.audit(
        "device.token.created",
        "token",
        Some(token.id.clone()),
        Some(site.to_string()),
        Outcome::Success,
        Some(format!("for device {}", token.device)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "secret": secret }))))
}

/// `DELETE /api/device-tokens/{token}`: revokes a device's token.
pub async fn revoke_device_token(
    ctx: RequestCtx,
    PathParams(token): PathParams<String>,
) -> Result<Json<tokens::DeviceToken>, ApiError> {
    let device = tokens::device_of_token(&ctx.state.db, &token)
        .await?
        .ok_or(ApiError::NotFound { what: "token" })?;
    let site = device_site(&ctx, &device).await?;
    let permit = ctx.permit::<DeviceTokenRevoke>(Target::site(&site, "token", Some(token))).await?;
    Ok(Json(tokens::revoke_device_token(&ctx.state.db, &permit, ctx.now()).await?))
}

// ---- tokens ----

pub async fn list_tokens(
    ctx: RequestCtx,
    PathParams(user): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut target = user_target(&ctx, &user).await?;
    target.kind = "token";
    let permit = ctx.permit::<TokenList>(target).await?;
    Ok(Json(json!({ "tokens": tokens::list(&ctx.state.db, &permit).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    label: String,
    /// Days until the token stops working; absent: never.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

pub async fn create_token(
    ctx: RequestCtx,
    PathParams(user): PathParams<String>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut target = user_target(&ctx, &user).await?;
    target.kind = "token";
    let permit = ctx.permit::<TokenCreate>(target).await?;
    let now = ctx.now();
    let expires = body.expires_in_days.map(|d| now + d as i64 * 86_400_000);
    if body.expires_in_days == Some(0) {
        return Err(ApiError::bad_request("invalid_value", "expires_in_days must be at least 1"));
    }
    let (token, secret) = tokens::create(&ctx.state.db, &permit, &body.label, expires, now).await?;
    ctx.audit(
        "token.created",
        "token",
        Some(token.id.clone()),
        permit.site().map(|s| s.to_string()),
        Outcome::Success,
        Some(format!("for {}", token.user)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "secret": secret }))))
}

pub async fn revoke_token(
    ctx: RequestCtx,
    PathParams(token): PathParams<String>,
) -> Result<Json<tokens::ApiToken>, ApiError> {
    let owner =
        tokens::owner(&ctx.state.db, &token).await?.ok_or(ApiError::NotFound { what: "token" })?;
    let site = store::site_of_user(&ctx.state.db, &owner)
        .await?
        .ok_or(ApiError::NotFound { what: "token" })?;
    let permit =
        ctx.permit::<TokenRevoke>(Target::of_user(&site, &owner, "token", Some(token))).await?;
    let t = tokens::revoke(&ctx.state.db, &permit, ctx.now()).await?;
    ctx.state.hub.revoke(crate::signal::hub::Revoke::Credential(t.id.clone())).await;
    Ok(Json(t))
}

// ---- audit ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    user: Option<String>,
    site: Option<String>,
    resource: Option<String>,
    action: Option<String>,
    outcome: Option<Outcome>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn audit_search(ctx: &RequestCtx, p: AuditParams) -> Result<Vec<audit::Event>, ApiError> {
    let time = |key: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                crate::time::parse_rfc3339(s).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("`{key}` must be RFC 3339 or YYYY-MM-DD"),
                    )
                })
            })
            .transpose()
    };
    let site: Option<SiteId> = match p.site.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(existing_site(&ctx.state, s).await?),
        None => None,
    };
    let scope_site = site.clone().unwrap_or_else(|| ctx.actor.user.site.clone());
    let permit = ctx.permit::<AuditRead>(Target::site(&scope_site, "audit", None)).await?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = Filter {
        user: nonempty(p.user),
        site,
        resource: nonempty(p.resource),
        action: nonempty(p.action),
        outcome: p.outcome,
        from: time("from", &p.from)?,
        to: time("to", &p.to)?,
        before_id: p.before,
        limit: p.limit.unwrap_or(200),
    };
    Ok(audit::search(&ctx.state.db, &permit, &filter).await?)
}

pub async fn audit_json(
    ctx: RequestCtx,
    QueryParams(mut p): QueryParams<AuditParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = p.limit.unwrap_or(200).clamp(1, audit::MAX_PAGE);
    p.limit = Some(limit);
    let events = audit_search(&ctx, p).await?;
    let next_before = (events.len() as i64 == limit).then(|| events.last().map(|e| e.id)).flatten();
    Ok(Json(json!({ "events": events, "next_before": next_before })))
}

pub async fn audit_csv(
    ctx: RequestCtx,
    QueryParams(mut p): QueryParams<AuditParams>,
) -> Result<Response, ApiError> {
    p.limit = Some(p.limit.unwrap_or(audit::MAX_EXPORT));
    let events = audit_search(&ctx, p).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"ferry-audit.csv\""),
        ],
        audit::to_csv(&events),
    )
        .into_response())
}
