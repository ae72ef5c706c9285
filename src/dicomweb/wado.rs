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
