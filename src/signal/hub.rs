//! The hub: one task that owns the signalling [`Core`] and carries out its effects. Sockets
//! (`ws.rs`) and the consult handlers talk to it through one bounded channel; it answers each
//! socket through that socket's own bounded channel. A socket that cannot keep up (its
//! channel is full) is closed rather than allowed to grow the server's memory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::core::{ConnId, Core, Effect, Input, Limits};
use super::messages::{ServerMsg, VERSION};

/// What a socket task is told to do.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Close(&'static str),
}

enum Cmd {
    Input(Input),
    Register {
        conn: ConnId,
        user: String,
        credential: String,
        tx: mpsc::Sender<Outgoing>,
    },
    Revoke(Revoke),
    /// The credentials that open sockets were opened with (to check which have expired).
    Credentials(tokio::sync::oneshot::Sender<Vec<String>>),
}

/// Whose sockets to close because their access ended.
#[derive(Debug, Clone)]
pub enum Revoke {
    /// Those opened with this session (its id hash) or bearer token (its id).
    Credential(String),
    /// All of a person's (account disabled).
    User(String),
}

struct Sock {
    tx: mpsc::Sender<Outgoing>,
    user: String,
    credential: String,
}

/// A join decided by the core, for the shell to audit and to start the consult's call.
#[derive(Debug, Clone)]
pub struct JoinDecision {
    pub user: String,
    pub room: String,
    pub allowed: bool,
}

/// Messages a socket may have queued before it counts as too slow.
pub const SOCKET_QUEUE: usize = 256;

/// Join decisions waiting for the consult shell. When it is this far behind, further joins
/// are refused with `busy` (the page tries again) rather than queued without end.
pub const JOINS_QUEUE: usize = 10_000;

/// Commands waiting for the hub.
const INBOX: usize = 4096;

#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Cmd>,
    /// Who is online, as the core last said (`Effect::Online`): written only by the hub task,
    /// from the core, which is the one owner of presence.
    online: Arc<RwLock<HashSet<String>>>,
    /// Sockets admitted per person: capacity accounting for the per-person limit, counted
    /// before a socket reaches the core. Not presence.
    admitted: Arc<Mutex<HashMap<String, usize>>>,
    /// Open sockets in all.
    sockets: Arc<std::sync::atomic::AtomicUsize>,
}

impl Hub {
    /// Starts the hub task; `joins` receives every join decision.
    pub fn start(
        limits: Limits,
        joins: mpsc::Sender<JoinDecision>,
        stop: CancellationToken,
    ) -> Hub {
        let (tx, rx) = mpsc::channel(INBOX);
        let online = Arc::new(RwLock::new(HashSet::new()));
        tokio::spawn(run(Core::new(limits), rx, joins, online.clone(), stop));
        Hub { tx, online, admitted: Default::default(), sockets: Default::default() }
    }

    async fn send(&self, cmd: Cmd) {
        // Fails only once the hub has stopped (shutdown): nothing is left to tell.
        let _ = self.tx.send(cmd).await;
    }

    pub async fn input(&self, input: Input) {
        self.send(Cmd::Input(input)).await
    }

    /// Opens a consult's call room for its participants.
    pub async fn open_room(&self, room: &str, participants: Vec<String>) {
        self.input(Input::Open { room: room.to_string(), participants }).await
    }

    pub async fn close_room(&self, room: &str) {
        self.input(Input::Close { room: room.to_string() }).await
    }

    /// Tells every socket of `users` that something happened to a consult.
    pub async fn notify(
        &self,
        users: Vec<String>,
        consult: &str,
        event: &'static str,
        state: &'static str,
    ) {
        let msg = ServerMsg::Consult { v: VERSION, consult: consult.to_string(), event, state };
        self.input(Input::Notify { users, msg }).await
    }

    /// Tells every socket of `users` that something happened to a reading request.
    pub async fn notify_reading(
        &self,
        users: Vec<String>,
        reading: &str,
        event: &'static str,
        state: &'static str,
    ) {
        let msg = ServerMsg::Reading { v: VERSION, reading: reading.to_string(), event, state };
        self.input(Input::Notify { users, msg }).await
    }

    /// Tells every socket of `users` that something happened to a critical result.
    pub async fn notify_critical(
        &self,
        users: Vec<String>,
        critical: &str,
        reading: &str,
        event: &'static str,
    ) {
        let msg = ServerMsg::Critical {
            v: VERSION,
            critical: critical.to_string(),
            reading: reading.to_string(),
            event,
        };
        self.input(Input::Notify { users, msg }).await
    }

    /// Tells every socket of `users` that something happened to a training session.
    pub async fn notify_broadcast(&self, users: Vec<String>, broadcast: &str, event: &'static str) {
        let msg = ServerMsg::Broadcast { v: VERSION, broadcast: broadcast.to_string(), event };
        self.input(Input::Notify { users, msg }).await
    }

    /// A new socket of `user`, opened with `credential` (a session's id hash or a token's id).
    pub(super) async fn register(
        &self,
        conn: ConnId,
        user: String,
        credential: String,
        tx: mpsc::Sender<Outgoing>,
    ) {
        self.send(Cmd::Register { conn, user, credential, tx }).await
    }

    /// Closes the sockets whose access has ended (logout, a revoked token, a disabled account).
    pub async fn revoke(&self, which: Revoke) {
        self.send(Cmd::Revoke(which)).await
    }

