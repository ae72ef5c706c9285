//! Printing: pages laid out in millimetres and drawn on a `Surface` — `pdf::document` writes
//! vector PDF with the text in an embedded subset of Noto Sans CJK (so Chinese prints and stays
//! text), `png::page` paints pixels with the same font's outlines. Used by the ECG printout and
//! by reading reports.

pub mod pdf;
pub mod png;

use std::sync::OnceLock;

use ttf_parser::{Face, GlyphId};

/// Where Debian's `fonts-noto-cjk` puts the font printouts embed.
pub const FONT_PATH: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

/// Black.
pub const INK: [u8; 3] = [0, 0, 0];

/// The language of a printout's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// `zh…` is Chinese; anything else English.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.trim().to_ascii_lowercase().starts_with("zh") { Lang::Zh } else { Lang::En }
    }
    /// The English or the Chinese text.
    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        if self == Lang::Zh { zh } else { en }
    }
}

/// Why a page could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("the print font is not installed ({FONT_PATH}, Debian package fonts-noto-cjk)")]
    NoFont,
    #[error("{0}")]
    Encode(String),
}

pub(crate) struct LoadedFont {
    pub(crate) data: Vec<u8>,
    pub(crate) index: u32,
}

/// The font, read once on first use: the Simplified Chinese face of the collection.
pub(crate) fn font() -> Result<&'static LoadedFont, PrintError> {
    static FONT: OnceLock<Option<LoadedFont>> = OnceLock::new();
    FONT.get_or_init(|| {
        let data = std::fs::read(FONT_PATH).ok()?;
        let faces = ttf_parser::fonts_in_collection(&data).unwrap_or(1);
        let index = (0..faces)
            .find(|&i| {
                Face::parse(&data, i).is_ok_and(|f| {
                    f.names().into_iter().any(|n| {
                        n.name_id == ttf_parser::name_id::FULL_NAME
                            && n.to_string().is_some_and(|s| s.contains("CJK SC"))
                    })
                })
            })
            .unwrap_or(0);
        Face::parse(&data, index).ok()?;
        Some(LoadedFont { data, index })
    })
    .as_ref()
    .ok_or(PrintError::NoFont)
}

pub(crate) fn face() -> Result<Face<'static>, PrintError> {
    let f = font()?;
    Face::parse(&f.data, f.index).map_err(|_| PrintError::NoFont)
}

/// What a page is drawn on, in millimetres from the top-left corner.
pub trait Surface {
    fn polyline(&mut self, pts: &[(f32, f32)], width: f32, rgb: [u8; 3]);
    /// Text with its baseline starting at (x, y); `size` is the em in mm.
    fn text(&mut self, x: f32, y: f32, size: f32, s: &str);
}

/// How wide `s` is at `size` (the em in mm).
pub fn width(s: &str, size: f32) -> Result<f32, PrintError> {
    let face = face()?;
    let k = size / face.units_per_em() as f32;
    Ok(s.chars()
        .map(|ch| {
            let gid = face.glyph_index(ch).unwrap_or(GlyphId(0));
            face.glyph_hor_advance(gid).unwrap_or(0) as f32 * k
        })
        .sum())
}

/// `text` broken into lines no wider than `max` mm at `size`: at spaces where there are, and
/// between any two characters of a word too long for a line (Chinese has no spaces). Line
/// breaks in the text are kept.
pub fn wrap(text: &str, size: f32, max: f32) -> Result<Vec<String>, PrintError> {
    let face = face()?;
    let k = size / face.units_per_em() as f32;
    let adv = |ch: char| {
        let gid = face.glyph_index(ch).unwrap_or(GlyphId(0));
        face.glyph_hor_advance(gid).unwrap_or(0) as f32 * k
    };
    let mut lines = vec![];
    for para in text.lines() {
        let mut line = String::new();
        let mut w = 0.0;
        let mut last_space: Option<usize> = None;
        for ch in para.chars() {
            let a = adv(ch);
            if w + a > max && !line.is_empty() {
                match last_space.filter(|&i| i > 0) {
                    Some(i) => {
                        let rest = line.split_off(i);
                        lines.push(line.trim_end().to_string());
                        line = rest.trim_start().to_string();
                    }
                    None => lines.push(std::mem::take(&mut line)),
                }
                w = line.chars().map(adv).sum();
                last_space = None;
            }
            if ch == ' ' {
                last_space = Some(line.len());
            }
            line.push(ch);
            w += a;
        }
        lines.push(line);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_and_keep_every_character() {
        if font().is_err() {
            panic!("{FONT_PATH} is needed (scripts/install-deps installs fonts-noto-cjk)");
        }
        let text = "右肺下叶见一小结节，约4毫米，边界清楚。建议12个月后低剂量CT复查。\nA small nodule in the right lower lobe, about four millimetres, well defined.";
        let lines = wrap(text, 3.5, 60.0).unwrap();
        assert!(lines.len() >= 4, "{lines:?}");
        for l in &lines {
            assert!(width(l, 3.5).unwrap() <= 60.0 + 0.01, "{l}");
        }
        let joined: String = lines.concat().chars().filter(|c| !c.is_whitespace()).collect();
        let want: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(joined, want);
    }
}
