//! Health, readiness, metrics, graceful shutdown, TLS and start-up errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::config::Settings;
use serde_json::Value;

use crate::support::{Obj, Sql, TestServer, test_env};

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

fn run_script(args: &[&str]) -> String {
    let out = Command::new("bash").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Polls `check` until it holds or `limit` passes; returns whether it held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let s = TestServer::start().await;
    let anon = s.anonymous();
    let r = anon.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let r: Value = anon.get("/readyz").await.json().await.unwrap();
    assert_eq!(r["status"], "ready");
    assert_eq!(r["checks"]["database"]["backend"], "sqlite");
    assert_eq!(r["checks"]["objects"]["backend"], "local");

    let zhao = s.login("dr-zhao").await;
    for _ in 0..3 {
        assert_eq!(zhao.get("/api/sites/city-hospital/users").await.status(), 403);
    }
    assert_eq!(zhao.get("/api/sites/island-clinic").await.status(), 200);
    let m = anon.get("/metrics").await;
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = m.text().await.unwrap();
    assert!(text.contains("# TYPE ferry_http_request_duration_seconds histogram"));
    assert!(text.contains(r#"ferry_http_requests_total{method="GET",route="/api/sites/{site}/users",status="403"} 3"#), "{text}");
    assert!(text.contains(
        r#"ferry_http_requests_total{method="GET",route="/api/sites/{site}",status="200"} 1"#
    ));
    assert!(text.contains(
        r#"ferry_http_requests_total{method="POST",route="/api/auth/login",status="200"} 1"#
    ));
    assert!(text.contains(r#"ferry_http_request_duration_seconds_count{method="GET",route="/api/sites/{site}/users",status="403"} 3"#));
    assert!(text.contains(r#"route="/api/sites/{site}/users",status="403",le="+Inf"} 3"#));
    // Paths never become labels.
    assert!(!text.contains("city-hospital"));
}

/// /readyz follows PostgreSQL going away and coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_postgres_down_and_up() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pgdir = tmp.path().join("pg");
    let pgdir = pgdir.to_str().unwrap();
    let url = run_script(&[script("pg").to_str().unwrap(), "start", pgdir]);
    let port = std::fs::read_to_string(tmp.path().join("pg/port")).unwrap().trim().to_string();

    let dir = tempfile::tempdir().unwrap();
    let mut env = test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
    env.push(("FERRY__DATABASE__URL".into(), url));
    let app = ferry::server::Application::build(Settings::load(None, env).unwrap()).await.unwrap();
    let base = app.base_url();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run());
    let ready = |want: u16| {
        let url = format!("{base}/readyz");
        async move { reqwest::get(&url).await.map(|r| r.status().as_u16() == want).unwrap_or(false) }
    };
    assert!(ready(200).await);

    run_script(&[script("pg").to_str().unwrap(), "stop", pgdir]);
    assert!(eventually(Duration::from_secs(20), || ready(503)).await, "readyz did not turn 503");
    let r: Value = reqwest::get(format!("{base}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(r["checks"]["database"]["status"], "unreachable");
    assert_eq!(r["checks"]["database"]["backend"], "postgres");
    assert_eq!(r["checks"]["objects"]["status"], "ok");
    // Liveness is not readiness: the process still answers.
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);

    run_script(&[script("pg").to_str().unwrap(), "start", pgdir, &port]);
    assert!(eventually(Duration::from_secs(20), || ready(200)).await, "readyz did not recover");
    stop.cancel();
    server.await.unwrap().unwrap();
    run_script(&[script("pg").to_str().unwrap(), "stop", pgdir]);
}

/// Starts the real binary; returns the child and its base URL (read from its first lines).
pub fn spawn_binary(
    env: &[(String, String)],
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    spawn_binary_in(&[], env, extra_env, args)
}

/// `spawn_binary` started through `prefix` (e.g. `ip netns exec NS`).
pub fn spawn_binary_in(
    prefix: &[&str],
    env: &[(String, String)],
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(env!("CARGO_BIN_EXE_ferry"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_ferry")),
    };
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[stderr] {line}"));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (url_tx, url_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = line.strip_prefix("Ferry listening on ") {
                let _ = url_tx.send(u.to_string());
            }
            let _ = tx.send(format!("[stdout] {line}"));
        }
    });
    let url = url_rx.recv_timeout(Duration::from_secs(60)).expect("server printed its URL");
    (child, url, rx)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// SIGTERM while a request is in flight: the request completes, then the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
    let (mut child, url, _logs) = spawn_binary(&env, &[], &["serve", "--demo"]);
    let addr = url.trim_start_matches("http://").to_string();
    let body = br#"{"username":"dr-zhao","password":"ferry-demo"}"#;
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        sock,
        "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server asks for the body once the handler reads it: the request is now in flight.
    let mut buf = [0u8; 25];
    sock.read_exact(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    sock.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = sock.read_to_string(&mut resp);
    assert!(resp.contains("HTTP/1.1 200 OK"), "in-flight login did not complete: {resp}");
    assert!(resp.contains("ferry_session="));
    let st = wait_exit(&mut child, Duration::from_secs(15)).expect("process exits after SIGTERM");
    assert!(st.success(), "{st:?}");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(&addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    // A throw-away CA and a server certificate for 127.0.0.1 signed by it.
    let ca_key = dir.path().join("ca.key");
    let ca = dir.path().join("ca.pem");
    let csr = dir.path().join("srv.csr");
    let ext = dir.path().join("srv.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let p = |x: &std::path::PathBuf| x.to_str().unwrap().to_string();
    let steps: Vec<Vec<String>> = vec![
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Ferry test CA",
            "-keyout",
            &p(&ca_key),
            "-out",
            &p(&ca),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl").args(&args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let s = TestServer::start_with(
        Sql::Sqlite,
        Obj::Local,
        &[
            ("FERRY__HTTP__TLS_CERT", cert.to_str().unwrap()),
            ("FERRY__HTTP__TLS_KEY", key.to_str().unwrap()),
        ],
    )
    .await;
    assert!(s.url.starts_with("https://"));
    let pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    assert_eq!(client.get(s.at("/healthz")).send().await.unwrap().status(), 200);
    let r = client
        .post(s.at("/api/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "ferry-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
    // Plain HTTP to the TLS port gets nowhere.
    let plain = s.url.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
}

#[test]
fn bad_settings_stop_start_up_naming_the_key() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (&[("FERRY__HTTP__ADDR", "here")], &["serve"], "http.addr"),
        (&[("FERRY__DATABASE__URL", "oracle://db")], &["serve"], "database.url"),
        (&[("FERRY__OBJECTS__URL", "s3://bucket")], &["serve"], "objects.s3.access_key_id"),
        (&[], &["--config", "/nonexistent/ferry.toml", "serve"], "/nonexistent/ferry.toml"),
    ];
    for (env, args, key) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(*args).env("FERRY__DATA__DIR", std::env::temp_dir().join("ferry-unused"));
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{err} should name {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_and_console_admin() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), Sql::Postgres, Obj::Local).await;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args).env_remove("RUST_LOG");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(&["migrate"]);
    assert!(first.contains("migration(s) applied; the postgres schema is current"), "{first}");
    assert!(!first.starts_with("0 "), "a fresh database gets every migration: {first}");
    assert!(run(&["migrate"]).contains("0 migration(s) applied"));
    run(&[
        "site",
        "add",
        "--id",
        "harbour",
        "--name",
        "Harbour Clinic",
        "--tier",
        "township",
        "--kind",
        "clinic",
    ]);
    run(&[
        "user",
        "add",
        "--id",
        "nurse-lin",
        "--site",
        "harbour",
        "--name",
        "Nurse Lin",
        "--role",
        "clinician",
        "--role",
        "trainer",
    ]);
    run(&["device", "add", "--site", "harbour", "--ae", "HARBOURUS", "--kind", "modality"]);
    assert!(run(&["site", "list"]).contains("harbour"));
    assert!(run(&["user", "list", "--site", "harbour"]).contains("clinician,trainer"));
    assert!(run(&["device", "list", "--site", "harbour"]).contains("HARBOURUS"));
    // Every console change is in the audit trail, by the operator.
    let db_url = env.iter().find(|(k, _)| k == "FERRY__DATABASE__URL").unwrap().1.clone();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db_url).await.unwrap();
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE actor = 'operator' ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(actions[..3], ["site.create", "user.create", "device.create"]);
    // A wrong value is refused, naming the valid ones.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args([
        "user", "add", "--id", "bad", "--site", "harbour", "--name", "X", "--role", "surgeon",
    ]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("clinician"), "lists valid roles");
}
