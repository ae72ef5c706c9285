//! An island link, made here: two network namespaces joined by a veth pair, 1 Mbit/s each way
//! (`tc tbf`), 3 % of packets lost at each end's input hook (nftables), and two cuts of 20 s
//! (an nftables rule that drops everything) in the middle of an upload. Ferry runs in one
//! namespace, the clinic's `ferry upload` (or Chromium on the upload page) in the other. The
//! study must arrive whole without anyone rerunning anything, each cut may cost at most one
//! chunk sent again, and the bytes on the wire stay under 1.15× the payload. And a training
//! broadcast to viewers on a thin, a lossy and a cut link.
//!
//! The namespaces and links are made by `crate::netns`. Needs root: scripts/test runs as root,
//! as CI does.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::netns::Net;
use crate::ops::spawn_binary_in;
use crate::support::{Obj, Sql, test_env};

/// Cuts the link for `secs` seconds after each of the given fractions of the payload has
/// crossed (judged by the bytes the clinic has sent), while `running` says the upload goes on.
/// Whether process `pid` still runs: not gone and not a zombie (`kill -0` succeeds on a
/// child that has exited but is not reaped yet, and a test waited ten minutes on one).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
}

fn cut_during(
    link: &Net,
    payload: u64,
    at: &[f64],
    secs: u64,
    running: impl Fn() -> bool,
) -> Vec<u64> {
    let base = link.client_tx_bytes(0);
    let mut cuts = vec![];
    for f in at {
        let start = Instant::now();
        while link.client_tx_bytes(0) - base < (payload as f64 * f) as u64 {
            assert!(running(), "the upload ended before the cut at {f}");
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "no progress before the cut at {f}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        link.cut(0, true);
        cuts.push(link.client_tx_bytes(0) - base);
        std::thread::sleep(Duration::from_secs(secs));
        link.cut(0, false);
    }
    cuts
}

/// The island test's study: `n` CT slices of 512×512×16 bit in one series.
fn study(dir: &std::path::Path, n: usize) -> (u64, Vec<String>) {
    crate::support::synthetic_series(dir, n, 1);
    let mut total = 0;
    let mut hashes = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        total += bytes.len() as u64;
        hashes.push(hex::encode(sha2::Sha256::digest(&bytes)));
    }
    hashes.sort();
    (total, hashes)
}

/// The SHA-256 of every instance the server stored (read from its database once it stopped),
/// checked against the bytes in its object store.
async fn stored_hashes(env: &[(String, String)]) -> Vec<String> {
    let settings = ferry::config::Settings::load(None, env.to_vec()).unwrap();
    let stores = ferry::state::Stores::open(settings).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT sha256, object_key FROM instances ORDER BY sha256")
            .fetch_all(stores.db.pool())
            .await
            .unwrap();
    for (sha, key) in &rows {
        let bytes = stores.objects.get(key).await.unwrap();
        assert_eq!(&hex::encode(sha2::Sha256::digest(&bytes)), sha, "stored bytes are whole");
    }
    rows.into_iter().map(|(s, _)| s).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_upload_over_an_island_link_with_two_cuts_arrives_whole() {
    let Island { link, dir, files, payload, hashes, env, mut server, url } =
        Island::start(12).await;
    let token = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(["token", "create", "--user", "dr-zhao"]).env_remove("RUST_LOG");
        for (k, v) in &env {
            c.env(k, v);
        }
        String::from_utf8(c.output().unwrap().stdout).unwrap().trim().to_string()
    };
    let chunk_kib = 256u64;
    let state = dir.path().join("upload-state.json");
    let upload = Command::new("ip")
        .args(["netns", "exec", &link.links[0].ns, env!("CARGO_BIN_EXE_ferry"), "upload"])
        .arg(&files)
        .args(["--server", &url, "--token", &token, "--chunk-kib", &chunk_kib.to_string()])
        .args(["--retry-for", "10m", "--state"])
        .arg(&state)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = upload.id();
    let before = link.client_tx_bytes(0);
    let started = Instant::now();
    let cutter = link.clone();
    let cuts = tokio::task::spawn_blocking(move || {
        cut_during(&cutter, payload, &[0.3, 0.65], 20, || alive(pid))
    })
    .await;
    let out =
        tokio::task::spawn_blocking(move || upload.wait_with_output().unwrap()).await.unwrap();
    let cuts = cuts.unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let secs = started.elapsed().as_secs_f64();
    let wire = link.client_tx_bytes(0) - before;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "one command, no rerun:\n{stdout}\n{stderr}");
    assert!(stdout.contains("12 instance(s) stored"), "{stdout}");
    let resent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("bytes sent again after interruptions: "))
        .expect("the summary says what was sent again")
        .trim()
        .parse()
        .unwrap();
    // When TCP rides out a 20 s cut there is nothing to wait for and nothing is sent again;
    // when a request did give up, the person was told what the upload waited for.
    if resent > 0 {
        assert!(stderr.contains("trying again in"), "it said what it waited for:\n{stderr}");
    }
    let ratio = wire as f64 / payload as f64;
    println!(
        "island link: {payload} bytes of files, {wire} bytes on the wire ({ratio:.3}×), \
         {resent} sent again, cuts at {cuts:?}, {secs:.0} s"
    );
    assert!(resent <= 2 * chunk_kib * 1024, "each cut re-sends at most one chunk: {resent}");
    assert!(ratio < 1.15, "bytes on the wire {ratio:.3}× the payload");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    assert_eq!(stored_hashes(&env).await, hashes, "the study arrived whole");
}

