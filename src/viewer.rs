//! The OHIF viewer at `/viewer`: its prebuilt files from `viewer.dir` (fetched by
//! `scripts/fetch-viewer`), its `index.html` rebased under `/viewer/`, and an `app-config.js`
//! written here that points OHIF at Ferry's own `/dicomweb`. OHIF's requests carry the session
//! cookie (same origin), so it sees exactly what the signed-in person may see.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use sha2::Digest;

use crate::auth::RequestCtx;
use crate::state::AppState;

pub const PREFIX: &str = "/viewer";

/// The viewer may be framed by Ferry's own pages (the call page shows it beside the call).
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:; \
    worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
    font-src 'self' data:; connect-src 'self' data: blob:; frame-ancestors 'self'";

/// The OHIF configuration: one DICOMweb data source, this server, same origin.
fn app_config() -> String {
    format!(
        r#"// Written by Ferry: OHIF reads studies from this server's DICOMweb service.
window.config = {{
  routerBasename: '{PREFIX}',
  extensions: [],
  modes: [],
  // No first-run tour: it covers the image, and inside the call page's small viewer it hides
  // the toolbar.
  customizationService: {{ 'ohif.tours': {{ $set: [] }} }},
  // Ferry's name where OHIF's logo was, leading back to Ferry's study list.
  whiteLabeling: {{
    createLogoComponentFn: function (React) {{
      return React.createElement('a', {{
        href: '/#/studies',
        target: '_top',
        className: 'text-primary-active text-lg font-semibold',
        'aria-label': 'Ferry',
        style: {{ textDecoration: 'none', padding: '0 8px' }},
      }}, 'Ferry');
    }},
  }},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: {{ option: 'never' }},
  maxNumRequests: {{ interaction: 100, thumbnail: 25, prefetch: 10 }},
  defaultDataSourceName: 'ferry',
  dataSources: [
    {{
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'ferry',
      configuration: {{
        friendlyName: 'Ferry',
        name: 'ferry',
        wadoUriRoot: window.location.origin + '/dicomweb',
        qidoRoot: window.location.origin + '/dicomweb',
        wadoRoot: window.location.origin + '/dicomweb',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: 'bulkdata,video',
        omitQuotationForMultipartRequest: true,
        bulkDataURI: {{ enabled: true }},
      }},
    }},
  ],
}};
"#
    )
}

/// `index.html` with every root-relative reference moved under `/viewer/`.
fn rebase_index(html: &str) -> String {
    html.replace("window.PUBLIC_URL = '/'", &format!("window.PUBLIC_URL = '{PREFIX}/'"))
        .replace("src=\"/", &format!("src=\"{PREFIX}/"))
        .replace("href=\"/", &format!("href=\"{PREFIX}/"))
}

fn with_headers(mut r: Response, content_type: &str, cache: &'static str) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r
}

