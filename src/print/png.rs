//! Raster pages: a `Surface` that paints pixels (tiny-skia) with the print font's outlines,
//! and a page as a PNG whose pHYs chunk gives its resolution.

use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Stroke, Transform};
use ttf_parser::{Face, GlyphId, OutlineBuilder};

use super::{PrintError, Surface, face};

struct PngSurface<'f> {
    pixmap: Pixmap,
    face: Face<'f>,
    px_per_mm: f32,
}

/// Font outlines into a path, font units to pixels.
struct Outline<'a> {
    pb: &'a mut PathBuilder,
    x: f32,
    y: f32,
    k: f32,
}

impl OutlineBuilder for Outline<'_> {
    fn move_to(&mut self, x: f32, y: f32) {
        self.pb.move_to(self.x + x * self.k, self.y - y * self.k);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.pb.line_to(self.x + x * self.k, self.y - y * self.k);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let (ox, oy, k) = (self.x, self.y, self.k);
        self.pb.quad_to(ox + x1 * k, oy - y1 * k, ox + x * k, oy - y * k);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let (ox, oy, k) = (self.x, self.y, self.k);
        self.pb.cubic_to(
            ox + x1 * k,
            oy - y1 * k,
            ox + x2 * k,
            oy - y2 * k,
            ox + x * k,
            oy - y * k,
        );
    }
    fn close(&mut self) {
        self.pb.close();
    }
}

fn paint(rgb: [u8; 3]) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(rgb[0], rgb[1], rgb[2], 255);
    p.anti_alias = true;
    p
}

impl Surface for PngSurface<'_> {
    fn polyline(&mut self, pts: &[(f32, f32)], width: f32, rgb: [u8; 3]) {
        let k = self.px_per_mm;
        let mut pb = PathBuilder::new();
        for (i, &(x, y)) in pts.iter().enumerate() {
            if i == 0 {
                pb.move_to(x * k, y * k);
            } else {
                pb.line_to(x * k, y * k);
            }
        }
        if let Some(path) = pb.finish() {
            let stroke = Stroke { width: (width * k).max(1.0), ..Stroke::default() };
            self.pixmap.stroke_path(&path, &paint(rgb), &stroke, Transform::identity(), None);
        }
    }

    fn text(&mut self, x: f32, y: f32, size: f32, s: &str) {
        let k = size * self.px_per_mm / self.face.units_per_em() as f32;
        let mut pb = PathBuilder::new();
        let mut pen = x * self.px_per_mm;
        for ch in s.chars() {
            let gid = self.face.glyph_index(ch).unwrap_or(GlyphId(0));
            let mut o = Outline { pb: &mut pb, x: pen, y: y * self.px_per_mm, k };
            self.face.outline_glyph(gid, &mut o);
            pen += self.face.glyph_hor_advance(gid).unwrap_or(0) as f32 * k;
        }
        if let Some(path) = pb.finish() {
            self.pixmap.fill_path(
                &path,
                &paint(super::INK),
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// A page of `w` × `h` mm drawn by `draw`, as a PNG at `dpi`.
pub fn page<E: From<PrintError>>(
    w: f32,
    h: f32,
    dpi: f32,
    draw: impl FnOnce(&mut dyn Surface) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let face = face()?;
    let px_per_mm = dpi / 25.4;
    let (pw, ph) = ((w * px_per_mm).round() as u32, (h * px_per_mm).round() as u32);
    let mut pixmap = Pixmap::new(pw, ph).ok_or_else(|| PrintError::Encode("page size".into()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let mut surface = PngSurface { pixmap, face, px_per_mm };
    draw(&mut surface)?;
    Ok(encode(&surface.pixmap, dpi)?)
}

fn encode(pixmap: &Pixmap, dpi: f32) -> Result<Vec<u8>, PrintError> {
    let (w, h) = (pixmap.width(), pixmap.height());
    // Opaque throughout, so the premultiplied pixels are the plain ones.
    let rgb: Vec<u8> = pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let per_metre = (dpi / 0.0254).round() as u32;
    enc.set_pixel_dims(Some(png::PixelDimensions {
        xppu: per_metre,
        yppu: per_metre,
        unit: png::Unit::Meter,
    }));
    let mut wr = enc.write_header().map_err(|e| PrintError::Encode(e.to_string()))?;
    wr.write_image_data(&rgb).map_err(|e| PrintError::Encode(e.to_string()))?;
    wr.finish().map_err(|e| PrintError::Encode(e.to_string()))?;
    Ok(out)
}
