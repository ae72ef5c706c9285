//! Settings: the built-in `config/ferry.toml`, then the file given with `--config`, then
//! environment variables `FERRY__<SECTION>__<KEY>`. This is the only module that reads
//! configuration files and the environment. Every problem is reported with the key it concerns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

mod layering;
mod targets;

pub use layering::DEFAULTS;
pub use targets::Targets;

/// A configuration problem, naming the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key { key: key.to_string(), message: message.into() }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the stores and the relay are: resolved once, when the settings load.
    #[serde(skip)]
    pub targets: Targets,
    pub http: HttpSettings,
    pub data: DataSettings,
    pub database: DatabaseSettings,
    pub objects: ObjectSettings,
    pub auth: AuthSettings,
    pub dicomweb: DicomwebSettings,
    pub dimse: DimseSettings,
    pub viewer: ViewerSettings,
    pub turn: TurnSettings,
    pub consult: ConsultSettings,
    pub reading: ReadingSettings,
    pub signal: SignalSettings,
    pub media: MediaSettings,
    pub log: LogSettings,
}

/// The media plane of training broadcasts (`docs/broadcasts.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// The one UDP address every broadcast's media goes through (port 0: any free port).
    pub udp_addr: String,
    /// Comma-separated addresses to announce to browsers (the public IPs in front of
    /// `udp_addr`, same port). Empty: `udp_addr`'s own IP, or when that is unspecified
    /// (0.0.0.0), the IP the browser reached Ferry's web server at.
    pub public_ips: String,
    /// Threads that carry media; each broadcast stays on one. 0: one per core.
    #[serde(deserialize_with = "lenient")]
    pub workers: usize,
    /// Record every presenter (WebM, filed in the object store when they stop).
    #[serde(deserialize_with = "lenient")]
    pub record: bool,
    /// A media connection not made this many seconds after its offer is dropped (its client
    /// never reached the UDP port).
    #[serde(deserialize_with = "lenient")]
    pub connect_timeout_secs: u64,
    /// A connection whose link has been down this many seconds is dropped, and its attendance
    /// closed.
    #[serde(deserialize_with = "lenient")]
    pub gone_after_secs: u64,
}

impl MediaSettings {
    pub fn udp_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.udp_addr.trim().parse().map_err(|_| format!("not an address:port: {}", self.udp_addr))
    }
    pub fn public_ips(&self) -> Result<Vec<std::net::IpAddr>, String> {
        self.public_ips
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| format!("not an IP address: {s}")))
            .collect()
    }
}

/// Timers of consult requests (`docs/consults.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultSettings {
    /// An unanswered emergency is offered to every specialist of the specialty after this.
    #[serde(deserialize_with = "lenient")]
    pub emergency_escalate_secs: u64,
    /// An unanswered emergency expires after this.
    #[serde(deserialize_with = "lenient")]
    pub emergency_expire_secs: u64,
    /// Any other unanswered request expires after this.
    #[serde(deserialize_with = "lenient")]
    pub expire_hours: u64,
}

/// Reading centres (`docs/reading.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingSettings {
    /// A routed study with no new instance for this long is ready for reading.
    #[serde(deserialize_with = "lenient")]
    pub quiet_secs: u64,
    /// A claim with no activity (draft saved, claim renewed) for this long is released.
    #[serde(deserialize_with = "lenient")]
    pub claim_idle_minutes: u64,
    /// Service levels: minutes from ready to signed, per priority.
    #[serde(deserialize_with = "lenient")]
    pub sla_stat_minutes: u64,
    #[serde(deserialize_with = "lenient")]
    pub sla_urgent_minutes: u64,
    #[serde(deserialize_with = "lenient")]
    pub sla_routine_minutes: u64,
    /// A critical result unacknowledged this long escalates.
    #[serde(deserialize_with = "lenient")]
    pub critical_ack_minutes: u64,
    /// Critical findings a reader may mark, per kind (codes; the web catalogue names them).
    pub critical_ecg: Vec<String>,
    pub critical_imaging: Vec<String>,
    /// Coded conclusions offered for ECG reports.
    pub ecg_conclusions: Vec<String>,
    /// Juniors draft and submit, seniors (people with the `senior` specialty) sign.
    #[serde(deserialize_with = "lenient")]
    pub two_step: bool,
    /// Printed reports give times at this offset from UTC (minutes; China: 480).
    #[serde(deserialize_with = "lenient")]
    pub report_utc_offset_minutes: i64,
}

