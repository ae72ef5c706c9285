//! One broadcast's media, without I/O: the presenter's `Rtc` and every viewer's, driven by
//! datagrams and time that the caller hands in, in the manner of str0m itself
//! (`handle_receive`/`handle_timeout` in, `poll_transmit`/`poll_event`/`poll_timeout` out).
//! The UDP shell and the tests drive it alike; the tests with a simulated clock and network.
//!
//! Forwarding: str0m runs in RTP mode. Each presenter packet goes out to every connected viewer
//! at once (nothing is queued here): audio always; video only from the simulcast layer the
//! viewer's bandwidth estimate allows (`layers`). Changing layers waits for a keyframe of the new
//! layer (asked for, throttled), and rewrites sequence numbers, RTP time and the VP8 picture id so
//! the viewer sees one continuous stream. Lost packets are resent by str0m from its send buffer
//! when a viewer NACKs (video is written `nackable`). A viewer whose connection is down gets
//! nothing until it is back (no buffering for it), then starts low again with a fresh keyframe.
//! A short cut does not change ICE's state, so the room also watches for silence: a viewer that
//! has answered nothing (no feedback, report or STUN) for `silence` while media goes to it gets
//! audio only until it is heard again.
//! A panic while handling one peer removes that peer; the room and the other peers go on.
//!
//! The stage: one more publisher (a viewer the trainer brought on stage, on its own WHIP
//! connection) whose audio and one video layer go to every viewer and to the presenter on a
//! second pair of media sections in their offers. Its audio goes to everyone whose link works;
//! its video only to those whose estimate has room for it beside the layer they get (audio
//! first, the trainer's video second, the stage's video last).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::crypto::CryptoProvider;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::layers::{Choice, Policy, RateMeter, Throttle};
use super::record::{Recorded, Recorder};

pub type PeerId = u64;

/// Peer ids are unique across the process, not per room: a room that empties is dropped and a
/// new one made for the next peer, and the attendance keys connections by instance and peer.
static NEXT_PEER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What a peer does in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Presenter,
    Viewer,
    /// A viewer brought on stage, publishing its camera and microphone.
    Stage,
}

/// A datagram to send, from the room's address to a peer.
#[derive(Debug)]
pub struct Transmit {
    pub peer: PeerId,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// How one viewer's connection is doing, for the trainer's page.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerHealth {
    pub peer: PeerId,
    /// ICE and DTLS have come up.
    pub connected: bool,
    /// Its link works now (not cut off, not silent).
    pub link_up: bool,
    /// The presenter's layer it gets (0 lowest), `None` while its video is paused.
    pub layer: Option<usize>,
    /// The presenter's layers now.
    pub layers: usize,
    /// Its bandwidth estimate (0 before the first).
    pub estimate_bps: u64,
    /// The share of packets to it that are lost, from its receiver reports.
    pub loss: Option<f32>,
    pub rtt_ms: Option<u32>,
}

/// What the room tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// ICE and DTLS are up.
    Connected(PeerId),
    /// The first media packet went out to this viewer (join time ends here).
    FirstMedia(PeerId),
    /// A viewer's video layer changed (`None`: video paused, audio only).
    Layer(PeerId, Option<usize>),
    /// The peer's connection went down (it may come back) or up again.
    Link(PeerId, bool),
    /// The peer is gone: closed, timed out, or removed after a fault in its handling.
    Left(PeerId, &'static str),
    /// A presenter's recording is closed, on local disk.
    Recorded(Recorded),
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("the room has a presenter already")]
    PresenterTaken,
    #[error("someone is on stage already")]
    StageTaken,
    #[error("the offer cannot be accepted: {0}")]
    Offer(String),
}

/// The settings of a room's media (`media.*`).
#[derive(Clone, Debug)]
pub struct RoomConfig {
    pub policy: Policy,
    /// The first bandwidth estimate for a new viewer.
    pub initial_estimate_bps: u64,
    /// A viewer's estimates this soon after it connects (or comes back) are not acted on.
    pub estimate_warmup: Duration,
    /// At most one keyframe request per presenter layer this often.
    pub keyframe_gap: Duration,
    /// A viewer that has sent nothing back (no feedback, no report, no STUN) for this long
    /// while media goes to it is treated as cut off: its video stops until it is heard again.
    pub silence: Duration,
    /// A peer that has not connected (ICE and DTLS) this long after its offer is removed: its
    /// client never reached the media port (UDP blocked, the page closed before it connected).
    pub connect_timeout: Duration,
    /// A peer whose link has been down this long is removed (a closed tab, a clinic that went
    /// off the air): it stops counting as connected, and its attendance closes.
    pub gone_after: Duration,
    /// How often a viewer's statistics (loss, round trip) are gathered.
    pub stats_every: Duration,
    /// Record each presenter into a WebM file here, named after `name`.
    pub record_dir: Option<std::path::PathBuf>,
    pub name: String,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            policy: Policy::default(),
            initial_estimate_bps: 300_000,
            estimate_warmup: Duration::from_secs(1),
            keyframe_gap: Duration::from_millis(500),
            silence: Duration::from_millis(1500),
            connect_timeout: Duration::from_secs(20),
            gone_after: Duration::from_secs(30),
            stats_every: Duration::from_secs(2),
            record_dir: None,
            name: "room".into(),
        }
    }
}

fn crypto() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags())).clone()
}

