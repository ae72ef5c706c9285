//! WADO-RS `rendered` and `thumbnail` at study, series, instance and frame level, and the
//! decoding of frames asked for uncompressed. The pixel work is `archive::render`, run on
//! blocking threads, at most one frame per core at a time (`AppState::decoders`).

use axum::extract::RawQuery;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{Level, param, query_pairs, read_ranges, study_permit};
use crate::archive::frames::{FrameIndex, is_native};
use crate::archive::render::{DecodeError, Format, FrameObject, RenderParams};
use crate::archive::store::{self, InstanceRow};
use crate::auth::RequestCtx;
use crate::auth::policy::{ImagingRead, Permit};
use crate::error::ApiError;

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::BadParameter(d) => ApiError::bad_request("invalid_parameter", d),
            DecodeError::Unsupported(detail) => ApiError::NotAcceptable { detail },
            DecodeError::Corrupt => {
                ApiError::Unprocessable { code: "cannot_decode", detail: e.to_string() }
            }
        }
    }
}

/// Frame `n` (1-based) of a stored instance, ready to decode: the header and that frame by
/// range reads when the frames are indexed, else the whole file.
pub(super) async fn load_frame(
    ctx: &RequestCtx,
    key: &str,
    ts: &str,
    index: Option<&FrameIndex>,
    n: usize,
) -> Result<FrameObject, ApiError> {
    match index {
        Some(index) => {
            let frame = index.get(n - 1).ok_or(ApiError::NotFound { what: "frame" })?;
            let start = index.first().and_then(|f| f.first()).map_or(0, |r| r.0);
            let header = read_ranges(ctx, key, &[(0, start)]).await?;
            let mut parts = Vec::with_capacity(frame.len());
            for r in frame {
                parts.push(read_ranges(ctx, key, std::iter::once(r)).await?);
            }
            let encapsulated = !is_native(ts);
            blocking(ctx, move || FrameObject::from_parts(&header, parts, encapsulated)).await
        }
        None => {
            // No frame index (big endian, deflated): the whole file, within the budget.
            let (file, _budget) = super::whole_file(ctx, key).await?;
            blocking(ctx, move || FrameObject::from_file(&file, (n - 1) as u32)).await
        }
    }
}

/// Runs pixel work on a blocking thread, one per core at a time. A decoder that panics on
/// hostile data becomes a clear refusal, not a dropped connection.
pub(super) async fn blocking<T: Send + 'static>(
    ctx: &RequestCtx,
    f: impl FnOnce() -> Result<T, DecodeError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = ctx.state.decoders.clone().acquire_owned().await.map_err(ApiError::internal)?;
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) if e.is_panic() => {
            tracing::warn!("a pixel decoder panicked; the request is refused");
            Err(DecodeError::Corrupt.into())
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The picture format the client accepts (`accept` query parameter first, then the Accept
/// header); JPEG when anything goes.
fn format(pairs: &[(String, String)], headers: &HeaderMap) -> Result<Format, ApiError> {
    let accept = param(pairs, "accept", "accept")
        .or_else(|| headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
        .unwrap_or("*/*");
    for r in super::negotiate::ranges(accept) {
        match r.mime.as_str() {
            "image/jpeg" | "image/*" | "*/*" => return Ok(Format::Jpeg),
            "image/png" => return Ok(Format::Png),
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable { detail: "rendered images are image/jpeg or image/png".into() })
}

/// The instance that stands for a study or series: the middle image of the (first) series.
fn representative(rows: Vec<InstanceRow>) -> Option<InstanceRow> {
    let images: Vec<InstanceRow> = rows.into_iter().filter(|r| r.rows.is_some()).collect();
    let series = images.first()?.series_uid.clone();
    let mut of_series: Vec<InstanceRow> =
        images.into_iter().filter(|r| r.series_uid == series).collect();
    let mid = of_series.len() / 2;
    Some(of_series.swap_remove(mid))
}

/// The instance and frame a rendered/thumbnail request points at.
async fn target(
    ctx: &RequestCtx,
    permit: &Permit<ImagingRead>,
    l: &Level,
) -> Result<(InstanceRow, usize), ApiError> {
    let frame = match &l.frames {
        None => 1,
        Some(list) => {
            let n: Vec<&str> = list.split(',').collect();
            if n.len() != 1 {
                return Err(ApiError::bad_request(
                    "invalid_frames",
                    "rendered frames are asked for one at a time",
                ));
            }
            n[0].trim().parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad_request("invalid_frames", "frame numbers are 1-based integers")
            })?
        }
    };
    let rows =
        store::list_instances(&ctx.state.db, permit, l.series.as_deref(), l.instance.as_deref())
            .await?;
    let what = if l.instance.is_some() { "instance" } else { "series" };
    let row = if l.instance.is_some() { rows.into_iter().next() } else { representative(rows) };
    Ok((row.ok_or(ApiError::NotFound { what })?, frame))
}

async fn picture(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
    raw: Option<String>,
    thumbnail: bool,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw);
    let format = format(&pairs, &headers)?;
    let mut params = RenderParams::parse(
        format,
        param(&pairs, "window", "window"),
        param(&pairs, "viewport", "viewport"),
        param(&pairs, "quality", "quality"),
        if thumbnail { 75 } else { 90 },
    )?;
    if thumbnail && params.viewport.is_none() {
        params.viewport =
            Some(crate::archive::render::Viewport { width: 128, height: 128, source: None });
    }
    let permit = study_permit(&ctx, &l.study).await?;
    let (row, frame) = target(&ctx, &permit, &l).await?;
    let (key, ts, index) =
        store::frame_source(&ctx.state.db, &permit, &row.series_uid, &row.sop_instance_uid)
            .await?
            .ok_or(ApiError::NotFound { what: "instance" })?;
    if row.rows.is_none() {
        return Err(ApiError::NotAcceptable {
            detail: "this instance holds no image to render".into(),
        });
    }
    let obj = load_frame(&ctx, &key, &ts, index.as_ref(), frame).await?;
    let picture = blocking(&ctx, move || obj.render(&params)).await?;
    let mut r = picture.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    Ok(r)
}

pub(super) async fn rendered(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    picture(ctx, headers, l, raw, false).await
}

pub(super) async fn thumbnail(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    picture(ctx, headers, l, raw, true).await
}
