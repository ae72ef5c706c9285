//! The imaging archive over DICOMweb: STOW-RS in, QIDO-RS and WADO-RS out, with the access
//! policy, on SQLite + local objects and on PostgreSQL + Garage S3. Data: the DICOM files in
//! the pydicom wheel.

use serde_json::{Value, json};

use crate::support::{Obj, Sql, TestServer, audit_events, dj, problem, testfile};

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const CT_SERIES: &str = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";
const CT_SOP: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";
const MR_SOP: &str = "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457";
const US_STUDY: &str = "1.2.840.114340.3.8251017118051.1.20160503.120850.2171";

fn referenced(v: &Value) -> Vec<String> {
    v["00081199"]["Value"]
        .as_array()
        .map(|a| a.iter().map(|i| dj(i, "00081155").as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn failed(v: &Value) -> Vec<(Option<String>, u64)> {
    v["00081198"]["Value"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        dj(i, "00081155").as_str().map(str::to_string),
                        dj(i, "00081197").as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn qido(c: &crate::support::Client, query: &str) -> Vec<Value> {
    let r = c.get(&format!("/dicomweb/studies{query}")).await;
    assert_eq!(r.status(), 200, "{query}");
    assert_eq!(r.headers()["content-type"], "application/dicom+json");
    r.json::<Vec<Value>>().await.unwrap()
}

fn uids(studies: &[Value]) -> Vec<String> {
    let mut v: Vec<String> =
        studies.iter().map(|s| dj(s, "0020000D").as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

backend_tests!(sqlite_local => (crate::support::Sql::Sqlite, crate::support::Obj::Local),
    postgres_s3 => (crate::support::Sql::Postgres, crate::support::Obj::S3);
    [archive_round_trip]);

async fn archive_round_trip((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let (ct, mr, us) =
        (testfile("CT_small.dcm"), testfile("MR_small.dcm"), testfile("examples_ybr_color.dcm"));
    let (st, v) = zhao.stow("/dicomweb/studies", &[&ct, &mr, &us]).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(referenced(&v).len(), 3);
    assert!(v.get("00081198").is_none(), "no FailedSOPSequence when all stored");
    // Sending the same instance again is an idempotent success.
    let (st, v) = zhao.stow("/dicomweb/studies", &[&ct]).await;
    assert_eq!((st, referenced(&v)), (200, vec![CT_SOP.to_string()]));

    let all = qido(&zhao, "").await;
    assert_eq!(all.len(), 3);
    let ct_row = all.iter().find(|r| dj(r, "0020000D") == CT_STUDY).unwrap();
    assert_eq!(dj(ct_row, "00100010")["Alphabetic"], "CompressedSamples^CT1");
    assert_eq!(dj(ct_row, "00080061"), "CT");
    assert_eq!(dj(ct_row, "00201206"), 1);
    assert_eq!(dj(ct_row, "00201208"), 1);
    assert!(
        dj(ct_row, "00081190")
            .as_str()
            .unwrap()
            .ends_with(&format!("/dicomweb/studies/{CT_STUDY}"))
    );
    assert_eq!(uids(&qido(&zhao, "?PatientName=*ct1").await), [CT_STUDY]);
    assert_eq!(
        uids(&qido(&zhao, "?00100010=compressed*&fuzzymatching=false&includefield=00081030").await)
            .len(),
        2
    );
    assert_eq!(uids(&qido(&zhao, "?StudyDate=20040101-20040601").await), [CT_STUDY]);
    assert_eq!(qido(&zhao, "?StudyDate=-20031231").await.len(), 0);
    assert_eq!(uids(&qido(&zhao, "?ModalitiesInStudy=US").await), [US_STUDY]);
    assert_eq!(
        uids(&qido(&zhao, &format!("?StudyInstanceUID={CT_STUDY}%5C{US_STUDY}")).await).len(),
        2
    );
    let page = zhao.get("/dicomweb/studies?limit=1&offset=1").await;
    assert!(page.headers().get("warning").is_none(), "an explicit small limit is no truncation");
    assert_eq!(page.json::<Vec<Value>>().await.unwrap().len(), 1);
    let (st, p) = problem(zhao.get("/dicomweb/studies?StudyDate=last-week").await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (400, "invalid_query"));

    let series: Vec<Value> =
        zhao.get(&format!("/dicomweb/studies/{CT_STUDY}/series")).await.json().await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(dj(&series[0], "0020000E"), CT_SERIES);
    assert_eq!(dj(&series[0], "00080060"), "CT");
    assert_eq!(dj(&series[0], "00201209"), 1);
    let inst: Vec<Value> = zhao
        .get(&format!("/dicomweb/studies/{CT_STUDY}/series/{CT_SERIES}/instances"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dj(&inst[0], "00080018"), CT_SOP);
    assert_eq!(dj(&inst[0], "00280010"), 128);

    // WADO-RS gives back the bytes exactly as sent.
    let (st, parts) = zhao
        .wado(&format!("/dicomweb/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_SOP}"))
        .await;
    assert_eq!((st, parts.len()), (200, 1));
    assert!(parts[0] == ct, "instance bytes differ");
    let (st, parts) = zhao.wado(&format!("/dicomweb/studies/{US_STUDY}")).await;
    assert_eq!((st, parts.len()), (200, 1));
    assert!(parts[0] == us, "multi-frame ultrasound bytes differ");
    let (st, _) = zhao.wado("/dicomweb/studies/1.2.3.4.5").await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_good_and_one_truncated_instance_is_202_with_the_reason() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    let (st, v) = zhao
        .stow("/dicomweb/studies", &[&testfile("CT_small.dcm"), &testfile("MR_truncated.dcm")])
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(referenced(&v), [CT_SOP]);
    assert_eq!(failed(&v), [(Some(MR_SOP.to_string()), 0xC000)]);
    // Nothing of the truncated instance was kept.
    let mr_study = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457";
    assert_eq!(qido(&zhao, &format!("?StudyInstanceUID={mr_study}")).await.len(), 0);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances")
        .fetch_one(s.state.db.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.state.objects.list("instances").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_failures_and_stores_nothing() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    // Wrong media type.
    let r = zhao
        .req(reqwest::Method::POST, "/dicomweb/studies")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (st, p) = problem(r).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (415, "unsupported_media_type"));
    // Bytes that are not DICOM.
    let (st, v) = zhao.stow("/dicomweb/studies", &[b"this is not a DICOM file at all"]).await;
    assert_eq!(st, 400);
    assert_eq!(failed(&v), [(None, 0xC000)]);
    // A multipart body with no instance.
    let (st, v) = zhao.stow("/dicomweb/studies", &[]).await;
    assert_eq!(st, 400, "{v}");
    // An instance of another study than the one named in the path.
    let ct = testfile("CT_small.dcm");
    let (st, v) = zhao.stow("/dicomweb/studies/1.2.3.4", &[&ct]).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(failed(&v), [(Some(CT_SOP.to_string()), 0x0110)]);
    // Stored once; then a different instance with the same SOP Instance UID is refused.
    assert_eq!(zhao.stow(&format!("/dicomweb/studies/{CT_STUDY}"), &[&ct]).await.0, 200);
    let mut altered = ct.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    let (st, v) = zhao.stow("/dicomweb/studies", &[&altered]).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(failed(&v), [(Some(CT_SOP.to_string()), 0x0111)]);
    let (_, parts) = zhao.wado(&format!("/dicomweb/studies/{CT_STUDY}")).await;
    assert!(parts[0] == ct, "the first instance is kept intact");
}

/// A clinician of mountain-clinic cannot find or retrieve an island-clinic study (404,
/// audited) until it is shared with mountain-clinic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_sites_see_a_study_only_once_it_is_shared() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    let ct = testfile("CT_small.dcm");
    assert_eq!(zhao.stow("/dicomweb/studies", &[&ct]).await.0, 200);

    let ma = s.login("dr-ma").await;
    assert_eq!(qido(&ma, "").await.len(), 0);
    assert_eq!(qido(&ma, &format!("?StudyInstanceUID={CT_STUDY}")).await.len(), 0);
    let (st, _) = problem(ma.get(&format!("/dicomweb/studies/{CT_STUDY}/series")).await).await;
    assert_eq!(st, 404);
    assert_eq!(ma.wado(&format!("/dicomweb/studies/{CT_STUDY}")).await.0, 404);
    let (st, _) = problem(
        ma.post(&format!("/api/studies/{CT_STUDY}/shares"), json!({"site": "mountain-clinic"}))
            .await,
    )
    .await;
    assert_eq!(st, 404, "a site cannot share itself into another site's study");
    // The refusals are in the audit trail.
    let denied = audit_events(&s, "user=dr-ma&outcome=denied").await;
    let actions: Vec<_> = denied.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["study.share", "imaging.read", "imaging.read"]);
    assert_eq!(denied[1]["resource_id"], CT_STUDY);
    assert_eq!(denied[1]["site"], "island-clinic");

    let r = zhao
        .post(&format!("/api/studies/{CT_STUDY}/shares"), json!({"site": "mountain-clinic"}))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(uids(&qido(&ma, "").await), [CT_STUDY]);
    let (st, parts) = ma.wado(&format!("/dicomweb/studies/{CT_STUDY}")).await;
    assert_eq!(st, 200);
    assert!(parts[0] == ct);
    assert_eq!(audit_events(&s, "action=study.shared").await.len(), 1);
    // The city hospital's network admin administers the clinics but reads no patient data.
    let admin = s.login("admin").await;
    assert_eq!(qido(&admin, "").await.len(), 0);
    assert_eq!(admin.wado(&format!("/dicomweb/studies/{CT_STUDY}")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_searches_are_capped_with_a_warning() {
    let s =
        TestServer::start_with(Sql::Sqlite, Obj::Local, &[("FERRY__DICOMWEB__MAX_RESULTS", "2")])
            .await;
    let zhao = s.login("dr-zhao").await;
    let files =
        [testfile("CT_small.dcm"), testfile("MR_small.dcm"), testfile("examples_ybr_color.dcm")];
    let parts: Vec<&[u8]> = files.iter().map(|f| f.as_slice()).collect();
    assert_eq!(zhao.stow("/dicomweb/studies", &parts).await.0, 200);
    let r = zhao.get("/dicomweb/studies").await;
    let warning = r.headers()["warning"].to_str().unwrap().to_string();
    assert!(warning.starts_with("299 ") && warning.contains("Additional results"), "{warning}");
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 2);
    let r = zhao.get("/dicomweb/studies?limit=50").await;
    assert!(r.headers().contains_key("warning"));
    let r = zhao.get("/dicomweb/studies?offset=2").await;
    assert!(r.headers().get("warning").is_none());
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 1);
}
