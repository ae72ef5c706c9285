//! Wall-clock helpers for the IO shells. Domain cores take `now` as an argument instead.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 text for a unix-milliseconds time.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses RFC 3339 (`2026-11-24T10:00:00Z`) or a plain date (`2026-11-24`, midnight UTC).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let ms = 1_795_000_000_123;
        let s = super::rfc3339(ms);
        assert_eq!(super::parse_rfc3339(&s), Some(ms));
        assert_eq!(super::parse_rfc3339("1970-01-02"), Some(86_400_000));
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }
}
