//! DICOMweb over HTTP (`/dicomweb`): STOW-RS in, QIDO-RS search, WADO-RS retrieve. Thin:
//! parsing and checking are in `archive::parse`, the index in `archive::store`, and every
//! access goes through the policy (`ImagingStore`, `ImagingSearch`, `ImagingRead`).

use axum::Router;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::Value;

use crate::archive::is_uid;
use crate::archive::json::{self, StowItem};
use crate::archive::status::*;
use crate::archive::store::{self, StudyQuery};
use crate::audit::Outcome;
use crate::auth::RequestCtx;
use crate::auth::policy::{ImagingRead, ImagingSearch, ImagingStore, Permit, StudyShare, Target};
use crate::error::{ApiError, JsonBody, PathParams};
use crate::network::SiteId;
use crate::state::AppState;

mod render;

pub const DICOM_JSON: &str = "application/dicom+json";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/studies", get(search_studies).post(stow))
        .route("/studies/{study}", get(retrieve_level).post(stow_into))
        .route("/studies/{study}/series", get(search_series))
        .route("/studies/{study}/series/{series}", get(retrieve_level))
        .route("/studies/{study}/series/{series}/instances", get(search_instances))
        .route("/studies/{study}/instances", get(search_study_instances))
        .route("/series", get(search_all_series))
        .route("/instances", get(search_all_instances))
        .route("/studies/{study}/series/{series}/instances/{instance}", get(retrieve_level))
        .route("/studies/{study}/metadata", get(metadata_level))
        .route("/studies/{study}/series/{series}/metadata", get(metadata_level))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(metadata_level),
        )
        .route("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", get(frames))
        .route("/studies/{study}/rendered", get(render::rendered))
        .route("/studies/{study}/series/{series}/rendered", get(render::rendered))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(render::rendered),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            get(render::rendered),
        )
        .route("/studies/{study}/thumbnail", get(render::thumbnail))
        .route("/studies/{study}/series/{series}/thumbnail", get(render::thumbnail))
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            get(render::thumbnail),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
            get(render::thumbnail),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{*path}",
            get(bulkdata),
        )
}

fn dicom_json(status: StatusCode, v: Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(DICOM_JSON));
    r
}

fn base_url(ctx: &RequestCtx, headers: &HeaderMap) -> String {
    let scheme = if ctx.state.settings.tls_enabled() { "https" } else { "http" };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{scheme}://{host}/dicomweb")
}

// ---- STOW-RS ----

/// The boundary of a `multipart/related; type="application/dicom"` body.
fn stow_boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut parts = ct.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("").to_ascii_lowercase();
    let unsupported = || ApiError::UnsupportedMediaType {
        detail: "STOW-RS takes multipart/related; type=\"application/dicom\"".into(),
    };
    if essence != "multipart/related" {
        return Err(unsupported());
    }
    let mut boundary = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "boundary" => boundary = Some(v.to_string()),
                "type" if !v.eq_ignore_ascii_case("application/dicom") => return Err(unsupported()),
                _ => {}
            }
        }
    }
    boundary.filter(|b| !b.is_empty() && b.len() <= 200).ok_or_else(|| {
        ApiError::bad_request("invalid_multipart", "the Content-Type has no boundary")
    })
}

async fn stow(ctx: RequestCtx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    stow_inner(ctx, None, headers, body).await
}

async fn stow_into(
    ctx: RequestCtx,
    PathParams(study): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_uid(&study) {
        return Err(ApiError::bad_request("invalid_uid", "the study in the path is not a UID"));
    }
    stow_inner(ctx, Some(study), headers, body).await
}

