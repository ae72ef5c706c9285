//! HL7 aECG (`AnnotatedECG`, urn:hl7-org:v3): series of sequence sets, each lead an
//! `SLIST_PQ` whose values are origin + scale × digit; the time sequence's increment gives the
//! sampling interval; the representative beat is a derived series; measurements and
//! statements are annotations.

use super::xml::{self, Element};
use super::{Ecg, EcgError, Format, Group, Kind, Lead, MAX_SAMPLES, Measurements, Patient};
use crate::phi::Phi;

fn bad(what: impl Into<String>) -> EcgError {
    EcgError::Malformed("HL7 aECG", what.into())
}

/// A physical quantity `value`+`unit` of an element (`<scale value="2.5" unit="uV"/>`).
fn quantity(e: Option<&Element>) -> Option<(f64, String)> {
    let e = e?;
    Some((super::number(e.attr("value")?)?, e.attr("unit").unwrap_or("").to_string()))
}

/// Seconds per unit of a time unit.
fn seconds_per(unit: &str) -> Option<f64> {
    match unit {
        "s" | "" => Some(1.0),
        "ms" => Some(0.001),
        "us" => Some(1e-6),
        _ => None,
    }
}

/// `20021122091000[.000]` as `2002-11-22T09:10:00`.
pub(crate) fn hl7_time(ts: &str) -> Option<String> {
    let d: String = ts.chars().take_while(|c| c.is_ascii_digit()).collect();
    if d.len() < 8 {
        return None;
    }
    let part = |a: usize, b: usize| d.get(a..b).unwrap_or("00").to_string();
    Some(format!(
        "{}-{}-{}T{}:{}:{}",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        part(8, 10),
        part(10, 12),
        part(12, 14)
    ))
}

/// The leads and sampling rate of one series' first sequence set.
fn series_group(series: &Element, kind: Kind) -> Result<Group, EcgError> {
    let set = series
        .children_named("component")
        .find_map(|c| c.child("sequenceSet"))
        .ok_or_else(|| bad("a series without a sequence set"))?;
    let mut interval_s = None;
    let mut leads = vec![];
    for seq in set.children_named("component").filter_map(|c| c.child("sequence")) {
        let code = seq.child("code").and_then(|c| c.attr("code")).unwrap_or("");
        let value = seq.child("value").ok_or_else(|| bad("a sequence without a value"))?;
        if code == "TIME_ABSOLUTE" || code == "TIME_RELATIVE" {
            let (inc, unit) =
                quantity(value.child("increment")).ok_or_else(|| bad("no sampling increment"))?;
            let per = seconds_per(&unit).ok_or_else(|| bad(format!("time unit `{unit}`")))?;
            interval_s = Some(inc * per);
            continue;
        }
        let Some(lead) = Lead::from_mdc_name(code) else { continue };
        let (origin, ounit) = quantity(value.child("origin")).unwrap_or((0.0, "uV".into()));
        let (scale, sunit) = quantity(value.child("scale")).ok_or_else(|| bad("no scale"))?;
        let (o_uv, s_uv) = (
            super::microvolts_per(&ounit).ok_or_else(|| bad(format!("unit `{ounit}`")))?,
            super::microvolts_per(&sunit).ok_or_else(|| bad(format!("unit `{sunit}`")))?,
        );
        let digits = value.child("digits").map(|d| d.text.as_str()).unwrap_or("");
        let mut samples = Vec::new();
        for d in digits.split_ascii_whitespace() {
            if samples.len() >= MAX_SAMPLES {
                return Err(bad("more samples than accepted"));
            }
            let v: f64 = d.parse().map_err(|_| bad("a digit that is not a number"))?;
            samples.push((origin * o_uv + scale * s_uv * v).round() as i32);
        }
        leads.push((lead, samples));
    }
    let interval = interval_s.filter(|s| *s > 0.0).ok_or_else(|| bad("no sampling interval"))?;
    Ok(Group { kind, sampling_hz: 1.0 / interval, leads })
}

