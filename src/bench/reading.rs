//! `ferry bench reading`: a reading centre's worklist under load. It seeds a throw-away data
//! directory (SQLite, or the PostgreSQL of `FERRY__DATABASE__URL`) with `--requests` open
//! reading requests (and their studies) from `--sites` clinics to city-hospital, starts `ferry
//! serve` on it, and times the worklist as a radiologist lists it (a page of 50, STAT first;
//! and filtered by priority, by sending site and by modality). Then `--sockets` clinicians of
//! one clinic connect to the WebSocket, a report of their clinic is signed, and it times how
//! long until every one of them has been told. Prints the figures.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::config::Settings;
use crate::network::{NewSite, NewUser, Role, SiteKind, Tier};

#[derive(Debug, Clone)]
pub struct ReadingBench {
    pub requests: usize,
    pub sites: usize,
    pub sockets: usize,
    pub lists: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// Inserts the requests and their studies in batches; returns one request id per site.
async fn seed_requests(
    state: &crate::state::Stores,
    o: &ReadingBench,
) -> anyhow::Result<Vec<String>> {
    let now = crate::time::now_ms();
    let modalities = ["CT", "MR", "DX", "US", "ECG"];
    let priorities = ["routine", "routine", "routine", "urgent", "stat"];
    let mut first = vec![String::new(); o.sites];
    let batch = 250;
    let mut i = 0;
    while i < o.requests {
        let n = batch.min(o.requests - i);
        let mut tx = state.db.pool().begin().await?;
        let mut studies = String::from(
            "INSERT INTO studies (study_uid, origin_site, patient_name, patient_id, patient_sex, study_date, study_description, created_at) VALUES ",
        );
        let mut reqs = String::from(
            "INSERT INTO reading_requests (id, kind, centre_site, sending_site, subject, study_uid, modality, priority, state, \
             requested_by, instances, received_at, last_instance_at, ready_at) VALUES ",
        );
        for k in 0..n {
            let j = i + k;
            let site = j % o.sites;
            let uid = format!("2.25.{}", 10_000_000_000u64 + j as u64);
            let id = format!("rd_bench{j:09}");
            let m = modalities[j % modalities.len()];
            let kind = if m == "ECG" { "ecg" } else { "imaging" };
            let p = priorities[(j / 7) % priorities.len()];
            let state_ = if j % 10 == 3 { "claimed" } else { "ready" };
            let at = now - (j as i64 % 604_800) * 1000;
            if k > 0 {
                studies.push(',');
                reqs.push(',');
            }
            studies.push_str(&format!(
                "('{uid}', 'bench-clinic-{site}', 'Patient^{j}', 'P{j:07}', 'F', '20261201', 'Bench {m}', {now})"
            ));
            reqs.push_str(&format!(
                "('{id}', '{kind}', 'city-hospital', 'bench-clinic-{site}', '{uid}', '{uid}', '{m}', '{p}', '{state_}', 'routing', 1, {at}, {at}, {at})"
            ));
            if first[site].is_empty() && state_ == "ready" {
                first[site] = id;
            }
        }
        sqlx::query(&studies).execute(&mut *tx).await?;
        sqlx::query(&reqs).execute(&mut *tx).await?;
        tx.commit().await?;
        i += n;
    }
    Ok(first)
}

pub async fn run(o: ReadingBench) -> anyhow::Result<()> {
    anyhow::ensure!(o.sites >= 1 && o.requests >= o.sites, "--requests must be at least --sites");
    let dir = std::env::temp_dir().join(format!("ferry-bench-reading-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut env = vec![
        ("FERRY__DATA__DIR".to_string(), dir.join("data").display().to_string()),
        ("FERRY__HTTP__ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__MEDIA__UDP_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__DIMSE__ENABLED".to_string(), "false".to_string()),
        ("FERRY__LOG__LEVEL".to_string(), "warn".to_string()),
    ];
    if let Ok(url) = std::env::var("FERRY__DATABASE__URL") {
        env.push(("FERRY__DATABASE__URL".to_string(), url));
    }
    let t0 = Instant::now();
    let (db_name, li, clinicians, sample) = {
        let settings = Settings::load(None, env.clone())?;
        let state = crate::state::Stores::open(settings).await?;
        let db_name = state.db.backend().name();
        crate::demo::seed(&state, crate::demo::DEFAULT_PASSWORD).await?;
        for s in 0..o.sites {
            crate::operator::add_site(
                &state,
                NewSite {
                    id: format!("bench-clinic-{s}").parse()?,
                    name: format!("Bench clinic {s}"),
                    tier: Tier::Village,
                    kind: SiteKind::Clinic,
                    parent: Some("county-hospital".parse()?),
                },
            )
            .await?;
        }
        eprintln!(
            "bench reading: seeding {} requests from {} sites on {db_name}…",
            o.requests, o.sites
        );
        let firsts = seed_requests(&state, &o).await?;
        // As the database's own statistics would be after a day of use (PostgreSQL's
        // autovacuum, SQLite's optimize), not as they are right after a bulk load.
        sqlx::query("ANALYZE").execute(state.db.pool()).await?;
        let (_, li) =
            crate::operator::create_token(&state, &"dr-li".parse()?, "bench", None).await?;
        let mut clinicians = vec![];
        for c in 0..o.sockets {
            let id = format!("bench-doc-{c}");
            crate::operator::add_user(
                &state,
                &"bench-clinic-0".parse()?,
                NewUser {
                    id: id.parse()?,
                    display_name: id.clone(),
                    roles: vec![Role::Clinician],
                    specialties: vec![],
                    password: None,
                },
            )
            .await?;
            clinicians
                .push(crate::operator::create_token(&state, &id.parse()?, "bench", None).await?.1);
        }
        state.db.close().await;
        (db_name, li, clinicians, firsts[0].clone())
    };
    eprintln!("bench reading: seeded in {:.1} s; starting the server", t0.elapsed().as_secs_f64());
    let (mut child, _pid, url) = crate::bench::spawn_server(&env).await?;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, url, li) = (http.clone(), url.clone(), li.clone());
        async move {
            let t = Instant::now();
            let r = http.get(format!("{url}{path}")).bearer_auth(&li).send().await?;
            anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
            let v: serde_json::Value = r.json().await?;
            Ok::<_, anyhow::Error>((
                ms(t.elapsed()),
                v["readings"].as_array().map_or(0, |a| a.len()),
            ))
        }
    };
    // Warm up, then time each list.
    for _ in 0..20 {
        get("/api/readings?limit=50".into()).await?;
    }
    println!(
        "Worklist of {} open requests from {} sites, {db_name}, {} lists each:",
        o.requests, o.sites, o.lists
    );
    for (what, path) in [
        ("first page (50), STAT first", "/api/readings?limit=50".to_string()),
        ("STAT only", "/api/readings?limit=50&priority=stat".to_string()),
        (
            "one sending site",
            format!("/api/readings?limit=50&sending_site=bench-clinic-{}", o.sites / 2),
        ),
        ("modality CT", "/api/readings?limit=50&modality=CT".to_string()),
    ] {
        let mut times = vec![];
        let mut rows = 0;
        for _ in 0..o.lists {
            let (t, n) = get(path.clone()).await?;
            times.push(t);
            rows = n;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {what:<30} p50 {:>6.1} ms   p99 {:>6.1} ms   ({rows} rows)",
            pct(&times, 0.5),
            pct(&times, 0.99)
        );
    }