async fn stow_inner(
    ctx: RequestCtx,
    study: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let boundary = stow_boundary(&headers)?;
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingStore> =
        ctx.permit(Target::site(&site, "study", study.clone())).await?;
    let limits = &ctx.state.settings.dicomweb;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(limits.max_instance_mib * 1024 * 1024)
            .whole_stream(limits.max_request_mib * 1024 * 1024),
    );
    let mut parts =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let base = base_url(&ctx, &headers);
    // Parts are read one after another, but checked and stored several at a time (bounded),
    // so object-store round trips (S3) overlap with parsing and with reading the next part.
    let window = limits.ingest_parallelism.max(1);
    let replace_as = limits.replaces().then(|| ctx.actor.user.id.to_string());
    let permit = std::sync::Arc::new(permit);
    let mut inflight: tokio::task::JoinSet<(usize, PartResult)> = tokio::task::JoinSet::new();
    let mut results: Vec<(usize, PartResult)> = vec![];
    let mut broken = None;
    let mut n = 0usize;
    loop {
        while inflight.len() >= window {
            if let Some(Ok(r)) = inflight.join_next().await {
                results.push(r);
            }
        }
        let field = match parts.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                broken = Some(multipart_problem(&e));
                break;
            }
        };
        n += 1;
        let part_type = field.content_type().map(|m| m.essence_str().to_string());
        if part_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("application/dicom")) {
            tracing::info!("STOW part refused: not application/dicom");
            results.push((n, PartResult::Failed(fail(CANNOT_UNDERSTAND), false)));
            continue;
        }
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let too_big = matches!(e, multer::Error::FieldSizeExceeded { .. });
                let status = if too_big { OUT_OF_RESOURCES } else { CANNOT_UNDERSTAND };
                results.push((n, PartResult::Failed(fail(status), false)));
                if !too_big {
                    broken = Some(multipart_problem(&e));
                }
                break;
            }
        };
        let (state, permit, study, now) =
            (ctx.state.clone(), permit.clone(), study.clone(), ctx.now());
        let replace_as = replace_as.clone();
        inflight.spawn(async move {
            let r = store::ingest(&state.db, &state.objects, &permit, bytes, study.as_deref(), replace_as.as_deref(), now).await;
            (n, match r {
                Ok((inst, _)) => PartResult::Stored(inst.sop_class_uid, inst.sop_instance_uid, inst.study_uid, inst.series_uid),
                Err((mismatch, rejection)) => {
                    tracing::info!(status = rejection.status, reason = %rejection.reason, "STOW instance refused");
                    let conflict = mismatch || rejection.status == DUPLICATE_INSTANCE;
                    PartResult::Failed(
                        StowItem {
                            sop_class_uid: rejection.sop_class_uid,
                            sop_instance_uid: rejection.sop_instance_uid,
                            retrieve_url: None,
                            failure: Some(rejection.status),
                            warning: None,
                        },
                        conflict,
                    )
                }
            })
        });
    }
    while let Some(r) = inflight.join_next().await {
        match r {
            Ok(r) => results.push(r),
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let (mut stored, mut failed) = (vec![], vec![]);
    let mut studies: Vec<String> = vec![];
    let mut conflict = false;
    for (_, r) in results {
        match r {
            PartResult::Stored(class, uid, inst_study, inst_series) => {
                stored.push(StowItem {
                    retrieve_url: Some(format!(
                        "{base}/studies/{inst_study}/series/{inst_series}/instances/{uid}"
                    )),
                    sop_class_uid: Some(class),
                    sop_instance_uid: Some(uid),
                    failure: None,
                    warning: None,
                });
                if !studies.contains(&inst_study) {
                    studies.push(inst_study);
                }
            }
            PartResult::Failed(item, c) => {
                conflict |= c;
                failed.push(item);
            }
        }
    }
    for s in &studies {
        ctx.audit(
            "imaging.stored",
            "study",
            Some(s.clone()),
            Some(site.to_string()),
            Outcome::Success,
            Some(format!("{} instance(s) stored by STOW-RS", stored.len())),
        )
        .await?;
    }
    if stored.is_empty() && failed.is_empty() {
        return Err(broken.unwrap_or_else(|| {
            ApiError::bad_request("empty_request", "the request holds no DICOM instance")
        }));
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else if !stored.is_empty() {
        StatusCode::ACCEPTED
    } else if conflict {
        StatusCode::CONFLICT
    } else {
        StatusCode::BAD_REQUEST
    };
    let study_url = (studies.len() == 1).then(|| format!("{base}/studies/{}", studies[0]));
    Ok(dicom_json(status, json::stow_response(study_url, &stored, &failed)))
}

/// What became of one part of a STOW-RS request.
enum PartResult {
    /// (class, instance, study, series)
    Stored(String, String, String, String),
    /// The failure item, and whether it is a conflict (study mismatch, different duplicate).
    Failed(StowItem, bool),
}

fn fail(status: u16) -> StowItem {
    StowItem {
        sop_class_uid: None,
        sop_instance_uid: None,
        retrieve_url: None,
        failure: Some(status),
        warning: None,
    }
}

fn multipart_problem(e: &multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => ApiError::PayloadTooLarge,
        _ => ApiError::bad_request(
            "invalid_multipart",
            "the multipart body is malformed or cut short",
        ),
    }
}

// ---- QIDO-RS ----

/// Query parameters, keyed by keyword or tag (`PatientName` or `00100010`).
fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], keyword: &str, tag: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword) || k.eq_ignore_ascii_case(tag))
        .map(|(_, v)| v.as_str())
}

