//! Two things at once: two different instances under one SOP Instance UID, sent at the same
//! moment over STOW-RS, C-STORE and tus (and mixes of them); two sites sending one Study
//! Instance UID at once; a replacement racing a first store. Afterwards every served instance
//! — bytes, metadata, frames — is one whole instance that was acknowledged, nothing refused is
//! visible, and no bytes are left behind that no row references.

use std::process::Command;

use serde_json::Value;
use sha2::Digest;

use crate::support::{Client, Obj, Sql, TestServer, dj, testfile, upload_whole};

archive_backends!([
    different_instances_under_one_uid_never_mix,
    two_sites_sending_one_study_at_once,
    a_replacement_racing_a_first_store_serves_one_whole_instance,
    orphaned_bytes_are_swept_after_the_grace_period,
]);

/// How each of two senders sends its instance.
#[derive(Debug, Clone, Copy)]
enum Via {
    Stow,
    CStore,
    Tus,
}

/// CT_small from the pydicom wheel with fresh UIDs of the same length (so no length in the
/// file changes) and, for the second variant, another patient name of the same length.
struct Variants {
    study: String,
    series: String,
    sop: String,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Replaces every occurrence of `from` by `to` (same length) in `bytes`.
fn replace_all(bytes: &mut [u8], from: &str, to: &str) {
    assert_eq!(from.len(), to.len(), "{from} → {to}");
    let (f, t) = (from.as_bytes(), to.as_bytes());
    let mut i = 0;
    let mut n = 0;
    while i + f.len() <= bytes.len() {
        if &bytes[i..i + f.len()] == f {
            bytes[i..i + f.len()].copy_from_slice(t);
            i += f.len();
            n += 1;
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "{from} not found");
}

/// The same UID with its last component replaced by `9` and `round` in as many digits.
fn renumber(uid: &str, round: u32) -> String {
    let (head, last) = uid.rsplit_once('.').unwrap();
    let width = last.len() - 1;
    format!("{head}.9{round:0width$}")
}

fn variants(round: u32) -> Variants {
    let base = testfile("CT_small.dcm");
    let inst = ferry::archive::parse::parse(&base).expect("CT_small parses");
    let (study, series, sop) = (
        renumber(&inst.study_uid, round),
        renumber(&inst.series_uid, round),
        renumber(&inst.sop_instance_uid, round),
    );
    let mut a = base.clone();
    // The SOP UID first: in CT_small the study and series UIDs share its prefix.
    replace_all(&mut a, &inst.sop_instance_uid, &sop);
    replace_all(&mut a, &inst.study_uid, &study);
    replace_all(&mut a, &inst.series_uid, &series);
    let mut b = a.clone();
    replace_all(&mut b, "CompressedSamples^CT1", "OtherPatientNames^ZZ9");
    Variants { study, series, sop, a, b }
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// The instance a Part 10 file holds, as the archive reads it: its DICOM JSON (every
/// attribute, bulk data as references) and its first frame's bytes. A C-STORE sender may
/// re-encode the data set on the way (dcmtk does) and Ferry writes the file meta group itself,
/// so two files of one instance may differ in bytes but never in this.
fn content(file: &[u8]) -> (String, Vec<u8>) {
    let inst = ferry::archive::parse::parse(file).expect("parses");
    let index = inst.frame_index.clone().expect("CT_small has a frame index");
    let (start, len) = (index[0][0].0 as usize, index[0][0].1 as usize);
    (inst.metadata.to_string(), file[start..start + len].to_vec())
}

/// Sends one instance; whether it was acknowledged.
async fn send(s: &TestServer, who: &Client, via: Via, bytes: Vec<u8>, ae: &str) -> bool {
    match via {
        Via::Stow => who.stow("/dicomweb/studies", &[&bytes]).await.0 == 200,
        Via::Tus => {
            let result = upload_whole(who, &bytes).await;
            result["stored"].as_array().unwrap().len() == 1
        }
        Via::CStore => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("i.dcm");
            std::fs::write(&file, &bytes).unwrap();
            let port = s.dimse_port.to_string();
            let ae = ae.to_string();
            let out = tokio::task::spawn_blocking(move || {
                Command::new("/usr/bin/storescu")
                    .args(["-v", "-aet", &ae, "-aec", "FERRY", "127.0.0.1", &port])
                    .arg(&file)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Received Store Response"), "storescu: {text}");
            text.contains("Received Store Response (Success)")
        }
    }
}

/// What the archive serves for one instance: its bytes, its PatientName in the metadata, and
/// frame 1.
async fn served(who: &Client, v: &Variants) -> (Vec<u8>, String, Vec<u8>) {
    let path = format!("/dicomweb/studies/{}/series/{}/instances/{}", v.study, v.series, v.sop);
    let (st, parts) = who.wado(&path).await;
    assert_eq!(st, 200);
    assert_eq!(parts.len(), 1);
    let meta: Value = who.get(&format!("{path}/metadata")).await.json().await.unwrap();
    let name = dj(&meta[0], "00100010")["Alphabetic"].as_str().unwrap_or_default().to_string();
    let r = who
        .req(reqwest::Method::GET, &format!("{path}/frames/1"))
        .header("accept", "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"').to_string();
    let body = r.bytes().await.unwrap();
    let frame = crate::support::split_parts(&body, &boundary, "application/octet-stream").remove(0);
    (parts.into_iter().next().unwrap(), name, frame)
}

/// The bytes `sop`'s row points to, after checking that every row's
/// hash is the hash of the object it points to (no write replaced bytes under a row).
async fn stored(s: &TestServer, sop: &str) -> Vec<u8> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT sop_instance_uid, sha256, object_key FROM instances")
            .fetch_all(s.state.db.pool())
            .await
            .unwrap();
    let mut found = None;
    for (uid, hash, key) in rows {
        let bytes = s.state.objects.get(&key).await.unwrap();
        assert_eq!(sha(&bytes), hash, "the row's hash is the hash of its object's bytes");
        if uid == sop {
            found = Some(bytes.to_vec());
        }
    }
    found.expect("the acknowledged instance has a row")
}

/// Instance rows, and instance objects in the store.
async fn rows_and_objects(s: &TestServer) -> (usize, usize) {
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances")
        .fetch_one(s.state.db.pool())
        .await
        .unwrap();
    let objects = s.state.objects.list(ferry::archive::store::INSTANCE_PREFIX).await.unwrap();
    (rows as usize, objects.len())
}

const PAIRS: [(Via, Via); 6] = [
    (Via::Stow, Via::Stow),
    (Via::CStore, Via::CStore),
    (Via::Tus, Via::Tus),
    (Via::Stow, Via::CStore),
    (Via::CStore, Via::Tus),
    (Via::Tus, Via::Stow),
];

async fn different_instances_under_one_uid_never_mix((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    for round in 0..12u32 {
        let (via_a, via_b) = PAIRS[round as usize % PAIRS.len()];
        let v = variants(round);
        assert_ne!(sha(&v.a), sha(&v.b));
        let (ok_a, ok_b) = tokio::join!(
            send(&s, &zhao, via_a, v.a.clone(), "ISLANDCT"),
            send(&s, &zhao, via_b, v.b.clone(), "ISLANDCT"),
        );
        assert!(
            ok_a ^ ok_b,
            "round {round} ({via_a:?}, {via_b:?}): exactly one is acknowledged, got {ok_a} and {ok_b}"
        );
        let (winner, name) =
            if ok_a { (&v.a, "CompressedSamples^CT1") } else { (&v.b, "OtherPatientNames^ZZ9") };
        let (bytes, served_name, frame) = served(&zhao, &v).await;
        assert!(
            content(&bytes) == content(winner),
            "round {round}: the bytes are the acknowledged instance's"
        );
        assert_eq!(served_name, name, "round {round}: the metadata is the acknowledged instance's");
        assert!(
            frame == content(winner).1,
            "round {round}: frame 1 is the acknowledged instance's"
        );
        let kept = stored(&s, &v.sop).await;
        assert!(
            content(&kept) == content(winner),
            "round {round}: the stored bytes are the winner's"
        );
        assert!(content(&bytes) == content(&kept), "round {round}: served = stored");
    }
    // Every refused write's bytes are gone; every row's bytes are there.
    assert_eq!(rows_and_objects(&s).await, (12, 12));
}

async fn two_sites_sending_one_study_at_once((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let (zhao, ma) = (s.login("dr-zhao").await, s.login("dr-ma").await);
    for round in 0..10u32 {
        let v = variants(100 + round);
        // Another instance of the same study and series, as the mountain clinic sends it.
        let mut other = v.a.clone();
        replace_all(&mut other, &v.sop, &renumber(&v.sop, 5000 + round));
        let (via_z, via_m) = PAIRS[round as usize % PAIRS.len()];
        let (ok_z, ok_m) = tokio::join!(
            send(&s, &zhao, via_z, v.a.clone(), "ISLANDCT"),
            send(&s, &ma, via_m, other.clone(), "MOUNTAINUS"),
        );
        assert!(ok_z ^ ok_m, "round {round}: exactly one site stores, got {ok_z} and {ok_m}");
        let (winner, loser) = if ok_z { (&zhao, &ma) } else { (&ma, &zhao) };
        let q = format!("/dicomweb/studies/{}/instances", v.study);
        let mine: Vec<Value> = winner.get(&q).await.json().await.unwrap();
        assert_eq!(mine.len(), 1, "round {round}: the study holds its owner's instance only");
        let want = if ok_z { &v.sop } else { &renumber(&v.sop, 5000 + round) };
        assert_eq!(dj(&mine[0], "00080018"), want.as_str());
        assert_eq!(loser.get(&q).await.status(), 404, "round {round}: nothing of it is visible");
        stored(&s, want).await;
    }
    assert_eq!(rows_and_objects(&s).await, (10, 10));
}

async fn a_replacement_racing_a_first_store_serves_one_whole_instance((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[("FERRY__DICOMWEB__ON_DUPLICATE", "replace")]).await;
    let zhao = s.login("dr-zhao").await;
    for round in 0..8u32 {
        let v = variants(200 + round);
        let (via_a, via_b) = PAIRS[round as usize % PAIRS.len()];
        let (ok_a, ok_b) = tokio::join!(
            send(&s, &zhao, via_a, v.a.clone(), "ISLANDCT"),
            send(&s, &zhao, via_b, v.b.clone(), "ISLANDCT"),
        );
        assert!(ok_a || ok_b, "round {round}: at least one is stored");
        let (bytes, name, _) = served(&zhao, &v).await;
        let same = |x: &[u8]| content(&bytes) == content(x);
        let whole = (ok_a && same(&v.a) && name == "CompressedSamples^CT1")
            || (ok_b && same(&v.b) && name == "OtherPatientNames^ZZ9");
        assert!(whole, "round {round}: served {name} with bytes of neither acknowledged instance");
        let kept = stored(&s, &v.sop).await;
        assert!(content(&kept) == content(&bytes), "round {round}: served = stored, hash checked");
    }
    // Replaced bytes are removed once the replacement commits; refused ones at once.
    assert_eq!(rows_and_objects(&s).await, (8, 8));
}

async fn orphaned_bytes_are_swept_after_the_grace_period((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let v = variants(300);
    assert_eq!(zhao.stow("/dicomweb/studies", &[&v.a]).await.0, 200);
    // Bytes of a store that crashed before its index row committed.
    let orphan = ferry::archive::store::object_key(&v.study, &v.series, &v.sop);
    s.state.objects.put(&orphan, bytes::Bytes::from(v.b.clone())).await.unwrap();
    assert_eq!(rows_and_objects(&s).await, (1, 2));
    let now = ferry::time::now_ms();
    let grace = 60 * 60_000;
    // Within the grace period nothing is touched: a store may be between its two steps.
    let removed =
        ferry::archive::sweep::sweep_orphans(&s.state.db, &s.state.objects, now, grace).await;
    assert_eq!(removed.unwrap(), 0);
    // After it, the orphan goes and the stored instance stays whole.
    let later = now + grace + 1_000;
    let removed =
        ferry::archive::sweep::sweep_orphans(&s.state.db, &s.state.objects, later, grace).await;
    assert_eq!(removed.unwrap(), 1);
    assert_eq!(rows_and_objects(&s).await, (1, 1));
    assert!(s.state.objects.size(&orphan).await.unwrap().is_none());
    let (bytes, _, _) = served(&zhao, &v).await;
    assert_eq!(sha(&bytes), sha(&v.a));
}
