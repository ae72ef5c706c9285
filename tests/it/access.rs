//! The access matrix: role × own site / other site × every route, over HTTP, with the audit
//! trail checked for each refusal.

use std::collections::BTreeSet;

use ferry::auth::policy::ALL_ACTIONS;
use ferry::network::{DeviceKind, NewDevice, NewUser, Role};
use ferry::operator;
use serde_json::{Value, json};

use crate::support::{Client, TestServer, audit_events, problem};

struct Case {
    action: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// A non-JSON body: (content type, bytes).
    raw: Option<(String, Vec<u8>)>,
    /// The status when allowed, if not 2xx.
    allowed_status: Option<u16>,
    /// Extra request headers.
    headers: Vec<(&'static str, String)>,
}

const ISLAND_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const MOUNTAIN_STUDY: &str = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457";

/// Every route, aimed at `site`, whose person is `user`; fresh objects for the destructive ones.
async fn cases(s: &TestServer, site: &str, user: &str, study: &str, n: usize) -> Vec<Case> {
    let state = &s.state;
    let site_id = site.parse().unwrap();
    let device = operator::add_device(
        state,
        &site_id,
        NewDevice { kind: DeviceKind::Uploader, name: format!("d{n}"), ae_title: None },
    )
    .await
    .unwrap();
    let (token, _) =
        operator::create_token(state, &user.parse().unwrap(), "t", None).await.unwrap();
    let cart = operator::add_device(
        state,
        &site_id,
        NewDevice { kind: DeviceKind::EcgCart, name: format!("cart{n}"), ae_title: None },
    )
    .await
    .unwrap();
    let (cart_token, _) =
        operator::create_device_token(state, &cart.id, "t", None, None).await.unwrap();
    // A consult of that site, cancelled: reading it is a policy question (the site and the
    // people it is addressed to); a step on it passes the policy and meets the consult's own
    // rule (it has ended: 409), where a policy refusal is 404.
    let requester = s.login(user).await;
    let r = requester
        .post(
            "/api/consults",
            json!({"specialty": "radiology", "urgency": "routine", "summary": "matrix case"}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let consult = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = requester.post(&format!("/api/consults/{consult}/cancel"), json!({})).await;
    assert_eq!(r.status(), 200);
    // An ECG of that site (an aECG: no study, the site's own).
    let r = requester
        .req(reqwest::Method::POST, "/api/ecgs")
        .body(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/ecg/hl7-aecg-example.xml"
            ))
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let ecg = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    // A reading request of that site's study, sent to the county hospital (neither the clinic
    // nor the city hospital of the matrix's root admin), and one cancelled: a step on it passes
    // the policy and meets the reading core's rule (409).
    let ask = json!({"study_uid": study, "centre": "county-hospital", "priority": "urgent"});
    let r = requester.post("/api/readings", ask.clone()).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let cancelled = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = requester.post(&format!("/api/readings/{cancelled}/cancel"), json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = requester.post("/api/readings", ask).await;
    let reading = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_ne!(reading, cancelled);
    // A routing rule of that site as a centre (kept from an earlier round if it survived).
    let rule = match operator::routing_rules(state, &site_id).await.unwrap().pop() {
        Some(r) => r.id,
        None => {
            let new = ferry::reading::store::NewRule {
                from_site: "county-hospital".parse().unwrap(),
                subtree: false,
                kind: ferry::reading::Kind::Ecg,
                modalities: vec![],
                priority: ferry::reading::Priority::Routine,
            };
            operator::add_routing_rule(state, &site_id, new).await.unwrap().id
        }
    };
    // A training session of that site, for the county hospital alone: its own people see it,
    // the other clinic's do not.
    let session = ferry::broadcast::Broadcast {
        id: ferry::broadcast::new_broadcast_id(),
        site: site_id.clone(),
        trainer: user.parse().unwrap(),
        title: "matrix session".into(),
        description: String::new(),
        starts_at: ferry::time::now_ms() + 86_400_000,
        minutes: 60,
        state: ferry::broadcast::State::Scheduled,
        audience: vec![ferry::broadcast::AudienceEntry {
            site: "county-hospital".parse().unwrap(),
            subtree: false,
        }],
        created_at: ferry::time::now_ms(),
    };
    operator::schedule_broadcast(state, &session).await.unwrap();
    let c = |action, method, path: String, body: Option<Value>| Case {
        action,
        method,
        path,
        body,
        raw: None,
        allowed_status: None,
        headers: vec![],
    };
    // A STOW-RS request whose one part is not DICOM: allowed through the policy, the archive
    // then refuses the part (400 with a FailedSOPSequence), where a policy refusal is 403.
    let stow = Case {
        raw: Some((
            format!(
                "multipart/related; type=\"application/dicom\"; boundary={}",
                crate::support::STOW_BOUNDARY
            ),
            crate::support::stow_body(&[b"not dicom"]),
        )),
        allowed_status: Some(400),
        ..c("imaging.store", "POST", "/dicomweb/studies".into(), None)
    };
    vec![
        c("site.list", "GET", "/api/sites".into(), None),
        c("site.read", "GET", format!("/api/sites/{site}"), None),
        c("people.directory", "GET", format!("/api/people?ids={user}"), None),
        c("ecg.search", "GET", "/api/ecgs".into(), None),
        c("ecg.read", "GET", format!("/api/ecgs/{ecg}"), None),
        c(
            "site.create",
            "POST",
            "/api/sites".into(),
            Some(
                json!({"id": format!("new-{n}"), "name": "New", "tier": "village", "kind": "clinic", "parent": site}),
            ),
        ),
        c("user.list", "GET", format!("/api/sites/{site}/users"), None),
        c(
            "user.create",
            "POST",
            format!("/api/sites/{site}/users"),
            Some(
                json!({"id": format!("new-user-{n}"), "display_name": "New", "roles": ["clinician"]}),
            ),
        ),
        c("user.read", "GET", format!("/api/users/{user}"), None),
        c(
            "user.update",
            "PATCH",
            format!("/api/users/{user}"),
            Some(json!({"specialties": ["general"]})),
        ),
        c("device.list", "GET", format!("/api/sites/{site}/devices"), None),
        c(
            "device.create",
            "POST",
            format!("/api/sites/{site}/devices"),
            Some(json!({"kind": "uploader", "name": "PC"})),
        ),
        c(
            "device.token.create",
            "POST",
            format!("/api/devices/{}/tokens", cart.id),
            Some(json!({"label": "cart export PC"})),
        ),
        c("device.list", "GET", format!("/api/devices/{}/tokens", cart.id), None),
        c("device.token.revoke", "DELETE", format!("/api/device-tokens/{}", cart_token.id), None),
        c("device.delete", "DELETE", format!("/api/devices/{}", device.id), None),
        c("token.list", "GET", format!("/api/users/{user}/tokens"), None),
        c("token.create", "POST", format!("/api/users/{user}/tokens"), Some(json!({"label": "x"}))),
        c("token.revoke", "DELETE", format!("/api/tokens/{}", token.id), None),
        c("audit.read", "GET", format!("/api/audit?site={site}"), None),
        c("audit.read", "GET", format!("/api/audit.csv?site={site}"), None),
        stow,
        Case {
            raw: Some(("application/offset+octet-stream".into(), vec![])),
            headers: vec![("upload-length", "1000".into())],
            ..c("imaging.store", "POST", "/api/uploads".into(), None)
        },
        c("imaging.search", "GET", "/dicomweb/studies".into(), None),
        c("imaging.read", "GET", format!("/dicomweb/studies/{study}/series"), None),
        c(
            "consult.create",
            "POST",
            "/api/consults".into(),
            Some(json!({"specialty": "radiology", "urgency": "urgent", "summary": "case"})),
        ),
        c("consult.search", "GET", "/api/consults".into(), None),
        c("consult.read", "GET", format!("/api/consults/{consult}"), None),
        Case {
            allowed_status: Some(409),
            ..c(
                "consult.update",
                "POST",
                format!("/api/consults/{consult}/cancel"),
                Some(json!({})),
            )
        },
        c(
            "study.share",
            "POST",
            format!("/api/studies/{study}/shares"),
            Some(json!({"site": "county-hospital"})),
        ),
        c("reading.search", "GET", "/api/readings".into(), None),
        c("reading.read", "GET", format!("/api/readings/{reading}"), None),
        Case {
            allowed_status: Some(409),
            ..c(
                "reading.update",
                "POST",
                format!("/api/readings/{cancelled}/send"),
                Some(json!({})),
            )
        },
        c(
            "reading.create",
            "POST",
            "/api/readings".into(),
            Some(json!({"study_uid": study, "centre": "county-hospital", "question": "matrix"})),
        ),
        c("routing.list", "GET", format!("/api/sites/{site}/routing-rules"), None),
        c("routing.manage", "DELETE", format!("/api/routing-rules/{rule}"), None),
        c(
            "broadcast.create",
            "POST",
            "/api/broadcasts".into(),
            Some(
                json!({"title": "t", "starts_at": ferry::time::now_ms() + 86_400_000, "audience": [site]}),
            ),
        ),
        c("broadcast.search", "GET", "/api/broadcasts".into(), None),
        c("broadcast.read", "GET", format!("/api/broadcasts/{}", session.id), None),
        c(
            "broadcast.attendance",
            "GET",
            format!("/api/broadcasts/{}/attendance", session.id),
            None,
        ),
        c(
            "reading.template.manage",
            "PUT",
            format!("/api/sites/{site}/reading-templates"),
            Some(json!({"kind": "ecg", "modality": "", "findings": "Rhythm:", "impression": ""})),
        ),
    ]
}

async fn denied_count(s: &TestServer, actor: &str, action: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE actor = $1 AND action = $2 AND outcome = 'denied'",
    )
    .bind(actor)
    .bind(action)
    .fetch_one(s.state.db.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_by_site_by_route_matrix() {
    let s = TestServer::start().await;
    let island = "island-clinic".parse().unwrap();
    // One person per role at island-clinic (its admin administers island-clinic only), and the
    // network admin of city-hospital, whose scope covers every site below it.
    let mut actors: Vec<(String, Option<Role>)> = vec![];
    for role in Role::ALL {
        let id = format!("i-{}", role.as_str());
        operator::add_user(
            &s.state,
            &island,
            NewUser {
                id: id.parse().unwrap(),
                display_name: id.clone(),
                roles: vec![*role],
                specialties: vec![],
                password: Some("matrix-password".into()),
            },
        )
        .await
        .unwrap();
        actors.push((id, Some(*role)));
    }
    actors.push(("admin".into(), None));

    // One study at each clinic.
    let (zhao, ma) = (s.login("dr-zhao").await, s.login("dr-ma").await);
    assert_eq!(
        zhao.stow("/dicomweb/studies", &[&crate::support::testfile("CT_small.dcm")]).await.0,
        200
    );
    assert_eq!(
        ma.stow("/dicomweb/studies", &[&crate::support::testfile("MR_small.dcm")]).await.0,
        200
    );

    let mut exercised = BTreeSet::new();
    let mut n = 0;
    let mut rows = vec![];
    for (actor, role) in &actors {
        let client: Client = if role.is_some() {
            s.login_pw(actor, "matrix-password").await.unwrap()
        } else {
            s.login("admin").await
        };
        for (which, site, user, study) in [
            ("own", "island-clinic", "dr-zhao", ISLAND_STUDY),
            ("other", "mountain-clinic", "dr-ma", MOUNTAIN_STUDY),
        ] {
            n += 1;
            for case in cases(&s, site, user, study, n).await {
                exercised.insert(case.action);
                let (_, rule, hidden) =
                    *ALL_ACTIONS.iter().find(|(a, _, _)| *a == case.action).unwrap();
                use ferry::auth::policy::Rule::*;
                let allowed = match (rule, role) {
                    (AnyUser, _) => true,
                    // Sending always stores for the sender's own site.
                    (OwnSite, _) if case.action == "imaging.store" => true,
                    // Consults and readings are requested for one's own site, by clinicians only.
                    (OwnSite, r) if case.action == "consult.create" => *r == Some(Role::Clinician),
                    // Training sessions are scheduled by trainers, for their own site.
                    (OwnSite, r) if case.action == "broadcast.create" => *r == Some(Role::Trainer),
                    (OwnSite, r) if case.action == "reading.create" => {
                        *r == Some(Role::Clinician) && which == "own"
                    }
                    // Patient data: the clinic's own people only; the city admin is of neither
                    // (nor a specialist a consult is addressed to).
                    (OwnSite | SiteOrShared | SiteOrParty, Some(_)) => which == "own",
                    (OwnSite | SiteOrShared | SiteOrParty, None) => false,
                    (_, None) => true, // the root-site admin administers both clinics
                    (_, Some(Role::Admin)) => which == "own",
                    _ => false,
                };
                let before = denied_count(&s, actor, case.action).await;
                let r = match &case.raw {
                    Some((ct, bytes)) => {
                        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
                        let mut r = client
                            .req(method, &case.path)
                            .header("content-type", ct)
                            .body(bytes.clone());
                        for (k, v) in &case.headers {
                            r = r.header(*k, v);
                        }
                        r.send().await.unwrap()
                    }
                    None => client.send(case.method, &case.path, case.body.clone()).await,
                };
                let status = r.status().as_u16();
                rows.push(format!(
                    "{actor:<13} {which:<5} {:<14} {:<6} {} -> {status}",
                    case.action, case.method, case.path
                ));
                if allowed {
                    let ok = match case.allowed_status {
                        Some(want) => status == want,
                        None => (200..300).contains(&status),
                    };
                    assert!(
                        ok,
                        "{actor} {which} {} {}: {status} {}",
                        case.method,
                        case.path,
                        r.text().await.unwrap()
                    );
                } else {
                    let (st, p) = problem(r).await;
                    // Asking for a reading of one's own study is refused to non-clinicians
                    // openly (the study is theirs to know of); another site's study is hidden.
                    let open = case.action == "reading.create" && which == "own" && role.is_some();
                    let want =
                        if hidden && !open { (404, "not_found") } else { (403, "forbidden") };
                    assert_eq!(
                        (st, p["code"].as_str().unwrap()),
                        want,
                        "{actor} {which} {}",
                        case.path
                    );
                    assert_eq!(
                        denied_count(&s, actor, case.action).await,
                        before + 1,
                        "{actor} {which} {}: refusal not audited",
                        case.path
                    );
                }
            }
        }
    }
    let all: BTreeSet<_> = ALL_ACTIONS.iter().map(|(a, _, _)| *a).collect();
    assert_eq!(exercised, all, "every action of the policy is exercised over HTTP");
    println!("{}", rows.join("\n"));
}

/// A device's token (an ECG cart's) through every route of the matrix: it sends for its own
/// site and is refused everything else — reading, listing, sharing, administering, even its
/// own site's data — each refusal recorded as the device's. Then what it sends by each path,
/// and its revocation and its device's removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_token_only_sends_for_its_site() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    assert_eq!(
        zhao.stow("/dicomweb/studies", &[&crate::support::testfile("CT_small.dcm")]).await.0,
        200
    );
    let ma = s.login("dr-ma").await;
    assert_eq!(
        ma.stow("/dicomweb/studies", &[&crate::support::testfile("MR_small.dcm")]).await.0,
        200
    );
    let cart = operator::find_device(&s.state, "ISLANDECG").await.unwrap();
    // Admins of the site issue it; its clinicians cannot.
    let path = format!("/api/devices/{}/tokens", cart.id);
    let (st, _) = problem(zhao.post(&path, json!({"label": "mine"})).await).await;
    assert_eq!(st, 403);
    let admin = s.login("admin").await;
    let r = admin.post(&path, json!({"label": "cart export PC"})).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let secret = v["secret"].as_str().unwrap().to_string();
    let token_id = v["token"]["id"].as_str().unwrap().to_string();
    let listed: Value = admin.get(&path).await.json().await.unwrap();
    assert!(listed["tokens"].as_array().unwrap().iter().any(|t| t["id"] == token_id.as_str()));
    assert!(!listed.to_string().contains(&secret), "a token's secret is shown once only");

    let device = s.bearer(&secret);
    let actor = format!("device:{}", cart.id);
    let refusals = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM audit_events WHERE actor = $1 AND outcome = 'denied'",
        )
        .bind(&actor)
        .fetch_one(s.state.db.pool())
        .await
        .unwrap()
    };
    let mut n = 100;
    for (site, user, study) in
        [("island-clinic", "dr-zhao", ISLAND_STUDY), ("mountain-clinic", "dr-ma", MOUNTAIN_STUDY)]
    {
        n += 1;
        for case in cases(&s, site, user, study, n).await {
            let before = refusals().await;
            let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
            let mut r = device.req(method, &case.path);
            if let Some((ct, bytes)) = &case.raw {
                r = r.header("content-type", ct).body(bytes.clone());
            } else if let Some(b) = &case.body {
                r = r.json(b);
            }
            for (k, v) in &case.headers {
                r = r.header(*k, v);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            if case.action == "imaging.store" {
                // Always for the device's own site, whatever the case aims at.
                let want =
                    case.allowed_status.map_or((200..300).contains(&status), |w| w == status);
                assert!(want, "{} {}: {status}", case.method, case.path);
            } else {
                let (st, p) = problem(r).await;
                assert_eq!((st, p["code"].as_str().unwrap()), (403, "forbidden"), "{}", case.path);
                assert_eq!(refusals().await, before + 1, "{}: refusal not recorded", case.path);
            }
        }
    }
    for path in ["/api/me", "/api/turn", "/api/ecgs", "/api/consults", "/api/sites"] {
        let (st, p) = problem(device.get(path).await).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (403, "forbidden"), "{path}");
    }