fn uid_list(v: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else { return Ok(vec![]) };
    let list: Vec<String> = v.split(['\\', ',']).map(|s| s.trim().to_string()).collect();
    if list.iter().any(|u| !is_uid(u)) {
        return Err(ApiError::bad_request("invalid_query", "UID lists hold UIDs separated by \\"));
    }
    Ok(list)
}

fn number(pairs: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
    match param(pairs, key, key) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("`{key}` must be a non-negative integer"),
            )
        }),
    }
}

fn valid_date_query(v: &str) -> bool {
    let date = |d: &str| d.is_empty() || (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    match v.split_once('-') {
        Some((a, b)) => date(a) && date(b) && !(a.is_empty() && b.is_empty()),
        None => !v.is_empty() && date(v),
    }
}

/// The study-level keys of a QIDO query, and the limit the client asked for (if any).
fn study_query(
    pairs: &[(String, String)],
    cap: i64,
) -> Result<(StudyQuery, Option<i64>), ApiError> {
    let text = |k: &str, t: &str| param(pairs, k, t).map(str::to_string);
    let study_date = text("StudyDate", "00080020");
    if let Some(d) = &study_date
        && !valid_date_query(d)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD",
        ));
    }
    let asked = number(pairs, "limit")?;
    let q = StudyQuery {
        patient_name: text("PatientName", "00100010"),
        patient_id: text("PatientID", "00100020"),
        accession_number: text("AccessionNumber", "00080050"),
        study_description: text("StudyDescription", "00081030"),
        study_id: text("StudyID", "00200010"),
        referring_physician: text("ReferringPhysicianName", "00080090"),
        study_date,
        study_uids: uid_list(param(pairs, "StudyInstanceUID", "0020000D"))?,
        modalities: param(pairs, "ModalitiesInStudy", "00080061")
            .map(|v| v.split(['\\', ',']).filter(|m| !m.is_empty()).map(str::to_string).collect())
            .unwrap_or_default(),
        limit: asked.unwrap_or(cap).clamp(1, cap),
        offset: number(pairs, "offset")?.unwrap_or(0),
    };
    Ok((q, asked))
}

/// The series- and instance-level keys of an un-nested QIDO query.
fn level_query(
    pairs: &[(String, String)],
    cap: i64,
) -> Result<(store::LevelQuery, Option<i64>), ApiError> {
    let (study, asked) = study_query(pairs, cap)?;
    let int = |k: &str, t: &str| -> Result<Option<i64>, ApiError> {
        param(pairs, k, t)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request("invalid_query", format!("`{k}` must be an integer"))
                })
            })
            .transpose()
    };
    Ok((
        store::LevelQuery {
            study,
            series_uids: uid_list(param(pairs, "SeriesInstanceUID", "0020000E"))?,
            modality: param(pairs, "Modality", "00080060").map(str::to_string),
            series_number: int("SeriesNumber", "00200011")?,
            sop_uids: uid_list(param(pairs, "SOPInstanceUID", "00080018"))?,
            sop_class_uids: uid_list(param(pairs, "SOPClassUID", "00080016"))?,
            instance_number: int("InstanceNumber", "00200013")?,
        },
        asked,
    ))
}

/// Trims a result list to the limit and answers it, with the standard Warning when the
/// server's cap (not the client's own limit) cut it short.
fn page_response(mut items: Vec<Value>, limit: i64, asked: Option<i64>, cap: i64) -> Response {
    let truncated = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let mut resp = dicom_json(StatusCode::OK, Value::Array(items));
    if truncated && asked.is_none_or(|a| a > cap) {
        resp.headers_mut().insert(
            header::WARNING,
            HeaderValue::from_static(
                "299 ferry \"The number of results exceeded the maximum supported by the server. Additional results can be requested.\"",
            ),
        );
    }
    resp
}

