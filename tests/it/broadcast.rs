//! Training sessions over HTTP, on both databases: a trainer schedules; the sites of the
//! audience (subtrees expanded) and the trainer's own site see a session, no other; calendar
//! entries; refusals and wrong input answered clearly and audited.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Client, Obj, Sql, TestServer, audit_events, problem};

fn ids(list: &Value) -> Vec<String> {
    list["broadcasts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

async fn sessions_reach_their_audience_only(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let sun = s.login("trainer-sun").await;
    let now = ferry::time::now_ms();
    let day = 86_400_000;
    // In China's time zone, as a trainer there writes it; stored and answered in UTC.
    let t1 = ferry::time::rfc3339(now + 2 * day - (now % 60_000));
    let t1_local = {
        let utc = time::OffsetDateTime::parse(&t1, &time::format_description::well_known::Rfc3339)
            .unwrap();
        utc.to_offset(time::macros::offset!(+8))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let r = sun
        .post(
            "/api/broadcasts",
            json!({"title": "ECG reading, week 3: AV blocks", "description": "心电图 第三周",
                   "starts_at": t1_local, "audience": ["island-clinic"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["starts_at"], t1.as_str(), "stored and answered in UTC");
    assert_eq!(first["minutes"], 60, "an hour unless the trainer says");
    assert_eq!(first["state"], "scheduled");
    assert_eq!(first["trainer"], "trainer-sun");
    assert_eq!(first["site"], "city-hospital");
    assert_eq!(first["audience"], json!([{"site": "island-clinic", "subtree": false}]));
    let first = first["id"].as_str().unwrap().to_string();
    // The second for the county hospital and every site below it, by unix milliseconds.
    let r = sun
        .post(
            "/api/broadcasts",
            json!({"title": "New sepsis protocol", "starts_at": now + day, "minutes": 90,
                   "subtrees": ["county-hospital"]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let second = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // Soonest first; each site sees what is for it.
    for (who, want) in [
        ("dr-zhao", vec![second.clone(), first.clone()]),
        ("dr-ma", vec![second.clone()]),
        ("dr-li", vec![second.clone(), first.clone()]),
        ("trainer-sun", vec![second.clone(), first.clone()]),
    ] {
        let c = s.login(who).await;
        let list: Value = c.get("/api/broadcasts").await.json().await.unwrap();
        assert_eq!(ids(&list), want, "{who}");
        for id in &want {
            assert_eq!(c.get(&format!("/api/broadcasts/{id}")).await.status(), 200, "{who}");
        }
    }
    // Outside the audience the session does not exist, and the refusal is recorded.
    let ma = s.login("dr-ma").await;
    let (st, p) = problem(ma.get(&format!("/api/broadcasts/{first}")).await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (404, "not_found"));
    assert_eq!(ma.get(&format!("/api/broadcasts/{first}/calendar.ics")).await.status(), 404);
    assert_eq!(ma.get(&format!("/api/broadcasts/{first}/health")).await.status(), 404);
    let denied = audit_events(&s, "action=broadcast.read&outcome=denied").await;
    assert!(denied.iter().any(|e| e["resource_id"] == first.as_str() && e["actor"] == "dr-ma"));
    let made = audit_events(&s, "action=broadcast.create").await;
    assert_eq!(made.iter().filter(|e| e["outcome"] == "success").count(), 2);

    // A calendar entry for the island clinic.
    let zhao = s.login("dr-zhao").await;
    let r = zhao.get(&format!("/api/broadcasts/{first}/calendar.ics")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/calendar; charset=utf-8");
    let ics = r.text().await.unwrap().replace("\r\n ", "");
    let stamp: String =
        t1.chars().filter(|c| c.is_ascii_digit() || *c == 'T').take(15).collect::<String>() + "Z";
    assert!(ics.contains(&format!("DTSTART:{stamp}\r\n")), "{ics}");
    assert!(ics.contains("SUMMARY:ECG reading\\, week 3: AV blocks\r\n"), "{ics}");
    assert!(ics.contains("ORGANIZER;CN=Sun Wei:"), "{ics}");
    assert!(ics.contains(&format!("#/broadcasts/{first}")), "{ics}");

    // Only trainers schedule, and a refusal is recorded.
    let (st, p) = problem(
        zhao.post(
            "/api/broadcasts",
            json!({"title": "x", "starts_at": now + day, "audience": ["island-clinic"]}),
        )
        .await,
    )
    .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (403, "forbidden"));
    let denied = audit_events(&s, "action=broadcast.create&outcome=denied").await;
    assert!(denied.iter().any(|e| e["actor"] == "dr-zhao"));
    // Wrong input is named.
    for (body, field) in [
        (json!({"title": " ", "starts_at": now + day, "audience": ["island-clinic"]}), "title"),
        (
            json!({"title": "x", "starts_at": "next Tuesday", "audience": ["island-clinic"]}),
            "starts_at",
        ),
        (
            json!({"title": "x", "starts_at": now - 3 * day, "audience": ["island-clinic"]}),
            "starts_at",
        ),
        (json!({"title": "x", "starts_at": now + day, "audience": []}), "audience"),
        (json!({"title": "x", "starts_at": now + day, "audience": ["atlantis"]}), "audience"),
        (
            json!({"title": "x", "starts_at": now + day, "minutes": 2, "audience": ["island-clinic"]}),
            "minutes",
        ),
    ] {
        let (st, p) = problem(sun.post("/api/broadcasts", body.clone()).await).await;
        assert_eq!(st, 400, "{body}");
        assert!(p["detail"].as_str().unwrap().starts_with(field), "{body}: {p}");
    }
    // A session that ended is no longer listed, unless asked for from before its end.
    let r = sun
        .post(
            "/api/broadcasts",
            json!({"title": "Morning huddle", "starts_at": now - 50 * 60_000, "minutes": 30,
                   "audience": ["island-clinic"]}),
        )
        .await;
    let past = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let list: Value = zhao.get("/api/broadcasts").await.json().await.unwrap();
    assert!(!ids(&list).contains(&past));
    let from = ferry::time::rfc3339(now - 3_600_000);
    let list: Value = zhao.get(&format!("/api/broadcasts?from={from}")).await.json().await.unwrap();
    assert_eq!(ids(&list)[0], past);
}

/// A session for the island clinic, scheduled by trainer-sun and starting now.
async fn island_session(s: &TestServer) -> String {
    island_session_by(&s.login("trainer-sun").await).await
}

/// `island_session` scheduled by the trainer signed in as `sun`.
async fn island_session_by(sun: &Client) -> String {
    let r = sun
        .post(
            "/api/broadcasts",
            json!({"title": "Case conference", "starts_at": ferry::time::now_ms(),
                   "audience": ["island-clinic"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

/// Questions, up-votes and hands: the audience asks and votes, two votes (or two raised hands)
/// at once count once, the trainer hears of each over the socket and marks answers; others
/// may not; outsiders see nothing; every step is in the trail without the question's text.
async fn questions_votes_and_hands_reach_the_trainer(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let mut trainer_ws = crate::consult::Ws::open(&s, "trainer-sun").await;
    let mut zhao_ws = crate::consult::Ws::open(&s, "dr-zhao").await;
    let id = island_session(&s).await;
    // Scheduling told the island clinic's people at once (their home page lists it).
    let m = zhao_ws.find(|m| m["type"] == "broadcast" && m["event"] == "scheduled").await;
    assert_eq!(m["broadcast"], id.as_str());
    let (sun, zhao, li, ma) = (
        s.login("trainer-sun").await,
        s.login("dr-zhao").await,
        s.login("dr-li").await,
        s.login("dr-ma").await,
    );
    let text = "患者 PR 间期 240 ms，是否一度房室传导阻滞？";
    let r = zhao.post(&format!("/api/broadcasts/{id}/questions"), json!({"text": text})).await;
    assert_eq!(r.status(), 201);
    let q: Value = r.json().await.unwrap();
    let qid = q["id"].as_str().unwrap().to_string();
    assert_eq!((q["text"].as_str(), q["author_name"].as_str()), (Some(text), Some("Dr Zhao")));
    // The trainer is told over the socket.
    let m = trainer_ws.find(|m| m["type"] == "broadcast" && m["event"] == "questions").await;
    assert_eq!(m["broadcast"], id.as_str());
    // A second question, later; dr-li (the session's own site) up-votes the first twice at
    // once, and dr-zhao up-votes it too: two votes.
    let r = li.post(&format!("/api/broadcasts/{id}/questions"), json!({"text": "QT?"})).await;
    let second = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let vote = format!("/api/broadcasts/{id}/questions/{qid}/vote");
    let (a, b) = tokio::join!(
        li.send("PUT", &vote, Some(json!({"up": true}))),
        li.send("PUT", &vote, Some(json!({"up": true}))),
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let v: Value = zhao.send("PUT", &vote, Some(json!({"up": true}))).await.json().await.unwrap();
    assert_eq!((v["votes"].as_i64(), v["voted"].as_bool()), (Some(2), Some(true)));
    // Most up-voted first.
    let list: Value =
        sun.get(&format!("/api/broadcasts/{id}/questions")).await.json().await.unwrap();
    let order: Vec<&str> =
        list["questions"].as_array().unwrap().iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(order, [qid.as_str(), second.as_str()]);
    assert_eq!(list["trainer"], true);
    // Only the trainer marks answers; then it goes below the waiting ones.
    let answered = format!("/api/broadcasts/{id}/questions/{qid}/answered");
    let (st, _) = problem(zhao.send("PUT", &answered, Some(json!({"answered": true}))).await).await;
    assert_eq!(st, 403);
    let r = sun.send("PUT", &answered, Some(json!({"answered": true}))).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["answered_at"].is_string());
    let list: Value =
        zhao.get(&format!("/api/broadcasts/{id}/questions")).await.json().await.unwrap();
    assert_eq!(list["questions"][0]["id"], second.as_str());
    assert_eq!(list["questions"][1]["voted"], true);
    assert_eq!(list["trainer"], false);
    // Hands: raised twice at once is one hand; the trainer lowers it; nobody else may.
    let hand = format!("/api/broadcasts/{id}/hand");
    let (a, b) = tokio::join!(
        zhao.send("PUT", &hand, Some(json!({"raised": true}))),
        zhao.send("PUT", &hand, Some(json!({"raised": true}))),
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let list: Value =
        sun.get(&format!("/api/broadcasts/{id}/questions")).await.json().await.unwrap();
    assert_eq!(list["hands"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        (list["hands"][0]["user"].as_str(), list["hands"][0]["name"].as_str()),
        (Some("dr-zhao"), Some("Dr Zhao"))
    );
    let lower = json!({"raised": false, "user": "dr-zhao"});
    let (st, _) = problem(li.send("PUT", &hand, Some(lower.clone())).await).await;
    assert_eq!(st, 403);
    let r: Value = sun.send("PUT", &hand, Some(lower)).await.json().await.unwrap();
    assert_eq!(r["hands"], json!([]));
    // Outside the audience: nothing, not even that the session exists.
    for (method, path, body) in [
        ("GET", format!("/api/broadcasts/{id}/questions"), None),
        ("POST", format!("/api/broadcasts/{id}/questions"), Some(json!({"text": "?"}))),
        ("PUT", vote.clone(), Some(json!({"up": true}))),
        ("PUT", hand.clone(), Some(json!({"raised": true}))),
    ] {
        assert_eq!(ma.send(method, &path, body).await.status(), 404, "{method} {path}");
    }
    // Wrong input, answered clearly.
    for body in [json!({"text": "  "}), json!({"text": "长".repeat(1001)})] {
        let (st, p) =
            problem(zhao.post(&format!("/api/broadcasts/{id}/questions"), body).await).await;
        assert_eq!(st, 400);
        assert!(p["detail"].as_str().unwrap().starts_with("text:"), "{p}");
    }
    let missing = format!("/api/broadcasts/{id}/questions/bq_000000000000000000000000/vote");
    assert_eq!(zhao.send("PUT", &missing, Some(json!({"up": true}))).await.status(), 404);
    // The trail has every step, and never the question's words.
    let mut trail = String::new();
    for a in ["broadcast.ask", "broadcast.vote", "broadcast.answer", "broadcast.hand"] {
        let events = audit_events(&s, &format!("action={a}")).await;
        assert!(!events.is_empty(), "{a} not audited");
        trail.push_str(&serde_json::to_string(&events).unwrap());
    }
    let denied = audit_events(&s, "action=broadcast.answer&outcome=denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(!trail.contains("PR 间期"), "a question's text reached the audit trail");
}

/// An SDP offer from a WebRTC client that will never reach the media port: sending (a
/// presenter) or receiving (a viewer) Opus and VP8.
fn offer(send: bool) -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder()
        .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(std::time::Instant::now());
    let addr = "127.0.0.1:9".parse().unwrap();
    rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").unwrap());
    let dir = if send { Direction::SendOnly } else { Direction::RecvOnly };
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, dir, None, None, None);
    api.add_media(MediaKind::Video, dir, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

async fn post_sdp(c: &Client, path: &str, sdp: String) -> reqwest::Response {
    c.req(reqwest::Method::POST, path)
        .header("content-type", "application/sdp")
        .body(sdp)
        .send()
        .await
        .unwrap()
}

/// Two WHIP offers from the trainer at once: one presents, the other is refused (409), one
/// presenter row in the attendance. A viewer whose client never reaches the UDP port (blocked
/// by a clinic's firewall, or the page closed at once) is dropped after
/// `media.connect_timeout_secs`: it stops counting as connected and its attendance closes.
async fn two_presenters_at_once_and_a_viewer_that_never_connects(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[("FERRY__MEDIA__CONNECT_TIMEOUT_SECS", "2")])
        .await;
    let id = island_session(&s).await;
    let (sun, zhao) = (s.login("trainer-sun").await, s.login("dr-zhao").await);
    let whip = format!("/api/broadcasts/{id}/whip");
    let (a, b) =
        tokio::join!(post_sdp(&sun, &whip, offer(true)), post_sdp(&sun, &whip, offer(true)));
    let mut codes = [a.status().as_u16(), b.status().as_u16()];
    codes.sort();
    assert_eq!(codes, [201, 409]);
    let refused = if a.status() == 409 { a } else { b };
    let (_, p) = problem(refused).await;
    assert_eq!(p["code"], "presenter_connected", "{p}");
    let r = post_sdp(&zhao, &format!("/api/broadcasts/{id}/whep"), offer(false)).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers()["location"].to_str().unwrap().contains("/whep/"));
    let session: Value = zhao.get(&format!("/api/broadcasts/{id}")).await.json().await.unwrap();
    assert_eq!(session["state"], "live");
    // Neither client ever sends a packet: both are dropped after 2 s.
    // Attendance: one presenter connection, one viewer connection, both closed, nothing watched.
    let mut report = Value::Null;
    for _ in 0..50 {
        report = sun.get(&format!("/api/broadcasts/{id}/attendance")).await.json().await.unwrap();
        if report["people"].as_array().is_some_and(|p| p.iter().all(|p| p["left_at"].is_string())) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let people = report["people"].as_array().unwrap();
    let roles: Vec<(&str, &str)> =
        people.iter().map(|p| (p["user"].as_str().unwrap(), p["role"].as_str().unwrap())).collect();
    assert_eq!(roles.len(), 2, "{report}");
    assert!(
        roles.contains(&("trainer-sun", "presenter")) && roles.contains(&("dr-zhao", "viewer"))
    );
    for p in people {
        assert!(p["left_at"].is_string() && p["first_media_at"].is_null(), "{p}");
        assert_eq!(p["watched_seconds"], 0);
        assert_eq!(p["connections"], 1, "{p}");
    }
    // The presenter's place is free again: the trainer can go live from another device.
    let r = post_sdp(&sun, &whip, offer(true)).await;
    assert_eq!(r.status(), 201);
}

/// The stage is the trainer's to give, to someone watching; only that person publishes there,
/// one connection at a time (two offers at once: one 201, one 409); their stage connection is
/// not a second attendance row; stepping down closes it and takes the right away. Each step,
/// and each refusal, is in the trail.
async fn the_stage_is_the_trainers_to_give_to_someone_watching(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let sun = s.login("trainer-sun").await;
    let r = sun
        .post(
            "/api/broadcasts",
            json!({"title": "Case conference", "starts_at": ferry::time::now_ms(),
                   "audience": ["island-clinic", "mountain-clinic"]}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (zhao, ma) = (s.login("dr-zhao").await, s.login("dr-ma").await);
    let stage = format!("/api/broadcasts/{id}/stage");
    let stage_whip = format!("{stage}/whip");
    assert_eq!(
        post_sdp(&zhao, &format!("/api/broadcasts/{id}/whep"), offer(false)).await.status(),
        201
    );
    // The trainer's page sees the island clinic's viewer, still connecting; viewers do not
    // read the sites' health.
    let health = format!("/api/broadcasts/{id}/health");
    let mut seen = Value::Null;
    for _ in 0..40 {
        seen = sun.get(&health).await.json().await.unwrap();
        if seen["sites"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen["sites"][0]["site"], "island-clinic", "{seen}");
    let island = &seen["sites"][0];
    assert_eq!(
        (island["viewers"].as_u64(), island["grade"].as_str()),
        (Some(1), Some("connecting"))
    );
    assert_eq!(seen["viewers"][0]["user"], "dr-zhao", "{seen}");
    assert_eq!(zhao.get(&health).await.status(), 403);
    // Nobody on stage yet: nobody publishes there.
    let (status, p) = problem(post_sdp(&zhao, &stage_whip, offer(true)).await).await;
    assert_eq!(status, 403, "{p}");
    // Only the trainer brings people on stage, and only someone watching.
    let r = zhao.send("PUT", &stage, Some(json!({"user": "dr-zhao"}))).await;
    assert_eq!(r.status(), 403);
    let (status, p) = problem(sun.send("PUT", &stage, Some(json!({"user": "dr-ma"}))).await).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("not_watching")), "{p}");
    let (status, _) =
        problem(sun.send("PUT", &stage, Some(json!({"user": "no such"}))).await).await;
    assert_eq!(status, 400);
    let r = sun.send("PUT", &stage, Some(json!({"user": "dr-zhao"}))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["user"].as_str(), v["name"].as_str()), (Some("dr-zhao"), Some("Dr Zhao")), "{v}");
    // Someone else cannot take the place.
    let (status, _) = problem(post_sdp(&ma, &stage_whip, offer(true)).await).await;
    assert_eq!(status, 403);
    // Two stage offers at once from the person on stage: one connection.
    let (a, b) = tokio::join!(
        post_sdp(&zhao, &stage_whip, offer(true)),
        post_sdp(&zhao, &stage_whip, offer(true))
    );
    let mut codes = [a.status().as_u16(), b.status().as_u16()];
    codes.sort();
    assert_eq!(codes, [201, 409]);
    let (ok, refused) = if a.status() == 201 { (a, b) } else { (b, a) };
    assert!(ok.headers()["location"].to_str().unwrap().contains("/stage/whip/"));
    assert_eq!(problem(refused).await.1["code"], "stage_taken");
    let session: Value = ma.get(&format!("/api/broadcasts/{id}")).await.json().await.unwrap();
    assert_eq!(session["media"]["stage"], "dr-zhao", "{session}");
    // Offered, never connected (this client does no ICE): not connected yet.
    assert_eq!(session["media"]["stage_connected"], false, "{session}");
    // The stage connection is no second attendance row.
    let report: Value =
        sun.get(&format!("/api/broadcasts/{id}/attendance")).await.json().await.unwrap();
    let rows = report["people"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(
        (rows[0]["user"].as_str(), rows[0]["role"].as_str()),
        (Some("dr-zhao"), Some("viewer"))
    );
    // Stepping down: the stage is free, and the right to publish there gone.
    let (status, _) = problem(ma.send("DELETE", &stage, None).await).await;
    assert_eq!(status, 403, "only the trainer or the person on stage ends it");
    let r = zhao.send("DELETE", &stage, None).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["user"].is_null());
    let (status, _) = problem(post_sdp(&zhao, &stage_whip, offer(true)).await).await;
    assert_eq!(status, 403);
    let given = audit_events(&s, "action=broadcast.stage&outcome=success").await;
    let details: Vec<&str> = given.iter().filter_map(|e| e["detail"].as_str()).collect();
    assert!(
        details.contains(&"dr-zhao on stage") && details.contains(&"dr-zhao off stage"),
        "{details:?}"
    );
    let denied = audit_events(&s, "action=broadcast.stage&outcome=denied").await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    let published = audit_events(&s, "action=broadcast.stage_publish").await;
    let outcomes: Vec<&str> = published.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "denied").count(), 3, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 1, "{outcomes:?}");
}

/// A small PDF of about `size` bytes (a page, and a comment to pad it): synthetic, no patient.
pub fn synthetic_pdf(size: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let pad = size.saturating_sub(600);
    for line in 0..pad / 64 {
        out.extend_from_slice(format!("% padding line {line:>6} {}\n", "x".repeat(40)).as_bytes());
    }
    let text = b"BT /F1 24 Tf 72 720 Td (ECG reading, week 3) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{}\nendstream",
            text.len(),
            String::from_utf8_lossy(text)
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut offsets = vec![];
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn with_name(path: &str, name: &str) -> String {
    let mut u = reqwest::Url::parse("http://x/").unwrap();
    u.query_pairs_mut().append_pair("name", name);
    format!("{path}?{}", u.query().unwrap())
}

async fn upload_pdf(c: &Client, path: &str, ct: &str, body: Vec<u8>) -> reqwest::Response {
    c.req(reqwest::Method::POST, path).header("content-type", ct).body(body).send().await.unwrap()
}

/// Materials: the trainer uploads PDFs (two at once, a Chinese name), the audience reads them
/// whole and in ranges under their names, others get 404; wrong uploads are refused clearly;
/// an upload cut off mid-transfer leaves no row and no object; removal takes both. The trail
/// has each step with the material's id and size, never its name.
async fn materials_are_the_trainers_to_add_and_a_cut_upload_leaves_nothing(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let id = island_session(&s).await;
    let (sun, zhao, ma) =
        (s.login("trainer-sun").await, s.login("dr-zhao").await, s.login("dr-ma").await);
    let path = format!("/api/broadcasts/{id}/materials");
    let (one, two) = (synthetic_pdf(300_000), synthetic_pdf(40_000));
    let name = "心电图 第三周 slides.pdf";
    let (p1, p2) = (with_name(&path, name), with_name(&path, "handout.pdf"));
    let (a, b) = tokio::join!(
        upload_pdf(&sun, &p1, "application/pdf", one.clone()),
        upload_pdf(&sun, &p2, "application/pdf", two.clone())
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    let first: Value = a.json().await.unwrap();
    assert_eq!(first["name"], name);
    assert_eq!(first["bytes"], one.len());
    use sha2::Digest;
    assert_eq!(first["sha256"], hex::encode(sha2::Sha256::digest(&one)));
    let list: Value = zhao.get(&path).await.json().await.unwrap();
    assert_eq!(list["materials"].as_array().unwrap().len(), 2, "{list}");
    // The audience reads it whole, and in ranges, under its name.
    let url = first["url"].as_str().unwrap();
    let r = zhao.get(url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let disposition = r.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.contains("filename*=UTF-8''%E5%BF%83"), "{disposition}");
    assert_eq!(r.bytes().await.unwrap().as_ref(), one.as_slice());
    let r = zhao.req(reqwest::Method::GET, url).header("range", "bytes=0-4").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"%PDF-");
    assert_eq!(ma.get(&path).await.status(), 404, "outside the audience");
    assert_eq!(ma.get(url).await.status(), 404);
    // Refusals.
    let (status, _) = problem(
        upload_pdf(&zhao, &with_name(&path, "x.pdf"), "application/pdf", two.clone()).await,
    )
    .await;
    assert_eq!(status, 403);
    let (status, p) = problem(
        upload_pdf(&sun, &with_name(&path, "x.pdf"), "application/pdf", b"PK\x03\x04zip".to_vec())
            .await,
    )
    .await;
    assert_eq!(status, 415, "{p}");
    let (status, _) =
        problem(upload_pdf(&sun, &with_name(&path, "x.pdf"), "image/png", two.clone()).await).await;
    assert_eq!(status, 415);
    let (status, _) = problem(
        upload_pdf(&sun, &with_name(&path, "../x.pdf"), "application/pdf", two.clone()).await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = problem(upload_pdf(&sun, &path, "application/pdf", two.clone()).await).await;
    assert_eq!(status, 400, "no name");
    // Cut off after a third of the file: no row, no object, nothing half-written.
    let (_, token) =
        ferry::operator::create_token(&s.state, &"trainer-sun".parse().unwrap(), "cut", None)
            .await
            .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let addr = s.url.trim_start_matches("http://").to_string();
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
            with_name(&path, "cut.pdf"),
            one.len()
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&one[..100_000]).await.unwrap();
        sock.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        drop(sock);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let list: Value = sun.get(&path).await.json().await.unwrap();
    assert_eq!(list["materials"].as_array().unwrap().len(), 2, "{list}");
    let stored = s.state.objects.list(&format!("materials/{id}/")).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    // Removal: the trainer's; the row and the object go.
    let second = list["materials"][1]["url"].as_str().unwrap().to_string();
    assert_eq!(zhao.send("DELETE", &second, None).await.status(), 403);
    assert_eq!(sun.send("DELETE", &second, None).await.status(), 204);
    assert_eq!(zhao.get(&second).await.status(), 404);
    let stored = s.state.objects.list(&format!("materials/{id}/")).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let added = audit_events(&s, "action=broadcast.material_add").await;
    let outcomes: Vec<&str> = added.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 2, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "denied").count(), 1, "{outcomes:?}");
    let trail = serde_json::to_string(&added).unwrap();
    assert!(
        !trail.contains("心电图") && !trail.contains("handout"),
        "a name in the trail: {trail}"
    );
    assert_eq!(audit_events(&s, "action=broadcast.material_remove&outcome=success").await.len(), 1);
}

/// The trainer ends the session: its media connections close, nobody joins again, it leaves
/// the Training list and enters the library with its materials, for its audience only.
async fn an_ended_session_moves_to_the_library_with_its_materials(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let id = island_session(&s).await;
    let (sun, zhao, ma) =
        (s.login("trainer-sun").await, s.login("dr-zhao").await, s.login("dr-ma").await);
    let path = format!("/api/broadcasts/{id}/materials");
    let r =
        upload_pdf(&sun, &with_name(&path, "slides.pdf"), "application/pdf", synthetic_pdf(5_000))
            .await;
    assert_eq!(r.status(), 201);
    let whep = format!("/api/broadcasts/{id}/whep");
    assert_eq!(post_sdp(&zhao, &whep, offer(false)).await.status(), 201);
    let end = format!("/api/broadcasts/{id}/end");
    assert_eq!(zhao.post(&end, json!({})).await.status(), 403);
    // Two ends at once (a double click): one ends it, the other is told it is over.
    let (a, b) = tokio::join!(sun.post(&end, json!({})), sun.post(&end, json!({})));
    let (ok, late) = if a.status() == 200 { (a, b) } else { (b, a) };
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["state"], "ended");
    let (status, p) = problem(late).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("broadcast_over")));
    let (status, _) = problem(post_sdp(&zhao, &whep, offer(false)).await).await;
    assert_eq!(status, 409);
    // The viewer's connection closed with the session.
    let mut closed = false;
    for _ in 0..50 {
        let report: Value =
            sun.get(&format!("/api/broadcasts/{id}/attendance")).await.json().await.unwrap();
        if report["people"].as_array().unwrap().iter().all(|p| p["left_at"].is_string()) {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(closed, "the viewer's attendance stayed open");
    let coming: Value = zhao.get("/api/broadcasts").await.json().await.unwrap();
    assert!(!ids(&coming).contains(&id), "an ended session is still listed as coming");
    let library: Value = zhao.get("/api/broadcasts/library").await.json().await.unwrap();
    let entry = library["broadcasts"].as_array().unwrap().iter().find(|b| b["id"] == id.as_str());
    let entry = entry.unwrap_or_else(|| panic!("not in the library: {library}"));
    assert_eq!(entry["state"], "ended");
    assert_eq!(entry["materials"][0]["name"], "slides.pdf", "{entry}");
    assert!(entry["recordings"].as_array().unwrap().is_empty());
    let theirs: Value = ma.get("/api/broadcasts/library").await.json().await.unwrap();
    assert!(!ids(&theirs).contains(&id), "outside the audience, in the library");
    assert_eq!(audit_events(&s, "action=broadcast.end&outcome=success").await.len(), 1);
}

/// The material limit holds for two uploads at once: with one place left, one is filed and
/// the other refused (409), and the refused file leaves no object behind.
async fn the_last_material_place_goes_to_one_of_two_uploads_at_once(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let id = island_session(&s).await;
    let sun = s.login("trainer-sun").await;
    let path = format!("/api/broadcasts/{id}/materials");
    let max = ferry::broadcast::materials::MAX_PER_SESSION;
    let pdf = synthetic_pdf(2_000);
    for i in 1..max {
        let r = upload_pdf(
            &sun,
            &with_name(&path, &format!("{i}.pdf")),
            "application/pdf",
            pdf.clone(),
        )
        .await;
        assert_eq!(r.status(), 201, "{i}");
    }
    let (pa, pb) = (with_name(&path, "a.pdf"), with_name(&path, "b.pdf"));
    let (a, b) = tokio::join!(
        upload_pdf(&sun, &pa, "application/pdf", synthetic_pdf(200_000)),
        upload_pdf(&sun, &pb, "application/pdf", synthetic_pdf(200_000))
    );
    let mut codes = [a.status().as_u16(), b.status().as_u16()];
    codes.sort();
    assert_eq!(codes, [201, 409]);
    let late = if a.status() == 409 { a } else { b };
    assert_eq!(problem(late).await.1["code"], "too_many_materials");
    let list: Value = sun.get(&path).await.json().await.unwrap();
    assert_eq!(list["materials"].as_array().unwrap().len(), max, "{list}");
    let stored = s.state.objects.list(&format!("materials/{id}/")).await.unwrap();
    assert_eq!(stored.len(), max, "the refused upload's object stayed");
}

/// A viewer connecting while the trainer ends the session is not left behind in a room of a
/// session that is over: either it is refused (409) or its connection closes with the rest,
/// and no attendance stays open.
async fn a_viewer_joining_as_the_session_ends_is_not_left_connected(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let (sun, zhao) = (s.login("trainer-sun").await, s.login("dr-zhao").await);
    // The window is a worker round trip and a store write wide, and where it falls depends
    // on the machine: the join goes first in half the rounds and the ending in the other
    // half, the other one following 0–12 ms later.
    for round in 0..48u64 {
        let id = island_session_by(&sun).await;
        let whep = format!("/api/broadcasts/{id}/whep");
        // The room exists (as when people are watching), so the two race on it.
        assert_eq!(post_sdp(&zhao, &whep, offer(false)).await.status(), 201);
        let end = format!("/api/broadcasts/{id}/end");
        let lag = Duration::from_micros(round / 2 * 500);
        let (join_after, end_after) =
            if round % 2 == 0 { (lag, Duration::ZERO) } else { (Duration::ZERO, lag) };
        let (ended, joined) = tokio::join!(
            async {
                tokio::time::sleep(end_after).await;
                sun.post(&end, json!({})).await
            },
            async {
                tokio::time::sleep(join_after).await;
                post_sdp(&zhao, &whep, offer(false)).await
            }
        );
        assert_eq!(ended.status(), 200);
        assert!(matches!(joined.status().as_u16(), 201 | 409), "{}", joined.status());
        let attendance = format!("/api/broadcasts/{id}/attendance");
        let mut open = 0;
        for _ in 0..30 {
            let report: Value = sun.get(&attendance).await.json().await.unwrap();
            let people = report["people"].as_array().unwrap();
            open = people.iter().filter(|p| !p["left_at"].is_string()).count();
            if open == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(open, 0, "round {round}: a connection outlived its session");
    }
}

/// The library holds the caller's sessions even when more than a page of other sites' sessions
/// are newer (the store is read page by page, not cut before the caller's sessions are kept).
async fn the_library_is_not_crowded_out_by_other_sites_sessions(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let sun = s.login("trainer-sun").await;
    let now = ferry::time::now_ms();
    let schedule = |at: i64, site: &'static str| {
        let sun = &sun;
        async move {
            let body = json!({"title": "Past", "starts_at": at, "minutes": 5, "audience": [site]});
            let r = sun.post("/api/broadcasts", body).await;
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    // Nobody presented either: both are over by their scheduled end.
    let island = schedule(now - 59 * 60_000, "island-clinic").await;
    let size = ferry::broadcast::http_library::LIBRARY_SIZE;
    for _ in 0..=size {
        schedule(now - 50 * 60_000, "mountain-clinic").await;
    }
    let zhao = s.login("dr-zhao").await;
    let library: Value = zhao.get("/api/broadcasts/library").await.json().await.unwrap();
    assert_eq!(ids(&library), vec![island.clone()]);
    let ma = s.login("dr-ma").await;
    let theirs: Value = ma.get("/api/broadcasts/library").await.json().await.unwrap();
    assert_eq!(ids(&theirs).len(), size, "a full library, no more");
    assert!(!ids(&theirs).contains(&island));
}

backend_tests!(
    sqlite => crate::support::Sql::Sqlite,
    postgres => crate::support::Sql::Postgres;
    [
        sessions_reach_their_audience_only,
        questions_votes_and_hands_reach_the_trainer,
        two_presenters_at_once_and_a_viewer_that_never_connects,
        the_stage_is_the_trainers_to_give_to_someone_watching,
        materials_are_the_trainers_to_add_and_a_cut_upload_leaves_nothing,
        an_ended_session_moves_to_the_library_with_its_materials,
        the_last_material_place_goes_to_one_of_two_uploads_at_once,
        a_viewer_joining_as_the_session_ends_is_not_left_connected,
        the_library_is_not_crowded_out_by_other_sites_sessions,
    ]
);

/// Runs `tests/peers/broadcast_aiortc.py MODE` for `user` after `delay`; its JSON summary.
async fn aiortc(
    s: &TestServer,
    mode: &'static str,
    user: &str,
    session: &str,
    seconds: u32,
    delay: std::time::Duration,
) -> tokio::task::JoinHandle<Value> {
    let (_, token) =
        ferry::operator::create_token(&s.state, &user.parse().unwrap(), "aiortc", None)
            .await
            .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/broadcast_aiortc.py");
    let args = [
        script.to_string(),
        mode.into(),
        s.url.clone(),
        token,
        session.into(),
        seconds.to_string(),
    ];
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let out = tokio::process::Command::new("python3").args(&args).output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(text.trim()).unwrap()
    })
}

/// Third-party WebRTC clients (PyPI's aiortc, a stack the tests do not control): an aiortc
/// presenter over WHIP, one aiortc viewer over WHEP waiting before the presenter arrives and
/// one joining while it presents; both decode the presenter's VP8 picture and hear its tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_presents_over_whip_and_aiortc_viewers_watch_over_whep() {
    use std::time::Duration;
    let s = TestServer::start().await;
    let sun = s.login("trainer-sun").await;
    let r = sun
        .post(
            "/api/broadcasts",
            json!({"title": "Protocol update", "starts_at": ferry::time::now_ms(),
                   "audience": ["island-clinic", "mountain-clinic"]}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let early = aiortc(&s, "view", "dr-zhao", &id, 14, Duration::ZERO).await;
    let presenter = aiortc(&s, "publish", "trainer-sun", &id, 16, Duration::from_secs(2)).await;
    let late = aiortc(&s, "view", "dr-ma", &id, 8, Duration::from_secs(7)).await;
    let (early, presenter, late) =
        (early.await.unwrap(), presenter.await.unwrap(), late.await.unwrap());
    assert_eq!(
        (presenter["connected"].as_bool(), presenter["status"].as_u64()),
        (Some(true), Some(201)),
        "{presenter}"
    );
    for (who, v, min_frames) in [("dr-zhao", &early, 250), ("dr-ma", &late, 170)] {
        assert_eq!(v["connected"], true, "{who}: {v}");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(640), Some(360)),
            "{who}: {v}"
        );
        let frames = v["video_frames"].as_u64().unwrap();
        assert!(frames >= min_frames, "{who}: {frames} frames decoded: {v}");
        let tone = v["audio_tone_hz"].as_f64().unwrap_or(0.0);
        assert!((430.0..450.0).contains(&tone), "{who}: heard {tone} Hz, not the 440 Hz tone: {v}");
        println!(
            "# aiortc {who}: {frames} frames at 640x360, {} audio frames, first video {} ms, \
             first audio {} ms, longest video gap {} ms, rtp {}",
            v["audio_frames"],
            v["first_video_ms"],
            v["first_audio_ms"],
            v["max_video_gap_ms"],
            v["rtp"]
        );
    }
    // The late viewer joined a presenter already live: its first picture soon after it asked.
    let first = late["first_video_ms"].as_f64().unwrap();
    assert!(first < 2000.0, "dr-ma's first frame after {first} ms");
    // Each was counted: the viewers in the attendance, with media received (saved when the
    // media plane saw them leave, a moment after they hung up).
    let mut report = Value::Null;
    for _ in 0..50 {
        report = sun.get(&format!("/api/broadcasts/{id}/attendance")).await.json().await.unwrap();
        let people = report["people"].as_array().unwrap();
        if people.iter().all(|p| p["left_at"].is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let watched: Vec<(&str, i64)> = report["people"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "viewer")
        .map(|p| (p["user"].as_str().unwrap(), p["watched_seconds"].as_i64().unwrap()))
        .collect();
    assert_eq!(watched.len(), 2, "{report}");
    assert!(watched.iter().all(|(_, s)| *s >= 5), "{report}");
}
