//! `ferry bench signal`: a load test of the signalling WebSocket. It seeds a throw-away data
//! directory with N people (bearer tokens) and N/2 accepted consults, starts `ferry serve` on
//! it as a child process on loopback, connects N clients that each join their consult's
//! room, then has every pair exchange offer, answer and ICE candidates at a steady rate for a
//! while. It prints the sockets held, the relay latency (send to receive, one clock),
//! the server's memory per idle socket and its CPU time. Bounded: a fixed number of clients
//! and a fixed duration, loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Mutex;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub mod broadcast;
pub mod reading;

use crate::config::Settings;
use crate::network::{NewUser, Role, SiteId};

#[derive(Debug, Clone)]
pub struct SignalBench {
    pub clients: usize,
    pub seconds: u64,
    /// Seconds between one pair's negotiations (offer, answer, 4 + 4 candidates).
    pub interval_secs: f64,
}

/// Bytes of a typical browser SDP offer with audio and video.
const SDP_BYTES: usize = 2_500;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Starts `ferry serve` (this binary) with `env` as a child process on loopback; returns the
/// child, its pid and its base URL once it listens. Its output is drained.
pub(crate) async fn spawn_server(
    env: &[(String, String)],
) -> anyhow::Result<(tokio::process::Child, u32, String)> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .envs(env.iter().cloned())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting ferry serve")?;
    let pid = child.id().context("server pid")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("server did not start within 60 s")??
            .context("server exited")?;
        if let Some(u) = line.strip_prefix("Ferry listening on ") {
            break u.trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, pid, url))
}

/// Seeds people, tokens and accepted consults; returns each client's (user, token, room, peer).
async fn seed(
    state: &crate::state::Stores,
    n: usize,
) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let site: SiteId = "bench-site".parse()?;
    crate::operator::add_site(
        state,
        crate::network::NewSite {
            id: site.clone(),
            name: "Bench".into(),
            tier: crate::network::Tier::City,
            kind: crate::network::SiteKind::Hospital,
            parent: None,
        },
    )
    .await?;
    let mut out = vec![];
    for i in 0..n {
        let user = format!("bench-{i}");
        let role = if i % 2 == 0 { Role::Clinician } else { Role::Specialist };
        crate::operator::add_user(
            state,
            &site,
            NewUser {
                id: user.parse()?,
                display_name: user.clone(),
                roles: vec![role],
                specialties: if role == Role::Specialist {
                    vec!["radiology".parse()?]
                } else {
                    vec![]
                },
                password: None,
            },
        )
        .await?;
        let (_, token) =
            crate::operator::create_token(state, &user.parse()?, "bench", None).await?;
        let room = format!("cs_{:024x}", i / 2);
        let peer = format!("bench-{}", i ^ 1);
        if i % 2 == 1 {
            let now = crate::time::now_ms();
            sqlx::query(
                "INSERT INTO consults (id, from_site, requested_by, specialty, urgency, summary, state, accepted_by, accepted_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'radiology', 'routine', 'bench', 'accepted', $4, $5, $5, $5)",
            )
            .bind(&room)
            .bind(site.as_str())
            .bind(&peer)
            .bind(&user)
            .bind(now)
            .execute(state.db.pool())
            .await?;
        }
        out.push((user, token, room, peer));
    }
    Ok(out)
}

