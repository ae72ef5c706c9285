//! Sign in, sign out, and "who am I".

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::audit::Outcome;
use crate::auth::policy::capabilities;
use crate::auth::{AuthVia, RequestCtx, sessions};
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, ClientAddr};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

fn cookie(state: &AppState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.settings.tls_enabled() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}",
        sessions::COOKIE
    ))
    .expect("cookie text is ASCII")
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    let ok = crate::auth::login(&state, &body.username, body.password, Some(peer.ip())).await?;
    let max_age = state.settings.auth.session_max_hours * 3600;
    let mut resp = Json(json!({
        "user": ok.user,
        "csrf_token": ok.csrf,
    }))
    .into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie(&state, &ok.cookie_secret, max_age));
    Ok(resp)
}

pub async fn logout(ctx: RequestCtx) -> Result<Response, ApiError> {
    if let AuthVia::Session { id_hash, .. } = &ctx.actor.via {
        sessions::end(&ctx.state.db, id_hash).await?;
        // The session's live sockets end with it.
        ctx.state.hub.revoke(crate::signal::hub::Revoke::Credential(id_hash.clone())).await;
        ctx.audit(
            "logout",
            "session",
            None,
            Some(ctx.actor.user.site.to_string()),
            Outcome::Success,
            None,
        )
        .await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie(&ctx.state, "", 0));
    Ok(resp)
}

pub async fn me(ctx: RequestCtx) -> Result<Json<serde_json::Value>, ApiError> {
    let site = own_site(&ctx).await?;
    let csrf = match &ctx.actor.via {
        AuthVia::Session { csrf, .. } => Some(csrf.clone()),
        AuthVia::Token { .. } | AuthVia::DeviceToken { .. } => None,
    };
    Ok(Json(json!({
        "user": ctx.actor.user,
        "site": site,
        "csrf_token": csrf,
        "capabilities": capabilities(&ctx.actor.view),
    })))
}

async fn own_site(ctx: &RequestCtx) -> Result<crate::network::Site, ApiError> {
    let permit = ctx
        .permit::<crate::auth::policy::SiteRead>(crate::auth::policy::Target::site(
            &ctx.actor.user.site,
            "site",
            Some(ctx.actor.user.site.to_string()),
        ))
        .await?;
    Ok(crate::network::store::get_site(&ctx.state.db, &permit).await?)
}
