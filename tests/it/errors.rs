//! Every HTTP error is problem+json with a stable code; 5xx bodies reveal nothing internal.

use serde_json::json;

use crate::support::{Obj, Sql, TestServer, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_problem_details() {
    let s =
        TestServer::start_with(Sql::Sqlite, Obj::Local, &[("FERRY__HTTP__MAX_BODY_BYTES", "4096")])
            .await;
    let admin = s.login("admin").await;
    let raw = |body: &'static str, ct: &'static str| {
        admin
            .req(reqwest::Method::POST, "/api/sites/island-clinic/devices")
            .header("content-type", ct)
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (raw("{\"kind\": ", "application/json"), 400, "invalid_json", "JSON"),
        (
            raw("{\"kind\":\"modality\",\"name\":\"x\",\"colour\":\"red\"}", "application/json"),
            400,
            "invalid_body",
            "colour",
        ),
        (raw("{\"kind\":\"modality\"}", "application/json"), 400, "invalid_body", "name"),
        (
            raw("{\"kind\":\"toaster\",\"name\":\"x\"}", "application/json"),
            400,
            "invalid_body",
            "modality",
        ),
        (
            raw(
                "{\"kind\":\"modality\",\"name\":\"x\",\"ae_title\":\"WAY_TOO_LONG_AE_TITLE\"}",
                "application/json",
            ),
            400,
            "invalid_body",
            "AE title",
        ),
        (
            raw("kind=modality", "application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
    ];
    for (req, status, code, mention) in cases {
        let (st, p) = problem(req.send().await.unwrap()).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (status, code), "{p}");
        assert!(p["detail"].as_str().unwrap().contains(mention), "{p} should mention {mention}");
    }
    let big = "x".repeat(10_000);
    let (st, p) = problem(
        admin
            .post("/api/sites/island-clinic/devices", json!({"kind": "modality", "name": big}))
            .await,
    )
    .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (413, "payload_too_large"));

    for (method, path) in [
        ("GET", "/api/sites/atlantis"),
        ("GET", "/api/sites/atlantis/users"),
        ("GET", "/api/sites/NOT%20A%20SLUG/users"),
        ("GET", "/api/users/nobody"),
        ("PATCH", "/api/users/nobody"),
        ("DELETE", "/api/devices/dev_missing"),
        ("DELETE", "/api/tokens/tok_missing"),
        ("GET", "/api/users/nobody/tokens"),
        ("GET", "/api/no-such-route"),
    ] {
        let body = (method == "PATCH").then(|| json!({}));
        let (st, p) = problem(admin.send(method, path, body).await).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (404, "not_found"), "{method} {path}");
    }
    let (st, p) = problem(admin.send("PUT", "/api/sites", Some(json!({}))).await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (405, "method_not_allowed"));
    let (st, p) = problem(
        admin
            .post("/api/sites", json!({"id": "island-clinic", "name": "Again", "tier": "village", "kind": "clinic", "parent": "county-hospital"}))
            .await,
    )
    .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (409, "already_exists"));
    let (st, p) = problem(
        admin
            .post(
                "/api/sites",
                json!({"id": "x", "name": "X", "tier": "metropolis", "kind": "clinic"}),
            )
            .await,
    )
    .await;
    assert_eq!(st, 400);
    assert!(p["detail"].as_str().unwrap().contains("city, county, township, village"), "{p}");
    let (st, p) = problem(s.anonymous().get("/api/sites").await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (401, "unauthenticated"));
    let (st, p) = problem(
        s.anonymous()
            .req(reqwest::Method::GET, "/api/me")
            .header("authorization", "Basic eDp5")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (401, "unauthenticated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_reveal_nothing_internal() {
    let s = TestServer::start().await;
    let admin = s.login("admin").await;
    // Break the schema under the running server.
    sqlx::query("ALTER TABLE devices RENAME TO devices_moved")
        .execute(s.state.db.pool())
        .await
        .unwrap();
    let (st, p) = problem(admin.get("/api/sites/island-clinic/devices").await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (500, "internal"));
    let incident = p["incident"].as_str().unwrap();
    assert!(!incident.is_empty());
    let text = p.to_string().to_lowercase();
    for leak in ["devices", "sqlite", "table", "select", "sqlx"] {
        assert!(!text.contains(leak), "500 body leaks `{leak}`: {p}");
    }
}
