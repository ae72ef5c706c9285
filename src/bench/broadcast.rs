//! `ferry bench broadcast`: one presenter and a swarm of receive-only viewers through an SFU,
//! side by side for Ferry and (when its URL is given) Janus's VideoRoom, with the same
//! presenter and the same viewers.
//!
//! The presenter loops a pre-encoded clip (VP8 from an IVF file, Opus from an Ogg file; no
//! live encoding) at its own rate. Viewers are str0m `Rtc`s in RTP mode, each on its own UDP
//! socket, driven by `--swarm-threads` threads: they count RTP packets and the gaps in their
//! sequence numbers without decoding. The viewer count climbs in steps; at each step, after a
//! settling time, the bench measures for `--seconds`: loss (packets missing from the sequence
//! ranges the viewers saw), the server's CPU time per packet it forwarded (its process CPU
//! time ÷ packets the viewers' sequence ranges say were sent), its RSS per viewer, the
//! swarm's own CPU, and the viewers' join times (socket open → first media packet).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::{cpu_ticks, percentile, rss_kib, spawn_server};

mod janus;

#[derive(Debug, Clone)]
pub struct BroadcastBench {
    /// Viewer counts to measure at, climbing.
    pub steps: Vec<usize>,
    /// Seconds measured at each step (after settling).
    pub seconds: u64,
    /// Holds `clip.ivf` (VP8) and `clip.ogg` (Opus), made by `scripts/bench-broadcast`.
    pub clip_dir: PathBuf,
    /// Janus's HTTP API (`http://127.0.0.1:8088/janus`), to measure it alike.
    pub janus: Option<String>,
    /// Janus's process id, for its CPU time and memory.
    pub janus_pid: Option<u32>,
    pub swarm_threads: usize,
    /// The address the presenter's and the viewers' sockets bind (Janus cannot reach clients
    /// on 127.0.0.1: `scripts/bench-broadcast` runs everything in a network namespace with
    /// 127.0.0.2 on a veth).
    pub bind_ip: std::net::IpAddr,
}

/// The clip: VP8 frames (30 per second) and Opus packets (one per 20 ms).
struct Clip {
    video: Vec<Vec<u8>>,
    audio: Vec<Vec<u8>>,
}

/// The frames of an IVF file (a 32-byte header, then a 12-byte header per frame).
fn read_ivf(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(b.len() > 32 && &b[..4] == b"DKIF", "{} is not an IVF file", path.display());
    let header = u16::from_le_bytes([b[6], b[7]]) as usize;
    let mut at = header;
    let mut out = vec![];
    while at + 12 <= b.len() {
        let n = u32::from_le_bytes(b[at..at + 4].try_into()?) as usize;
        at += 12;
        anyhow::ensure!(at + n <= b.len(), "a truncated frame in {}", path.display());
        out.push(b[at..at + n].to_vec());
        at += n;
    }
    Ok(out)
}

/// The Opus packets of an Ogg file, without its two header packets.
fn read_ogg_opus(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut at = 0;
    let mut packets = vec![];
    let mut partial: Vec<u8> = vec![];
    while at + 27 <= b.len() {
        anyhow::ensure!(&b[at..at + 4] == b"OggS", "{} is not an Ogg file", path.display());
        let segments = b[at + 26] as usize;
        let table = &b[at + 27..at + 27 + segments];
        let mut body = at + 27 + segments;
        for &len in table {
            partial.extend_from_slice(&b[body..body + len as usize]);
            body += len as usize;
            if len < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        at = body;
    }
    anyhow::ensure!(packets.len() > 2, "no Opus packets in {}", path.display());
    Ok(packets.split_off(2))
}

fn crypto() -> Arc<str0m::crypto::CryptoProvider> {
    Arc::new(str0m::crypto::from_feature_flags())
}

/// A WebRTC client on a UDP socket of its own.
struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    next_timeout: Instant,
    /// Its audio and video sections: of its own offer, or learnt from the other side's.
    mids: (Option<Mid>, Option<Mid>),
}

impl Peer {
    fn new(ip: std::net::IpAddr, rtp_mode: bool) -> anyhow::Result<Peer> {
        let socket = UdpSocket::bind((ip, 0))?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .set_crypto_provider(crypto())
            .set_rtp_mode(rtp_mode)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        Ok(Peer { rtc, socket, local, next_timeout: Instant::now(), mids: (None, None) })
    }

