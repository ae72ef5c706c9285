//! The SQL port's conformance suite: every case runs on SQLite and on PostgreSQL.

use ferry::audit::{self, Filter, NewEvent, Outcome};
use ferry::auth::{sessions, tokens};
use ferry::config::Settings;
use ferry::network::store::{self, NetworkError};
use ferry::network::*;
use ferry::operator;
use ferry::state::Stores;

use crate::support::{Obj, Sql, test_env};

async fn open(sql: Sql) -> (Stores, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), sql, Obj::Local).await;
    let state = Stores::open(Settings::load(None, env).unwrap()).await.unwrap();
    ferry::demo::seed(&state, "ferry-demo").await.unwrap();
    (state, dir)
}

backend_tests!(sqlite => crate::support::Sql::Sqlite, postgres => crate::support::Sql::Postgres;
[
    migrations_are_idempotent,
    sites_tree_and_uniqueness,
    users_create_update_and_constraints,
    devices_ae_titles_unique_network_wide,
    tokens_hashed_expire_and_revoke,
    sessions_idle_and_absolute_timeouts,
    audit_append_only_filtered_and_scoped
]);

async fn migrations_are_idempotent(sql: Sql) {
    let (state, _d) = open(sql).await;
    assert_eq!(state.db.migrate().await.unwrap(), 0, "a second run applies nothing");
    let backend = state.db.backend();
    assert_eq!(backend == ferry::storage::Backend::Postgres, sql == Sql::Postgres);
    // Seeding again creates nothing new.
    assert_eq!(ferry::demo::seed(&state, "ferry-demo").await.unwrap(), 0);
    state.db.ping().await.unwrap();
}

async fn sites_tree_and_uniqueness(sql: Sql) {
    let (state, _d) = open(sql).await;
    let sites = operator::list_sites(&state).await.unwrap();
    let ids: Vec<_> = sites.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["city-hospital", "county-hospital", "island-clinic", "mountain-clinic"]);
    let county: SiteId = "county-hospital".parse().unwrap();
    let below = store::site_and_descendants(&state.db, &county).await.unwrap();
    let mut below: Vec<_> = below.iter().map(|s| s.to_string()).collect();
    below.sort();
    assert_eq!(below, ["county-hospital", "island-clinic", "mountain-clinic"]);
    assert!(store::is_root_site(&state.db, &"city-hospital".parse().unwrap()).await.unwrap());
    assert!(!store::is_root_site(&state.db, &county).await.unwrap());

    let new = |id: &str, parent: Option<&str>| NewSite {
        id: id.parse().unwrap(),
        name: "Harbour Clinic".into(),
        tier: Tier::Township,
        kind: SiteKind::Clinic,
        parent: parent.map(|p| p.parse().unwrap()),
    };
    let s =
        operator::add_site(&state, new("harbour-clinic", Some("county-hospital"))).await.unwrap();
    assert_eq!(s.parent.as_ref().unwrap().as_str(), "county-hospital");
    let dup = operator::add_site(&state, new("harbour-clinic", None)).await.unwrap_err();
    assert!(operator::is_exists(&dup), "{dup}");
    let orphan = operator::add_site(&state, new("orphan", Some("no-such-site"))).await.unwrap_err();
    assert!(
        matches!(orphan.downcast_ref::<NetworkError>(), Some(NetworkError::Invalid(_))),
        "{orphan}"
    );
    let mut blank = new("blank", None);
    blank.name = "   ".into();
    assert!(operator::add_site(&state, blank).await.is_err());
    assert_eq!(operator::list_sites(&state).await.unwrap().len(), 5);
}

