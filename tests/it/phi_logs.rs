//! Patient-identifying values never reach the logs: the real binary runs at debug level while
//! requests carry fixture patient names in every place a request can carry them.

use std::time::Duration;

use serde_json::json;

use crate::ops::spawn_binary;
use crate::support::{Obj, Sql, test_env};

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
            format!("/api/studies?PatientName={enc}"),
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
    let boundary = "phi-test-boundary";
    let mut body = vec![];
    for f in ["CT_small.dcm", "MR_truncated.dcm"] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&crate::support::testfile(f));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = http
        .post(format!("{url}/dicomweb/studies"))
        .header("x-csrf-token", &csrf)
        .header(
            "content-type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .body(body)
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
