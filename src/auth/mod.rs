//! Who is asking: password login, browser sessions, bearer tokens, throttling and lockout —
//! and `RequestCtx`, the extractor through which every protected handler obtains its actor and
//! its permits (and so writes its audit events).

pub mod console;
pub mod logins;
pub mod password;
pub mod policy;
pub mod sessions;
pub mod throttle;
pub mod tokens;

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};

use crate::audit::{self, NewEvent, Outcome};
use crate::error::ApiError;
use crate::network::store::{is_root_site, site_and_descendants, user_by_id};
use crate::network::{Role, SiteId, User, UserId};
use crate::state::{AppState, ClientAddr};
use crate::storage::DbError;
use crate::time::now_ms;
use policy::{Action, ActorView, Permit, Target};

/// How the actor proved who they are.
#[derive(Debug, Clone)]
pub enum AuthVia {
    Session {
        id_hash: String,
        csrf: String,
    },
    Token {
        id: String,
    },
    /// A registered device's token: `user` is then the device seen as an actor of its site
    /// with no role (its id is `device`; the audit trail names it `device:<id>`).
    DeviceToken {
        id: String,
        device: String,
    },
}

/// The authenticated person (or device) behind a request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub view: ActorView,
    pub via: AuthVia,
}

/// Who owns something a sender creates (a resumable upload): a person or a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    User(&'a str),
    Device(&'a str),
}

impl Actor {
    /// The device id when a device acts with its token.
    pub fn device(&self) -> Option<&str> {
        match &self.via {
            AuthVia::DeviceToken { device, .. } => Some(device),
            _ => None,
        }
    }
    /// How the actor is named in the audit trail and in what it creates: a person's id, or
    /// `device:<id>`.
    pub fn name(&self) -> String {
        match self.device() {
            Some(d) => format!("device:{d}"),
            None => self.user.id.to_string(),
        }
    }
    pub fn owner(&self) -> Owner<'_> {
        match self.device() {
            Some(d) => Owner::Device(d),
            None => Owner::User(self.user.id.as_str()),
        }
    }
}

/// The routes a device token may call: sending for its site (ECGs, its own resumable uploads,
/// STOW-RS).
fn device_route(method: &Method, path: &str) -> bool {
    match *method {
        Method::POST => {
            path == "/api/ecgs"
                || path == "/api/uploads"
                || path == "/dicomweb/studies"
                || path.starts_with("/dicomweb/studies/")
        }
        Method::GET | Method::HEAD | Method::PATCH | Method::DELETE => {
            path.starts_with("/api/uploads/")
        }
        _ => false,
    }
}

/// An authenticated request: the actor, the client's address and the application state.
/// Handlers for protected data take this and obtain permits with [`RequestCtx::permit`].
pub struct RequestCtx {
    pub state: AppState,
    pub actor: Actor,
    pub client: Option<IpAddr>,
}

fn client_of(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<ClientAddr>>().map(|c| c.0.0.ip())
}

fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for RequestCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client_of(parts);
        let now = now_ms();
        let db = &state.db;
        let auth_header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let (user_id, via) = if let Some(h) = auth_header {
            let Some(secret) = h.strip_prefix("Bearer ").map(str::trim) else {
                return Err(ApiError::unauthenticated("use `Authorization: Bearer <token>`"));
            };
            match tokens::authenticate(db, secret, now).await? {
                Ok((id, tokens::Holder::User(user))) => (user, AuthVia::Token { id }),
                Ok((id, tokens::Holder::Device(device))) => {
                    return device_ctx(state, parts, client, id, device).await;
                }
                Err((why, holder)) => {
                    let actor = holder.map(|h| match h {
                        tokens::Holder::User(u) => u,
                        tokens::Holder::Device(d) => format!("device:{d}"),
                    });
                    audit::record(
                        db,
                        &NewEvent {
                            at: now,
                            actor,
                            actor_site: None,
                            site: None,
                            action: "auth.token",
                            resource_kind: "token",
                            resource_id: None,
                            outcome: Outcome::Failure,
                            client_addr: client.map(|c| c.to_string()),
                            detail: Some(why.as_str().into()),
                        },
                    )
                    .await?;
                    return Err(ApiError::Unauthenticated {
                        code: match why {
                            tokens::Refusal::Unknown => "token_invalid",
                            tokens::Refusal::Expired => "token_expired",
                            tokens::Refusal::Revoked => "token_revoked",
                        },
                        detail: format!("{}; ask an administrator for a new one", why.as_str()),
                    });
                }
            }
        } else if let Some(secret) = cookie_value(parts, sessions::COOKIE) {
            let a = &state.settings.auth;
            let idle = (a.session_idle_minutes * 60_000) as i64;
            let max = (a.session_max_hours * 3_600_000) as i64;
            let Some(s) = sessions::lookup(db, secret, now, idle, max).await? else {
                return Err(ApiError::Unauthenticated {
                    code: "session_expired",
                    detail: "your session has ended; please sign in again".into(),
                });
            };
            // Cookie-authenticated writes must echo the session's CSRF token.
            if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
                let sent =
                    parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
                if !crate::ids::same_secret(sent, &s.csrf) {
                    return Err(ApiError::Csrf);
                }
            }
            (s.user, AuthVia::Session { id_hash: s.id_hash, csrf: s.csrf })
        } else {
            return Err(ApiError::unauthenticated("sign in, or send a bearer token"));
        };

        let user = user_by_id(db, &user_id).await?.filter(|u| !u.disabled).ok_or_else(|| {
            ApiError::unauthenticated("this account is disabled or no longer exists")
        })?;
        let view = actor_view(state, &user).await?;
        Ok(RequestCtx { state: state.clone(), actor: Actor { user, view, via }, client })
    }
}

/// A request made with a device's token: allowed on the sending routes only (anything else is
/// refused and recorded), acting for the device's site with no role.
async fn device_ctx(
    state: &AppState,
    parts: &Parts,
    client: Option<IpAddr>,
    token: String,
    device: String,
) -> Result<RequestCtx, ApiError> {
    let db = &state.db;
    let d = crate::network::store::device_by_id(db, &device)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("this device is no longer registered"))?;
    // The path as sent (nested routers see it without their prefix).
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path().to_string(), |u| u.0.path().to_string());
    if !device_route(&parts.method, &path) {
        audit::record(
            db,
            &NewEvent {
                at: now_ms(),
                actor: Some(format!("device:{device}")),
                actor_site: Some(d.site.to_string()),
                site: Some(d.site.to_string()),
                action: "auth.device",
                resource_kind: "route",
                resource_id: None,
                outcome: Outcome::Denied,
                client_addr: client.map(|c| c.to_string()),
                detail: Some(format!("{} {path}", parts.method)),
            },
        )
        .await?;
        return Err(ApiError::Forbidden {
            detail: "a device token may only send ECGs and images for its site".into(),
        });
    }
    let user = User {
        id: "device".parse().expect("a valid id"),
        site: d.site.clone(),
        display_name: d.name.clone(),
        roles: vec![],
        specialties: vec![],
        disabled: false,
        has_password: false,
        created_at: d.created_at.clone(),
    };
    let view = ActorView {
        user: user.id.clone(),
        site: d.site.clone(),
        roles: vec![],
        admin_scope: Default::default(),
        at_root_site: false,
        device: true,
        senior: false,
    };
    let via = AuthVia::DeviceToken { id: token, device };
    Ok(RequestCtx { state: state.clone(), actor: Actor { user, view, via }, client })
}