async fn users_create_update_and_constraints(sql: Sql) {
    let (state, _d) = open(sql).await;
    let island: SiteId = "island-clinic".parse().unwrap();
    let u = operator::add_user(
        &state,
        &island,
        NewUser {
            id: "nurse-wu".parse().unwrap(),
            display_name: "Nurse Wu".into(),
            roles: vec![Role::Clinician, Role::Clinician, Role::Trainer],
            specialties: vec!["nursing".parse().unwrap()],
            password: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(u.roles, vec![Role::Clinician, Role::Trainer], "roles folded and ordered");
    assert!(!u.has_password);
    let users = operator::list_users(&state, &island).await.unwrap();
    let ids: Vec<_> = users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["dr-zhao", "nurse-wu"]);

    let again = NewUser {
        id: "nurse-wu".parse().unwrap(),
        display_name: "Someone else".into(),
        roles: vec![Role::Reader],
        specialties: vec![],
        password: None,
    };
    let e = operator::add_user(&state, &"mountain-clinic".parse().unwrap(), again.clone())
        .await
        .unwrap_err();
    assert!(operator::is_exists(&e), "user names are unique network-wide: {e}");
    let e = operator::add_user(
        &state,
        &"nowhere".parse().unwrap(),
        NewUser { id: "x1".parse().unwrap(), ..again.clone() },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e.downcast_ref::<NetworkError>(), Some(NetworkError::NotFound("site"))),
        "{e}"
    );
    let e = operator::add_user(
        &state,
        &island,
        NewUser { id: "x2".parse().unwrap(), roles: vec![], ..again.clone() },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("role"), "{e}");
    let e = operator::add_user(
        &state,
        &island,
        NewUser { id: "x3".parse().unwrap(), password: Some("short".into()), ..again },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("at least"), "{e}");
    assert_eq!(
        store::site_of_user(&state.db, &"nurse-wu".parse().unwrap()).await.unwrap(),
        Some(island)
    );
}

async fn devices_ae_titles_unique_network_wide(sql: Sql) {
    let (state, _d) = open(sql).await;
    let mountain: SiteId = "mountain-clinic".parse().unwrap();
    let devices = operator::list_devices(&state, &mountain).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].ae_title.as_ref().unwrap().as_str(), "MOUNTAINUS");
    let e = operator::add_device(
        &state,
        &mountain,
        NewDevice {
            kind: DeviceKind::Modality,
            name: "Second".into(),
            ae_title: Some("ISLANDCT".parse().unwrap()),
        },
    )
    .await
    .unwrap_err();
    assert!(operator::is_exists(&e), "{e}");
    // Devices without AE titles do not collide.
    for n in ["Cart 1", "Cart 2"] {
        operator::add_device(
            &state,
            &mountain,
            NewDevice { kind: DeviceKind::EcgCart, name: n.into(), ae_title: None },
        )
        .await
        .unwrap();
    }
    assert_eq!(operator::list_devices(&state, &mountain).await.unwrap().len(), 3);
}

