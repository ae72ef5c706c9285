//! STOW-RS: `POST /dicomweb/studies[/{study}]`, a streamed multipart of instances, each
//! checked and stored (up to `dicomweb.ingest_parallelism` at once), answered per instance.

use super::*;

/// The boundary of a `multipart/related; type="application/dicom"` body.
pub(super) fn stow_boundary(headers: &HeaderMap) -> Result<String, ApiError> {
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

pub(super) async fn stow(
    ctx: RequestCtx,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    stow_inner(ctx, None, headers, body).await
}

pub(super) async fn stow_into(
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

pub(super) async fn stow_inner(
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
    let replace_as = limits.replaces().then(|| ctx.actor.name());
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
pub(super) enum PartResult {
    /// (class, instance, study, series)
    Stored(String, String, String, String),
    /// The failure item, and whether it is a conflict (study mismatch, different duplicate).
    Failed(StowItem, bool),
}

pub(super) fn fail(status: u16) -> StowItem {
    StowItem {
        sop_class_uid: None,
        sop_instance_uid: None,
        retrieve_url: None,
        failure: Some(status),
        warning: None,
    }
}

pub(super) fn multipart_problem(e: &multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => ApiError::PayloadTooLarge,
        _ => ApiError::bad_request(
            "invalid_multipart",
            "the multipart body is malformed or cut short",
        ),
    }
}
