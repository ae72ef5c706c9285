//! The ECG API: `POST /api/ecgs` (the file as the body, any format; DICOM ECGs also go into
//! the archive like any instance), `GET /api/ecgs` (search), `GET /api/ecgs/{id}` (the
//! record), `…/waveform?group=rhythm|median` (microvolts), `…/original` (the bytes as
//! received), `…/rendered?format=pdf|png` (the A4 printout). Access and audit as for imaging: an ECG is patient data of its site; other
//! sites get 404, audited.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::store::{self, EcgQuery, EcgRow};
use super::{EcgError, Kind};
use crate::audit::Outcome;
use crate::auth::RequestCtx;
use crate::auth::policy::{EcgRead, EcgSearch, ImagingStore, Permit, Target};
use crate::error::{ApiError, PathParams, QueryParams};

/// Why an ECG was not stored, as a problem.
pub fn refused(e: super::ingest::IngestError) -> ApiError {
    use super::ingest::IngestError;
    match e {
        IngestError::Ecg(e) => problem(e),
        IngestError::Dicom(why) => ApiError::Unprocessable {
            code: "dicom_refused",
            detail: format!("the ECG could not be stored as DICOM: {why}"),
        },
        IngestError::Sql(e) => e.into(),
        IngestError::Internal(why) => ApiError::internal(std::io::Error::other(why)),
    }
}

fn problem(e: EcgError) -> ApiError {
    match e {
        EcgError::UnknownFormat => ApiError::UnsupportedMediaType {
            detail: "not an ECG Ferry reads; accepted: DICOM ECG waveform (12-lead, General, \
                     Ambulatory), GE MUSE XML, HL7 aECG, SCP-ECG"
                .into(),
        },
        other => ApiError::Unprocessable { code: other.code(), detail: other.to_string() },
    }
}

/// The record as the API answers it.
pub fn view(r: &EcgRow) -> Value {
    json!({
        "id": r.id,
        "format": r.format,
        "acquired_at": r.acquired_at,
        "site": r.site,
        "study_uid": r.study_uid,
        "sop_uid": r.sop_instance_uid,
        "patient": {
            "name": r.patient_name, "id": r.patient_id,
            "birth_date": r.patient_birth_date, "sex": r.patient_sex,
        },
        "groups": r.summary["groups"],
        "measurements": r.summary["measurements"],
        "statements": r.summary["statements"],
        "device_model": r.summary["device_model"],
        "created_at": crate::time::rfc3339(r.created_at),
    })
}

/// `POST /api/ecgs`: stores an ECG for the person's site (201; 200 when the same ECG was
/// already there), answering its record.
pub async fn create(ctx: RequestCtx, body: Body) -> Result<Response, ApiError> {
    let limit = (ctx.state.settings.dicomweb.max_instance_mib * 1024 * 1024) as usize;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingStore> = ctx.permit(Target::site(&site, "ecg", None)).await?;
    let replace_as = ctx.state.settings.dicomweb.replaces().then(|| ctx.actor.name());
    let (row, fresh) = super::ingest::store(
        &ctx.state.db,
        &ctx.state.objects,
        &permit,
        bytes,
        &ctx.actor.name(),
        replace_as.as_deref(),
        ctx.now(),
    )
    .await
    .map_err(refused)?;
    if fresh {
        ctx.audit(
            "ecg.stored",
            "ecg",
            Some(row.id.clone()),
            Some(row.site.clone()),
            Outcome::Success,
            Some(format!("{} ECG", row.format)),
        )
        .await?;
    }
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(&row))).into_response())
}

/// The permit to read an ECG, or 404 (audited) whether it is missing or another site's.
async fn ecg_permit(ctx: &RequestCtx, id: &str) -> Result<Permit<EcgRead>, ApiError> {
    if !id.starts_with("ecg_") || id.len() > 40 {
        return Err(ApiError::NotFound { what: "ECG" });
    }
    let (site, shared) =
        store::sites_of(&ctx.state.db, id).await?.ok_or(ApiError::NotFound { what: "ECG" })?;
    let mut target = Target::site(&site, "ecg", Some(id.to_string()));
    target.shared_with = shared;
    ctx.permit(target).await
}

async fn load(ctx: &RequestCtx, id: &str) -> Result<EcgRow, ApiError> {
    let permit = ecg_permit(ctx, id).await?;
    store::get(&ctx.state.db, &permit).await?.ok_or(ApiError::NotFound { what: "ECG" })
}

/// The record and the ECG read from the bytes as received.
async fn load_parsed(ctx: &RequestCtx, id: &str) -> Result<(EcgRow, super::Ecg), ApiError> {
    let row = load(ctx, id).await?;
    let bytes = ctx.state.objects.get(&row.object_key).await.map_err(ApiError::internal)?;
    let ecg = tokio::task::spawn_blocking(move || super::parse(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(problem)?;
    Ok((row, ecg))
}

/// `GET /api/ecgs/{id}`.
pub async fn get(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&load(&ctx, &id).await?)))
}