/// Ferry (demo network, SQLite) in the island link's server namespace, and a study of `n`
/// slices on the clinic's side.
struct Island {
    link: Arc<Net>,
    dir: tempfile::TempDir,
    files: std::path::PathBuf,
    payload: u64,
    hashes: Vec<String>,
    env: Vec<(String, String)>,
    server: std::process::Child,
    url: String,
}

impl Island {
    async fn start(n: usize) -> Island {
        let mut net = Net::new();
        net.add_client("1mbit", 3);
        let link = Arc::new(net);
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("study");
        std::fs::create_dir_all(&files).unwrap();
        let (payload, hashes) = study(&files, n);
        let mut env = test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
        env.retain(|(k, _)| k != "FERRY__HTTP__ADDR" && k != "FERRY__DIMSE__ADDR");
        env.push(("FERRY__HTTP__ADDR".into(), format!("{}:0", link.links[0].server_ip)));
        env.push(("FERRY__DIMSE__ENABLED".into(), "false".into()));
        let prefix = ["ip", "netns", "exec", link.server_ns.as_str()];
        let (server, url, _logs) = spawn_binary_in(&prefix, &env, &[], &["serve", "--demo"]);
        Island { link, dir, files, payload, hashes, env, server, url }
    }
}

/// The same island link, with Chromium on the upload page in the clinic's namespace: the
/// page waits out both cuts by itself and every slice arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_page_over_an_island_link_with_two_cuts_arrives_whole() {
    let Island { link, dir: _dir, files, payload, hashes, env, mut server, url } =
        Island::start(8).await;
    let list: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let browser_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let page = Command::new("ip")
        .args([
            "netns",
            "exec",
            &link.links[0].ns,
            "node",
            "--test-reporter=tap",
            "island-upload.mjs",
        ])
        .current_dir(browser_dir)
        .env("FERRY_URL", &url)
        .env("UPLOAD_FILES", list.join("\n"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = page.id();
    let before = link.client_tx_bytes(0);
    let started = Instant::now();
    let cutter = link.clone();
    let cuts = tokio::task::spawn_blocking(move || {
        cut_during(&cutter, payload, &[0.3, 0.65], 20, || alive(pid))
    })
    .await;
    let out = tokio::task::spawn_blocking(move || page.wait_with_output().unwrap()).await.unwrap();
    let cuts = cuts.unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let secs = started.elapsed().as_secs_f64();
    let wire = link.client_tx_bytes(0) - before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the page did not store the study:\n{stdout}");
    let ratio = wire as f64 / payload as f64;
    println!(
        "island link (browser): {payload} bytes of files, {wire} bytes on the wire ({ratio:.3}×), \
         cuts at {cuts:?}, {secs:.0} s"
    );
    // The page also loads itself over the link (its modules, once): a little more than the CLI.
    assert!(ratio < 1.15, "bytes on the wire {ratio:.3}× the payload");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    assert_eq!(stored_hashes(&env).await, hashes, "the study arrived whole");
}

/// A training broadcast over shaped links, one Chromium per namespace: trainer-sun publishes
/// three simulcast layers from the server's side; a viewer at the island clinic is held to
/// 300 kbit/s (it must get the low layer and lose under 1 % of its audio), one at the mountain
/// clinic loses 10 % of its packets (its audio and video keep coming), and one at the city
/// hospital is cut off for 5 s (watching again within 5 s of the link's return).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_over_thin_lossy_and_cut_links() {
    let mut net = Net::new();
    let thin = net.add_client("300kbit", 0);
    let lossy = net.add_client("4mbit", 10);
    let cut = net.add_client("4mbit", 0);
    let net = Arc::new(net);
    let dir = tempfile::tempdir().unwrap();
    let mut env = test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
    env.retain(|(k, _)| {
        !["FERRY__HTTP__ADDR", "FERRY__DIMSE__ADDR", "FERRY__MEDIA__UDP_ADDR"].contains(&k.as_str())
    });
    env.push(("FERRY__HTTP__ADDR".into(), "0.0.0.0:0".into()));
    env.push(("FERRY__MEDIA__UDP_ADDR".into(), "0.0.0.0:0".into()));
    env.push(("FERRY__DIMSE__ENABLED".into(), "false".into()));
    let prefix = ["ip", "netns", "exec", net.server_ns.as_str()];
    let (mut server, url, logs) = spawn_binary_in(&prefix, &env, &[], &["serve", "--demo"]);
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap().to_string();
    let work = dir.path().join("parties");
    std::fs::create_dir_all(&work).unwrap();
    let party = |ns: &str, role: &str, user: &str, host: &str| {
        Command::new("ip")
            .args(["netns", "exec", ns, "node", "--test-reporter=tap", "broadcast-links.mjs"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"))
            .env("FERRY_URL", format!("http://{host}:{port}"))
            .env("ROLE", role)
            .env("USER_ID", user)
            .env("DIR", &work)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for = |name: &str, secs: u64| {
        let end = Instant::now() + Duration::from_secs(secs);
        while !work.join(name).exists() {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    };
    let mut trainer = party(&net.server_ns, "trainer", "trainer-sun", "127.0.0.1");
    if !wait_for("session", 90) {
        let _ = trainer.kill();
        let out = trainer.wait_with_output().unwrap();
        let said: Vec<String> =
            logs.try_iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        panic!(
            "the trainer never published:\n{}\n{}\nthe server's warnings:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            said.join("\n")
        );
    }
    let viewers: Vec<(&str, std::process::Child)> =
        [(thin, "thin", "dr-zhao"), (lossy, "lossy", "dr-ma"), (cut, "cut", "dr-li")]
            .into_iter()
            .map(|(i, role, user)| {
                (role, party(&net.links[i].ns, role, user, &net.links[i].server_ip))
            })
            .collect();
    // Cut the city hospital's link for 5 s once it is watching.
    let cutter = net.clone();
    let w = work.clone();
    let cutting = tokio::task::spawn_blocking(move || {
        let end = Instant::now() + Duration::from_secs(120);
        while !w.join("ready-cut").exists() {
            if Instant::now() > end {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
        cutter.cut(cut, true);
        std::thread::sleep(Duration::from_secs(5));
        cutter.cut(cut, false);
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        std::fs::write(w.join("restored"), ms.as_millis().to_string()).unwrap();
    });
    let mut failed = vec![];
    for (role, child) in viewers {
        let out =
            tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        println!("--- {role}\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        if !(out.status.success() && text.contains("# pass 1") && text.contains("# fail 0")) {
            failed.push(role);
        }
    }
    cutting.await.unwrap();
    std::fs::write(work.join("stop"), "").unwrap();
    let out =
        tokio::task::spawn_blocking(move || trainer.wait_with_output().unwrap()).await.unwrap();
    println!("--- trainer\n{}", String::from_utf8_lossy(&out.stdout));
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    // What the media plane saw of the links (down, up again), for whoever reads a failure.
    for line in logs.try_iter().filter(|l| l.contains("media link") || l.contains("media layer")) {
        println!("{line}");
    }
    assert!(out.status.success(), "the trainer's page failed");
    assert!(failed.is_empty(), "viewers that failed: {failed:?}");
}
