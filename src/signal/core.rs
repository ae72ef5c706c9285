//! The signalling room logic, without I/O: connections come and go, text messages arrive, the
//! clock ticks; out come messages to send, sockets to close and events to audit. Time is an
//! argument, so the tests script whole calls with a fake clock.
//!
//! Rules: a room belongs to one consult and only its participants may join; offers, answers
//! and candidates go to one named participant of the same room, chat to the whole room; a
//! participant whose connection drops keeps their place for `grace_ms` and, on joining again,
//! resumes it (the others are told to renegotiate); every connection has a message size
//! limit and a rate limit, refusals count as strikes and too many strikes close the socket.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::messages::{ClientMsg, Peer, ServerMsg, VERSION};

pub type ConnId = u64;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    /// Messages a connection may send at once, refilled at `per_second`.
    pub burst: u32,
    pub per_second: u32,
    pub max_rooms_per_user: usize,
    /// How long a dropped participant keeps their place (ms).
    pub grace_ms: i64,
    /// Refused messages after which the socket is closed.
    pub strikes_to_close: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            burst: 50,
            per_second: 20,
            max_rooms_per_user: 4,
            grace_ms: 30_000,
            strikes_to_close: 10,
        }
    }
}

impl From<&crate::config::SignalSettings> for Limits {
    fn from(g: &crate::config::SignalSettings) -> Self {
        Limits {
            max_message_bytes: g.max_message_kib * 1024,
            burst: g.burst,
            per_second: g.per_second,
            max_rooms_per_user: g.max_rooms_per_user,
            grace_ms: g.grace_secs as i64 * 1000,
            strikes_to_close: g.strikes_to_close,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A room and who may join it (from the consult that owns it).
    Open {
        room: String,
        participants: Vec<String>,
    },
    /// A room's consult ended: everyone leaves.
    Close {
        room: String,
    },
    Connected {
        conn: ConnId,
        user: String,
    },
    Text {
        conn: ConnId,
        text: String,
    },
    Disconnected {
        conn: ConnId,
    },
    /// Time passes (expires grace periods).
    Tick,
    /// A message for every connection of these people (consult events).
    Notify {
        users: Vec<String>,
        msg: ServerMsg,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(ConnId, ServerMsg),
    Close(ConnId, &'static str),
    /// A person's first connection opened (`true`) or their last one closed (`false`): the
    /// core is the one owner of presence, and the hub publishes these for HTTP answers.
    Online(String, bool),
    /// A join allowed or refused, for the audit trail.
    Audit {
        user: String,
        room: String,
        allowed: bool,
    },
}

struct Conn {
    user: String,
    tokens: f64,
    refilled_at: i64,
    strikes: u32,
}

struct Member {
    conn: Option<ConnId>,
    away_since: Option<i64>,
}

struct Room {
    allowed: HashSet<String>,
    members: BTreeMap<String, Member>,
}

#[derive(Default)]
pub struct Core {
    limits: Limits,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<String, Room>,
    /// Connections of each person.
    by_user: HashMap<String, Vec<ConnId>>,
    /// Connections that asked for presence.
    watchers: HashSet<ConnId>,
}

impl Core {
    pub fn new(limits: Limits) -> Self {
        Core { limits, ..Default::default() }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Tells every watcher that `user` came online or went offline.
    fn presence(&self, user: &str, online: bool, out: &mut Vec<Effect>) {
        out.push(Effect::Online(user.to_string(), online));
        let msg = ServerMsg::Presence {
            v: VERSION,
            users: vec![Peer { user: user.to_string(), online }],
        };
        for c in &self.watchers {
            out.push(Effect::Send(*c, msg.clone()));
        }
    }

    pub fn handle(&mut self, now: i64, input: Input) -> Vec<Effect> {
        let mut out = vec![];
        match input {
            Input::Open { room, participants } => {
                let r = self
                    .rooms
                    .entry(room)
                    .or_insert_with(|| Room { allowed: HashSet::new(), members: BTreeMap::new() });
                r.allowed.extend(participants);
            }
            Input::Close { room } => {
                if let Some(r) = self.rooms.remove(&room) {
                    for conn in r.members.values().filter_map(|m| m.conn) {
                        out.push(Effect::Send(
                            conn,
                            ServerMsg::Left { v: VERSION, room: room.clone() },
                        ));
                    }
                }
            }
            Input::Connected { conn, user } => {
                let burst = self.limits.burst as f64;
                out.push(Effect::Send(conn, ServerMsg::Welcome { v: VERSION, user: user.clone() }));
                let mine = self.by_user.entry(user.clone()).or_default();
                mine.push(conn);
                if mine.len() == 1 {
                    self.presence(&user, true, &mut out);
                }
                self.conns.insert(conn, Conn { user, tokens: burst, refilled_at: now, strikes: 0 });
            }
            Input::Notify { users, msg } => {
                for u in &users {
                    for c in self.by_user.get(u).into_iter().flatten() {
                        out.push(Effect::Send(*c, msg.clone()));
                    }
                }
            }
            Input::Disconnected { conn } => self.drop_conn(now, conn, &mut out),
            Input::Text { conn, text } => self.text(now, conn, &text, &mut out),
            Input::Tick => self.expire(now, &mut out),
        }
        out
    }

    /// A connection went away: its places are kept for the grace period.
    fn drop_conn(&mut self, now: i64, conn: ConnId, out: &mut Vec<Effect>) {
        let Some(c) = self.conns.remove(&conn) else { return };
        self.watchers.remove(&conn);
        if let Some(mine) = self.by_user.get_mut(&c.user) {
            mine.retain(|x| *x != conn);
            if mine.is_empty() {
                self.by_user.remove(&c.user);
                self.presence(&c.user, false, out);
            }
        }
        for (room, r) in &mut self.rooms {
            if let Some(m) = r.members.get_mut(&c.user).filter(|m| m.conn == Some(conn)) {
                m.conn = None;
                m.away_since = Some(now);
                let msg =
                    ServerMsg::PeerAway { v: VERSION, room: room.clone(), user: c.user.clone() };
                broadcast(r, Some(&c.user), &msg, out);
            }
        }
    }

    fn expire(&mut self, now: i64, out: &mut Vec<Effect>) {
        let grace = self.limits.grace_ms;
        for (room, r) in &mut self.rooms {
            let gone: Vec<String> = r
                .members
                .iter()
                .filter(|(_, m)| m.away_since.is_some_and(|t| now - t >= grace))
                .map(|(u, _)| u.clone())
                .collect();
            for user in gone {
                r.members.remove(&user);
                let msg = ServerMsg::PeerLeft { v: VERSION, room: room.clone(), user };
                broadcast(r, None, &msg, out);
            }
        }
    }

    /// A refusal: the error goes back, a strike is counted, and too many close the socket.
    fn refuse(&mut self, conn: ConnId, code: &'static str, detail: &str, out: &mut Vec<Effect>) {
        out.push(Effect::Send(conn, ServerMsg::error(code, detail)));
        let strikes = self.conns.get_mut(&conn).map(|c| {
            c.strikes += 1;
            c.strikes
        });
        if strikes.is_some_and(|s| s >= self.limits.strikes_to_close) {
            out.push(Effect::Close(conn, "too many refused messages"));
        }
    }

    fn text(&mut self, now: i64, conn: ConnId, text: &str, out: &mut Vec<Effect>) {
        let (per_second, burst) = (self.limits.per_second as f64, self.limits.burst as f64);
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.tokens =
            (c.tokens + (now - c.refilled_at).max(0) as f64 * per_second / 1000.0).min(burst);
        c.refilled_at = now;
        if c.tokens < 1.0 {
            return self.refuse(conn, "rate_limited", "too many messages; slow down", out);
        }
        c.tokens -= 1.0;
        let user = c.user.clone();
        if text.len() > self.limits.max_message_bytes {
            let detail = format!("messages are at most {} bytes", self.limits.max_message_bytes);
            return self.refuse(conn, "message_too_large", &detail, out);
        }
        let msg: ClientMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => {
                return self.refuse(
                    conn,
                    "invalid_message",
                    "not a signalling message (docs/signalling.md)",
                    out,
                );
            }
        };
        if msg.version() != VERSION {
            return self.refuse(conn, "unsupported_version", "this server speaks version 1", out);
        }
        match msg {
            ClientMsg::Join { room, .. } => self.join(conn, &user, room, out),
            ClientMsg::Leave { room, .. } => {
                let left = self
                    .rooms
                    .get_mut(&room)
                    .filter(|r| r.members.get(&user).is_some_and(|m| m.conn == Some(conn)));
                match left {
                    Some(r) => {
                        r.members.remove(&user);
                        let msg = ServerMsg::PeerLeft { v: VERSION, room: room.clone(), user };
                        broadcast(r, None, &msg, out);
                        out.push(Effect::Send(conn, ServerMsg::Left { v: VERSION, room }));
                    }
                    None => self.refuse(conn, "not_in_room", "you are not in that room", out),
                }
            }
            ClientMsg::Offer { room, to, sdp, .. } => {
                let m =
                    ServerMsg::Offer { v: VERSION, room: room.clone(), from: user.clone(), sdp };
                self.relay(conn, &user, &room, &to, m, out)
            }
            ClientMsg::Answer { room, to, sdp, .. } => {
                let m =
                    ServerMsg::Answer { v: VERSION, room: room.clone(), from: user.clone(), sdp };
                self.relay(conn, &user, &room, &to, m, out)
            }
            ClientMsg::Candidate { room, to, candidate, .. } => {
                let m = ServerMsg::Candidate {
                    v: VERSION,
                    room: room.clone(),
                    from: user.clone(),
                    candidate,
                };
                self.relay(conn, &user, &room, &to, m, out)
            }
            ClientMsg::Watch { presence, .. } => {
                if presence {
                    self.watchers.insert(conn);
                    let users = self
                        .by_user
                        .keys()
                        .map(|u| Peer { user: u.clone(), online: true })
                        .collect();
                    out.push(Effect::Send(conn, ServerMsg::Presence { v: VERSION, users }));
                } else {
                    self.watchers.remove(&conn);
                }
            }
            ClientMsg::Chat { room, text, .. } => match self.member_room(conn, &user, &room) {
                Some(r) => {
                    let m = ServerMsg::Chat { v: VERSION, room, from: user, text, at: now };
                    broadcast(r, None, &m, out);
                }
                None => self.refuse(conn, "not_in_room", "you are not in that room", out),
            },
        }
    }

    /// The room, if `user` is in it on this connection.
    fn member_room(&mut self, conn: ConnId, user: &str, room: &str) -> Option<&mut Room> {
        self.rooms
            .get_mut(room)
            .filter(|r| r.members.get(user).is_some_and(|m| m.conn == Some(conn)))
    }

    fn join(&mut self, conn: ConnId, user: &str, room: String, out: &mut Vec<Effect>) {
        let allowed = self.rooms.get(&room).is_some_and(|r| r.allowed.contains(user));
        let again = self
            .rooms
            .get(&room)
            .and_then(|r| r.members.get(user))
            .is_some_and(|m| m.conn == Some(conn));
        // A join repeated on the same connection changes nothing and is not recorded again.
        if !again {
            out.push(Effect::Audit { user: user.to_string(), room: room.clone(), allowed });
        }
        if !allowed {
            // The same answer whether the room does not exist or is someone else's.
            return self.refuse(conn, "not_allowed", "no such room, or it is not yours", out);
        }
        let rooms_of_user = self
            .rooms
            .iter()
            .filter(|(id, r)| **id != room && r.members.contains_key(user))
            .count();
        let max_rooms = self.limits.max_rooms_per_user;
        let r = self.rooms.get_mut(&room).expect("checked above");
        let resumed = match r.members.get_mut(user) {
            Some(m) => {
                let was_away = m.away_since.is_some() || m.conn != Some(conn);
                if let Some(old) = m.conn.filter(|c| *c != conn) {
                    out.push(Effect::Close(old, "replaced by a newer connection"));
                }
                m.conn = Some(conn);
                m.away_since = None;
                was_away
            }
            None => {
                if rooms_of_user >= max_rooms {
                    let detail = format!("at most {max_rooms} rooms at once");
                    return self.refuse(conn, "too_many_rooms", &detail, out);
                }
                r.members.insert(user.to_string(), Member { conn: Some(conn), away_since: None });
                false
            }
        };
        let note = if resumed {
            ServerMsg::PeerResumed { v: VERSION, room: room.clone(), user: user.to_string() }
        } else {
            ServerMsg::PeerJoined { v: VERSION, room: room.clone(), user: user.to_string() }
        };
        broadcast(r, Some(user), &note, out);
        let peers = r
            .members
            .iter()
            .filter(|(u, _)| *u != user)
            .map(|(u, m)| Peer { user: u.clone(), online: m.conn.is_some() })
            .collect();
        out.push(Effect::Send(conn, ServerMsg::Joined { v: VERSION, room, peers, resumed }));
    }

    /// Sends `msg` to participant `to` of `room`, if both are in it.
    fn relay(
        &mut self,
        conn: ConnId,
        user: &str,
        room: &str,
        to: &str,
        msg: ServerMsg,
        out: &mut Vec<Effect>,
    ) {
        // Candidates trickle in around drops and reconnects; telling the sender is enough,
        // these are not counted as strikes.
        let Some(r) = self.member_room(conn, user, room) else {
            return tell(conn, "not_in_room", "you are not in that room", out);
        };
        match r.members.get(to).and_then(|m| m.conn) {
            Some(target) if to != user => out.push(Effect::Send(target, msg)),
            _ => tell(
                conn,
                "peer_unavailable",
                "that participant is not connected to this room",
                out,
            ),
        }
    }
}

/// An error for the sender that is not held against them.
fn tell(conn: ConnId, code: &'static str, detail: &str, out: &mut Vec<Effect>) {
    out.push(Effect::Send(conn, ServerMsg::error(code, detail)));
}

/// Sends `msg` to every connected member of the room except `except`.
fn broadcast(r: &Room, except: Option<&str>, msg: &ServerMsg, out: &mut Vec<Effect>) {
    for (u, m) in &r.members {
        if Some(u.as_str()) != except
            && let Some(c) = m.conn
        {
            out.push(Effect::Send(c, msg.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(conn: ConnId, v: serde_json::Value) -> Input {
        Input::Text { conn, text: v.to_string() }
    }

    /// Messages sent to `conn`, by type.
    fn sent(effects: &[Effect], conn: ConnId) -> Vec<serde_json::Value> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(c, m) if *c == conn => Some(serde_json::to_value(m).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn types(effects: &[Effect], conn: ConnId) -> Vec<String> {
        sent(effects, conn).iter().map(|m| m["type"].as_str().unwrap().to_string()).collect()
    }

    /// A consult room for dr-zhao and dr-li; zhao on connection 1, li on 2, ma (another
    /// site) on 3.
    fn consult() -> Core {
        let mut core = Core::new(Limits::default());
        core.handle(
            0,
            Input::Open { room: "c1".into(), participants: vec!["dr-zhao".into(), "dr-li".into()] },
        );
        for (conn, user) in [(1, "dr-zhao"), (2, "dr-li"), (3, "dr-ma")] {
            core.handle(0, Input::Connected { conn, user: user.into() });
        }
        core
    }

    fn join(room: &str) -> serde_json::Value {
        serde_json::json!({"v": 1, "type": "join", "room": room})
    }

    #[test]
    fn participants_meet_and_signal_only_each_other() {
        let mut core = consult();
        let e = core.handle(1, say(1, join("c1")));
        assert_eq!(sent(&e, 1)[0]["type"], "joined");
        assert_eq!(sent(&e, 1)[0]["peers"], serde_json::json!([]));
        assert!(e.contains(&Effect::Audit {
            user: "dr-zhao".into(),
            room: "c1".into(),
            allowed: true
        }));
        let e = core.handle(2, say(2, join("c1")));
        assert_eq!(types(&e, 1), ["peer-joined"]);
        assert_eq!(
            sent(&e, 2)[0]["peers"],
            serde_json::json!([{"user": "dr-zhao", "online": true}])
        );

        let offer =
            serde_json::json!({"v": 1, "type": "offer", "room": "c1", "to": "dr-li", "sdp": "v=0"});
        let e = core.handle(3, say(1, offer));
        assert_eq!(e.len(), 1);
        assert_eq!(
            sent(&e, 2)[0],
            serde_json::json!({"v": 1, "type": "offer", "room": "c1", "from": "dr-zhao", "sdp": "v=0"})
        );
        let cand = serde_json::json!({"v": 1, "type": "candidate", "room": "c1", "to": "dr-zhao", "candidate": {"candidate": "a=1"}});
        let e = core.handle(4, say(2, cand));
        assert_eq!(sent(&e, 1)[0]["from"], "dr-li");
        let chat = serde_json::json!({"v": 1, "type": "chat", "room": "c1", "text": "hello"});
        let e = core.handle(5, say(1, chat));
        assert_eq!(
            (types(&e, 1), types(&e, 2)),
            (vec!["chat".to_string()], vec!["chat".to_string()])
        );
        assert_eq!(sent(&e, 2)[0]["at"], 5);

        // dr-ma is not a participant: refused (the same answer as for no room), audited, and
        // cannot reach anyone in it.
        let e = core.handle(6, say(3, join("c1")));
        assert_eq!(sent(&e, 3)[0]["code"], "not_allowed");
        assert!(e.contains(&Effect::Audit {
            user: "dr-ma".into(),
            room: "c1".into(),
            allowed: false
        }));
        assert_eq!(sent(&core.handle(6, say(3, join("nope"))), 3)[0]["code"], "not_allowed");
        let sneak =
            serde_json::json!({"v": 1, "type": "answer", "room": "c1", "to": "dr-li", "sdp": "x"});
        let e = core.handle(7, say(3, sneak));
        assert_eq!(e.len(), 1);
        assert_eq!(sent(&e, 3)[0]["code"], "not_in_room");
        // Nobody is relayed to someone outside the room.
        let out =
            serde_json::json!({"v": 1, "type": "offer", "room": "c1", "to": "dr-ma", "sdp": "x"});
        assert_eq!(sent(&core.handle(8, say(1, out)), 1)[0]["code"], "peer_unavailable");
    }

    #[test]
    fn a_dropped_participant_resumes_within_the_grace_period() {
        let mut core = consult();
        core.handle(0, say(1, join("c1")));
        core.handle(0, say(2, join("c1")));
        let e = core.handle(1_000, Input::Disconnected { conn: 2 });
        assert_eq!(types(&e, 1), ["peer-away"]);
        // dr-li comes back on a new connection before the grace period ends.
        core.handle(20_000, Input::Connected { conn: 4, user: "dr-li".into() });
        assert!(core.handle(20_000, Input::Tick).is_empty());
        let e = core.handle(20_001, say(4, join("c1")));
        assert_eq!(types(&e, 1), ["peer-resumed"], "dr-zhao renegotiates (ICE restart)");
        let joined = &sent(&e, 4)[0];
        assert_eq!(
            (joined["type"].as_str(), joined["resumed"].as_bool()),
            (Some("joined"), Some(true))
        );
        let offer = serde_json::json!({"v": 1, "type": "offer", "room": "c1", "to": "dr-li", "sdp": "restart"});
        assert_eq!(types(&core.handle(20_002, say(1, offer)), 4), ["offer"]);

        // A drop that outlasts the grace period: the others see the participant leave.
        core.handle(30_000, Input::Disconnected { conn: 4 });
        assert!(types(&core.handle(59_999, Input::Tick), 1).is_empty());
        assert_eq!(types(&core.handle(60_000, Input::Tick), 1), ["peer-left"]);
        let e = core.handle(
            60_001,
            say(1, serde_json::json!({"v": 1, "type": "chat", "room": "c1", "text": "x"})),
        );
        assert_eq!(types(&e, 1), ["chat"]);
        assert!(sent(&e, 4).is_empty());
    }

    #[test]
    fn limits_answer_with_errors_then_close_the_socket() {
        let limits = Limits {
            max_message_bytes: 200,
            burst: 2,
            per_second: 1,
            strikes_to_close: 5,
            max_rooms_per_user: 1,
            ..Limits::default()
        };
        let mut core = Core::new(limits);
        core.handle(0, Input::Open { room: "a".into(), participants: vec!["u".into()] });
        core.handle(0, Input::Open { room: "b".into(), participants: vec!["u".into()] });
        core.handle(0, Input::Connected { conn: 1, user: "u".into() });
        assert_eq!(types(&core.handle(0, say(1, join("a"))), 1), ["joined"]);
        assert_eq!(sent(&core.handle(0, say(1, join("b"))), 1)[0]["code"], "too_many_rooms");
        // The burst of 2 is spent: refused for rate (each refusal is a strike: 2 so far).
        let big = "x".repeat(300);
        assert_eq!(
            sent(&core.handle(0, Input::Text { conn: 1, text: big.clone() }), 1)[0]["code"],
            "rate_limited"
        );
        // A second later one token is back: too large; then not JSON; then wrong version.
        assert_eq!(
            sent(&core.handle(1_000, Input::Text { conn: 1, text: big }), 1)[0]["code"],
            "message_too_large"
        );
        let e = core.handle(2_000, Input::Text { conn: 1, text: "{".into() });
        assert_eq!(sent(&e, 1)[0]["code"], "invalid_message");
        assert!(!e.iter().any(|x| matches!(x, Effect::Close(..))));
        let e =
            core.handle(3_000, say(1, serde_json::json!({"v": 2, "type": "leave", "room": "a"})));
        assert_eq!(sent(&e, 1)[0]["code"], "unsupported_version");
        assert!(e.contains(&Effect::Close(1, "too many refused messages")), "{e:?}");
    }

    #[test]
    fn a_second_connection_takes_the_place_of_the_first() {
        let mut core = consult();
        core.handle(0, say(1, join("c1")));
        core.handle(0, Input::Connected { conn: 9, user: "dr-zhao".into() });
        let e = core.handle(1, say(9, join("c1")));
        assert!(e.contains(&Effect::Close(1, "replaced by a newer connection")));
        assert_eq!(sent(&e, 9)[0]["resumed"], true);
        // Closing the consult's room sends everyone out.
        let e = core.handle(2, Input::Close { room: "c1".into() });
        assert_eq!(types(&e, 9), ["left"]);
        assert_eq!(sent(&core.handle(3, say(9, join("c1"))), 9)[0]["code"], "not_allowed");
    }

    #[test]
    fn watchers_see_presence_and_people_get_their_consult_events() {
        let mut core = Core::new(Limits::default());
        let e = core.handle(0, Input::Connected { conn: 1, user: "dr-li".into() });
        assert_eq!(sent(&e, 1), [serde_json::json!({"v": 1, "type": "welcome", "user": "dr-li"})]);
        let e =
            core.handle(0, say(1, serde_json::json!({"v": 1, "type": "watch", "presence": true})));
        assert_eq!(sent(&e, 1)[0]["users"], serde_json::json!([{"user": "dr-li", "online": true}]));
        // dr-zhao on two devices: online once, offline when the last one closes.
        let e = core.handle(1, Input::Connected { conn: 2, user: "dr-zhao".into() });
        assert_eq!(
            sent(&e, 1)[0]["users"],
            serde_json::json!([{"user": "dr-zhao", "online": true}])
        );
        assert!(
            sent(&core.handle(2, Input::Connected { conn: 3, user: "dr-zhao".into() }), 1)
                .is_empty()
        );
        let msg = ServerMsg::Consult {
            v: VERSION,
            consult: "cs_1".into(),
            event: "requested",
            state: "requested",
        };
        let e =
            core.handle(3, Input::Notify { users: vec!["dr-zhao".into(), "nobody".into()], msg });
        assert_eq!(
            (types(&e, 2), types(&e, 3), types(&e, 1)),
            (vec!["consult".to_string()], vec!["consult".to_string()], vec![])
        );
        assert!(sent(&core.handle(4, Input::Disconnected { conn: 2 }), 1).is_empty());
        let e = core.handle(5, Input::Disconnected { conn: 3 });
        assert_eq!(
            sent(&e, 1)[0]["users"],
            serde_json::json!([{"user": "dr-zhao", "online": false}])
        );
        // Unwatching stops it.
        core.handle(6, say(1, serde_json::json!({"v": 1, "type": "watch", "presence": false})));
        assert!(
            sent(&core.handle(7, Input::Connected { conn: 4, user: "dr-ma".into() }), 1).is_empty()
        );
        assert_eq!(core.connections(), 2);
    }

    #[test]
    fn races_around_reconnects_are_answered_but_not_held_against_anyone() {
        let limits = Limits { strikes_to_close: 3, ..Limits::default() };
        let mut core = Core::new(limits);
        core.handle(
            0,
            Input::Open { room: "c1".into(), participants: vec!["a".into(), "b".into()] },
        );
        core.handle(0, Input::Connected { conn: 1, user: "a".into() });
        let e = core.handle(0, say(1, join("c1")));
        assert!(e.iter().any(|x| matches!(x, Effect::Audit { .. })));
        // Joining again on the same socket changes nothing and is not recorded twice.
        let e = core.handle(1, say(1, join("c1")));
        assert!(!e.iter().any(|x| matches!(x, Effect::Audit { .. })), "{e:?}");
        assert_eq!(types(&e, 1), ["joined"]);
        // Candidates for a peer who is not (or no longer) there: told, never closed.
        for t in 0..10 {
            let cand = serde_json::json!({"v": 1, "type": "candidate", "room": "c1", "to": "b", "candidate": {}});
            let e = core.handle(2 + t, say(1, cand));
            assert_eq!(sent(&e, 1)[0]["code"], "peer_unavailable");
            assert!(!e.iter().any(|x| matches!(x, Effect::Close(..))));
        }
    }
}