/// What the policy needs to know about a user.
pub async fn actor_view(state: &AppState, user: &User) -> Result<ActorView, DbError> {
    let db = &state.db;
    let admin = user.has_role(Role::Admin);
    Ok(ActorView {
        user: user.id.clone(),
        site: user.site.clone(),
        roles: user.roles.clone(),
        admin_scope: if admin {
            site_and_descendants(db, &user.site).await?
        } else {
            Default::default()
        },
        at_root_site: is_root_site(db, &user.site).await?,
        device: false,
        senior: user.specialties.iter().any(|s| s.as_str() == "senior"),
    })
}

impl RequestCtx {
    /// Asks the policy for a permit to do `A` on `target`, and records the decision in the
    /// audit trail (refusals always; allowed attempts for audited actions). A refusal is a 403.
    pub async fn permit<A: Action>(&self, target: Target) -> Result<Permit<A>, ApiError> {
        let site = target.site.as_ref().map(|s| s.to_string());
        let id = target.id.clone();
        let kind = target.kind;
        match policy::issue::<A>(&self.actor.view, target) {
            Ok(p) => {
                if A::AUDIT_ALLOWED {
                    self.audit(A::NAME, kind, id, site, Outcome::Allowed, None).await?;
                }
                Ok(p)
            }
            Err(why) => {
                self.audit(A::NAME, kind, id, site, Outcome::Denied, Some(why.to_string())).await?;
                tracing::info!(action = A::NAME, user = %self.actor.name(), "access denied");
                if A::HIDDEN {
                    // Patient data of other sites: not even its existence is confirmed.
                    return Err(ApiError::NotFound { what: kind });
                }
                Err(ApiError::Forbidden { detail: format!("{}: {why}", A::NAME) })
            }
        }
    }

    /// An event by this actor, now, for a store to record with the change it describes.
    pub fn event(
        &self,
        action: &'static str,
        resource_kind: &'static str,
        resource_id: Option<String>,
        site: Option<String>,
        outcome: Outcome,
        detail: Option<String>,
    ) -> NewEvent {
        NewEvent {
            at: now_ms(),
            actor: Some(self.actor.name()),
            actor_site: Some(self.actor.user.site.to_string()),
            site,
            action,
            resource_kind,
            resource_id,
            outcome,
            client_addr: self.client.map(|c| c.to_string()),
            detail,
        }
    }

    /// Records an event by this actor.
    pub async fn audit(
        &self,
        action: &'static str,
        resource_kind: &'static str,
        resource_id: Option<String>,
        site: Option<String>,
        outcome: Outcome,
        detail: Option<String>,
    ) -> Result<(), ApiError> {
        let e = self.event(action, resource_kind, resource_id, site, outcome, detail);
        audit::record(&self.state.db, &e).await?;
        Ok(())
    }

    /// Records that the actor read each listed thing of `kind` — (its site, its id) — with the
    /// allowed `action` (a list that shows patient data is a read of everything in it), in one
    /// transaction.
    pub async fn record_reads(
        &self,
        action: &'static str,
        kind: &'static str,
        items: impl IntoIterator<Item = (String, String)>,
        detail: &str,
    ) -> Result<(), ApiError> {
        let at = now_ms();
        let events: Vec<NewEvent> = items
            .into_iter()
            .map(|(site, id)| NewEvent {
                at,
                actor: Some(self.actor.name()),
                actor_site: Some(self.actor.user.site.to_string()),
                site: Some(site),
                action,
                resource_kind: kind,
                resource_id: Some(id),
                outcome: Outcome::Allowed,
                client_addr: self.client.map(|c| c.to_string()),
                detail: Some(detail.to_string()),
            })
            .collect();
        audit::record_all(&self.state.db, &events).await?;
        Ok(())
    }

    pub fn now(&self) -> i64 {
        now_ms()
    }
}

/// A successful login.
pub struct LoginOk {
    pub user: User,
    pub cookie_secret: String,
    pub csrf: String,
}

