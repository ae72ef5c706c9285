//! `ferry upload`: sends DICOM files to a Ferry server over tus, chunk by chunk, with a
//! progress bar. It remembers unfinished uploads in a state file, so running it again after
//! an interruption (a dropped link, a killed process) continues from the last byte the
//! server holds instead of starting over.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use reqwest::StatusCode;

pub struct Options {
    pub server: String,
    pub token: String,
    /// Bytes per PATCH request; an interruption loses at most one chunk in flight.
    pub chunk_bytes: usize,
    /// Upper bound on the sending rate, in bytes per second (for shared, thin links).
    pub limit_rate: Option<u64>,
    pub state_file: PathBuf,
    /// How long to keep trying while the server cannot be reached (a cut link), counted from
    /// the last byte that got through. Nobody on an island should have to rerun the command.
    pub retry_for: Duration,
}

/// Waits between tries while the link is down: doubling from 1 s up to 30 s, and the give-up
/// time counted from the last progress.
struct Patience {
    retry_for: Duration,
    last_progress: Instant,
    next_wait: Duration,
}

impl Patience {
    fn new(retry_for: Duration) -> Patience {
        Patience { retry_for, last_progress: Instant::now(), next_wait: Duration::from_secs(1) }
    }

    fn progressed(&mut self) {
        self.last_progress = Instant::now();
        self.next_wait = Duration::from_secs(1);
    }

    /// Sleeps before the next try, saying what it waits for; an error once `retry_for` has
    /// passed without progress.
    async fn wait(&mut self, what: &str, why: &str) -> anyhow::Result<()> {
        let waited = self.last_progress.elapsed();
        if waited >= self.retry_for {
            bail!(
                "{what}: no progress for {} s ({why}); gave up after --retry-for. Run the same \
                 command again to resume from the last byte the server holds",
                waited.as_secs()
            );
        }
        let wait = self.next_wait.min(self.retry_for - waited);
        let left = self.retry_for - waited;
        eprintln!(
            "\n{what}: {why}; trying again in {} s (giving up in {} min unless the server answers)",
            wait.as_secs().max(1),
            left.as_secs().div_ceil(60)
        );
        tokio::time::sleep(wait).await;
        self.next_wait = (self.next_wait * 2).min(Duration::from_secs(30));
        Ok(())
    }
}

/// Whether a status means "try again later" rather than "no".
fn transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

fn offset_of(r: &reqwest::Response) -> Option<u64> {
    r.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// What happened to each file (a zip bundle counts each of its instances).
#[derive(Debug, Default)]
pub struct Summary {
    /// Instances stored.
    pub stored: usize,
    pub failed: Vec<(PathBuf, String)>,
    pub resumed: usize,
    /// Bytes put into requests again because an earlier try did not get them through (a cut
    /// link costs at most the chunk in flight).
    pub resent_bytes: u64,
}

type State = BTreeMap<String, String>;

fn load_state(path: &Path) -> State {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_state(path: &Path, state: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

/// Files under the given paths (directories recursively), sorted.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            out.extend(collect(&entries)?);
        } else if meta.is_file() {
            out.push(p.clone());
        }
    }
    Ok(out)
}

struct Progress {
    total: u64,
    done: u64,
    tty: bool,
    last_tenth: u64,
}

impl Progress {
    fn show(&mut self, name: &str) {
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        if self.tty {
            let filled = (pct / 5) as usize;
            eprint!(
                "\r[{}{}] {pct:>3}%  {:.1}/{:.1} MB  {name:<40.40}",
                "#".repeat(filled),
                "-".repeat(20 - filled),
                self.done as f64 / 1e6,
                self.total as f64 / 1e6
            );
            let _ = std::io::stderr().flush();
        } else if pct / 10 > self.last_tenth || pct == 100 {
            self.last_tenth = pct / 10;
            eprintln!(
                "{pct:>3}%  {:.1}/{:.1} MB  {name}",
                self.done as f64 / 1e6,
                self.total as f64 / 1e6
            );
        }
    }
}

/// What went wrong on the way, in words for the person waiting.
fn link_trouble(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the server stopped answering (a cut link?)".into()
    } else if e.is_connect() {
        "cannot reach the server (link down?)".into()
    } else {
        "the connection broke (link down?)".into()
    }
}

