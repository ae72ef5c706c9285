//! The hub: one task that owns the signalling [`Core`] and carries out its effects. Sockets
//! (`ws.rs`) and the consult handlers talk to it through one bounded channel; it answers each
//! socket through that socket's own bounded channel. A socket that cannot keep up (its
//! channel is full) is closed rather than allowed to grow the server's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    Register { conn: ConnId, user: String, credential: String, tx: mpsc::Sender<Outgoing> },
    Revoke(Revoke),
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

#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Cmd>,
    /// Open sockets per person (presence for HTTP answers, and the per-person limit).
    online: Arc<Mutex<HashMap<String, usize>>>,
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
        let (tx, rx) = mpsc::channel(4096);
        let online = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(run(Core::new(limits), rx, joins, stop));
        Hub { tx, online, sockets: Default::default() }
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

    /// Whether `user` has a socket open now.
    pub fn is_online(&self, user: &str) -> bool {
        self.online.lock().expect("not poisoned").get(user).is_some_and(|n| *n > 0)
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
        let mut m = self.online.lock().expect("not poisoned");
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
            online: self.online.clone(),
            sockets: self.sockets.clone(),
            user: user.to_string(),
        })
    }
}

/// Uncounts a socket when it ends.
pub struct OnlineGuard {
    online: Arc<Mutex<HashMap<String, usize>>>,
    sockets: Arc<std::sync::atomic::AtomicUsize>,
    user: String,
}

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        self.sockets.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let mut m = self.online.lock().expect("not poisoned");
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
                    Effect::Audit { user, room, allowed } => {
                        // Audited and acted on by the consult shell. If its queue is full, a
                        // task waits to hand it over: the hub never waits on the shell (which
                        // itself talks to the hub), and no join goes unrecorded.
                        let d = JoinDecision { user, room, allowed };
                        if let Err(mpsc::error::TrySendError::Full(d)) = joins.try_send(d) {
                            let joins = joins.clone();
                            tokio::spawn(async move { joins.send(d).await });
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