/// A presenter layer as it arrives.
struct LayerIn {
    rid: Option<Rid>,
    meter: RateMeter,
    keyframes: Throttle,
}

/// What the presenter sends.
#[derive(Default)]
struct Incoming {
    audio: Option<Mid>,
    video: Option<Mid>,
    /// In the order the presenter declared them (browsers: lowest first, as Ferry's page asks).
    layers: Vec<LayerIn>,
}

impl Incoming {
    /// The layers from lowest to highest: by measured rate once every layer has one, before
    /// that in declared order.
    fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        if self.layers.iter().all(|l| l.meter.bps() > 0) {
            order.sort_by_key(|&i| self.layers[i].meter.bps());
        }
        order
    }
}

/// What the person on stage sends: audio and one video layer.
struct StageIn {
    audio: Option<Mid>,
    video: Option<Mid>,
    /// The layer forwarded when the stage's client sends simulcast anyway: its first.
    rid: Option<Rid>,
    meter: RateMeter,
    keyframes: Throttle,
}

impl StageIn {
    fn new(cfg: &RoomConfig) -> Self {
        StageIn {
            audio: None,
            video: None,
            rid: None,
            meter: RateMeter::default(),
            keyframes: Throttle::new(cfg.keyframe_gap),
        }
    }
}

/// Sequence numbers, RTP time and picture ids going out to one viewer for one media, rebased
/// whenever the source changes (a layer switch) so the viewer sees one stream.
#[derive(Default)]
struct Rebase {
    seq_offset: i64,
    first_in: u64,
    last_seq: u64,
    ts_offset: u32,
    last_ts: u32,
    last_at: Option<Instant>,
    pid_offset: u16,
    last_pid: Option<u16>,
    started: bool,
}

impl Rebase {
    /// Starts a new source at its packet `seq`/`ts`/`pid`: the first packet follows the last
    /// one sent, in time too.
    fn restart(&mut self, seq: u64, ts: u32, pid: Option<u16>, now: Instant) {
        let next_seq = if self.started { self.last_seq + 1 } else { 1 };
        self.seq_offset = next_seq as i64 - seq as i64;
        self.first_in = seq;
        let next_ts = match self.last_at {
            Some(at) => {
                let ticks = (now.duration_since(at).as_micros() * 90 / 1000).max(1);
                self.last_ts.wrapping_add(ticks as u32)
            }
            None => ts,
        };
        self.ts_offset = next_ts.wrapping_sub(ts);
        if let (Some(last), Some(pid)) = (self.last_pid, pid) {
            self.pid_offset = last.wrapping_add(1).wrapping_sub(pid);
        }
        self.started = true;
    }

    /// The outgoing numbers for an incoming packet, or `None` for a packet from before the
    /// current source started.
    fn map(
        &mut self,
        seq: u64,
        ts: u32,
        pid: Option<u16>,
        now: Instant,
    ) -> Option<(u64, u32, Option<u16>)> {
        if !self.started || seq < self.first_in {
            return None;
        }
        let out = (seq as i64 + self.seq_offset) as u64;
        let ts_out = ts.wrapping_add(self.ts_offset);
        let pid_out = pid.map(|p| p.wrapping_add(self.pid_offset) & 0x7fff);
        if out > self.last_seq || self.last_at.is_none() {
            self.last_seq = out;
            self.last_ts = ts_out;
            self.last_at = Some(now);
            if pid_out.is_some() {
                self.last_pid = pid_out;
            }
        }
        Some((out, ts_out, pid_out))
    }
}

/// A viewer's outgoing media.
struct Outgoing {
    /// The viewer's media sections as its offer declared them.
    mids: Vec<(Mid, MediaKind)>,
    audio: Option<(Mid, Pt)>,
    video: Option<(Mid, Pt)>,
    audio_seq: Rebase,
    video_seq: Rebase,
    choice: Choice,
    /// The presenter layer (index into `Incoming::layers`) being forwarded now.
    sending: Option<usize>,
    /// The layer wanted, waiting for its keyframe.
    wanted: Option<usize>,
    sent_any: bool,
    /// The presenter changed: the next audio packet starts a new source (numbering follows on).
    audio_restart: bool,
    /// Estimates before this are not acted on (the estimator's start, `estimate_warmup`).
    estimates_from: Instant,
    /// The latest bandwidth estimate (0 before the first, and for a presenter).
    estimate: u64,
    /// The second audio and video sections of the offer: the stage.
    stage_audio: Option<(Mid, Pt)>,
    stage_video: Option<(Mid, Pt)>,
    stage_audio_seq: Rebase,
    stage_video_seq: Rebase,
    /// The stage's video is going to this peer (from a keyframe on).
    stage_video_on: bool,
    /// Someone new is on stage: the next audio packet starts a new source (its video starts
    /// anew at its next keyframe, `stage_video_on` being cleared).
    stage_audio_restart: bool,
    /// From its receiver reports (str0m's peer statistics).
    loss: Option<f32>,
    rtt: Option<Duration>,
}

impl Outgoing {
    fn new(now: Instant) -> Self {
        Outgoing {
            mids: vec![],
            audio: None,
            video: None,
            audio_seq: Rebase::default(),
            video_seq: Rebase::default(),
            choice: Choice::new(now),
            sending: None,
            wanted: None,
            sent_any: false,
            audio_restart: false,
            estimates_from: now,
            estimate: 0,
            stage_audio: None,
            stage_video: None,
            stage_audio_seq: Rebase::default(),
            stage_video_seq: Rebase::default(),
            stage_video_on: false,
            stage_audio_restart: false,
            loss: None,
            rtt: None,
        }
    }
}

