//! Reading centres over HTTP, DIMSE and the WebSocket, on SQLite and PostgreSQL: routing makes
//! one request per study however its instances arrive (many C-STOREs and STOW-RS at once),
//! an ECG from the cart is routed at once, two readers claiming at once cannot both win, and a
//! signed report reaches the clinic live and never changes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::consult::Ws;
use crate::support::{Obj, Sql, TestServer, testfile_path};

backend_tests!(sqlite => crate::support::Sql::Sqlite, postgres => crate::support::Sql::Postgres;
[
    a_study_sent_as_many_instances_is_one_request,
    two_readers_claiming_at_once_one_wins,
    a_signed_report_reaches_the_clinic_and_never_changes,
    an_unacknowledged_critical_result_escalates_and_the_call_is_logged,
    where_reading_is_two_step_a_junior_drafts_and_a_senior_signs,
]);

async fn start(sql: Sql) -> TestServer {
    let s = TestServer::start_with(sql, Obj::Local, &[("FERRY__READING__QUIET_SECS", "30")]).await;
    ferry::demo::seed_routing(&s.state).await.unwrap();
    s
}

async fn worklist(c: &crate::support::Client, query: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/readings{query}")).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["readings"].as_array().unwrap().clone()
}

/// A CT of 24 slices arriving at once by two paths — 16 C-STOREs from the island's CT on
/// one association, and 8 STOW-RS requests from the clinic's PC — is one reading request of
/// the city hospital, counting every instance, shared with the centre in its transaction, and
/// ready once quiet. An ECG from the cart's token is a ready ECG request at once.
async fn a_study_sent_as_many_instances_is_one_request(sql: Sql) {
    let s = start(sql).await;
    let mut centre = Ws::open(&s, "dr-li").await;
    let dir = tempfile::tempdir().unwrap();
    let study = crate::support::synthetic_series(dir.path(), 24, 1);
    let files: Vec<String> = (0..16)
        .map(|i| dir.path().join(format!("{i}.dcm")).to_str().unwrap().to_string())
        .collect();
    let port = s.dimse_port.to_string();
    let dimse = std::thread::spawn(move || {
        let mut args = vec!["-aet".to_string(), "ISLANDCT".into(), "-aec".into(), "FERRY".into()];
        args.extend(["127.0.0.1".to_string(), port]);
        args.extend(files);
        std::process::Command::new("/usr/bin/storescu").args(&args).output().unwrap()
    });
    let zhao = s.login("dr-zhao").await;
    let mut stows = vec![];
    for i in 16..24 {
        let c = zhao.clone();
        let bytes = std::fs::read(dir.path().join(format!("{i}.dcm"))).unwrap();
        stows.push(tokio::spawn(async move { c.stow("/dicomweb/studies", &[&bytes]).await.0 }));
    }
    for t in stows {
        assert_eq!(t.await.unwrap(), 200);
    }
    let out = tokio::task::spawn_blocking(move || dimse.join().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The radiologist's open page is told of the new request (once, however many instances).
    let told = tokio::time::timeout(
        Duration::from_secs(2),
        centre.find(|m| m["type"] == "reading" && m["event"] == "requested"),
    )
    .await
    .expect("the centre is told within 2 s");
    let li = s.login("dr-li").await;
    let list = worklist(&li, "?state=collecting,ready").await;
    assert_eq!(told["reading"], list[0]["id"]);
    let mine: Vec<&Value> = list.iter().filter(|r| r["study_uid"] == study.as_str()).collect();
    assert_eq!(mine.len(), 1, "{list:?}");
    let r = mine[0];
    assert_eq!(
        (&r["kind"], &r["state"], &r["instances"], &r["sending_site"], &r["modality"]),
        (
            &json!("imaging"),
            &json!("collecting"),
            &json!(24),
            &json!("island-clinic"),
            &json!("CT")
        )
    );
    assert!(r["study"]["patient_id"].is_string(), "the worklist shows the patient: {r}");
    // Shared with the centre: the radiologist can open the study; nobody else's site can.
    assert_eq!(li.get(&format!("/dicomweb/studies/{study}/series")).await.status(), 200);
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.get(&format!("/dicomweb/studies/{study}/series")).await.status(), 404);
    let routed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'reading.routed' AND resource_id = $1",
    )
    .bind(r["id"].as_str().unwrap())
    .fetch_one(s.state.db.pool())
    .await
    .unwrap();
    assert_eq!(routed, 1);
    // Claiming is for ready requests: the study is still arriving.
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(li.post(&format!("/api/readings/{id}/claim"), json!({})).await.status(), 409);
    // Quiet for 30 s (the clock driven): ready.
    let later = ferry::time::now_ms() + 31_000;
    assert!(ferry::reading::http::timers_once(&s.state, later).await.unwrap() >= 1);
    let r: Value = li.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    assert_eq!(r["state"], "ready");
    assert!(r["can"].as_array().unwrap().contains(&json!("claim")), "{r}");

    // The cart's ECG: an ECG request, ready at once, for the ECG readers.
    let cart = s.bearer(&ferry::demo::cart_token(crate::support::DEMO_PASSWORD));
    let muse = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ecg/muse-guangxi-sinus-rhythm.xml"
    ))
    .unwrap();
    let r = cart.req(reqwest::Method::POST, "/api/ecgs").body(muse).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let ecg: Value = r.json().await.unwrap();
    let chen = s.login("dr-chen").await;
    let list = worklist(&chen, "?kind=ecg").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((&list[0]["ecg_id"], &list[0]["state"]), (&ecg["id"], &json!("ready")));
    assert_eq!(chen.get(&format!("/api/ecgs/{}", ecg["id"].as_str().unwrap())).await.status(), 200);
    // The radiologist's worklist filtered to ECGs is the same list; an ECG reader cannot
    // claim the CT.
    let (st, _) =
        crate::support::problem(chen.post(&format!("/api/readings/{id}/claim"), json!({})).await)
            .await;
    assert_eq!(st, 403);
    // The clinic sees its two requests.
    let sent = worklist(&zhao, "").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let _ = testfile_path;
}

