//! Where the stores and the TURN relay are, resolved once when the settings load: URLs parsed,
//! secret files read (once, not again at every use), every problem named by its key.

use std::path::{Path, PathBuf};

use super::*;

/// The resolved targets of a loaded configuration.
#[derive(Debug, Clone)]
pub struct Targets {
    pub database: DatabaseTarget,
    pub objects: ObjectTarget,
    pub turn: Turn,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            database: DatabaseTarget::Sqlite(PathBuf::new()),
            objects: ObjectTarget::Local(PathBuf::new()),
            turn: Turn { stun: vec![], turn: vec![], secret: None, ttl_secs: 0, relay_only: false },
        }
    }
}

impl Targets {
    /// Resolves every target of `s`.
    pub(super) fn resolve(s: &Settings) -> Result<Targets, ConfigError> {
        Ok(Targets { database: s.database()?, objects: s.objects()?, turn: s.turn()? })
    }
}

impl Settings {
    pub(super) fn database(&self) -> Result<DatabaseTarget, ConfigError> {
        let raw = self.database.url.trim();
        if raw.is_empty() {
            return Ok(DatabaseTarget::Sqlite(self.data.dir.join("ferry.db")));
        }
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(key_err("database.url", "sqlite URL has no file path"));
            }
            return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let mut url = url::Url::parse(raw)
                .map_err(|e| key_err("database.url", format!("not a valid URL: {e}")))?;
            if url.host_str().is_none_or(|h| h.is_empty()) {
                return Err(key_err("database.url", "postgres URL has no host"));
            }
            if let Some(file) = &self.database.password_file {
                let pw = read_secret(file, "database.password_file")?;
                url.set_password(Some(&pw))
                    .map_err(|_| key_err("database.password_file", "cannot set password"))?;
            }
            return Ok(DatabaseTarget::Postgres(url.to_string()));
        }
        Err(key_err(
            "database.url",
            "must be empty (embedded SQLite), sqlite://PATH or postgres://…",
        ))
    }

    pub(super) fn objects(&self) -> Result<ObjectTarget, ConfigError> {
        let raw = self.objects.url.trim();
        if raw.is_empty() {
            return Ok(ObjectTarget::Local(self.data.dir.join("objects")));
        }
        if let Some(path) = raw.strip_prefix("file://") {
            if path.is_empty() {
                return Err(key_err("objects.url", "file URL has no path"));
            }
            return Ok(ObjectTarget::Local(PathBuf::from(path)));
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(key_err("objects.url", "s3 URL has no bucket"));
            }
            let s3 = &self.objects.s3;
            let access_key_id = secret_value(
                s3.access_key_id.as_deref(),
                s3.access_key_id_file.as_deref(),
                "objects.s3.access_key_id",
            )?;
            let secret_access_key = secret_value(
                s3.secret_access_key.as_deref(),
                s3.secret_access_key_file.as_deref(),
                "objects.s3.secret_access_key",
            )?;
            if let Some(ep) = &s3.endpoint {
                let u = url::Url::parse(ep)
                    .map_err(|e| key_err("objects.s3.endpoint", format!("not a URL: {e}")))?;
                if u.scheme() == "http" && !s3.allow_http {
                    return Err(key_err(
                        "objects.s3.endpoint",
                        "plain http endpoint; set objects.s3.allow_http = true to allow it",
                    ));
                }
            }
            if s3.region.trim().is_empty() {
                return Err(key_err("objects.s3.region", "must not be empty"));
            }
            return Ok(ObjectTarget::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                access_key_id,
                secret_access_key: Secret(secret_access_key),
                allow_http: s3.allow_http,
            });
        }
        Err(key_err(
            "objects.url",
            "must be empty (local directory), file:///PATH or s3://BUCKET[/prefix]",
        ))
    }

    /// The ICE servers: `turn.urls` split by scheme, and the TURN secret (from `turn.secret`
    /// or `turn.secret_file`). TURN URLs without a secret are refused: they could not be used.
    pub(super) fn turn(&self) -> Result<Turn, ConfigError> {
        let t = &self.turn;
        let (mut stun, mut turn) = (vec![], vec![]);
        for u in t.urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            if u.starts_with("stun:") || u.starts_with("stuns:") {
                stun.push(u.to_string());
            } else if u.starts_with("turn:") || u.starts_with("turns:") {
                turn.push(u.to_string());
            } else {
                return Err(key_err(
                    "turn.urls",
                    format!("`{u}` is not a stun:, turn: or turns: URL"),
                ));
            }
        }
        let secret = match (t.secret.as_deref().filter(|s| !s.is_empty()), &t.secret_file) {
            (None, None) => None,
            (inline, file) => Some(Secret(secret_value(inline, file.as_deref(), "turn.secret")?)),
        };
        if !turn.is_empty() && secret.is_none() {
            return Err(key_err(
                "turn.secret",
                "turn: URLs need the shared secret (or turn.secret_file)",
            ));
        }
        if !(60..=86_400).contains(&t.ttl_secs) {
            return Err(key_err("turn.ttl_secs", "must be between 60 and 86400"));
        }
        if t.relay_only && turn.is_empty() {
            return Err(key_err("turn.relay_only", "needs turn: URLs in turn.urls"));
        }
        Ok(Turn { stun, turn, secret, ttl_secs: t.ttl_secs, relay_only: t.relay_only })
    }
}

fn read_secret(path: &Path, key: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| key_err(key, format!("cannot read {}: {e}", path.display())))?;
    let value = text.trim().to_string();
    if value.is_empty() {
        return Err(key_err(key, format!("{} is empty", path.display())));
    }
    Ok(value)
}

fn secret_value(
    inline: Option<&str>,
    file: Option<&Path>,
    key: &str,
) -> Result<String, ConfigError> {
    match (inline.filter(|s| !s.is_empty()), file) {
        (Some(_), Some(_)) => {
            Err(key_err(key, format!("set either {key} or {key}_file, not both")))
        }
        (Some(v), None) => Ok(v.to_string()),
        (None, Some(f)) => read_secret(f, &format!("{key}_file")),
        (None, None) => Err(key_err(key, "required for s3:// object storage (or its _file form)")),
    }
}