pub async fn run(paths: &[PathBuf], opts: &Options) -> anyhow::Result<Summary> {
    let files = collect(paths)?;
    if files.is_empty() {
        bail!("no files to upload");
    }
    // Requests other than chunks are small: a minute is long on any link that works.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(20))
        .build()?;
    let server = opts.server.trim_end_matches('/').to_string();
    let mut state = load_state(&opts.state_file);
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let mut progress =
        Progress { total, done: 0, tty: std::io::stderr().is_terminal(), last_tenth: 0 };
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut sent_this_run = 0u64;
    // Bytes handed to PATCH requests, and bytes the server confirmed holding.
    let mut attempted = 0u64;

    for file in &files {
        let abs = std::fs::canonicalize(file)?;
        let meta = std::fs::metadata(&abs)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let key = format!("{server}|{}|{}|{mtime}", abs.display(), meta.len());
        let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let req = |m: reqwest::Method, url: &str| {
            http.request(m, url)
                .bearer_auth(&opts.token)
                .header("tus-resumable", super::TUS_VERSION)
        };

        let mut patience = Patience::new(opts.retry_for);
        // Where does this file stand on the server?
        let mut location = state.get(&key).cloned();
        let mut offset = 0u64;
        if let Some(loc) = &location {
            let r = loop {
                match req(reqwest::Method::HEAD, &format!("{server}{loc}")).send().await {
                    Ok(r) if transient(r.status()) => {
                        patience.wait(&name, &format!("the server answered {}", r.status())).await?
                    }
                    Ok(r) => break r,
                    Err(e) => patience.wait(&name, &link_trouble(&e)).await?,
                }
            };
            match r.status() {
                StatusCode::OK => {
                    offset = offset_of(&r).unwrap_or(0);
                    if offset > 0 {
                        summary.resumed += 1;
                        eprintln!("resuming {name} at byte {offset} of {}", meta.len());
                    }
                }
                StatusCode::UNAUTHORIZED => bail!("the server refused the token (401)"),
                _ => location = None,
            }
        }
        let loc = match location {
            Some(l) => l,
            None => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
                let r = loop {
                    let sent = req(reqwest::Method::POST, &format!("{server}/api/uploads"))
                        .header("upload-length", meta.len())
                        .header("upload-metadata", format!("filename {encoded}"))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if transient(r.status()) => {
                            patience
                                .wait(&name, &format!("the server answered {}", r.status()))
                                .await?
                        }
                        Ok(r) => break r,
                        // A creation lost on the way may leave an unused upload on the server;
                        // it holds no bytes and costs nothing.
                        Err(e) => patience.wait(&name, &link_trouble(&e)).await?,
                    }
                };
                if !r.status().is_success() {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    bail!("the server refused to start the upload of {name} ({status}): {body}");
                }
                let l = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .context("the server gave no upload location")?
                    .to_string();
                state.insert(key.clone(), l.clone());
                save_state(&opts.state_file, &state)?;
                l
            }
        };
        progress.done += offset;
        progress.show(&name);

        let mut f = std::fs::File::open(&abs)?;
        let mut buf = vec![0u8; opts.chunk_bytes.max(1)];
        // A chunk's request may take as long as the chunk needs at 8 KB/s, plus a minute: a
        // thin link is slow, not dead; a request that takes longer is given up and resumed.
        let chunk_timeout = Duration::from_secs(60 + (opts.chunk_bytes as u64) / 8_000);
        while offset < meta.len() {
            f.seek(SeekFrom::Start(offset))?;
            let n = f.read(&mut buf)?;
            if n == 0 {
                bail!("{name} shrank while being uploaded");
            }
            attempted += n as u64;
            let r = req(reqwest::Method::PATCH, &format!("{server}{loc}"))
                .header("upload-offset", offset)
                .header("content-type", "application/offset+octet-stream")
                .timeout(chunk_timeout)
                .body(buf[..n].to_vec())
                .send()
                .await;
            let trouble = match r {
                Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                    let new = offset_of(&r).unwrap_or(offset + n as u64);
                    progress.done += new - offset;
                    sent_this_run += new - offset;
                    offset = new;
                    patience.progressed();
                    None
                }
                Ok(r) if r.status() == StatusCode::CONFLICT || transient(r.status()) => {
                    // Busy (the request before still held it), another offset, or a server in
                    // trouble: ask where it stands and continue from there.
                    Some(format!("the server answered {}", r.status()))
                }
                Ok(r) => {
                    let status = r.status();
                    bail!(
                        "the server refused {name} ({status}): {}",
                        r.text().await.unwrap_or_default()
                    );
                }
                Err(e) => Some(link_trouble(&e)),
            };
            if let Some(why) = trouble {
                let held = loop {
                    patience.wait(&name, &why).await?;
                    match req(reqwest::Method::HEAD, &format!("{server}{loc}")).send().await {
                        Ok(h) if h.status() == StatusCode::OK => {
                            break offset_of(&h).unwrap_or(offset);
                        }
                        Ok(h) if transient(h.status()) => {}
                        Ok(h) => bail!(
                            "the server no longer knows the upload of {name} ({})",
                            h.status()
                        ),
                        Err(_) => {}
                    }
                };
                if held > offset {
                    // What the broken request got through before it broke.
                    sent_this_run += held - offset;
                    patience.progressed();
                }
                progress.done = progress.done.saturating_sub(offset) + held;
                offset = held;
            }
            progress.show(&name);
            if let Some(rate) = opts.limit_rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(sent_this_run as f64 / rate as f64);
                let elapsed = started.elapsed();
                if due > elapsed {
                    tokio::time::sleep(due - elapsed).await;
                }
            }
        }

        // What became of it?
        let v: serde_json::Value = loop {
            match req(reqwest::Method::GET, &format!("{server}{loc}")).send().await {
                Ok(r) if r.status().is_success() => match r.json().await {
                    Ok(v) => break v,
                    Err(e) => patience.wait(&name, &link_trouble(&e)).await?,
                },
                Ok(r) if transient(r.status()) => {
                    patience.wait(&name, &format!("the server answered {}", r.status())).await?
                }
                Ok(r) => bail!("reading the result of {name}: the server answered {}", r.status()),
                Err(e) => patience.wait(&name, &link_trouble(&e)).await?,
            }
        };
        let result = &v["result"];
        summary.stored += result["stored"].as_array().map_or(0, Vec::len);
        for f in result["failed"].as_array().into_iter().flatten() {
            let reason = f["reason"].as_str().unwrap_or("refused");
            let reason = match f["entry"].as_u64() {
                Some(n) => format!("entry {n}: {reason}"),
                None => reason.to_string(),
            };
            summary.failed.push((file.clone(), reason));
        }
        if let Some(why) = result["refused"].as_str() {
            summary.failed.push((file.clone(), why.to_string()));
        }
        state.remove(&key);
        save_state(&opts.state_file, &state)?;
    }
    if progress.tty {
        eprintln!();
    }
    summary.resent_bytes = attempted.saturating_sub(sent_this_run);
    Ok(summary)
}