    /// Datagrams in, time on, datagrams out; the events that came of it. False once the
    /// connection is dead. (str0m wants its output drained after every input.)
    fn pump(&mut self, buf: &mut [u8], events: &mut Vec<Event>) -> bool {
        let now = Instant::now();
        let mut alive = true;
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(now, r));
                alive &= self.drain(events);
            }
        }
        if now >= self.next_timeout {
            let _ = self.rtc.handle_input(Input::Timeout(now));
        }
        alive && self.drain(events)
    }

    fn drain(&mut self, events: &mut Vec<Event>) -> bool {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return self.rtc.is_alive();
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(_) => return false,
            }
        }
    }
}

/// What one viewer has seen.
#[derive(Default, Clone)]
struct Seen {
    packets: u64,
    /// Per SSRC (audio, video, and the retransmission and probing streams, each numbered on
    /// its own): the first and highest sequence numbers.
    ranges: HashMap<u32, (u64, u64)>,
    join_ms: Option<u64>,
}

impl Seen {
    /// Packets the sender sent in the ranges seen.
    fn expected(&self) -> u64 {
        self.ranges.values().map(|(first, highest)| highest + 1 - first).sum()
    }
}

struct Viewer {
    peer: Peer,
    opened: Instant,
    seen: Arc<Mutex<Seen>>,
}

impl Viewer {
    fn on(&mut self, e: Event) {
        let Event::RtpPacket(p) = e else { return };
        let seq: u64 = *p.seq_no;
        let mut s = self.seen.lock().unwrap();
        s.packets += 1;
        let r = s.ranges.entry(*p.header.ssrc).or_insert((seq, seq));
        r.1 = r.1.max(seq);
        if s.join_ms.is_none() {
            s.join_ms = Some(self.opened.elapsed().as_millis() as u64);
        }
    }
}

