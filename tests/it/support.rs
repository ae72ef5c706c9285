//! Starting servers and stores for tests.

#![allow(dead_code)]

/// One test per (backend, case): `backend_tests!(sqlite => Sql::Sqlite, postgres => Sql::Postgres;
/// [case_a, case_b])` makes `sqlite::case_a`, `postgres::case_a`, … each calling `case_a(backend)`.
macro_rules! backend_tests {
    ($($module:ident => $arg:expr),+ ; $names:tt) => {
        $( backend_tests!(@one $module, $arg, $names); )+
    };
    (@one $module:ident, $arg:expr, [$($name:ident),* $(,)?]) => {
        pub mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($arg).await
                }
            )*
        }
    };
}

/// The archive's cases on every pair of backends: SQLite or PostgreSQL, local directory or
/// Garage S3 (`sqlite_local::case`, `sqlite_s3::case`, `postgres_local::case`,
/// `postgres_s3::case`), each calling `case((sql, obj))`.
macro_rules! archive_backends {
    ($names:tt) => {
        backend_tests!(
            sqlite_local => (crate::support::Sql::Sqlite, crate::support::Obj::Local),
            sqlite_s3 => (crate::support::Sql::Sqlite, crate::support::Obj::S3),
            postgres_local => (crate::support::Sql::Postgres, crate::support::Obj::Local),
            postgres_s3 => (crate::support::Sql::Postgres, crate::support::Obj::S3);
            $names
        );
    };
}

use std::path::{Path, PathBuf};

use ferry::config::Settings;
use ferry::server::Application;
use ferry::state::AppState;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const DEMO_PASSWORD: &str = "ferry-demo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sql {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obj {
    Local,
    S3,
}

pub fn rand_suffix() -> String {
    ferry::ids::random_id(6).to_lowercase().replace(['-', '_'], "x")
}

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with scripts/test, which starts PostgreSQL and Garage"
        )
    })
}

