//! An ECG that arrived as MUSE, aECG or SCP, written as a DICOM General ECG Waveform instance
//! (so QIDO/WADO clients and a hospital PACS see every ECG): each group a multiplex group of
//! 16-bit samples at 1 µV per unit (MDC lead codes, UCUM `uV`), the device's measurements and
//! statements as waveform annotations, marked as derived by Ferry from its source format.
//! Pure: a record and its UIDs in, Part 10 bytes out.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::{Ecg, Kind, Lead, Measurements};

pub const GENERAL_ECG: &str = "1.2.840.10008.5.1.4.1.1.9.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
/// Ferry's implementation class UID (a UUID-derived UID, 2.25).
const IMPLEMENTATION: &str = "2.25.206553297045563542873465937181040384561";

/// The UIDs of the instance to write.
pub struct Uids<'a> {
    pub study: &'a str,
    pub series: &'a str,
    pub instance: &'a str,
}

/// A new unique UID (2.25 and 128 random bits).
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    format!("2.25.{}", u128::from_be_bytes(b))
}

pub(crate) fn put(
    o: &mut InMemDicomObject,
    tag: dicom_core::Tag,
    vr: VR,
    v: impl Into<PrimitiveValue>,
) {
    o.put(DataElement::new(tag, vr, v.into()));
}

