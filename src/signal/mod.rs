//! WebRTC signalling for video consults. `core` is the room logic without I/O:
//! `Core::handle(now, input) -> effects`, driven by scripted inputs and a fake clock in its
//! tests; `hub` is the one task that owns it, and `ws` the WebSocket shell that only moves
//! messages between sockets and the hub.
//! The message schema is written down in `docs/signalling.md`.

pub mod core;
pub mod hub;
pub mod messages;
pub mod turn;
pub mod ws;
