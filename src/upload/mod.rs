//! Resumable uploads, tus 1.0 (core, creation, termination) at `/api/uploads`: for clinics on
//! poor links, an interrupted upload continues from the last byte the server holds. Bytes are
//! staged in `<data.dir>/uploads/`; a complete upload is checked and stored like any STOW-RS
//! instance, or, for a zip bundle, entry by entry (`bundle`). Only the person who created an
//! upload can see or continue it.

pub mod bundle;
pub mod busy;
pub mod client;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::archive::store as archive;
use crate::auth::RequestCtx;
use crate::auth::policy::{ImagingStore, Permit, Target};
use crate::error::{ApiError, PathParams};
use crate::state::AppState;

pub const TUS_VERSION: &str = "1.0.0";

/// How long a PATCH waits for the request it takes over to let go of the upload.
const TAKE_OVER_PATIENCE: Duration = Duration::from_secs(10);

fn staging_dir(state: &AppState) -> PathBuf {
    state.settings.data.dir.join("uploads")
}

fn staging_file(state: &AppState, id: &str) -> PathBuf {
    staging_dir(state).join(format!("{id}.part"))
}

fn tus(mut r: Response) -> Response {
    r.headers_mut().insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The largest upload: a zip bundle may be as large as a STOW-RS request; a single instance
/// is held to the per-instance limit when it completes.
fn max_length(state: &AppState) -> u64 {
    let d = &state.settings.dicomweb;
    d.max_request_mib.max(d.max_instance_mib) * 1024 * 1024
}

/// `OPTIONS /api/uploads`: what this server speaks.
pub async fn options(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let mut r = tus(StatusCode::NO_CONTENT.into_response());
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static("creation,termination"));
    h.insert("tus-max-size", HeaderValue::from(max_length(&state)));
    r
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `filename` of `Upload-Metadata` (`key base64,key base64`), if any.
fn filename(headers: &HeaderMap) -> Option<String> {
    let meta = headers.get("upload-metadata")?.to_str().ok()?;
    meta.split(',').find_map(|kv| {
        let mut it = kv.trim().splitn(2, ' ');
        if it.next()? != "filename" {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(it.next()?.trim()).ok()?;
        let name = String::from_utf8(raw).ok()?;
        crate::network::check_text("filename", &name).ok()
    })
}

/// `POST /api/uploads`: creates an upload of `Upload-Length` bytes.
pub async fn create(ctx: RequestCtx, headers: HeaderMap) -> Result<Response, ApiError> {
    let length = header_u64(&headers, "upload-length").ok_or_else(|| {
        ApiError::bad_request("invalid_upload", "Upload-Length is required (a byte count)")
    })?;
    if length == 0 || length > max_length(&ctx.state) {
        return Err(ApiError::PayloadTooLarge);
    }
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingStore> = ctx.permit(Target::site(&site, "upload", None)).await?;
    let id = format!("up_{}", crate::ids::random_id(12));
    tokio::fs::create_dir_all(staging_dir(&ctx.state)).await.map_err(ApiError::internal)?;
    tokio::fs::File::create(staging_file(&ctx.state, &id)).await.map_err(ApiError::internal)?;
    let (db, me) = (&ctx.state.db, ctx.actor.owner());
    store::create(db, &permit, &id, me, length, filename(&headers), ctx.now()).await?;
    let mut r = tus(StatusCode::CREATED.into_response());
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/uploads/{id}")).expect("ASCII"),
    );
    Ok(r)
}

use store::Upload as UploadRow;

/// The caller's own upload, or 404.
async fn own_upload(ctx: &RequestCtx, id: &str) -> Result<UploadRow, ApiError> {
    if !id.starts_with("up_")
        || id.len() > 40
        || !id[3..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::NotFound { what: "upload" });
    }
    store::owned(&ctx.state.db, id, ctx.actor.owner())
        .await?
        .ok_or(ApiError::NotFound { what: "upload" })
}

async fn received(state: &AppState, id: &str, row: &UploadRow) -> u64 {
    if row.completed {
        return row.length;
    }
    tokio::fs::metadata(staging_file(state, id)).await.map(|m| m.len()).unwrap_or(0)
}

/// `HEAD /api/uploads/{id}`: how many bytes the server holds.
pub async fn head(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let row = own_upload(&ctx, &id).await?;
    let offset = received(&ctx.state, &id, &row).await;
    let mut r = tus(StatusCode::OK.into_response());
    r.headers_mut().insert("upload-offset", HeaderValue::from(offset));
    r.headers_mut().insert("upload-length", HeaderValue::from(row.length));
    Ok(r)
}

