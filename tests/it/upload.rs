//! Resumable uploads: the tus 1.0 protocol over HTTP, and `ferry upload` interrupted (kill -9)
//! and run again.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Obj, Sql, TestServer, problem, testfile, upload_whole};

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";

archive_backends!([
    tus_create_head_patch_complete_and_terminate,
    zip_bundles_store_each_entry_and_refuse_bombs,
]);

async fn tus_create_head_patch_complete_and_terminate((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let ct = testfile("CT_small.dcm");
    let r = zhao.req(reqwest::Method::OPTIONS, "/api/uploads").send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    assert!(r.headers()["tus-extension"].to_str().unwrap().contains("creation"));

    let (st, p) =
        problem(zhao.req(reqwest::Method::POST, "/api/uploads").send().await.unwrap()).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (400, "invalid_upload"));
    let r = zhao
        .req(reqwest::Method::POST, "/api/uploads")
        .header("upload-length", ct.len())
        .header("upload-metadata", "filename Q1Rfc21hbGwuZGNt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let head = |c: &crate::support::Client| {
        let c = c.clone();
        let loc = loc.clone();
        async move { c.req(reqwest::Method::HEAD, &loc).send().await.unwrap() }
    };
    assert_eq!(head(&zhao).await.headers()["upload-offset"], "0");
    let patch = |offset: usize, bytes: &[u8], ct: &'static str| {
        zhao.req(reqwest::Method::PATCH, &loc)
            .header("upload-offset", offset)
            .header("content-type", ct)
            .body(bytes.to_vec())
            .send()
    };
    let half = ct.len() / 2;
    let (st, _) = problem(patch(0, &ct[..half], "application/octet-stream").await.unwrap()).await;
    assert_eq!(st, 415);
    let (st, p) =
        problem(patch(7, &ct[..half], "application/offset+octet-stream").await.unwrap()).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (409, "offset_mismatch"));
    let r = patch(0, &ct[..half], "application/offset+octet-stream").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"].to_str().unwrap(), half.to_string());
    assert_eq!(head(&zhao).await.headers()["upload-offset"].to_str().unwrap(), half.to_string());
    // Someone else's upload does not exist for them.
    assert_eq!(head(&s.login("dr-ma").await).await.status(), 404);
    let status: Value = zhao.get(&loc).await.json().await.unwrap();
    assert_eq!(
        (status["complete"].as_bool(), status["filename"].as_str()),
        (Some(false), Some("CT_small.dcm"))
    );
    let r = patch(half, &ct[half..], "application/offset+octet-stream").await.unwrap();
    assert_eq!(r.status(), 204);
    let status: Value = zhao.get(&loc).await.json().await.unwrap();
    assert_eq!(status["complete"], true);
    assert_eq!(status["result"]["stored"][0]["study"], CT_STUDY);
    let (_, parts) = zhao.wado(&format!("/dicomweb/studies/{CT_STUDY}")).await;
    assert!(parts[0] == ct);
    // Too many bytes, and termination.
    let r = zhao
        .req(reqwest::Method::POST, "/api/uploads")
        .header("upload-length", 10)
        .send()
        .await
        .unwrap();
    let loc2 = r.headers()["location"].to_str().unwrap().to_string();
    let r = zhao
        .req(reqwest::Method::PATCH, &loc2)
        .header("upload-offset", 0)
        .header("content-type", "application/offset+octet-stream")
        .body(vec![0u8; 11])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(zhao.send("DELETE", &loc2, None).await.status(), 204);
    assert_eq!(zhao.req(reqwest::Method::HEAD, &loc2).send().await.unwrap().status(), 404);
    // Not DICOM: completes, and says why nothing was stored.
    let result = upload_whole(&zhao, b"hello").await;
    assert_eq!(result["failed"][0]["status"], 0xC000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_ferry_upload_resumes_and_completes() {
    let s = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("big.dcm");
    crate::support::synthetic_instance(&file, 40);
    let token = String::from_utf8(s.cli(&["token", "create", "--user", "dr-zhao"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let state = work.path().join("state.json");
    let upload = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args([
            "upload",
            file.to_str().unwrap(),
            "--server",
            &s.url,
            "--state",
            state.to_str().unwrap(),
        ])
        .args(extra)
        .env("FERRY_TOKEN", &token)
        .env_remove("RUST_LOG");
        c
    };
    // First run, slowed to 4 MiB/s, killed once the server holds some bytes.
    let mut first = upload(&["--limit-rate", "4M"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let staging = s.data_dir().join("uploads");
    let start = Instant::now();
    let held = loop {
        let held: u64 = std::fs::read_dir(&staging)
            .map(|d| {
                d.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
            })
            .unwrap_or(0);
        if held >= 3 << 20 {
            break held;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the upload did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    Command::new("kill").args(["-9", &first.id().to_string()]).status().unwrap();
    first.wait().unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(held < size, "killed before the end");
    assert!(state.exists(), "the unfinished upload is remembered");

    // Second run: continues from what the server holds.
    let out = upload(&[]).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("resuming big.dcm at byte"), "{stderr}");
    let at: u64 = stderr
        .split("at byte ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at >= held, "resumed at {at}, the server held {held}");
    assert!(stdout.contains("1 instance(s) stored (1 resumed), 0 refused"), "{stdout}");
    assert!(stderr.contains("100%"), "progress is shown: {stderr}");
    // The instance arrived whole.
    let zhao = s.login("dr-zhao").await;
    let studies: Vec<Value> =
        zhao.get("/dicomweb/studies?ModalitiesInStudy=CT").await.json().await.unwrap();
    assert_eq!(studies.len(), 1);
    let study = crate::support::dj(&studies[0], "0020000D").as_str().unwrap().to_string();
    let (_, parts) = zhao.wado(&format!("/dicomweb/studies/{study}")).await;
    assert!(parts[0] == std::fs::read(&file).unwrap(), "stored bytes differ from the file");
    let remembered: Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(remembered.as_object().unwrap().len(), 0, "finished uploads are forgotten");
}

/// Builds the test bundles with Python's zipfile: `a.zip` (two instances, a directory, a
/// DICOMDIR, a text file, a nested zip), `b.zip` (a 64 MiB bomb, an entry whose declared size
/// lies, the CT again), `c.zip` (more entries than allowed).
fn bundles(dir: &std::path::Path) {
    let script = r#"
import sys, io, zipfile, struct
from pydicom.data import get_testdata_file
d = sys.argv[1]
ct = open(get_testdata_file('CT_small.dcm'), 'rb').read()
mr = open(get_testdata_file('MR_small.dcm'), 'rb').read()
inner = io.BytesIO()
with zipfile.ZipFile(inner, 'w') as z:
    z.writestr('x.dcm', ct)
with zipfile.ZipFile(d + '/a.zip', 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('SMITH^JOHN/ct.dcm', ct)
    z.writestr('SMITH^JOHN/', b'')
    z.writestr('mr.dcm', mr)
    z.writestr('DICOMDIR', b'not an instance')
    z.writestr('readme.txt', b'exported by the workstation')
    z.writestr('inner.zip', inner.getvalue())
with zipfile.ZipFile(d + '/b.zip', 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('bomb.dcm', bytes(64 << 20))
    z.writestr('liar.dcm', bytes(3 << 20))
    z.writestr('ct.dcm', ct)
# liar.dcm declares 1000 bytes in both headers but inflates to 3 MiB.
b = bytearray(open(d + '/b.zip', 'rb').read())
for sig, off in ((b'PK\x03\x04', 22), (b'PK\x01\x02', 24)):
    p = 0
    while True:
        p = b.find(sig, p)
        if p < 0: break
        name_at = p + (30 if sig == b'PK\x03\x04' else 46)
        if b[name_at:name_at + 8] == b'liar.dcm':
            b[p + off:p + off + 4] = struct.pack('<I', 1000)
        p += 4
open(d + '/b.zip', 'wb').write(b)
with zipfile.ZipFile(d + '/c.zip', 'w') as z:
    for i in range(7):
        z.writestr('%d.dcm' % i, ct)
"#;
    let out = Command::new("python3").args(["-c", script, dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn zip_bundles_store_each_entry_and_refuse_bombs((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(
        sql,
        obj,
        &[("FERRY__DICOMWEB__MAX_INSTANCE_MIB", "1"), ("FERRY__DICOMWEB__MAX_BUNDLE_ENTRIES", "6")],
    )
    .await;
    let zhao = s.login("dr-zhao").await;
    let dir = tempfile::tempdir().unwrap();
    bundles(dir.path());
    let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();

    // Two instances stored, the text file and the nested zip refused by entry number, the
    // directory and DICOMDIR skipped.
    let a = upload_whole(&zhao, &read("a.zip")).await;
    let stored: Vec<u64> =
        a["stored"].as_array().unwrap().iter().map(|e| e["entry"].as_u64().unwrap()).collect();
    assert_eq!(stored, [1, 3], "{a}");
    let failed = a["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{a}");
    assert_eq!(
        (failed[0]["entry"].as_u64(), failed[0]["status"].as_u64()),
        (Some(5), Some(0xC000))
    );
    assert_eq!(failed[1]["entry"], 6);
    assert!(failed[1]["reason"].as_str().unwrap().contains("nested"));
    assert_eq!(a["skipped"], 2);
    assert!(!a.to_string().contains("SMITH"), "entry names are not reported: {a}");
    assert_eq!(zhao.wado(&format!("/dicomweb/studies/{CT_STUDY}")).await.1.len(), 1);
    let events = crate::support::audit_events(&s, "action=imaging.stored").await;
    assert_eq!(events.len(), 2, "one event per study");

    // The bomb is refused by its size, the lying entry by what it inflates to; the CT again
    // is an idempotent success; nothing of the bomb or the liar is stored.
    let b = upload_whole(&zhao, &read("b.zip")).await;
    let failed = b["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{b}");
    assert_eq!(
        (failed[0]["entry"].as_u64(), failed[0]["status"].as_u64()),
        (Some(1), Some(0xA700))
    );
    assert_eq!(failed[1]["entry"], 2);
    assert!([0xA700, 0xC000].contains(&failed[1]["status"].as_u64().unwrap()), "{b}");
    assert_eq!(b["stored"][0]["entry"], 3);
    let all: Vec<Value> = zhao.get("/dicomweb/instances").await.json().await.unwrap();
    assert_eq!(all.len(), 2);

    // Too many entries: the whole bundle is refused, saying which limit.
    let c = upload_whole(&zhao, &read("c.zip")).await;
    assert!(c["refused"].as_str().unwrap().contains("max_bundle_entries"), "{c}");
    assert_eq!(c["stored"].as_array().unwrap().len(), 0);
    // A single file over the per-instance limit is refused the same way.
    let big = upload_whole(&zhao, &vec![0u8; (1 << 20) + 1]).await;
    assert_eq!(big["failed"][0]["status"], 0xA700);
    s.stop().await;
}

/// A PATCH whose connection goes silent mid-body (a cut link: no FIN, no RST) holds the upload.
/// The client coming back takes it over at once: HEAD tells every byte that arrived, a new
/// PATCH continues from there (the tus take-over), and the silent request is ended. With no new
/// PATCH, the silent one ends by itself after `http.body_stall_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_patch_is_taken_over_and_a_stalled_body_ends() {
    use tokio::io::AsyncWriteExt;
    let s =
        TestServer::start_with(Sql::Sqlite, Obj::Local, &[("FERRY__HTTP__BODY_STALL_SECS", "3")])
            .await;
    let zhao = s.login("dr-zhao").await;
    let ct = testfile("CT_small.dcm");
    let (_, secret) =
        ferry::operator::create_token(&s.state, &"dr-zhao".parse().unwrap(), "t", None)
            .await
            .unwrap();
    let create = || async {
        let r = zhao
            .req(reqwest::Method::POST, "/api/uploads")
            .header("upload-length", ct.len())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.headers()["location"].to_str().unwrap().to_string()
    };
    // Sends the headers and the first `n` bytes of a PATCH at offset 0, then falls silent.
    let silent_patch = |loc: String, n: usize| {
        let (addr, secret, body) =
            (s.url.trim_start_matches("http://").to_string(), secret.clone(), ct.clone());
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {secret}\r\n\
                 Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
                 Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            tcp.write_all(head.as_bytes()).await.unwrap();
            tcp.write_all(&body[..n]).await.unwrap();
            tcp.flush().await.unwrap();
            tcp
        }
    };
    let offset = |loc: String| {
        let zhao = zhao.clone();
        async move {
            let r = zhao.req(reqwest::Method::HEAD, &loc).send().await.unwrap();
            r.headers()["upload-offset"].to_str().unwrap().parse::<usize>().unwrap()
        }
    };

    // Taken over: the client's next PATCH does not wait for the silent one.
    let loc = create().await;
    let _silent = silent_patch(loc.clone(), 1000).await;
    let start = Instant::now();
    while offset(loc.clone()).await < 1000 {
        assert!(start.elapsed() < Duration::from_secs(5), "the first bytes never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = zhao
        .req(reqwest::Method::PATCH, &loc)
        .header("upload-offset", 1000)
        .header("content-type", "application/offset+octet-stream")
        .body(ct[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "the new PATCH takes the upload over");
    assert!(start.elapsed() < Duration::from_secs(3), "without waiting for the stall limit");
    let v: Value = zhao.get(&loc).await.json().await.unwrap();
    assert_eq!(v["result"]["stored"].as_array().unwrap().len(), 1, "{v}");

    // Ended by the stall limit: the upload is free again and keeps what arrived.
    let loc = create().await;
    let mut silent = silent_patch(loc.clone(), 500).await;
    let start = Instant::now();
    let mut answer = vec![];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stalled request was never ended");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(8), "{waited:?}");
    assert_eq!(offset(loc.clone()).await, 500, "what arrived is kept");
    assert!(!s.state.uploads_busy.is_busy(loc.trim_start_matches("/api/uploads/")));
}