/// Threads that drive the viewers handed to them.
struct Swarm {
    add: Vec<std::sync::mpsc::Sender<Viewer>>,
    next: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Swarm {
    fn start(n: usize) -> Swarm {
        let stop = Arc::new(AtomicBool::new(false));
        let mut add = vec![];
        let mut threads = vec![];
        for i in 0..n.max(1) {
            let (tx, rx) = std::sync::mpsc::channel::<Viewer>();
            let stop = stop.clone();
            add.push(tx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("swarm-{i}"))
                    .spawn(move || {
                        let mut viewers: Vec<Viewer> = vec![];
                        let mut buf = vec![0u8; 2048];
                        let mut events = vec![];
                        while !stop.load(Ordering::Relaxed) {
                            while let Ok(v) = rx.try_recv() {
                                viewers.push(v);
                            }
                            for v in &mut viewers {
                                v.peer.pump(&mut buf, &mut events);
                                for e in events.drain(..) {
                                    v.on(e);
                                }
                            }
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    })
                    .expect("a swarm thread"),
            );
        }
        Swarm { add, next: 0, stop, threads }
    }

    fn give(&mut self, v: Viewer) {
        let i = self.next % self.add.len();
        self.next += 1;
        let _ = self.add[i].send(v);
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The presenter: loops the clip from its own thread until stopped.
fn present(mut peer: Peer, clip: Arc<Clip>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 2048];
    let mut events = vec![];
    let (mut audio, mut video) = peer.mids;
    let start = Instant::now();
    let (mut frame, mut packet) = (0u64, 0u64);
    let mut pts = None;
    while !stop.load(Ordering::Relaxed) {
        peer.pump(&mut buf, &mut events);
        for e in events.drain(..) {
            if let Event::MediaAdded(m) = e {
                match m.kind {
                    MediaKind::Audio => audio = Some(m.mid),
                    MediaKind::Video => video = Some(m.mid),
                }
            }
        }
        if !peer.rtc.is_connected() {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let now = Instant::now();
        let since = now.duration_since(start);
        // The payload types, as negotiated (fixed once connected).
        let (apt, vpt) = *pts.get_or_insert_with(|| {
            let pt_of = |codec: Codec| {
                let params = peer.rtc.codec_config().params();
                params.iter().find(|p| p.spec().codec == codec).map(|p| p.pt())
            };
            (pt_of(Codec::Opus), pt_of(Codec::Vp8))
        });
        while Duration::from_millis(packet * 20) <= since {
            if let (Some(mid), Some(pt)) = (audio, apt) {
                let data = clip.audio[packet as usize % clip.audio.len()].clone();
                let t = MediaTime::new(packet * 960, str0m::media::Frequency::FORTY_EIGHT_KHZ);
                if let Some(w) = peer.rtc.writer(mid) {
                    let _ = w.write(pt, now, t, data);
                }
            }
            packet += 1;
        }
        while Duration::from_micros(frame * 33_333) <= since {
            if let (Some(mid), Some(pt)) = (video, vpt) {
                let data = clip.video[frame as usize % clip.video.len()].clone();
                let t = MediaTime::new(frame * 3000, str0m::media::Frequency::NINETY_KHZ);
                if let Some(w) = peer.rtc.writer(mid) {
                    let _ = w.write(pt, now, t, data);
                }
            }
            frame += 1;
        }
        peer.pump(&mut buf, &mut events);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An offer from `peer` with audio and video in `dir` (the peer learns their mids).
fn offer(peer: &mut Peer, dir: Direction) -> anyhow::Result<(SdpOffer, SdpPendingOffer)> {
    let mut api = peer.rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
    let video = api.add_media(MediaKind::Video, dir, None, None, None);
    peer.mids = (Some(audio), Some(video));
    api.apply().context("no offer")
}

/// A server under test, and how it is asked for a presenter and viewers.
enum Sfu {
    Ferry(FerrySfu),
    Janus(janus::JanusSfu),
}

impl Sfu {
    fn name(&self) -> &'static str {
        match self {
            Sfu::Ferry(_) => "Ferry",
            Sfu::Janus(_) => "Janus",
        }
    }
    /// Connects the presenter (an offer of sending audio and video).
    async fn publish(&self, peer: &mut Peer) -> anyhow::Result<()> {
        match self {
            Sfu::Ferry(f) => f.publish(peer).await,
            Sfu::Janus(j) => j.publish(peer).await,
        }
    }
    /// Connects a receive-only viewer.
    async fn view(&self, peer: &mut Peer) -> anyhow::Result<()> {
        match self {
            Sfu::Ferry(f) => f.view(peer).await,
            Sfu::Janus(j) => j.view(peer).await,
        }
    }
    fn pid(&self) -> u32 {
        match self {
            Sfu::Ferry(f) => f.pid,
            Sfu::Janus(j) => j.pid,
        }
    }
}

struct FerrySfu {
    http: reqwest::Client,
    url: String,
    session: String,
    trainer: String,
    viewer: String,
    pid: u32,
}

impl FerrySfu {
    async fn post_sdp(&self, path: &str, token: &str, sdp: String) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body(sdp)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(status == 201, "{path}: {status} {text}");
        Ok(text)
    }
}

impl FerrySfu {
    async fn publish(&self, peer: &mut Peer) -> anyhow::Result<()> {
        let (o, pending) = offer(peer, Direction::SendOnly)?;
        let path = format!("/api/broadcasts/{}/whip", self.session);
        let answer = self.post_sdp(&path, &self.trainer, o.to_sdp_string()).await?;
        peer.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
        Ok(())
    }
    async fn view(&self, peer: &mut Peer) -> anyhow::Result<()> {
        let (o, pending) = offer(peer, Direction::RecvOnly)?;
        let path = format!("/api/broadcasts/{}/whep", self.session);
        let answer = self.post_sdp(&path, &self.viewer, o.to_sdp_string()).await?;
        peer.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
        Ok(())
    }
}

/// Starts Ferry on a fresh data directory with the demo network, a session by trainer-sun,
/// and tokens for the presenter and the viewers.
async fn start_ferry() -> anyhow::Result<(tokio::process::Child, FerrySfu)> {
    let dir = std::env::temp_dir().join(format!("ferry-bench-broadcast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = vec![
        ("FERRY__DATA__DIR".to_string(), dir.join("data").display().to_string()),
        ("FERRY__HTTP__ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__MEDIA__UDP_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("FERRY__MEDIA__RECORD".to_string(), "false".to_string()),
        ("FERRY__DIMSE__ENABLED".to_string(), "false".to_string()),
        (
            "FERRY__LOG__LEVEL".to_string(),
            std::env::var("FERRY_BENCH_LOG").unwrap_or("warn".into()),
        ),
    ];
    let (trainer, viewer) = {
        let settings = crate::config::Settings::load(None, env.clone())?;
        let state = crate::state::Stores::open(settings).await?;
        crate::demo::seed(&state, "bench-password").await?;
        let (_, t) =
            crate::operator::create_token(&state, &"trainer-sun".parse()?, "bench", None).await?;
        let (_, v) =
            crate::operator::create_token(&state, &"dr-zhao".parse()?, "bench", None).await?;
        state.db.close().await;
        (t, v)
    };
    let (child, pid, url) = spawn_server(&env).await?;
    let http = reqwest::Client::new();
    let r: Value = http
        .post(format!("{url}/api/broadcasts"))
        .bearer_auth(&trainer)
        .json(&json!({"title": "Bench", "starts_at": crate::time::now_ms(),
                      "audience": ["island-clinic"]}))
        .send()
        .await?
        .json()
        .await?;
    let session = r["id"].as_str().context("no session id")?.to_string();
    Ok((child, FerrySfu { http, url, session, trainer, viewer, pid }))
}

/// One step's figures.
struct Step {
    viewers: usize,
    loss: f64,
    us_per_packet: f64,
    packets_per_sec: f64,
    rss_per_viewer_kib: f64,
    server_cpu: f64,
    swarm_cpu: f64,
}

/// Climbs through the steps against one SFU; the figures of each step.
async fn climb(
    sfu: &Sfu,
    clip: Arc<Clip>,
    opts: &BroadcastBench,
) -> anyhow::Result<(Vec<Step>, Vec<u64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut presenter = Peer::new(opts.bind_ip, false)?;
    sfu.publish(&mut presenter).await?;
    let presenting = {
        let (clip, stop) = (clip.clone(), stop.clone());
        std::thread::Builder::new()
            .name("presenter".into())
            .spawn(move || present(presenter, clip, stop))?
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_base = rss_kib(sfu.pid());
    let mut swarm = Swarm::start(opts.swarm_threads);
    let mut seen: Vec<Arc<Mutex<Seen>>> = vec![];
    let mut steps = vec![];
    for &n in &opts.steps {
        while seen.len() < n {
            let mut peer = Peer::new(opts.bind_ip, true)?;
            let opened = Instant::now();
            sfu.view(&mut peer).await?;
            let s = Arc::new(Mutex::new(Seen::default()));
            seen.push(s.clone());
            swarm.give(Viewer { peer, opened, seen: s });
        }
        // Settle: everyone connected, keyframes through (every 2 s in the clip), estimates up
        // (a viewer's video starts once its estimate carries the one 1.5 Mbit/s layer).
        tokio::time::sleep(Duration::from_secs(8)).await;
        let snap = |seen: &[Arc<Mutex<Seen>>]| -> (u64, u64) {
            seen.iter().fold((0, 0), |(p, e), s| {
                let s = s.lock().unwrap();
                (p + s.packets, e + s.expected())
            })
        };
        let me = std::process::id();
        let (p0, c0, w0, t0) = (snap(&seen), cpu_ticks(sfu.pid()), cpu_ticks(me), Instant::now());
        tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
        let (p1, c1, w1, secs) =
            (snap(&seen), cpu_ticks(sfu.pid()), cpu_ticks(me), t0.elapsed().as_secs_f64());
        let got = p1.0 - p0.0;
        let sent = (p1.1 - p0.1).max(1);
        let step = Step {
            viewers: n,
            loss: 1.0 - (got as f64 / sent as f64).min(1.0),
            us_per_packet: (c1 - c0) as f64 * 10_000.0 / sent as f64,
            packets_per_sec: sent as f64 / secs,
            rss_per_viewer_kib: (rss_kib(sfu.pid()).saturating_sub(rss_base)) as f64 / n as f64,
            server_cpu: (c1 - c0) as f64 / 100.0 / secs,
            swarm_cpu: (w1 - w0) as f64 / 100.0 / secs,
        };
        eprintln!(
            "bench broadcast: {} {:>4} viewers: loss {:.2} %, {:.1} µs per packet, {:.0} packets/s \
             ({:.0} per viewer), \
             {:.0} KiB RSS per viewer, server {:.0} % CPU, swarm {:.0} % CPU",
            sfu.name(),
            n,
            step.loss * 100.0,
            step.us_per_packet,
            step.packets_per_sec,
            step.packets_per_sec / n.max(1) as f64,
            step.rss_per_viewer_kib,
            step.server_cpu * 100.0,
            step.swarm_cpu * 100.0
        );
        let lossy = step.loss >= 0.01;
        steps.push(step);
        if lossy {
            break; // the server (or this machine) is past what it sustains
        }
    }
    let mut joins: Vec<u64> =
        seen.iter().filter_map(|s| s.lock().unwrap().join_ms.map(|ms| ms * 1000)).collect();
    joins.sort_unstable();
    stop.store(true, Ordering::Relaxed);
    swarm.stop();
    let _ = presenting.join();
    Ok((steps, joins))
}

/// The figures of one server. `full` is the packets a second one viewer gets of the whole
/// stream (the most any viewer got at any step, of either server): a viewer whose video an
/// SFU paused or thinned loses nothing, so loss alone does not tell whether it got the picture.
fn report(name: &str, steps: &[Step], joins: &[u64], full: f64) -> Value {
    let share = |s: &Step| s.packets_per_sec / s.viewers.max(1) as f64 / full;
    let sustained = steps.iter().filter(|s| s.loss < 0.01).map(|s| s.viewers).max().unwrap_or(0);
    let whole = steps
        .iter()
        .take_while(|s| s.loss < 0.01 && share(s) >= 0.95)
        .map(|s| s.viewers)
        .max()
        .unwrap_or(0);
    let at = steps.iter().find(|s| s.viewers == sustained);
    println!(
        "{name}: {sustained} viewers sustained with < 1 % loss ({whole} with the whole stream, \
         ≥ 95 % of its packets each); at {sustained}: {:.2} µs CPU per forwarded packet, \
         {:.0} KiB RSS per viewer, {:.0} % of the stream per viewer, server {:.0} % CPU, swarm \
         {:.0} % CPU; join time p50 {:.0} ms, p95 {:.0} ms ({} viewers)",
        at.map_or(0.0, |s| s.us_per_packet),
        at.map_or(0.0, |s| s.rss_per_viewer_kib),
        at.map_or(0.0, |s| share(s) * 100.0),
        at.map_or(0.0, |s| s.server_cpu * 100.0),
        at.map_or(0.0, |s| s.swarm_cpu * 100.0),
        percentile(joins, 0.5),
        percentile(joins, 0.95),
        joins.len()
    );
    json!({
        "server": name,
        "sustained_viewers": sustained,
        "whole_stream_viewers": whole,
        "steps": steps.iter().map(|s| json!({
            "viewers": s.viewers, "loss": s.loss, "us_per_packet": s.us_per_packet,
            "packets_per_sec": s.packets_per_sec, "stream_share": share(s),
            "rss_kib_per_viewer": s.rss_per_viewer_kib,
            "server_cpu": s.server_cpu, "swarm_cpu": s.swarm_cpu,
        })).collect::<Vec<_>>(),
        "join_ms_p50": percentile(joins, 0.5),
        "join_ms_p95": percentile(joins, 0.95),
    })
}

pub async fn run(opts: BroadcastBench) -> anyhow::Result<()> {
    let clip = Arc::new(Clip {
        video: read_ivf(&opts.clip_dir.join("clip.ivf"))?,
        audio: read_ogg_opus(&opts.clip_dir.join("clip.ogg"))?,
    });
    let bytes: usize = clip.video.iter().map(Vec::len).sum();
    eprintln!(
        "bench broadcast: clip of {} VP8 frames ({:.2} Mbit/s) and {} Opus packets; steps {:?}",
        clip.video.len(),
        bytes as f64 * 8.0 / (clip.video.len() as f64 / 30.0) / 1e6,
        clip.audio.len(),
        opts.steps
    );
    let mut runs = vec![];
    let (child, ferry) = start_ferry().await?;
    runs.push(("Ferry", climb(&Sfu::Ferry(ferry), clip.clone(), &opts).await?));
    drop(child);
    if let Some(url) = &opts.janus {
        let Some(pid) = opts.janus_pid else { bail!("--janus-pid is needed with --janus") };
        let janus = janus::JanusSfu::new(url, pid).await?;
        runs.push(("Janus", climb(&Sfu::Janus(janus), clip.clone(), &opts).await?));
    }
    let full = runs
        .iter()
        .flat_map(|(_, (steps, _))| steps.iter())
        .map(|s| s.packets_per_sec / s.viewers.max(1) as f64)
        .fold(1.0, f64::max);
    let out: Vec<Value> =
        runs.iter().map(|(name, (steps, joins))| report(name, steps, joins, full)).collect();
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