    // A signed report reaching the clinic's connected clinicians.
    let ws_url = url.replacen("http", "ws", 1);
    let (told_tx, mut told_rx) = tokio::sync::mpsc::channel::<Instant>(o.sockets);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(o.sockets);
    for token in &clinicians {
        let mut req = format!("{ws_url}/api/ws").into_client_request()?;
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        let (told, ready, sample) = (told_tx.clone(), ready_tx.clone(), sample.clone());
        tokio::spawn(async move {
            let Ok((ws, _)) = tokio_tungstenite::connect_async_with_config(req, None, true).await
            else {
                return;
            };
            let (_tx, mut rx) = ws.split();
            let mut greeted = false;
            while let Some(Ok(m)) = rx.next().await {
                let Message::Text(t) = m else { continue };
                let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "welcome" && !greeted {
                    greeted = true;
                    let _ = ready.send(()).await;
                }
                if v["type"] == "reading" && v["event"] == "sign" && v["reading"] == sample.as_str()
                {
                    let _ = told.send(Instant::now()).await;
                    return;
                }
            }
        });
    }
    for _ in 0..o.sockets {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .context("sockets did not connect within 60 s")?;
    }
    let post = |path: String, body: serde_json::Value| {
        let (http, url, li) = (http.clone(), url.clone(), li.clone());
        async move {
            let r = http.post(format!("{url}{path}")).bearer_auth(&li).json(&body).send().await?;
            anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
            Ok::<_, anyhow::Error>(())
        }
    };
    post(format!("/api/readings/{sample}/claim"), serde_json::json!({})).await?;
    let signed = Instant::now();
    post(
        format!("/api/readings/{sample}/sign"),
        serde_json::json!({"findings": "Bench findings.", "impression": "Bench impression."}),
    )
    .await?;
    let mut arrivals = vec![];
    while arrivals.len() < o.sockets {
        match tokio::time::timeout(Duration::from_secs(10), told_rx.recv()).await {
            Ok(Some(at)) => arrivals.push(ms(at.duration_since(signed))),
            _ => break,
        }
    }
    arrivals.sort_by(f64::total_cmp);
    println!(
        "A signed report to {} connected clinic sockets: {} told; from the sign request sent: p50 {:.1} ms, last {:.1} ms",
        o.sockets,
        arrivals.len(),
        pct(&arrivals, 0.5),
        arrivals.last().copied().unwrap_or(f64::NAN)
    );
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
