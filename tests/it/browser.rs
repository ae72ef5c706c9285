//! The web app in a real browser: Debian's Chromium driven by playwright-core.

use std::process::Command;

use crate::support::{TestServer, testfile};

/// Runs a script of tests/browser against the server; returns its output.
async fn run_node(
    script: &'static str,
    s: &TestServer,
    extra: Vec<(&'static str, String)>,
) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    // FERRY_SHOTS_DIR keeps the screenshots for a person to look at; else they go with the
    // server's temporary directory.
    let shots = std::env::var_os("FERRY_SHOTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| s.dir.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--test-reporter=tap")
            .arg(script)
            .current_dir(dir)
            .env("FERRY_URL", url)
            .env("SHOTS_DIR", &shots)
            .envs(extra)
            .output()
            .expect("node runs (scripts/install-deps installs it)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Asserts that node:test's TAP summary counted `n` passed checks and no failure.
fn all_passed(out: &str, n: usize) {
    let count = |key: &str| {
        out.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<usize>().ok())
    };
    assert_eq!((count("# pass "), count("# fail ")), (Some(n), Some(0)), "{out}");
}

/// A CT and a multi-frame ultrasound from the pydicom wheel, opened in OHIF from the study
/// list (the CT again in Chinese at 800 × 1,280, where OHIF must speak Chinese): the viewport shows pixels, no request fails, no console error, no tour, a way back to
/// Ferry; another site's study gets Ferry's message (audited); a signed-out link to a study
/// comes back to it after sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ohif_renders_a_ct_and_a_multiframe_ultrasound() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    let (ct, us) = (testfile("CT_small.dcm"), testfile("examples_ybr_color.dcm"));
    assert_eq!(zhao.stow("/dicomweb/studies", &[&ct, &us]).await.0, 200);
    let studies = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322,1.2.840.114340.3.8251017118051.1.20160503.120850.2171";
    // A study of the mountain clinic, not shared with the island.
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.stow("/dicomweb/studies", &[&testfile("MR_small.dcm")]).await.0, 200);
    let other = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457";
    let env =
        vec![("FERRY_STUDIES", studies.to_string()), ("FERRY_OTHER_STUDY", other.to_string())];
    let out = run_node("viewer.mjs", &s, env).await;
    all_passed(&out, 7);
    // The refusal is in the audit trail.
    let refused = crate::support::audit_events(&s, "action=imaging.read&outcome=denied").await;
    assert!(refused.iter().any(|e| e["resource_id"] == other), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_clinician_see_their_homes_and_admin_pages_are_closed_to_clinicians() {
    let s = TestServer::start().await;
    let stdout = run_node("shell.mjs", &s, vec![]).await;
    all_passed(&stdout, 11);
}

/// The upload page sends a 3 MB instance in 1 MiB chunks; one chunk's connection is cut; the
/// page resumes and the study is stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_page_resumes_after_a_dropped_connection() {
    let s = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("three-megabytes.dcm");
    let study = crate::support::synthetic_instance(&file, 6);
    let out = run_node(
        "upload.mjs",
        &s,
        vec![("UPLOAD_FILE", file.display().to_string()), ("UPLOAD_STUDY", study.clone())],
    )
    .await;
    all_passed(&out, 2);
    let zhao = s.login("dr-zhao").await;
    let (st, parts) = zhao.wado(&format!("/dicomweb/studies/{study}")).await;
    assert_eq!(st, 200);
    assert!(parts[0] == std::fs::read(&file).unwrap(), "stored bytes differ from the file");
}

/// The call, in two Chromium instances with fake camera and microphone: dr-zhao
/// requests a radiology consult with a study, dr-li accepts live from the inbox, both join;
/// each side receives video frames and audio; chat; dr-zhao's socket is cut mid-call and the
/// call recovers (ICE restart); the study opens in the viewer beside the call; dr-li signs an
/// opinion that dr-zhao sees and acknowledges; dr-ma of mountain-clinic is refused the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_consult_from_request_to_signed_opinion() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    assert_eq!(zhao.stow("/dicomweb/studies", &[&testfile("CT_small.dcm")]).await.0, 200);
    let study = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
    let out = run_node("consult.mjs", &s, vec![("CONSULT_STUDY", study.to_string())]).await;
    all_passed(&out, 11);
    // The server's record of it: completed, signed, acknowledged; dr-ma's attempt audited.
    let joins = crate::support::audit_events(&s, "action=consult.join&outcome=denied").await;
    assert!(joins.iter().any(|e| e["actor"] == "dr-ma"), "{joins:?}");
}

