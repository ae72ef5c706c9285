//! `GET /api/turn`: the ICE servers a call page should use, with short-lived TURN credentials
//! in coturn's REST scheme (`use-auth-secret`): username `expiry:user`, password
//! base64(HMAC-SHA1(secret, username)). coturn checks them with the same secret, and refuses
//! them after `expiry` (unix seconds).

use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::auth::RequestCtx;
use crate::config::Turn;
use crate::error::ApiError;

/// The password coturn expects for `username`.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `RTCConfiguration.iceServers` for `user` at `now_ms`: STUN as configured, TURN with
/// credentials that expire after the configured time.
pub fn ice_servers(turn: &Turn, user: &str, now_ms: i64) -> Value {
    let mut servers = vec![];
    if !turn.stun.is_empty() {
        servers.push(json!({"urls": turn.stun}));
    }
    let expires = now_ms / 1000 + turn.ttl_secs as i64;
    if let (false, Some(secret)) = (turn.turn.is_empty(), &turn.secret) {
        let username = format!("{expires}:{user}");
        servers.push(json!({
            "urls": turn.turn,
            "username": username,
            "credential": password(&secret.0, &username),
        }));
    }
    let policy = if turn.relay_only { "relay" } else { "all" };
    json!({"iceServers": servers, "iceTransportPolicy": policy, "ttl": turn.ttl_secs, "expires": expires})
}

pub async fn credentials(ctx: RequestCtx) -> Result<Json<Value>, ApiError> {
    Ok(Json(ice_servers(&ctx.state.turn, ctx.actor.user.id.as_str(), ctx.now())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn credentials_follow_the_coturn_rest_scheme() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            password("Jefe", "what do ya want for nothing?"),
            base64::engine::general_purpose::STANDARD
                .encode(hex::decode("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79").unwrap())
        );
        let turn = Turn {
            stun: vec!["stun:turn.example:3478".into()],
            turn: vec![
                "turn:turn.example:3478?transport=udp".into(),
                "turns:turn.example:443".into(),
            ],
            secret: Some(Secret("s3cret".into())),
            ttl_secs: 600,
            relay_only: false,
        };
        let v = ice_servers(&turn, "dr-zhao", 1_000_000_000_000);
        assert_eq!(v["iceServers"][0], json!({"urls": ["stun:turn.example:3478"]}));
        let t = &v["iceServers"][1];
        assert_eq!(t["username"], "1000000600:dr-zhao");
        assert_eq!(t["credential"], password("s3cret", "1000000600:dr-zhao"));
        assert_eq!(t["urls"][1], "turns:turn.example:443");
        assert_eq!(v["iceTransportPolicy"], "all");
        let relayed = Turn { relay_only: true, ..turn.clone() };
        assert_eq!(ice_servers(&relayed, "u", 0)["iceTransportPolicy"], "relay");
        // Without TURN URLs, STUN only.
        let stun_only = Turn { turn: vec![], secret: None, ..turn };
        assert_eq!(ice_servers(&stun_only, "u", 0)["iceServers"].as_array().unwrap().len(), 1);
    }
}
