//! The media plane's I/O: one UDP socket (`media.udp_addr`) for every broadcast, a thread that
//! reads it and hands each datagram to the worker that holds its broadcast, and the workers
//! (`media.workers`, one per core by default), each owning the rooms pinned to it and sending
//! their datagrams. Nothing here is async: the rooms are sans-IO and the threads are plain.
//!
//! Demultiplexing: a datagram from a known address goes to that address's worker; one from an
//! unknown address must be a STUN request whose USERNAME starts with the ICE ufrag of a peer we
//! answered (its worker is remembered when the peer is added); anything else is dropped.
//! Queues are bounded: a worker that falls behind loses datagrams (as a congested link would)
//! instead of buffering them, and a join that finds its worker's queue full is refused.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::panic::{AssertUnwindSafe, catch_unwind};

use str0m::change::SdpOffer;

use super::room::{PeerHealth, PeerId, Role, Room, RoomConfig, RoomError, RoomEvent};
use crate::config::MediaSettings;

/// Datagrams and commands waiting for one worker, at most.
const WORKER_QUEUE: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{0}")]
    Room(#[from] RoomError),
    #[error("the media plane is busy; try again")]
    Busy,
}

/// Something a room saw, for attendance: which broadcast, what, when (unix ms).
#[derive(Debug, Clone)]
pub struct MediaEvent {
    pub room: String,
    pub event: RoomEvent,
    pub at: i64,
}

/// Events waiting for the attendance loop, at most; more are dropped (and counted).
const EVENT_QUEUE: usize = 4096;

/// What a broadcast's media looks like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The presenter is connected.
    pub presenter: bool,
    /// Viewers whose connection is up.
    pub viewers: usize,
    /// Viewers that have received media.
    pub watching: usize,
    /// The connection of the person on stage, once it is up.
    pub stage: Option<PeerId>,
}

enum Cmd {
    Add {
        room: String,
        role: Role,
        offer: SdpOffer,
        local: SocketAddr,
        reply: tokio::sync::oneshot::Sender<Result<(PeerId, String), RoomError>>,
    },
    Remove {
        room: String,
        peer: PeerId,
    },
    /// Whoever is on stage leaves it (the trainer brought them back).
    EndStage {
        room: String,
    },
    /// Every connection leaves (the session ended).
    CloseRoom {
        room: String,
    },
    Datagram {
        at: Instant,
        source: SocketAddr,
        data: Vec<u8>,
    },
    /// Nothing: wakes an idle worker to read its control queue.
    Wake,
}

#[derive(Default)]
struct Routes {
    by_addr: HashMap<SocketAddr, usize>,
    by_ufrag: HashMap<String, usize>,
}

