//! The media plane of training broadcasts: a selective forwarding unit on str0m.
//!
//! `layers` is the pure policy that picks each viewer's simulcast layer; `room` drives one
//! broadcast's peers without I/O (datagrams and time in, datagrams and events out), so the
//! tests run a presenter, the room and viewers in memory with a simulated clock and network.

pub mod layers;
pub mod record;
pub mod room;
pub mod shell;
pub mod webm;

#[cfg(test)]
mod tests;
