//! Vector PDF: PDF operators for a `Surface`, and a document of one or more pages whose text is
//! in a subset of the print font made from exactly the glyphs used (CID-keyed, Identity-H, with
//! a ToUnicode map so the text can be searched and copied).

use std::io::Write;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};
use ttf_parser::{Face, GlyphId};

use super::{PrintError, Surface, face, font};

const PT_PER_MM: f32 = 72.0 / 25.4;

struct PdfSurface<'f> {
    content: Content,
    page_h: f32,
    face: &'f Face<'f>,
    glyphs: &'f mut subsetter::GlyphRemapper,
    /// Per new glyph id: its advance (in 1/1000 em) and the character it shows.
    used: &'f mut Vec<(u16, f32, char)>,
}

impl Surface for PdfSurface<'_> {
    fn polyline(&mut self, pts: &[(f32, f32)], width: f32, rgb: [u8; 3]) {
        let c = &mut self.content;
        let [r, g, b] = rgb.map(|v| v as f32 / 255.0);
        c.set_stroke_rgb(r, g, b).set_line_width(width * PT_PER_MM);
        for (i, &(x, y)) in pts.iter().enumerate() {
            let (x, y) = (x * PT_PER_MM, (self.page_h - y) * PT_PER_MM);
            if i == 0 {
                c.move_to(x, y);
            } else {
                c.line_to(x, y);
            }
        }
        c.stroke();
    }

    fn text(&mut self, x: f32, y: f32, size: f32, s: &str) {
        let upem = self.face.units_per_em() as f32;
        let mut bytes = Vec::with_capacity(s.len() * 2);
        for ch in s.chars() {
            let gid = self.face.glyph_index(ch).unwrap_or(GlyphId(0));
            let new = self.glyphs.get(gid.0).is_none();
            let cid = self.glyphs.remap(gid.0);
            if new {
                let adv = self.face.glyph_hor_advance(gid).unwrap_or(0) as f32 * 1000.0 / upem;
                self.used.push((cid, adv, ch));
            }
            bytes.extend_from_slice(&cid.to_be_bytes());
        }
        self.content
            .set_fill_rgb(0.0, 0.0, 0.0)
            .begin_text()
            .set_font(Name(b"F1"), size * PT_PER_MM)
            .set_text_matrix([1.0, 0.0, 0.0, 1.0, x * PT_PER_MM, (self.page_h - y) * PT_PER_MM])
            .show(Str(&bytes))
            .end_text();
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("writing to memory");
    z.finish().expect("writing to memory")
}

/// A PDF of `pages` pages of `w` × `h` mm, page `i` drawn by `draw(i, surface)`.
pub fn document<E: From<PrintError>>(
    w: f32,
    h: f32,
    pages: usize,
    mut draw: impl FnMut(usize, &mut dyn Surface) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let f = font()?;
    let face = face()?;
    let mut glyphs = subsetter::GlyphRemapper::new();
    glyphs.remap(0);
    let mut used = vec![];
    let mut contents = vec![];
    for i in 0..pages.max(1) {
        let mut surface = PdfSurface {
            content: Content::new(),
            page_h: h,
            face: &face,
            glyphs: &mut glyphs,
            used: &mut used,
        };
        draw(i, &mut surface)?;
        contents.push(surface.content.finish());
    }
    let font_file = subsetter::subset(&f.data, f.index, &glyphs)
        .map_err(|e| PrintError::Encode(format!("font subset: {e:?}")))?;

    let mut next = 0;
    let mut new_ref = || {
        next += 1;
        Ref::new(next)
    };
    let [catalog, page_tree, type0, cid, descriptor, file, cmap] =
        std::array::from_fn(|_| new_ref());
    let page_refs: Vec<(Ref, Ref)> = contents.iter().map(|_| (new_ref(), new_ref())).collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(page_tree);
    pdf.pages(page_tree).kids(page_refs.iter().map(|(p, _)| *p)).count(page_refs.len() as i32);
    for ((page, content_ref), content) in page_refs.iter().zip(&contents) {
        let mut pg = pdf.page(*page);
        pg.media_box(Rect::new(0.0, 0.0, w * PT_PER_MM, h * PT_PER_MM));
        pg.parent(page_tree).contents(*content_ref);
        pg.resources().fonts().pair(Name(b"F1"), type0);
        pg.finish();
        pdf.stream(*content_ref, &deflate(content)).filter(Filter::FlateDecode);
    }

    let base = Name(b"FERRYA+NotoSansCJKsc-Regular");
    let info = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };
    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid)
        .to_unicode(cmap);
    used.sort_by_key(|u| u.0);
    let n = glyphs.num_gids();
    let mut widths = vec![0.0f32; n as usize];
    for &(c, w, _) in &used {
        widths[c as usize] = w;
    }
    let mut cf = pdf.cid_font(cid);
    cf.subtype(CidFontType::Type0).base_font(base).system_info(info).font_descriptor(descriptor);
    cf.widths().consecutive(0, widths);
    cf.finish();
    let upem = face.units_per_em() as f32;
    let k = 1000.0 / upem;
    let bb = face.global_bounding_box();
    pdf.font_descriptor(descriptor)
        .name(base)
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(
            bb.x_min as f32 * k,
            bb.y_min as f32 * k,
            bb.x_max as f32 * k,
            bb.y_max as f32 * k,
        ))
        .italic_angle(0.0)
        .ascent(face.ascender() as f32 * k)
        .descent(face.descender() as f32 * k)
        .cap_height(face.capital_height().unwrap_or(face.ascender()) as f32 * k)
        .stem_v(80.0)
        .font_file3(file);
    pdf.stream(file, &deflate(&font_file))
        .filter(Filter::FlateDecode)
        .pair(Name(b"Subtype"), Name(b"OpenType"));
    let mut map = UnicodeCmap::new(Name(b"Ferry-UTF16"), info);
    for &(c, _, ch) in &used {
        map.pair(c, ch);
    }
    pdf.cmap(cmap, &map.finish());
    Ok(pdf.finish())
}
