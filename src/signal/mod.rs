//! WebRTC signalling for video consults. `core` is the room logic without I/O:
//! `Core::handle(now, input) -> effects`, driven by scripted inputs and a fake clock in its
//! tests; the WebSocket shell (to come) only moves messages between sockets and the core.
//! The message schema is written down in `docs/signalling.md`.

pub mod core;
pub mod messages;
pub mod turn;