/// The attributes named by `includefield` (keywords or tags, repeated or comma-separated),
/// as 8-digit tags; `all` is accepted and adds what the stored metadata holds.
fn include_fields(pairs: &[(String, String)]) -> Result<Vec<String>, ApiError> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let dict = dicom_dictionary_std::StandardDataDictionary;
    let mut out = vec![];
    for (_, v) in pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case("includefield")) {
        for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if f.eq_ignore_ascii_case("all") {
                out.push("all".to_string());
            } else if f.len() == 8 && f.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(f.to_ascii_uppercase());
            } else if let Some(e) = dict.by_name(f) {
                let t = e.tag_range().inner();
                out.push(format!("{:04X}{:04X}", t.group(), t.element()));
            } else {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("includefield `{f}` is neither a DICOM keyword nor a tag"),
                ));
            }
        }
    }
    Ok(out)
}

/// Adds the included fields a result lacks, from stored DICOM JSON metadata (bulk values are
/// never copied into search results).
fn add_fields(item: &mut Value, metadata: Option<&str>, fields: &[String]) {
    let (Some(obj), Some(meta)) =
        (item.as_object_mut(), metadata.and_then(|m| serde_json::from_str::<Value>(m).ok()))
    else {
        return;
    };
    let Some(meta) = meta.as_object() else { return };
    let all = fields.iter().any(|f| f == "all");
    for (tag, v) in meta {
        let wanted = all || fields.contains(tag);
        if wanted && !obj.contains_key(tag) && v.get("BulkDataURI").is_none() && tag != "7FE00010" {
            obj.insert(tag.clone(), v.clone());
        }
    }
}

/// Adds the `includefield` attributes to the first `limit` results, result `n` from the stored
/// metadata `meta(n)` fetches. Nothing is fetched when no fields were asked for.
async fn include<F, Fut>(
    items: &mut [Value],
    fields: &[String],
    limit: usize,
    mut meta: F,
) -> Result<(), ApiError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, crate::storage::DbError>>,
{
    if fields.is_empty() {
        return Ok(());
    }
    for (n, item) in items.iter_mut().take(limit).enumerate() {
        add_fields(item, meta(n).await?.as_deref(), fields);
    }
    Ok(())
}

/// An un-nested result (series or instance attributes) with its study's attributes, which
/// the un-nested forms carry; the study's own counts and URL are left out.
fn with_study(st: &store::StudyRow, item: Value, base: &str) -> Value {
    let mut m = json::study(st, base).as_object().cloned().unwrap_or_default();
    for key in ["00080061", "00201206", "00201208", "00081190"] {
        m.remove(key);
    }
    if let Value::Object(own) = item {
        m.extend(own);
    }
    Value::Object(m)
}

async fn search_studies(
    ctx: RequestCtx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw);
    let cap = ctx.state.settings.dicomweb.max_results as i64;
    let (q, asked) = study_query(&pairs, cap)?;
    let fields = include_fields(&pairs)?;
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingSearch> = ctx.permit(Target::site(&site, "study", None)).await?;
    let rows = store::search_studies(&ctx.state.db, &permit, &q).await?;
    let base = base_url(&ctx, &headers);
    let mut items: Vec<Value> = rows.iter().map(|r| json::study(r, &base)).collect();
    let db = &ctx.state.db;
    include(&mut items, &fields, q.limit as usize, |n| {
        store::first_metadata(db, &permit, &rows[n].study_uid, None, None)
    })
    .await?;
    Ok(page_response(items, q.limit, asked, cap))
}

/// Un-nested `/series`: series of every study the user may see, with their study's
/// attributes.
async fn search_all_series(
    ctx: RequestCtx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw);
    let cap = ctx.state.settings.dicomweb.max_results as i64;
    let (q, asked) = level_query(&pairs, cap)?;
    let fields = include_fields(&pairs)?;
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingSearch> = ctx.permit(Target::site(&site, "series", None)).await?;
    let rows = store::search_all_series(&ctx.state.db, &permit, &q).await?;
    let base = base_url(&ctx, &headers);
    let mut items: Vec<Value> =
        rows.iter().map(|(st, se)| with_study(st, json::series(se, &base), &base)).collect();
    let db = &ctx.state.db;
    include(&mut items, &fields, q.study.limit as usize, |n| {
        let se = &rows[n].1;
        store::first_metadata(db, &permit, &se.study_uid, Some(&se.series_uid), None)
    })
    .await?;
    Ok(page_response(items, q.study.limit, asked, cap))
}

