//! The running server: opens the state from the settings, starts the machinery (the signalling
//! hub, the consult timers, DIMSE, housekeeping), binds the listener (plain or TLS), serves
//! until the shutdown token fires, then lets in-flight requests finish within a bound. Only
//! `main` and the tests import this module.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::state::{AppState, ClientAddr, Stores};

/// Opens the stores, starts the signalling hub, the media plane (broadcasts' UDP socket) and
/// the consult timers, and returns the state handlers share.
pub async fn start_state(settings: Settings) -> anyhow::Result<AppState> {
    let stores = Stores::open(settings).await?;
    let shutdown = CancellationToken::new();
    let limits = crate::signal::core::Limits::from(&stores.settings.signal);
    let (joins_tx, joins_rx) = tokio::sync::mpsc::channel(crate::signal::hub::JOINS_QUEUE);
    let hub = crate::signal::hub::Hub::start(limits, joins_tx, shutdown.clone());
    let record_dir = stores
        .settings
        .media
        .record
        .then(|| stores.settings.data.dir.join("recordings-in-progress"));
    let (media, media_events) =
        crate::sfu::shell::MediaPlane::start(&stores.settings.media, record_dir)?;
    let state = AppState::new(stores, hub, media, shutdown)?;
    crate::broadcast::http::start_background(state.clone(), media_events).await?;
    crate::consult::http::start_background(state.clone(), joins_rx).await?;
    crate::reading::http::start_background(state.clone());
    Ok(state)
}

impl Connected<IncomingStream<'_, FerryListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, FerryListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// TCP, or TLS over TCP. TLS handshakes run in their own tasks so a slow client cannot hold up
/// other connections.
pub enum FerryListener {
    Plain(TcpListener),
    Tls { local: SocketAddr, rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> },
}

