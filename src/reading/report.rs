//! A signed report on paper and in the archive: an A4 PDF (Chinese or English labels; the text
//! as signed, in an embedded subset of Noto Sans CJK, over as many pages as it needs), and that
//! PDF as a DICOM Encapsulated PDF instance in the request's own study, so OHIF and any PACS
//! show the report beside the images. Pure: facts in, bytes out.

use dicom_core::{PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::ecg::dicom_out::put;
use serde_json::Value;

use super::store::Report;
use super::{Kind, Request};
pub use crate::print::Lang;
use crate::print::{PrintError, Surface, wrap};

/// Encapsulated PDF Storage.
pub const ENCAPSULATED_PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 20.0;
const BODY: f32 = 3.6;
const LINE: f32 = 6.0;

/// Everything the page says.
pub struct Paper<'a> {
    pub request: &'a Request,
    pub report: &'a Report,
    /// Patient and study facts (as `GET /api/readings/{id}` answers them).
    pub study: &'a Value,
    pub signer: &'a str,
    /// Where reading is two-step: who drafted it.
    pub drafter: Option<&'a str>,
    pub sending_site: &'a str,
    pub centre: &'a str,
    pub lang: Lang,
    /// Minutes east of UTC in which times are printed.
    pub utc_offset_minutes: i32,
}

/// A DICOM person name for reading: the ideographic group for Chinese where there is one,
/// else the alphabetic one, components separated by spaces.
pub fn person_name(pn: &str, lang: Lang) -> String {
    let groups: Vec<&str> = pn.split('=').collect();
    let g = match lang {
        Lang::Zh => groups.get(1).filter(|g| !g.is_empty()).unwrap_or(&groups[0]),
        Lang::En => &groups[0],
    };
    let parts: Vec<&str> = g.split('^').filter(|p| !p.trim().is_empty()).collect();
    if lang == Lang::Zh && groups.get(1).is_some_and(|g| !g.is_empty()) {
        parts.concat()
    } else {
        parts.join(" ")
    }
}

/// `YYYY-MM-DD HH:MM` at the offset.
pub fn local_time(ms: i64, offset_minutes: i32) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(
            time::UtcOffset::from_whole_seconds(offset_minutes * 60)
                .unwrap_or(time::UtcOffset::UTC),
        );
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let (h, m) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} (UTC{sign}{h:02}:{m:02})",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The lines of the page: (size, bold-ish heading?, text), before pagination.
fn lines(p: &Paper) -> Result<Vec<(f32, String)>, PrintError> {
    let l = p.lang;
    let s = |k: &str| p.study[k].as_str().unwrap_or("").to_string();
    let r = p.request;
    let mut out: Vec<(f32, String)> = vec![];
    let width = PAGE_W - 2.0 * MARGIN;
    let para = |out: &mut Vec<(f32, String)>, size: f32, text: &str| -> Result<(), PrintError> {
        for line in wrap(text, size, width)? {
            out.push((size, line));
        }
        Ok(())
    };
    let title = match r.kind {
        Kind::Ecg => l.pick("ECG report", "心电图诊断报告"),
        Kind::Imaging => l.pick("Imaging report", "影像诊断报告"),
    };
    para(&mut out, 6.0, title)?;
    out.push((2.0, String::new()));
    let sex = match s("patient_sex").as_str() {
        "M" => l.pick("male", "男"),
        "F" => l.pick("female", "女"),
        _ => "",
    };
    para(
        &mut out,
        BODY,
        &format!(
            "{}: {}   {}: {}   {}: {}   {}: {}",
            l.pick("Patient", "患者"),
            person_name(&s("patient_name"), l),
            l.pick("ID", "病历号"),
            s("patient_id"),
            l.pick("Sex", "性别"),
            sex,
            l.pick("Born", "出生日期"),
            s("patient_birth_date"),
        ),
    )?;
    para(
        &mut out,
        BODY,
        &format!(
            "{}: {} {}   {}: {}",
            l.pick("Study", "检查"),
            r.modality.clone().unwrap_or_default(),
            s("study_description"),
            l.pick("Date", "检查日期"),
            s("study_date"),
        ),
    )?;
    para(
        &mut out,
        BODY,
        &format!(
            "{}: {}   {}: {}",
            l.pick("From", "申请机构"),
            p.sending_site,
            l.pick("Read at", "诊断中心"),
            p.centre
        ),
    )?;
    if let Some(q) = &r.question {
        para(&mut out, BODY, &format!("{}: {q}", l.pick("Clinical question", "临床问题")))?;
    }
    out.push((2.0, String::new()));
    para(&mut out, 4.2, l.pick("Findings", "检查所见"))?;
    para(&mut out, BODY, &p.report.body.findings)?;
    out.push((2.0, String::new()));
    para(&mut out, 4.2, l.pick("Impression", "诊断意见"))?;
    para(&mut out, BODY, &p.report.body.impression)?;
    if !p.report.body.conclusions.is_empty() {
        para(
            &mut out,
            BODY,
            &format!("{}: {}", l.pick("Coded", "编码结论"), p.report.body.conclusions.join(", ")),
        )?;
    }
    out.push((2.0, String::new()));
    para(
        &mut out,
        BODY,
        &format!(
            "{}: {}   {}: {}   {} {}",
            l.pick("Signed by", "审核签发"),
            p.signer,
            l.pick("Signed", "签发时间"),
            local_time(p.report.signed_at, p.utc_offset_minutes),
            l.pick("Version", "版本"),
            p.report.version
        ),
    )?;
    if let Some(d) = p.drafter {
        para(&mut out, BODY, &format!("{}: {d}", l.pick("Drafted by", "初稿医师")))?;
    }
    if let Some(reason) = &p.report.reason {
        para(&mut out, BODY, &format!("{}: {reason}", l.pick("Amended because", "修改原因")))?;
    }
    para(&mut out, 2.6, &format!("SHA-256 {}", p.report.content_sha256))?;
    Ok(out)
}