/// `GET /api/uploads/{id}`: progress, and once complete, what was stored.
pub async fn status(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let row = own_upload(&ctx, &id).await?;
    let offset = received(&ctx.state, &id, &row).await;
    let result: Value =
        row.result.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or(Value::Null);
    Ok(Json(json!({
        "id": id,
        "filename": row.filename,
        "length": row.length,
        "offset": offset,
        "complete": row.completed,
        "result": result,
    })))
}

/// `PATCH /api/uploads/{id}`: appends bytes at `Upload-Offset`. Bytes that arrive before a
/// connection drops are kept, so the client resumes from there.
pub async fn patch(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct != "application/offset+octet-stream" {
        return Err(ApiError::UnsupportedMediaType {
            detail: "PATCH takes Content-Type: application/offset+octet-stream".into(),
        });
    }
    let offset = header_u64(&headers, "upload-offset")
        .ok_or_else(|| ApiError::bad_request("invalid_upload", "Upload-Offset is required"))?;
    let row = own_upload(&ctx, &id).await?;
    let state = ctx.state.clone();
    // A PATCH whose connection died may still hold the upload: this one takes it over (the
    // tus lock take-over), so a client that comes back after a cut continues at once.
    let writer = state.uploads_busy.take_over(&id, TAKE_OVER_PATIENCE).await.ok_or_else(|| {
        ApiError::conflict("upload_busy", "another request is writing this upload; try again")
    })?;
    let have = received(&state, &id, &row).await;
    if row.completed || offset != have {
        return Err(ApiError::conflict(
            "offset_mismatch",
            format!("the server holds {have} bytes; continue from there (HEAD tells)"),
        ));
    }
    let path = staging_file(&state, &id);
    let mut file =
        tokio::fs::OpenOptions::new().append(true).open(&path).await.map_err(ApiError::internal)?;
    let mut written = have;
    let mut stream = body.into_data_stream();
    let mut cut_short = false;
    loop {
        // A stalled body ends by itself (`http.body_stall_secs`, the router's body guard);
        // a newer PATCH for this upload stops this one.
        let next = tokio::select! {
            n = stream.next() => n,
            _ = writer.stop.cancelled() => {
                cut_short = true;
                break;
            }
        };
        let Some(chunk) = next else { break };
        let Ok(chunk) = chunk else {
            cut_short = true;
            break;
        };
        if written + chunk.len() as u64 > row.length {
            file.flush().await.map_err(ApiError::internal)?;
            return Err(ApiError::bad_request("invalid_upload", "more bytes than Upload-Length"));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
        // Flushed as it comes: HEAD (which reads the file's length) then tells a client that
        // comes back after a cut every byte that arrived.
        file.flush().await.map_err(ApiError::internal)?;
        written += chunk.len() as u64;
    }
    file.flush().await.map_err(ApiError::internal)?;
    file.sync_data().await.map_err(ApiError::internal)?;
    drop(file);
    if cut_short {
        tracing::info!(received = written - have, "upload PATCH cut short; the client can resume");
    }
    if written == row.length {
        finish(&ctx, &id, &path).await?;
    }
    let mut r = tus(StatusCode::NO_CONTENT.into_response());
    r.headers_mut().insert("upload-offset", HeaderValue::from(written));
    Ok(r)
}

/// What a finished upload stored and refused.
#[derive(Default)]
struct Outcome {
    stored: Vec<Value>,
    failed: Vec<Value>,
    studies: Vec<(String, usize)>,
}

impl Outcome {
    async fn ingest(
        &mut self,
        ctx: &RequestCtx,
        permit: &Permit<ImagingStore>,
        bytes: Bytes,
        entry: Option<usize>,
    ) {
        let st = &ctx.state;
        let replace_as = st.settings.dicomweb.replaces().then(|| ctx.actor.name());
        // ECG files that are not DICOM (MUSE, aECG, SCP) go the ECG way: their record and
        // their DICOM form.
        let dicom = bytes.len() >= 132 && &bytes[128..132] == b"DICM";
        if !dicom && crate::ecg::detect(&bytes).is_some() {
            let me = ctx.actor.name();
            match crate::ecg::ingest::store(
                &st.db,
                &st.objects,
                permit,
                bytes,
                &me,
                replace_as.as_deref(),
                ctx.now(),
            )
            .await
            {
                Ok((row, _)) => {
                    let study = row.study_uid.clone().unwrap_or_default();
                    self.count(&study);
                    self.stored.push(json!({"entry": entry, "ecg": row.id, "study": row.study_uid, "instance": row.sop_instance_uid}));
                }
                Err(e) => self.refuse(
                    entry,
                    crate::archive::Rejection::new(
                        crate::archive::status::CANNOT_UNDERSTAND,
                        e.to_string(),
                    ),
                ),
            }
            return;
        }
        match archive::ingest(
            &st.db,
            &st.objects,
            permit,
            bytes,
            None,
            replace_as.as_deref(),
            ctx.now(),
        )
        .await
        {
            Ok((inst, _)) => {
                self.count(&inst.study_uid);
                self.stored.push(json!({"entry": entry, "study": inst.study_uid, "series": inst.series_uid, "instance": inst.sop_instance_uid}));
            }
            Err((_, r)) => self.refuse(entry, r),
        }
    }

    fn count(&mut self, study: &str) {
        match self.studies.iter_mut().find(|(s, _)| s == study) {
            Some((_, n)) => *n += 1,
            None => self.studies.push((study.to_string(), 1)),
        }
    }

    fn refuse(&mut self, entry: Option<usize>, r: crate::archive::Rejection) {
        self.failed.push(json!({
            "entry": entry, "instance": r.sop_instance_uid, "status": r.status, "reason": r.reason,
        }));
    }
}

/// Checks and stores a complete upload (one instance, or every entry of a zip bundle),
/// records the outcome, removes the staged bytes.
async fn finish(ctx: &RequestCtx, id: &str, path: &std::path::Path) -> Result<(), ApiError> {
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingStore> = ctx.permit(Target::site(&site, "study", None)).await?;
    let st = &ctx.state;
    let limits = &st.settings.dicomweb;
    let max_instance = limits.max_instance_mib * 1024 * 1024;
    let mut head = [0u8; 4];
    let size = {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(path).await.map_err(ApiError::internal)?;
        let n = f.read(&mut head).await.map_err(ApiError::internal)?;
        if n < 4 {
            head = [0; 4];
        }
        f.metadata().await.map_err(ApiError::internal)?.len()
    };
    let mut out = Outcome::default();
    let mut skipped = 0;
    let mut refused: Option<String> = None;
    if bundle::is_zip(&head) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bundle::Entry>(1);
        let bundle_limits = bundle::Limits {
            max_entries: limits.max_bundle_entries as usize,
            max_entry_bytes: max_instance,
            max_total_bytes: limits.max_request_mib * 1024 * 1024,
        };
        let reader = tokio::task::spawn_blocking({
            let path = path.to_path_buf();
            move || bundle::read(path, bundle_limits, tx)
        });
        while let Some((n, entry)) = rx.recv().await {
            match entry {
                Ok(bytes) => out.ingest(ctx, &permit, Bytes::from(bytes), Some(n)).await,
                Err(r) => out.refuse(Some(n), r),
            }
        }
        match reader.await.map_err(ApiError::internal)? {
            Ok(n) => skipped = n,
            Err(reason) => refused = Some(reason),
        }
    } else if size > max_instance {
        out.refuse(
            None,
            crate::archive::Rejection::new(
                crate::archive::status::OUT_OF_RESOURCES,
                "the file is larger than the per-instance limit (dicomweb.max_instance_mib)",
            ),
        );
    } else {
        let bytes = Bytes::from(tokio::fs::read(path).await.map_err(ApiError::internal)?);
        out.ingest(ctx, &permit, bytes, None).await;
    }
    for (study, n) in &out.studies {
        ctx.audit(
            "imaging.stored",
            "study",
            Some(study.clone()),
            Some(site.to_string()),
            crate::audit::Outcome::Success,
            Some(format!("{n} instance(s) stored by resumable upload")),
        )
        .await?;
    }
    let result = json!({
        "stored": out.stored, "failed": out.failed, "skipped": skipped, "refused": refused,
    });
    store::complete(&st.db, &permit, id, &result.to_string(), ctx.now()).await?;
    let _ = tokio::fs::remove_file(path).await;
    Ok(())
}

/// `DELETE /api/uploads/{id}`: abandons an upload and its staged bytes.
pub async fn terminate(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    own_upload(&ctx, &id).await?;
    let _writer =
        ctx.state.uploads_busy.take_over(&id, TAKE_OVER_PATIENCE).await.ok_or_else(|| {
            ApiError::conflict("upload_busy", "another request is writing this upload")
        })?;
    let _ = tokio::fs::remove_file(staging_file(&ctx.state, &id)).await;
    store::delete(&ctx.state.db, &id, ctx.actor.owner()).await?;
    Ok(tus(StatusCode::NO_CONTENT.into_response()))
}
