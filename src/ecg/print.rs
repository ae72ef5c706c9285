//! The ECG printout: one A4 landscape page at 25 mm/s and 10 mm/mV — the 3×4 leads and a lead II
//! rhythm strip on a 1 mm / 5 mm grid, a 1 mV calibration pulse on each row, and a header with
//! the patient, the time, the device's and Ferry's measurements and the statements — as a PDF
//! (vector, the text in an embedded subset of Noto Sans CJK so Chinese prints) or a PNG.
//!
//! The page is laid out once in millimetres and drawn on a `Surface`: `PdfSurface` writes PDF
//! operators, `PngSurface` paints pixels with the same font's outlines.

use std::io::Write;
use std::sync::OnceLock;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};
use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Stroke, Transform};
use ttf_parser::{Face, GlyphId, OutlineBuilder};

use super::{Ecg, Kind, Lead, Measurements};

/// Where Debian's `fonts-noto-cjk` puts the font the printout embeds.
pub const FONT_PATH: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

pub const PAGE_W: f32 = 297.0;
pub const PAGE_H: f32 = 210.0;
/// The grid: its top-left corner and size (mm); 52 × 32 large squares.
pub const GRID_X: f32 = 18.5;
pub const GRID_Y: f32 = 44.0;
pub const GRID_W: f32 = 260.0;
pub const GRID_H: f32 = 160.0;
const ROW_H: f32 = 40.0;
const MM_PER_S: f32 = 25.0;
const MM_PER_MV: f32 = 10.0;
/// Traces start after the calibration pulse.
const TRACE_X: f32 = GRID_X + 10.0;
/// The PNG's resolution.
pub const PNG_DPI: f32 = 200.0;

const MINOR: [u8; 3] = [250, 212, 212];
const MAJOR: [u8; 3] = [232, 128, 128];
const INK: [u8; 3] = [0, 0, 0];

/// The interface language of the printout's labels.
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
}

/// What the header says, beside the samples.
pub struct Sheet<'a> {
    pub ecg: &'a Ecg,
    pub computed: &'a Measurements,
    pub site: &'a str,
    pub lang: Lang,
}

/// Why a printout could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("the print font is not installed ({FONT_PATH}, Debian package fonts-noto-cjk)")]
    NoFont,
    #[error("the ECG has no rhythm group to print")]
    NoRhythm,
    #[error("{0}")]
    Encode(String),
}

struct LoadedFont {
    data: Vec<u8>,
    index: u32,
}

/// The font, read once on first use: the Simplified Chinese face of the collection.
fn font() -> Result<&'static LoadedFont, PrintError> {
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

/// What a page is drawn on, in millimetres from the top-left corner.
trait Surface {
    fn polyline(&mut self, pts: &[(f32, f32)], width: f32, rgb: [u8; 3]);
    /// Text with its baseline starting at (x, y); `size` is the em in mm.
    fn text(&mut self, x: f32, y: f32, size: f32, s: &str);
}

/// The whole page.
fn draw(sheet: &Sheet, s: &mut dyn Surface) -> Result<(), PrintError> {
    let rhythm = sheet.ecg.group(Kind::Rhythm).ok_or(PrintError::NoRhythm)?;
    grid(s);
    header(sheet, s);
    let fs = rhythm.sampling_hz as f32;
    let columns = [
        [Lead::I, Lead::II, Lead::III],
        [Lead::AVR, Lead::AVL, Lead::AVF],
        [Lead::V1, Lead::V2, Lead::V3],
        [Lead::V4, Lead::V5, Lead::V6],
    ];
    let col_s = 2.5;
    for row in 0..4 {
        let base = GRID_Y + ROW_H * row as f32 + ROW_H * 0.6;
        pulse(s, base);
        if row == 3 {
            // The rhythm strip: lead II, the first 10 s.
            if let Some(uv) = rhythm.lead(Lead::II) {
                trace(s, uv, fs, 0.0, 10.0, TRACE_X, base);
                s.text(TRACE_X + 1.0, base - 12.0, 3.0, "II");
            }
            continue;
        }
        for (c, leads) in columns.iter().enumerate() {
            let lead = leads[row];
            let x = TRACE_X + c as f32 * col_s * MM_PER_S;
            if c > 0 {
                s.polyline(&[(x, base - 4.0), (x, base + 4.0)], 0.3, INK);
            }
            if let Some(uv) = rhythm.lead(lead) {
                let t0 = c as f32 * col_s;
                trace(s, uv, fs, t0, t0 + col_s, x, base);
            }
            s.text(x + 1.0, base - 12.0, 3.0, &lead.name());
        }
    }
    s.text(GRID_X, PAGE_H - 1.8, 2.6, "25 mm/s   10 mm/mV");
    s.text(GRID_X + GRID_W - 12.0, PAGE_H - 1.8, 2.6, "Ferry");
    Ok(())
}