    // What it sends: an ECG file, a DICOM ECG by resumable upload, a CT by STOW-RS — all for
    // the island clinic, recorded as the cart's.
    let muse = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ecg/muse-guangxi-sinus-rhythm.xml"
    ))
    .unwrap();
    let r = device.req(reqwest::Method::POST, "/api/ecgs").body(muse).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let ecg: Value = r.json().await.unwrap();
    assert_eq!(ecg["site"], "island-clinic");
    let up = crate::support::upload_whole(
        &device,
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ecg/ecg2dcm-guangxi-sinus-rhythm.dcm"
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(up["stored"].as_array().map(|a| a.len()), Some(1), "{up}");
    let dir = tempfile::tempdir().unwrap();
    let slice = dir.path().join("slice.dcm");
    crate::support::synthetic_instance(&slice, 1);
    let (st, _) = device.stow("/dicomweb/studies", &[&std::fs::read(&slice).unwrap()]).await;
    assert_eq!(st, 200);
    // The cart's two, and the one the matrix's fixture sent for the island clinic.
    let ecgs: Value = zhao.get("/api/ecgs").await.json().await.unwrap();
    assert_eq!(ecgs["ecgs"].as_array().unwrap().len(), 3, "{ecgs}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE actor = $1 AND action = 'ecg.stored'",
    )
    .bind(&actor)
    .fetch_one(s.state.db.pool())
    .await
    .unwrap();
    assert_eq!(stored, 1);

    // Revoked: refused at once. A device removed takes its tokens with it.
    let r = admin.send("DELETE", &format!("/api/device-tokens/{token_id}"), None).await;
    assert_eq!(r.status(), 200);
    let (st, p) =
        problem(device.req(reqwest::Method::POST, "/api/ecgs").body("x").send().await.unwrap())
            .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (401, "token_revoked"));
    let r = admin.post(&path, json!({"label": "again"})).await;
    let again = s.bearer(r.json::<Value>().await.unwrap()["secret"].as_str().unwrap());
    assert_eq!(
        admin.send("DELETE", &format!("/api/devices/{}", cart.id), None).await.status(),
        204
    );
    let (st, p) =
        problem(again.req(reqwest::Method::POST, "/api/ecgs").body("x").send().await.unwrap())
            .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (401, "token_invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_manage_their_own_tokens_and_read_themselves() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    assert_eq!(zhao.get("/api/users/dr-zhao").await.status(), 200);
    assert_eq!(zhao.get("/api/users/dr-zhao/tokens").await.status(), 200);
    let r = zhao.post("/api/users/dr-zhao/tokens", json!({"label": "mine"})).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["token"]["id"].as_str().unwrap().to_string();
    // Someone else's token, even at the same site: refused.
    let (st, _) =
        problem(s.login("dr-ma").await.send("DELETE", &format!("/api/tokens/{id}"), None).await)
            .await;
    assert_eq!(st, 403);
    assert_eq!(zhao.send("DELETE", &format!("/api/tokens/{id}"), None).await.status(), 200);
    // A clinician cannot change their own roles.
    let (st, _) =
        problem(zhao.send("PATCH", "/api/users/dr-zhao", Some(json!({"roles": ["admin"]}))).await)
            .await;
    assert_eq!(st, 403);
}