/// Un-nested `/instances`, and `/studies/{study}/instances` (the same with the study fixed).
async fn instances_matching(
    ctx: RequestCtx,
    headers: HeaderMap,
    study: Option<String>,
    raw: Option<String>,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw);
    let cap = ctx.state.settings.dicomweb.max_results as i64;
    let (mut q, asked) = level_query(&pairs, cap)?;
    let fields = include_fields(&pairs)?;
    if let Some(s) = &study {
        // The study must be visible (404 and audited otherwise), then it is one more key.
        study_permit(&ctx, s).await?;
        q.study.study_uids = vec![s.clone()];
    }
    let site = ctx.actor.user.site.clone();
    let permit: Permit<ImagingSearch> = ctx.permit(Target::site(&site, "instance", None)).await?;
    let rows = store::search_all_instances(&ctx.state.db, &permit, &q).await?;
    let base = base_url(&ctx, &headers);
    let mut items: Vec<Value> =
        rows.iter().map(|(st, i)| with_study(st, json::instance(i, &base), &base)).collect();
    let db = &ctx.state.db;
    include(&mut items, &fields, q.study.limit as usize, |n| {
        let i = &rows[n].1;
        store::first_metadata(
            db,
            &permit,
            &i.study_uid,
            Some(&i.series_uid),
            Some(&i.sop_instance_uid),
        )
    })
    .await?;
    Ok(page_response(items, q.study.limit, asked, cap))
}

async fn search_all_instances(
    ctx: RequestCtx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    instances_matching(ctx, headers, None, raw).await
}

async fn search_study_instances(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(study): PathParams<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    instances_matching(ctx, headers, Some(study), raw).await
}

/// The permit to read a study, or 404 — the same answer whether the study does not exist or
/// belongs to a site the actor may not see (the latter is audited as a refusal).
pub(crate) async fn study_permit(
    ctx: &RequestCtx,
    study: &str,
) -> Result<Permit<ImagingRead>, ApiError> {
    if !is_uid(study) {
        return Err(ApiError::NotFound { what: "study" });
    }
    let (origin, shared) = store::study_sites(&ctx.state.db, study)
        .await?
        .ok_or(ApiError::NotFound { what: "study" })?;
    let mut target = Target::site(&origin, "study", Some(study.to_string()));
    target.shared_with = shared;
    ctx.permit(target).await
}

async fn search_series(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams(study): PathParams<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw);
    let fields = include_fields(&pairs)?;
    let permit = study_permit(&ctx, &study).await?;
    let uids = uid_list(param(&pairs, "SeriesInstanceUID", "0020000E"))?;
    let rows =
        store::list_series(&ctx.state.db, &permit, param(&pairs, "Modality", "00080060"), &uids)
            .await?;
    let base = base_url(&ctx, &headers);
    let mut items: Vec<Value> = rows.iter().map(|r| json::series(r, &base)).collect();
    let db = &ctx.state.db;
    include(&mut items, &fields, rows.len(), |n| {
        store::first_metadata_of(db, &permit, Some(&rows[n].series_uid), None)
    })
    .await?;
    Ok(dicom_json(StatusCode::OK, Value::Array(items)))
}

async fn search_instances(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams((study, series)): PathParams<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw);
    let fields = include_fields(&pairs)?;
    let sops = uid_list(param(&pairs, "SOPInstanceUID", "00080018"))?;
    let permit = study_permit(&ctx, &study).await?;
    let mut rows = store::list_instances(&ctx.state.db, &permit, Some(&series), None).await?;
    rows.retain(|r| sops.is_empty() || sops.contains(&r.sop_instance_uid));
    let base = base_url(&ctx, &headers);
    let mut items: Vec<Value> = rows.iter().map(|r| json::instance(r, &base)).collect();
    let db = &ctx.state.db;
    include(&mut items, &fields, rows.len(), |n| {
        store::first_metadata_of(db, &permit, Some(&series), Some(&rows[n].sop_instance_uid))
    })
    .await?;
    Ok(dicom_json(StatusCode::OK, Value::Array(items)))
}

// ---- WADO-RS ----

/// A study, series, instance or frames addressed by the path
/// (`{study}[/series/{series}[/instances/{instance}[/frames/{frames}]]]`).
struct Level {
    study: String,
    series: Option<String>,
    instance: Option<String>,
    frames: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Level {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let PathParams(mut m) =
            PathParams::<std::collections::HashMap<String, String>>::from_request_parts(
                parts, state,
            )
            .await?;
        Ok(Level {
            study: m.remove("study").ok_or(ApiError::NotFound { what: "study" })?,
            series: m.remove("series"),
            instance: m.remove("instance"),
            frames: m.remove("frames"),
        })
    }
}

