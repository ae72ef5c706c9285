//! The SQL port. One `sqlx::AnyPool` serves both dialects: queries use `$1`-style
//! placeholders (which SQLite and PostgreSQL both accept), integers are 64-bit and times are
//! unix milliseconds, so the same query text runs on either. Schema differences live in one
//! migration set per dialect under `migrations/`.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseTarget;

/// The error of a database operation, as shells name it (they hold no SQL themselves).
pub type DbError = sqlx::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot create the database directory {path}: {source}")]
    Dir { path: String, source: std::io::Error },
    #[error("cannot connect to the {backend} database: {source}")]
    Connect { backend: &'static str, source: sqlx::Error },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration { version: i64, name: &'static str, source: sqlx::Error },
    #[error(
        "the database schema is at version {found}, newer than this binary knows ({known}); upgrade Ferry"
    )]
    TooNew { found: i64, known: i64 },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A connection pool plus the dialect behind it.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every schema change, in order. Each is applied once, in its own transaction.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "network, auth, audit",
        sqlite: include_str!("../../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "imaging archive index",
        sqlite: include_str!("../../migrations/sqlite/0002_archive.sql"),
        postgres: include_str!("../../migrations/postgres/0002_archive.sql"),
    },
    Migration {
        version: 3,
        name: "instance metadata and frame index",
        sqlite: include_str!("../../migrations/sqlite/0003_instance_metadata.sql"),
        postgres: include_str!("../../migrations/postgres/0003_instance_metadata.sql"),
    },
    Migration {
        version: 4,
        name: "resumable uploads",
        sqlite: include_str!("../../migrations/sqlite/0004_uploads.sql"),
        postgres: include_str!("../../migrations/postgres/0004_uploads.sql"),
    },
    Migration {
        version: 5,
        name: "case-insensitive search indexes",
        sqlite: include_str!("../../migrations/sqlite/0005_search_indexes.sql"),
        postgres: include_str!("../../migrations/postgres/0005_search_indexes.sql"),
    },
    Migration {
        version: 6,
        name: "consults",
        sqlite: include_str!("../../migrations/sqlite/0006_consults.sql"),
        postgres: include_str!("../../migrations/postgres/0006_consults.sql"),
    },
    Migration {
        version: 7,
        name: "bulk data index",
        sqlite: include_str!("../../migrations/sqlite/0007_bulk_index.sql"),
        postgres: include_str!("../../migrations/postgres/0007_bulk_index.sql"),
    },
    Migration {
        version: 8,
        name: "ECG records",
        sqlite: include_str!("../../migrations/sqlite/0008_ecgs.sql"),
        postgres: include_str!("../../migrations/postgres/0008_ecgs.sql"),
    },
    Migration {
        version: 9,
        name: "device tokens",
        sqlite: include_str!("../../migrations/sqlite/0009_device_tokens.sql"),
        postgres: include_str!("../../migrations/postgres/0009_device_tokens.sql"),
    },
    Migration {
        version: 10,
        name: "reading centres",
        sqlite: include_str!("../../migrations/sqlite/0010_reading.sql"),
        postgres: include_str!("../../migrations/postgres/0010_reading.sql"),
    },
    Migration {
        version: 11,
        name: "training broadcasts",
        sqlite: include_str!("../../migrations/sqlite/0011_broadcasts.sql"),
        postgres: include_str!("../../migrations/postgres/0011_broadcasts.sql"),
    },
    Migration {
        version: 12,
        name: "broadcast questions and hands",
        sqlite: include_str!("../../migrations/sqlite/0012_broadcast_questions.sql"),
        postgres: include_str!("../../migrations/postgres/0012_broadcast_questions.sql"),
    },
    Migration {
        version: 13,
        name: "broadcast materials",
        sqlite: include_str!("../../migrations/sqlite/0013_broadcast_materials.sql"),
        postgres: include_str!("../../migrations/postgres/0013_broadcast_materials.sql"),
    },
];

impl Db {
    /// Opens a pool. SQLite files (and their directory) are created when missing and run in
    /// WAL mode with foreign keys on.
    pub async fn connect(target: &DatabaseTarget, max_connections: u32) -> Result<Db, SqlError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match target {
            DatabaseTarget::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| SqlError::Dir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                (format!("sqlite://{}?mode=rwc", path.display()), Backend::Sqlite)
            }
            DatabaseTarget::Postgres(url) => (url.clone(), Backend::Postgres),
        };
        let opts: AnyConnectOptions =
            url.parse().map_err(|source| SqlError::Connect { backend: backend.name(), source })?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|source| SqlError::Connect { backend: backend.name(), source })?;
        Ok(Db { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Is the database answering? Used by `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Applies pending migrations; returns how many ran. Safe to call from several nodes at
    /// once on PostgreSQL (an advisory lock serialises them).
    pub async fn migrate(&self) -> Result<usize, SqlError> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_lock(7263390011)").await?;
        }
        let result = self.migrate_locked(&mut conn).await;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_unlock(7263390011)").await?;
        }
        result
    }

    async fn migrate_locked(&self, conn: &mut sqlx::AnyConnection) -> Result<usize, SqlError> {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ferry_migrations (\
               version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM ferry_migrations")
            .fetch_one(&mut *conn)
            .await?;
        let current = current.unwrap_or(0);
        let known = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
        if current > known {
            return Err(SqlError::TooNew { found: current, known });
        }
        let mut ran = 0;
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let fail = |source| SqlError::Migration { version: m.version, name: m.name, source };
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
            sqlx::query(
                "INSERT INTO ferry_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(crate::time::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
            ran += 1;
        }
        Ok(ran)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Is this error a unique-constraint violation (on either dialect)?
/// A text column parsed into a word or an id (`Role`, `SiteId`, a state…); a value that does
/// not parse is a decoding error naming the column.
pub fn parsed<T: std::str::FromStr>(row: &sqlx::any::AnyRow, col: &str) -> Result<T, sqlx::Error> {
    use sqlx::Row;
    let s: String = row.try_get(col)?;
    s.parse().map_err(|_| sqlx::Error::Decode(format!("bad value in column {col}").into()))
}

/// The same for a column that may be NULL.
pub fn parsed_opt<T: std::str::FromStr>(
    row: &sqlx::any::AnyRow,
    col: &str,
) -> Result<Option<T>, sqlx::Error> {
    use sqlx::Row;
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        s.parse().map_err(|_| sqlx::Error::Decode(format!("bad value in column {col}").into()))
    })
    .transpose()
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Is this error a foreign-key violation (on either dialect)?
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_foreign_key_violation(),
        _ => false,
    }
}
