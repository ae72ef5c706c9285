//! Actions by the operator at the server's console (the `ferry` subcommands and `--demo`):
//! whoever can run the binary against the database holds every power, so these use operator
//! permits — and still write audit events, with actor `operator`.

use crate::audit;
use crate::auth::console;
use crate::auth::policy::{self, Action, Permit, Target};
use crate::auth::{password, tokens};
use crate::network::store::{self, NetworkError};
use crate::network::{Device, NewDevice, NewSite, NewUser, Site, SiteId, User, UserId};
use crate::state::Stores;
use crate::time::now_ms;

pub use crate::auth::console::OPERATOR;

async fn permit<A: Action>(state: &Stores, target: Target) -> anyhow::Result<Permit<A>> {
    Ok(console::operator_permit(&state.db, target).await?)
}

pub async fn add_site(state: &Stores, new: NewSite) -> anyhow::Result<Site> {
    let target = Target {
        site: new.parent.clone(),
        subject: None,
        kind: "site",
        id: Some(new.id.to_string()),
        shared_with: vec![],
        parties: vec![],
    };
    let p = permit::<policy::SiteCreate>(state, target).await?;
    Ok(store::create_site(&state.db, &p, new, now_ms()).await?)
}

pub async fn list_sites(state: &Stores) -> anyhow::Result<Vec<Site>> {
    let p = console::site_list_permit();
    Ok(store::list_sites(&state.db, &p).await?)
}

pub async fn add_user(state: &Stores, site: &SiteId, mut new: NewUser) -> anyhow::Result<User> {
    let hash = match new.password.take() {
        Some(pw) => {
            password::check_rules(&pw).map_err(anyhow::Error::msg)?;
            Some(password::hash(pw, password::Cost::from(&state.settings.auth)).await?)
        }
        None => None,
    };
    let p =
        permit::<policy::UserCreate>(state, Target::site(site, "user", Some(new.id.to_string())))
            .await?;
    Ok(store::create_user(&state.db, &p, new, hash, now_ms()).await?)
}

pub async fn list_users(state: &Stores, site: &SiteId) -> anyhow::Result<Vec<User>> {
    let p = permit::<policy::UserList>(state, Target::site(site, "user", None)).await?;
    Ok(store::list_users(&state.db, &p).await?)
}

pub async fn add_device(state: &Stores, site: &SiteId, new: NewDevice) -> anyhow::Result<Device> {
    let p = permit::<policy::DeviceCreate>(state, Target::site(site, "device", None)).await?;
    Ok(store::create_device(&state.db, &p, new, now_ms()).await?)
}

pub async fn list_devices(state: &Stores, site: &SiteId) -> anyhow::Result<Vec<Device>> {
    let p = permit::<policy::DeviceList>(state, Target::site(site, "device", None)).await?;
    Ok(store::list_devices(&state.db, &p).await?)
}

async fn user_target(state: &Stores, user: &UserId) -> anyhow::Result<Target> {
    let site = store::site_of_user(&state.db, user)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user `{user}`"))?;
    Ok(Target::of_user(&site, user, "token", None))
}

/// Creates a token; returns the record and the secret (shown once).
pub async fn create_token(
    state: &Stores,
    user: &UserId,
    label: &str,
    expires_in_days: Option<u32>,
) -> anyhow::Result<(tokens::ApiToken, String)> {
    let now = now_ms();
    anyhow::ensure!(expires_in_days != Some(0), "--expires-in-days must be at least 1");
    let p = permit::<policy::TokenCreate>(state, user_target(state, user).await?).await?;
    let expires = expires_in_days.map(|d| now + d as i64 * 86_400_000);
    Ok(tokens::create(&state.db, &p, label, expires, now).await?)
}

pub async fn list_tokens(state: &Stores, user: &UserId) -> anyhow::Result<Vec<tokens::ApiToken>> {
    let p = permit::<policy::TokenList>(state, user_target(state, user).await?).await?;
    Ok(tokens::list(&state.db, &p).await?)
}

