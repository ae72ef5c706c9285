//! Patient-identifying values never reach the logs: the real binary runs at debug level while
//! requests carry fixture patient names in every place a request can carry them.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::ops::spawn_binary;
use crate::support::{Client, Obj, Sql, test_env};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Signs `user` in on the spawned server.
async fn signed_in(url: &str, user: &str) -> Client {
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = http
        .post(format!("{url}/api/auth/login"))
        .json(&json!({"username": user, "password": "ferry-demo"}))
        .send()
        .await
        .unwrap();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    Client { http, base: url.to_string(), csrf: Some(csrf), bearer: None }
}

impl Client {
    /// A signalling socket with a fresh bearer token of this person.
    async fn socket(&self, url: &str) -> Socket {
        let me: Value = self.get("/api/me").await.json().await.unwrap();
        let user = me["user"]["id"].as_str().unwrap().to_string();
        let r = self.post(&format!("/api/users/{user}/tokens"), json!({"label": "ws"})).await;
        assert_eq!(r.status(), 201);
        let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_string();
        let mut req =
            format!("{}/api/ws", url.replacen("http", "ws", 1)).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(req).await.expect("socket opens");
        socket
    }
}

/// The next message of type `kind` on the socket.
async fn until(ws: &mut Socket, kind: &str) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