/// Measurement code → field.
fn measurement(code: &str) -> Option<&'static str> {
    Some(match code {
        "MDC_ECG_HEART_RATE" => "hr",
        "MDC_ECG_TIME_PD_RR" => "rr",
        "MDC_ECG_TIME_PD_PR" => "pr",
        "MDC_ECG_TIME_PD_QRS" => "qrs",
        "MDC_ECG_TIME_PD_QT" => "qt",
        "MDC_ECG_TIME_PD_QTc" | "MDC_ECG_TIME_PD_QTc_BAZETT" => "qtcb",
        "MDC_ECG_TIME_PD_QTc_FRIDERICIA" => "qtcf",
        "MDC_ECG_ANGLE_P_FRONT" => "pax",
        "MDC_ECG_ANGLE_QRS_FRONT" => "qrsax",
        "MDC_ECG_ANGLE_T_FRONT" => "tax",
        _ => return None,
    })
}

/// Reads an HL7 aECG document.
pub fn parse(bytes: &[u8]) -> Result<Ecg, EcgError> {
    let root = xml::parse(bytes)?;
    if root.name != "AnnotatedECG" {
        return Err(bad("the root element is not AnnotatedECG"));
    }
    let mut groups = vec![];
    let mut series_list = vec![];
    for s in root.children_named("component").filter_map(|c| c.child("series")) {
        series_list.push(s);
    }
    let first = series_list.first().copied().ok_or(EcgError::NoWaveform)?;
    for s in &series_list {
        groups.push(series_group(s, Kind::Rhythm)?);
        for d in s.children_named("derivation").filter_map(|d| d.child("derivedSeries")) {
            let code = d.child("code").and_then(|c| c.attr("code")).unwrap_or("");
            if code == "REPRESENTATIVE_BEAT" || code == "MEDIAN_BEAT" {
                groups.push(series_group(d, Kind::Median)?);
            }
        }
    }
    let mut device = Measurements::default();
    let mut statements = vec![];
    let mut annotations = vec![];
    root.descendants("annotation", &mut annotations);
    for a in annotations {
        let code = a.child("code").and_then(|c| c.attr("code")).unwrap_or("");
        let value = a.child("value");
        if let Some(field) = measurement(code)
            && let Some((v, unit)) = quantity(value)
        {
            let v = if unit == "s" { v * 1000.0 } else { v };
            device.set_first(field, v);
        } else if code == "MDC_ECG_INTERPRETATION_STATEMENT" || code == "MDC_ECG_INTERPRETATION" {
            if let Some(t) = value.map(|v| v.text.trim()).filter(|t| !t.is_empty()) {
                statements.push(t.to_string());
            }
        } else if code == "MDC_ECG_RHY"
            && let Some(name) = value.and_then(|v| v.attr("displayName"))
        {
            statements.push(name.to_string());
        }
    }
    let mut people = vec![];
    root.descendants("subjectDemographicPerson", &mut people);
    let person = people.first();
    let mut subjects = vec![];
    root.descendants("trialSubject", &mut subjects);
    let patient = Patient {
        name: Phi::new(person.and_then(|p| p.text_at(&["name"]))),
        id: Phi::new(
            subjects
                .first()
                .and_then(|s| s.child("id"))
                .and_then(|i| i.attr("extension"))
                .map(str::to_string),
        ),
        birth_date: Phi::new(
            person
                .and_then(|p| p.child("birthTime"))
                .and_then(|b| b.attr("value"))
                .map(str::to_string),
        ),
        sex: person
            .and_then(|p| p.child("administrativeGenderCode"))
            .and_then(|g| g.attr("code"))
            .map(str::to_string),
    };
    let acquired_at = first
        .at(&["effectiveTime", "low"])
        .and_then(|l| l.attr("value"))
        .or_else(|| root.at(&["effectiveTime", "center"]).and_then(|c| c.attr("value")))
        .and_then(hl7_time);
    let mut models = vec![];
    root.descendants("manufacturerModelName", &mut models);
    let device_model = models.first().map(|m| m.text.trim().to_string()).filter(|m| !m.is_empty());
    Ok(Ecg { format: Format::Aecg, acquired_at, patient, groups, device, statements, device_model })
}