pub async fn run(opts: SignalBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.clients >= 2 && opts.clients % 2 == 0,
        "--clients must be even, at least 2"
    );
    let dir = std::env::temp_dir().join(format!("ferry-bench-signal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let env = vec![
        ("FERRY__DATA__DIR".to_string(), data.display().to_string()),
        ("FERRY__HTTP__ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__MEDIA__UDP_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__DIMSE__ENABLED".to_string(), "false".to_string()),
        ("FERRY__SIGNAL__MAX_CONNECTIONS".to_string(), (opts.clients * 2).to_string()),
        ("FERRY__LOG__LEVEL".to_string(), "warn".to_string()),
    ];
    let started = Instant::now();
    eprintln!("bench signal: seeding {} people and {} consults…", opts.clients, opts.clients / 2);
    let clients = {
        let settings = Settings::load(None, env.clone())?;
        let state = crate::state::Stores::open(settings).await?;
        let c = seed(&state, opts.clients).await?;
        state.db.close().await;
        c
    };
    eprintln!(
        "bench signal: seeded in {:.1} s; starting the server",
        started.elapsed().as_secs_f64()
    );

    let (mut child, pid, http) = spawn_server(&env).await?;
    let url = http.replacen("http", "ws", 1);
    let rss_before = rss_kib(pid);

    // Connect everyone (200 handshakes at a time) and join the rooms.
    let t0 = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let relayed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(tokio::sync::Semaphore::new(200));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(opts.clients);
    let go = Arc::new(tokio::sync::Notify::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let epoch = Instant::now();
    let mut tasks = vec![];
    for (i, (_user, token, room, peer)) in clients.into_iter().enumerate() {
        let (url, limit, ready, go, stop) =
            (url.clone(), limit.clone(), ready_tx.clone(), go.clone(), stop.clone());
        let (latencies, relayed, errors) = (latencies.clone(), relayed.clone(), errors.clone());
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let permit = limit.acquire_owned().await.expect("open");
            let mut req = format!("{url}/api/ws").into_client_request()?;
            req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
            // TCP_NODELAY, as browsers do: without it the candidates that follow an offer wait
            // for the server's delayed ACK (~40 ms, Nagle's algorithm).
            let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
            let (mut tx, mut rx) = ws.split();
            tx.send(Message::Text(json!({"v": 1, "type": "join", "room": room}).to_string().into())).await?;
            // Until joined (welcome, maybe presence, joined).
            loop {
                match rx.next().await {
                    Some(Ok(Message::Text(t))) if t.contains("\"joined\"") => break,
                    Some(Ok(_)) => continue,
                    _ => anyhow::bail!("socket closed before joining"),
                }
            }
            drop(permit);
            let _ = ready.send(()).await;
            go.notified().await;
            let caller = i % 2 == 0;
            let pad = "a".repeat(SDP_BYTES);
            let stamp = move || epoch.elapsed().as_micros() as u64;
            let msg = |kind: &str, body: String| match kind {
                "candidate" => json!({"v": 1, "type": "candidate", "room": room, "to": peer, "candidate": {"candidate": body}}),
                k => json!({"v": 1, "type": k, "room": room, "to": peer, "sdp": body}),
            }
            .to_string();
            // Callers spread their first offer over one interval.
            let period = Duration::from_secs_f64(opts.interval_secs);
            let mut next = tokio::time::Instant::now() + period.mul_f64((i / 2) as f64 / (opts.clients / 2) as f64);
            loop {
                let sleep = tokio::time::sleep_until(next);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = sleep, if caller => {
                        next += period;
                        tx.send(Message::Text(msg("offer", format!("{} {pad}", stamp())).into())).await?;
                        for k in 0..4 {
                            tx.send(Message::Text(msg("candidate", format!("{} c{k}", stamp())).into())).await?;
                        }
                    }
                    m = rx.next() => {
                        let arrived = stamp();
                        let Some(Ok(Message::Text(t))) = m else {
                            if matches!(m, Some(Ok(_))) { continue }
                            anyhow::bail!("socket closed mid-run");
                        };
                        let v: serde_json::Value = serde_json::from_str(&t)?;
                        let body = v["sdp"].as_str().or(v["candidate"]["candidate"].as_str()).unwrap_or("");
                        if v["type"] == "error" {
                            errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if let Some(sent) = body.split(' ').next().and_then(|s| s.parse::<u64>().ok()) {
                            // Stamped on arrival, before anything else this client does.
                            let took = arrived.saturating_sub(sent);
                            latencies.lock().expect("not poisoned").push(took);
                            relayed.fetch_add(1, Ordering::Relaxed);
                        }
                        if v["type"] == "offer" {
                            tx.send(Message::Text(msg("answer", format!("{} {pad}", stamp())).into())).await?;
                            for k in 0..4 {
                                tx.send(Message::Text(msg("candidate", format!("{} c{k}", stamp())).into())).await?;
                            }
                        }
                    }
                }
            }
            let _ = tx.send(Message::Close(None)).await;
            anyhow::Ok(())
        }));
    }
    drop(ready_tx);
    let mut joined = 0;
    while joined < opts.clients {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(())) => joined += 1,
            _ => break,
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    anyhow::ensure!(joined == opts.clients, "only {joined} of {} clients joined", opts.clients);
    // Let the server settle, then weigh it with every socket idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid);
    let per_conn_kib = (rss_idle.saturating_sub(rss_before)) as f64 / opts.clients as f64;

    let cpu0 = cpu_ticks(pid);
    let client_cpu0 = cpu_ticks(std::process::id());
    let t1 = Instant::now();
    go.notify_waiters();
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    stop.cancel();
    let busy = t1.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0;
    let client_cpu = (cpu_ticks(std::process::id()) - client_cpu0) as f64 / 100.0;
    let rss_busy = rss_kib(pid);
    let mut failed = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let mut lat = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    lat.sort_unstable();
    let n = relayed.load(Ordering::Relaxed);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "ferry bench signal — {} clients in {} rooms, {} s of negotiation every {} s per pair",
        opts.clients,
        opts.clients / 2,
        opts.seconds,
        opts.interval_secs
    );
    println!(
        "  sockets held                 {joined} (connected and joined in {connect_secs:.1} s)"
    );
    println!(
        "  messages relayed             {n} ({:.0} /s), refused {}",
        n as f64 / busy,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "  relay latency p50 / p99 / max {:.2} / {:.2} / {:.2} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "  server RSS before / idle / busy {:.1} / {:.1} / {:.1} MB",
        rss_before as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        rss_busy as f64 / 1024.0
    );
    println!("  server RSS per idle socket   {per_conn_kib:.1} KB");
    println!(
        "  server CPU while busy        {:.0} % of one core ({cpu:.1} s in {busy:.1} s)",
        cpu / busy * 100.0
    );
    println!("  clients' CPU (same machine)  {:.0} % of one core", client_cpu / busy * 100.0);
    println!("  clients that ended in error  {failed}");
    anyhow::ensure!(failed == 0, "{failed} clients ended in error");
    Ok(())
}