struct Inner {
    local: SocketAddr,
    public_ips: Vec<IpAddr>,
    workers: Vec<SyncSender<Cmd>>,
    /// Per worker, the commands that must not be lost (hang-ups, ends), unbounded and in order:
    /// the worker takes them before each datagram.
    control: Vec<Sender<Cmd>>,
    routes: Arc<Mutex<Routes>>,
    live: Arc<Mutex<HashMap<String, LiveState>>>,
    /// Who added each peer (only they may remove it).
    owners: Mutex<HashMap<(String, PeerId), String>>,
    /// Who each room's trainer brought on stage (a user id): only they may publish there.
    on_stage: Mutex<HashMap<String, String>>,
    /// This run's name, so peers' keys never repeat across restarts.
    instance: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The running media plane; cheap to clone.
#[derive(Clone)]
pub struct MediaPlane(Arc<Inner>);

#[derive(Default)]
struct LiveState {
    presenter: Option<PeerId>,
    presenter_connected: bool,
    stage: Option<PeerId>,
    /// The stage's connection is up (ICE and DTLS done), not only offered.
    stage_connected: bool,
    /// The viewers' health as last copied out.
    health: Vec<PeerHealth>,
    up: HashMap<PeerId, bool>,
    watching: std::collections::HashSet<PeerId>,
}

impl MediaPlane {
    /// Binds `media.udp_addr` and starts the threads; they end when the plane is dropped. The
    /// receiver gets what the rooms see (for attendance, and finished recordings). With
    /// `record_dir`, every presenter is recorded there.
    pub fn start(
        settings: &MediaSettings,
        record_dir: Option<std::path::PathBuf>,
    ) -> anyhow::Result<(MediaPlane, tokio::sync::mpsc::Receiver<MediaEvent>)> {
        use anyhow::Context;
        let addr = settings.udp_addr().map_err(anyhow::Error::msg)?;
        let public_ips = settings.public_ips().map_err(anyhow::Error::msg)?;
        if let Some(d) = &record_dir {
            std::fs::create_dir_all(d).with_context(|| {
                format!("cannot create the recordings' directory {}", d.display())
            })?;
        }
        let socket = UdpSocket::bind(addr)
            .with_context(|| format!("cannot bind media.udp_addr {addr} (UDP)"))?;
        let local = socket.local_addr()?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let n = match settings.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let routes = Arc::new(Mutex::new(Routes::default()));
        let live = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let mut workers = vec![];
        let mut control = vec![];
        for i in 0..n {
            let (tx, rx) = std::sync::mpsc::sync_channel(WORKER_QUEUE);
            let (control_tx, control_rx) = std::sync::mpsc::channel();
            // A clone shares the socket's file description, and with it blocking mode: the
            // socket stays blocking (the reader waits in recv with a timeout) and sends say
            // MSG_DONTWAIT instead.
            let send = socket.try_clone()?;
            let w = Worker {
                index: i,
                rx,
                control: control_rx,
                socket: send,
                rooms: HashMap::new(),
                by_addr: HashMap::new(),
                routes: routes.clone(),
                live: live.clone(),
                events: events_tx.clone(),
                base: RoomConfig {
                    record_dir: record_dir.clone(),
                    connect_timeout: Duration::from_secs(settings.connect_timeout_secs.max(1)),
                    gone_after: Duration::from_secs(settings.gone_after_secs.max(1)),
                    ..RoomConfig::default()
                },
                health_at: Instant::now(),
                stop: stop.clone(),
            };
            std::thread::Builder::new().name(format!("ferry-media-{i}")).spawn(move || w.run())?;
            workers.push(tx);
            control.push(control_tx);
        }
        let demux =
            Demux { socket, workers: workers.clone(), routes: routes.clone(), stop: stop.clone() };
        std::thread::Builder::new().name("ferry-media-in".into()).spawn(move || demux.run())?;
        tracing::info!(%local, workers = n, "media plane listening (UDP)");
        let owners = Mutex::new(HashMap::new());
        let instance = crate::ids::random_id(4);
        let on_stage = Mutex::new(HashMap::new());
        let inner = Inner {
            local,
            public_ips,
            workers,
            control,
            routes,
            live,
            owners,
            on_stage,
            instance,
            stop,
        };
        Ok((MediaPlane(Arc::new(inner)), events_rx))
    }

    /// This run's name (peers' attendance keys start with it).
    pub fn instance(&self) -> &str {
        &self.0.instance
    }

