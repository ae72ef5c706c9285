//! A session's materials (PDF slides and handouts) without I/O: the rules for a file's name,
//! the check that a body is a PDF as it streams in, and the header that offers it back under
//! its own name.

use sha2::{Digest, Sha256};

/// The largest material, in bytes: a lecture's slides with pictures, not a video.
pub const MAX_BYTES: u64 = 100 << 20;
/// The most materials one session keeps.
pub const MAX_PER_SESSION: usize = 50;
/// The longest name, in characters.
pub const MAX_NAME: usize = 200;

pub fn new_material_id() -> String {
    crate::ids::prefixed_id("mt_")
}

pub fn is_material_id(s: &str) -> bool {
    crate::ids::is_prefixed_id(s, "mt_")
}

/// A file's name as the trainer gave it, trimmed: 1 to 200 characters, no control characters
/// and no path (a browser sends the base name; anything else is a client's mistake).
pub fn clean_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name: the file's name is missing".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("name: at most {MAX_NAME} characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err("name: a file's name, without a path or control characters".into());
    }
    Ok(name.to_string())
}

/// Why an upload's body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotPdf,
    TooLarge,
}

/// Watches an upload's bytes as they stream through: it must start as a PDF does (`%PDF-`)
/// and stay under `MAX_BYTES`; its SHA-256 and length for the record.
#[derive(Default)]
pub struct Intake {
    head: Vec<u8>,
    bytes: u64,
    hash: Sha256,
}

impl Intake {
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Refused> {
        self.bytes += chunk.len() as u64;
        if self.bytes > MAX_BYTES {
            return Err(Refused::TooLarge);
        }
        if self.head.len() < 5 {
            let want = 5 - self.head.len();
            self.head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            if !b"%PDF-".starts_with(&self.head) {
                return Err(Refused::NotPdf);
            }
        }
        self.hash.update(chunk);
        Ok(())
    }

    /// The whole body came: its length and SHA-256 (hex), or why it is refused.
    pub fn finish(self) -> Result<(u64, String), Refused> {
        if self.head.len() < 5 {
            return Err(Refused::NotPdf);
        }
        Ok((self.bytes, hex::encode(self.hash.finalize())))
    }
}

/// `Content-Disposition` offering the file under its name (RFC 6266: an ASCII fallback, and the
/// UTF-8 name percent-encoded, as Chinese names need).
pub fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("inline; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_pathless() {
        assert_eq!(clean_name("  心电图 第三周.pdf ").unwrap(), "心电图 第三周.pdf");
        assert!(clean_name("   ").is_err());
        assert!(clean_name("../etc/passwd").is_err());
        assert!(clean_name("a\\b.pdf").is_err());
        assert!(clean_name("a\nb.pdf").is_err());
        assert!(clean_name(&"页".repeat(200)).is_ok());
        assert!(clean_name(&"页".repeat(201)).is_err());
    }

    #[test]
    fn only_a_pdf_under_the_limit_passes_however_it_is_split() {
        let mut i = Intake::default();
        for c in [&b"%P"[..], b"D", b"F-1.4\n", b"rest"] {
            i.push(c).unwrap();
        }
        let (n, sha) = i.finish().unwrap();
        assert_eq!(n, 13);
        assert_eq!(sha, hex::encode(Sha256::digest(b"%PDF-1.4\nrest")));
        let mut i = Intake::default();
        assert_eq!(i.push(b"PK\x03\x04"), Err(Refused::NotPdf));
        let mut i = Intake::default();
        i.push(b"%PD").unwrap();
        assert_eq!(i.finish(), Err(Refused::NotPdf), "too short to be a PDF");
        let mut i = Intake::default();
        i.push(b"%PDF-").unwrap();
        let big = vec![0u8; MAX_BYTES as usize];
        assert_eq!(i.push(&big), Err(Refused::TooLarge));
    }

    #[test]
    fn a_chinese_name_is_offered_in_utf8_with_an_ascii_fallback() {
        assert_eq!(
            disposition("心电图 week 3.pdf"),
            "inline; filename=\"___ week 3.pdf\"; \
             filename*=UTF-8''%E5%BF%83%E7%94%B5%E5%9B%BE%20week%203.pdf"
        );
    }
}
