//! `/api/broadcasts/{id}/materials`: a session's PDF slides and handouts. Its trainer uploads
//! (`POST`, the PDF as the body, `?name=` the file's name) and removes them; everyone who may
//! see the session lists and opens them (with ranges, as PDF viewers ask). The body streams to
//! the object store as it arrives, checked as it goes (a PDF, under 100 MiB); an upload cut
//! off leaves nothing behind. Each step is audited with its change, with the material's id and
//! size, never its name. Everyone who may see the session is told over their socket
//! ("materials"), so a page open on it lists a new file at once.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{bad, ranged, readable, session_event, tell_audience, trainer_only};
use super::materials::{self, Intake, MAX_BYTES, MAX_PER_SESSION, Refused};
use super::{State, store};
use crate::audit::Outcome;
use crate::auth::RequestCtx;
use crate::error::{ApiError, PathParams, QueryParams};
use crate::time::rfc3339;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    pub name: String,
}

pub(super) fn view(broadcast: &str, m: &store::Material) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "bytes": m.bytes,
        "sha256": m.sha256,
        "uploaded_by": m.uploaded_by,
        "created_at": rfc3339(m.created_at),
        "url": format!("/api/broadcasts/{broadcast}/materials/{}", m.id),
    })
}

fn refusal(why: Refused) -> ApiError {
    match why {
        Refused::NotPdf => ApiError::UnsupportedMediaType {
            detail: "materials are PDF files (the body does not start as a PDF does)".into(),
        },
        Refused::TooLarge => ApiError::PayloadTooLarge,
    }
}

/// `GET /api/broadcasts/{id}/materials`: the session's materials, oldest first.
pub async fn list(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    let list = store::materials(&ctx.state.db, &permit).await?;
    Ok(Json(json!({ "materials": list.iter().map(|m| view(&b.id, m)).collect::<Vec<_>>() })))
}

/// `POST /api/broadcasts/{id}/materials?name=…`: the session's trainer uploads a PDF.
pub async fn upload(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    let action = "broadcast.material_add";
    trainer_only(&ctx, &b, action, "only the session's trainer adds materials").await?;
    if b.state == State::Cancelled {
        return Err(ApiError::conflict("broadcast_over", "the session is cancelled"));
    }
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !media_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/pdf")) {
        return Err(ApiError::UnsupportedMediaType {
            detail: "send the file with Content-Type: application/pdf".into(),
        });
    }
    let name = materials::clean_name(&q.name).map_err(bad)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    // Counted here so a full session refuses before the file travels, and again when it is
    // filed (two uploads at once).
    if store::materials(&ctx.state.db, &permit).await?.len() >= MAX_PER_SESSION {
        return Err(too_many());
    }
    let mid = materials::new_material_id();
    let key = format!("materials/{}/{mid}.pdf", b.id);
    // The body goes to the object store as it arrives; the intake checks each chunk and stops
    // the stream at the first that breaks a rule.
    let intake = Arc::new(Mutex::new((Intake::default(), None::<Refused>, false)));
    let watch = intake.clone();
    let chunks = body.into_data_stream().map(move |chunk| {
        let mut w = watch.lock().unwrap();
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                w.2 = true;
                return Err(std::io::Error::other(e));
            }
        };
        if let Err(why) = w.0.push(&chunk) {
            w.1 = Some(why);
            return Err(std::io::Error::other("refused"));
        }
        Ok(chunk)
    });
    let put = ctx.state.objects.put_stream(&key, Box::pin(chunks)).await;
    let (intake, refused, cut) = std::mem::take(&mut *intake.lock().unwrap());
    if let Some(why) = refused {
        return Err(refusal(why));
    }
    if cut {
        return Err(ApiError::bad_request(
            "upload_incomplete",
            "the file did not arrive whole (the connection dropped); send it again",
        ));
    }
    put.map_err(ApiError::internal)?;
    let (bytes, sha256) = match intake.finish() {
        Ok(done) => done,
        Err(why) => {
            let _ = ctx.state.objects.delete(&key).await;
            return Err(refusal(why));
        }
    };
    let m = store::Material {
        id: mid.clone(),
        broadcast_id: b.id.clone(),
        name,
        object_key: key.clone(),
        bytes: bytes as i64,
        sha256,
        uploaded_by: ctx.actor.user.id.to_string(),
        created_at: ctx.now(),
    };
    let event = session_event(
        &ctx,
        &b,
        action,
        Outcome::Success,
        Some(format!("material {mid}, {bytes} bytes")),
    );
    let max = MAX_PER_SESSION as i64;
    match store::add_material(&ctx.state.db, &permit, &m, max, &event).await {
        Ok(true) => {}
        filed => {
            let _ = ctx.state.objects.delete(&key).await;
            return Err(filed.map_or_else(Into::into, |_| too_many()));
        }
    }
    tell_audience(&ctx, &b, "materials").await?;
    Ok((StatusCode::CREATED, Json(view(&b.id, &m))))
}

fn too_many() -> ApiError {
    ApiError::conflict(
        "too_many_materials",
        format!("at most {MAX_PER_SESSION} materials per session"),
    )
}

/// `GET /api/broadcasts/{id}/materials/{m}`: the PDF, whole or a range, under its name.
pub async fn get(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams((id, mid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, permit) = readable(&ctx, &id).await?;
    let found = match materials::is_material_id(&mid) {
        true => store::materials(&ctx.state.db, &permit).await?.into_iter().find(|m| m.id == mid),
        false => None,
    };
    let m = found.ok_or(ApiError::NotFound { what: "material" })?;
    let mut resp = ranged(&ctx, &headers, &m.object_key, m.bytes as u64, "application/pdf").await?;
    if let Ok(v) = HeaderValue::from_str(&materials::disposition(&m.name)) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `DELETE /api/broadcasts/{id}/materials/{m}`: the session's trainer removes a material.
pub async fn remove(
    ctx: RequestCtx,
    PathParams((id, mid)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (b, permit) = readable(&ctx, &id).await?;
    let action = "broadcast.material_remove";
    trainer_only(&ctx, &b, action, "only the session's trainer removes materials").await?;
    let found = match materials::is_material_id(&mid) {
        true => store::materials(&ctx.state.db, &permit).await?.into_iter().find(|m| m.id == mid),
        false => None,
    };
    let m = found.ok_or(ApiError::NotFound { what: "material" })?;
    let event =
        session_event(&ctx, &b, action, Outcome::Success, Some(format!("material {}", m.id)));
    if !store::remove_material(&ctx.state.db, &permit, &m.id, &event).await? {
        return Err(ApiError::NotFound { what: "material" });
    }
    // The row is gone first: a failed delete leaves an object nobody can reach, not a row
    // pointing at nothing.
    if let Err(e) = ctx.state.objects.delete(&m.object_key).await {
        tracing::warn!(error = %e, material = %m.id, "a removed material's object stays in the store");
    }
    tell_audience(&ctx, &b, "materials").await?;
    Ok(StatusCode::NO_CONTENT)
}
