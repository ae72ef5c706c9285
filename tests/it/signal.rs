//! Video-consult plumbing over HTTP: TURN credentials (`GET /api/turn`) checked against an
//! independent HMAC (Python's), as coturn would check them.

use serde_json::Value;

use crate::support::{Obj, Sql, TestServer, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_are_what_coturn_expects_and_expire() {
    let secret = "shared-with-coturn";
    let s = TestServer::start_with(
        Sql::Sqlite,
        Obj::Local,
        &[
            ("FERRY__TURN__URLS", "stun:127.0.0.1:3478, turn:127.0.0.1:3478?transport=udp, turn:127.0.0.1:3478?transport=tcp"),
            ("FERRY__TURN__SECRET", secret),
            ("FERRY__TURN__TTL_SECS", "600"),
        ],
    )
    .await;
    assert_eq!(problem(s.anonymous().get("/api/turn").await).await.0, 401);
    let zhao = s.login("dr-zhao").await;
    let before =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let v: Value = zhao.get("/api/turn").await.json().await.unwrap();
    let servers = v["iceServers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"][0], "stun:127.0.0.1:3478");
    let turn = &servers[1];
    assert_eq!(turn["urls"].as_array().unwrap().len(), 2);
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "dr-zhao");
    let expiry: u64 = expiry.parse().unwrap();
    assert!((before + 600..=before + 602).contains(&expiry), "{expiry} vs {before}");
    let script = "import sys, hmac, hashlib, base64\n\
        print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha1).digest()).decode())";
    let out = std::process::Command::new("python3")
        .args(["-c", script, secret, username])
        .output()
        .unwrap();
    assert_eq!(turn["credential"].as_str().unwrap(), String::from_utf8(out.stdout).unwrap().trim());
    s.stop().await;
}

#[test]
fn turn_urls_without_a_secret_are_refused_at_start() {
    let env = vec![("FERRY__TURN__URLS".to_string(), "turn:127.0.0.1:3478".to_string())];
    let err = ferry::config::Settings::load(None, env).expect_err("refused").to_string();
    assert!(err.contains("turn.secret"), "{err}");
    let env = vec![("FERRY__TURN__URLS".to_string(), "http://example".to_string())];
    let err = ferry::config::Settings::load(None, env).unwrap_err().to_string();
    assert!(err.contains("turn.urls"), "{err}");
}
