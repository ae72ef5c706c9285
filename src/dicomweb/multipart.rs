//! The one writer of `multipart/related` answers (instances as stored, frames, bulk data):
//! a boundary of its own, each part with its type and length.

use axum::http::HeaderValue;

pub(super) struct Multipart {
    boundary: String,
}

impl Multipart {
    pub fn new() -> Multipart {
        Multipart { boundary: format!("ferry-{}", crate::ids::random_id(12)) }
    }

    /// One part: its headers, its bytes, the line end.
    pub fn part(&self, part_type: &str, bytes: &[u8]) -> Vec<u8> {
        let head = format!(
            "--{}\r\nContent-Type: {part_type}\r\nContent-Length: {}\r\n\r\n",
            self.boundary,
            bytes.len()
        );
        let mut out = Vec::with_capacity(head.len() + bytes.len() + 2);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The closing delimiter.
    pub fn end(&self) -> Vec<u8> {
        format!("--{}--\r\n", self.boundary).into_bytes()
    }

    /// The answer's Content-Type: parts of `part_type`, with `extra` parameters (`;
    /// transfer-syntax=…`) if any.
    pub fn content_type(&self, part_type: &str, extra: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "multipart/related; type=\"{part_type}\"{extra}; boundary={}",
            self.boundary
        ))
        .expect("ASCII")
    }
}
