//! GE MUSE XML (`RestingECG`): demographics, the cart's measurements and statements, and
//! `Waveform` elements (rhythm and median) whose leads are base64 little-endian 16-bit samples
//! times `LeadAmplitudeUnitsPerBit`. MUSE keeps 8 leads (I, II, V1–V6); III, aVR, aVL and aVF
//! follow from I and II and are derived.

use base64::Engine;

use super::xml::{self, Element};
use super::{Ecg, EcgError, Format, Group, Kind, Lead, MAX_SAMPLES, Measurements, Patient};
use crate::phi::Phi;

fn bad(what: impl Into<String>) -> EcgError {
    EcgError::Malformed("GE MUSE XML", what.into())
}

fn num(e: &Element, path: &[&str]) -> Option<f64> {
    e.text_at(path).and_then(|t| super::number(&t))
}

fn waveform(w: &Element) -> Result<Option<Group>, EcgError> {
    let kind = match w.text_at(&["WaveformType"]).as_deref() {
        Some("Rhythm") => Kind::Rhythm,
        Some("Median") => Kind::Median,
        _ => return Ok(None),
    };
    let base = num(w, &["SampleBase"]).ok_or_else(|| bad("no SampleBase"))?;
    let exp = num(w, &["SampleExponent"]).unwrap_or(0.0);
    let sampling_hz = base * 10f64.powf(exp);
    let mut leads = vec![];
    for l in w.children_named("LeadData") {
        let Some(lead) = l.text_at(&["LeadID"]).and_then(|id| Lead::from_label(&id)) else {
            continue;
        };
        let per_bit = num(l, &["LeadAmplitudeUnitsPerBit"]).unwrap_or(1.0);
        let units = l.text_at(&["LeadAmplitudeUnits"]).unwrap_or_else(|| "MICROVOLTS".into());
        let to_uv = match units.as_str() {
            "MICROVOLTS" | "uV" => 1.0,
            "MILLIVOLTS" | "mV" => 1000.0,
            other => return Err(bad(format!("amplitude units `{other}`"))),
        };
        let data = l.text_at(&["WaveFormData"]).ok_or_else(|| bad("a lead without data"))?;
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| bad("WaveFormData is not base64"))?;
        if raw.len() % 2 != 0 {
            return Err(bad("WaveFormData is not whole 16-bit samples"));
        }
        let count = raw.len() / 2;
        if let Some(declared) = num(l, &["LeadSampleCountTotal"]) {
            if declared as usize > count {
                return Err(EcgError::Truncated("LeadSampleCountTotal"));
            }
        }
        if count > MAX_SAMPLES {
            return Err(bad("more samples than accepted"));
        }
        let uv = raw
            .chunks_exact(2)
            .map(|b| (i16::from_le_bytes([b[0], b[1]]) as f64 * per_bit * to_uv).round() as i32)
            .collect();
        leads.push((lead, uv));
    }
    super::leads::derive_limb_leads(&mut leads);
    Ok(Some(Group { kind, sampling_hz, leads }))
}

/// `MM-DD-YYYY` and `HH:MM:SS` as `YYYY-MM-DDTHH:MM:SS`.
fn muse_time(date: Option<String>, time: Option<String>) -> Option<String> {
    let d = date?;
    let p: Vec<&str> = d.split(['-', '/']).collect();
    let (m, day, y) = match p.as_slice() {
        [m, d, y] if y.len() == 4 => (*m, *d, *y),
        _ => return None,
    };
    Some(format!("{y}-{m:0>2}-{day:0>2}T{}", time.unwrap_or_else(|| "00:00:00".into())))
}

/// Reads a MUSE XML export.
pub fn parse(bytes: &[u8]) -> Result<Ecg, EcgError> {
    let root = xml::parse(bytes)?;
    if root.name != "RestingECG" {
        return Err(bad("the root element is not RestingECG"));
    }
    let mut groups = vec![];
    for w in root.children_named("Waveform") {
        if let Some(g) = waveform(w)? {
            groups.push(g);
        }
    }
    let m = root.child("RestingECGMeasurements");
    let get = |name: &str| m.and_then(|m| num(m, &[name]));
    let device = Measurements {
        heart_rate_bpm: get("VentricularRate"),
        rr_ms: get("RRInterval"),
        pr_ms: get("PRInterval"),
        qrs_ms: get("QRSDuration"),
        qt_ms: get("QTInterval"),
        qtc_bazett_ms: get("QTCorrected"),
        qtc_fridericia_ms: get("QTcFrederica").or_else(|| get("QTcFridericia")),
        p_axis_deg: get("PAxis"),
        qrs_axis_deg: get("RAxis"),
        t_axis_deg: get("TAxis"),
    };
    let statements = root
        .child("Diagnosis")
        .or_else(|| root.child("OriginalDiagnosis"))
        .map(|d| {
            d.children_named("DiagnosisStatement")
                .filter_map(|s| s.text_at(&["StmtText"]))
                .collect()
        })
        .unwrap_or_default();
    let demo = root.child("PatientDemographics");
    let text = |name: &str| demo.and_then(|d| d.text_at(&[name]));
    let name = match (text("PatientLastName"), text("PatientFirstName")) {
        (Some(l), Some(f)) => Some(format!("{l}^{f}")),
        (l, f) => l.or(f),
    };
    let test = root.child("TestDemographics");
    let acquired_at = muse_time(
        test.and_then(|t| t.text_at(&["AcquisitionDate"])),
        test.and_then(|t| t.text_at(&["AcquisitionTime"])),
    );
    Ok(Ecg {
        format: Format::Muse,
        acquired_at,
        patient: Patient {
            name: Phi::new(name),
            id: Phi::new(text("PatientID")),
            // MM-DD-YYYY, as DICOM's YYYYMMDD.
            birth_date: Phi::new(text("DateofBirth").and_then(|d| {
                let p: Vec<&str> = d.split(['-', '/']).collect();
                match p.as_slice() {
                    [m, day, y] if y.len() == 4 => Some(format!("{y}{m:0>2}{day:0>2}")),
                    _ => None,
                }
            })),
            sex: text("Gender").map(|g| g.chars().take(1).collect::<String>().to_uppercase()),
        },
        groups,
        device,
        statements,
        device_model: test.and_then(|t| t.text_at(&["AcquisitionDevice"])),
    })
}