fn grid(s: &mut dyn Surface) {
    let (x1, y1) = (GRID_X + GRID_W, GRID_Y + GRID_H);
    for pass in [false, true] {
        for i in 0..=(GRID_W as i32) {
            if (i % 5 == 0) == pass {
                let x = GRID_X + i as f32;
                let (w, c) = if pass { (0.2, MAJOR) } else { (0.08, MINOR) };
                s.polyline(&[(x, GRID_Y), (x, y1)], w, c);
            }
        }
        for i in 0..=(GRID_H as i32) {
            if (i % 5 == 0) == pass {
                let y = GRID_Y + i as f32;
                let (w, c) = if pass { (0.2, MAJOR) } else { (0.08, MINOR) };
                s.polyline(&[(GRID_X, y), (x1, y)], w, c);
            }
        }
    }
}

/// The 1 mV, 200 ms calibration pulse at the start of a row.
fn pulse(s: &mut dyn Surface, base: f32) {
    let (x, h) = (GRID_X + 2.0, MM_PER_MV);
    let pts =
        [(x, base), (x + 1.0, base), (x + 1.0, base - h), (x + 6.0, base - h), (x + 6.0, base)];
    s.polyline(&[pts.as_slice(), &[(x + 7.0, base)]].concat(), 0.25, INK);
}

/// Samples from `t0` to `t1` seconds, drawn from `x` on the baseline `base`.
fn trace(s: &mut dyn Surface, uv: &[i32], fs: f32, t0: f32, t1: f32, x: f32, base: f32) {
    let (a, b) = (((t0 * fs) as usize).min(uv.len()), ((t1 * fs) as usize).min(uv.len()));
    let pts: Vec<(f32, f32)> = uv[a..b]
        .iter()
        .enumerate()
        .map(|(i, &v)| (x + i as f32 / fs * MM_PER_S, base - v as f32 / 1000.0 * MM_PER_MV))
        .collect();
    if pts.len() > 1 {
        s.polyline(&pts, 0.25, INK);
    }
}

fn header(sheet: &Sheet, s: &mut dyn Surface) {
    let zh = sheet.lang == Lang::Zh;
    let l = |en: &'static str, cn: &'static str| if zh { cn } else { en };
    let e = sheet.ecg;
    let p = &e.patient;
    let name = p.name.expose().as_deref().map(person_name).unwrap_or_default();
    let sex = match p.sex.as_deref() {
        Some("M") => l("male", "男"),
        Some("F") => l("female", "女"),
        _ => "",
    };
    let line1 = format!(
        "{}  {} {}  {} {}  {} {}",
        name,
        l("ID", "病历号"),
        p.id.expose().as_deref().unwrap_or("—"),
        l("Sex", "性别"),
        if sex.is_empty() { "—" } else { sex },
        l("Born", "出生日期"),
        p.birth_date.expose().as_deref().map(dicom_date).unwrap_or_else(|| "—".into()),
    );
    let line2 = format!(
        "{} {}   {} {}   {} {}",
        l("Recorded", "采集时间"),
        e.acquired_at.as_deref().map(|t| t.replace('T', " ")).unwrap_or_else(|| "—".into()),
        l("Site", "机构"),
        sheet.site,
        l("Device", "设备"),
        e.device_model.as_deref().unwrap_or("—"),
    );
    s.text(GRID_X, 10.0, 4.2, &line1);
    s.text(GRID_X, 16.0, 3.2, &line2);
    let m = |label: &str, m: &Measurements| {
        let v = |x: Option<f64>| x.map(|x| format!("{x:.0}")).unwrap_or_else(|| "—".into());
        let rate = m.heart_rate_bpm.or(m.rr_ms.map(|rr| 60_000.0 / rr));
        format!(
            "{label}:  {} {} bpm   PR {} ms   QRS {} ms   QT/QTc {}/{} ms   {} P/QRS/T {}/{}/{}",
            l("Rate", "心率"),
            v(rate),
            v(m.pr_ms),
            v(m.qrs_ms),
            v(m.qt_ms),
            v(m.qtc_bazett_ms),
            l("Axes", "电轴"),
            v(m.p_axis_deg),
            v(m.qrs_axis_deg),
            v(m.t_axis_deg),
        )
    };
    s.text(GRID_X, 22.5, 3.0, &m(l("Device", "设备测量"), &e.device));
    s.text(GRID_X, 27.5, 3.0, &m(l("Ferry (computed)", "Ferry 计算"), sheet.computed));
    let all = e.statements.join("；");
    let mut statements: String = all.chars().take(110).collect();
    if statements.len() < all.len() {
        statements.push('…');
    }
    s.text(GRID_X, 34.0, 3.4, &format!("{}: {}", l("Statements", "自动分析"), statements));
    s.text(
        GRID_X,
        39.5,
        2.6,
        l(
            "QTc by Bazett. Computed values need a physician's over-read.",
            "QTc 按 Bazett 公式。计算值须经医师复核。",
        ),
    );
}