impl FerryListener {
    async fn bind(settings: &Settings) -> anyhow::Result<FerryListener> {
        let tcp = TcpListener::bind(settings.http.addr)
            .await
            .with_context(|| format!("cannot listen on http.addr {}", settings.http.addr))?;
        let (Some(cert), Some(key)) = (&settings.http.tls_cert, &settings.http.tls_key) else {
            return Ok(FerryListener::Plain(tcp));
        };
        let acceptor = tls_acceptor(cert, key)?;
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handed = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(FerryListener::Tls { local, rx })
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("http.tls_cert: {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .context("http.tls_cert: not a PEM certificate chain")?;
    anyhow::ensure!(!certs.is_empty(), "http.tls_cert: no certificate in {}", cert.display());
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("http.tls_key: {}", key.display()))?,
    ))
    .context("http.tls_key: not a PEM private key")?
    .context("http.tls_key: no private key in the file")?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("http.tls_cert / http.tls_key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Listener for FerryListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self {
            FerryListener::Plain(tcp) => loop {
                match TcpListener::accept(tcp).await {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        return (Either::Left(s), peer);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
            FerryListener::Tls { rx, .. } => match rx.recv().await {
                Some((s, peer)) => (Either::Right(s), peer),
                // The acceptor task only ends if the socket is gone; wait for shutdown.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            FerryListener::Plain(t) => t.local_addr(),
            FerryListener::Tls { local, .. } => Ok(*local),
        }
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    state: AppState,
    listener: FerryListener,
    local_addr: SocketAddr,
    dimse: Option<crate::dimse::DimseServer>,
    dimse_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
}

impl Application {
    /// Opens the stores, runs migrations and binds `http.addr`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener = FerryListener::bind(&settings).await?;
        let local_addr = listener.local_addr()?;
        let dimse = match settings.dimse.enabled {
            true => {
                Some(crate::dimse::DimseServer::bind(settings.dimse.addr).await.with_context(
                    || format!("cannot listen on dimse.addr {}", settings.dimse.addr),
                )?)
            }
            false => None,
        };
        let dimse_addr = dimse.as_ref().map(|d| d.local_addr()).transpose()?;
        let state = start_state(settings).await?;
        let shutdown = state.shutdown.clone();
        Ok(Application { state, listener, local_addr, dimse, dimse_addr, shutdown })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.state.settings.tls_enabled() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Where the DIMSE service listens, when enabled.
    pub fn dimse_addr(&self) -> Option<SocketAddr> {
        self.dimse_addr
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Cancel this to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then waits for in-flight requests for at
    /// most `http.shutdown_grace_secs`.
    pub async fn run(self) -> anyhow::Result<()> {
        let Application { state, listener, shutdown, dimse, .. } = self;
        if let Some(d) = dimse {
            tokio::spawn(d.run(state.clone(), shutdown.clone()));
        }
        let grace = Duration::from_secs(state.settings.http.shutdown_grace_secs);
        spawn_housekeeping(state.clone(), shutdown.clone());
        spawn_socket_expiry(state.clone(), shutdown.clone());
        let app = crate::http::router(state.clone());
        let stop = shutdown.clone();
        let server = axum::serve(listener, app.into_make_service_with_connect_info::<ClientAddr>())
            .with_graceful_shutdown(async move { stop.cancelled().await });
        tokio::select! {
            r = server.into_future() => r.context("server failed")?,
            _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
            }
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Periodic clean-up: ended sessions, and instance bytes that no index row references.
fn spawn_housekeeping(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        let sweep_every = Duration::from_secs(state.settings.objects.sweep_minutes.max(1) * 60);
        let mut sweep = tokio::time::interval(sweep_every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let a = &state.settings.auth;
                    let idle = (a.session_idle_minutes * 60_000) as i64;
                    let max = (a.session_max_hours * 3_600_000) as i64;
                    match crate::auth::sessions::sweep(&state.db, crate::time::now_ms(), idle, max).await {
                        Ok(n) if n > 0 => tracing::info!(ended = n, "ended idle sessions"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "session sweep failed"),
                    }
                }
                _ = sweep.tick() => {
                    let grace = (state.settings.objects.orphan_grace_minutes * 60_000) as i64;
                    match crate::archive::sweep::sweep_orphans(&state.db, &state.objects, crate::time::now_ms(), grace).await {
                        Ok(n) if n > 0 => tracing::info!(removed = n, "removed unreferenced instance bytes"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
                    }
                }
            }
        }
    });
}

/// Ends the sockets whose access expired without anyone saying so: a session that went idle
/// or reached its lifetime, a token past its expiry. (Logout, revocation and disabling an
/// account end them at once; this catches the rest within `signal.access_check_secs`.)
fn spawn_socket_expiry(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.settings.signal.access_check_secs.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let held = state.hub.credentials().await;
            if held.is_empty() {
                continue;
            }
            let (tokens, sessions): (Vec<String>, Vec<String>) =
                held.into_iter().partition(|c| crate::auth::tokens::is_token_id(c));
            let a = &state.settings.auth;
            let now = crate::time::now_ms();
            let idle = (a.session_idle_minutes * 60_000) as i64;
            let max = (a.session_max_hours * 3_600_000) as i64;
            let live_sessions =
                crate::auth::sessions::live(&state.db, &sessions, now, idle, max).await;
            let live_tokens = crate::auth::tokens::live(&state.db, &tokens, now).await;
            let (Ok(live_sessions), Ok(live_tokens)) = (live_sessions, live_tokens) else {
                tracing::warn!("could not check the access of open sockets; will try again");
                continue;
            };
            for c in sessions.into_iter().filter(|c| !live_sessions.contains(c)) {
                state.hub.revoke(crate::signal::hub::Revoke::Credential(c)).await;
            }
            for c in tokens.into_iter().filter(|c| !live_tokens.contains(c)) {
                state.hub.revoke(crate::signal::hub::Revoke::Credential(c)).await;
            }
        }
    });
}