async fn tokens_hashed_expire_and_revoke(sql: Sql) {
    let (state, _d) = open(sql).await;
    let zhao: UserId = "dr-zhao".parse().unwrap();
    let (t, secret) =
        operator::create_token(&state, &zhao, "upload script", Some(30)).await.unwrap();
    assert!(secret.starts_with(tokens::TOKEN_PREFIX));
    let now = ferry::time::now_ms();
    assert_eq!(
        tokens::authenticate(&state.db, &secret, now).await.unwrap().unwrap(),
        (t.id.clone(), tokens::Holder::User("dr-zhao".into()))
    );
    // Only the hash is stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(state.db.pool())
        .await
        .unwrap();
    assert!(stored.contains(&ferry::ids::hash_secret(&secret)));
    assert!(!stored.iter().any(|s| s.contains(&secret[3..])));
    // Expiry: the same token 31 days later.
    let later = now + 31 * 86_400_000;
    let (why, owner) = tokens::authenticate(&state.db, &secret, later).await.unwrap().unwrap_err();
    assert_eq!(
        (why, owner),
        (tokens::Refusal::Expired, Some(tokens::Holder::User("dr-zhao".into())))
    );
    // Unknown and malformed secrets.
    for s in ["fy_nope", "Basic abc", ""] {
        let (why, _) = tokens::authenticate(&state.db, s, now).await.unwrap().unwrap_err();
        assert_eq!(why, tokens::Refusal::Unknown);
    }
    // Revocation is final and keeps its first time.
    let r1 = operator::revoke_token(&state, &t.id).await.unwrap();
    let r2 = operator::revoke_token(&state, &t.id).await.unwrap();
    assert!(r1.revoked_at.is_some());
    assert_eq!(r1.revoked_at, r2.revoked_at);
    let (why, _) = tokens::authenticate(&state.db, &secret, now).await.unwrap().unwrap_err();
    assert_eq!(why, tokens::Refusal::Revoked);
    let list = operator::list_tokens(&state, &zhao).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(operator::create_token(&state, &zhao, "x", Some(0)).await.is_err());
    assert!(operator::revoke_token(&state, "tok_missing").await.is_err());

    // A device's token: the demo cart's (seeded once; seeding again finds it), and a new one
    // by AE title. Hashed like a person's, held by the device, revocable.
    let cart = operator::find_device(&state, ferry::demo::CART_AE).await.unwrap();
    ferry::demo::seed(&state, "ferry-demo").await.unwrap();
    let carts = operator::list_device_tokens(&state, &cart.id).await.unwrap();
    assert_eq!(carts.len(), 1, "the demo cart has one token however often the demo is seeded");
    let demo_secret = ferry::demo::cart_token("ferry-demo");
    assert_eq!(
        tokens::authenticate(&state.db, &demo_secret, now).await.unwrap().unwrap(),
        (carts[0].id.clone(), tokens::Holder::Device(cart.id.clone()))
    );
    assert_ne!(demo_secret, ferry::demo::cart_token("another password"));
    let (d, secret) =
        operator::create_device_token(&state, "ISLANDECG", "second cart PC", Some(7), None)
            .await
            .unwrap();
    assert!(tokens::is_device_token_id(&d.id) && d.device == cart.id);
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM device_tokens")
        .fetch_all(state.db.pool())
        .await
        .unwrap();
    assert!(stored.contains(&ferry::ids::hash_secret(&secret)));
    assert!(!stored.iter().any(|s| s.contains(&secret[3..])));
    let (why, holder) = tokens::authenticate(&state.db, &secret, later).await.unwrap().unwrap_err();
    assert_eq!(
        (why, holder),
        (tokens::Refusal::Expired, Some(tokens::Holder::Device(cart.id.clone())))
    );
    let r = operator::revoke_device_token(&state, &d.id).await.unwrap();
    assert!(r.revoked_at.is_some());
    let (why, _) = tokens::authenticate(&state.db, &secret, now).await.unwrap().unwrap_err();
    assert_eq!(why, tokens::Refusal::Revoked);
    assert_eq!(operator::list_device_tokens(&state, "ISLANDECG").await.unwrap().len(), 2);
    assert!(operator::create_device_token(&state, "NOSUCHAE", "x", None, None).await.is_err());
}

async fn sessions_idle_and_absolute_timeouts(sql: Sql) {
    let (state, _d) = open(sql).await;
    let db = &state.db;
    let t0 = 1_800_000_000_000i64;
    let idle = 30 * 60_000;
    let max = 12 * 3_600_000;
    let (secret, csrf) = sessions::create(db, "dr-li", t0).await.unwrap();
    let s = sessions::lookup(db, &secret, t0 + 1000, idle, max).await.unwrap().unwrap();
    assert_eq!((s.user.as_str(), s.csrf.as_str()), ("dr-li", csrf.as_str()));
    // Activity every 20 minutes keeps it alive …
    let mut t = t0;
    for _ in 0..5 {
        t += 20 * 60_000;
        assert!(sessions::lookup(db, &secret, t, idle, max).await.unwrap().is_some());
    }
    // … until 31 idle minutes end it, for good.
    assert!(sessions::lookup(db, &secret, t + 31 * 60_000, idle, max).await.unwrap().is_none());
    assert!(sessions::lookup(db, &secret, t + 1, idle, max).await.unwrap().is_none());
    // The absolute limit holds even with activity.
    let (s2, _) = sessions::create(db, "dr-li", t0).await.unwrap();
    let mut t = t0;
    let mut alive = true;
    while alive && t < t0 + 13 * 3_600_000 {
        t += 10 * 60_000;
        alive = sessions::lookup(db, &s2, t, idle, max).await.unwrap().is_some();
    }
    assert!(
        !alive && t > t0 + max - 10 * 60_000 && t <= t0 + max + 10 * 60_000,
        "ended at {}",
        t - t0
    );
    assert!(sessions::lookup(db, "not-a-session", t0, idle, max).await.unwrap().is_none());
    let (s3, _) = sessions::create(db, "dr-li", t0).await.unwrap();
    assert_eq!(sessions::sweep(db, t0 + idle + 1, idle, max).await.unwrap(), 1);
    assert!(sessions::lookup(db, &s3, t0 + 1, idle, max).await.unwrap().is_none());
}

