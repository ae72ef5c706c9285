//! Video consults over HTTP and the signalling WebSocket at `/api/ws`, against the real
//! server: the request reaching the specialists live, accept, the call room (participants
//! only, refusals audited), a dropped socket resuming its place, the signed opinion and its
//! amendment, acknowledgement; escalation and expiry; the socket's limits.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Client, Obj, Sql, TestServer, audit_events, problem, testfile};

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A signalling client authenticated by a bearer token. Messages of different kinds
/// interleave (presence, consult events, call messages), so waiting for one kind keeps the
/// others for later waits.
pub(crate) struct Ws {
    socket: Socket,
    backlog: Vec<Value>,
}

async fn token_for(s: &TestServer, user: &str) -> String {
    let (_, secret) =
        ferry::operator::create_token(&s.state, &user.parse().unwrap(), "ws", None).await.unwrap();
    secret
}

fn ws_request(
    s: &TestServer,
    token: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req =
        format!("{}/api/ws", s.url.replacen("http", "ws", 1)).into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    req
}

impl Ws {
    pub(crate) async fn open(s: &TestServer, user: &str) -> Ws {
        let token = token_for(s, user).await;
        Ws::with_token(s, &token).await
    }

    async fn with_token(s: &TestServer, token: &str) -> Ws {
        let (socket, _) = tokio_tungstenite::connect_async(ws_request(s, Some(token)))
            .await
            .expect("socket opens");
        let mut ws = Ws { socket, backlog: vec![] };
        let hello = ws.until("welcome").await;
        assert!(hello["user"].is_string(), "{hello}");
        ws
    }

    async fn say(&mut self, v: Value) {
        self.raw(v.to_string()).await
    }

    async fn raw(&mut self, text: String) {
        self.socket.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next text message from the socket (10 s at most).
    async fn read(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("a message within 10 s")
                .expect("socket open")
                .expect("no socket error");
            match m {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(f) => panic!("socket closed: {f:?}; unread: {:?}", self.backlog),
                _ => continue,
            }
        }
    }

    /// The first message, kept or new, that `want` accepts.
    pub(crate) async fn find(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&want) {
            return self.backlog.remove(i);
        }
        loop {
            let m = self.read().await;
            if want(&m) {
                return m;
            }
            self.backlog.push(m);
        }
    }

    async fn until(&mut self, kind: &str) -> Value {
        self.find(|m| m["type"] == kind).await
    }

    /// Waits for a `consult` event with this `event` name.
    async fn consult_event(&mut self, event: &str) -> Value {
        self.find(|m| m["type"] == "consult" && m["event"] == event).await
    }

    /// Waits until the server closes the socket; returns the close code.
    async fn closed(&mut self) -> Option<u16> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("closed within 10 s");
            match m {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code.into()),
                None | Some(Err(_)) => return None,
                _ => continue,
            }
        }
    }
}

fn join(room: &str) -> Value {
    json!({"v": 1, "type": "join", "room": room})
}