    /// The credentials (session id hashes, token ids) of the open sockets, once each.
    pub async fn credentials(&self) -> Vec<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Credentials(tx)).await;
        rx.await.unwrap_or_default()
    }

    /// Whether `user` has a socket open now (as the core knows it).
    pub fn is_online(&self, user: &str) -> bool {
        self.online.read().unwrap_or_else(|p| p.into_inner()).contains(user)
    }

    /// Sockets open now.
    pub fn sockets(&self) -> usize {
        self.sockets.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a new socket of `user`, unless they already hold `per_user` or the server
    /// `total`; the guard uncounts it. `Err(true)` when the server is full.
    pub(super) fn admit(
        &self,
        user: &str,
        per_user: usize,
        total: usize,
    ) -> Result<OnlineGuard, bool> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut m = self.admitted.lock().expect("not poisoned");
        let n = m.entry(user.to_string()).or_default();
        if *n >= per_user {
            return Err(false);
        }
        if self.sockets.fetch_add(1, SeqCst) >= total {
            self.sockets.fetch_sub(1, SeqCst);
            return Err(true);
        }
        *n += 1;
        Ok(OnlineGuard {
            admitted: self.admitted.clone(),
            sockets: self.sockets.clone(),
            user: user.to_string(),
        })
    }
}

/// Uncounts a socket when it ends.
pub struct OnlineGuard {
    admitted: Arc<Mutex<HashMap<String, usize>>>,
    sockets: Arc<std::sync::atomic::AtomicUsize>,
    user: String,
}

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        self.sockets.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let mut m = self.admitted.lock().expect("not poisoned");
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

async fn run(
    mut core: Core,
    mut rx: mpsc::Receiver<Cmd>,
    joins: mpsc::Sender<JoinDecision>,
    online: Arc<RwLock<HashSet<String>>>,
    stop: CancellationToken,
) {
    let mut sockets: HashMap<ConnId, Sock> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let inputs = tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => vec![Input::Tick],
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Cmd::Credentials(answer)) => {
                    let set: HashSet<&String> = sockets.values().map(|s| &s.credential).collect();
                    let _ = answer.send(set.into_iter().cloned().collect());
                    continue;
                }
                Some(Cmd::Input(i)) => vec![i],
                Some(Cmd::Register { conn, user, credential, tx }) => {
                    sockets.insert(conn, Sock { tx, user: user.clone(), credential });
                    vec![Input::Connected { conn, user }]
                }
                Some(Cmd::Revoke(which)) => {
                    let ended: Vec<ConnId> = sockets
                        .iter()
                        .filter(|(_, s)| match &which {
                            Revoke::Credential(c) => &s.credential == c,
                            Revoke::User(u) => &s.user == u,
                        })
                        .map(|(c, _)| *c)
                        .collect();
                    ended
                        .into_iter()
                        .map(|conn| {
                            if let Some(s) = sockets.remove(&conn) {
                                let _ = s.tx.try_send(Outgoing::Close("your access has ended"));
                            }
                            Input::Disconnected { conn }
                        })
                        .collect()
                }
            },
        };
        let now = crate::time::now_ms();
        let mut pending: Vec<(i64, Input)> = inputs.into_iter().rev().map(|i| (now, i)).collect();
        for (_, input) in &pending {
            if let Input::Disconnected { conn } = input {
                sockets.remove(conn);
            }
        }
        while let Some((now, input)) = pending.pop() {
            // A message from a socket may be a join, whose decision must reach the consult
            // shell: a place in its bounded queue is taken first, and when there is none the
            // message is refused as `busy` instead of queued without end.
            let mut slot = None;
            if let Input::Text { conn, .. } = &input {
                match joins.try_reserve() {
                    Ok(p) => slot = Some(p),
                    Err(_) => {
                        if let Some(s) = sockets.get(conn) {
                            let msg = ServerMsg::error(
                                "busy",
                                "the server is busy; try again in a moment",
                            );
                            let text = serde_json::to_string(&msg).expect("messages serialise");
                            let _ = s.tx.try_send(Outgoing::Text(text));
                        }
                        continue;
                    }
                }
            }
            for effect in core.handle(now, input) {
                match effect {
                    Effect::Send(conn, msg) => {
                        let Some(s) = sockets.get(&conn) else { continue };
                        let text = serde_json::to_string(&msg).expect("messages serialise");
                        if s.tx.try_send(Outgoing::Text(text)).is_err() {
                            // Too slow (or already gone): close it, and let the core forget
                            // it as if it had dropped.
                            if let Some(s) = sockets.remove(&conn) {
                                let _ = s.tx.try_send(Outgoing::Close("too slow to keep up"));
                            }
                            pending.push((now, Input::Disconnected { conn }));
                        }
                    }
                    Effect::Close(conn, why) => {
                        if let Some(s) = sockets.remove(&conn) {
                            let _ = s.tx.try_send(Outgoing::Close(why));
                        }
                        pending.push((now, Input::Disconnected { conn }));
                    }
                    Effect::Online(user, is) => {
                        let mut set = online.write().unwrap_or_else(|p| p.into_inner());
                        if is {
                            set.insert(user);
                        } else {
                            set.remove(&user);
                        }
                    }
                    Effect::Audit { user, room, allowed } => {
                        // Audited and acted on by the consult shell, through the place taken
                        // above: the hub never waits on the shell (which itself talks to the
                        // hub), and no join goes unrecorded.
                        let d = JoinDecision { user, room, allowed };
                        match slot.take() {
                            Some(p) => p.send(d),
                            None => {
                                tracing::error!("a join decision without a reserved place; dropped")
                            }
                        }
                    }
                }
            }
        }
    }
    for (_, s) in sockets {
        let _ = s.tx.try_send(Outgoing::Close("server shutting down"));
    }
}