/// The scenario: a clinician of island-clinic reaches for another site's admin data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn island_clinician_reading_city_admin_data_is_denied_and_audited() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    for path in [
        "/api/sites/city-hospital/users",
        "/api/sites/city-hospital/devices",
        "/api/audit?site=city-hospital",
        "/api/users/dr-li",
    ] {
        let (st, p) = problem(zhao.get(path).await).await;
        assert_eq!(st, 403, "{path}");
        assert!(p["detail"].as_str().unwrap().contains("admin"), "{p}");
    }
    let events = audit_events(&s, "user=dr-zhao&outcome=denied").await;
    assert_eq!(events.len(), 4);
    let e = events.iter().find(|e| e["action"] == "user.list").unwrap();
    assert_eq!(e["actor_site"], "island-clinic");
    assert_eq!(e["site"], "city-hospital");
    assert_eq!(e["resource_kind"], "user");
    assert_eq!(e["client_addr"], "127.0.0.1");
    assert!(e["at"].as_str().unwrap().starts_with("20"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_viewer_filters_and_exports_csv_within_scope() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    assert_eq!(zhao.get("/api/sites/mountain-clinic/users").await.status(), 403);
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.get("/api/sites/island-clinic/devices").await.status(), 403);
    operator::add_user(
        &s.state,
        &"island-clinic".parse().unwrap(),
        NewUser {
            id: "island-admin".parse().unwrap(),
            display_name: "Island admin".into(),
            roles: vec![Role::Admin],
            specialties: vec![],
            password: Some("island-admin-pw".into()),
        },
    )
    .await
    .unwrap();

    let admin = s.login("admin").await;
    let r = admin.get("/api/audit.csv?outcome=denied").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains("ferry-audit.csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,actor,actor_site,site,action,resource_kind,resource_id,outcome,client_addr,detail"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1]
            .contains(",dr-ma,mountain-clinic,island-clinic,device.list,device,,denied,127.0.0.1,")
    );
    assert!(
        lines[2]
            .contains(",dr-zhao,island-clinic,mountain-clinic,user.list,user,,denied,127.0.0.1,")
    );

    // Time filters: nothing before 2000, everything since.
    let none: Value = admin.get("/api/audit?to=2000-01-01").await.json().await.unwrap();
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
    let (st, p) = problem(admin.get("/api/audit?from=last-tuesday").await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (400, "invalid_query"));
    let (st, _) = problem(admin.get("/api/audit?colour=blue").await).await;
    assert_eq!(st, 400);
    let r: Value = admin.get("/api/audit?resource=device&limit=1").await.json().await.unwrap();
    assert_eq!(r["events"].as_array().unwrap().len(), 1);
    assert!(r["next_before"].is_i64());

    // The island admin sees island matters (both denials touch island), not city logins.
    let ia = s.login_pw("island-admin", "island-admin-pw").await.unwrap();
    let v: Value = ia.get("/api/audit?limit=1000").await.json().await.unwrap();
    let events = v["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["actor"] == "dr-ma"));
    assert!(
        events.iter().all(|e| e["site"] == "island-clinic" || e["actor_site"] == "island-clinic"),
        "{v}"
    );
    assert!(!events.iter().any(|e| e["actor"] == "admin"));
    let (st, _) = problem(ia.get("/api/audit?site=city-hospital").await).await;
    assert_eq!(st, 403);
    // Non-admins cannot read the trail at all.
    let (st, _) = problem(zhao.get("/api/audit").await).await;
    assert_eq!(st, 403);
}
