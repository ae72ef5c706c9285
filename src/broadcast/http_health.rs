//! `GET /api/broadcasts/{id}/health`: how each viewer site's connections are doing, for the
//! trainer's page (and the training office: the session's own site, as for attendance). Each
//! viewer connected now with its person and site (from the attendance) and its link as the
//! media plane last saw it (at most a second ago), graded by `health`; the sites summed.

use std::collections::HashMap;

use axum::Json;
use serde_json::{Value, json};

use super::health::{by_site, grade};
use super::{attendance, store};
use crate::auth::RequestCtx;
use crate::auth::policy::{BroadcastAttendance, Permit, Target};
use crate::error::{ApiError, PathParams};

pub async fn health(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    // The attendance permit alone for those who see the session (the read permit would write
    // a second row to the trail on every poll of the trainer's page); anyone else goes through
    // the read permit, so a session outside their audience stays unknown to them (404).
    let found = super::http::find(&ctx, &id).await?;
    let b = match super::http::visible(&ctx, vec![found]).await?.pop() {
        Some(b) => b,
        None => super::http::readable(&ctx, &id).await?.0,
    };
    let permit: Permit<BroadcastAttendance> =
        ctx.permit(Target::site(&b.site, "broadcast", Some(b.id.clone()))).await?;
    let rows = store::attendance(&ctx.state.db, &permit).await?;
    let open: HashMap<&str, &store::Attended> = rows
        .iter()
        .filter(|r| r.left_at.is_none() && r.role == "viewer")
        .map(|r| (r.peer.as_str(), r))
        .collect();
    let media = &ctx.state.media;
    let mut viewers = vec![];
    let mut sited = vec![];
    for h in media.health(&b.id) {
        let key = attendance::peer_key(media.instance(), h.peer);
        let Some(who) = open.get(key.as_str()) else { continue };
        viewers.push(json!({
            "user": who.user,
            "site": who.site,
            "grade": grade(&h),
            "connected": h.connected,
            "link_up": h.link_up,
            "layer": h.layer,
            "layers": h.layers,
            "estimate_kbps": (h.estimate_bps > 0).then_some(h.estimate_bps / 1000),
            "loss": h.loss,
            "rtt_ms": h.rtt_ms,
        }));
        sited.push((who.site.clone(), h));
    }
    Ok(Json(json!({ "sites": by_site(&sited), "viewers": viewers })))
}