/// Two radiologists claim the same request at the same moment, ten times over: each time
/// exactly one wins, and the loser is told someone else has it.
async fn two_readers_claiming_at_once_one_wins(sql: Sql) {
    let s = start(sql).await;
    ferry::operator::add_user(
        &s.state,
        &"city-hospital".parse().unwrap(),
        ferry::network::NewUser {
            id: "dr-wang".parse().unwrap(),
            display_name: "Dr Wang".into(),
            roles: vec![ferry::network::Role::Specialist],
            specialties: vec!["radiology".parse().unwrap()],
            password: Some("wang-password-1".into()),
        },
    )
    .await
    .unwrap();
    let zhao = s.login("dr-zhao").await;
    assert_eq!(
        zhao.stow("/dicomweb/studies", &[&crate::support::testfile("CT_small.dcm")]).await.0,
        200
    );
    let mine = worklist(&zhao, "").await;
    let id = mine[0]["id"].as_str().unwrap().to_string();
    // The clinic sends it for reading at once (no need to wait for the quiet time).
    let r = zhao.post(&format!("/api/readings/{id}/send"), json!({})).await;
    assert_eq!(r.status(), 200);
    let li = s.login("dr-li").await;
    let wang = s.login_pw("dr-wang", "wang-password-1").await.unwrap();
    let mut wins = [0, 0];
    for round in 0..10 {
        let path = format!("/api/readings/{id}/claim");
        let (a, b) = tokio::join!(li.post(&path, json!({})), wang.post(&path, json!({})));
        let (sa, sb) = (a.status().as_u16(), b.status().as_u16());
        assert!((sa, sb) == (200, 409) || (sa, sb) == (409, 200), "round {round}: {sa} and {sb}");
        let winner = if sa == 200 { 0 } else { 1 };
        wins[winner] += 1;
        let who = if winner == 0 { &li } else { &wang };
        let r = who.post(&format!("/api/readings/{id}/release"), json!({})).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(wins[0] + wins[1], 10);
    let claims: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'reading.claim' AND outcome = 'success' AND resource_id = $1",
    )
    .bind(&id)
    .fetch_one(s.state.db.pool())
    .await
    .unwrap();
    assert_eq!(claims, 10);
}

