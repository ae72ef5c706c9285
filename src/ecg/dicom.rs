//! DICOM ECG waveforms (12-lead, General and Ambulatory ECG Waveform Storage): each item of
//! the Waveform Sequence is a multiplex group (the rhythm, the median beats) of interleaved
//! samples; each channel's lead comes from its Channel Source code (MDC or SCPECG scheme),
//! its value is raw × sensitivity × correction + baseline in the sensitivity's unit, and its
//! samples may use fewer bits than allocated. Measurements and statements come from the
//! Waveform Annotation Sequence. Tolerant of what real carts write (missing optional
//! attributes, absent correction factors).

use std::io::Cursor;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};

use super::{
    Ecg, EcgError, Format, Group, Kind, Lead, MAX_CHANNELS, MAX_SAMPLES, Measurements, Patient,
};
use crate::phi::Phi;

fn bad(what: impl Into<String>) -> EcgError {
    EcgError::Malformed("DICOM waveform", what.into())
}

fn text(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = o.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?.trim_end_matches(['\0', ' ']).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn float(o: &InMemDicomObject, tag: Tag) -> Option<f64> {
    o.element_opt(tag).ok().flatten()?.to_float64().ok().filter(|v| v.is_finite())
}

fn int(o: &InMemDicomObject, tag: Tag) -> Option<i64> {
    o.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

fn items(o: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    o.element_opt(tag).ok().flatten().and_then(|e| e.items()).unwrap_or(&[])
}

/// The first code item of a code sequence: (scheme, value, meaning).
fn code(o: &InMemDicomObject, tag: Tag) -> Option<(String, String, String)> {
    let c = items(o, tag).first()?;
    Some((
        text(c, tags::CODING_SCHEME_DESIGNATOR).unwrap_or_default(),
        text(c, tags::CODE_VALUE).unwrap_or_default(),
        text(c, tags::CODE_MEANING).unwrap_or_default(),
    ))
}

/// A sample as stored: little-endian, `bits` allocated, `stored` of them meaningful, signed
/// for SS/SB.
fn sample(raw: &[u8], i: usize, bytes: usize, stored: u32, signed: bool) -> i64 {
    let b = &raw[i * bytes..i * bytes + bytes];
    let mut v: u64 = 0;
    for (k, x) in b.iter().enumerate() {
        v |= (*x as u64) << (8 * k);
    }
    let stored = stored.clamp(1, (bytes * 8) as u32);
    let mask = if stored >= 64 { u64::MAX } else { (1u64 << stored) - 1 };
    let v = v & mask;
    if signed && v >> (stored - 1) & 1 == 1 { v as i64 - (1i64 << stored) } else { v as i64 }
}

fn group(item: &InMemDicomObject) -> Result<Group, EcgError> {
    let label = text(item, tags::MULTIPLEX_GROUP_LABEL).unwrap_or_default().to_ascii_uppercase();
    let kind =
        if label.contains("MEDIAN") || label.contains("AVERAGE") || label.contains("REPRESENT") {
            Kind::Median
        } else {
            Kind::Rhythm
        };
    let channels = int(item, tags::NUMBER_OF_WAVEFORM_CHANNELS)
        .filter(|c| *c > 0)
        .ok_or_else(|| bad("no channel count"))? as usize;
    if channels > MAX_CHANNELS {
        return Err(EcgError::TooManyChannels(channels));
    }
    let samples = int(item, tags::NUMBER_OF_WAVEFORM_SAMPLES)
        .filter(|s| *s > 0)
        .ok_or_else(|| bad("no sample count"))? as usize;
    if samples > MAX_SAMPLES {
        return Err(bad("more samples than accepted"));
    }
    let sampling_hz =
        float(item, tags::SAMPLING_FREQUENCY).ok_or_else(|| bad("no sampling frequency"))?;
    let bits = int(item, tags::WAVEFORM_BITS_ALLOCATED).unwrap_or(16);
    let bytes = match bits {
        8 => 1,
        16 => 2,
        32 => 4,
        b => return Err(bad(format!("{b} bits allocated per sample"))),
    };
    let interp = text(item, tags::WAVEFORM_SAMPLE_INTERPRETATION).unwrap_or_else(|| "SS".into());
    let signed = matches!(interp.as_str(), "SS" | "SB" | "SL");
    let data = item
        .element_opt(tags::WAVEFORM_DATA)
        .ok()
        .flatten()
        .ok_or(EcgError::NoWaveform)?
        .value()
        .to_bytes()
        .map_err(|_| bad("Waveform Data cannot be read"))?;
    if channels
        .checked_mul(samples)
        .and_then(|n| n.checked_mul(bytes))
        .is_none_or(|n| n > data.len())
    {
        return Err(EcgError::Truncated("the Waveform Sequence"));
    }
    let defs = items(item, tags::CHANNEL_DEFINITION_SEQUENCE);
    if defs.len() != channels {
        return Err(bad(format!("{} channel definitions for {channels} channels", defs.len())));
    }
    let mut leads = Vec::with_capacity(channels);
    for (c, def) in defs.iter().enumerate() {
        let lead = code(def, tags::CHANNEL_SOURCE_SEQUENCE)
            .and_then(|(scheme, value, _)| Lead::from_dicom_code(&scheme, &value))
            .unwrap_or(Lead::Other(c as u16 + 1));
        let sensitivity = float(def, tags::CHANNEL_SENSITIVITY).unwrap_or(1.0);
        let unit = code(def, tags::CHANNEL_SENSITIVITY_UNITS_SEQUENCE)
            .map(|(_, v, _)| v)
            .unwrap_or_else(|| "uV".into());
        let to_uv = super::microvolts_per(&unit).ok_or_else(|| bad(format!("unit `{unit}`")))?;
        let correction = float(def, tags::CHANNEL_SENSITIVITY_CORRECTION_FACTOR).unwrap_or(1.0);
        let baseline = float(def, tags::CHANNEL_BASELINE).unwrap_or(0.0);
        let stored = int(def, tags::WAVEFORM_BITS_STORED).unwrap_or(bits).clamp(1, bits) as u32;
        let uv = (0..samples)
            .map(|s| {
                let raw = sample(&data, s * channels + c, bytes, stored, signed) as f64;
                ((raw * sensitivity * correction + baseline) * to_uv).round() as i32
            })
            .collect();
        leads.push((lead, uv));
    }
    Ok(Group { kind, sampling_hz, leads })
}

/// Which measurement a coded annotation is: by SCPECG code, else by its meaning (MDC and
/// vendor schemes name them alike).
fn measurement(scheme: &str, value: &str, meaning: &str) -> Option<&'static str> {
    if scheme == "SCPECG" {
        let by_code = match value {
            "5.10.2.1-3" => Some("rr"),
            "5.10.2.1-1" => Some("hr"),
            "5.13.5-7" => Some("pr"),
            "5.13.5-9" => Some("qrs"),
            "5.13.5-11" => Some("qt"),
            "5.10.2.5-5" => Some("qtcb"),
            "5.10.3-11" => Some("pax"),
            "5.10.3-13" => Some("qrsax"),
            "5.10.3-15" => Some("tax"),
            _ => None,
        };
        if by_code.is_some() {
            return by_code;
        }
    }
    let m = meaning.to_ascii_lowercase();
    Some(if m.contains("ventricular rate") || m.contains("heart rate") {
        "hr"
    } else if m.contains("rr interval") {
        "rr"
    } else if m.contains("pr interval") {
        "pr"
    } else if m.contains("qrs duration") {
        "qrs"
    } else if m.contains("qtc") && m.contains("frider") {
        "qtcf"
    } else if m.contains("qtc") {
        "qtcb"
    } else if m.contains("qt interval") {
        "qt"
    } else if m.starts_with("p axis") {
        "pax"
    } else if m.contains("qrs axis") || m.starts_with("r axis") {
        "qrsax"
    } else if m.starts_with("t axis") {
        "tax"
    } else {
        return None;
    })
}

/// `YYYYMMDD[HHMMSS]` as `YYYY-MM-DDTHH:MM:SS`.
fn dicom_time(date: &str, time: &str) -> Option<String> {
    let d: String = date.chars().filter(|c| c.is_ascii_digit()).collect();
    let t: String = time.chars().filter(|c| c.is_ascii_digit()).collect();
    if d.len() < 8 {
        return None;
    }
    let t = format!("{t:0<6}");
    Some(format!("{}-{}-{}T{}:{}:{}", &d[0..4], &d[4..6], &d[6..8], &t[0..2], &t[2..4], &t[4..6]))
}

/// Reads a DICOM ECG waveform instance (Part 10).
pub fn parse(bytes: &[u8]) -> Result<Ecg, EcgError> {
    // Declared lengths must fit before the DICOM parser allocates them.
    crate::archive::lengths::check(bytes, 1 << 30)
        .map_err(|_| EcgError::Truncated("the DICOM file"))?;
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(Cursor::new(bytes))
        .map_err(|_| bad("unreadable DICOM data set"))?;
    let seq = items(&obj, tags::WAVEFORM_SEQUENCE);
    if seq.is_empty() {
        return Err(EcgError::NoWaveform);
    }
    let mut groups = vec![];
    for item in seq {
        let g = group(item)?;
        // One rhythm and one median group: the first of each kind.
        if !groups.iter().any(|x: &Group| x.kind == g.kind) {
            groups.push(g);
        }
    }
    let mut device = Measurements::default();
    let mut statements = vec![];
    for a in items(&obj, tags::WAVEFORM_ANNOTATION_SEQUENCE) {
        match code(a, tags::CONCEPT_NAME_CODE_SEQUENCE) {
            Some((scheme, value, meaning)) => {
                if let (Some(field), Some(v)) =
                    (measurement(&scheme, &value, &meaning), float(a, tags::NUMERIC_VALUE))
                {
                    device.set_first(field, v);
                }
            }
            None => {
                if let Some(t) = text(a, tags::UNFORMATTED_TEXT_VALUE) {
                    statements.push(t);
                }
            }
        }
    }
    let acquired_at = text(&obj, tags::ACQUISITION_DATE_TIME)
        .and_then(|dt| dicom_time(&dt[..dt.len().min(8)], dt.get(8..).unwrap_or("")))
        .or_else(|| {
            dicom_time(
                &text(&obj, tags::CONTENT_DATE).or_else(|| text(&obj, tags::STUDY_DATE))?,
                &text(&obj, tags::CONTENT_TIME).unwrap_or_default(),
            )
        });
    Ok(Ecg {
        format: Format::Dicom,
        acquired_at,
        patient: Patient {
            name: Phi::new(text(&obj, tags::PATIENT_NAME)),
            id: Phi::new(text(&obj, tags::PATIENT_ID)),
            birth_date: Phi::new(text(&obj, tags::PATIENT_BIRTH_DATE)),
            sex: text(&obj, tags::PATIENT_SEX),
        },
        groups,
        device,
        statements,
        device_model: text(&obj, tags::MANUFACTURER_MODEL_NAME),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_use_the_bits_stored_and_their_sign() {
        // 12 bits stored of 16: 0x0FFF is -1, 0x0800 is -2048, 0xF7FF keeps only its low 12 bits.
        let raw = [0xFF, 0x0F, 0x00, 0x08, 0xFF, 0xF7];
        assert_eq!(sample(&raw, 0, 2, 12, true), -1);
        assert_eq!(sample(&raw, 1, 2, 12, true), -2048);
        assert_eq!(sample(&raw, 2, 2, 12, true), 2047);
        assert_eq!(sample(&raw, 0, 2, 16, true), 4095);
        assert_eq!(sample(&raw, 2, 2, 16, false), 0xF7FF);
    }
}