async fn retrieve_level(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
) -> Result<Response, ApiError> {
    retrieve(ctx, headers, l.study, l.series, l.instance).await
}

/// Streams the instances as `multipart/related; type="application/dicom"`, one object read
/// at a time, bytes exactly as received.
async fn retrieve(
    ctx: RequestCtx,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    let acceptable = accept.split(',').any(|a| {
        let a = a.trim().to_ascii_lowercase();
        a.starts_with("*/*")
            || (a.starts_with("multipart/related")
                && (!a.contains("type=") || a.contains("application/dicom")))
            || a.starts_with("application/dicom")
    });
    if !acceptable {
        return Err(ApiError::NotAcceptable {
            detail: "instances are sent as multipart/related; type=\"application/dicom\"".into(),
        });
    }
    let permit = study_permit(&ctx, &study).await?;
    let rows =
        store::list_instances(&ctx.state.db, &permit, series.as_deref(), instance.as_deref())
            .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound {
            what: if instance.is_some() { "instance" } else { "series" },
        });
    }
    let boundary = format!("ferry-{}", crate::ids::random_id(12));
    let objects = ctx.state.objects.clone();
    let b = boundary.clone();
    let stream = futures::stream::unfold(Some((rows.into_iter(), objects)), move |state| {
        let b = b.clone();
        async move {
            let (mut it, objects) = state?;
            match it.next() {
                Some(row) => match objects.get(&row.object_key).await {
                    Ok(bytes) => {
                        let head = format!(
                            "--{b}\r\nContent-Type: application/dicom\r\nContent-Length: {}\r\n\r\n",
                            bytes.len()
                        );
                        let mut part = Vec::with_capacity(head.len() + bytes.len() + 2);
                        part.extend_from_slice(head.as_bytes());
                        part.extend_from_slice(&bytes);
                        part.extend_from_slice(b"\r\n");
                        Some((Ok::<_, std::io::Error>(Bytes::from(part)), Some((it, objects))))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "instance bytes unreadable during retrieve");
                        Some((Err(std::io::Error::other("object store read failed")), None))
                    }
                },
                None => Some((Ok(Bytes::from(format!("--{b}--\r\n"))), None)),
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!(
            "multipart/related; type=\"application/dicom\"; boundary={boundary}"
        ))
        .expect("ASCII"),
    );
    Ok(resp)
}

// ---- metadata, frames, bulk data ----

async fn metadata_response(
    ctx: RequestCtx,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let permit = study_permit(&ctx, &study).await?;
    let items =
        store::metadata(&ctx.state.db, &permit, series.as_deref(), instance.as_deref()).await?;
    if items.is_empty() {
        return Err(ApiError::NotFound {
            what: if instance.is_some() { "instance" } else { "series" },
        });
    }
    let base = format!("{}/", base_url(&ctx, &headers));
    let mut body = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(
            &item.replace(&format!("\"{}", crate::archive::BASE_PLACEHOLDER), &format!("\"{base}")),
        );
    }
    body.push(']');
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(DICOM_JSON));
    Ok(r)
}

async fn metadata_level(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
) -> Result<Response, ApiError> {
    metadata_response(ctx, headers, l.study, l.series, l.instance).await
}

/// How frames may be sent to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameForm {
    /// The bytes as stored (native, or the stored compressed syntax).
    AsStored,
    /// Decoded to native little endian (the client wants uncompressed, the stored frames
    /// are compressed).
    Decoded,
}

/// What the client accepts for frames: the stored syntax (`transfer-syntax=*`, or the stored
/// one named), or uncompressed (explicit VR little endian, which compressed frames are
/// decoded to). The first acceptable media range wins.
fn frames_form(accept: &str, stored_ts: &str) -> Option<FrameForm> {
    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    let native = crate::archive::frames::is_native(stored_ts) && stored_ts != "1.2.840.10008.1.2.2";
    let uncompressed = if native { FrameForm::AsStored } else { FrameForm::Decoded };
    accept.split(',').find_map(|a| {
        let a = a.trim().to_ascii_lowercase();
        if a.starts_with("*/*") {
            return Some(FrameForm::AsStored);
        }
        let ts = a
            .split(';')
            .find_map(|p| p.trim().strip_prefix("transfer-syntax="))
            .map(|t| t.trim_matches('"'));
        let octets = a.contains("application/octet-stream") || !a.contains("image/");
        match ts {
            Some("*") => Some(FrameForm::AsStored),
            Some(t) if t == stored_ts => Some(FrameForm::AsStored),
            Some(EXPLICIT_LE) => Some(uncompressed),
            Some(_) => None,
            None if octets => Some(uncompressed),
            None => Some(FrameForm::AsStored),
        }
    })
}

