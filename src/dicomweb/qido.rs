//! QIDO-RS: studies, series and instances, nested and un-nested, with `includefield` filled
//! from the stored metadata; only studies the person may see ever match.

use super::*;

/// Query parameters, keyed by keyword or tag (`PatientName` or `00100010`).
pub(super) fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn param<'a>(
    pairs: &'a [(String, String)],
    keyword: &str,
    tag: &str,
) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword) || k.eq_ignore_ascii_case(tag))
        .map(|(_, v)| v.as_str())
}

pub(super) fn uid_list(v: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else { return Ok(vec![]) };
    let list: Vec<String> = v.split(['\\', ',']).map(|s| s.trim().to_string()).collect();
    if list.iter().any(|u| !is_uid(u)) {
        return Err(ApiError::bad_request("invalid_query", "UID lists hold UIDs separated by \\"));
    }
    Ok(list)
}

pub(super) fn number(pairs: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
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

pub(super) fn valid_date_query(v: &str) -> bool {
    let date = |d: &str| d.is_empty() || (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    match v.split_once('-') {
        Some((a, b)) => date(a) && date(b) && !(a.is_empty() && b.is_empty()),
        None => !v.is_empty() && date(v),
    }
}

/// The study-level keys of a QIDO query, and the limit the client asked for (if any).
pub(super) fn study_query(
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
pub(super) fn level_query(
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
pub(super) fn page_response(
    mut items: Vec<Value>,
    limit: i64,
    asked: Option<i64>,
    cap: i64,
) -> Response {
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
pub(super) fn include_fields(pairs: &[(String, String)]) -> Result<Vec<String>, ApiError> {
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
pub(super) fn add_fields(item: &mut Value, metadata: Option<&str>, fields: &[String]) {
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
pub(super) async fn include<F, Fut>(
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
pub(super) fn with_study(st: &store::StudyRow, item: Value, base: &str) -> Value {
    let mut m = json::study(st, base).as_object().cloned().unwrap_or_default();
    for key in ["00080061", "00201206", "00201208", "00081190"] {
        m.remove(key);
    }
    if let Value::Object(own) = item {
        m.extend(own);
    }
    Value::Object(m)
}

pub(super) async fn search_studies(
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
pub(super) async fn search_all_series(
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
pub(super) async fn instances_matching(
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

pub(super) async fn search_all_instances(
    ctx: RequestCtx,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    instances_matching(ctx, headers, None, raw).await
}

pub(super) async fn search_study_instances(
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

pub(super) async fn search_series(
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

pub(super) async fn search_instances(
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
