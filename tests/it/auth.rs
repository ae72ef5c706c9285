//! Login, sessions, CSRF, lockout, throttling and bearer tokens, over HTTP.

use serde_json::{Value, json};

use crate::support::{Obj, Sql, TestServer, audit_events, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_strict_httponly_cookie_and_logout_ends_it() {
    let s = TestServer::start().await;
    let r = s
        .anonymous()
        .post("/api/auth/login", json!({"username": "dr-zhao", "password": "ferry-demo"}))
        .await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("ferry_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure attribute ({cookie})");

    let secret = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    let raw = reqwest::Client::new();
    let me: Value = raw
        .get(s.at("/api/me"))
        .header("cookie", &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], "dr-zhao");
    assert_eq!(me["site"]["id"], "island-clinic");
    assert_eq!(me["csrf_token"], csrf.as_str());
    assert!(me["capabilities"].as_array().unwrap().contains(&json!("consult.request")));
    assert!(!me["capabilities"].as_array().unwrap().contains(&json!("admin.users")));
    let r = raw
        .post(s.at("/api/auth/logout"))
        .header("cookie", &secret)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    // The old cookie, replayed, no longer works.
    let r = raw.get(s.at("/api/me")).header("cookie", &secret).send().await.unwrap();
    let (st, p) = problem(r).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (401, "session_expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_the_account_and_are_audited() {
    let s =
        TestServer::start_with(Sql::Sqlite, Obj::Local, &[("FERRY__AUTH__MAX_FAILED_LOGINS", "3")])
            .await;
    let anon = s.anonymous();
    for _ in 0..2 {
        let (st, p) = problem(
            anon.post("/api/auth/login", json!({"username": "dr-ma", "password": "guess-guess"}))
                .await,
        )
        .await;
        assert_eq!((st, p["code"].as_str().unwrap()), (401, "invalid_credentials"));
    }
    // Unknown users get the same answer.
    let (st, p) = problem(
        anon.post("/api/auth/login", json!({"username": "nobody", "password": "guess-guess"}))
            .await,
    )
    .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (401, "invalid_credentials"));
    // The third failure locks; then even the right password is refused.
    let r =
        anon.post("/api/auth/login", json!({"username": "dr-ma", "password": "guess-guess"})).await;
    assert!(r.headers().contains_key("retry-after"));
    let (st, p) = problem(r).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (429, "account_locked"));
    let (st, _) = problem(
        anon.post("/api/auth/login", json!({"username": "dr-ma", "password": "ferry-demo"})).await,
    )
    .await;
    assert_eq!(st, 429);
    // Other accounts are unaffected.
    s.login("dr-zhao").await;

    let events = audit_events(&s, "action=login&user=dr-ma").await;
    let details: Vec<_> = events
        .iter()
        .map(|e| (e["outcome"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        details,
        [
            ("failure", "account locked"),
            ("failure", "wrong password"),
            ("failure", "wrong password"),
            ("failure", "wrong password")
        ]
    );
    let lock = audit_events(&s, "action=login.lockout").await;
    assert_eq!(lock.len(), 1);
    assert_eq!(lock[0]["actor"], "dr-ma");
    // The typed unknown name is not stored (people type passwords into the name field).
    let unknown = audit_events(&s, "action=login&outcome=failure").await;
    assert!(unknown.iter().any(|e| e["detail"] == "unknown user" && e["actor"].is_null()));
    assert!(!serde_json::to_string(&unknown).unwrap().contains("nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_throttled_per_address() {
    let s = TestServer::start_with(
        Sql::Sqlite,
        Obj::Local,
        &[("FERRY__AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "4")],
    )
    .await;
    let anon = s.anonymous();
    let mut statuses = vec![];
    for i in 0..6 {
        let r = anon
            .post(
                "/api/auth/login",
                json!({"username": format!("u{i}"), "password": "whatever-pw"}),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    // Four attempts answered, then 429 — unless the minute turned over in between.
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(statuses[..4].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(limited >= 1, "{statuses:?}");
    let r =
        anon.post("/api/auth/login", json!({"username": "admin", "password": "ferry-demo"})).await;
    let (st, p) = problem(r).await;
    if st == 429 {
        assert_eq!(p["code"], "rate_limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_writes_need_the_csrf_token_bearer_writes_do_not() {
    let s = TestServer::start().await;
    let admin = s.login("admin").await;
    let body = json!({"kind": "ecg-cart", "name": "Cart A"});
    // Without the header.
    let r =
        admin.http.post(s.at("/api/sites/island-clinic/devices")).json(&body).send().await.unwrap();
    let (st, p) = problem(r).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (403, "csrf_failed"));
    // With a wrong one.
    let r = admin
        .http
        .post(s.at("/api/sites/island-clinic/devices"))
        .header("x-csrf-token", "forged")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // With the session's token.
    assert_eq!(admin.post("/api/sites/island-clinic/devices", body.clone()).await.status(), 201);
    // A bearer token needs no CSRF token (no ambient credential to ride on).
    let r = admin.post("/api/users/admin/tokens", json!({"label": "script"})).await;
    assert_eq!(r.status(), 201);
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_string();
    assert_eq!(
        s.bearer(&secret)
            .post("/api/sites/island-clinic/devices", json!({"kind": "uploader", "name": "PC"}))
            .await
            .status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_token_works_until_revoked_or_expired() {
    for (sql, obj) in [(Sql::Sqlite, Obj::Local), (Sql::Postgres, Obj::S3)] {
        let s = TestServer::start_with(sql, obj, &[]).await;
        let out = s.cli(&["token", "create", "--user", "dr-zhao", "--label", "island upload"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(secret.starts_with("fy_") && !secret.contains('\n'), "{secret}");
        let note = String::from_utf8_lossy(&out.stderr);
        assert!(note.contains("shown only now"), "{note}");

        let c = s.bearer(&secret);
        let me: Value = c.get("/api/me").await.json().await.unwrap();
        assert_eq!(me["user"]["id"], "dr-zhao");
        assert!(me["csrf_token"].is_null());

        let token_id = note.split_whitespace().find(|w| w.starts_with("tok_")).unwrap().to_string();
        assert!(token_id.starts_with("tok_"), "{note}");
        let out = s.cli(&["token", "revoke", &token_id]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r = c.get("/api/me").await;
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let (st, p) = problem(r).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (401, "token_revoked"), "{sql:?}");

        // An expired token: created through the API, then its expiry moved into the past.
        let zhao = s.login("dr-zhao").await;
        let r = zhao
            .post("/api/users/dr-zhao/tokens", json!({"label": "short", "expires_in_days": 1}))
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        let (id, secret) = (v["token"]["id"].as_str().unwrap(), v["secret"].as_str().unwrap());
        assert_eq!(s.bearer(secret).get("/api/me").await.status(), 200);
        sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
            .bind(ferry::time::now_ms() - 1000)
            .bind(id)
            .execute(s.state.db.pool())
            .await
            .unwrap();
        let (st, p) = problem(s.bearer(secret).get("/api/me").await).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (401, "token_expired"));
        let (st, p) = problem(s.bearer("fy_forged").get("/api/me").await).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (401, "token_invalid"));

        let ev = audit_events(&s, "action=auth.token").await;
        let details: Vec<_> = ev.iter().map(|e| e["detail"].as_str().unwrap()).collect();
        assert_eq!(details, ["unknown token", "token expired", "token revoked"], "{sql:?}");
        let created = audit_events(&s, "action=token.created").await;
        assert_eq!(created.len(), 1, "API-created token audited");
        let cli = audit_events(&s, "action=token.create&user=operator").await;
        assert_eq!(cli.len(), 1, "CLI-created token audited as the operator");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_users_lose_their_sessions_and_tokens() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    let r = zhao.post("/api/users/dr-zhao/tokens", json!({"label": "mine"})).await;
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_string();
    let admin = s.login("admin").await;
    assert_eq!(
        admin.send("PATCH", "/api/users/dr-zhao", Some(json!({"disabled": true}))).await.status(),
        200
    );
    assert_eq!(zhao.get("/api/me").await.status(), 401);
    assert_eq!(s.bearer(&secret).get("/api/me").await.status(), 401);
    assert!(s.login_pw("dr-zhao", "ferry-demo").await.is_err());
    assert_eq!(
        admin
            .send(
                "PATCH",
                "/api/users/dr-zhao",
                Some(json!({"disabled": false, "password": "new-password-1"}))
            )
            .await
            .status(),
        200
    );
    assert!(s.login_pw("dr-zhao", "ferry-demo").await.is_err());
    s.login_pw("dr-zhao", "new-password-1").await.unwrap();
}
