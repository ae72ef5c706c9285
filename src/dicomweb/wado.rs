//! WADO-RS retrieve: studies, series and instances as stored (streamed multipart).

use super::*;

pub(super) async fn retrieve_level(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
) -> Result<Response, ApiError> {
    retrieve(ctx, headers, l.study, l.series, l.instance).await
}

/// Streams the instances as `multipart/related; type="application/dicom"`, one object read
/// at a time, bytes exactly as received.
pub(super) async fn retrieve(
    ctx: RequestCtx,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    let acceptable = super::negotiate::ranges(accept).iter().any(|r| {
        r.any()
            || (r.mime == "multipart/related"
                && r.param("type").is_none_or(|t| t == "application/dicom"))
            || r.mime == "application/dicom"
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
    let m = std::sync::Arc::new(super::multipart::Multipart::new());
    let content_type = m.content_type("application/dicom", "");
    let objects = ctx.state.objects.clone();
    let stream = futures::stream::unfold(Some((rows.into_iter(), objects)), move |state| {
        let m = m.clone();
        async move {
            let (mut it, objects) = state?;
            match it.next() {
                Some(row) => match objects.get(&row.object_key).await {
                    Ok(bytes) => {
                        let part = m.part("application/dicom", &bytes);
                        Some((Ok::<_, std::io::Error>(Bytes::from(part)), Some((it, objects))))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "instance bytes unreadable during retrieve");
                        Some((Err(std::io::Error::other("object store read failed")), None))
                    }
                },
                None => Some((Ok(Bytes::from(m.end())), None)),
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, content_type);
    Ok(resp)
}
