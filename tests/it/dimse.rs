//! The DIMSE service with real peers: dcmtk's echoscu and storescu (by full path: pynetdicom
//! installs scripts of the same names) and pynetdicom as a second C-STORE client.

use std::process::Command;

use serde_json::Value;

use crate::support::{Obj, Sql, TestServer, audit_events, dj, testfile, testfile_path};

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const US_STUDY: &str = "1.2.840.114340.3.8251017118051.1.20160503.120850.2171";
const MR_STUDY: &str = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457";

/// Runs a dcmtk tool: options, then peer and port, then files.
fn dcmtk(tool: &str, args: &[&str], port: u16) -> std::process::Output {
    let port = port.to_string();
    let (files, opts): (Vec<&str>, Vec<&str>) = args.iter().partition(|a| a.ends_with(".dcm"));
    let mut all = opts;
    all.extend(["127.0.0.1", &port]);
    all.extend(files);
    Command::new(format!("/usr/bin/{tool}"))
        .args(&all)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_from_registered_devices_only() {
    let s = TestServer::start().await;
    let ok = dcmtk("echoscu", &["-aet", "ISLANDCT", "-aec", "FERRY"], s.dimse_port);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let refused = dcmtk("echoscu", &["-aet", "STRANGER", "-aec", "FERRY"], s.dimse_port);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Calling AE Title Not Recognized"));
    let wrong_called = dcmtk("echoscu", &["-aet", "ISLANDCT", "-aec", "ORTHANC"], s.dimse_port);
    assert!(!wrong_called.status.success());
    let events = audit_events(&s, "action=dimse.associate").await;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("device:ISLANDCT", "failure"),
            ("device:STRANGER", "failure"),
            ("device:ISLANDCT", "success")
        ]
    );
    assert_eq!(events[2]["site"], "island-clinic");
}

archive_backends!([storescu_to_qido_to_wado_byte_identical, pynetdicom_stores_too]);

