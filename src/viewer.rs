//! The OHIF viewer at `/viewer`: its prebuilt files from `viewer.dir` (fetched by
//! `scripts/fetch-viewer`), its `index.html` rebased under `/viewer/`, and an `app-config.js`
//! written here that points OHIF at Ferry's own `/dicomweb`. OHIF's requests carry the session
//! cookie (same origin), so it sees exactly what the signed-in person may see.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

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
  customizationService: {{}},
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

/// Serves everything under `/viewer`. The viewer's pages need a signed-in person; its static
/// files do not (they hold no data).
pub async fn serve(
    State(state): State<AppState>,
    ctx: Result<RequestCtx, crate::error::ApiError>,
    req: Request,
) -> Response {
    let path = req.uri().path();
    let rel = path.strip_prefix(PREFIX).unwrap_or("").trim_start_matches('/');
    if rel.contains("..") || rel.contains('\\') {
        return StatusCode::NOT_FOUND.into_response();
    }
    if rel == "app-config.js" {
        return with_headers(app_config().into_response(), "text/javascript", "no-cache");
    }
    let dir = &state.settings.viewer.dir;
    let file = dir.join(rel);
    let is_file =
        !rel.is_empty() && tokio::fs::metadata(&file).await.map(|m| m.is_file()).unwrap_or(false);
    if is_file && rel != "index.html" {
        return match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let mime = mime_guess::from_path(&file).first_or_octet_stream();
                // Bundles carry content hashes in their names.
                let cache = if rel.contains(".bundle.") || rel.ends_with(".wasm") {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                with_headers(bytes.into_response(), mime.as_ref(), cache)
            }
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        };
    }
    // Any other path is a page of the viewer's own router.
    if ctx.is_err() {
        // Back to this very page after signing in.
        let asked = req.uri().path_and_query().map_or(path, |pq| pq.as_str());
        let next: String = url::form_urlencoded::byte_serialize(asked.as_bytes()).collect();
        return Redirect::to(&format!("/#/login?next={next}")).into_response();
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