/// Reads and joins byte ranges of one stored object (a frame's fragments, say).
async fn read_ranges(
    ctx: &RequestCtx,
    key: &str,
    ranges: impl IntoIterator<Item = &(u64, u64)>,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    for (off, len) in ranges {
        let part =
            ctx.state.objects.get_range(key, *off..off + len).await.map_err(ApiError::internal)?;
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// A `multipart/related; type="application/octet-stream"` answer of the given parts, each
/// labelled with `part_type`; `ts` (if any) is also named on the whole.
fn octet_multipart(parts: Vec<Vec<u8>>, part_type: &str, ts: Option<&str>) -> Response {
    let boundary = format!("ferry-{}", crate::ids::random_id(12));
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 128).sum());
    for p in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {part_type}\r\nContent-Length: {}\r\n\r\n",
                p.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(&p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let ts = ts.map(|t| format!("; transfer-syntax={t}")).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!(
            "multipart/related; type=\"application/octet-stream\"{ts}; boundary={boundary}"
        ))
        .expect("ASCII"),
    );
    resp
}

async fn frames(
    ctx: RequestCtx,
    headers: HeaderMap,
    PathParams((study, series, instance, list)): PathParams<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let wanted: Vec<usize> = list
        .split(',')
        .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n >= 1))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_frames",
                "frame numbers are 1-based integers, comma-separated",
            )
        })?;
    let permit = study_permit(&ctx, &study).await?;
    let (key, ts, index) = store::frame_source(&ctx.state.db, &permit, &series, &instance)
        .await?
        .ok_or(ApiError::NotFound { what: "instance" })?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    let Some(form) = frames_form(accept, &ts) else {
        return Err(ApiError::NotAcceptable {
            detail: format!(
                "frames of this instance are sent as stored (transfer-syntax={ts}) or uncompressed (transfer-syntax=1.2.840.10008.1.2.1)"
            ),
        });
    };
    if form == FrameForm::Decoded || index.is_none() {
        // Compressed frames asked for uncompressed, or frames that could not be indexed
        // (big endian, deflated): decode each one.
        if let Some(i) = &index
            && wanted.iter().any(|n| *n > i.len())
        {
            return Err(ApiError::NotFound { what: "frame" });
        }
        let mut parts = Vec::with_capacity(wanted.len());
        for n in wanted {
            let obj = render::load_frame(&ctx, &key, &ts, index.as_ref(), n).await?;
            parts.push(render::blocking(&ctx, move || obj.native()).await?);
        }
        let explicit = "1.2.840.10008.1.2.1";
        let part_type = format!("application/octet-stream; transfer-syntax={explicit}");
        return Ok(octet_multipart(parts, &part_type, Some(explicit)));
    }
    let index = index.ok_or_else(|| {
        ApiError::bad_request(
            "frames_unavailable",
            "the frames of this instance could not be indexed (big endian or deflated data set)",
        )
    })?;
    if wanted.iter().any(|n| *n > index.len()) {
        return Err(ApiError::NotFound { what: "frame" });
    }
    let ts_out =
        if crate::archive::frames::is_native(&ts) { "1.2.840.10008.1.2.1".to_string() } else { ts };
    let mut parts = Vec::with_capacity(wanted.len());
    for n in wanted {
        parts.push(read_ranges(&ctx, &key, &index[n - 1]).await?);
    }
    let part_type = format!("application/octet-stream; transfer-syntax={ts_out}");
    Ok(octet_multipart(parts, &part_type, Some(&ts_out)))
}