async fn consult_json(c: &Client, id: &str) -> Value {
    let r = c.get(&format!("/api/consults/{id}")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn ok(r: reqwest::Response) -> Value {
    let st = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(st.is_success(), "{st} {body}");
    body
}

async fn consult_lifecycle(sql: Sql) {
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let (zhao, li, ma, chen) = (
        s.login("dr-zhao").await,
        s.login("dr-li").await,
        s.login("dr-ma").await,
        s.login("dr-chen").await,
    );
    assert_eq!(zhao.stow("/dicomweb/studies", &[&testfile("CT_small.dcm")]).await.0, 200);
    // Before the request, city-hospital cannot see the island's study.
    assert_eq!(li.get(&format!("/dicomweb/studies/{CT_STUDY}/metadata")).await.status(), 404);

    // dr-li's inbox is open, watching presence: dr-zhao comes online.
    let mut li_ws = Ws::open(&s, "dr-li").await;
    li_ws.say(json!({"v": 1, "type": "watch", "presence": true})).await;
    assert_eq!(li_ws.until("presence").await["users"], json!([{"user": "dr-li", "online": true}]));
    let mut zhao_ws = Ws::open(&s, "dr-zhao").await;
    assert_eq!(
        li_ws.until("presence").await["users"],
        json!([{"user": "dr-zhao", "online": true}])
    );
    let v: Value = ok(zhao.get("/api/specialists?specialty=radiology").await).await;
    assert_eq!(
        v["specialists"],
        json!([{"id": "dr-li", "display_name": "Dr Li", "site": "city-hospital", "specialties": ["radiology"], "online": true}])
    );

    // Only clinicians request, only their own site's studies, only existing specialties.
    let body = json!({"specialty": "radiology", "urgency": "urgent", "summary": "Fall from a boat; chest pain.", "studies": [CT_STUDY]});
    assert_eq!(problem(li.post("/api/consults", body.clone()).await).await.0, 403);
    assert_eq!(
        problem(ma.post("/api/consults", body.clone()).await).await.0,
        404,
        "not ma's study"
    );
    let nobody = json!({"specialty": "dermatology", "urgency": "routine", "summary": "rash"});
    let (st, p) = problem(zhao.post("/api/consults", nobody).await).await;
    assert_eq!((st, p["code"].as_str()), (400, Some("invalid_value")), "{p}");
    let bad = json!({"specialty": "radiology", "urgency": "whenever", "summary": "x"});
    assert_eq!(problem(zhao.post("/api/consults", bad).await).await.0, 400);

    let r = zhao.post("/api/consults", body).await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!((c["state"].as_str(), c["can"].clone()), (Some("requested"), json!(["cancel"])));
    // Pushed live to the specialist's inbox.
    let pushed = li_ws.consult_event("requested").await;
    assert_eq!(
        (pushed["consult"].as_str(), pushed["state"].as_str()),
        (Some(id.as_str()), Some("requested"))
    );
    let inbox: Value = ok(li.get("/api/consults").await).await;
    assert_eq!(inbox["consults"][0]["id"], id.as_str());
    // The list shows the case: it is recorded as a read of that consult.
    let q = format!("user=dr-li&action=consult.read&resource=consult:{id}");
    assert_eq!(audit_events(&s, &q).await.len(), 1);
    assert_eq!(inbox["consults"][0]["can"], json!(["accept", "decline"]));
    // The images are not shared yet: specialists decide on the case summary.
    assert_eq!(li.get(&format!("/dicomweb/studies/{CT_STUDY}/metadata")).await.status(), 404);
    // Other clinics, and specialists of other specialties, do not see it at all (audited).
    for other in [&ma, &chen] {
        assert_eq!(problem(other.get(&format!("/api/consults/{id}")).await).await.0, 404);
        let list: Value = ok(other.get("/api/consults").await).await;
        assert!(list["consults"].as_array().unwrap().iter().all(|c| c["id"] != id.as_str()));
    }
    let denied = audit_events(&s, "user=dr-ma&action=consult.read&outcome=denied").await;
    assert_eq!(denied.len(), 1);

    // The requester cannot accept; dr-li accepts; a second accept finds it taken.
    assert_eq!(
        problem(zhao.post(&format!("/api/consults/{id}/accept"), json!({})).await).await.0,
        403
    );
    let c = ok(li.post(&format!("/api/consults/{id}/accept"), json!({})).await).await;
    assert_eq!(c["state"], "accepted");
    assert_eq!(zhao_ws.consult_event("accepted").await["consult"], id.as_str());
    // Accepting shares the study with the consultant's site, through the policy.
    assert_eq!(li.get(&format!("/dicomweb/studies/{CT_STUDY}/metadata")).await.status(), 200);
    let shared = audit_events(&s, &format!("action=study.shared&resource=study:{CT_STUDY}")).await;
    assert_eq!(shared.len(), 1, "{shared:?}");
    let (st, p) = problem(li.post(&format!("/api/consults/{id}/accept"), json!({})).await).await;
    assert_eq!((st, p["code"].as_str()), (409, Some("conflict")));

    // The call room: dr-ma is refused (and audited); the participants meet.
    let mut ma_ws = Ws::open(&s, "dr-ma").await;
    ma_ws.say(join(&id)).await;
    assert_eq!(ma_ws.until("error").await["code"], "not_allowed");
    zhao_ws.say(join(&id)).await;
    let joined = zhao_ws.until("joined").await;
    assert_eq!(joined["peers"], json!([]));
    li_ws.say(join(&id)).await;
    assert_eq!(li_ws.until("joined").await["peers"], json!([{"user": "dr-zhao", "online": true}]));
    assert_eq!(zhao_ws.until("peer-joined").await["user"], "dr-li");
    // The first join started the call.
    zhao_ws.consult_event("in-call").await;
    assert_eq!(consult_json(&zhao, &id).await["state"], "in_call");
    li_ws
        .say(json!({"v": 1, "type": "offer", "room": id, "to": "dr-zhao", "sdp": "v=0 offer"}))
        .await;
    let offer = zhao_ws.until("offer").await;
    assert_eq!((offer["from"].as_str(), offer["sdp"].as_str()), (Some("dr-li"), Some("v=0 offer")));
    // dr-ma cannot slip a message into the room either.
    ma_ws.say(json!({"v": 1, "type": "chat", "room": id, "text": "hello?"})).await;
    assert_eq!(ma_ws.until("error").await["code"], "not_in_room");
    let joins = audit_events(&s, "action=consult.join").await;
    let outcome = |u: &str| {
        joins
            .iter()
            .filter(|e| e["actor"] == u)
            .map(|e| e["outcome"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(outcome("dr-ma"), ["denied"]);
    assert_eq!(outcome("dr-zhao"), ["allowed"]);

    // dr-zhao's socket drops: dr-li sees them away; a new socket resumes the place, and dr-li
    // is told to renegotiate.
    drop(zhao_ws);
    assert_eq!(li_ws.until("peer-away").await["user"], "dr-zhao");
    let mut zhao_ws = Ws::open(&s, "dr-zhao").await;
    zhao_ws.say(join(&id)).await;
    let back = zhao_ws.until("joined").await;
    assert_eq!(back["resumed"], true);
    assert_eq!(li_ws.until("peer-resumed").await["user"], "dr-zhao");
    li_ws
        .say(json!({"v": 1, "type": "offer", "room": id, "to": "dr-zhao", "sdp": "v=0 restart"}))
        .await;
    assert_eq!(zhao_ws.until("offer").await["sdp"], "v=0 restart");

    // The requester cannot sign; dr-li signs: completed, the room closes, the clinic hears.
    let (st, _) =
        problem(zhao.post(&format!("/api/consults/{id}/opinions"), json!({"text": "x"})).await)
            .await;
    assert_eq!(st, 403);
    let c = ok(li
        .post(&format!("/api/consults/{id}/opinions"), json!({"text": "No rib fracture seen."}))
        .await)
    .await;
    assert_eq!(c["state"], "completed");
    assert_eq!(li_ws.until("left").await["room"], id.as_str());
    assert_eq!(zhao_ws.consult_event("opinion").await["state"], "completed");
    let c = consult_json(&zhao, &id).await;
    assert_eq!(c["opinions"][0]["signed_by"], "dr-li");
    assert_eq!(c["can"], json!(["acknowledge"]));
    let c = ok(zhao.post(&format!("/api/consults/{id}/acknowledge"), json!({})).await).await;
    assert_eq!(c["acknowledged"]["version"], 1);
    // An amendment is a new signed version; the first stays as signed.
    ok(li
        .post(
            &format!("/api/consults/{id}/opinions"),
            json!({"text": "Amended: hairline fracture of rib 6."}),
        )
        .await)
    .await;
    let c = consult_json(&zhao, &id).await;
    let versions: Vec<(i64, &str)> = c["opinions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["version"].as_i64().unwrap(), o["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        versions,
        [(1, "No rib fracture seen."), (2, "Amended: hairline fracture of rib 6.")]
    );
    assert_eq!(c["can"], json!(["acknowledge"]), "the amendment awaits acknowledgement");
    ok(zhao.post(&format!("/api/consults/{id}/acknowledge"), json!({})).await).await;
    // Signed opinions cannot be changed, even in the database.
    let tamper = sqlx::query("UPDATE consult_opinions SET text = 'changed' WHERE version = 1")
        .execute(s.state.db.pool())
        .await;
    assert!(tamper.is_err(), "the schema refuses changes to signed opinions");

    // Every step is in the audit trail, without the case text.
    let events = audit_events(&s, &format!("resource=consult:{id}")).await;
    let actions: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in [
        "consult.create",
        "consult.read",
        "consult.accept",
        "consult.join",
        "consult.call",
        "consult.sign",
        "consult.acknowledge",
    ] {
        assert!(actions.contains(a), "{a} missing from {actions:?}");
    }
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("rib") && !all.contains("boat"), "case text in the audit trail");
    s.stop().await;
}

backend_tests!(
    sqlite => crate::support::Sql::Sqlite,
    postgres => crate::support::Sql::Postgres;
    [consult_lifecycle, two_accepts_at_once_one_wins]
);

/// The compare-and-set under "two specialists accepting at once cannot both win": two loads of
/// one request, two saves of an acceptance racing each other in the store — exactly one is
/// saved, and the consult is the winner's; then the same over HTTP, two specialists pressing
/// "accept" at the same moment: one 200, one 409.
async fn two_accepts_at_once_one_wins(sql: Sql) {
    use ferry::consult::State;
    let s = TestServer::start_with(sql, Obj::Local, &[]).await;
    let admin = s.login("admin").await;
    let wu = json!({"id": "dr-wu", "display_name": "Dr Wu", "roles": ["specialist"], "specialties": ["radiology"], "password": "wu-password-1"});
    ok(admin.post("/api/sites/county-hospital/users", wu).await).await;
    let zhao = s.login("dr-zhao").await;
    for round in 0..10 {
        let body = json!({"specialty": "radiology", "urgency": "urgent", "summary": "Store race"});
        let id =
            ok(zhao.post("/api/consults", body).await).await["id"].as_str().unwrap().to_string();
        let load = || async {
            ferry::consult::store::in_states(&s.state.db, &[State::Requested])
                .await
                .unwrap()
                .into_iter()
                .find(|c| c.id == id)
                .unwrap()
        };
        let (was_li, was_wu) = tokio::join!(load(), load());
        let accepted = |was: &ferry::consult::Consult, by: &str| {
            let mut c = was.clone();
            c.state = State::Accepted;
            c.accepted_by = Some(by.parse().unwrap());
            c.accepted_at = Some(was.updated_at + 1);
            c.updated_at = was.updated_at + 1;
            c
        };
        let event = |by: &str| ferry::audit::NewEvent {
            at: ferry::time::now_ms(),
            actor: Some(by.to_string()),
            actor_site: None,
            site: Some("island-clinic".into()),
            action: "consult.accept",
            resource_kind: "consult",
            resource_id: Some(id.clone()),
            outcome: ferry::audit::Outcome::Success,
            client_addr: None,
            detail: None,
        };
        let (li_c, wu_c) = (accepted(&was_li, "dr-li"), accepted(&was_wu, "dr-wu"));
        let (e_li, e_wu) = (event("dr-li"), event("dr-wu"));
        let target = ferry::auth::policy::Target::site(
            &"island-clinic".parse().unwrap(),
            "consult",
            Some(id.clone()),
        );
        let permit: ferry::auth::policy::Permit<ferry::auth::policy::ConsultUpdate> =
            ferry::auth::console::operator_permit(&s.state.db, target).await.unwrap();
        let (saved_li, saved_wu) = tokio::join!(
            ferry::consult::store::save(&s.state.db, &permit, &was_li, &li_c, &e_li, &[]),
            ferry::consult::store::save(&s.state.db, &permit, &was_wu, &wu_c, &e_wu, &[]),
        );
        let (saved_li, saved_wu) = (saved_li.unwrap(), saved_wu.unwrap());
        assert!(
            saved_li ^ saved_wu,
            "round {round}: exactly one save wins ({saved_li}, {saved_wu})"
        );
        let c = consult_json(&zhao, &id).await;
        let winner = if saved_li { "dr-li" } else { "dr-wu" };
        assert_eq!(
            (c["state"].as_str(), c["accepted_by"].as_str()),
            (Some("accepted"), Some(winner)),
            "{c}"
        );
    }
    // Over HTTP: two specialists at once.
    let li = s.login("dr-li").await;
    let wu = s.login_pw("dr-wu", "wu-password-1").await.unwrap();
    for round in 0..10 {
        let body = json!({"specialty": "radiology", "urgency": "urgent", "summary": "HTTP race"});
        let id =
            ok(zhao.post("/api/consults", body).await).await["id"].as_str().unwrap().to_string();
        let path = format!("/api/consults/{id}/accept");
        let (a, b) = tokio::join!(li.post(&path, json!({})), wu.post(&path, json!({})));
        let (a, b) = (a.status().as_u16(), b.status().as_u16());
        // The loser read it before the winner saved (409, the compare-and-set) or after (404:
        // a taken request is no longer addressed to the others).
        assert!(
            (a == 200 && [404, 409].contains(&b)) || (b == 200 && [404, 409].contains(&a)),
            "round {round}: exactly one accept wins, got {a} and {b}"
        );
        let winner = if a == 200 { "dr-li" } else { "dr-wu" };
        assert_eq!(consult_json(&zhao, &id).await["accepted_by"], winner);
    }
    s.stop().await;
}

/// An emergency for a named specialist, unanswered: escalated to every radiologist (pushed to
/// those online), then expired. The timers are driven with a clock in the future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_emergency_escalates_then_expires() {
    let s = TestServer::start().await;
    let admin = s.login("admin").await;
    let wu = json!({"id": "dr-wu", "display_name": "Dr Wu", "roles": ["specialist"], "specialties": ["radiology"], "password": "wu-password-1"});
    ok(admin.post("/api/sites/county-hospital/users", wu).await).await;
    let zhao = s.login("dr-zhao").await;
    let wu = s.login_pw("dr-wu", "wu-password-1").await.unwrap();
    let mut wu_ws = Ws::open(&s, "dr-wu").await;
    let c = ok(zhao.post("/api/consults", json!({"specialty": "radiology", "specialist": "dr-li", "urgency": "emergency", "summary": "Unconscious diver"})).await).await;
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(problem(wu.get(&format!("/api/consults/{id}")).await).await.0, 404, "named dr-li");
    let now = ferry::time::now_ms();
    assert_eq!(ferry::consult::http::timers_once(&s.state, now + 60_000).await.unwrap(), 0);
    assert_eq!(ferry::consult::http::timers_once(&s.state, now + 121_000).await.unwrap(), 1);
    let pushed = wu_ws.consult_event("escalated").await;
    assert_eq!(pushed["consult"], id.as_str());
    let c = consult_json(&wu, &id).await;
    assert_eq!(
        (c["escalated"].as_bool(), c["can"].clone()),
        (Some(true), json!(["accept", "decline"]))
    );
    // Another emergency, escalated too; dr-li takes it and dr-wu is told it is taken.
    let body = json!({"specialty": "radiology", "urgency": "emergency", "summary": "Burns"});
    let taken =
        ok(zhao.post("/api/consults", body).await).await["id"].as_str().unwrap().to_string();
    wu_ws.consult_event("requested").await;
    let li = s.login("dr-li").await;
    ok(li.post(&format!("/api/consults/{taken}/accept"), json!({})).await).await;
    let told = wu_ws.consult_event("accepted").await;
    assert_eq!(
        (told["consult"].as_str(), told["state"].as_str()),
        (Some(taken.as_str()), Some("accepted"))
    );
    assert_eq!(
        problem(wu.get(&format!("/api/consults/{taken}")).await).await.0,
        404,
        "no longer dr-wu's to read"
    );
    assert_eq!(ferry::consult::http::timers_once(&s.state, now + 1_801_000).await.unwrap(), 1);
    assert_eq!(consult_json(&zhao, &id).await["state"], "expired");
    let (st, _) = problem(wu.post(&format!("/api/consults/{id}/accept"), json!({})).await).await;
    assert_eq!(st, 404, "an expired request is no longer addressed to anyone");
    let events = audit_events(&s, &format!("resource=consult:{id}")).await;
    assert!(events.iter().any(|e| e["action"] == "consult.escalate"));
    assert!(events.iter().any(|e| e["action"] == "consult.expire"));
    s.stop().await;
}

/// The socket's limits: too large, too fast, not a message — each answered with an error, and
/// a socket that keeps at it is closed; the server carries on. Cross-site pages and
/// unauthenticated upgrades are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_limits_answer_with_errors_then_close() {
    let s = TestServer::start_with(
        Sql::Sqlite,
        Obj::Local,
        &[
            ("FERRY__SIGNAL__MAX_MESSAGE_KIB", "1"),
            ("FERRY__SIGNAL__BURST", "3"),
            ("FERRY__SIGNAL__PER_SECOND", "1"),
            ("FERRY__SIGNAL__STRIKES_TO_CLOSE", "6"),
            ("FERRY__SIGNAL__MAX_CONNECTIONS_PER_USER", "2"),
        ],
    )
    .await;
    let mut ws = Ws::open(&s, "dr-zhao").await;
    ws.raw("x".repeat(2000)).await;
    assert_eq!(ws.until("error").await["code"], "message_too_large");
    ws.raw("{not json".into()).await;
    assert_eq!(ws.until("error").await["code"], "invalid_message");
    ws.say(json!({"v": 7, "type": "leave", "room": "r"})).await;
    assert_eq!(ws.until("error").await["code"], "unsupported_version");
    // The burst of 3 is spent: too fast.
    for _ in 0..3 {
        ws.say(json!({"v": 1, "type": "leave", "room": "r"})).await;
    }
    assert_eq!(ws.until("error").await["code"], "rate_limited");
    // Six refusals: the server closes the socket.
    assert_eq!(ws.closed().await, Some(1008));
    // A frame far beyond the limit closes the socket without being read whole.
    let mut ws = Ws::open(&s, "dr-zhao").await;
    ws.raw("y".repeat(64 * 1024)).await;
    assert!(matches!(ws.closed().await, Some(1009) | None));
    // Per-person connection limit.
    let token = token_for(&s, "dr-li").await;
    let (_a, _b) = (Ws::with_token(&s, &token).await, Ws::with_token(&s, &token).await);
    let Err(err) = tokio_tungstenite::connect_async(ws_request(&s, Some(&token))).await else {
        panic!("a third socket of dr-li was let in");
    };
    assert!(err.to_string().contains("429"), "{err}");
    // No credentials: 401; a page of another origin: 403.
    let err = tokio_tungstenite::connect_async(ws_request(&s, None)).await.err().unwrap();
    assert!(err.to_string().contains("401"), "{err}");
    let mut req = ws_request(&s, Some(&token_for(&s, "dr-ma").await));
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.err().unwrap();
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(s.anonymous().get("/healthz").await.status(), 200);
    s.stop().await;
}

/// Access that ends ends the live sockets too: a revoked token's socket and a disabled
/// account's sockets are closed at once, not at their next reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_and_disabled_accounts_lose_their_sockets() {
    let s = TestServer::start().await;
    let (token, secret) =
        ferry::operator::create_token(&s.state, &"dr-zhao".parse().unwrap(), "ws", None)
            .await
            .unwrap();
    let mut revoked = Ws::with_token(&s, &secret).await;
    let mut other = Ws::open(&s, "dr-zhao").await;
    let zhao = s.login("dr-zhao").await;
    ok(zhao.send("DELETE", &format!("/api/tokens/{}", token.id), None).await).await;
    assert_eq!(revoked.closed().await, Some(1008));
    // The same person's other socket (another token) stays.
    other.say(json!({"v": 1, "type": "watch", "presence": true})).await;
    assert_eq!(other.until("presence").await["type"], "presence");
    // Signing out ends the socket opened with that session (the browser's).
    let http = reqwest::Client::new();
    let r = http
        .post(s.at("/api/auth/login"))
        .json(&json!({"username": "dr-zhao", "password": crate::support::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    let mut req = ws_request(&s, None);
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut browser = Ws { socket, backlog: vec![] };
    assert_eq!(browser.until("welcome").await["user"], "dr-zhao");
    let r = http
        .post(s.at("/api/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(browser.closed().await, Some(1008));
    // An administrator disables the account: every socket of it closes.
    let admin = s.login("admin").await;
    let r = admin.send("PATCH", "/api/users/dr-zhao", Some(json!({"disabled": true}))).await;
    ok(r).await;
    assert_eq!(other.closed().await, Some(1008));
    s.stop().await;
}

/// Access that runs out ends the sockets too, without anyone signing out: a session that went
/// idle, a session past its lifetime and a token past its expiry each lose their socket within
/// `signal.access_check_secs` (1 s here), while a live credential's socket stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_close_when_their_session_or_token_expires() {
    let s = TestServer::start_with(
        Sql::Sqlite,
        Obj::Local,
        &[("FERRY__SIGNAL__ACCESS_CHECK_SECS", "1")],
    )
    .await;
    let db = s.state.db.pool();
    // A browser's socket, opened with its session cookie.
    let browser = |user: &'static str| {
        let s = &s;
        async move {
            let r = reqwest::Client::new()
                .post(s.at("/api/auth/login"))
                .json(&json!({"username": user, "password": crate::support::DEMO_PASSWORD}))
                .send()
                .await
                .unwrap();
            let cookie =
                r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
            let mut req = ws_request(s, None);
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
            let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let mut ws = Ws { socket, backlog: vec![] };
            assert_eq!(ws.until("welcome").await["user"], user);
            ws
        }
    };
    let mut idle = browser("dr-zhao").await;
    let mut old = browser("dr-li").await;
    let mut live = browser("dr-ma").await;
    let (token, secret) =
        ferry::operator::create_token(&s.state, &"dr-chen".parse().unwrap(), "ws", None)
            .await
            .unwrap();
    let mut expiring = Ws::with_token(&s, &secret).await;

    // dr-zhao's session has seen no request for longer than the idle limit.
    sqlx::query("UPDATE sessions SET last_seen_at = 0 WHERE user_id = 'dr-zhao'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(idle.closed().await, Some(1008), "idle session");
    // dr-li's session is older than its lifetime, though in use.
    sqlx::query("UPDATE sessions SET created_at = 0 WHERE user_id = 'dr-li'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(old.closed().await, Some(1008), "session past its lifetime");
    // dr-chen's token reached its expiry.
    sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
        .bind(ferry::time::now_ms() - 1)
        .bind(&token.id)
        .execute(db)
        .await
        .unwrap();
    assert_eq!(expiring.closed().await, Some(1008), "expired token");
    // dr-ma's session is live: the socket still answers.
    live.say(json!({"v": 1, "type": "watch", "presence": true})).await;
    assert_eq!(live.until("presence").await["type"], "presence");
    s.stop().await;
}
