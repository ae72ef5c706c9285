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

archive_backends!([
    archive_round_trip,
    one_good_and_one_truncated_instance_is_202_with_the_reason,
    bad_input_gets_clear_failures_and_stores_nothing,
    other_sites_see_a_study_only_once_it_is_shared,
    metadata_and_frames_as_ohif_asks_for_them,
    dicomweb_client_from_pypi_stores_searches_and_retrieves,
    a_different_instance_replaces_the_stored_one_when_configured,
    nested_bulk_values_are_addressed_and_read_by_range,
]);

/// Waveform Data lies inside the Waveform Sequence: in the metadata it is a BulkDataURI like
/// any large value (not inline base64), and that URI answers with exactly the bytes pydicom
/// reads — read by range from the index built at ingest.
async fn nested_bulk_values_are_addressed_and_read_by_range((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let ecg = testfile("waveform_ecg.dcm");
    assert_eq!(zhao.stow("/dicomweb/studies", &[&ecg]).await.0, 200);
    let inst = ferry::archive::parse::parse(&ecg).unwrap();
    let base = format!(
        "/dicomweb/studies/{}/series/{}/instances/{}",
        inst.study_uid, inst.series_uid, inst.sop_instance_uid
    );
    let meta: Vec<Value> = zhao.get(&format!("{base}/metadata")).await.json().await.unwrap();
    let items = meta[0]["54000100"]["Value"].as_array().expect("a Waveform Sequence");
    assert!(items.len() >= 2, "two waveform groups");
    let expected = |n: usize| {
        let script = format!(
            "import pydicom, sys\nds = pydicom.dcmread(sys.argv[1])\n\
             sys.stdout.write(ds.WaveformSequence[{n}].WaveformData.hex())"
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script, &crate::support::testfile_path("waveform_ecg.dcm")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        hex::decode(String::from_utf8(out.stdout).unwrap()).unwrap()
    };
    for (n, item) in items.iter().enumerate() {
        let data = &item["54001010"];
        assert!(data.get("InlineBinary").is_none(), "item {n}: Waveform Data is not inline");
        let uri = data["BulkDataURI"].as_str().expect("a BulkDataURI");
        assert!(uri.ends_with(&format!("/bulkdata/54000100/{n}/54001010")), "{uri}");
        let path = uri.split_once("/dicomweb").map(|(_, p)| format!("/dicomweb{p}")).unwrap();
        let r = zhao.req(reqwest::Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"').to_string();
        let body = r.bytes().await.unwrap();
        let parts = crate::support::split_parts(&body, &boundary, "application/octet-stream");
        assert!(parts[0] == expected(n), "item {n}: the bytes pydicom reads");
    }
    // Not a bulk value of this instance, and not a path at all.
    assert_eq!(zhao.get(&format!("{base}/bulkdata/00100010")).await.status(), 404);
    assert_eq!(zhao.get(&format!("{base}/bulkdata/54000100/x")).await.status(), 400);
    // Another site: 404.
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.get(&format!("{base}/bulkdata/54000100/0/54001010")).await.status(), 404);
}

async fn archive_round_trip((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let (ct, mr, us) =
        (testfile("CT_small.dcm"), testfile("MR_small.dcm"), testfile("examples_ybr_color.dcm"));
    let (st, v) = zhao.stow("/dicomweb/studies", &[&ct, &mr, &us]).await;
    assert_eq!(st, 200, "{v}");
    // Parts are stored several at a time; the answer still follows the request's order.
    assert_eq!(
        referenced(&v),
        [CT_SOP, MR_SOP, "1.2.840.114340.3.8251017118051.3.20160503.121539.16117.4"]
    );
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

    // The un-nested forms carry their study's attributes; includefield adds stored values.
    let get = |path: String| {
        let zhao = &zhao;
        async move {
            let r = zhao.get(&path).await;
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Vec<Value>>().await.unwrap()
        }
    };
    let all_series = get("/dicomweb/series".into()).await;
    assert_eq!(all_series.len(), 3);
    let ct_series = get("/dicomweb/series?Modality=CT&includefield=Manufacturer".into()).await;
    assert_eq!(ct_series.len(), 1);
    assert_eq!(dj(&ct_series[0], "0020000E"), CT_SERIES);
    assert_eq!(dj(&ct_series[0], "00100010")["Alphabetic"], "CompressedSamples^CT1");
    assert_eq!(dj(&ct_series[0], "00080070"), "GE MEDICAL SYSTEMS");
    let mr =
        get(format!("/dicomweb/instances?SOPInstanceUID={MR_SOP}&includefield=00180050")).await;
    assert_eq!(mr.len(), 1);
    assert_eq!(dj(&mr[0], "00080018"), MR_SOP);
    assert!(mr[0].get("00180050").is_some(), "SliceThickness included: {}", mr[0]);
    assert!(mr[0].get("7FE00010").is_none());
    assert_eq!(get("/dicomweb/instances?limit=2".into()).await.len(), 2);
    assert_eq!(get("/dicomweb/instances?PatientName=*ct1".into()).await.len(), 1);
    let in_study = get(format!("/dicomweb/studies/{CT_STUDY}/instances")).await;
    assert_eq!(in_study.len(), 1);
    assert_eq!(dj(&in_study[0], "00080018"), CT_SOP);
    let studies =
        get(format!("/dicomweb/studies?StudyInstanceUID={CT_STUDY}&includefield=Manufacturer,KVP"))
            .await;
    assert_eq!(dj(&studies[0], "00080070"), "GE MEDICAL SYSTEMS");
    assert_eq!(dj(&studies[0], "00180060"), 120);
    let series_inc =
        get(format!("/dicomweb/studies/{CT_STUDY}/series?includefield=00080070")).await;
    assert_eq!(dj(&series_inc[0], "00080070"), "GE MEDICAL SYSTEMS");
    let (st, p) = problem(zhao.get("/dicomweb/studies?includefield=NoSuchKeyword").await).await;
    assert_eq!((st, p["code"].as_str().unwrap()), (400, "invalid_query"));
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.get("/dicomweb/series").await.json::<Vec<Value>>().await.unwrap().len(), 0);
    assert_eq!(ma.get("/dicomweb/instances").await.json::<Vec<Value>>().await.unwrap().len(), 0);
    assert_eq!(ma.get(&format!("/dicomweb/studies/{CT_STUDY}/instances")).await.status(), 404);

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

async fn one_good_and_one_truncated_instance_is_202_with_the_reason((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
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

async fn bad_input_gets_clear_failures_and_stores_nothing((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
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
async fn other_sites_see_a_study_only_once_it_is_shared((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
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

/// Frames as pydicom extracts them from the original file (1-based numbers).
fn expected_frames(file: &str, numbers: &[usize]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let script = "import sys, pydicom\n\
        from pydicom.data import get_testdata_file\n\
        from pydicom.encaps import generate_frames\n\
        ds = pydicom.dcmread(get_testdata_file(sys.argv[1]))\n\
        n = int(ds.get('NumberOfFrames', 1))\n\
        if ds.file_meta.TransferSyntaxUID.is_compressed:\n\
        \x20   frames = list(generate_frames(ds.PixelData, number_of_frames=n))\n\
        else:\n\
        \x20   size = len(ds.PixelData) // n\n\
        \x20   frames = [ds.PixelData[i * size:(i + 1) * size] for i in range(n)]\n\
        for i in sys.argv[3:]:\n\
        \x20   open(sys.argv[2] + '/' + i, 'wb').write(frames[int(i) - 1])\n";
    let mut args = vec![
        "-c".to_string(),
        script.to_string(),
        file.to_string(),
        dir.path().display().to_string(),
    ];
    args.extend(numbers.iter().map(|n| n.to_string()));
    let out = std::process::Command::new("python3").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    numbers.iter().map(|n| std::fs::read(dir.path().join(n.to_string())).unwrap()).collect()
}

async fn get_frames(
    c: &crate::support::Client,
    path: &str,
    accept: &str,
) -> (u16, Vec<Vec<u8>>, String) {
    let r = c.req(reqwest::Method::GET, path).header("accept", accept).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    if status != 200 {
        return (status, vec![], ct);
    }
    let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
    let body = r.bytes().await.unwrap();
    // Parts carry application/octet-stream with the transfer syntax.
    let parts =
        crate::support::split_parts(&body, &boundary, "application/octet-stream; transfer-syntax=");
    (status, parts, ct)
}

async fn metadata_and_frames_as_ohif_asks_for_them((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let (us, ct) = (testfile("examples_ybr_color.dcm"), testfile("CT_small.dcm"));
    assert_eq!(zhao.stow("/dicomweb/studies", &[&us, &ct]).await.0, 200);
    let us_series = "1.2.840.114340.3.8251017118051.2.20160503.120850.2171";
    let us_sop = "1.2.840.114340.3.8251017118051.3.20160503.121539.16117.4";

    // Series metadata: one item per instance, from the index, bulk values as URIs.
    let r = zhao.get(&format!("/dicomweb/studies/{US_STUDY}/series/{us_series}/metadata")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/dicom+json");
    let items: Vec<Value> = r.json().await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(dj(&items[0], "00080018"), us_sop);
    assert_eq!(dj(&items[0], "00280008"), 30);
    let uri = items[0]["7FE00010"]["BulkDataURI"].as_str().unwrap();
    assert!(uri.starts_with(&format!("{}/dicomweb/studies/{US_STUDY}/series/", s.url)), "{uri}");
    assert!(items[0]["7FE00010"].get("InlineBinary").is_none());
    let study_items: Vec<Value> =
        zhao.get(&format!("/dicomweb/studies/{CT_STUDY}/metadata")).await.json().await.unwrap();
    assert_eq!(dj(&study_items[0], "00100010")["Alphabetic"], "CompressedSamples^CT1");

    // Frames as stored (OHIF asks with transfer-syntax=*): JPEG frames 1 and 30, and the CT.
    let star = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";
    let path =
        format!("/dicomweb/studies/{US_STUDY}/series/{us_series}/instances/{us_sop}/frames/1,30");
    let (st, parts, ct_header) = get_frames(&zhao, &path, star).await;
    assert_eq!(st, 200);
    assert!(ct_header.contains("transfer-syntax=1.2.840.10008.1.2.4.50"), "{ct_header}");
    assert!(parts == expected_frames("examples_ybr_color.dcm", &[1, 30]), "JPEG frames differ");
    let ct_path =
        format!("/dicomweb/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_SOP}/frames/1");
    let (st, parts, _) = get_frames(&zhao, &ct_path, star).await;
    assert_eq!((st, parts.len()), (200, 1));
    assert!(parts[0] == expected_frames("CT_small.dcm", &[1])[0], "native frame differs");
    assert_eq!(parts[0].len(), 128 * 128 * 2);
    // Uncompressed asked of a native instance: as stored; of a JPEG one: decoded (checked
    // against dcmtk in render.rs); a syntax neither stored nor uncompressed: 406.
    let plain = "multipart/related; type=\"application/octet-stream\"";
    assert_eq!(get_frames(&zhao, &ct_path, plain).await.0, 200);
    let (st, parts, ct_header) = get_frames(&zhao, &path, plain).await;
    assert_eq!((st, parts.len()), (200, 2));
    assert!(ct_header.contains("transfer-syntax=1.2.840.10008.1.2.1;"), "{ct_header}");
    assert_eq!(parts[0].len(), 320 * 240 * 3);
    let j2k = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.90";
    let (st, p) =
        problem(zhao.req(reqwest::Method::GET, &path).header("accept", j2k).send().await.unwrap())
            .await;
    assert_eq!((st, p["code"].as_str().unwrap()), (406, "not_acceptable"));
    // Bad and missing frame numbers.
    let base = format!("/dicomweb/studies/{US_STUDY}/series/{us_series}/instances/{us_sop}/frames");
    assert_eq!(problem(zhao.get(&format!("{base}/31")).await).await.0, 404);
    assert_eq!(problem(zhao.get(&format!("{base}/0")).await).await.0, 400);
    assert_eq!(problem(zhao.get(&format!("{base}/one")).await).await.0, 400);
    // Bulk data: the pixel data of the CT, whole.
    let (st, parts) = {
        let r = zhao.get(&format!("/dicomweb/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_SOP}/bulkdata/7FE00010")).await;
        let st = r.status().as_u16();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
        let body = r.bytes().await.unwrap().to_vec();
        let start = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let end = body.len() - format!("\r\n--{boundary}--\r\n").len();
        (st, body[start..end].to_vec())
    };
    assert_eq!(st, 200);
    assert_eq!(parts.len(), 128 * 128 * 2);
    // Other sites: nothing.
    let ma = s.login("dr-ma").await;
    assert_eq!(
        problem(ma.get(&format!("/dicomweb/studies/{US_STUDY}/series/{us_series}/metadata")).await)
            .await
            .0,
        404
    );
    assert_eq!(get_frames(&ma, &path, star).await.0, 404);
}

/// `n` synthetic CT instances (copies of CT_small with fresh UIDs) in one new study; returns
/// the study UID and the files.
pub fn synthetic_series(n: usize) -> (String, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let script = "import sys, pydicom\n\
        from pydicom.data import get_testdata_file\n\
        from pydicom.uid import generate_uid\n\
        ds = pydicom.dcmread(get_testdata_file('CT_small.dcm'))\n\
        ds.StudyInstanceUID = generate_uid(); ds.SeriesInstanceUID = generate_uid()\n\
        for i in range(int(sys.argv[2])):\n\
        \x20   ds.SOPInstanceUID = generate_uid()\n\
        \x20   ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID\n\
        \x20   ds.InstanceNumber = i + 1\n\
        \x20   ds.save_as(sys.argv[1] + '/%04d.dcm' % i, enforce_file_format=True)\n\
        print(ds.StudyInstanceUID)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, dir.path().to_str().unwrap(), &n.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let study = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut files: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    (study, files.iter().map(|p| std::fs::read(p).unwrap()).collect())
}

/// kill -9 in the middle of a large STOW-RS (chunked, no length), restart, send everything
/// again: every instance is present exactly once and nothing half-stored is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_ingest_then_resend_gives_each_instance_once() {
    use std::io::{Read, Write};
    let (study, files) = synthetic_series(40);
    let dir = tempfile::tempdir().unwrap();
    let env = crate::support::test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(args);
        for (k, v) in &env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let (mut child, url, _logs) = crate::ops::spawn_binary(&env, &[], &["serve", "--demo"]);
    let token = String::from_utf8(cli(&["token", "create", "--user", "dr-zhao"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let boundary = "crash-test-boundary";
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        sock,
        "POST /dicomweb/studies HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = |sock: &mut std::net::TcpStream, data: &[u8]| {
        write!(sock, "{:x}\r\n", data.len()).unwrap();
        sock.write_all(data).unwrap();
        sock.write_all(b"\r\n").unwrap();
    };
    // Send half the instances, and the start of the next one.
    for f in &files[..20] {
        chunk(
            &mut sock,
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        chunk(&mut sock, f);
        chunk(&mut sock, b"\r\n");
    }
    chunk(&mut sock, format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
    chunk(&mut sock, &files[20][..5000]);
    // Wait until some are stored, then pull the plug.
    let http = reqwest::Client::new();
    let count = |url: String| {
        let http = http.clone();
        let token = token.clone();
        let study = study.clone();
        async move {
            let r = http
                .get(format!("{url}/dicomweb/studies?StudyInstanceUID={study}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            let v: Vec<Value> = r.json().await.ok()?;
            v.first().map(|s| dj(s, "00201208").as_i64().unwrap_or(0))
        }
    };
    let start = std::time::Instant::now();
    while count(url.clone()).await.unwrap_or(0) < 5 {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "ingest did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::process::Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    let mut rest = vec![];
    let _ = sock.read_to_end(&mut rest);

    // Restart on the same data; what is visible is whole.
    let (mut child, url, _logs) = crate::ops::spawn_binary(&env, &[], &["serve"]);
    let before = count(url.clone()).await.unwrap_or(0);
    assert!((5..=21).contains(&before), "{before} instances visible after the crash");
    // Send everything again, in one request.
    let parts: Vec<&[u8]> = files.iter().map(|f| f.as_slice()).collect();
    let r = http
        .post(format!("{url}/dicomweb/studies"))
        .bearer_auth(&token)
        .header(
            "content-type",
            format!(
                "multipart/related; type=\"application/dicom\"; boundary={}",
                crate::support::STOW_BOUNDARY
            ),
        )
        .body(crate::support::stow_body(&parts))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(count(url.clone()).await, Some(40));
    let db = dir.path().join("data/ferry.db");
    sqlx::any::install_default_drivers();
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM instances").fetch_one(&mut conn).await.unwrap();
    let distinct: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT sop_instance_uid) FROM instances")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((n, distinct), (40, 40));
    let objects = std::fs::read_dir(dir.path().join("data/objects/instances")).unwrap().count();
    assert_eq!(objects, 1, "one study folder");
    // Every instance reads back whole.
    let client = crate::support::Client {
        http: http.clone(),
        base: url.clone(),
        csrf: None,
        bearer: Some(token.clone()),
    };
    let (st, got) = client.wado(&format!("/dicomweb/studies/{study}")).await;
    assert_eq!((st, got.len()), (200, 40));
    let mut got = got;
    got.sort();
    let mut sent = files.clone();
    sent.sort();
    assert!(got == sent, "instances differ from what was sent");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
}

/// The PyPI `dicomweb-client`, a DICOMweb client Ferry's tests do not control, stores,
/// searches and retrieves through every service (tests/peers/dicomweb_client_session.py).
async fn dicomweb_client_from_pypi_stores_searches_and_retrieves((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let out = s.cli(&["token", "create", "--user", "dr-zhao"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/dicomweb_client_session.py");
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").args([script, &url, &token]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let us_sop = "1.2.840.114340.3.8251017118051.3.20160503.121539.16117.4";
    assert_eq!(v["stored"], json!([us_sop, CT_SOP])); // sorted
    assert_eq!(v["failed"], 0);
    assert_eq!(v["studies_ct1"], json!([CT_STUDY]));
    assert_eq!(v["studies_all"], 2);
    assert_eq!(v["series"], json!([CT_SERIES]));
    assert_eq!(v["instances"], json!([CT_SOP]));
    assert_eq!(v["instance_slice_thickness"], 5.0);
    assert_eq!(v["retrieved_sop"], CT_SOP);
    assert_eq!(v["retrieved_pixels_equal"], true);
    assert_eq!(v["metadata_rows"], 128);
    assert_eq!(v["frame_equal"], true);
    assert_eq!(v["us_frame_is_jpeg"], true);
    assert_eq!(v["rendered_png"], true);
    s.stop().await;
}

/// CT_small with the same UIDs and other content (a corrected instance, as a modality resends).
fn corrected_ct() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("ct.dcm");
    let script = "import sys, pydicom\n\
        from pydicom.data import get_testdata_file\n\
        ds = pydicom.dcmread(get_testdata_file('CT_small.dcm'))\n\
        ds.InstanceNumber = 99; ds.ImageComments = 'corrected'\n\
        ds.save_as(sys.argv[1], enforce_file_format=True)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, out_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(out_path).unwrap()
}

/// With `dicomweb.on_duplicate = "replace"`, a different instance under a stored SOP Instance
/// UID replaces it: the new bytes are served, the index follows, the old bytes are gone and
/// the replacement is in the audit trail.
async fn a_different_instance_replaces_the_stored_one_when_configured((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[("FERRY__DICOMWEB__ON_DUPLICATE", "replace")]).await;
    let zhao = s.login("dr-zhao").await;
    let (ct, fixed) = (testfile("CT_small.dcm"), corrected_ct());
    assert_ne!(ct, fixed);
    assert_eq!(zhao.stow("/dicomweb/studies", &[&ct]).await.0, 200);
    let (st, v) = zhao.stow("/dicomweb/studies", &[&fixed]).await;
    assert_eq!((st, referenced(&v)), (200, vec![CT_SOP.to_string()]), "{v}");
    let path = format!("/dicomweb/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_SOP}");
    let (_, parts) = zhao.wado(&path).await;
    assert!(parts.len() == 1 && parts[0] == fixed, "the corrected instance is served");
    let inst: Vec<Value> = zhao
        .get(&format!("/dicomweb/studies/{CT_STUDY}/series/{CT_SERIES}/instances"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((inst.len(), dj(&inst[0], "00200013")), (1, &json!(99)));
    let meta: Vec<Value> = zhao.get(&format!("{path}/metadata")).await.json().await.unwrap();
    assert_eq!(dj(&meta[0], "00204000"), "corrected");
    // The corrected instance sent again is idempotent: no second replacement.
    assert_eq!(zhao.stow("/dicomweb/studies", &[&fixed]).await.0, 200);
    let events = audit_events(&s, "action=imaging.replaced").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (&events[0]["resource_id"], &events[0]["actor"]),
        (&json!(CT_SOP), &json!("dr-zhao"))
    );
    if obj == Obj::Local {
        let mut copies = 0;
        let mut dirs = vec![s.data_dir().join("objects")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.to_string_lossy().contains(CT_SOP) {
                    copies += 1;
                }
            }
        }
        assert_eq!(copies, 1, "the replaced bytes are removed");
    }
    s.stop().await;
}