/// Limits of the signalling WebSocket (`docs/signalling.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSettings {
    /// How often open sockets are checked against their session's or token's expiry.
    #[serde(deserialize_with = "lenient")]
    pub access_check_secs: u64,
    #[serde(deserialize_with = "lenient")]
    pub max_message_kib: usize,
    #[serde(deserialize_with = "lenient")]
    pub burst: u32,
    #[serde(deserialize_with = "lenient")]
    pub per_second: u32,
    #[serde(deserialize_with = "lenient")]
    pub max_rooms_per_user: usize,
    #[serde(deserialize_with = "lenient")]
    pub grace_secs: u64,
    #[serde(deserialize_with = "lenient")]
    pub strikes_to_close: u32,
    /// Open sockets at once, across everyone; more are refused with 503.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// Open sockets of one person at once.
    #[serde(deserialize_with = "lenient")]
    pub max_connections_per_user: usize,
}

/// ICE servers handed to call pages (`GET /api/turn`), with TURN credentials in coturn's REST
/// scheme when a shared secret is set.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSettings {
    /// Comma-separated `stun:`, `turn:` and `turns:` URLs.
    pub urls: String,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
    #[serde(deserialize_with = "lenient")]
    pub ttl_secs: u64,
    /// Tell call pages to use relayed candidates only (`iceTransportPolicy: "relay"`): hides
    /// the endpoints' addresses from each other, and gets through firewalls that allow only
    /// the TURN server.
    #[serde(deserialize_with = "lenient")]
    pub relay_only: bool,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("urls", &self.urls)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("secret_file", &self.secret_file)
            .field("ttl_secs", &self.ttl_secs)
            .field("relay_only", &self.relay_only)
            .finish()
    }
}

/// The ICE servers and TURN secret, resolved once at start.
#[derive(Debug, Clone)]
pub struct Turn {
    pub stun: Vec<String>,
    pub turn: Vec<String>,
    pub secret: Option<Secret>,
    pub ttl_secs: u64,
    pub relay_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewerSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimseSettings {
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient")]
    pub addr: SocketAddr,
    pub ae_title: String,
    #[serde(deserialize_with = "lenient")]
    pub accept_unknown_callers: bool,
    #[serde(deserialize_with = "lenient")]
    pub max_pdu_length: u32,
    #[serde(deserialize_with = "lenient")]
    pub idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomwebSettings {
    #[serde(deserialize_with = "lenient")]
    pub max_instance_mib: u64,
    #[serde(deserialize_with = "lenient")]
    pub max_request_mib: u64,
    #[serde(deserialize_with = "lenient")]
    pub max_results: u32,
    #[serde(deserialize_with = "lenient")]
    pub ingest_parallelism: usize,
    #[serde(deserialize_with = "lenient")]
    pub max_bundle_entries: u32,
    /// Memory (MiB) that requests holding whole instances may take together (frames and bulk
    /// values the indexes built at ingest cannot serve: big endian, deflated).
    #[serde(deserialize_with = "lenient")]
    pub whole_file_budget_mib: u64,
    /// What a different instance under a stored SOP Instance UID does.
    pub on_duplicate: OnDuplicate,
}

/// What a different instance sent under a stored SOP Instance UID does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Refused with status 0x0111.
    Refuse,
    /// Replaces the stored one (same study and series), audited as `imaging.replaced`.
    Replace,
}

impl DicomwebSettings {
    /// Whether a different instance under a stored SOP Instance UID replaces it.
    pub fn replaces(&self) -> bool {
        self.on_duplicate == OnDuplicate::Replace
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(deserialize_with = "lenient")]
    pub addr: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(deserialize_with = "lenient")]
    pub max_body_bytes: usize,
    #[serde(deserialize_with = "lenient")]
    pub shutdown_grace_secs: u64,
    /// A request whose body sends no byte for this long is ended (a cut link must not hold an
    /// upload busy for ever).
    #[serde(deserialize_with = "lenient")]
    pub body_stall_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    #[serde(deserialize_with = "lenient")]
    pub max_connections: u32,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSettings {
    pub url: String,
    pub s3: S3Settings,
    /// Instance objects that no index row references are removed once they are this old
    /// (bytes of a refused or crashed store).
    #[serde(deserialize_with = "lenient")]
    pub orphan_grace_minutes: u64,
    /// How often the orphan sweeper runs.
    #[serde(deserialize_with = "lenient")]
    pub sweep_minutes: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    #[serde(deserialize_with = "lenient")]
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(deserialize_with = "lenient")]
    pub session_idle_minutes: u64,
    #[serde(deserialize_with = "lenient")]
    pub session_max_hours: u64,
    #[serde(deserialize_with = "lenient")]
    pub max_failed_logins: u32,
    #[serde(deserialize_with = "lenient")]
    pub lockout_minutes: u64,
    #[serde(deserialize_with = "lenient")]
    pub login_attempts_per_minute: u32,
    #[serde(deserialize_with = "lenient")]
    pub argon2_memory_kib: u32,
    #[serde(deserialize_with = "lenient")]
    pub argon2_iterations: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the SQL database lives, parsed from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Where objects live, parsed from `objects.url`.
#[derive(Debug, Clone)]
pub enum ObjectTarget {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: String,
        secret_access_key: Secret,
        allow_http: bool,
    },
}