/// A consult call through Debian's coturn on loopback (REST secret shared with Ferry, which
/// tells call pages to use relayed candidates only), relaying at most `max_bps` bytes per
/// second per session if given; `consult.mjs` in `mode` must pass all its checks.
async fn relayed_call(max_bps: Option<u32>, mode: &str, checks: usize) -> crate::support::Coturn {
    let turn = crate::support::Coturn::start("shared-turn-secret", max_bps);
    let urls = format!(
        "turn:127.0.0.1:{p}?transport=udp, turn:127.0.0.1:{p}?transport=tcp",
        p = turn.port
    );
    let s = TestServer::start_with(
        crate::support::Sql::Sqlite,
        crate::support::Obj::Local,
        &[
            ("FERRY__TURN__URLS", urls.as_str()),
            ("FERRY__TURN__SECRET", "shared-turn-secret"),
            ("FERRY__TURN__RELAY_ONLY", "true"),
        ],
    )
    .await;
    let zhao = s.login("dr-zhao").await;
    assert_eq!(zhao.stow("/dicomweb/studies", &[&testfile("CT_small.dcm")]).await.0, 200);
    let study = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
    let env = vec![("CONSULT_STUDY", study.to_string()), ("CALL_MODE", mode.to_string())];
    let out = run_node("consult.mjs", &s, env).await;
    all_passed(&out, checks);
    turn
}

/// The call connects through the relay (media on relay candidates on both sides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_forced_through_coturn_connects() {
    let turn = relayed_call(None, "relay", 5).await;
    assert!(turn.allocations() > 0, "coturn saw no allocation:\n{}", turn.log());
}

/// A session from the app's own pages (`broadcast-slides.mjs`): the trainer schedules it with a
/// PDF handout attached, then adds slides with a Chinese name on its page, and the viewer's
/// page lists them at once and reads them back whole; the
/// trainer shares the screen in the camera's place and the viewer's picture follows, then the
/// camera again; the trainer ends the session, the viewer is told, and the training library has
/// it with its slides and a recording that plays. The trail has the slides' id, not their name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slides_screen_sharing_and_the_library_from_the_sessions_page() {
    let s = TestServer::start().await;
    let out = run_node("broadcast-slides.mjs", &s, vec![]).await;
    all_passed(&out, 3);
    let added = crate::support::audit_events(&s, "action=broadcast.material_add").await;
    assert_eq!(added.len(), 2, "the handout and the slides: {added:?}");
    assert!(!serde_json::to_string(&added).unwrap().contains("心电图"), "the name is in the trail");
    assert_eq!(crate::support::audit_events(&s, "action=broadcast.end").await.len(), 1);
}

/// A clinic whose firewall lets no UDP out watches a broadcast through coturn, TURN over TCP
/// with `/api/turn`'s credentials and relayed candidates only (`broadcast-relay.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_viewer_watches_a_broadcast_through_turn_over_tcp() {
    let turn = crate::support::Coturn::start("shared-turn-secret", None);
    let urls = format!("turn:127.0.0.1:{}?transport=tcp", turn.port);
    let s = TestServer::start_with(
        crate::support::Sql::Sqlite,
        crate::support::Obj::Local,
        &[("FERRY__TURN__URLS", urls.as_str()), ("FERRY__TURN__SECRET", "shared-turn-secret")],
    )
    .await;
    let out = run_node("broadcast-relay.mjs", &s, vec![]).await;
    all_passed(&out, 2);
    assert!(turn.allocations() > 0, "coturn saw no allocation:\n{}", turn.log());
}

