//! The state every handler shares: plain data, opened from the settings. It imports no
//! handler and starts nothing; `server.rs` builds a running server around it, and console
//! commands open only the stores (`Stores`).

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::storage::{Db, Objects};

/// The settings and the two stores: all that a console command needs.
pub struct Stores {
    pub settings: Settings,
    pub db: Db,
    pub objects: Objects,
}

impl Stores {
    /// Connects to the stores and applies pending migrations. Starts no task.
    pub async fn open(settings: Settings) -> anyhow::Result<Stores> {
        let target = settings.database_target().clone();
        let db = Db::connect(&target, settings.database.max_connections).await?;
        db.migrate().await?;
        let objects = Objects::open(settings.object_target())?;
        Ok(Stores { settings, db, objects })
    }
}

/// Shared state of a running server.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub stores: Stores,
    pub metrics: Metrics,
    pub throttle: LoginThrottle,
    /// Uploads being written right now.
    pub uploads_busy: crate::upload::busy::Busy,
    /// Bounds how many frames are decoded at once (one per core): decoding is CPU work on
    /// blocking threads, and a burst of thumbnails must not starve everything else.
    pub decoders: Arc<tokio::sync::Semaphore>,
    /// Bounds the memory taken by requests that must hold a whole instance (what the frame
    /// and bulk indexes cannot serve): one permit per MiB, `dicomweb.whole_file_budget_mib`.
    pub whole_files: Arc<tokio::sync::Semaphore>,
    /// ICE servers and the TURN secret for call pages.
    pub turn: crate::config::Turn,
    /// The signalling hub: call rooms, presence, live consult events.
    pub hub: crate::signal::hub::Hub,
    /// Training broadcasts' media: the SFU's UDP socket and workers.
    pub media: crate::sfu::shell::MediaPlane,
    /// Cancelled to stop the server; long-lived tasks and sockets watch it.
    pub shutdown: CancellationToken,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Deref for Inner {
    type Target = Stores;
    fn deref(&self) -> &Stores {
        &self.stores
    }
}

impl AppState {
    /// The state of a server around opened stores and a started hub.
    pub fn new(
        stores: Stores,
        hub: crate::signal::hub::Hub,
        media: crate::sfu::shell::MediaPlane,
        shutdown: CancellationToken,
    ) -> anyhow::Result<AppState> {
        let throttle = LoginThrottle::new(stores.settings.auth.login_attempts_per_minute);
        let turn = stores.settings.turn_target().clone();
        let budget = stores.settings.dicomweb.whole_file_budget_mib.clamp(1, u32::MAX as u64);
        Ok(AppState(Arc::new(Inner {
            stores,
            metrics: Metrics::default(),
            throttle,
            uploads_busy: Default::default(),
            decoders: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            whole_files: Arc::new(tokio::sync::Semaphore::new(budget as usize)),
            turn,
            hub,
            media,
            shutdown,
        })))
    }
}

/// The client's address, as the listener saw it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);