/// A bulk value, at any depth (`{tag}` or `{sequence}/{item}/{tag}`…): one range read where
/// the instance has a bulk index (built at ingest), else read from the whole stored instance
/// within the server's whole-file budget. Pixel data (`7FE00010`) comes from the frame index.
async fn bulkdata(
    ctx: RequestCtx,
    PathParams((study, series, instance, path)): PathParams<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let steps = crate::archive::bulk::parse_path(&path).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_tag",
            "bulk data is addressed by 8-digit hex tags and item numbers (54000100/0/54001010)",
        )
    })?;
    let permit = study_permit(&ctx, &study).await?;
    if path == "7FE00010" {
        let (key, _, index) = store::frame_source(&ctx.state.db, &permit, &series, &instance)
            .await?
            .ok_or(ApiError::NotFound { what: "instance" })?;
        let index = index.ok_or(ApiError::NotFound { what: "bulk data" })?;
        let bytes = read_ranges(&ctx, &key, index.iter().flatten()).await?;
        return Ok(octet_multipart(vec![bytes], "application/octet-stream", None));
    }
    let (key, _, range, indexed) =
        store::bulk_source(&ctx.state.db, &permit, &series, &instance, &path)
            .await?
            .ok_or(ApiError::NotFound { what: "instance" })?;
    let bytes = match (range, indexed) {
        (Some(r), _) => read_ranges(&ctx, &key, std::iter::once(&r)).await?,
        // Indexed, and not among the large values: no such bulk value.
        (None, true) => return Err(ApiError::NotFound { what: "bulk data" }),
        (None, false) => {
            let (file, _budget) = whole_file(&ctx, &key).await?;
            tokio::task::spawn_blocking(move || value_at(&file, &steps))
                .await
                .map_err(ApiError::internal)?
                .ok_or(ApiError::NotFound { what: "bulk data" })?
        }
    };
    Ok(octet_multipart(vec![bytes], "application/octet-stream", None))
}

/// The value at `steps` in a Part 10 file, read by the DICOM parser (for instances the bulk
/// index could not cover: big endian, deflated).
fn value_at(file: &[u8], steps: &[(dicom_core::Tag, Option<usize>)]) -> Option<Vec<u8>> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(std::io::Cursor::new(file))
        .ok()?;
    let mut here: &dicom_object::InMemDicomObject = &obj;
    for (tag, item) in steps {
        let e = here.element_opt(*tag).ok().flatten()?;
        match item {
            Some(n) => here = e.items()?.get(*n)?,
            None => return e.value().to_bytes().ok().map(|b| b.into_owned()),
        }
    }
    None
}

/// A whole stored instance in memory, for what its indexes cannot serve: held together with a
/// share of the server's whole-file budget (`dicomweb.whole_file_budget_mib`, one permit per
/// MiB), so that however many such requests arrive, the memory they take stays bounded.
pub(super) async fn whole_file(
    ctx: &RequestCtx,
    key: &str,
) -> Result<(bytes::Bytes, tokio::sync::OwnedSemaphorePermit), ApiError> {
    let size = ctx
        .state
        .objects
        .size(key)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound { what: "instance" })?;
    let total = ctx.state.settings.dicomweb.whole_file_budget_mib.clamp(1, u32::MAX as u64) as u32;
    let want = (size.div_ceil(1 << 20) as u32).clamp(1, total);
    let budget =
        ctx.state.whole_files.clone().acquire_many_owned(want).await.map_err(ApiError::internal)?;
    let file = ctx.state.objects.get(key).await.map_err(ApiError::internal)?;
    Ok((file, budget))
}

// ---- shares ----

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    site: SiteId,
}

/// `POST /api/studies/{study}/shares {"site": …}`: lets another site see a study.
pub async fn share(
    ctx: RequestCtx,
    PathParams(study): PathParams<String>,
    JsonBody(body): JsonBody<ShareBody>,
) -> Result<StatusCode, ApiError> {
    crate::auth::existing_site(&ctx.state, body.site.as_str()).await?;
    if !is_uid(&study) {
        return Err(ApiError::NotFound { what: "study" });
    }
    let (origin, shared) = store::study_sites(&ctx.state.db, &study)
        .await?
        .ok_or(ApiError::NotFound { what: "study" })?;
    let mut target = Target::site(&origin, "study", Some(study.clone()));
    target.shared_with = shared;
    let permit: Permit<StudyShare> = ctx.permit(target).await?;
    store::share_study(&ctx.state.db, &permit, &body.site, ctx.actor.user.id.as_str(), ctx.now())
        .await?;
    ctx.audit(
        "study.shared",
        "study",
        Some(study),
        Some(origin.to_string()),
        Outcome::Success,
        Some(format!("with {}", body.site)),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
