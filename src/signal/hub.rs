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
    Register { conn: ConnId, user: String, tx: mpsc::Sender<Outgoing> },
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

    pub(super) async fn register(&self, conn: ConnId, user: String, tx: mpsc::Sender<Outgoing>) {
        self.send(Cmd::Register { conn, user, tx }).await
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
    let mut sockets: HashMap<ConnId, mpsc::Sender<Outgoing>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let input = tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => Input::Tick,
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Cmd::Input(i)) => i,
                Some(Cmd::Register { conn, user, tx }) => {
                    sockets.insert(conn, tx);
                    Input::Connected { conn, user }
                }
            },
        };
        if let Input::Disconnected { conn } = &input {
            sockets.remove(conn);
        }
        let mut pending = vec![(crate::time::now_ms(), input)];
        while let Some((now, input)) = pending.pop() {
            for effect in core.handle(now, input) {
                match effect {
                    Effect::Send(conn, msg) => {
                        let Some(tx) = sockets.get(&conn) else { continue };
                        let text = serde_json::to_string(&msg).expect("messages serialise");
                        if tx.try_send(Outgoing::Text(text)).is_err() {
                            // Too slow (or already gone): close it, and let the core forget
                            // it as if it had dropped.
                            if let Some(tx) = sockets.remove(&conn) {
                                let _ = tx.try_send(Outgoing::Close("too slow to keep up"));
                            }
                            pending.push((now, Input::Disconnected { conn }));
                        }
                    }
                    Effect::Close(conn, why) => {
                        if let Some(tx) = sockets.remove(&conn) {
                            let _ = tx.try_send(Outgoing::Close(why));
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
                    Effect::Online(..) => {}
                }
            }
        }
    }
    for (_, tx) in sockets {
        let _ = tx.try_send(Outgoing::Close("server shutting down"));
    }
}
