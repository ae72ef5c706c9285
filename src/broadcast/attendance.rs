//! Attendance from what the media plane saw, without I/O: time counts as watched from the first
//! media sent to a viewer, while its connection is up, until it leaves — media received, not a
//! page left open. `Tracker::apply` turns the plane's events into updates for the store; the
//! loop in `http.rs` feeds it and saves them.

use std::collections::HashMap;

use crate::sfu::room::{PeerId, RoomEvent};

/// One media connection's key in the attendance table: the plane's instance (so ids never
/// repeat across restarts) and the peer's id.
pub fn peer_key(instance: &str, peer: PeerId) -> String {
    format!("{instance}-{peer}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Media first reached the peer at `at`.
    FirstMedia { room: String, peer: PeerId, at: i64 },
    /// The peer has watched `ms` in all so far.
    Watched { room: String, peer: PeerId, ms: i64 },
    /// The peer left at `at`, having watched `ms`.
    Left { room: String, peer: PeerId, at: i64, ms: i64 },
}

#[derive(Debug, Default)]
struct Watch {
    /// Counting since (media flowing and the link up).
    since: Option<i64>,
    watched: i64,
    had_media: bool,
    up: bool,
}

impl Watch {
    fn total(&self, now: i64) -> i64 {
        self.watched + self.since.map_or(0, |s| (now - s).max(0))
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    peers: HashMap<(String, PeerId), Watch>,
}

impl Tracker {
    /// One event of `room` at `at` (unix ms).
    pub fn apply(&mut self, room: &str, event: &RoomEvent, at: i64) -> Vec<Update> {
        let key = |p: PeerId| (room.to_string(), p);
        match *event {
            RoomEvent::Connected(p) => {
                let w = self.peers.entry(key(p)).or_default();
                w.up = true;
                vec![]
            }
            RoomEvent::FirstMedia(p) => {
                let w = self.peers.entry(key(p)).or_default();
                w.up = true;
                if w.had_media {
                    return vec![];
                }
                w.had_media = true;
                w.since = Some(at);
                vec![Update::FirstMedia { room: room.to_string(), peer: p, at }]
            }
            RoomEvent::Link(p, up) => {
                let w = self.peers.entry(key(p)).or_default();
                w.up = up;
                match (up, w.since) {
                    (false, Some(s)) => {
                        w.watched += (at - s).max(0);
                        w.since = None;
                        vec![Update::Watched { room: room.to_string(), peer: p, ms: w.watched }]
                    }
                    (true, None) if w.had_media => {
                        w.since = Some(at);
                        vec![]
                    }
                    _ => vec![],
                }
            }
            RoomEvent::Left(p, _) => {
                let w = self.peers.remove(&key(p)).unwrap_or_default();
                vec![Update::Left { room: room.to_string(), peer: p, at, ms: w.total(at) }]
            }
            RoomEvent::Layer(..) | RoomEvent::Recorded(_) => vec![],
        }
    }

    /// What every peer still watching has watched by `now` (saved now and then, so the
    /// figures move while a session runs and a crash loses little).
    pub fn flush(&self, now: i64) -> Vec<Update> {
        self.peers
            .iter()
            .filter(|(_, w)| w.since.is_some())
            .map(|((room, p), w)| Update::Watched {
                room: room.clone(),
                peer: *p,
                ms: w.total(now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_counts_from_first_media_while_the_link_is_up() {
        let mut t = Tracker::default();
        assert!(t.apply("b", &RoomEvent::Connected(1), 1_000).is_empty());
        // A page open without media counts nothing.
        assert_eq!(
            t.apply("b", &RoomEvent::FirstMedia(1), 3_000),
            [Update::FirstMedia { room: "b".into(), peer: 1, at: 3_000 }]
        );
        assert_eq!(t.flush(13_000), [Update::Watched { room: "b".into(), peer: 1, ms: 10_000 }]);
        // A cut of 5 s is not watched.
        assert_eq!(
            t.apply("b", &RoomEvent::Link(1, false), 20_000),
            [Update::Watched { room: "b".into(), peer: 1, ms: 17_000 }]
        );
        assert!(t.flush(24_000).is_empty());
        assert!(t.apply("b", &RoomEvent::Link(1, true), 25_000).is_empty());
        assert_eq!(
            t.apply("b", &RoomEvent::Left(1, "hung up"), 35_000),
            [Update::Left { room: "b".into(), peer: 1, at: 35_000, ms: 27_000 }]
        );
        assert!(t.flush(40_000).is_empty());
    }

    #[test]
    fn a_viewer_that_never_received_media_watched_nothing() {
        let mut t = Tracker::default();
        t.apply("b", &RoomEvent::Connected(7), 1_000);
        t.apply("b", &RoomEvent::Link(7, false), 2_000);
        t.apply("b", &RoomEvent::Link(7, true), 3_000);
        assert_eq!(
            t.apply("b", &RoomEvent::Left(7, "closed"), 9_000),
            [Update::Left { room: "b".into(), peer: 7, at: 9_000, ms: 0 }]
        );
    }
}