/// Password login: throttled per client address, locked per account after repeated failures,
/// audited either way. Unknown names and wrong passwords get the same answer and take the
/// same time. A name that does not exist is not recorded (people type passwords there).
pub async fn login(
    state: &AppState,
    username: &str,
    password: String,
    client: Option<IpAddr>,
) -> Result<LoginOk, ApiError> {
    let now = now_ms();
    let db = &state.db;
    let a = &state.settings.auth;
    let cost = password::Cost::from(a);
    let ev = |action: &'static str,
              actor: Option<String>,
              site: Option<String>,
              outcome,
              detail: &str| NewEvent {
        at: now,
        actor,
        actor_site: site.clone(),
        site,
        action,
        resource_kind: "session",
        resource_id: None,
        outcome,
        client_addr: client.map(|c| c.to_string()),
        detail: Some(detail.to_string()),
    };
    if let Some(ip) = client
        && let Err(retry) = state.throttle.check(ip, now)
    {
        audit::record(db, &ev("login", None, None, Outcome::Failure, "rate limited")).await?;
        return Err(ApiError::TooManyRequests {
            retry_after_secs: retry,
            detail: "too many login attempts from this address; wait a minute".into(),
        });
    }
    let id: Option<UserId> = username.trim().parse().ok();
    let record = match &id {
        Some(id) => logins::record(db, id).await?,
        None => None,
    };
    let name = id.as_ref().filter(|_| record.is_some()).map(|i| i.to_string());
    let site = record.as_ref().map(|r| r.site.clone());
    if let Some(r) = &record
        && let Some(until) = r.locked_until.filter(|u| *u > now)
    {
        audit::record(db, &ev("login", name, site, Outcome::Failure, "account locked")).await?;
        return Err(ApiError::Locked { retry_after_secs: ((until - now) / 1000).max(1) as u64 });
    }
    let ok = password::verify(record.as_ref().and_then(|r| r.hash.clone()), password, cost).await;
    let invalid = || ApiError::Unauthenticated {
        code: "invalid_credentials",
        detail: "wrong user name or password".into(),
    };
    let Some(record) = record else {
        audit::record(db, &ev("login", None, None, Outcome::Failure, "unknown user")).await?;
        return Err(invalid());
    };
    let id = id.expect("record implies id");
    if !ok {
        let failed = record.failed + 1;
        if failed >= a.max_failed_logins as i64 {
            let until = now + (a.lockout_minutes * 60_000) as i64;
            logins::lock(db, &id, until).await?;
            audit::record(
                db,
                &ev("login", name.clone(), site.clone(), Outcome::Failure, "wrong password"),
            )
            .await?;
            audit::record(
                db,
                &ev(
                    "login.lockout",
                    name,
                    site,
                    Outcome::Success,
                    "account locked after repeated failures",
                ),
            )
            .await?;
            tracing::warn!(user = %id, "account locked after repeated failed logins");
            return Err(ApiError::Locked { retry_after_secs: a.lockout_minutes * 60 });
        }
        logins::count_failure(db, &id, failed).await?;
        audit::record(db, &ev("login", name, site, Outcome::Failure, "wrong password")).await?;
        return Err(invalid());
    }
    if record.disabled {
        audit::record(db, &ev("login", name, site, Outcome::Failure, "account disabled")).await?;
        return Err(invalid());
    }
    logins::clear_failures(db, &id).await?;
    let (cookie_secret, csrf) = sessions::create(db, id.as_str(), now).await?;
    audit::record(db, &ev("login", name, site, Outcome::Success, "password")).await?;
    let user = user_by_id(db, id.as_str()).await?.ok_or(ApiError::NotFound { what: "user" })?;
    Ok(LoginOk { user, cookie_secret, csrf })
}

/// The site id of a parsed, existing site, or 404.
pub async fn existing_site(state: &AppState, id: &str) -> Result<SiteId, ApiError> {
    let site: SiteId = id.parse().map_err(|_| ApiError::NotFound { what: "site" })?;
    if !crate::network::store::site_exists(&state.db, &site).await? {
        return Err(ApiError::NotFound { what: "site" });
    }
    Ok(site)
}