/// `ferry upload --watch`: sends each new file under `dirs` once it has stopped changing (the
/// same size and modification time for `settle`, so a file still being written is never sent),
/// one file at a time with the same resuming, retrying upload as a single run. What was sent
/// is remembered beside the upload state (`<state>.sent`), so a restart sends nothing twice.
/// Runs until stopped.
pub async fn watch(dirs: &[PathBuf], opts: &Options, settle: Duration) -> anyhow::Result<()> {
    for d in dirs {
        anyhow::ensure!(d.is_dir(), "--watch takes folders: {} is not one", d.display());
    }
    let sent_file = opts.state_file.with_extension("sent");
    let mut sent: State = load_state(&sent_file);
    // What each file looked like at the last look: (size, modified), and since when.
    let mut seen: BTreeMap<PathBuf, ((u64, u64), Instant)> = BTreeMap::new();
    let mut idle_said = false;
    let poll = Duration::from_millis(500).min(settle);
    loop {
        let mut waiting = 0;
        let files = match collect(dirs) {
            Ok(f) => f,
            Err(e) => {
                // A folder gone or unreadable (an unmounted share): said, then looked at again.
                eprintln!("cannot list the watched folders: {e:#}; will look again");
                tokio::time::sleep(poll.max(Duration::from_secs(5))).await;
                continue;
            }
        };
        for f in &files {
            let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            // Hidden and temporary files are being written by someone (or are ours).
            if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(f) else { continue };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let look = (meta.len(), mtime);
            let key = format!("{}|{}|{mtime}", std::fs::canonicalize(f)?.display(), meta.len());
            if sent.contains_key(&key) {
                continue;
            }
            let since = match seen.get(f) {
                Some((before, since)) if *before == look => *since,
                _ => {
                    seen.insert(f.clone(), (look, Instant::now()));
                    waiting += 1;
                    continue;
                }
            };
            if since.elapsed() < settle {
                waiting += 1;
                continue;
            }
            idle_said = false;
            match run(std::slice::from_ref(f), opts).await {
                Ok(summary) => {
                    let verdict = if summary.failed.is_empty() {
                        format!("{} stored", summary.stored)
                    } else {
                        let why: Vec<&str> =
                            summary.failed.iter().map(|(_, w)| w.as_str()).collect();
                        format!("refused: {}", why.join("; "))
                    };
                    // Refused files are not sent again either: their content will not change
                    // the server's mind; a new version of the file is a new file. Remembered
                    // before it is said, so a watcher stopped after saying "sent" never sends
                    // the file again (stopped between the upload and this, it does, and the
                    // server answers with the record it already has).
                    let line = format!("sent {name}: {verdict}");
                    sent.insert(key, verdict);
                    save_state(&sent_file, &sent)?;
                    println!("{line}");
                }
                Err(e) => {
                    // The link stayed down beyond --retry-for: try again at the next look.
                    eprintln!("{name}: {e:#}; will try again");
                }
            }
        }
        if waiting == 0 && !idle_said {
            println!("idle: {} file(s) sent, none waiting", sent.len());
            idle_said = true;
        }
        tokio::time::sleep(poll).await;
    }
}