/// storescu → Ferry → QIDO finds the study → WADO-RS returns the instance with the data set
/// as sent (uncompressed and JPEG baseline).
async fn storescu_to_qido_to_wado_byte_identical((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let ct = dcmtk(
        "storescu",
        &["-aet", "ISLANDCT", "-aec", "FERRY", &testfile_path("CT_small.dcm")],
        s.dimse_port,
    );
    assert!(ct.status.success(), "{}", String::from_utf8_lossy(&ct.stderr));
    // A compressed transfer syntax, proposed as such (-xy: JPEG baseline).
    let us = dcmtk(
        "storescu",
        &["-xy", "-aet", "ISLANDCT", "-aec", "FERRY", &testfile_path("examples_ybr_color.dcm")],
        s.dimse_port,
    );
    assert!(us.status.success(), "{}", String::from_utf8_lossy(&us.stderr));

    let zhao = s.login("dr-zhao").await;
    let studies: Vec<Value> = zhao.get("/dicomweb/studies").await.json().await.unwrap();
    let mut uids: Vec<_> =
        studies.iter().map(|s| dj(s, "0020000D").as_str().unwrap().to_string()).collect();
    uids.sort();
    assert_eq!(uids, [US_STUDY, CT_STUDY]);
    // dcmtk re-encodes data sets on the wire (lengths, padding; it drops group lengths and
    // Data Set Trailing Padding), so the file's bytes are not
    // what Ferry received. Two checks instead: (1) every element and the pixel data equal the
    // file's; (2) the retrieved instance, sent again by storescu, is recognised as the very same
    // bytes Ferry holds (an idempotent success, not a 0x0111 "different instance").
    let dir = tempfile::tempdir().unwrap();
    for (study, file, ts_flag) in
        [(US_STUDY, "examples_ybr_color.dcm", "-xy"), (CT_STUDY, "CT_small.dcm", "-xe")]
    {
        let (st, parts) = zhao.wado(&format!("/dicomweb/studies/{study}")).await;
        assert_eq!((st, parts.len()), (200, 1));
        let got = dir.path().join(file);
        std::fs::write(&got, &parts[0]).unwrap();
        let same = Command::new("python3")
            .args([
                "-c",
                "import sys, pydicom\n\
                 a, b = (pydicom.dcmread(p) for p in sys.argv[1:3])\n\
                 for ds in (a, b):\n\
                 \x20   for el in list(ds):\n\
                 \x20       if el.tag.element == 0 or el.tag == 0xFFFCFFFC: del ds[el.tag]\n\
                 assert a == b, 'elements differ'\n\
                 assert a.PixelData == b.PixelData, 'pixel data differs'\n\
                 assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID\n",
                got.to_str().unwrap(),
                &testfile_path(file),
            ])
            .output()
            .unwrap();
        assert!(same.status.success(), "{file}: {}", String::from_utf8_lossy(&same.stderr));
        let again = dcmtk(
            "storescu",
            &[ts_flag, "-aet", "ISLANDCT", "-aec", "FERRY", got.to_str().unwrap()],
            s.dimse_port,
        );
        let text = String::from_utf8_lossy(&again.stderr).to_string();
        assert!(again.status.success() && !text.contains("Failure"), "{file}: {text}");
        assert!(testfile(file).len() > 1000);
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances")
        .fetch_one(s.state.db.pool())
        .await
        .unwrap();
    assert_eq!(n, 2, "re-sends were recognised as the same instances");
    // The mountain clinic's devices store for the mountain clinic: not into island studies.
    let other = dcmtk(
        "storescu",
        &["-v", "-aet", "MOUNTAINUS", "-aec", "FERRY", &testfile_path("CT_small.dcm")],
        s.dimse_port,
    );
    let text = String::from_utf8_lossy(&other.stderr).to_string()
        + &String::from_utf8_lossy(&other.stdout);
    assert!(text.contains("Status: 0x124"), "expected 0x0124 (not authorised): {text}");
    assert_eq!(
        s.login("dr-ma")
            .await
            .get("/dicomweb/studies")
            .await
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .len(),
        0
    );
    let stored = audit_events(&s, "action=imaging.stored").await;
    assert!(stored.iter().all(|e| e["actor"] == "device:ISLANDCT"));
    assert_eq!(stored.len(), 4, "one per association: two first sends, two re-sends");
}

async fn pynetdicom_stores_too((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let script = format!(
        r#"
import sys
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage
ds = dcmread(sys.argv[1])
ae = AE(ae_title="COUNTYCT")
ae.add_requested_context(MRImageStorage, ds.file_meta.TransferSyntaxUID)
a = ae.associate("127.0.0.1", {port}, ae_title="FERRY")
assert a.is_established, "association refused"
status = a.send_c_store(ds)
a.release()
print(hex(status.Status))
"#,
        port = s.dimse_port
    );
    let out = Command::new("python3")
        .args(["-c", &script, &testfile_path("MR_small.dcm")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0x0");
    // COUNTYCT belongs to county-hospital: the study is theirs, not the clinics'.
    let origin: String = sqlx::query_scalar("SELECT origin_site FROM studies WHERE study_uid = $1")
        .bind(MR_STUDY)
        .fetch_one(s.state.db.pool())
        .await
        .unwrap();
    assert_eq!(origin, "county-hospital");
}

/// No record, no operation — over DIMSE as over HTTP: when the audit trail cannot be written,
/// a C-STORE is refused (0xA700) and nothing is stored; when even the association cannot be
/// recorded, the association is aborted. Once the trail works again, the same send succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_refused_when_its_audit_record_cannot_be_written() {
    let s = TestServer::start().await;
    let db = s.state.db.pool();
    let ct = testfile_path("CT_small.dcm");
    let send = || {
        let out =
            dcmtk("storescu", &["-v", "-aet", "ISLANDCT", "-aec", "FERRY", &ct], s.dimse_port);
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
    };
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM instances").fetch_one(db).await.unwrap()
    };
    // The audit store fails as `audit_fail.mode` says: `stores` (all but the association's
    // record), `all`, or not at all.
    sqlx::query("CREATE TABLE audit_fail (mode TEXT NOT NULL)").execute(db).await.unwrap();
    sqlx::query("INSERT INTO audit_fail (mode) VALUES ('stores')").execute(db).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events \
         WHEN (SELECT mode FROM audit_fail) = 'all' \
           OR ((SELECT mode FROM audit_fail) = 'stores' AND NEW.action <> 'dimse.associate') \
         BEGIN SELECT RAISE(ABORT, 'audit store down'); END",
    )
    .execute(db)
    .await
    .unwrap();
    let mode = |m: &'static str| async move {
        sqlx::query("UPDATE audit_fail SET mode = $1").bind(m).execute(db).await.unwrap();
    };
    let text = send();
    assert!(
        text.contains("Received Store Response (Refused: OutOfResources)"),
        "expected 0xA700: {text}"
    );
    assert_eq!(stored().await, 0, "nothing stored without its record");
    // Not even the association can be recorded: aborted.
    mode("all").await;
    let text = send();
    assert!(
        !text.contains("Received Store Response"),
        "no store without a recorded association: {text}"
    );
    assert_eq!(stored().await, 0);
    // The trail works again: stored, and recorded.
    mode("none").await;
    let text = send();
    assert!(text.contains("Received Store Response (Success)"), "{text}");
    assert_eq!(stored().await, 1);
    let events = audit_events(&s, "action=imaging.store").await;
    assert!(!events.is_empty(), "the store's decision is recorded");
}