/// Serves everything under `/viewer`. The viewer's static files hold no data and are served
/// without a session lookup, through a static-file service: ranges, validators (ETag and
/// Last-Modified, 304), and the brotli or gzip copies `scripts/fetch-viewer` made beside each
/// file. The viewer's pages need a signed-in person, and a study the person may not see is
/// answered with Ferry's own page, not OHIF's error.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let rel = path.strip_prefix(PREFIX).unwrap_or("").trim_start_matches('/').to_string();
    if rel.contains("..") || rel.contains('\\') {
        return StatusCode::NOT_FOUND.into_response();
    }
    if rel == "app-config.js" {
        return with_headers(app_config().into_response(), "text/javascript", "no-cache");
    }
    let dir = state.settings.viewer.dir.clone();
    let file = dir.join(&rel);
    let is_file =
        !rel.is_empty() && tokio::fs::metadata(&file).await.map(|m| m.is_file()).unwrap_or(false);
    if is_file && rel != "index.html" {
        return static_file(req, &file, &rel).await;
    }
    // Any other path is a page of the viewer's own router, for a signed-in person.
    let (mut parts, _) = req.into_parts();
    let asked = parts.uri.path_and_query().map_or(path.clone(), |pq| pq.as_str().to_string());
    let ctx = match RequestCtx::from_request_parts(&mut parts, &state).await {
        Ok(ctx) => ctx,
        Err(_) => {
            // Back to this very page after signing in.
            let next: String = url::form_urlencoded::byte_serialize(asked.as_bytes()).collect();
            return Redirect::to(&format!("/#/login?next={next}")).into_response();
        }
    };
    // A study the person may not see: Ferry says so (the refusal is audited like any).
    let studies = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "StudyInstanceUIDs")
                .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for study in &studies {
        if crate::dicomweb::study_permit(&ctx, study).await.is_err() {
            let s: String = url::form_urlencoded::byte_serialize(study.as_bytes()).collect();
            return Redirect::to(&format!("/#/studies?unavailable={s}")).into_response();
        }
    }
    match tokio::fs::read_to_string(dir.join("index.html")).await {
        Ok(html) => with_headers(rebase_index(&html).into_response(), "text/html; charset=utf-8", "no-cache"),
        Err(_) => with_headers(
            (
                StatusCode::NOT_FOUND,
                "<!doctype html><title>Viewer not installed</title><h1>The OHIF viewer is not installed</h1>\
                 <p>Run <code>scripts/fetch-viewer</code> on the server, or set <code>viewer.dir</code>.</p>",
            )
                .into_response(),
            "text/html; charset=utf-8",
            "no-cache",
        ),
    }
}

/// One of the viewer's files: a range-capable, precompressed-aware static-file response with
/// Last-Modified and an ETag (of the file's time, size and encoding), answering validators
/// with 304. Bundles carry content hashes in their names and are kept for good.
async fn static_file(req: Request, file: &std::path::Path, rel: &str) -> Response {
    use tower::ServiceExt;
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let served = tower_http::services::ServeFile::new(file)
        .precompressed_br()
        .precompressed_gzip()
        .oneshot(req)
        .await;
    let Ok(resp) = served;
    let mut resp = resp.map(axum::body::Body::new);
    let h = resp.headers();
    let etag = match (h.get(header::LAST_MODIFIED), h.get(header::CONTENT_LENGTH)) {
        (Some(m), Some(len)) if resp.status() == StatusCode::OK => {
            let enc = h.get(header::CONTENT_ENCODING).and_then(|e| e.to_str().ok()).unwrap_or("id");
            let m = m.to_str().unwrap_or("");
            let tag = hex::encode(&sha2::Sha256::digest(m.as_bytes())[..6]);
            Some(format!("\"{tag}-{}-{enc}\"", len.to_str().unwrap_or("0")))
        }
        _ => None,
    };
    if let Some(tag) = &etag {
        if if_none_match
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
        {
            let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
            not_modified
                .headers_mut()
                .insert(header::ETAG, HeaderValue::from_str(tag).expect("ASCII"));
            resp = not_modified;
        } else if let Ok(v) = HeaderValue::from_str(tag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
    }
    let cache = if rel.contains(".bundle.") || rel.ends_with(".wasm") || is_hashed_asset(rel) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    resp
}

/// Files webpack names by their content hash alone (fonts, images): `31fb9346313fc3740d7b.woff2`.
fn is_hashed_asset(rel: &str) -> bool {
    let stem = rel.rsplit('/').next().unwrap_or("").split('.').next().unwrap_or("");
    stem.len() >= 16 && stem.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_is_rebased() {
        let html = r#"<script>window.PUBLIC_URL = '/';</script><script src="/app.js"></script><link href="/a.css">"#;
        let out = super::rebase_index(html);
        assert_eq!(
            out,
            r#"<script>window.PUBLIC_URL = '/viewer/';</script><script src="/viewer/app.js"></script><link href="/viewer/a.css">"#
        );
    }
}
