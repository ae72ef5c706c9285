//! The ECG printout: one A4 landscape page at 25 mm/s and 10 mm/mV — the 3×4 leads and a lead II
//! rhythm strip on a 1 mm / 5 mm grid, a 1 mV calibration pulse on each row, and a header with
//! the patient, the time, the device's and Ferry's measurements and the statements — as a PDF
//! (vector, the text in an embedded subset of Noto Sans CJK so Chinese prints) or a PNG.
//!
//! The page is laid out once in millimetres and drawn on a `crate::print::Surface`, as PDF or
//! PNG.

use super::{Ecg, Kind, Lead, Measurements};
pub use crate::print::Lang;
use crate::print::{INK, Surface};

/// Where Debian's `fonts-noto-cjk` puts the font the printout embeds.
pub const FONT_PATH: &str = crate::print::FONT_PATH;

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

impl From<crate::print::PrintError> for PrintError {
    fn from(e: crate::print::PrintError) -> Self {
        match e {
            crate::print::PrintError::NoFont => PrintError::NoFont,
            crate::print::PrintError::Encode(s) => PrintError::Encode(s),
        }
    }
}

/// The printout as a one-page PDF.
pub fn pdf(sheet: &Sheet) -> Result<Vec<u8>, PrintError> {
    crate::print::pdf::document(PAGE_W, PAGE_H, 1, |_, s| draw(sheet, s))
}

/// The printout as a PNG at `PNG_DPI` (its pHYs chunk says so).
pub fn png(sheet: &Sheet) -> Result<Vec<u8>, PrintError> {
    crate::print::png::page(PAGE_W, PAGE_H, PNG_DPI, |s| draw(sheet, s))
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