struct Peer {
    role: Role,
    rtc: Rtc,
    /// The address this peer was told to reach the room at (its one ICE candidate): datagrams
    /// from it are handed to its `Rtc` as received there.
    local: SocketAddr,
    remote: Option<SocketAddr>,
    connected: bool,
    /// ICE says the path works.
    ice_up: bool,
    /// Media has gone to this peer for `silence` without a datagram back: a cut link that ICE
    /// has not noticed yet (it takes longer than a short cut).
    quiet: bool,
    /// The first datagram sent to this peer since the last one heard from it.
    unanswered_since: Option<Instant>,
    /// `ice_up && !quiet`: video goes to this peer.
    link_up: bool,
    /// When it was added, until it connects; then when its link went down, while it is down.
    waiting_since: Option<Instant>,
    out: Option<Outgoing>,
    /// Tests: the next datagram from this peer panics while it is handled, as a bug in its
    /// handling would.
    #[cfg(test)]
    fault: bool,
}

/// One broadcast's media plane.
pub struct Room {
    cfg: RoomConfig,
    peers: HashMap<PeerId, Peer>,
    by_remote: HashMap<SocketAddr, PeerId>,
    presenter: Option<PeerId>,
    incoming: Incoming,
    stage: Option<PeerId>,
    stage_in: StageIn,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RoomEvent>,
    timeouts: HashMap<PeerId, Instant>,
    now: Instant,
    /// When paused viewers were last looked at for a trial of the lowest layer (every 250 ms,
    /// not at every timeout: the room's timeouts come thousands of times a second).
    trials_checked: Instant,
    start: Instant,
    recorder: Option<Recorder>,
    /// The presenter layer being recorded (its highest, fixed at the first video packet).
    record_layer: Option<usize>,
    recordings: u32,
}

impl Room {
    pub fn new(cfg: RoomConfig, now: Instant) -> Self {
        Room {
            peers: HashMap::new(),
            by_remote: HashMap::new(),
            presenter: None,
            incoming: Incoming::default(),
            stage: None,
            stage_in: StageIn::new(&cfg),
            cfg,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timeouts: HashMap::new(),
            now,
            trials_checked: now,
            start: now,
            recorder: None,
            record_layer: None,
            recordings: 0,
        }
    }

    pub fn presenter(&self) -> Option<PeerId> {
        self.presenter
    }

    /// Every peer's id.
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// The person on stage's connection, if any.
    pub fn stage(&self) -> Option<PeerId> {
        self.stage
    }

    /// How every viewer's connection is doing.
    pub fn health(&self) -> Vec<PeerHealth> {
        let layers = self.incoming.layers.len();
        self.peers
            .iter()
            .filter(|(_, p)| p.role == Role::Viewer)
            .map(|(&id, p)| {
                let out = p.out.as_ref();
                PeerHealth {
                    peer: id,
                    connected: p.connected,
                    link_up: p.link_up,
                    layer: self.viewer_layer(id),
                    layers,
                    estimate_bps: out.map_or(0, |o| o.estimate),
                    loss: out.and_then(|o| o.loss),
                    rtt_ms: out.and_then(|o| o.rtt).map(|d| d.as_millis() as u32),
                }
            })
            .collect()
    }

    pub fn viewers(&self) -> usize {
        self.peers.values().filter(|p| p.role == Role::Viewer).count()
    }

    /// The layer a viewer is being sent now (index into the presenter's layers, lowest first
    /// once measured), `None` while its video is paused or not started.
    pub fn viewer_layer(&self, id: PeerId) -> Option<usize> {
        let p = self.peers.get(&id)?;
        let sending = p.out.as_ref()?.sending?;
        self.incoming.ranked().iter().position(|&i| i == sending)
    }

    /// A new peer from its SDP offer (WHIP for the presenter, WHEP for a viewer), told to reach
    /// the room at `local`; the answer to send back.
    pub fn add_peer(
        &mut self,
        role: Role,
        offer: SdpOffer,
        local: SocketAddr,
        now: Instant,
    ) -> Result<(PeerId, SdpAnswer), RoomError> {
        if role == Role::Presenter && self.presenter.is_some() {
            return Err(RoomError::PresenterTaken);
        }
        if role == Role::Stage && self.stage.is_some() {
            return Err(RoomError::StageTaken);
        }
        let mut builder = Rtc::builder()
            .set_crypto_provider(crypto())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true);
        if role == Role::Viewer {
            builder = builder
                .enable_bwe(Some(Bitrate::from(self.cfg.initial_estimate_bps)))
                .set_stats_interval(Some(self.cfg.stats_every));
        }
        let mut rtc = builder.build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| RoomError::Offer(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer =
            rtc.sdp_api().accept_offer(offer).map_err(|e| RoomError::Offer(e.to_string()))?;
        let id = NEXT_PEER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The presenter gets media too: the stage, when its offer asks for it.
        let out = (role != Role::Stage).then(|| Outgoing::new(now));
        self.peers.insert(
            id,
            Peer {
                role,
                rtc,
                local,
                remote: None,
                connected: false,
                ice_up: false,
                quiet: false,
                unanswered_since: None,
                link_up: false,
                waiting_since: Some(now),
                out,
                #[cfg(test)]
                fault: false,
            },
        );
        if role == Role::Stage {
            self.stage = Some(id);
            self.stage_in = StageIn::new(&self.cfg);
        }
        if role == Role::Presenter {
            self.presenter = Some(id);
            if let Some(dir) = &self.cfg.record_dir {
                self.recordings += 1;
                let path = dir.join(format!("{}-{}.webm", self.cfg.name, self.recordings));
                self.recorder = Some(Recorder::new(path));
                self.record_layer = None;
            }
        }
        self.drive(id, now);
        Ok((id, answer))
    }