pub async fn revoke_token(state: &Stores, token_id: &str) -> anyhow::Result<tokens::ApiToken> {
    let owner = tokens::owner(&state.db, token_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no token `{token_id}`"))?;
    let mut target = user_target(state, &owner).await?;
    target.id = Some(token_id.to_string());
    let p = permit::<policy::TokenRevoke>(state, target).await?;
    Ok(tokens::revoke(&state.db, &p, now_ms()).await?)
}

/// A device by its id or its AE title, at the console.
pub async fn find_device(state: &Stores, id_or_ae: &str) -> anyhow::Result<crate::network::Device> {
    if let Some(d) = store::device_by_id(&state.db, id_or_ae).await? {
        return Ok(d);
    }
    let id = store::device_id_by_ae(&state.db, id_or_ae)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no device with id or AE title `{id_or_ae}`"))?;
    Ok(store::device_by_id(&state.db, &id).await?.expect("just found"))
}

/// Creates a token for a device (by id or AE title); with `secret`, that well-known secret
/// (the demo's cart), answered again rather than duplicated. Returns the record and secret.
pub async fn create_device_token(
    state: &Stores,
    device: &str,
    label: &str,
    expires_in_days: Option<u32>,
    secret: Option<&str>,
) -> anyhow::Result<(tokens::DeviceToken, String)> {
    let now = now_ms();
    anyhow::ensure!(expires_in_days != Some(0), "--expires-in-days must be at least 1");
    let d = find_device(state, device).await?;
    let target = Target::site(&d.site, "device", Some(d.id.clone()));
    let p = permit::<policy::DeviceTokenCreate>(state, target).await?;
    let expires = expires_in_days.map(|d| now + d as i64 * 86_400_000);
    Ok(tokens::create_for_device(&state.db, &p, label, expires, secret, now).await?)
}

/// Revokes a device token (dtk_…).
pub async fn revoke_device_token(
    state: &Stores,
    token_id: &str,
) -> anyhow::Result<tokens::DeviceToken> {
    let device = tokens::device_of_token(&state.db, token_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no device token `{token_id}`"))?;
    let d = find_device(state, &device).await?;
    let target = Target::site(&d.site, "token", Some(token_id.to_string()));
    let p = permit::<policy::DeviceTokenRevoke>(state, target).await?;
    Ok(tokens::revoke_device_token(&state.db, &p, now_ms()).await?)
}

/// A device's tokens (by id or AE title).
pub async fn list_device_tokens(
    state: &Stores,
    device: &str,
) -> anyhow::Result<Vec<tokens::DeviceToken>> {
    let d = find_device(state, device).await?;
    let p =
        permit::<policy::DeviceList>(state, Target::site(&d.site, "device", Some(d.id))).await?;
    Ok(tokens::list_for_device(&state.db, &p).await?)
}

/// Adds a routing rule to a reading centre, at the console.
pub async fn add_routing_rule(
    state: &Stores,
    centre: &SiteId,
    new: crate::reading::store::NewRule,
) -> anyhow::Result<crate::reading::store::Rule> {
    let p = permit::<policy::RoutingManage>(state, Target::site(centre, "routing", None)).await?;
    Ok(crate::reading::store::add_rule(&state.db, &p, &new, console::OPERATOR, now_ms()).await?)
}

/// A centre's routing rules, at the console.
pub async fn routing_rules(
    state: &Stores,
    centre: &SiteId,
) -> anyhow::Result<Vec<crate::reading::store::Rule>> {
    let p = permit::<policy::RoutingList>(state, Target::site(centre, "routing", None)).await?;
    Ok(crate::reading::store::rules(&state.db, &p).await?)
}

/// Schedules a training session at the console (the demo's, and tests'); audited as the
/// operator's.
pub async fn schedule_broadcast(
    state: &Stores,
    b: &crate::broadcast::Broadcast,
) -> anyhow::Result<()> {
    let p =
        permit::<policy::BroadcastCreate>(state, Target::site(&b.site, "broadcast", None)).await?;
    let event = audit::NewEvent {
        at: now_ms(),
        actor: Some(console::OPERATOR.to_string()),
        actor_site: None,
        site: Some(b.site.to_string()),
        action: "broadcast.create",
        resource_kind: "broadcast",
        resource_id: Some(b.id.clone()),
        outcome: audit::Outcome::Success,
        client_addr: None,
        detail: Some(format!("{} audience entries", b.audience.len())),
    };
    Ok(crate::broadcast::store::create(&state.db, &p, b, &event).await?)
}

/// True when the error means "already there" (for idempotent seeding).
pub fn is_exists(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<NetworkError>(), Some(NetworkError::Exists(_)))
        || matches!(
            e.downcast_ref::<crate::reading::store::RuleError>(),
            Some(crate::reading::store::RuleError::Exists)
        )
}

/// Searches the audit trail as an administrator of `site` would see it.
pub async fn audit_search(
    state: &Stores,
    site: &SiteId,
    filter: &audit::Filter,
) -> anyhow::Result<Vec<audit::Event>> {
    let p = permit::<policy::AuditRead>(state, Target::site(site, "audit", None)).await?;
    Ok(audit::search(&state.db, &p, filter).await?)
}