/// The same through TURN over TLS (`turns:`), as for a clinic whose firewall lets only HTTPS
/// out (on port 443 in a deployment; a free port here): coturn with a self-signed certificate
/// made for the test, no plain listener at all; Chromium trusts that certificate's key alone
/// (without it, Chromium refuses the relay: error 701, no candidate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_viewer_watches_a_broadcast_through_turn_over_tls() {
    let turn = crate::support::Coturn::start_with("shared-turn-secret", None, true);
    let urls = format!("turns:127.0.0.1:{}?transport=tcp", turn.port);
    let s = TestServer::start_with(
        crate::support::Sql::Sqlite,
        crate::support::Obj::Local,
        &[("FERRY__TURN__URLS", urls.as_str()), ("FERRY__TURN__SECRET", "shared-turn-secret")],
    )
    .await;
    let env = vec![("TURN_RELAY", "tls".to_string()), ("TURN_SPKI", turn.spki())];
    let out = run_node("broadcast-relay.mjs", &s, env).await;
    all_passed(&out, 2);
    assert!(turn.allocations() > 0, "coturn saw no allocation:\n{}", turn.log());
}

/// A thin island link: coturn relays at most 7 KB/s per session (56 kbit/s), enough for the
/// voice and far too little for video. The call page steps down to audio only by itself, says
/// so, and the audio goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_thin_link_the_call_steps_down_to_audio() {
    relayed_call(Some(7_000), "weak", 5).await;
}

/// Every page each demo role can reach, signed in with a Chinese browser: no string of the
/// English catalogue shows where the Chinese one differs; the language switch goes to English
/// and is remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interface_is_chinese_for_every_role() {
    let s = TestServer::start().await;
    ferry::demo::seed_routing(&s.state).await.unwrap();
    let out = run_node("i18n.mjs", &s, vec![]).await;
    all_passed(&out, 9);
}

/// Every page of every demo role (clinician, specialist, reader, trainer, admin), in English
/// and Chinese, at 1,280 × 800 and 800 × 1,280: no sideways scrolling, no console error or
/// failed request, no Study Instance UID outside a details element, no `^` in a shown name,
/// no untranslated string, no serious or critical axe-core violation; in both languages, admin
/// issues the island clinic's ECG cart a device token (its secret shown once), sees it active,
/// revokes it and sees it revoked; a signed-out deep link to a consult lands on it after sign-in.
/// With the demo's routing, the reading pages are among them (a CT read and signed, an ECG's
/// critical result left open, so the clinic's banner shows on every page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_every_role_fits_reads_and_passes_axe_in_both_languages() {
    let s = TestServer::start().await;
    ferry::demo::seed_routing(&s.state).await.unwrap();
    let files = crate::support::testfile_path("CT_small.dcm");
    let dir = std::path::Path::new(&files).parent().unwrap().display().to_string();
    let out = run_node("pages.mjs", &s, vec![("DICOM_TEST_FILES", dir)]).await;
    all_passed(&out, 26);
}

/// The ECG pages with pydicom's 12-lead waveform posted by dr-zhao: the list and the study
/// list open it; 12 labelled leads and the rhythm strip at true size on the paper grid; a
/// caliper dragged between two R peaks (found in the API's waveform) reads 982 ms ± 10, and
/// its keys move it 1 px / 10 px; double gain doubles the drawn height; 12×1 shows 10 s; the
/// saved calibration is used; nothing English in the Chinese interface; no console error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecg_viewer_draws_true_size_and_its_caliper_reads_the_rr() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    let r = zhao
        .req(reqwest::Method::POST, "/api/ecgs")
        .body(testfile("waveform_ecg.dcm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let rec: serde_json::Value = r.json().await.unwrap();
    let id = rec["id"].as_str().unwrap().to_string();
    let out = run_node("ecg.mjs", &s, vec![("ECG_ID", id)]).await;
    all_passed(&out, 9);
}

/// The reading loop with three people in Chromium, on the demo's routing: the island CT sends
/// a CT by storescu and dr-li's open worklist shows it within a second and a half of the send
/// ending; dr-zhao sends it for reading; dr-chen cannot claim imaging; dr-li claims it, the
/// viewer is framed beside the report editor, and signs a report in Chinese; dr-zhao's page
/// shows it without reloading and its PDF answers; the cart's ECG (its device token) reaches
/// dr-chen, who marks ventricular tachycardia critical; dr-zhao's banner shows within 2 s and
/// is acknowledged with a read-back line, which dr-chen's page shows; the turnaround page has
/// all three intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ct_and_an_ecg_read_at_the_centre_and_reported_back_to_the_clinic() {
    let s = TestServer::start().await;
    ferry::demo::seed_routing(&s.state).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    crate::support::synthetic_series(dir.path(), 5, 1);
    // A patient with a Chinese name (ideographic group), as the clinic's CT writes it.
    let named = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, glob, pydicom\n\
             for f in glob.glob(sys.argv[1] + '/*.dcm'):\n\
             \x20   ds = pydicom.dcmread(f)\n\
             \x20   ds.SpecificCharacterSet = 'ISO_IR 192'\n\
             \x20   ds.PatientName = 'Wang^Xiaodong=王^小东'\n\
             \x20   ds.save_as(f, enforce_file_format=True)\n",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(named.status.success(), "{}", String::from_utf8_lossy(&named.stderr));
    let env = vec![
        ("CT_DIR", dir.path().display().to_string()),
        ("DIMSE_PORT", s.dimse_port.to_string()),
        ("CART_TOKEN", ferry::demo::cart_token(crate::support::DEMO_PASSWORD)),
        (
            "ECG_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ecg/muse-guangxi-sinus-rhythm.xml")
                .to_string(),
        ),
    ];
    let out = run_node("reading.mjs", &s, env).await;
    all_passed(&out, 11);
}

