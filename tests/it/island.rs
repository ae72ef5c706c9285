//! An island link, made here: two network namespaces joined by a veth pair, 1 Mbit/s each way
//! (`tc tbf`), 3 % of packets lost at each end's input hook (nftables), and two cuts of 20 s
//! (an nftables rule that drops everything) in the middle of an upload. Ferry runs in one
//! namespace, the clinic's `ferry upload` (or Chromium on the upload page) in the other. The
//! study must arrive whole without anyone rerunning anything, each cut may cost at most one
//! chunk sent again, and the bytes on the wire stay under 1.15× the payload.
//!
//! Needs root (network namespaces): scripts/test runs as root, as CI does.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::ops::spawn_binary_in;
use crate::support::{Obj, Sql, test_env};

/// One island link between two fresh namespaces; removed when dropped.
struct Link {
    server_ns: String,
    client_ns: String,
    client_dev: String,
    server_ip: String,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn in_ns(ns: &str, args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    sh(&all);
}

impl Link {
    fn new() -> Link {
        let tag = crate::support::rand_suffix();
        let tag = &tag[..5];
        // A /30 of our own in our own namespaces; the octets vary so parallel runs never meet.
        let n: u32 = tag.bytes().map(u32::from).sum::<u32>() % 250 + 1;
        let (server_ns, client_ns) = (format!("fysrv{tag}"), format!("fycli{tag}"));
        let (server_dev, client_dev) = (format!("fys{tag}"), format!("fyc{tag}"));
        let (server_ip, client_ip) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        sh(&["ip", "netns", "add", &server_ns]);
        sh(&["ip", "netns", "add", &client_ns]);
        sh(&["ip", "link", "add", &server_dev, "type", "veth", "peer", "name", &client_dev]);
        sh(&["ip", "link", "set", &server_dev, "netns", &server_ns]);
        sh(&["ip", "link", "set", &client_dev, "netns", &client_ns]);
        for (ns, dev, ip) in
            [(&server_ns, &server_dev, &server_ip), (&client_ns, &client_dev, &client_ip)]
        {
            in_ns(ns, &["ip", "addr", "add", &format!("{ip}/30"), "dev", dev]);
            in_ns(ns, &["ip", "link", "set", dev, "up"]);
            in_ns(ns, &["ip", "link", "set", "lo", "up"]);
            // 1 Mbit/s out of each end.
            in_ns(
                ns,
                &[
                    "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "1mbit", "burst",
                    "32kbit", "latency", "400ms",
                ],
            );
            // 3 % loss on what arrives, and a chain for cuts.
            in_ns(ns, &["nft", "add", "table", "inet", "island"]);
            in_ns(
                ns,
                &[
                    "nft",
                    "add",
                    "chain",
                    "inet",
                    "island",
                    "inp",
                    "{ type filter hook input priority 0 ; }",
                ],
            );
            in_ns(
                ns,
                &[
                    "nft", "add", "rule", "inet", "island", "inp", "iifname", dev, "numgen",
                    "random", "mod", "100", "<", "3", "drop",
                ],
            );
        }
        Link { server_ns, client_ns, client_dev, server_ip }
    }

    /// Cuts the link (every packet dropped at both ends) or restores it.
    fn cut(&self, down: bool) {
        for ns in [&self.server_ns, &self.client_ns] {
            if down {
                in_ns(
                    ns,
                    &[
                        "nft", "insert", "rule", "inet", "island", "inp", "drop", "comment",
                        "\"cut\"",
                    ],
                );
            } else {
                let out = Command::new("ip")
                    .args([
                        "netns", "exec", ns, "nft", "-a", "list", "chain", "inet", "island", "inp",
                    ])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                for line in text.lines().filter(|l| l.contains("\"cut\"")) {
                    let handle = line.rsplit("handle ").next().unwrap().trim();
                    in_ns(
                        ns,
                        &["nft", "delete", "rule", "inet", "island", "inp", "handle", handle],
                    );
                }
            }
        }
    }

    /// Bytes the clinic's end has put on the wire.
    fn client_tx_bytes(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "cat"])
            .arg(format!("/sys/class/net/{}/statistics/tx_bytes", self.client_dev))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Link {
    /// Every process left in the namespaces ends with them, even when a test panicked before
    /// stopping its server: a server left running broke the next island test.
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Cuts the link for `secs` seconds after each of the given fractions of the payload has
/// crossed (judged by the bytes the clinic has sent), while `running` says the upload goes on.
fn cut_during(
    link: &Link,
    payload: u64,
    at: &[f64],
    secs: u64,
    running: impl Fn() -> bool,
) -> Vec<u64> {
    let base = link.client_tx_bytes();
    let mut cuts = vec![];
    for f in at {
        let start = Instant::now();
        while link.client_tx_bytes() - base < (payload as f64 * f) as u64 {
            assert!(running(), "the upload ended before the cut at {f}");
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "no progress before the cut at {f}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        link.cut(true);
        cuts.push(link.client_tx_bytes() - base);
        std::thread::sleep(Duration::from_secs(secs));
        link.cut(false);
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
        .args(["netns", "exec", &link.client_ns, env!("CARGO_BIN_EXE_ferry"), "upload"])
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
    let running = move || {
        Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success())
    };
    let before = link.client_tx_bytes();
    let started = Instant::now();
    let cutter = link_ref(&link);
    let cuts = tokio::task::spawn_blocking(move || {
        let c = cut_during(&cutter, payload, &[0.3, 0.65], 20, running);
        std::mem::forget(cutter); // the test's own Link removes the namespaces
        c
    })
    .await
    .unwrap();
    let out =
        tokio::task::spawn_blocking(move || upload.wait_with_output().unwrap()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let wire = link.client_tx_bytes() - before;
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
    link: Link,
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
        let link = Link::new();
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("study");
        std::fs::create_dir_all(&files).unwrap();
        let (payload, hashes) = study(&files, n);
        let mut env = test_env(dir.path(), Sql::Sqlite, Obj::Local).await;
        env.retain(|(k, _)| k != "FERRY__HTTP__ADDR" && k != "FERRY__DIMSE__ADDR");
        env.push(("FERRY__HTTP__ADDR".into(), format!("{}:0", link.server_ip)));
        env.push(("FERRY__DIMSE__ENABLED".into(), "false".into()));
        let prefix = ["ip", "netns", "exec", link.server_ns.as_str()];
        let (server, url, _logs) = spawn_binary_in(&prefix, &env, &[], &["serve", "--demo"]);
        Island { link, dir, files, payload, hashes, env, server, url }
    }
}

/// A second handle on the same namespaces, for the thread that cuts the link.
fn link_ref(l: &Link) -> Link {
    Link {
        server_ns: l.server_ns.clone(),
        client_ns: l.client_ns.clone(),
        client_dev: l.client_dev.clone(),
        server_ip: l.server_ip.clone(),
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
            &link.client_ns,
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
    let running = move || {
        Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success())
    };
    let before = link.client_tx_bytes();
    let started = Instant::now();
    let cutter = link_ref(&link);
    let cuts = tokio::task::spawn_blocking(move || {
        let c = cut_during(&cutter, payload, &[0.3, 0.65], 20, running);
        std::mem::forget(cutter);
        c
    })
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || page.wait_with_output().unwrap()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let wire = link.client_tx_bytes() - before;
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
