//! Signalling messages, version 1 (`docs/signalling.md`): what clients send and what the
//! server sends back, as JSON objects tagged by `type`, each carrying `"v": 1`.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Enter a room (or resume one's place after a dropped connection).
    Join {
        v: u32,
        room: String,
    },
    Leave {
        v: u32,
        room: String,
    },
    /// An SDP offer to one participant of the room.
    Offer {
        v: u32,
        room: String,
        to: String,
        sdp: String,
    },
    Answer {
        v: u32,
        room: String,
        to: String,
        sdp: String,
    },
    /// A trickled ICE candidate (opaque to the server).
    Candidate {
        v: u32,
        room: String,
        to: String,
        candidate: serde_json::Value,
    },
    /// A chat line to everyone in the room.
    Chat {
        v: u32,
        room: String,
        text: String,
    },
    /// Start (or stop) receiving who is online.
    Watch {
        v: u32,
        presence: bool,
    },
}

impl ClientMsg {
    pub fn version(&self) -> u32 {
        match self {
            ClientMsg::Join { v, .. }
            | ClientMsg::Leave { v, .. }
            | ClientMsg::Offer { v, .. }
            | ClientMsg::Answer { v, .. }
            | ClientMsg::Candidate { v, .. }
            | ClientMsg::Chat { v, .. }
            | ClientMsg::Watch { v, .. } => *v,
        }
    }
}

/// A participant as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub user: String,
    /// Connected now (false while within the reconnect grace period).
    pub online: bool,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMsg {
    /// You are in the room; `resumed` when you took back your place after a drop.
    Joined {
        v: u32,
        room: String,
        peers: Vec<Peer>,
        resumed: bool,
    },
    Left {
        v: u32,
        room: String,
    },
    PeerJoined {
        v: u32,
        room: String,
        user: String,
    },
    /// A participant's connection dropped; they may come back within the grace period.
    PeerAway {
        v: u32,
        room: String,
        user: String,
    },
    /// A participant came back: renegotiate with them (ICE restart).
    PeerResumed {
        v: u32,
        room: String,
        user: String,
    },
    PeerLeft {
        v: u32,
        room: String,
        user: String,
    },
    Offer {
        v: u32,
        room: String,
        from: String,
        sdp: String,
    },
    Answer {
        v: u32,
        room: String,
        from: String,
        sdp: String,
    },
    Candidate {
        v: u32,
        room: String,
        from: String,
        candidate: serde_json::Value,
    },
    Chat {
        v: u32,
        room: String,
        from: String,
        text: String,
        at: i64,
    },
    /// The first message on a socket: who the server took the client for.
    Welcome {
        v: u32,
        user: String,
    },
    /// Who is online: a snapshot after `watch`, then single changes.
    Presence {
        v: u32,
        users: Vec<Peer>,
    },
    /// Something happened to a consult that concerns the receiver; the rest is fetched over
    /// HTTP (`GET /api/consults/{consult}`).
    Consult {
        v: u32,
        consult: String,
        event: &'static str,
        state: &'static str,
    },
    /// Something happened to a reading request that concerns the receiver (a centre's new
    /// request, a claim, a signed report for the clinic); the rest is fetched over HTTP
    /// (`GET /api/readings/{reading}`).
    Reading {
        v: u32,
        reading: String,
        event: &'static str,
        state: &'static str,
    },
    /// A critical result was raised, acknowledged, escalated or called about (the clinic's
    /// banner; the rest from `GET /api/critical`).
    Critical {
        v: u32,
        critical: String,
        reading: String,
        event: &'static str,
    },
    /// Something happened to a training session that concerns the receiver: `scheduled` (a
    /// session for their site; home pages list it), `questions` (a question, a vote, an
    /// answer or a hand); the rest is fetched over HTTP (`GET /api/broadcasts/{broadcast}`).
    Broadcast {
        v: u32,
        broadcast: String,
        event: &'static str,
    },
    /// Something the server refused; `code` is stable, `detail` is for people.
    Error {
        v: u32,
        code: &'static str,
        detail: String,
    },
}

impl ServerMsg {
    pub fn error(code: &'static str, detail: impl Into<String>) -> Self {
        ServerMsg::Error { v: VERSION, code, detail: detail.into() }
    }
}
