//! WADO-RS metadata (one SQL query: built at ingest), frames (range reads, or decoded) and
//! bulk data (range reads from the bulk index; else the whole instance within the budget).

use super::*;

pub(super) async fn metadata_response(
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

pub(super) async fn metadata_level(
    ctx: RequestCtx,
    headers: HeaderMap,
    l: Level,
) -> Result<Response, ApiError> {
    metadata_response(ctx, headers, l.study, l.series, l.instance).await
}

/// How frames may be sent to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameForm {
    /// The bytes as stored (native, or the stored compressed syntax).
    AsStored,
    /// Decoded to native little endian (the client wants uncompressed, the stored frames
    /// are compressed).
    Decoded,
}

/// What the client accepts for frames: the stored syntax (`transfer-syntax=*`, or the stored
/// one named), or uncompressed (explicit VR little endian, which compressed frames are
/// decoded to). The first acceptable media range wins.
pub(super) fn frames_form(accept: &str, stored_ts: &str) -> Option<FrameForm> {
    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    let native = crate::archive::frames::is_native(stored_ts) && stored_ts != "1.2.840.10008.1.2.2";
    let uncompressed = if native { FrameForm::AsStored } else { FrameForm::Decoded };
    super::negotiate::ranges(accept).into_iter().find_map(|r| {
        if r.any() {
            return Some(FrameForm::AsStored);
        }
        let ts = r.param("transfer-syntax");
        let octets = !r.part_type().starts_with("image/");
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
pub(super) async fn read_ranges(
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
pub(super) fn octet_multipart(parts: Vec<Vec<u8>>, part_type: &str, ts: Option<&str>) -> Response {
    let m = super::multipart::Multipart::new();
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 128).sum());
    for p in parts {
        body.extend(m.part(part_type, &p));
    }
    body.extend(m.end());
    let ts = ts.map(|t| format!("; transfer-syntax={t}")).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, m.content_type("application/octet-stream", &ts));
    resp
}

pub(super) async fn frames(
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
pub(super) async fn bulkdata(
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
pub(super) fn value_at(file: &[u8], steps: &[(dicom_core::Tag, Option<usize>)]) -> Option<Vec<u8>> {
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