/// A DICOM date (`YYYYMMDD`) as `YYYY-MM-DD`; anything else as it is.
fn dicom_date(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// A DICOM person name for reading: its groups (alphabetic = ideographic) side by side, `^`
/// as spaces.
fn person_name(pn: &str) -> String {
    pn.split('=')
        .map(|g| g.replace('^', " ").trim().to_string())
        .filter(|g| !g.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

const PT_PER_MM: f32 = 72.0 / 25.4;

struct PdfSurface<'f> {
    content: Content,
    face: Face<'f>,
    glyphs: subsetter::GlyphRemapper,
    /// Per new glyph id: its advance (in 1/1000 em) and the character it shows.
    used: Vec<(u16, f32, char)>,
}

impl Surface for PdfSurface<'_> {
    fn polyline(&mut self, pts: &[(f32, f32)], width: f32, rgb: [u8; 3]) {
        let c = &mut self.content;
        let [r, g, b] = rgb.map(|v| v as f32 / 255.0);
        c.set_stroke_rgb(r, g, b).set_line_width(width * PT_PER_MM);
        for (i, &(x, y)) in pts.iter().enumerate() {
            let (x, y) = (x * PT_PER_MM, (PAGE_H - y) * PT_PER_MM);
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
            .set_text_matrix([1.0, 0.0, 0.0, 1.0, x * PT_PER_MM, (PAGE_H - y) * PT_PER_MM])
            .show(Str(&bytes))
            .end_text();
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("writing to memory");
    z.finish().expect("writing to memory")
}

/// The printout as a one-page PDF.
pub fn pdf(sheet: &Sheet) -> Result<Vec<u8>, PrintError> {
    let f = font()?;
    let face = Face::parse(&f.data, f.index).map_err(|_| PrintError::NoFont)?;
    let mut glyphs = subsetter::GlyphRemapper::new();
    glyphs.remap(0);
    let mut surface = PdfSurface { content: Content::new(), face, glyphs, used: vec![] };
    draw(sheet, &mut surface)?;
    let PdfSurface { content, face, glyphs, mut used } = surface;
    let font_file = subsetter::subset(&f.data, f.index, &glyphs)
        .map_err(|e| PrintError::Encode(format!("font subset: {e:?}")))?;

    let ids = [1, 2, 3, 4, 5, 6, 7, 8, 9].map(Ref::new);
    let [catalog, pages, page, contents, type0, cid, descriptor, file, cmap] = ids;
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut pg = pdf.page(page);
    pg.media_box(Rect::new(0.0, 0.0, PAGE_W * PT_PER_MM, PAGE_H * PT_PER_MM));
    pg.parent(pages).contents(contents);
    pg.resources().fonts().pair(Name(b"F1"), type0);
    pg.finish();
    pdf.stream(contents, &deflate(&content.finish())).filter(Filter::FlateDecode);

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
                &paint(INK),
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// The printout as a PNG at `PNG_DPI` (its pHYs chunk says so).
pub fn png(sheet: &Sheet) -> Result<Vec<u8>, PrintError> {
    let f = font()?;
    let face = Face::parse(&f.data, f.index).map_err(|_| PrintError::NoFont)?;
    let px_per_mm = PNG_DPI / 25.4;
    let (w, h) = ((PAGE_W * px_per_mm).round() as u32, (PAGE_H * px_per_mm).round() as u32);
    let mut pixmap = Pixmap::new(w, h).ok_or_else(|| PrintError::Encode("page size".into()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let mut surface = PngSurface { pixmap, face, px_per_mm };
    draw(sheet, &mut surface)?;
    // Opaque throughout, so the premultiplied pixels are the plain ones.
    let rgb: Vec<u8> =
        surface.pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let per_metre = (PNG_DPI / 0.0254).round() as u32;
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