/// A fresh, empty PostgreSQL database on the test server; returns its URL.
pub async fn pg_database() -> String {
    let admin = need("FERRY_TEST_PG_URL");
    let name = format!("ferry_{}", rand_suffix());
    sqlx::any::install_default_drivers();
    let mut conn =
        sqlx::AnyConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// Settings for a fresh S3 "bucket": the shared Garage bucket under a fresh prefix.
pub fn s3_env() -> Vec<(String, String)> {
    vec![
        (
            "FERRY__OBJECTS__URL".into(),
            format!("s3://{}/t-{}", need("FERRY_TEST_S3_BUCKET"), rand_suffix()),
        ),
        ("FERRY__OBJECTS__S3__ENDPOINT".into(), need("FERRY_TEST_S3_ENDPOINT")),
        ("FERRY__OBJECTS__S3__REGION".into(), need("FERRY_TEST_S3_REGION")),
        ("FERRY__OBJECTS__S3__ACCESS_KEY_ID".into(), need("FERRY_TEST_S3_ACCESS_KEY_ID")),
        ("FERRY__OBJECTS__S3__SECRET_ACCESS_KEY".into(), need("FERRY_TEST_S3_SECRET_ACCESS_KEY")),
        ("FERRY__OBJECTS__S3__ALLOW_HTTP".into(), "true".into()),
    ]
}

/// Environment-style settings for a test instance: loopback port 0, a fresh data dir, cheap
/// password hashing, and the chosen stores.
pub async fn test_env(dir: &Path, sql: Sql, obj: Obj) -> Vec<(String, String)> {
    let mut env = vec![
        ("FERRY__HTTP__ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__DATA__DIR".into(), dir.join("data").display().to_string()),
        ("FERRY__AUTH__ARGON2_MEMORY_KIB".into(), "256".into()),
        ("FERRY__AUTH__ARGON2_ITERATIONS".into(), "1".into()),
        ("FERRY__HTTP__SHUTDOWN_GRACE_SECS".into(), "5".into()),
        ("FERRY__DIMSE__ADDR".into(), "127.0.0.1:0".into()),
        ("FERRY__MEDIA__UDP_ADDR".into(), "127.0.0.1:0".into()),
        ("FERRY__VIEWER__DIR".into(), concat!(env!("CARGO_MANIFEST_DIR"), "/web/viewer").into()),
    ];
    if sql == Sql::Postgres {
        env.push(("FERRY__DATABASE__URL".into(), pg_database().await));
    }
    if obj == Obj::S3 {
        env.extend(s3_env());
    }
    env
}

pub struct TestServer {
    pub url: String,
    /// The DIMSE service's port.
    pub dimse_port: u16,
    pub state: AppState,
    pub dir: TempDir,
    pub env: Vec<(String, String)>,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// SQLite + local objects, demo network seeded.
    pub async fn start() -> TestServer {
        TestServer::start_with(Sql::Sqlite, Obj::Local, &[]).await
    }

    pub async fn start_with(sql: Sql, obj: Obj, extra: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut env = test_env(dir.path(), sql, obj).await;
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = Settings::load(None, env.clone()).expect("test settings");
        let app = Application::build(settings).await.expect("server starts");
        let url = app.base_url();
        let dimse_port = app.dimse_addr().expect("DIMSE enabled").port();
        let state = app.state();
        ferry::demo::seed(&state, DEMO_PASSWORD).await.expect("demo seed");
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run());
        TestServer { url, dimse_port, state, dir, env, shutdown, handle: Some(handle) }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Signs in and returns a client carrying the session cookie and CSRF header.
    pub async fn login(&self, user: &str) -> Client {
        self.login_pw(user, DEMO_PASSWORD).await.expect("login")
    }

    pub async fn login_pw(&self, user: &str, password: &str) -> Result<Client, reqwest::Response> {
        let jar_client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let r = jar_client
            .post(self.at("/api/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        if !r.status().is_success() {
            return Err(r);
        }
        let body: Value = r.json().await.unwrap();
        let csrf = body["csrf_token"].as_str().unwrap().to_string();
        let mut headers = HeaderMap::new();
        headers.insert("x-csrf-token", HeaderValue::from_str(&csrf).unwrap());
        // A second client sharing nothing but what we copy: the cookie jar is per client, so
        // rebuild with the same jar by logging in through it and adding the header by default.
        Ok(Client { http: jar_client, base: self.url.clone(), csrf: Some(csrf), bearer: None })
    }

    pub fn bearer(&self, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            csrf: None,
            bearer: Some(token.to_string()),
        }
    }

    pub fn anonymous(&self) -> Client {
        Client { http: reqwest::Client::new(), base: self.url.clone(), csrf: None, bearer: None }
    }

    /// Runs the `ferry` binary against this server's stores.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args).env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run ferry")
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An HTTP client bound to one server and one identity.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

impl Client {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = &self.bearer {
            r = r.bearer_auth(t);
        }
        if method != reqwest::Method::GET
            && let Some(c) = &self.csrf
        {
            r = r.header("x-csrf-token", c);
        }
        r
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path).send().await.unwrap()
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.req(m, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send("POST", path, Some(body)).await
    }
}

/// Reads a problem+json response, checking the media type.
pub async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct =
        r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(ct, "application/problem+json", "status {status}: not problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert!(body["code"].is_string() && body["title"].is_string(), "{body}");
    (status, body)
}

/// The newest audit events matching a query, read straight through the admin API.
pub async fn audit_events(server: &TestServer, query: &str) -> Vec<Value> {
    let admin = server.login("admin").await;
    let r = admin.get(&format!("/api/audit?{query}")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["events"].as_array().unwrap().clone()
}

/// A DICOM file shipped inside the pydicom wheel (`pydicom/data/test_files/NAME`).
pub fn testfile(name: &str) -> Vec<u8> {
    let path = testfile_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Where a DICOM file of the pydicom wheel is, as text (for command lines).
pub fn testfile_path(name: &str) -> String {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import pydicom, os; print(os.path.dirname(pydicom.__file__))"])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "pydicom is not installed: run scripts/install-deps");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("data/test_files")
    });
    dir.join(name).display().to_string()
}

/// Uploads `bytes` in one tus PATCH; returns the upload's result document.
pub async fn upload_whole(c: &Client, bytes: &[u8]) -> Value {
    let r = c
        .req(reqwest::Method::POST, "/api/uploads")
        .header("upload-length", bytes.len())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .req(reqwest::Method::PATCH, &loc)
        .header("upload-offset", 0)
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let v: Value = c.get(&loc).await.json().await.unwrap();
    assert_eq!(v["complete"], true);
    v["result"].clone()
}

pub const STOW_BOUNDARY: &str = "ferry-test-boundary-7d1f";

/// A `multipart/related; type="application/dicom"` body of the given parts.
pub fn stow_body(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![];
    for p in parts {
        out.extend_from_slice(
            format!("--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{STOW_BOUNDARY}--\r\n").as_bytes());
    out
}

impl Client {
    /// STOW-RS of the given instances; returns (status, DICOM JSON body).
    pub async fn stow(&self, path: &str, parts: &[&[u8]]) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::POST, path)
            .header(
                "content-type",
                format!("multipart/related; type=\"application/dicom\"; boundary={STOW_BOUNDARY}"),
            )
            .body(stow_body(parts))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// WADO-RS retrieve: the parts of the multipart answer.
    pub async fn wado(&self, path: &str) -> (u16, Vec<Vec<u8>>) {
        let r = self
            .req(reqwest::Method::GET, path)
            .header("accept", "multipart/related; type=\"application/dicom\"")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status != 200 {
            return (status, vec![]);
        }
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"').to_string();
        let body = r.bytes().await.unwrap().to_vec();
        (status, split_multipart(&body, &boundary))
    }
}

/// Splits a multipart body into part bodies (using each part's Content-Length).
pub fn split_multipart(body: &[u8], boundary: &str) -> Vec<Vec<u8>> {
    split_parts(body, boundary, "application/dicom")
}

/// Splits a multipart body whose parts must all declare `content-type: {part_type}…`.
pub fn split_parts(body: &[u8], boundary: &str, part_type: &str) -> Vec<Vec<u8>> {
    let mut parts = vec![];
    let delim = format!("--{boundary}");
    let mut pos = 0;
    loop {
        assert_eq!(
            &body[pos..pos + delim.len()],
            delim.as_bytes(),
            "expected a delimiter at {pos}"
        );
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return parts;
        }
        let head_end = pos + body[pos..].windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&body[pos..head_end]).to_lowercase();
        assert!(head.contains(&format!("content-type: {part_type}")), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let start = head_end + 4;
        parts.push(body[start..start + len].to_vec());
        pos = start + len + 2;
    }
}