#[derive(serde::Deserialize)]
pub struct WaveformQuery {
    group: Option<String>,
}

/// `GET /api/ecgs/{id}/waveform?group=rhythm|median`: `{"sampling_hz", "leads": [{"name",
/// "uv"}]}`, read from the bytes as received.
pub async fn waveform(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<WaveformQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = match q.group.as_deref().unwrap_or("rhythm") {
        "rhythm" => Kind::Rhythm,
        "median" => Kind::Median,
        _ => return Err(ApiError::bad_request("invalid_query", "group is rhythm or median")),
    };
    let (_, ecg) = load_parsed(&ctx, &id).await?;
    let g = ecg.group(kind).ok_or(ApiError::NotFound { what: "waveform group" })?;
    let leads: Vec<Value> =
        g.leads.iter().map(|(l, uv)| json!({ "name": l.name(), "uv": uv })).collect();
    Ok(Json(json!({ "sampling_hz": g.sampling_hz, "leads": leads })))
}

#[derive(serde::Deserialize)]
pub struct RenderedQuery {
    format: Option<String>,
    lang: Option<String>,
}

/// `GET /api/ecgs/{id}/rendered?format=pdf|png&lang=en|zh-CN`: the A4 printout (`print`);
/// the labels' language from `lang`, else the request's `Accept-Language`.
pub async fn rendered(
    ctx: RequestCtx,
    headers: axum::http::HeaderMap,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<RenderedQuery>,
) -> Result<Response, ApiError> {
    let png = match q.format.as_deref().unwrap_or("pdf") {
        "pdf" => false,
        "png" => true,
        _ => return Err(ApiError::bad_request("invalid_query", "format is pdf or png")),
    };
    let lang = q
        .lang
        .as_deref()
        .or_else(|| headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
        .map(super::print::Lang::from_tag)
        .unwrap_or(super::print::Lang::En);
    let (row, ecg) = load_parsed(&ctx, &id).await?;
    let out = tokio::task::spawn_blocking(move || {
        // Ferry's measurements as the record holds them, the same the viewer shows.
        let computed: super::Measurements =
            serde_json::from_value(row.summary["measurements"]["computed"].clone())
                .unwrap_or_default();
        let sheet = super::print::Sheet { ecg: &ecg, computed: &computed, site: &row.site, lang };
        if png { super::print::png(&sheet) } else { super::print::pdf(&sheet) }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        super::print::PrintError::NoFont => ApiError::Unavailable { detail: e.to_string() },
        super::print::PrintError::NoRhythm => ApiError::NotFound { what: "waveform group" },
        e => ApiError::internal(anyhow::anyhow!(e.to_string())),
    })?;
    let (ct, ext) = if png { ("image/png", "png") } else { ("application/pdf", "pdf") };
    let mut r = (StatusCode::OK, out).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `GET /api/ecgs/{id}/original`: the bytes exactly as received.
pub async fn original(
    ctx: RequestCtx,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let row = load(&ctx, &id).await?;
    let bytes = ctx.state.objects.get(&row.object_key).await.map_err(ApiError::internal)?;
    let (ct, ext) = match row.format.as_str() {
        "dicom" => ("application/dicom", "dcm"),
        "scp" => ("application/octet-stream", "scp"),
        _ => ("application/xml", "xml"),
    };
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.{ext}\"", row.id)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[derive(serde::Deserialize)]
pub struct SearchQuery {
    patient_id: Option<String>,
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
    site: Option<String>,
    format: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/ecgs`: the ECGs the person may see, newest first; every listed one is a read,
/// recorded so.
pub async fn list(
    ctx: RequestCtx,
    QueryParams(q): QueryParams<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let permit: Permit<EcgSearch> =
        ctx.permit(Target::site(&ctx.actor.user.site, "ecg", None)).await?;
    if let Some(f) = &q.format
        && !["dicom", "muse", "aecg", "scp"].contains(&f.as_str())
    {
        return Err(ApiError::bad_request("invalid_query", "format is dicom, muse, aecg or scp"));
    }
    let query = EcgQuery {
        patient_id: q.patient_id.filter(|v| !v.is_empty()),
        patient_name: q.name.filter(|v| !v.is_empty()),
        from: q.from.filter(|v| !v.is_empty()),
        to: q.to.filter(|v| !v.is_empty()),
        site: q.site.filter(|v| !v.is_empty()),
        format: q.format,
        limit: q.limit.unwrap_or(50),
        offset: q.offset.unwrap_or(0),
    };
    let rows = store::search(&ctx.state.db, &permit, &query).await?;
    ctx.record_reads(
        "ecg.read",
        "ecg",
        rows.iter().map(|r| (r.site.clone(), r.id.clone())),
        "listed",
    )
    .await?;
    Ok(Json(json!({ "ecgs": rows.iter().map(view).collect::<Vec<_>>() })))
}
