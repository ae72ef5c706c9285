//! The one reading of an `Accept` header for every DICOMweb answer (instances, frames, bulk
//! data, rendered pictures): media ranges with their parameters, best first.

/// One media range: its type and its parameters, lower-cased, values unquoted.
#[derive(Debug, PartialEq)]
pub(super) struct MediaRange {
    pub mime: String,
    params: Vec<(String, String)>,
    q: f32,
}

impl MediaRange {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether this range is `*/*`.
    pub fn any(&self) -> bool {
        self.mime == "*/*"
    }

    /// The media type the range names, or the `type` parameter of a `multipart/related` range
    /// (what each part is).
    pub fn part_type(&self) -> &str {
        if self.mime == "multipart/related" { self.param("type").unwrap_or("") } else { &self.mime }
    }
}

/// The ranges of `accept` (empty: anything), best first by `q` and then by order; ranges with
/// `q=0` are left out.
pub(super) fn ranges(accept: &str) -> Vec<MediaRange> {
    let accept = if accept.trim().is_empty() { "*/*" } else { accept };
    let mut out: Vec<MediaRange> = accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let mime = parts.next()?.trim().to_ascii_lowercase();
            if mime.is_empty() {
                return None;
            }
            let mut params = vec![];
            let mut q = 1.0f32;
            for p in parts {
                let Some((k, v)) = p.split_once('=') else { continue };
                let (k, v) =
                    (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string());
                if k == "q" {
                    q = v.parse().unwrap_or(1.0);
                } else {
                    params.push((k, v.to_ascii_lowercase()));
                }
            }
            Some(MediaRange { mime, params, q })
        })
        .filter(|r| r.q > 0.0)
        .collect();
    out.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_come_best_first_with_their_parameters() {
        let r = ranges(
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*;q=0.5, image/png, text/html;q=0",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].mime, "image/png");
        assert_eq!(r[1].part_type(), "application/octet-stream");
        assert_eq!(r[1].param("transfer-syntax"), Some("*"));
        assert!(ranges("").iter().all(|r| r.any()));
    }
}