/// A training broadcast through Ferry's SFU with real browsers over WHIP and WHEP: trainer-sun
/// publishes three simulcast layers; viewers at the island clinic, the mountain clinic and the
/// county hospital decode frames and receive audio; one climbs to the full-size layer; the
/// session counts who watches and sees a hang-up; attendance by person and site (JSON, CSV) is
/// the trainer's site's; presenting and watching are audited; the presenter's recording is
/// filed, plays and seeks in Chromium, and ffprobe reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_three_sites_through_the_sfu() {
    let s = TestServer::start().await;
    ferry::operator::add_user(
        &s.state,
        &"county-hospital".parse().unwrap(),
        ferry::network::NewUser {
            id: "dr-wu".parse().unwrap(),
            display_name: "Dr Wu".into(),
            roles: vec![ferry::network::Role::Clinician],
            specialties: vec![],
            password: Some(ferry::demo::DEFAULT_PASSWORD.into()),
        },
    )
    .await
    .unwrap();
    let viewers = ("VIEWERS", "dr-zhao,dr-ma,dr-wu".to_string());
    let out = run_node("broadcast-media.mjs", &s, vec![viewers]).await;
    all_passed(&out, 8);
    let filed = crate::support::audit_events(&s, "action=broadcast.record").await;
    assert_eq!(filed.len(), 1, "the recording is filed once: {filed:?}");
    // ffprobe reads the recording: VP8 at the presenter's full size and Opus, its duration the
    // server's.
    let sun = s.login("trainer-sun").await;
    let session = filed[0]["resource_id"].as_str().unwrap();
    let list: serde_json::Value =
        sun.get(&format!("/api/broadcasts/{session}/recordings")).await.json().await.unwrap();
    let rec = &list["recordings"][0];
    let bytes = sun.get(rec["url"].as_str().unwrap()).await.bytes().await.unwrap();
    let path = s.dir.path().join("recording.webm");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration,format_name:stream=codec_name,width,height",
        ])
        .args(["-of", "json"])
        .arg(&path)
        .output()
        .expect("ffprobe runs (scripts/install-deps installs ffmpeg)");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("ffprobe: {probe}");
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, ["vp8", "opus"], "{probe}");
    assert_eq!(
        (probe["streams"][0]["width"].as_u64(), probe["streams"][0]["height"].as_u64()),
        (Some(960), Some(540))
    );
    assert!(probe["format"]["format_name"].as_str().unwrap().contains("webm"), "{probe}");
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    let server = rec["duration_seconds"].as_f64().unwrap();
    assert!((duration - server).abs() < 1.0, "ffprobe {duration} s, the server {server} s");
    let present = crate::support::audit_events(&s, "action=broadcast.present").await;
    assert!(present.iter().any(|e| e["outcome"] == "success" && e["actor"] == "trainer-sun"));
    let watch = crate::support::audit_events(&s, "action=broadcast.watch").await;
    let who: std::collections::BTreeSet<&str> =
        watch.iter().filter_map(|e| e["actor"].as_str()).collect();
    assert_eq!(who, ["dr-ma", "dr-wu", "dr-zhao"].into_iter().collect());
}