/// The report as an A4 PDF.
pub fn pdf(p: &Paper) -> Result<Vec<u8>, PrintError> {
    let all = lines(p)?;
    let per_page = ((PAGE_H - 2.0 * MARGIN - 10.0) / LINE) as usize;
    let pages: Vec<&[(f32, String)]> = all.chunks(per_page.max(1)).collect();
    let n = pages.len();
    crate::print::pdf::document(PAGE_W, PAGE_H, n, |i, s: &mut dyn Surface| {
        let mut y = MARGIN;
        for (size, text) in pages[i] {
            y += if *size < 3.0 && text.is_empty() { LINE / 2.0 } else { LINE.max(size * 1.5) };
            if !text.is_empty() {
                s.text(MARGIN, y, *size, text);
            }
        }
        s.text(MARGIN, PAGE_H - 10.0, 2.6, &format!("Ferry   {}/{n}", i + 1));
        Ok::<(), PrintError>(())
    })
}

/// The UIDs of the instance to write.
pub struct Uids {
    pub series: String,
    pub instance: String,
}

/// The PDF as a DICOM Encapsulated PDF instance of the request's study (its patient and study
/// attributes from `study`), one series per version.
pub fn encapsulate(
    pdf: &[u8],
    r: &Request,
    report: &Report,
    study: &Value,
    uids: &Uids,
    offset_minutes: i32,
) -> Result<Vec<u8>, String> {
    let s = |k: &str| study[k].as_str().unwrap_or("").to_string();
    let mut o = InMemDicomObject::new_empty();
    let when = local_time(report.signed_at, offset_minutes);
    let date: String = when[..10].replace('-', "");
    let clock: String = format!("{}{}00", &when[11..13], &when[14..16]);
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, ENCAPSULATED_PDF);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, uids.instance.as_str());
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, r.study_uid.as_str());
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, uids.series.as_str());
    put(&mut o, tags::PATIENT_NAME, VR::PN, s("patient_name"));
    put(&mut o, tags::PATIENT_ID, VR::LO, s("patient_id"));
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, s("patient_birth_date"));
    put(&mut o, tags::PATIENT_SEX, VR::CS, s("patient_sex"));
    put(&mut o, tags::STUDY_DATE, VR::DA, s("study_date"));
    put(&mut o, tags::STUDY_TIME, VR::TM, "");
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(&mut o, tags::STUDY_ID, VR::SH, "");
    put(&mut o, tags::MODALITY, VR::CS, "DOC");
    put(&mut o, tags::SERIES_NUMBER, VR::IS, format!("{}", 900 + report.version));
    put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, format!("Ferry report v{}", report.version));
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(&mut o, tags::CONVERSION_TYPE, VR::CS, "SYN");
    put(&mut o, tags::CONTENT_DATE, VR::DA, date.as_str());
    put(&mut o, tags::CONTENT_TIME, VR::TM, clock.as_str());
    put(&mut o, tags::ACQUISITION_DATE_TIME, VR::DT, format!("{date}{clock}"));
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put(
        &mut o,
        tags::DOCUMENT_TITLE,
        VR::ST,
        match r.kind {
            Kind::Ecg => "ECG report",
            Kind::Imaging => "Imaging report",
        },
    );
    put(&mut o, tags::MIME_TYPE_OF_ENCAPSULATED_DOCUMENT, VR::LO, "application/pdf");
    put(&mut o, tags::MANUFACTURER, VR::LO, "Ferry");
    put(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, concat!("Ferry ", env!("CARGO_PKG_VERSION")));
    // OB of even length; the PDF's own length says where it ends.
    let mut doc = pdf.to_vec();
    if doc.len() % 2 == 1 {
        doc.push(0);
    }
    put(&mut o, tags::ENCAPSULATED_DOCUMENT_LENGTH, VR::UL, PrimitiveValue::from(pdf.len() as u32));
    put(&mut o, tags::ENCAPSULATED_DOCUMENT, VR::OB, PrimitiveValue::U8(doc.into()));
    crate::ecg::dicom_out::part10(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times_for_the_page() {
        assert_eq!(person_name("Zhang^San=张^三", Lang::Zh), "张三");
        assert_eq!(person_name("Zhang^San=张^三", Lang::En), "Zhang San");
        assert_eq!(person_name("CompressedSamples^MR1", Lang::Zh), "CompressedSamples MR1");
        // 2026-12-01T17:00:00Z is 2026-12-02 01:00 in China.
        assert_eq!(local_time(1_796_144_400_000, 480), "2026-12-02 01:00 (UTC+08:00)");
        assert_eq!(local_time(1_796_144_400_000, -300), "2026-12-01 12:00 (UTC-05:00)");
    }
}
