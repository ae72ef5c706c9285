//! The browser app. Its files live in `web/dist`; release builds embed them in the binary,
//! debug builds read them from disk so edits show without a rebuild. Unknown paths without a
//! file extension get `index.html` (the app routes on the client); unknown files are 404.
//!
//! Built for thin links: `index.html` names every file with its content hash (`/app.js?v=…`)
//! and carries an import map that does the same for every module the app imports, so a
//! browser keeps each file until it changes (`immutable`) and a repeat visit costs one small
//! revalidated page. Every file has an ETag (its content hash) and answers `If-None-Match`
//! with 304. Text is compressed by the router's compression layer.

use std::fmt::Write as _;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rust_embed::RustEmbed;
use sha2::Digest;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "web/dist"]
struct Assets;

const CSP_BASE: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
    connect-src 'self'; frame-ancestors 'none'";

/// A file's version: the first 16 hex digits of its SHA-256.
fn version_of(file: &rust_embed::EmbeddedFile) -> String {
    hex::encode(&file.metadata.sha256_hash()[..8])
}

/// Every app file and its version, sorted by path.
fn versions() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Assets::iter()
        .filter_map(|p| Assets::get(&p).map(|f| (p.to_string(), version_of(&f))))
        .collect();
    out.sort();
    out
}

/// `index.html` with every local file named by version, and the import map that versions
/// the modules imported from scripts. Returns the page and the import map's CSP hash.
fn versioned_index(html: &str) -> (String, String) {
    let versions = versions();
    let mut page = html.to_string();
    for (path, v) in &versions {
        for attr in ["href", "src"] {
            page =
                page.replace(&format!("{attr}=\"/{path}\""), &format!("{attr}=\"/{path}?v={v}\""));
        }
    }
    let mut imports = serde_json::Map::new();
    for (path, v) in versions.iter().filter(|(p, _)| p.ends_with(".js")) {
        imports.insert(format!("/{path}"), format!("/{path}?v={v}").into());
    }
    let map = serde_json::json!({ "imports": imports }).to_string();
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&map));
    let tag = format!("<script type=\"importmap\">{map}</script>");
    // The import map comes before anything that loads a module.
    page = match page.find("<link") {
        Some(i) => format!("{}{tag}\n  {}", &page[..i], &page[i..]),
        None => page.replacen("</head>", &format!("{tag}</head>"), 1),
    };
    (page, format!("'sha256-{hash}'"))
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// A response of `body` with its ETag, or 304 when the browser holds it already.
fn cached(
    headers: &HeaderMap,
    body: Vec<u8>,
    etag: String,
    mime: &str,
    cache: &'static str,
    csp: &str,
) -> Response {
    let mut resp = if etag_matches(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(mime)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" {
        return ApiError::NotFound { what: "API route" }.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let rel = path.trim_start_matches('/');
    if !rel.is_empty()
        && rel != "index.html"
        && let Some(file) = Assets::get(rel)
    {
        let v = version_of(&file);
        // Asked for by this very version: the browser may keep it for good.
        let asked = uri.query().and_then(|q| q.strip_prefix("v="));
        let cache = if asked == Some(v.as_str()) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let mime = mime_guess::from_path(rel).first_or_octet_stream();
        let mut csp = CSP_BASE.to_string();
        let _ = write!(csp, "; script-src 'self'");
        return cached(
            &headers,
            file.data.into_owned(),
            format!("\"{v}\""),
            mime.as_ref(),
            cache,
            &csp,
        );
    }
    // A file that is not there is a 404, so a missing module fails visibly.
    let last = rel.rsplit('/').next().unwrap_or("");
    if last.contains('.') && rel != "index.html" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(index) = Assets::get("index.html") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (page, map_hash) = versioned_index(&String::from_utf8_lossy(&index.data));
    let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(page.as_bytes())[..8]));
    let csp = format!("{CSP_BASE}; script-src 'self' {map_hash}");
    cached(&headers, page.into_bytes(), etag, "text/html; charset=utf-8", "no-cache", &csp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_names_files_by_version_and_maps_every_module() {
        let html = "<head>\n  <link rel=\"stylesheet\" href=\"/style.css\">\n  <script type=\"module\" src=\"/app.js\"></script>\n</head>";
        let (page, hash) = versioned_index(html);
        let v = |p: &str| version_of(&Assets::get(p).unwrap());
        assert!(page.contains(&format!("href=\"/style.css?v={}\"", v("style.css"))), "{page}");
        assert!(page.contains(&format!("src=\"/app.js?v={}\"", v("app.js"))), "{page}");
        let start = page.find("<script type=\"importmap\">").expect("an import map");
        assert!(start < page.find("<link").unwrap(), "the map comes first");
        let map = &page[start + 25..page.find("</script>").unwrap()];
        let map: serde_json::Value = serde_json::from_str(map).unwrap();
        for (path, _) in versions().iter().filter(|(p, _)| p.ends_with(".js")) {
            assert_eq!(map["imports"][format!("/{path}")], format!("/{path}?v={}", v(path)));
        }
        assert!(hash.starts_with("'sha256-"));
    }
}