/// The radiologist claims, drafts and signs; the clinic's clinician, connected, is told at
/// once and reads the report; the signed report never changes in the database (the schema
/// refuses it); an amendment is a new signed version with its reason.
async fn a_signed_report_reaches_the_clinic_and_never_changes(sql: Sql) {
    let s = start(sql).await;
    let zhao = s.login("dr-zhao").await;
    assert_eq!(
        zhao.stow("/dicomweb/studies", &[&crate::support::testfile("CT_small.dcm")]).await.0,
        200
    );
    let id = worklist(&zhao, "").await[0]["id"].as_str().unwrap().to_string();
    let r = zhao.post(&format!("/api/readings/{id}/send"), json!({})).await;
    assert_eq!(r.status(), 200);
    let mut clinic = Ws::open(&s, "dr-zhao").await;
    let li = s.login("dr-li").await;
    assert_eq!(li.post(&format!("/api/readings/{id}/claim"), json!({})).await.status(), 200);
    // Waiting to be read: /metrics says so, per priority.
    let metrics = s.anonymous().get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("ferry_reading_waiting{priority=\"routine\"} 1"), "{metrics}");
    assert!(metrics.contains("ferry_reading_waiting{priority=\"stat\"} 0"));
    assert!(metrics.contains("ferry_reading_oldest_waiting_seconds{priority=\"routine\"}"));
    let draft = json!({"findings": "草稿", "impression": "待定"});
    assert_eq!(li.post(&format!("/api/readings/{id}/draft"), draft).await.status(), 200);
    let report = json!({"findings": "右肺下叶见小结节，约4毫米。", "impression": "肺结节，建议12个月后复查。"});
    let r = li.post(&format!("/api/readings/{id}/sign"), report.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let pushed = tokio::time::timeout(
        Duration::from_secs(2),
        clinic.find(|m| m["type"] == "reading" && m["event"] == "sign"),
    )
    .await
    .expect("the clinic is told within 2 s");
    assert_eq!((&pushed["reading"], &pushed["state"]), (&json!(id), &json!("signed")));
    let got: Value = zhao.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    let signed = &got["reports"][0];
    assert_eq!((&signed["version"], &signed["signed_by"]), (&json!(1), &json!("dr-li")));
    assert_eq!(signed["body"]["impression"], report["impression"]);
    let body: ferry::reading::ReportBody = serde_json::from_value(signed["body"].clone()).unwrap();
    assert_eq!(
        signed["content_sha256"],
        ferry::reading::content_hash(&id, 1, &body, "dr-li", signed["signed_at"].as_i64().unwrap())
    );
    // On paper: one A4 page, Chinese as text; in the archive: an Encapsulated PDF in the
    // study, which the clinic retrieves by WADO-RS like any instance.
    let r = zhao.get(&format!("/api/readings/{id}/report.pdf?lang=zh-CN")).await;
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.pdf"), &pdf).unwrap();
    let text = std::process::Command::new("pdftotext")
        .args([dir.path().join("r.pdf").to_str().unwrap(), "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("肺结节，建议12个月后复查。") && text.contains("诊断意见"), "{text}");
    let study = got["study_uid"].as_str().unwrap().to_string();
    let instances: Vec<Value> =
        zhao.get(&format!("/dicomweb/studies/{study}/instances")).await.json().await.unwrap();
    let doc: Vec<&Value> = instances
        .iter()
        .filter(|i| crate::support::dj(i, "00080016") == ferry::reading::report::ENCAPSULATED_PDF)
        .collect();
    assert_eq!(doc.len(), 1, "{instances:?}");
    let series = crate::support::dj(doc[0], "0020000E").as_str().unwrap();
    let sop = crate::support::dj(doc[0], "00080018").as_str().unwrap();
    let (st, parts) =
        zhao.wado(&format!("/dicomweb/studies/{study}/series/{series}/instances/{sop}")).await;
    assert_eq!((st, parts.len()), (200, 1));
    let at = parts[0].windows(5).position(|w| w == b"%PDF-").expect("the PDF inside");
    assert!(parts[0][at..].windows(5).any(|w| w == b"%%EOF"));
    // Filing the report did not touch the signed request (no new request, no count).
    let again: Value = zhao.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    assert_eq!((&again["instances"], &again["state"]), (&got["instances"], &json!("signed")));
    assert_eq!(worklist(&zhao, "?state=collecting,ready,claimed,signed").await.len(), 1);
    // For hospital systems: the request and the report as FHIR, read by the PyPI models.
    let token = |user: &str| {
        let out = s.cli(&["token", "create", "--user", user]);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    for who in ["dr-zhao", "dr-li"] {
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/fhir_check.py"))
            .args([&s.url, &token(who)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let fid = id.replace('_', ".");
        assert_eq!(v["requests"][0]["id"], fid.as_str(), "{who}: {v}");
        assert_eq!(
            (
                &v["requests"][0]["status"],
                &v["requests"][0]["intent"],
                &v["requests"][0]["priority"]
            ),
            (&json!("completed"), &json!("order"), &json!("routine"))
        );
        assert!(v["requests"][0]["full_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
        assert_eq!(v["reports"][0]["conclusion"], report["impression"]);
        assert_eq!(v["reports"][0]["based_on"], format!("ServiceRequest/{fid}"));
        assert_eq!((&v["read"], &v["read_report"]), (&json!(fid), &json!(fid)));
    }
    // Another clinic's FHIR search holds nothing of it, and reading it is a 404.
    let ma_token = token("dr-ma");
    let ma_bearer = s.bearer(&ma_token);
    let b: Value = ma_bearer.get("/fhir/ServiceRequest").await.json().await.unwrap();
    assert_eq!(b["total"], 0);
    let fid = id.replace('_', ".");
    assert_eq!(ma_bearer.get(&format!("/fhir/DiagnosticReport/{fid}")).await.status(), 404);
    // The schema refuses to change or remove it.
    let db = s.state.db.pool();
    assert!(sqlx::query("UPDATE reading_reports SET body = '{}'").execute(db).await.is_err());
    assert!(sqlx::query("DELETE FROM reading_reports").execute(db).await.is_err());
    // An amendment: a second version with its reason; the first stays.
    let (st, _) = crate::support::problem(
        li.post(&format!("/api/readings/{id}/amend"), json!({"impression": "x", "reason": " "}))
            .await,
    )
    .await;
    assert_eq!(st, 400);
    let amended = json!({"findings": "右肺下叶见小结节，约4毫米。", "impression": "肺结节，建议6个月后复查。", "reason": "随访间隔更正"});
    assert_eq!(li.post(&format!("/api/readings/{id}/amend"), amended).await.status(), 200);
    let got: Value = zhao.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    let reports = got["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["body"]["impression"], report["impression"]);
    assert_eq!(reports[1]["reason"], "随访间隔更正");
    // The clinic acknowledges the report; the radiologist cannot do it for them.
    assert_eq!(li.post(&format!("/api/readings/{id}/acknowledge"), json!({})).await.status(), 403);
    let r: Value = zhao
        .post(&format!("/api/readings/{id}/acknowledge"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["acknowledged_by"], "dr-zhao");
    // The centre's turnaround: received → claimed → signed → acknowledged, each measured.
    let t: Value = li.get("/api/reading-stats?days=7").await.json().await.unwrap();
    let row = &t["rows"][0];
    assert_eq!(
        (&row["kind"], &row["priority"], &row["sending_site"], &row["count"]),
        (&json!("imaging"), &json!("routine"), &json!("island-clinic"), &json!(1))
    );
    for interval in ["claimed", "signed", "acknowledged"] {
        assert_eq!(row[interval]["n"], 1, "{interval}: {t}");
        assert!(row[interval]["p50_ms"].as_i64().unwrap() >= 0, "{interval}: {t}");
    }
    assert_eq!(row["within_sla"], 1.0);
    let csv = li.get("/api/reading-stats?days=30&format=csv").await.text().await.unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("imaging,routine,island-clinic,1,"), "{csv}");
    let metrics = s.anonymous().get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("ferry_reading_waiting{priority=\"routine\"} 0"), "{metrics}");
    // The clinic's list of signed requests holds it; another clinic cannot see it.
    assert_eq!(worklist(&zhao, "?state=signed").await.len(), 1);
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.get(&format!("/api/readings/{id}")).await.status(), 404);
    assert_eq!(worklist(&ma, "?state=signed").await.len(), 0);
    // The same patient's next CT: the radiologist sees the earlier one beside it, with its
    // report's impression.
    let dir = tempfile::tempdir().unwrap();
    let next = dir.path().join("next.dcm");
    let next_study = crate::support::synthetic_instance(&next, 1);
    assert_eq!(zhao.stow("/dicomweb/studies", &[&std::fs::read(&next).unwrap()]).await.0, 200);
    let open = worklist(&li, "?state=collecting").await;
    let new_id = open.iter().find(|r| r["study_uid"] == next_study.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got: Value = li.get(&format!("/api/readings/{new_id}")).await.json().await.unwrap();
    let priors = got["priors"].as_array().unwrap();
    assert_eq!(priors.len(), 1, "{got}");
    assert_eq!((&priors[0]["study_uid"], &priors[0]["reading"]), (&json!(study), &json!(id)));
    assert_eq!(priors[0]["impression"], "肺结节，建议6个月后复查。");
}

/// The ECG reader marks ventricular tachycardia on the cart's ECG. The clinic's clinician is
/// told at once (a banner in the page); nobody acknowledges; after
/// `reading.critical_ack_minutes` (the clock driven) it escalates — the clinic's admin and the
/// reader are told — the reader logs the phone call, and the clinician acknowledges with a
/// read-back line. Every step is timestamped and audited, in order.
async fn an_unacknowledged_critical_result_escalates_and_the_call_is_logged(sql: Sql) {
    let s = start(sql).await;
    ferry::operator::add_user(
        &s.state,
        &"island-clinic".parse().unwrap(),
        ferry::network::NewUser {
            id: "island-admin".parse().unwrap(),
            display_name: "Island admin".into(),
            roles: vec![ferry::network::Role::Admin],
            specialties: vec![],
            password: Some("island-admin-pw".into()),
        },
    )
    .await
    .unwrap();
    let mut clinic = Ws::open(&s, "dr-zhao").await;
    let mut clinic_admin = Ws::open(&s, "island-admin").await;
    let mut reader = Ws::open(&s, "dr-chen").await;
    let cart = s.bearer(&ferry::demo::cart_token(crate::support::DEMO_PASSWORD));
    let scp =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ecg/scp-ecg-example.scp"))
            .unwrap();
    let r = cart.req(reqwest::Method::POST, "/api/ecgs").body(scp).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let chen = s.login("dr-chen").await;
    let id = worklist(&chen, "?kind=ecg").await[0]["id"].as_str().unwrap().to_string();
    // Not before claiming; not a finding of the list; not by the radiologist.
    let vt = json!({"finding": "vt", "note": "HR 190, wide QRS"});
    assert_eq!(chen.post(&format!("/api/readings/{id}/critical"), vt.clone()).await.status(), 409);
    assert_eq!(chen.post(&format!("/api/readings/{id}/claim"), json!({})).await.status(), 200);
    // The centre's ECG template follows the measurements in a new report.
    let admin = s.login("admin").await;
    let tpl =
        json!({"kind": "ecg", "modality": "", "findings": "节律：", "impression": "请结合临床"});
    let r = admin.send("PUT", "/api/sites/city-hospital/reading-templates", Some(tpl)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        chen.send(
            "PUT",
            "/api/sites/city-hospital/reading-templates",
            Some(json!({"kind": "ecg"}))
        )
        .await
        .status(),
        403
    );
    let got: Value = chen.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    assert!(got["can"].as_array().unwrap().contains(&json!("critical")), "{got}");
    let findings = got["template"]["findings"].as_str().unwrap();
    assert!(findings.starts_with("HR ") && findings.ends_with("节律："), "{got}");
    assert_eq!(got["template"]["impression"], "请结合临床");
    let listed: Value =
        chen.get("/api/sites/city-hospital/reading-templates").await.json().await.unwrap();
    assert_eq!(listed["templates"][0]["updated_by"], "admin");
    let (st, _) = crate::support::problem(
        chen.post(&format!("/api/readings/{id}/critical"), json!({"finding": "flu"})).await,
    )
    .await;
    assert_eq!(st, 400);
    let li = s.login("dr-li").await;
    assert_eq!(li.post(&format!("/api/readings/{id}/critical"), vt.clone()).await.status(), 403);
    let r = chen.post(&format!("/api/readings/{id}/critical"), vt).await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    let cid = c["id"].as_str().unwrap().to_string();
    let banner = tokio::time::timeout(
        Duration::from_secs(2),
        clinic.find(|m| m["type"] == "critical" && m["event"] == "raised"),
    )
    .await
    .expect("the clinic is told within 2 s");
    assert_eq!((&banner["critical"], &banner["reading"]), (&json!(cid), &json!(id)));
    let zhao = s.login("dr-zhao").await;
    let open: Value = zhao.get("/api/critical").await.json().await.unwrap();
    assert_eq!(open["critical"][0]["finding"], "vt");
    assert!(open["critical"][0]["acknowledged_at"].is_null());
    // Another clinic knows nothing of it.
    let ma = s.login("dr-ma").await;
    let theirs: Value = ma.get("/api/critical").await.json().await.unwrap();
    assert_eq!(theirs["critical"].as_array().unwrap().len(), 0);
    assert_eq!(
        ma.post(&format!("/api/critical/{cid}/acknowledge"), json!({"readback": "x"}))
            .await
            .status(),
        404
    );

    // Ten minutes pass (the clock driven): not yet at 9, escalated at 10, once.
    let raised = c["raised_at"].as_i64().unwrap();
    let at = |min: i64| raised + min * 60_000 + 1;
    ferry::reading::http::timers_once(&s.state, at(9)).await.unwrap();
    let now: Value = zhao.get("/api/critical").await.json().await.unwrap();
    assert!(now["critical"][0]["escalated_at"].is_null());
    ferry::reading::http::timers_once(&s.state, at(10)).await.unwrap();
    ferry::reading::http::timers_once(&s.state, at(11)).await.unwrap();
    for ws in [&mut clinic_admin, &mut reader] {
        let m = tokio::time::timeout(
            Duration::from_secs(2),
            ws.find(|m| m["type"] == "critical" && m["event"] == "escalated"),
        )
        .await
        .expect("told of the escalation");
        assert_eq!(m["critical"], cid.as_str());
    }
    let now: Value = chen.get("/api/critical").await.json().await.unwrap();
    assert_eq!(now["critical"][0]["escalated_at"].as_i64(), Some(at(10)));
    // The reader phones the number on the request and logs it.
    let r = chen
        .post(
            &format!("/api/critical/{cid}/calls"),
            json!({"outcome": "reached", "note": "spoke to Dr Zhao"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let logged: Value = r.json().await.unwrap();
    assert_eq!(
        (&logged["calls"][0]["by"], &logged["calls"][0]["outcome"]),
        (&json!("dr-chen"), &json!("reached"))
    );
    // The clinician acknowledges with the read-back line (required), once.
    let path = format!("/api/critical/{cid}/acknowledge");
    assert_eq!(zhao.post(&path, json!({"readback": "  "})).await.status(), 400);
    assert_eq!(chen.post(&path, json!({"readback": "VT"})).await.status(), 403);
    let r = zhao.post(&path, json!({"readback": "室性心动过速，已安排转诊"})).await;
    assert_eq!(r.status(), 200);
    let acked: Value = r.json().await.unwrap();
    assert_eq!(
        (&acked["acknowledged_by"], &acked["readback"]),
        (&json!("dr-zhao"), &json!("室性心动过速，已安排转诊"))
    );
    assert_eq!(zhao.post(&path, json!({"readback": "again"})).await.status(), 409);
    ferry::reading::http::timers_once(&s.state, at(30)).await.unwrap();
    // The trail: raised, escalated, call, acknowledged — in that order, each once.
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'critical.%' AND outcome = 'success' ORDER BY id",
    )
    .fetch_all(s.state.db.pool())
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["critical.raised", "critical.escalated", "critical.call", "critical.acknowledged"]
    );
}

/// With `reading.two_step`, dr-li (a radiologist without the `senior` specialty) claims and
/// drafts but cannot sign; he submits the draft, which waits for a senior; he cannot take it
/// back, dr-wang (senior) does and signs. The report names both, on screen and on paper.
async fn where_reading_is_two_step_a_junior_drafts_and_a_senior_signs(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[("FERRY__READING__TWO_STEP", "true")]).await;
    ferry::demo::seed_routing(&s.state).await.unwrap();
    ferry::operator::add_user(
        &s.state,
        &"city-hospital".parse().unwrap(),
        ferry::network::NewUser {
            id: "dr-wang".parse().unwrap(),
            display_name: "Dr Wang".into(),
            roles: vec![ferry::network::Role::Specialist],
            specialties: vec!["radiology".parse().unwrap(), "senior".parse().unwrap()],
            password: Some("wang-password-1".into()),
        },
    )
    .await
    .unwrap();
    let zhao = s.login("dr-zhao").await;
    assert_eq!(
        zhao.stow("/dicomweb/studies", &[&crate::support::testfile("CT_small.dcm")]).await.0,
        200
    );
    let id = worklist(&zhao, "").await[0]["id"].as_str().unwrap().to_string();
    assert_eq!(zhao.post(&format!("/api/readings/{id}/send"), json!({})).await.status(), 200);
    let li = s.login("dr-li").await;
    assert_eq!(li.post(&format!("/api/readings/{id}/claim"), json!({})).await.status(), 200);
    let report = json!({"findings": "左肺上叶磨玻璃结节。", "impression": "建议三个月复查。"});
    let (st, p) =
        crate::support::problem(li.post(&format!("/api/readings/{id}/sign"), report.clone()).await)
            .await;
    assert_eq!(st, 403, "{p}");
    let got: Value = li.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    assert!(got["can"].as_array().unwrap().contains(&json!("submit")), "{got}");
    assert!(!got["can"].as_array().unwrap().contains(&json!("sign")), "{got}");
    let r: Value =
        li.post(&format!("/api/readings/{id}/submit"), report.clone()).await.json().await.unwrap();
    assert_eq!((&r["state"], &r["drafted_by"]), (&json!("review"), &json!("dr-li")));
    // In the worklist for the seniors; not for the junior to take back.
    assert_eq!(worklist(&li, "?state=review").await.len(), 1);
    assert_eq!(li.post(&format!("/api/readings/{id}/claim"), json!({})).await.status(), 403);
    let wang = s.login_pw("dr-wang", "wang-password-1").await.unwrap();
    assert_eq!(wang.post(&format!("/api/readings/{id}/claim"), json!({})).await.status(), 200);
    let got: Value = wang.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    assert_eq!(
        got["draft"]["impression"], report["impression"],
        "the senior starts from the draft"
    );
    assert_eq!(wang.post(&format!("/api/readings/{id}/sign"), report).await.status(), 200);
    let got: Value = zhao.get(&format!("/api/readings/{id}")).await.json().await.unwrap();
    let signed = &got["reports"][0];
    assert_eq!((&signed["signed_by"], &signed["drafted_by"]), (&json!("dr-wang"), &json!("dr-li")));
    let pdf =
        zhao.get(&format!("/api/readings/{id}/report.pdf?lang=zh-CN")).await.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.pdf"), &pdf).unwrap();
    let text = std::process::Command::new("pdftotext")
        .args([dir.path().join("r.pdf").to_str().unwrap(), "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("Dr Wang") && text.contains("初稿医师: Dr Li"), "{text}");
}