    /// The UDP address the plane is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// The address to announce to a browser that reached the web server at `host` (the Host
    /// header's host part): the first public IP, else the bound IP, else `host` when it is an
    /// IP (or `localhost`), else loopback.
    pub fn address_for(&self, host: Option<&str>) -> SocketAddr {
        let port = self.0.local.port();
        if let Some(ip) = self.0.public_ips.first() {
            return SocketAddr::new(*ip, port);
        }
        if !self.0.local.ip().is_unspecified() {
            return self.0.local;
        }
        let ip = host
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| {
                if h == "localhost" {
                    Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
                } else {
                    h.parse().ok()
                }
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        SocketAddr::new(ip, port)
    }

    fn worker_of(&self, room: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        (h.finish() % self.0.workers.len() as u64) as usize
    }

    /// Adds a peer to a broadcast's room from its SDP offer, for `owner`; its id and the SDP
    /// answer.
    pub async fn join(
        &self,
        room: &str,
        role: Role,
        offer: &str,
        local: SocketAddr,
        owner: &str,
    ) -> Result<(PeerId, String), JoinError> {
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| RoomError::Offer(format!("not an SDP offer: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let w = self.worker_of(room);
        let cmd = Cmd::Add { room: room.to_string(), role, offer, local, reply: tx };
        self.0.workers[w].try_send(cmd).map_err(|_| JoinError::Busy)?;
        let (peer, answer) = rx.await.map_err(|_| JoinError::Busy)??;
        if let Some(ufrag) = ice_ufrag(&answer) {
            self.0.routes.lock().unwrap().by_ufrag.insert(ufrag, w);
        }
        self.0.owners.lock().unwrap().insert((room.to_string(), peer), owner.to_string());
        Ok((peer, answer))
    }

    /// Removes a peer (it hung up) if `owner` added it; whether it did.
    pub fn leave(&self, room: &str, peer: PeerId, owner: &str) -> bool {
        let key = (room.to_string(), peer);
        let mut owners = self.0.owners.lock().unwrap();
        if owners.get(&key).map(String::as_str) != Some(owner) {
            return false;
        }
        owners.remove(&key);
        let w = self.worker_of(room);
        self.control(w, Cmd::Remove { room: room.to_string(), peer });
        true
    }

    /// Brings `user` on stage in `room`, in place of whoever was there; the person who was
    /// (if any and not `user`).
    pub fn invite_to_stage(&self, room: &str, user: &str) -> Option<String> {
        let before = self.0.on_stage.lock().unwrap().insert(room.to_string(), user.to_string());
        if before.as_deref().is_some_and(|b| b != user) {
            self.end_stage_media(room);
        }
        before.filter(|b| b != user)
    }

    /// Who is on stage in `room` (brought there, connected or not).
    pub fn on_stage(&self, room: &str) -> Option<String> {
        self.0.on_stage.lock().unwrap().get(room).cloned()
    }

    /// Takes `user` off the stage if they are still the one on it (false when someone else,
    /// or nobody, is on stage now): they may not publish there again until brought back. Their
    /// connection closes with `end_stage_media`, once the caller has recorded the change (or
    /// `restore_stage` if it could not).
    pub fn take_stage_from(&self, room: &str, user: &str) -> bool {
        let mut on_stage = self.0.on_stage.lock().unwrap();
        if on_stage.get(room).map(String::as_str) != Some(user) {
            return false;
        }
        on_stage.remove(room);
        true
    }

    /// Puts `user` back on stage after `take_stage_from` (unless someone was brought there
    /// meanwhile).
    pub fn restore_stage(&self, room: &str, user: &str) {
        let mut on_stage = self.0.on_stage.lock().unwrap();
        on_stage.entry(room.to_string()).or_insert_with(|| user.to_string());
    }

    /// Ends every connection of `room` (its session is over), the stage's with them.
    pub fn close_room(&self, room: &str) {
        self.0.on_stage.lock().unwrap().remove(room);
        let w = self.worker_of(room);
        self.control(w, Cmd::CloseRoom { room: room.to_string() });
    }

    /// Closes the stage's connection in `room`, whoever's it is.
    pub fn end_stage_media(&self, room: &str) {
        let w = self.worker_of(room);
        self.control(w, Cmd::EndStage { room: room.to_string() });
    }

    /// Hands a worker a command that must not be lost (a hang-up, the end of a session or of
    /// the stage): datagrams may be dropped when its queue is full, these go on its control
    /// queue, in order, and a wake-up on the datagram queue (a full queue means it is awake).
    fn control(&self, w: usize, cmd: Cmd) {
        let _ = self.0.control[w].send(cmd);
        let _ = self.0.workers[w].try_send(Cmd::Wake);
    }

    /// How each viewer's connection is doing (as of at most a second ago).
    pub fn health(&self, room: &str) -> Vec<PeerHealth> {
        self.0.live.lock().unwrap().get(room).map(|l| l.health.clone()).unwrap_or_default()
    }

    /// The room's state now.
    pub fn live(&self, room: &str) -> Live {
        let live = self.0.live.lock().unwrap();
        let Some(l) = live.get(room) else { return Live::default() };
        Live {
            presenter: l.presenter_connected,
            viewers: l.up.values().filter(|&&u| u).count(),
            watching: l.watching.len(),
            stage: l.stage.filter(|_| l.stage_connected),
        }
    }
}

/// The `a=ice-ufrag:` of an SDP.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")).map(|u| u.trim().to_string())
}

/// The USERNAME of a STUN message, if `b` is one.
fn stun_username(b: &[u8]) -> Option<&str> {
    if b.len() < 20 || b[0] & 0xC0 != 0 || b[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let end = (20 + len).min(b.len());
    let mut i = 20;
    while i + 4 <= end {
        let kind = u16::from_be_bytes([b[i], b[i + 1]]);
        let l = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let value = b.get(i + 4..i + 4 + l)?;
        if kind == 0x0006 {
            return std::str::from_utf8(value).ok();
        }
        i += 4 + l.div_ceil(4) * 4;
    }
    None
}

struct Demux {
    socket: UdpSocket,
    workers: Vec<SyncSender<Cmd>>,
    routes: Arc<Mutex<Routes>>,
    stop: Arc<AtomicBool>,
}

impl Demux {
    fn run(self) {
        let mut buf = vec![0u8; 2048];
        while !self.stop.load(Ordering::Relaxed) {
            let (n, source) = match self.socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "media socket read failed");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let data = &buf[..n];
            let worker = {
                let mut routes = self.routes.lock().unwrap();
                match routes.by_addr.get(&source) {
                    Some(&w) => Some(w),
                    None => {
                        let ufrag = stun_username(data).and_then(|u| u.split(':').next());
                        let w = ufrag.and_then(|u| routes.by_ufrag.get(u).copied());
                        if let Some(w) = w {
                            routes.by_addr.insert(source, w);
                        }
                        w
                    }
                }
            };
            let Some(w) = worker else { continue };
            let cmd = Cmd::Datagram { at: Instant::now(), source, data: data.to_vec() };
            match self.workers[w].try_send(cmd) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

struct Worker {
    index: usize,
    rx: Receiver<Cmd>,
    control: Receiver<Cmd>,
    socket: UdpSocket,
    rooms: HashMap<String, Room>,
    /// Which room a remote address belongs to.
    by_addr: HashMap<SocketAddr, String>,
    routes: Arc<Mutex<Routes>>,
    live: Arc<Mutex<HashMap<String, LiveState>>>,
    events: tokio::sync::mpsc::Sender<MediaEvent>,
    /// Every room's settings but its name.
    base: RoomConfig,
    /// When the rooms' viewers' health was last copied out for `MediaPlane::health`.
    health_at: Instant,
    stop: Arc<AtomicBool>,
}

/// How often each room's viewers' health is copied out for the trainer's page.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let next = self.rooms.values().map(|r| r.poll_timeout()).min();
            let wait = next
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            self.take_control();
            match self.rx.recv_timeout(wait) {
                Ok(cmd) => {
                    self.take_control();
                    self.handle(cmd);
                    // Take what else is waiting before servicing the rooms (control first
                    // each time: a stage ended before someone new joins it stays ended first).
                    while let Ok(cmd) = self.rx.try_recv() {
                        self.take_control();
                        self.handle(cmd);
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.take_control(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.service();
        }
    }

    fn take_control(&mut self) {
        while let Ok(cmd) = self.control.try_recv() {
            self.handle(cmd);
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Wake => {}
            Cmd::Add { room, role, offer, local, reply } => {
                let now = Instant::now();
                let base = &self.base;
                let r = self.rooms.entry(room.clone()).or_insert_with(|| {
                    // A room's recordings are named after its broadcast and when it opened.
                    let name = format!("{room}-{}", crate::time::now_ms());
                    Room::new(RoomConfig { name, ..base.clone() }, now)
                });
                let added = catch_unwind(AssertUnwindSafe(|| r.add_peer(role, offer, local, now)));
                let Ok(added) = added else {
                    let _ = reply.send(Err(RoomError::Offer("the media plane failed".into())));
                    self.fault(&room);
                    return;
                };
                let out = added.map(|(id, answer)| {
                    let mut live = self.live.lock().unwrap();
                    let l = live.entry(room.clone()).or_default();
                    match role {
                        Role::Presenter => l.presenter = Some(id),
                        Role::Stage => {
                            l.stage = Some(id);
                            l.stage_connected = false;
                        }
                        Role::Viewer => {}
                    }
                    (id, answer.to_sdp_string())
                });
                // Nobody waits for the answer (the request ended): the peer goes at once
                // rather than holding its place until `connect_timeout`.
                if let Err(Ok((peer, _))) = reply.send(out) {
                    self.handle(Cmd::Remove { room, peer });
                }
            }
            Cmd::Remove { room, peer } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    if catch_unwind(AssertUnwindSafe(|| r.remove(peer, "hung up"))).is_err() {
                        self.fault(&room);
                    }
                }
            }
            Cmd::EndStage { room } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    let Some(peer) = r.stage() else { return };
                    if catch_unwind(AssertUnwindSafe(|| r.remove(peer, "off stage"))).is_err() {
                        self.fault(&room);
                    }
                }
            }
            Cmd::CloseRoom { room } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    let closed = catch_unwind(AssertUnwindSafe(|| {
                        for peer in r.peer_ids() {
                            r.remove(peer, "session ended");
                        }
                    }));
                    if closed.is_err() {
                        self.fault(&room);
                    }
                }
            }
            Cmd::Datagram { at, source, data } => {
                let room = match self.by_addr.get(&source) {
                    Some(r) => Some(r.clone()),
                    None => self
                        .rooms
                        .iter()
                        .find(|(_, r)| r.accepts(source, &data))
                        .map(|(id, _)| id.clone()),
                };
                let Some(room) = room else { return };
                if let Some(r) = self.rooms.get_mut(&room) {
                    if catch_unwind(AssertUnwindSafe(|| r.handle_receive(at, source, &data)))
                        .is_err()
                    {
                        self.fault(&room);
                        return;
                    }
                    self.by_addr.entry(source).or_insert(room);
                }
            }
        }
    }

