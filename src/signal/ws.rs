//! The WebSocket shell at `/api/ws`: authenticates the upgrade like any API request (session
//! cookie or bearer token), refuses cross-site pages and sockets beyond the limits, then only
//! moves text frames between the socket and the hub. Pings find dead peers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::core::Input;
use super::hub::{Hub, Outgoing, SOCKET_QUEUE};
use crate::auth::RequestCtx;
use crate::error::ApiError;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// How often the server pings an idle socket; two unanswered pings end it.
const PING_EVERY: Duration = Duration::from_secs(20);

/// A browser page from another site must not open a socket with the person's cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true; // not a browser page (CLI, scripts with a bearer token)
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

pub async fn upgrade(
    ctx: RequestCtx,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden { detail: "WebSocket from another origin".into() });
    }
    let g = &ctx.state.settings.signal;
    let user = ctx.actor.user.id.to_string();
    let credential = match &ctx.actor.via {
        crate::auth::AuthVia::Session { id_hash, .. } => id_hash.clone(),
        crate::auth::AuthVia::Token { id } | crate::auth::AuthVia::DeviceToken { id, .. } => {
            id.clone()
        }
    };
    let hub = ctx.state.hub.clone();
    let guard = match hub.admit(&user, g.max_connections_per_user, g.max_connections) {
        Ok(g) => g,
        Err(true) => {
            return Err(ApiError::Unavailable {
                detail: "the server holds all the connections it can; try again shortly".into(),
            });
        }
        Err(false) => {
            return Err(ApiError::TooManyRequests {
                retry_after_secs: 5,
                detail: format!(
                    "at most {} open connections per person; close another tab",
                    g.max_connections_per_user
                ),
            });
        }
    };
    let stop = ctx.state.shutdown.clone();
    // Frames up to 4× the message limit reach the core, which answers "too large"; beyond
    // that the socket is closed without reading the rest.
    let max = g.max_message_kib * 1024 * 4;
    // Small buffers: an idle socket should cost a few KB, not tungstenite's default 128 KiB
    // read buffer (it grows for the rare large message); writes go out at once; a peer that
    // stops reading cannot make the server buffer more than 1 MiB for it.
    let ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    Ok(ws.on_upgrade(move |socket| async move {
        let _held = guard;
        serve(socket, hub, user, credential, stop).await
    }))
}

async fn serve(
    socket: WebSocket,
    hub: Hub,
    user: String,
    credential: String,
    stop: tokio_util::sync::CancellationToken,
) {
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(SOCKET_QUEUE);
    hub.register(conn, user, credential, tx).await;
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut unanswered = 0u32;
    let close = |code: u16, why: &'static str| {
        Message::Close(Some(CloseFrame { code, reason: why.into() }))
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = sink.send(close(1001, "server shutting down")).await;
                break;
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    unanswered = 0;
                    hub.input(Input::Text { conn, text: t.as_str().to_owned() }).await;
                }
                // Binary frames are not part of the protocol: refused like malformed text.
                Some(Ok(Message::Binary(_))) => {
                    hub.input(Input::Text { conn, text: String::new() }).await;
                }
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => unanswered = 0,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "socket ended with an error");
                    let _ = sink.send(close(1009, "message too large or malformed")).await;
                    break;
                }
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close(why)) => {
                    let _ = sink.send(close(1008, why)).await;
                    break;
                }
                None => break,
            },
            _ = ping.tick() => {
                unanswered += 1;
                if unanswered > 2 || sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    hub.input(Input::Disconnected { conn }).await;
}