/// A credential: kept out of Debug output so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Accepts a value of its own type or a string that parses as one: environment variables are
/// always strings, while TOML files carry typed values.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Str(String),
        Val(T),
    }
    match Either::<T>::deserialize(d)? {
        Either::Val(v) => Ok(v),
        Either::Str(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

impl Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(_), None) => {
                return Err(key_err("http.tls_key", "required when http.tls_cert is set"));
            }
            (None, Some(_)) => {
                return Err(key_err("http.tls_cert", "required when http.tls_key is set"));
            }
            (Some(c), Some(k)) => {
                for (key, p) in [("http.tls_cert", c), ("http.tls_key", k)] {
                    if !p.is_file() {
                        return Err(key_err(key, format!("no such file: {}", p.display())));
                    }
                }
            }
            (None, None) => {}
        }
        self.media.udp_addr().map_err(|e| key_err("media.udp_addr", e))?;
        self.media.public_ips().map_err(|e| key_err("media.public_ips", e))?;
        if self.http.max_body_bytes < 1024 {
            return Err(key_err("http.max_body_bytes", "must be at least 1024"));
        }
        if self.database.max_connections == 0 {
            return Err(key_err("database.max_connections", "must be at least 1"));
        }
        if self.auth.session_idle_minutes == 0 {
            return Err(key_err("auth.session_idle_minutes", "must be at least 1"));
        }
        if self.auth.max_failed_logins == 0 {
            return Err(key_err("auth.max_failed_logins", "must be at least 1"));
        }
        if self.auth.login_attempts_per_minute == 0 {
            return Err(key_err("auth.login_attempts_per_minute", "must be at least 1"));
        }
        if self.auth.argon2_memory_kib < 8 || self.auth.argon2_iterations == 0 {
            return Err(key_err(
                "auth.argon2_memory_kib",
                "argon2 cost too low (memory ≥ 8 KiB, iterations ≥ 1)",
            ));
        }
        if self.dicomweb.max_instance_mib == 0 || self.dicomweb.max_request_mib == 0 {
            return Err(key_err("dicomweb.max_instance_mib", "size limits must be at least 1 MiB"));
        }
        if !(1..=64).contains(&self.dicomweb.ingest_parallelism) {
            return Err(key_err("dicomweb.ingest_parallelism", "must be between 1 and 64"));
        }
        if self.http.body_stall_secs == 0 {
            return Err(key_err("http.body_stall_secs", "must be at least 1"));
        }
        if self.objects.orphan_grace_minutes < 5 {
            return Err(key_err(
                "objects.orphan_grace_minutes",
                "must be at least 5 (a store in progress must never look orphaned)",
            ));
        }
        if self.dicomweb.max_bundle_entries == 0 {
            return Err(key_err("dicomweb.max_bundle_entries", "must be at least 1"));
        }
        if self.dicomweb.max_results == 0 {
            return Err(key_err("dicomweb.max_results", "must be at least 1"));
        }
        let ae = self.dimse.ae_title.trim();
        if ae.is_empty()
            || ae.len() > 16
            || ae.contains('\\')
            || !ae.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(key_err(
                "dimse.ae_title",
                "must be 1 to 16 printable ASCII characters without backslash",
            ));
        }
        if !(4096..=131_072).contains(&self.dimse.max_pdu_length) {
            return Err(key_err("dimse.max_pdu_length", "must be between 4096 and 131072"));
        }
        let r = &self.reading;
        if !(1..=86_400).contains(&r.quiet_secs) {
            return Err(key_err("reading.quiet_secs", "must be between 1 and 86400 (a day)"));
        }
        if !(1..=1_440).contains(&r.claim_idle_minutes) {
            return Err(key_err("reading.claim_idle_minutes", "must be between 1 and 1440"));
        }
        for (key, v) in [
            ("reading.sla_stat_minutes", r.sla_stat_minutes),
            ("reading.sla_urgent_minutes", r.sla_urgent_minutes),
            ("reading.sla_routine_minutes", r.sla_routine_minutes),
        ] {
            if !(1..=43_200).contains(&v) {
                return Err(key_err(key, "must be between 1 and 43200 (30 days)"));
            }
        }
        if !(-720..=840).contains(&r.report_utc_offset_minutes) {
            return Err(key_err(
                "reading.report_utc_offset_minutes",
                "must be between -720 and 840",
            ));
        }
        if !(1..=1_440).contains(&r.critical_ack_minutes) {
            return Err(key_err("reading.critical_ack_minutes", "must be between 1 and 1440"));
        }
        for (key, list) in [
            ("reading.critical_ecg", &r.critical_ecg),
            ("reading.critical_imaging", &r.critical_imaging),
            ("reading.ecg_conclusions", &r.ecg_conclusions),
        ] {
            let code = |c: &String| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            };
            if list.is_empty() || !list.iter().all(code) {
                return Err(key_err(key, "must be a non-empty list of codes (a-z, 0-9, _)"));
            }
        }
        let c = &self.consult;
        if c.emergency_escalate_secs == 0 || c.emergency_expire_secs <= c.emergency_escalate_secs {
            return Err(key_err(
                "consult.emergency_expire_secs",
                "must be longer than consult.emergency_escalate_secs (at least 1)",
            ));
        }
        if c.emergency_expire_secs > 7 * 86_400 {
            return Err(key_err(
                "consult.emergency_expire_secs",
                "must be at most 604800 (a week)",
            ));
        }
        if !(1..=8_760).contains(&c.expire_hours) {
            return Err(key_err("consult.expire_hours", "must be between 1 and 8760 (a year)"));
        }

        let g = &self.signal;
        if g.grace_secs > 3_600 {
            return Err(key_err("signal.grace_secs", "must be at most 3600"));
        }
        for (key, v) in [
            ("signal.max_message_kib", g.max_message_kib as u64),
            ("signal.burst", g.burst as u64),
            ("signal.per_second", g.per_second as u64),
            ("signal.max_rooms_per_user", g.max_rooms_per_user as u64),
            ("signal.strikes_to_close", g.strikes_to_close as u64),
            ("signal.max_connections", g.max_connections as u64),
            ("signal.max_connections_per_user", g.max_connections_per_user as u64),
        ] {
            if v == 0 {
                return Err(key_err(key, "must be at least 1"));
            }
        }
        if let Err(e) = self.log.level.parse::<tracing_subscriber::filter::EnvFilter>() {
            return Err(key_err("log.level", e.to_string()));
        }
        Ok(())
    }

    pub fn tls_enabled(&self) -> bool {
        self.http.tls_cert.is_some()
    }

    /// Where the SQL database is (resolved when the settings loaded).
    pub fn database_target(&self) -> &DatabaseTarget {
        &self.targets.database
    }

    /// Where objects are kept (resolved when the settings loaded).
    pub fn object_target(&self) -> &ObjectTarget {
        &self.targets.objects
    }

    /// The ICE servers and the TURN secret (resolved when the settings loaded).
    pub fn turn_target(&self) -> &Turn {
        &self.targets.turn
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_load_and_point_at_embedded_stores() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.http.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            s.database_target().clone(),
            DatabaseTarget::Sqlite(PathBuf::from("./data/ferry.db"))
        );
        assert!(
            matches!(s.object_target(), ObjectTarget::Local(p) if p == Path::new("./data/objects"))
        );
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.toml");
        std::fs::write(&f, "[http]\naddr = \"127.0.0.1:9000\"\n[auth]\nmax_failed_logins = 3\n")
            .unwrap();
        let s =
            Settings::load(Some(&f), env(&[("FERRY__HTTP__ADDR", "127.0.0.1:0"), ("OTHER", "x")]))
                .unwrap();
        assert_eq!(s.http.addr.port(), 0);
        assert_eq!(s.auth.max_failed_logins, 3);
        let s = Settings::load(None, env(&[("FERRY__AUTH__LOCKOUT_MINUTES", "7")])).unwrap();
        assert_eq!(s.auth.lockout_minutes, 7);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("FERRY__HTTP__ADDR", "not-an-address")], "http.addr"),
            (&[("FERRY__HTTP__ADRR", "x")], "adrr"),
            (&[("FERRY__DATABASE__URL", "mysql://x")], "database.url"),
            (&[("FERRY__OBJECTS__URL", "s3://bucket")], "objects.s3.access_key_id"),
            (&[("FERRY__AUTH__MAX_FAILED_LOGINS", "many")], "auth.max_failed_logins"),
            (&[("FERRY__HTTP__TLS_CERT", "/nonexistent.pem")], "http.tls_key"),
            (&[("FERRY__LOG__FORMAT", "xml")], "log.format"),
            (
                &[
                    ("FERRY__OBJECTS__URL", "s3://b"),
                    ("FERRY__OBJECTS__S3__ACCESS_KEY_ID", "k"),
                    ("FERRY__OBJECTS__S3__SECRET_ACCESS_KEY", "s"),
                    ("FERRY__OBJECTS__S3__ENDPOINT", "http://127.0.0.1:3900"),
                ],
                "objects.s3.endpoint",
            ),
        ];
        for (vars, key) in cases {
            let err = Settings::load(None, env(vars)).unwrap_err().to_string();
            assert!(err.contains(key), "{vars:?}: error `{err}` does not name `{key}`");
        }
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        let s = Settings::load(
            None,
            env(&[
                ("FERRY__OBJECTS__URL", "s3://bucket/pre/fix/"),
                ("FERRY__OBJECTS__S3__ACCESS_KEY_ID", "key"),
                ("FERRY__OBJECTS__S3__SECRET_ACCESS_KEY_FILE", f.to_str().unwrap()),
            ]),
        )
        .unwrap();
        match s.object_target() {
            ObjectTarget::S3 { bucket, prefix, secret_access_key, .. } => {
                assert_eq!(bucket, "bucket");
                assert_eq!(prefix, "pre/fix");
                assert_eq!(secret_access_key.0, "s3cret");
                assert_eq!(format!("{secret_access_key:?}"), "[redacted]");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{:?}", s.objects.s3).contains("s3cret"));
    }
}