    /// Removes a peer (it hung up, or its session ended).
    pub fn remove(&mut self, id: PeerId, why: &'static str) {
        if let Some(mut p) = self.peers.remove(&id) {
            p.rtc.disconnect();
            if let Some(r) = p.remote {
                self.by_remote.remove(&r);
            }
            self.timeouts.remove(&id);
            if self.presenter == Some(id) {
                self.presenter = None;
                self.incoming = Incoming::default();
                // Viewers stay for the next presenter (the trainer back from a dropped
                // link): its streams start afresh, each viewer's numbering follows on.
                for p in self.peers.values_mut() {
                    if let Some(o) = p.out.as_mut() {
                        o.sending = None;
                        o.wanted = None;
                        o.audio_restart = true;
                    }
                }
                if let Some(done) = self.recorder.take().and_then(Recorder::finish) {
                    self.events.push_back(RoomEvent::Recorded(done));
                }
            }
            if self.stage == Some(id) {
                self.stage = None;
                self.stage_in = StageIn::new(&self.cfg);
                for p in self.peers.values_mut() {
                    if let Some(o) = p.out.as_mut() {
                        o.stage_video_on = false;
                        o.stage_audio_restart = true;
                    }
                }
            }
            self.events.push_back(RoomEvent::Left(id, why));
        }
    }

    /// Whether a datagram belongs to this room: from a peer's known address, or a STUN request
    /// carrying one of its peers' credentials.
    pub fn accepts(&self, source: SocketAddr, contents: &[u8]) -> bool {
        self.by_remote.contains_key(&source) || self.owner(source, contents, self.now).is_some()
    }

    /// The peer whose `Rtc` takes this datagram.
    fn owner(&self, source: SocketAddr, contents: &[u8], now: Instant) -> Option<PeerId> {
        let takes = |p: &Peer| {
            Receive::new(Protocol::Udp, source, p.local, contents)
                .is_ok_and(|r| p.rtc.accepts(&Input::Receive(now, r)))
        };
        match self.by_remote.get(&source) {
            Some(&id) if self.peers.get(&id).is_some_and(takes) => Some(id),
            _ => self.peers.iter().find(|(_, p)| takes(p)).map(|(&id, _)| id),
        }
    }