/// The value of a DICOM JSON attribute (first value).
pub fn dj<'a>(v: &'a Value, tag: &str) -> &'a Value {
    &v[tag]["Value"][0]
}

/// Writes `n` synthetic CT slices of one series into `dir` (`0.dcm`, `1.dcm`, …), each
/// CT_small's header with fresh UIDs and `frames` random 512×512 16-bit frames, in one Python
/// process. Returns the Study Instance UID.
pub fn synthetic_series(dir: &Path, n: usize, frames: usize) -> String {
    let script = "import sys, os, pydicom\n\
        from pydicom.data import get_testdata_file\n\
        from pydicom.uid import generate_uid\n\
        d, n, f = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n\
        ds = pydicom.dcmread(get_testdata_file('CT_small.dcm'))\n\
        ds.StudyInstanceUID = generate_uid(); ds.SeriesInstanceUID = generate_uid()\n\
        ds.Rows = 512; ds.Columns = 512; ds.NumberOfFrames = f\n\
        for i in range(n):\n\
        \x20   ds.SOPInstanceUID = generate_uid(); ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID\n\
        \x20   ds.InstanceNumber = i + 1\n\
        \x20   ds.PixelData = os.urandom(512 * 512 * 2 * f)\n\
        \x20   ds.save_as(os.path.join(d, f'{i}.dcm'), enforce_file_format=True)\n\
        print(ds.StudyInstanceUID)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap(), &n.to_string(), &frames.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Writes a synthetic CT instance to `path`: CT_small's header with fresh UIDs and `frames`
/// random 512×512 16-bit frames. Returns its Study Instance UID.
pub fn synthetic_instance(path: &Path, frames: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let study = synthetic_series(dir.path(), 1, frames);
    std::fs::copy(dir.path().join("0.dcm"), path).unwrap();
    study
}

/// Debian's coturn on a free loopback port with the REST-credential secret, in a temporary
/// directory; stopped when dropped.
pub struct Coturn {
    pub port: u16,
    dir: TempDir,
    child: std::process::Child,
}

impl Coturn {
    /// `max_bps`: bytes per second each relayed session may carry (coturn drops the rest),
    /// to imitate a thin island link.
    pub fn start(secret: &str, max_bps: Option<u32>) -> Coturn {
        Coturn::start_with(secret, max_bps, false)
    }

    /// With `tls`, it listens for TURN over TLS only (on `port`), with a self-signed
    /// certificate for 127.0.0.1 made here, as a clinic's firewall that lets only HTTPS out
    /// would need it (on 443 in a deployment).
    pub fn start_with(secret: &str, max_bps: Option<u32>, tls: bool) -> Coturn {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let tls_conf = if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let made = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
                .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("openssl runs");
            assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
            // The plain listener moves out of the way; TLS takes the port.
            format!(
                "tls-listening-port={port}\nno-udp\nno-tcp\ncert={}\npkey={}\n",
                cert.display(),
                key.display()
            )
        } else {
            "no-tls\n".to_string()
        };
        // With TLS the plain listeners are off (no-udp, no-tcp) and keep a port of their own.
        let plain = match tls {
            true => {
                std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
            }
            false => port,
        };
        // Relay ports in a range of their own, away from the listening port.
        let relay = 20_000 + (port % 20_000);
        let conf = dir.path().join("turnserver.conf");
        std::fs::write(
            &conf,
            format!(
                "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={plain}\n\
                 min-port={relay}\nmax-port={}\nuse-auth-secret\nstatic-auth-secret={secret}\n\
                 realm=ferry.test\nallow-loopback-peers\nno-cli\ncli-password=not-used\n\
                 {tls_conf}no-dtls\nfingerprint\nsimple-log\nverbose\nlog-file={}\npidfile={}\nuserdb={}\n{}",
                relay + 200,
                dir.path().join("turn.log").display(),
                dir.path().join("turn.pid").display(),
                dir.path().join("turndb").display(),
                max_bps.map(|b| format!("max-bps={b}\n")).unwrap_or_default(),
            ),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/bin/turnserver")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("turnserver runs (scripts/install-deps installs coturn)");
        // Ready when its TCP listener accepts.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "coturn did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Coturn { port, dir, child }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turn.log")).unwrap_or_default()
    }

    /// The base64 SHA-256 of the TLS certificate's public key (for Chromium's
    /// `--ignore-certificate-errors-spki-list`, which trusts that key alone).
    pub fn spki(&self) -> String {
        let cert = self.dir.path().join("cert.pem");
        let script = format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
            cert.display()
        );
        let out = std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Relay allocations coturn granted (from its log).
    pub fn allocations(&self) -> usize {
        self.log().matches("ALLOCATE processed, success").count()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