async fn audit_append_only_filtered_and_scoped(sql: Sql) {
    let (state, _d) = open(sql).await;
    let db = &state.db;
    let ev = |actor: &str, actor_site: &str, site: &str, action: &'static str, at: i64, outcome| {
        NewEvent {
            at,
            actor: Some(actor.into()),
            actor_site: Some(actor_site.into()),
            site: Some(site.into()),
            action,
            resource_kind: "user",
            resource_id: Some("dr-zhao".into()),
            outcome,
            client_addr: Some("127.0.0.1".into()),
            detail: None,
        }
    };
    let base = 1_900_000_000_000i64;
    audit::record(
        db,
        &ev("dr-zhao", "island-clinic", "city-hospital", "user.list", base, Outcome::Denied),
    )
    .await
    .unwrap();
    audit::record(
        db,
        &ev(
            "dr-ma",
            "mountain-clinic",
            "mountain-clinic",
            "user.read",
            base + 10,
            Outcome::Allowed,
        ),
    )
    .await
    .unwrap();
    audit::record(
        db,
        &ev("admin", "city-hospital", "island-clinic", "user.update", base + 20, Outcome::Allowed),
    )
    .await
    .unwrap();

    let city: SiteId = "city-hospital".parse().unwrap();
    let island: SiteId = "island-clinic".parse().unwrap();
    let window = Filter { from: Some(base), limit: 100, ..Default::default() };
    // A root-site admin sees everything, newest first.
    let all = operator::audit_search(&state, &city, &window).await.unwrap();
    let actions: Vec<_> = all
        .iter()
        .filter(|e| e.actor.as_deref() != Some("operator"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, ["user.update", "user.read", "user.list"]);
    // An island admin sees events about island or by island people only.
    let mine = operator::audit_search(&state, &island, &window).await.unwrap();
    let actions: Vec<_> = mine
        .iter()
        .filter(|e| e.actor.as_deref() != Some("operator"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, ["user.update", "user.list"]);
    // Filters.
    let f = Filter { user: Some("dr-zhao".into()), ..window.clone() };
    assert_eq!(operator::audit_search(&state, &city, &f).await.unwrap().len(), 1);
    let f = Filter { outcome: Some(Outcome::Denied), ..window.clone() };
    assert_eq!(
        operator::audit_search(&state, &city, &f).await.unwrap()[0].actor.as_deref(),
        Some("dr-zhao")
    );
    let f = Filter { resource: Some("user:dr-zhao".into()), to: Some(base + 15), ..window.clone() };
    assert_eq!(operator::audit_search(&state, &city, &f).await.unwrap().len(), 2);
    let f = Filter { site: Some("mountain-clinic".parse().unwrap()), ..window.clone() };
    assert_eq!(operator::audit_search(&state, &city, &f).await.unwrap().len(), 1);
    let f = Filter { action: Some("user.update".into()), ..window.clone() };
    let one = operator::audit_search(&state, &city, &f).await.unwrap();
    assert_eq!(one.len(), 1);
    // Paging backwards.
    let page = Filter { limit: 1, ..window.clone() };
    let p1 = operator::audit_search(&state, &city, &page).await.unwrap();
    let p2 = operator::audit_search(
        &state,
        &city,
        &Filter { before_id: Some(p1[0].id), ..page.clone() },
    )
    .await
    .unwrap();
    assert!(p2[0].id < p1[0].id);
    // Append-only: the database itself refuses changes.
    assert!(
        sqlx::query("UPDATE audit_events SET outcome = 'allowed'")
            .execute(db.pool())
            .await
            .is_err()
    );
    assert!(sqlx::query("DELETE FROM audit_events").execute(db.pool()).await.is_err());
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(db.pool()).await.unwrap();
    assert!(n >= 3);
}
