//! Training broadcasts (`docs/broadcasts.md`): sessions a trainer of the lead hospital
//! schedules for an audience of member sites — each a site alone, or a site and every site
//! below it. This module holds the session, who may see it, and its calendar entry; `store`
//! keeps sessions, `http` serves them. The media (WHIP/WHEP through the SFU) is `crate::sfu`.

pub mod attendance;
pub mod health;
pub mod http;
pub mod http_health;
pub mod http_library;
pub mod http_materials;
pub mod http_questions;
pub mod http_stage;
pub mod materials;
pub mod questions;
pub mod store;

use std::collections::HashSet;

use serde::Serialize;

use crate::network::{SiteId, UserId};

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 4000;
pub const MAX_AUDIENCE: usize = 200;
/// The length a session is expected to run when the trainer does not say.
pub const DEFAULT_MINUTES: i64 = 60;

pub fn is_broadcast_id(s: &str) -> bool {
    crate::ids::is_prefixed_id(s, "bc_")
}

pub fn new_broadcast_id() -> String {
    crate::ids::prefixed_id("bc_")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Scheduled,
    Live,
    Ended,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Live => "live",
            State::Ended => "ended",
            State::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "scheduled" => State::Scheduled,
            "live" => State::Live,
            "ended" => State::Ended,
            "cancelled" => State::Cancelled,
            _ => return None,
        })
    }
}

/// One entry of a session's audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudienceEntry {
    pub site: SiteId,
    /// The site and every site below it.
    pub subtree: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: String,
    /// The trainer's site: the session belongs to it.
    pub site: SiteId,
    pub trainer: UserId,
    pub title: String,
    pub description: String,
    /// Unix milliseconds.
    pub starts_at: i64,
    pub minutes: i64,
    pub state: State,
    pub audience: Vec<AudienceEntry>,
    pub created_at: i64,
}

impl Broadcast {
    pub fn ends_at(&self) -> i64 {
        self.starts_at + self.minutes * 60_000
    }
}

/// The sites that see a session: its own, and its audience with subtrees expanded
/// (`below(site)` gives a site's descendants).
pub fn audience_sites(b: &Broadcast, below: impl Fn(&SiteId) -> HashSet<SiteId>) -> Vec<SiteId> {
    let mut out: Vec<SiteId> = vec![];
    for e in &b.audience {
        if e.subtree {
            out.extend(below(&e.site));
        }
        out.push(e.site.clone());
    }
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out.dedup();
    out.retain(|s| *s != b.site);
    out
}

/// Text for a calendar property (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines
/// escaped.
fn ics_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A content line folded at 75 octets (RFC 5545 §3.1), never inside a UTF-8 character.
fn ics_line(out: &mut String, line: &str) {
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
}

fn ics_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The session as an iCalendar file with one event, for the member sites' calendars.
/// `trainer_name` is the organiser as people know them; `url` the session's page.
pub fn ics(b: &Broadcast, trainer_name: &str, url: &str, now: i64) -> String {
    let mut out = String::new();
    for line in [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//Ferry//Training broadcasts//EN".into(),
        "CALSCALE:GREGORIAN".into(),
        "METHOD:PUBLISH".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:{}@ferry", b.id),
        format!("DTSTAMP:{}", ics_time(now)),
        format!("DTSTART:{}", ics_time(b.starts_at)),
        format!("DTEND:{}", ics_time(b.ends_at())),
        format!("SUMMARY:{}", ics_text(&b.title)),
        format!("DESCRIPTION:{}", ics_text(&b.description)),
        format!("ORGANIZER;CN={}:urn:ferry:user:{}", ics_text(trainer_name), b.trainer),
        format!("URL:{url}"),
        format!("STATUS:{}", if b.state == State::Cancelled { "CANCELLED" } else { "CONFIRMED" }),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ] {
        ics_line(&mut out, &line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Broadcast {
        Broadcast {
            id: new_broadcast_id(),
            site: "city-hospital".parse().unwrap(),
            trainer: "trainer-sun".parse().unwrap(),
            title: "ECG reading, week 3: AV blocks; a case, questions".into(),
            description: "心电图阅读 第三周\nBring your cases.".into(),
            starts_at: 1_796_205_600_000, // 2026-12-02T10:00:00Z
            minutes: 90,
            state: State::Scheduled,
            audience: vec![
                AudienceEntry { site: "county-hospital".parse().unwrap(), subtree: true },
                AudienceEntry { site: "island-clinic".parse().unwrap(), subtree: false },
            ],
            created_at: 0,
        }
    }

    #[test]
    fn ids_are_recognised() {
        let id = new_broadcast_id();
        assert!(is_broadcast_id(&id));
        assert!(!is_broadcast_id("cs_0123456789abcdef01234567"));
        assert!(!is_broadcast_id(&id[..20]));
    }

    #[test]
    fn the_audience_expands_subtrees_and_leaves_out_the_own_site() {
        let mut b = session();
        b.audience.push(AudienceEntry { site: "city-hospital".parse().unwrap(), subtree: false });
        let sites = audience_sites(&b, |s| {
            if s.as_str() == "county-hospital" {
                ["township-a", "township-b"].iter().map(|x| x.parse().unwrap()).collect()
            } else {
                HashSet::new()
            }
        });
        let names: Vec<&str> = sites.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["county-hospital", "island-clinic", "township-a", "township-b"]);
    }

    #[test]
    fn the_calendar_entry_is_escaped_folded_and_in_utc() {
        let text = ics(&session(), "Sun Wei, MD", "https://ferry.example/#/broadcasts/x", 0);
        assert!(text.contains("DTSTART:20261202T100000Z\r\n"), "{text}");
        assert!(text.contains("DTEND:20261202T113000Z\r\n"), "{text}");
        assert!(text.contains("ORGANIZER;CN=Sun Wei\\, MD:urn:ferry:user:trainer-sun\r\n"));
        // Escaped text, and every physical line at most 75 octets.
        let unfolded = text.replace("\r\n ", "");
        assert!(
            unfolded
                .contains("SUMMARY:ECG reading\\, week 3: AV blocks\\; a case\\, questions\r\n")
        );
        assert!(unfolded.contains("DESCRIPTION:心电图阅读 第三周\\nBring your cases.\r\n"));
        assert!(text.split("\r\n").all(|l| l.len() <= 75), "{text}");
        assert!(text.starts_with("BEGIN:VCALENDAR\r\n") && text.ends_with("END:VCALENDAR\r\n"));
    }
}