/// Fixture patients (invented names, in DICOM PN form and plain), plus the patient names and
/// IDs inside the pydicom test files this test sends.
const PATIENTS: &[&str] = &[
    "DOE^JANE",
    "YAMADA^TAROU",
    "Zhang^Sanfeng",
    "Maria Gonzalez-Ortiz",
    "CompressedSamples^CT1",
    "CompressedSamples^MR1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_names_never_appear_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
    let (mut child, url, logs) = spawn_binary(&env, &[("RUST_LOG", "debug")], &["serve", "--demo"]);
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = http
        .post(format!("{url}/api/auth/login"))
        .json(&json!({"username": "admin", "password": "ferry-demo"}))
        .send()
        .await
        .unwrap();
    let csrf =
        r.json::<serde_json::Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    for name in PATIENTS {
        let enc = url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>();
        let gets = [
            format!("/dicomweb/studies?PatientName={enc}"),
            format!("/dicomweb/series?PatientName={enc}&includefield=PatientName"),
            format!("/dicomweb/instances?PatientID={enc}"),
            format!("/dicomweb/studies/{enc}/metadata"),
            format!("/api/audit?user={enc}&resource={enc}"),
            format!("/api/sites/{enc}/users"),
            format!("/patients/{enc}"),
            format!("/api/audit?from={enc}"),
        ];
        for path in gets {
            let r = http
                .get(format!("{url}{path}"))
                .header("x-patient-name", *name)
                .send()
                .await
                .unwrap();
            assert!(r.status().as_u16() < 500, "{path}: {}", r.status());
        }
        let posts = [
            ("/api/auth/login", json!({"username": name, "password": name})),
            ("/api/auth/login", json!({"username": 5, "password": name})),
            ("/api/sites", json!({"id": "x", "name": name, "tier": name, "kind": "clinic"})),
            (
                "/api/sites/island-clinic/devices",
                json!({"kind": "modality", "name": "CT", "ae_title": name, "PatientName": name}),
            ),
            (
                "/api/sites/island-clinic/users",
                json!({"id": "p1", "display_name": name, "roles": [name]}),
            ),
        ];
        for (path, body) in posts {
            let r = http
                .post(format!("{url}{path}"))
                .header("x-csrf-token", &csrf)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_client_error(), "{path}: {}", r.status());
        }
        let r = http
            .post(format!("{url}/api/auth/login"))
            .body(format!("{{\"username\": \"{name}"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    // Patient data inside DICOM: stored (STOW-RS), refused (truncated), queried, retrieved.
    let r = http
        .post(format!("{url}/dicomweb/studies"))
        .header("x-csrf-token", &csrf)
        .header(
            "content-type",
            format!(
                "multipart/related; type=\"application/dicom\"; boundary={}",
                crate::support::STOW_BOUNDARY
            ),
        )
        .body(crate::support::stow_body(&[
            &crate::support::testfile("CT_small.dcm"),
            &crate::support::testfile("MR_truncated.dcm"),
        ]))
        .send()
        .await
        .unwrap();
    // The admin of city-hospital stores for city-hospital.
    assert_eq!(r.status(), 202);
    let r = http
        .get(format!("{url}/dicomweb/studies?PatientName=CompressedSamples*&PatientID=1CT1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{url}/dicomweb/studies/1.3.6.1.4.1.5962.1.2.1.20040119072730.12322/metadata"))
        .send()
        .await
        .unwrap();
    assert!(
        r.text().await.unwrap().contains("CompressedSamples^CT1"),
        "the entitled reader gets the name"
    );
    // A consult whose case summary names the patient, accepted; the two meet in its room and
    // chat about the patient; the clinic uploads a file whose name is the patient's (tus).
    let zhao = signed_in(&url, "dr-zhao").await;
    let li = signed_in(&url, "dr-li").await;
    let summary = format!("{} (DOE^JANE), chest pain since this morning", PATIENTS[2]);
    let r = zhao
        .post(
            "/api/consults",
            json!({"specialty": "radiology", "urgency": "urgent", "summary": summary}),
        )
        .await;
    assert_eq!(r.status(), 201, "consult created");
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(li.post(&format!("/api/consults/{id}/accept"), json!({})).await.status(), 200);
    let mut zhao_ws = zhao.socket(&url).await;
    let mut li_ws = li.socket(&url).await;
    for ws in [&mut zhao_ws, &mut li_ws] {
        ws.send(Message::text(json!({"v": 1, "type": "join", "room": id}).to_string()))
            .await
            .unwrap();
        until(ws, "joined").await;
    }
    let chat = format!("Is {} allergic to contrast? {}", PATIENTS[1], PATIENTS[3]);
    zhao_ws
        .send(Message::text(json!({"v": 1, "type": "chat", "room": id, "text": chat}).to_string()))
        .await
        .unwrap();
    assert_eq!(until(&mut li_ws, "chat").await["text"], chat.as_str(), "the chat reached dr-li");
    for name in PATIENTS {
        use base64::Engine;
        let file = base64::engine::general_purpose::STANDARD.encode(format!("{name}.dcm"));
        let ct = crate::support::testfile("CT_small.dcm");
        let r = zhao
            .req(reqwest::Method::POST, "/api/uploads")
            .header("tus-resumable", "1.0.0")
            .header("upload-length", ct.len())
            .header("upload-metadata", format!("filename {file}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let r = zhao
            .req(reqwest::Method::PATCH, &loc)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", 0)
            .header("content-type", "application/offset+octet-stream")
            .body(ct)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    // Stop the server and collect everything it wrote.
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let mut lines = vec![];
    while let Ok(l) = logs.recv_timeout(Duration::from_secs(2)) {
        lines.push(l);
    }
    let log = lines.join("\n");
    // The log is not empty: it saw the requests (by route template) and the refusals.
    assert!(
        log.contains("route=/api/sites/{site}/users")
            || log.contains("route=\"/api/sites/{site}/users\""),
        "debug request lines missing:\n{log}"
    );
    assert!(log.contains("listening"), "{log}");
    assert!(
        log.contains("STOW instance refused"),
        "the refusal was logged, without its data:\n{log}"
    );
    for name in PATIENTS {
        let lower = log.to_lowercase();
        let mut forms = vec![
            name.to_lowercase(),
            name.replace('^', "%5E").to_lowercase(),
            url::form_urlencoded::byte_serialize(name.as_bytes())
                .collect::<String>()
                .to_lowercase(),
        ];
        // Each distinctive part alone (short parts like DOE are common English).
        forms.extend(name.split(['^', ' ']).filter(|p| p.len() >= 5).map(|p| p.to_lowercase()));
        for f in forms {
            assert!(!lower.contains(&f), "patient value `{f}` reached the log:\n{log}");
        }
    }
}