    /// A datagram from the network.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        self.now = self.now.max(now);
        let Some(id) = self.owner(source, contents, now) else { return };
        let peer = self.peers.get_mut(&id).expect("found above");
        if peer.remote != Some(source) {
            if let Some(old) = peer.remote.replace(source) {
                self.by_remote.remove(&old);
            }
            self.by_remote.insert(source, id);
        }
        let Ok(r) = Receive::new(Protocol::Udp, source, peer.local, contents) else { return };
        peer.unanswered_since = None;
        let was_quiet = std::mem::take(&mut peer.quiet);
        let fed = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            assert!(!peer.fault, "a fault in this peer's handling");
            peer.rtc.handle_input(Input::Receive(now, r))
        }));
        match fed {
            Ok(Ok(())) => {
                if was_quiet {
                    self.relink(id, now);
                }
                self.drive(id, now)
            }
            Ok(Err(_)) => {}
            Err(_) => self.remove(id, "fault"),
        }
    }

    /// Time moved on.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let silent: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.role == Role::Viewer
                    && !p.quiet
                    && p.unanswered_since.is_some_and(|t| now >= t + self.cfg.silence)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in silent {
            if let Some(p) = self.peers.get_mut(&id) {
                p.quiet = true;
            }
            self.relink(id, now);
        }
        let expired: Vec<(PeerId, &'static str)> = self
            .peers
            .iter()
            .filter_map(|(&id, p)| {
                let since = p.waiting_since?;
                match p.connected {
                    false if now >= since + self.cfg.connect_timeout => {
                        Some((id, "never connected"))
                    }
                    true if now >= since + self.cfg.gone_after => Some((id, "gone")),
                    _ => None,
                }
            })
            .collect();
        for (id, why) in expired {
            self.remove(id, why);
        }
        if now >= self.trials_checked + Duration::from_millis(250) {
            self.trials_checked = now;
            let trials: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    p.link_up && p.out.as_ref().is_some_and(|o| o.choice.trial_due(now))
                })
                .map(|(&id, _)| id)
                .collect();
            for id in trials {
                self.resume_trial(id, now);
            }
        }
        let due: Vec<PeerId> =
            self.timeouts.iter().filter(|&(_, &t)| t <= now).map(|(&id, _)| id).collect();
        for id in due {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            let fed = catch_unwind(AssertUnwindSafe(|| peer.rtc.handle_input(Input::Timeout(now))));
            match fed {
                Ok(_) => self.drive(id, now),
                Err(_) => self.remove(id, "fault"),
            }
        }
    }

    /// Tests: makes the handling of `id`'s next datagram panic.
    #[cfg(test)]
    pub(super) fn inject_fault(&mut self, id: PeerId) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.fault = true;
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> Instant {
        let silence = self
            .peers
            .values()
            .filter(|p| !p.quiet)
            .filter_map(|p| p.unanswered_since.map(|t| t + self.cfg.silence));
        self.timeouts
            .values()
            .copied()
            .chain(silence)
            .min()
            .unwrap_or(self.now + Duration::from_millis(100))
    }

    /// Drains one peer's output until it asks for a timeout, acting on its events.
    fn drive(&mut self, id: PeerId, now: Instant) {
        loop {
            let Some(peer) = self.peers.get_mut(&id) else { return };
            let out = match catch_unwind(AssertUnwindSafe(|| peer.rtc.poll_output())) {
                Ok(Ok(o)) => o,
                Ok(Err(_)) => {
                    self.remove(id, "error");
                    return;
                }
                Err(_) => {
                    self.remove(id, "fault");
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    if !peer.rtc.is_alive() {
                        self.remove(id, "closed");
                    } else {
                        self.timeouts.insert(id, t);
                    }
                    return;
                }
                Output::Transmit(t) => self.transmits.push_back(Transmit {
                    peer: id,
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(e) => self.on_event(id, e, now),
            }
        }
    }

    fn on_event(&mut self, id: PeerId, e: Event, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        match e {
            Event::Connected => {
                peer.connected = true;
                peer.ice_up = true;
                peer.link_up = true;
                peer.waiting_since = None;
                if let Some(o) = peer.out.as_mut() {
                    o.estimates_from = now + self.cfg.estimate_warmup;
                }
                learn_media(peer);
                self.events.push_back(RoomEvent::Connected(id));
                if peer.role == Role::Viewer {
                    self.want_layer(id, now);
                }
            }
            Event::IceConnectionStateChange(s) => {
                // An ICE-lite agent leaves `Disconnected` for `Checking` when the viewer's
                // binding requests come through again (it is only `Completed` again if the
                // viewer nominates anew, which browsers do not): `Checking` is a link that works.
                peer.ice_up = !matches!(s, IceConnectionState::Disconnected);
                if peer.connected {
                    self.relink(id, now);
                }
            }
            Event::MediaAdded(m) if peer.role == Role::Stage => match m.kind {
                MediaKind::Audio => self.stage_in.audio = Some(m.mid),
                MediaKind::Video => {
                    self.stage_in.video = Some(m.mid);
                    self.stage_in.rid = m.simulcast.and_then(|s| s.recv.first().map(|l| l.rid));
                }
            },
            Event::MediaAdded(m) if peer.role == Role::Presenter && m.direction.is_receiving() => {
                match m.kind {
                    MediaKind::Audio => self.incoming.audio = Some(m.mid),
                    MediaKind::Video => {
                        self.incoming.video = Some(m.mid);
                        let rids: Vec<Option<Rid>> = match &m.simulcast {
                            Some(s) if !s.recv.is_empty() => {
                                s.recv.iter().map(|l| Some(l.rid)).collect()
                            }
                            _ => vec![None],
                        };
                        self.incoming.layers = rids
                            .into_iter()
                            .map(|rid| LayerIn {
                                rid,
                                meter: RateMeter::default(),
                                keyframes: Throttle::new(self.cfg.keyframe_gap),
                            })
                            .collect();
                        // Viewers already here (before the presenter, or staying for a new one)
                        // ask for their layer now: not every client sends the feedback that would
                        // bring a bandwidth estimate, and with it a choice.
                        let waiting: Vec<PeerId> = self
                            .peers
                            .iter()
                            .filter(|(_, p)| p.role == Role::Viewer && p.connected)
                            .map(|(&id, _)| id)
                            .collect();
                        for v in waiting {
                            self.want_layer(v, now);
                        }
                    }
                }
            }
            Event::MediaAdded(m) => {
                if let Some(o) = peer.out.as_mut() {
                    o.mids.push((m.mid, m.kind));
                    learn_media(peer);
                }
            }
            Event::RtpPacket(p) if peer.role == Role::Presenter => self.forward(p, now),
            Event::RtpPacket(p) if peer.role == Role::Stage => self.forward_stage(p, now),
            Event::PeerStats(st) => {
                if let Some(o) = peer.out.as_mut() {
                    o.loss = st.egress_loss_fraction.or(o.loss);
                    o.rtt = st.rtt.or(o.rtt);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                self.on_estimate(id, estimate.as_u64(), now)
            }
            Event::KeyframeRequest(r) => {
                let Some(out) = peer.out.as_ref() else { return };
                if out.stage_video.is_some_and(|(mid, _)| mid == r.mid) {
                    self.ask_stage_keyframe(now);
                } else if peer.role == Role::Viewer {
                    if let Some(layer) = out.sending {
                        self.ask_keyframe(layer, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// Brings `link_up` in line with ICE and silence. A viewer back from a cut starts low again,
    /// from a fresh keyframe that follows on from the last packet it got (so it has nothing to
    /// NACK and nothing to wait for). What the estimator learnt during the cut (everything
    /// lost) says nothing of the link: it starts again too, or video would stay paused while it
    /// relearns.
    fn relink(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let up = peer.ice_up && !peer.quiet;
        if up == peer.link_up {
            return;
        }
        peer.link_up = up;
        peer.waiting_since = if up { None } else { Some(now) };
        tracing::info!(peer = id, up, quiet = peer.quiet, "media link");
        self.events.push_back(RoomEvent::Link(id, up));
        if peer.role != Role::Viewer {
            return;
        }
        if let Some(o) = peer.out.as_mut() {
            o.sending = None;
            if up {
                o.choice = Choice::new(now);
            }
        }
        if up {
            self.estimate_afresh(id, now);
        }
    }

    /// A viewer paused for a while gets the lowest layer again, with its estimate started
    /// afresh: the low reading that paused it may be the loss of a link that carries video well
    /// (`layers::Policy::resume_trial_after`). If the link cannot carry it, the first estimates
    /// after the warm-up pause it again, and the next trial waits twice as long.
    fn resume_trial(&mut self, id: PeerId, now: Instant) {
        let Some(out) = self.peers.get_mut(&id).and_then(|p| p.out.as_mut()) else { return };
        out.choice.start_trial(now);
        tracing::info!(peer = id, "media layer: the lowest again, on trial");
        self.events.push_back(RoomEvent::Layer(id, Some(0)));
        self.estimate_afresh(id, now);
    }

    /// Starts a viewer's bandwidth estimate again from `initial_estimate_bps` (estimates are
    /// not acted on during the warm-up) and forwards the layer its choice now holds.
    fn estimate_afresh(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if let Some(o) = peer.out.as_mut() {
            o.estimates_from = now + self.cfg.estimate_warmup;
        }
        peer.rtc.bwe().reset(Bitrate::from(self.cfg.initial_estimate_bps));
        self.want_layer(id, now);
    }

    /// A viewer's new bandwidth estimate: maybe another layer.
    fn on_estimate(&mut self, id: PeerId, estimate: u64, now: Instant) {
        if let Some(o) = self.peers.get_mut(&id).and_then(|p| p.out.as_mut()) {
            o.estimate = estimate;
        }
        let ranked = self.incoming.ranked();
        let rates: Vec<u64> =
            ranked.iter().map(|&i| self.incoming.layers[i].meter.peak_bps()).collect();
        if rates.is_empty() || rates.contains(&0) {
            // No presenter (between two), or its layers not measured yet: stay where the
            // viewer is.
            return;
        }
        let Some(peer) = self.peers.get_mut(&id) else { return };
        tracing::trace!(peer = id, estimate, ?rates, "estimate");
        let policy = &self.cfg.policy;
        // Let the estimator probe (in short bursts) towards the top layer. No padding floor:
        // padding up to an estimate that is too high is what overflows a thin link's queue.
        // With someone on stage, their audio is set aside too, and their video is worth probing
        // for.
        let (stage_audio, stage_video) = match self.stage {
            Some(_) => (policy.audio_reserve_bps, self.stage_in.meter.peak_bps()),
            None => (0, 0),
        };
        let top = rates[rates.len() - 1];
        let desired = ((top + stage_video + policy.audio_reserve_bps + stage_audio) as f64
            * policy.headroom) as u64;
        peer.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::from(desired));
        let Some(out) = peer.out.as_mut() else { return };
        // The first estimates of a new (or returning) connection are the starting guess, not
        // a measurement: acting on them paused a one-layer presenter's video for every new
        // viewer for seconds (the estimator passes 1.5 Mbit/s within 0.2 s on a good link).
        // The viewer is on the lowest layer meanwhile, as it starts.
        if now < out.estimates_from {
            return;
        }
        let estimate = estimate.saturating_sub(stage_audio);
        if let Some(new) = out.choice.update(policy, now, estimate, &rates) {
            tracing::info!(peer = id, layer = ?new, estimate, "media layer");
            self.events.push_back(RoomEvent::Layer(id, new));
        }
        self.want_layer(id, now);
    }

    /// Brings a viewer's forwarding in line with its choice: pause at once, or ask for a
    /// keyframe of the wanted layer and switch when it comes.
    fn want_layer(&mut self, id: PeerId, now: Instant) {
        let ranked = self.incoming.ranked();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let Some(out) = peer.out.as_mut() else { return };
        let wanted = out
            .choice
            .current()
            .and_then(|rank| ranked.get(rank).copied().or_else(|| ranked.last().copied()));
        out.wanted = wanted;
        let rank_of =
            |layer: Option<usize>| layer.and_then(|l| ranked.iter().position(|&i| i == l));
        // Going down (or pausing) stops the larger layer at once: on a thin link, a moment
        // without video until the smaller layer's keyframe beats overflowing the link's queue
        // while waiting for it. Going up keeps the current layer until the keyframe comes.
        if rank_of(wanted) < rank_of(out.sending) {
            out.sending = None;
        }
        if let Some(w) = wanted {
            if out.sending != Some(w) {
                self.ask_keyframe(w, now);
            }
        }
    }

    fn ask_keyframe(&mut self, layer: usize, now: Instant) {
        let (Some(pid), Some(mid)) = (self.presenter, self.incoming.video) else { return };
        let Some(l) = self.incoming.layers.get_mut(layer) else { return };
        if !l.keyframes.allow(now) {
            return;
        }
        let rid = l.rid;
        self.request_keyframe(pid, mid, rid, now);
    }

    /// Asks publisher `pid` for a keyframe of its stream `mid`/`rid` (PLI), now.
    fn request_keyframe(&mut self, pid: PeerId, mid: Mid, rid: Option<Rid>, now: Instant) {
        if let Some(p) = self.peers.get_mut(&pid) {
            if let Some(s) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
                s.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
        self.drive(pid, now);
    }

    /// The section and layer of publisher `pid`'s incoming stream `ssrc`.
    fn source_of(&mut self, pid: PeerId, ssrc: &Ssrc) -> Option<(Mid, Option<Rid>)> {
        let peer = self.peers.get_mut(&pid)?;
        let mut api = peer.rtc.direct_api();
        let s = api.stream_rx(ssrc)?;
        Some((s.mid(), s.rid()))
    }

    /// One presenter packet out to every viewer that should have it.
    fn forward(&mut self, p: RtpPacket, now: Instant) {
        let Some(pid) = self.presenter else { return };
        let Some((mid, rid)) = self.source_of(pid, &p.header.ssrc) else { return };
        let seq: u64 = *p.seq_no;
        let ts = p.header.timestamp;
        let wall = now.duration_since(self.start).as_millis() as i64;
        let stream_ms = p.time.as_seconds() * 1000.0;
        if Some(mid) == self.incoming.audio {
            if let Some(r) = self.recorder.as_mut() {
                r.audio(stream_ms, &p.payload, wall);
            }
            let ids: Vec<PeerId> = self.viewer_ids();
            for id in ids {
                self.send_audio(id, &p, seq, ts, now);
            }
            return;
        }
        if Some(mid) != self.incoming.video {
            return;
        }
        let Some(layer) = self.incoming.layers.iter().position(|l| l.rid == rid) else { return };
        self.incoming.layers[layer].meter.add(now, p.payload.len());
        if self.recorder.is_some() {
            let record = *self.record_layer.get_or_insert_with(|| {
                // The highest layer: measured when it can be, else the last declared.
                let ranked = self.incoming.ranked();
                ranked.last().copied().unwrap_or(layer)
            });
            if record == layer {
                let r = self.recorder.as_mut().expect("checked");
                if r.video(*p.seq_no, stream_ms, p.header.marker, &p.payload, wall) {
                    self.ask_keyframe(layer, now);
                }
            }
        }
        let desc = Vp8Descriptor::parse(&p.payload).ok();
        let key = desc.is_some_and(|d| d.starts_keyframe(&p.payload));
        let pid_in = desc.and_then(|d| d.picture_id());
        let mut waiting = false;
        for id in self.viewer_ids() {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            if !peer.link_up {
                continue;
            }
            let Some(out) = peer.out.as_mut() else { continue };
            if out.wanted == Some(layer) && out.sending != Some(layer) {
                if key {
                    out.sending = Some(layer);
                    out.video_seq.restart(seq, ts, pid_in, now);
                } else {
                    waiting = true;
                }
            }
            if out.sending != Some(layer) {
                continue;
            }
            let Some((vmid, vpt)) = out.video else { continue };
            let Some((seq_out, ts_out, pid_out)) = out.video_seq.map(seq, ts, pid_in, now) else {
                continue;
            };
            let first = !out.sent_any;
            out.sent_any = true;
            peer.unanswered_since.get_or_insert(now);
            let mapped = (seq_out, ts_out, pid_out);
            write_rtp(&mut peer.rtc, (vmid, vpt), mapped, &p, Some(desc), now);
            if first {
                self.events.push_back(RoomEvent::FirstMedia(id));
            }
            self.drive(id, now);
        }
        if waiting {
            self.ask_keyframe(layer, now);
        }
    }

    fn send_audio(&mut self, id: PeerId, p: &RtpPacket, seq: u64, ts: u32, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        // Audio goes on to a quiet viewer: it is small, and it is what the viewer answers
        // first when its link comes back.
        if !peer.ice_up {
            return;
        }
        peer.unanswered_since.get_or_insert(now);
        let Some(out) = peer.out.as_mut() else { return };
        let Some((amid, apt)) = out.audio else { return };
        if !out.audio_seq.started {
            out.audio_seq.restart(seq, ts, None, now);
            out.audio_seq.ts_offset = 0;
        } else if std::mem::take(&mut out.audio_restart) {
            out.audio_seq.restart(seq, ts, None, now);
        }
        let Some((seq_out, ts_out, _)) = out.audio_seq.map(seq, ts, None, now) else { return };
        let first = !out.sent_any;
        out.sent_any = true;
        write_rtp(&mut peer.rtc, (amid, apt), (seq_out, ts_out, None), p, None, now);
        if first {
            self.events.push_back(RoomEvent::FirstMedia(id));
        }
        self.drive(id, now);
    }

    fn ask_stage_keyframe(&mut self, now: Instant) {
        let (Some(sid), Some(mid)) = (self.stage, self.stage_in.video) else { return };
        if !self.stage_in.keyframes.allow(now) {
            return;
        }
        let rid = self.stage_in.rid;
        self.request_keyframe(sid, mid, rid, now);
    }

    /// One packet of the person on stage out to everyone who takes the stage: audio to every
    /// working link; video to the presenter, and to each viewer whose latest estimate has room
    /// for it beside its layer of the presenter (from a keyframe on, asked for when needed).
    fn forward_stage(&mut self, p: RtpPacket, now: Instant) {
        let Some(sid) = self.stage else { return };
        let Some((mid, rid)) = self.source_of(sid, &p.header.ssrc) else { return };
        let video = Some(mid) == self.stage_in.video;
        if !video && Some(mid) != self.stage_in.audio || video && rid != self.stage_in.rid {
            return;
        }
        let seq: u64 = *p.seq_no;
        let ts = p.header.timestamp;
        let (desc, key, pid_in) = if video {
            self.stage_in.meter.add(now, p.payload.len());
            let desc = Vp8Descriptor::parse(&p.payload).ok();
            (
                desc,
                desc.is_some_and(|d| d.starts_keyframe(&p.payload)),
                desc.and_then(|d| d.picture_id()),
            )
        } else {
            (None, false, None)
        };
        let (reserve, headroom) = (self.cfg.policy.audio_reserve_bps, self.cfg.policy.headroom);
        let stage_bps = self.stage_in.meter.peak_bps();
        let layer_bps: Vec<u64> = self.incoming.layers.iter().map(|l| l.meter.peak_bps()).collect();
        let mut waiting = false;
        let ids: Vec<PeerId> =
            self.peers.iter().filter(|(_, p)| p.out.is_some()).map(|(&id, _)| id).collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            let presenter = peer.role == Role::Presenter;
            if !peer.ice_up || video && !peer.link_up {
                continue;
            }
            let Some(out) = peer.out.as_mut() else { continue };
            let (target, rebase) = if video {
                let main = out.sending.and_then(|l| layer_bps.get(l)).copied().unwrap_or(0);
                let need = ((main + stage_bps + reserve) as f64 * headroom) as u64;
                // Unmeasured (its first second), the stage's video is not sent to viewers: its
                // keyframe alone would flood a thin link.
                if !presenter && (stage_bps == 0 || out.estimate < need) {
                    out.stage_video_on = false;
                    continue;
                }
                if !out.stage_video_on {
                    if !key {
                        waiting = true;
                        continue;
                    }
                    out.stage_video_on = true;
                    out.stage_video_seq.restart(seq, ts, pid_in, now);
                }
                (out.stage_video, &mut out.stage_video_seq)
            } else {
                if std::mem::take(&mut out.stage_audio_restart) || !out.stage_audio_seq.started {
                    out.stage_audio_seq.restart(seq, ts, None, now);
                }
                (out.stage_audio, &mut out.stage_audio_seq)
            };
            let Some(target) = target else { continue };
            let Some(mapped) = rebase.map(seq, ts, pid_in, now) else { continue };
            peer.unanswered_since.get_or_insert(now);
            write_rtp(&mut peer.rtc, target, mapped, &p, video.then_some(desc), now);
            self.drive(id, now);
        }
        if waiting {
            self.ask_stage_keyframe(now);
        }
    }

    fn viewer_ids(&self) -> Vec<PeerId> {
        self.peers.iter().filter(|(_, p)| p.role == Role::Viewer).map(|(&id, _)| id).collect()
    }
}

/// Writes one forwarded packet on `mid` with the outgoing numbers: video (`vp8` given, with
/// the descriptor if it parsed) kept for NACKs and its picture id rewritten; audio with its
/// header extensions (the audio level).
fn write_rtp(
    rtc: &mut Rtc,
    (mid, pt): (Mid, Pt),
    (seq, ts, pid): (u64, u32, Option<u16>),
    p: &RtpPacket,
    vp8: Option<Option<Vp8Descriptor>>,
    now: Instant,
) {
    let mut w =
        RtpWrite::new(pt, SeqNo::from(seq), ts, now, p.payload.clone()).marker(p.header.marker);
    match vp8 {
        Some(desc) => {
            w = w.nackable(true);
            if let (Some(d), Some(pid)) = (desc, pid) {
                if let Ok(patch) = d.patch().picture_id(pid).build() {
                    w = w.vp8_patch(patch);
                }
            }
        }
        None => w = w.ext_vals(p.header.ext_vals.clone()),
    }
    if let Some(s) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        s.write_rtp(w);
    }
}

/// The peer's negotiated media sections we send on, with the payload type its side chose for
/// Opus and VP8: a viewer's first audio and video carry the presenter, the next pair the stage;
/// a presenter's (it sends on its first pair) carry only the stage.
fn learn_media(peer: &mut Peer) {
    let viewer = peer.role == Role::Viewer;
    let Some(out) = peer.out.as_mut() else { return };
    let params = peer.rtc.codec_config().params().to_vec();
    let pt_of = |codec: Codec, pts: &[Pt]| {
        pts.iter()
            .copied()
            .find(|pt| params.iter().any(|p| p.pt() == *pt && p.spec().codec == codec))
    };
    out.audio = None;
    out.video = None;
    out.stage_audio = None;
    out.stage_video = None;
    for &(mid, kind) in &out.mids {
        let Some(media) = peer.rtc.media(mid) else { continue };
        let (main, stage, codec) = match kind {
            MediaKind::Audio => (&mut out.audio, &mut out.stage_audio, Codec::Opus),
            MediaKind::Video => (&mut out.video, &mut out.stage_video, Codec::Vp8),
        };
        let Some(pt) = pt_of(codec, media.remote_pts()) else { continue };
        if viewer && main.is_none() {
            *main = Some((mid, pt));
        } else if stage.is_none() {
            *stage = Some((mid, pt));
        }
    }
}
