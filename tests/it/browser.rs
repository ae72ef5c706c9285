//! The web app in a real browser: Debian's Chromium driven by playwright-core.

use std::process::Command;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_clinician_see_their_homes_and_admin_pages_are_closed_to_clinicians() {
    let s = TestServer::start().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let shots = s.dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("shell.mjs")
            .current_dir(dir)
            .env("FERRY_URL", url)
            .env("SHOTS_DIR", &shots)
            .output()
            .expect("node runs (scripts/install-deps installs it)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("8 passed, 0 failed"), "{stdout}");
}