fn seq(o: &mut InMemDicomObject, tag: dicom_core::Tag, items: Vec<InMemDicomObject>) {
    o.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn code(scheme: &str, value: &str, meaning: &str) -> InMemDicomObject {
    let mut c = InMemDicomObject::new_empty();
    put(&mut c, tags::CODE_VALUE, VR::SH, value);
    put(&mut c, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    // The SCP-ECG coding scheme is not unique without its version (PS3.16, CID 3001 / 3229).
    if scheme == "SCPECG" {
        put(&mut c, tags::CODING_SCHEME_VERSION, VR::SH, "1.3");
    }
    put(&mut c, tags::CODE_MEANING, VR::LO, meaning);
    c
}

/// The MDC code of a lead (`2:n`, the number SCP and MDC share).
fn mdc(lead: Lead) -> (String, String) {
    let n = match lead {
        Lead::I => 1,
        Lead::II => 2,
        Lead::V1 => 3,
        Lead::V2 => 4,
        Lead::V3 => 5,
        Lead::V4 => 6,
        Lead::V5 => 7,
        Lead::V6 => 8,
        Lead::III => 61,
        Lead::AVR => 62,
        Lead::AVL => 63,
        Lead::AVF => 64,
        Lead::Other(n) => n,
    };
    (format!("2:{n}"), format!("Lead {}", lead.name()))
}

/// `2002-11-22T09:10:00` as DICOM date and time.
fn date_time(at: Option<&str>) -> (String, String) {
    let digits: String = at.unwrap_or("").chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() >= 8 {
        (digits[..8].to_string(), format!("{:0<6}", &digits[8..digits.len().min(14)]))
    } else {
        (String::new(), String::new())
    }
}

/// Whether `d` is a DICOM date (`YYYYMMDD`, plausible).
fn is_dicom_date(d: &str) -> bool {
    d.len() == 8
        && d.chars().all(|c| c.is_ascii_digit())
        && (1800..=2200).contains(&d[..4].parse::<u32>().unwrap_or(0))
        && (1..=12).contains(&d[4..6].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&d[6..].parse::<u32>().unwrap_or(0))
}

fn annotations(m: &Measurements, statements: &[String]) -> Vec<InMemDicomObject> {
    let mut out = vec![];
    for s in statements {
        let mut a = InMemDicomObject::new_empty();
        put(&mut a, tags::UNFORMATTED_TEXT_VALUE, VR::ST, s.as_str());
        put(&mut a, tags::REFERENCED_WAVEFORM_CHANNELS, VR::US, PrimitiveValue::from([1u16, 0]));
        out.push(a);
    }
    let coded = [
        (m.rr_ms, "5.10.2.1-3", "RR Interval", "ms"),
        (m.pr_ms, "5.13.5-7", "PR Interval", "ms"),
        (m.qrs_ms, "5.13.5-9", "QRS Duration", "ms"),
        (m.qt_ms, "5.13.5-11", "QT Interval", "ms"),
        (m.qtc_bazett_ms, "5.10.2.5-5", "QTc Interval", "ms"),
        (m.p_axis_deg, "5.10.3-11", "P Axis", "deg"),
        (m.qrs_axis_deg, "5.10.3-13", "QRS Axis", "deg"),
        (m.t_axis_deg, "5.10.3-15", "T Axis", "deg"),
    ];
    for (v, value, meaning, unit) in coded {
        let Some(v) = v else { continue };
        let mut a = InMemDicomObject::new_empty();
        seq(&mut a, tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code("SCPECG", value, meaning)]);
        put(&mut a, tags::NUMERIC_VALUE, VR::DS, format!("{v}"));
        let unit_meaning = if unit == "ms" { "millisecond" } else { "degree" };
        seq(&mut a, tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![code("UCUM", unit, unit_meaning)]);
        put(&mut a, tags::REFERENCED_WAVEFORM_CHANNELS, VR::US, PrimitiveValue::from([1u16, 0]));
        out.push(a);
    }
    out
}

/// Writes `ecg` as a General ECG Waveform instance with the given UIDs.
pub fn write(ecg: &Ecg, uids: &Uids) -> Result<Vec<u8>, String> {
    let mut o = InMemDicomObject::new_empty();
    let (date, time) = date_time(ecg.acquired_at.as_deref());
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, GENERAL_ECG);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, uids.instance);
    put(&mut o, tags::STUDY_DATE, VR::DA, date.as_str());
    put(&mut o, tags::STUDY_TIME, VR::TM, time.as_str());
    put(&mut o, tags::CONTENT_DATE, VR::DA, date.as_str());
    put(&mut o, tags::CONTENT_TIME, VR::TM, time.as_str());
    if !date.is_empty() {
        put(&mut o, tags::ACQUISITION_DATE_TIME, VR::DT, format!("{date}{time}"));
    }
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
    put(&mut o, tags::MODALITY, VR::CS, "ECG");
    put(&mut o, tags::MANUFACTURER, VR::LO, "");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(&mut o, tags::STUDY_DESCRIPTION, VR::LO, "Resting ECG");
    put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, "ECG");
    // Derived: converted by Ferry from the cart's own format, kept beside it unchanged.
    let source = match ecg.format {
        super::Format::Muse => "GE MUSE XML",
        super::Format::Aecg => "HL7 aECG",
        super::Format::Scp => "SCP-ECG",
        super::Format::Dicom => "DICOM",
    };
    put(
        &mut o,
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        format!("Converted by Ferry from {source}; the original is kept unchanged"),
    );
    put(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, concat!("Ferry ", env!("CARGO_PKG_VERSION")));
    if let Some(model) = &ecg.device_model {
        put(&mut o, tags::MANUFACTURER_MODEL_NAME, VR::LO, model.as_str());
    }
    let p = &ecg.patient;
    put(&mut o, tags::PATIENT_NAME, VR::PN, p.name.expose().clone().unwrap_or_default());
    put(&mut o, tags::PATIENT_ID, VR::LO, p.id.expose().clone().unwrap_or_default());
    let birth = p.birth_date.expose().clone().filter(|d| is_dicom_date(d)).unwrap_or_default();
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, birth);
    put(
        &mut o,
        tags::PATIENT_SEX,
        VR::CS,
        p.sex.clone().filter(|s| ["M", "F", "O"].contains(&s.as_str())).unwrap_or_default(),
    );
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, uids.study);
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, uids.series);
    put(&mut o, tags::STUDY_ID, VR::SH, "1");
    put(&mut o, tags::SERIES_NUMBER, VR::IS, "1");
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    seq(&mut o, tags::ACQUISITION_CONTEXT_SEQUENCE, vec![]);
    let mut groups = vec![];
    for g in &ecg.groups {
        let mut w = InMemDicomObject::new_empty();
        let (label, originality) = match g.kind {
            Kind::Rhythm => ("RHYTHM", "ORIGINAL"),
            Kind::Median => ("MEDIAN BEAT", "DERIVED"),
        };
        put(&mut w, tags::WAVEFORM_ORIGINALITY, VR::CS, originality);
        put(
            &mut w,
            tags::NUMBER_OF_WAVEFORM_CHANNELS,
            VR::US,
            PrimitiveValue::from(g.leads.len() as u16),
        );
        put(
            &mut w,
            tags::NUMBER_OF_WAVEFORM_SAMPLES,
            VR::UL,
            PrimitiveValue::from(g.samples() as u32),
        );
        put(&mut w, tags::SAMPLING_FREQUENCY, VR::DS, format!("{}", g.sampling_hz));
        put(&mut w, tags::MULTIPLEX_GROUP_LABEL, VR::SH, label);
        let mut channels = vec![];
        for (lead, _) in &g.leads {
            let mut c = InMemDicomObject::new_empty();
            let (value, meaning) = mdc(*lead);
            seq(&mut c, tags::CHANNEL_SOURCE_SEQUENCE, vec![code("MDC", &value, &meaning)]);
            put(&mut c, tags::CHANNEL_SENSITIVITY, VR::DS, "1");
            seq(
                &mut c,
                tags::CHANNEL_SENSITIVITY_UNITS_SEQUENCE,
                vec![code("UCUM", "uV", "microvolt")],
            );
            put(&mut c, tags::CHANNEL_SENSITIVITY_CORRECTION_FACTOR, VR::DS, "1");
            put(&mut c, tags::CHANNEL_BASELINE, VR::DS, "0");
            put(&mut c, tags::CHANNEL_SAMPLE_SKEW, VR::DS, "0");
            put(&mut c, tags::WAVEFORM_BITS_STORED, VR::US, PrimitiveValue::from(16u16));
            channels.push(c);
        }
        seq(&mut w, tags::CHANNEL_DEFINITION_SEQUENCE, channels);
        put(&mut w, tags::WAVEFORM_BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
        put(&mut w, tags::WAVEFORM_SAMPLE_INTERPRETATION, VR::CS, "SS");
        // Interleaved: every channel's first sample, then every channel's second…
        let n = g.samples();
        let mut data: Vec<u16> = Vec::with_capacity(n * g.leads.len());
        for s in 0..n {
            for (_, uv) in &g.leads {
                data.push(uv[s].clamp(i16::MIN as i32, i16::MAX as i32) as i16 as u16);
            }
        }
        put(&mut w, tags::WAVEFORM_DATA, VR::OW, PrimitiveValue::U16(data.into()));
        groups.push(w);
    }
    seq(&mut o, tags::WAVEFORM_SEQUENCE, groups);
    let ann = annotations(&ecg.device, &ecg.statements);
    if !ann.is_empty() {
        seq(&mut o, tags::WAVEFORM_ANNOTATION_SEQUENCE, ann);
    }
    part10(o)
}

/// A data set Ferry made, as a Part 10 file (explicit VR little endian, Ferry's
/// implementation class).
pub(crate) fn part10(o: InMemDicomObject) -> Result<Vec<u8>, String> {
    let file = o
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .implementation_class_uid(IMPLEMENTATION)
                .implementation_version_name("FERRY"),
        )
        .map_err(|e| e.to_string())?;
    let mut out = vec![];
    file.write_all(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}