    /// Runs the rooms' timers and sends what they have to send.
    fn service(&mut self) {
        let now = Instant::now();
        let mut empty = vec![];
        let mut faulted = vec![];
        let copy_health = now >= self.health_at + HEALTH_EVERY;
        if copy_health {
            self.health_at = now;
        }
        for (id, room) in self.rooms.iter_mut() {
            if room.poll_timeout() <= now
                && catch_unwind(AssertUnwindSafe(|| room.handle_timeout(now))).is_err()
            {
                faulted.push(id.clone());
                continue;
            }
            while let Some(t) = room.poll_transmit() {
                // A full send buffer drops the datagram: the viewer's link is congested and
                // str0m will resend what matters.
                let sent = socket2::SockRef::from(&self.socket).send_to_with_flags(
                    &t.contents,
                    &t.destination.into(),
                    libc::MSG_DONTWAIT,
                );
                if let Err(e) = sent {
                    if e.kind() != ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "media send failed");
                    }
                }
            }
            let mut live = self.live.lock().unwrap();
            let l = live.entry(id.clone()).or_default();
            if copy_health {
                l.health = room.health();
            }
            while let Some(e) = room.poll_event() {
                let at = crate::time::now_ms();
                if self
                    .events
                    .try_send(MediaEvent { room: id.clone(), event: e.clone(), at })
                    .is_err()
                {
                    tracing::warn!(room = %id, "attendance queue full: an event was dropped");
                }
                match e {
                    RoomEvent::Connected(p) | RoomEvent::Link(p, _) if l.stage == Some(p) => {
                        if let RoomEvent::Link(_, up) = e {
                            l.stage_connected = up;
                        } else {
                            l.stage_connected = true;
                        }
                    }
                    RoomEvent::Connected(p) | RoomEvent::Link(p, true) => {
                        if l.presenter == Some(p) {
                            l.presenter_connected = true;
                        } else {
                            l.up.insert(p, true);
                        }
                    }
                    RoomEvent::Link(p, false) => {
                        if l.presenter == Some(p) {
                            l.presenter_connected = false;
                        } else {
                            l.up.insert(p, false);
                        }
                    }
                    RoomEvent::FirstMedia(p) => {
                        l.watching.insert(p);
                    }
                    RoomEvent::Left(p, why) => {
                        tracing::debug!(room = %id, peer = p, why, "media peer left");
                        if l.presenter == Some(p) {
                            l.presenter = None;
                            l.presenter_connected = false;
                        }
                        if l.stage == Some(p) {
                            l.stage = None;
                            l.stage_connected = false;
                        }
                        l.up.remove(&p);
                        l.watching.remove(&p);
                    }
                    RoomEvent::Layer(..) | RoomEvent::Recorded(_) => {}
                }
            }
            if room.presenter().is_none() && room.viewers() == 0 && room.stage().is_none() {
                empty.push(id.clone());
            }
        }
        for id in faulted {
            self.fault(&id);
        }
        for id in empty {
            self.close(&id);
        }
    }

    /// A room whose own code panicked (a peer's `Rtc` panicking is caught inside the room and
    /// costs that peer only) cannot be trusted: it is closed, its peers are told they left,
    /// and this worker's other rooms and the server go on.
    fn fault(&mut self, id: &str) {
        tracing::error!(room = %id, "a broadcast's media failed; its connections are closed");
        let peers: Vec<PeerId> = match self.live.lock().unwrap().get(id) {
            Some(l) => l.presenter.into_iter().chain(l.stage).chain(l.up.keys().copied()).collect(),
            None => vec![],
        };
        for p in peers {
            let event = RoomEvent::Left(p, "fault");
            let _ = self.events.try_send(MediaEvent {
                room: id.to_string(),
                event,
                at: crate::time::now_ms(),
            });
        }
        self.close(id);
    }

    /// Forgets a room and its routes.
    fn close(&mut self, id: &str) {
        self.rooms.remove(id);
        self.live.lock().unwrap().remove(id);
        let gone: Vec<SocketAddr> =
            self.by_addr.iter().filter(|(_, r)| r.as_str() == id).map(|(a, _)| *a).collect();
        let mut routes = self.routes.lock().unwrap();
        for a in gone {
            self.by_addr.remove(&a);
            if routes.by_addr.get(&a) == Some(&self.index) {
                routes.by_addr.remove(&a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU time (clock ticks) of this process's threads whose name starts with `prefix`.
    fn threads_cpu(prefix: &str) -> u64 {
        let mut ticks = 0;
        for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(')') else { continue };
            if !head.split_once('(').is_some_and(|(_, name)| name.starts_with(prefix)) {
                continue;
            }
            let f: Vec<u64> =
                rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
            ticks += f.iter().sum::<u64>();
        }
        ticks
    }

    fn one_worker_on_loopback() -> MediaSettings {
        MediaSettings {
            udp_addr: "127.0.0.1:0".into(),
            public_ips: String::new(),
            workers: 1,
            record: false,
            connect_timeout_secs: 20,
            gone_after_secs: 30,
        }
    }

    #[test]
    fn an_idle_media_plane_sleeps() {
        // The reader waits in recv with a timeout: a socket made non-blocking through a clone
        // (which shares its mode) had it spin a whole core while nothing arrived.
        let settings = one_worker_on_loopback();
        let (plane, _events) = MediaPlane::start(&settings, None).unwrap();
        let before = threads_cpu("ferry-media");
        std::thread::sleep(Duration::from_secs(1));
        let used = threads_cpu("ferry-media") - before;
        drop(plane);
        assert!(used <= 10, "the idle media plane used {used} ticks of CPU in 1 s");
    }

    /// A receive-only audio and video offer, as a viewer sends.
    fn viewer_offer() -> SdpOffer {
        use str0m::media::{Direction, MediaKind};
        let mut rtc = str0m::Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(
            str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap(),
        );
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.apply().unwrap().0
    }

    #[test]
    fn a_peer_whose_request_ended_before_the_answer_is_removed_at_once() {
        let settings = one_worker_on_loopback();
        let (plane, _events) = MediaPlane::start(&settings, None).unwrap();
        let local = plane.address_for(None);
        let add = |room: &str, reply| Cmd::Add {
            room: room.into(),
            role: Role::Viewer,
            offer: viewer_offer(),
            local,
            reply,
        };
        // Answered: the viewer stays, connecting, until it connects or its time runs out.
        let (tx, rx) = tokio::sync::oneshot::channel();
        plane.0.workers[0].try_send(add("heard", tx)).unwrap();
        assert!(rx.blocking_recv().unwrap().is_ok());
        // Nobody waits for the answer any more (the HTTP request ended).
        let (tx, rx) = tokio::sync::oneshot::channel();
        drop(rx);
        plane.0.workers[0].try_send(add("gone", tx)).unwrap();
        // Health is copied out once a second.
        std::thread::sleep(Duration::from_millis(1300));
        assert_eq!(plane.health("heard").len(), 1);
        assert!(plane.health("gone").is_empty(), "{:?}", plane.health("gone"));
    }

    #[test]
    fn stun_usernames_are_read_and_other_datagrams_are_not_stun() {
        // A binding request with USERNAME "abcd:wxyz" and a padded attribute after it.
        let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        m.extend_from_slice(b"abcd:wxyz\0\0\0");
        m.extend_from_slice(&[0x80, 0x29, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
        let len = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(stun_username(&m), Some("abcd:wxyz"));
        // An RTP packet (version 2) and a truncated attribute are not.
        assert_eq!(stun_username(&[0x80; 40]), None);
        let mut short = m.clone();
        short.truncate(26);
        assert_eq!(stun_username(&short), None);
    }

    #[test]
    fn ice_ufrag_is_read_from_an_answer() {
        let sdp =
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=ice-lite\r\na=ice-ufrag:Xy12\r\na=ice-pwd:p\r\n";
        assert_eq!(ice_ufrag(sdp).as_deref(), Some("Xy12"));
    }
}
