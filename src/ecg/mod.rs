//! ECGs: whatever format a cart writes, read into one record — groups of leads in microvolts
//! (the rhythm strip, the median beats), the device's measurements and statements — by pure
//! parsers that check every declared count against the bytes received before allocating, and
//! refuse XML with a DTD or entities. `detect` names the format from the content, never the
//! file name.
//!
//! - `dicom`: DICOM 12-lead, General and Ambulatory ECG Waveform Storage;
//! - `muse`: GE MUSE XML (`RestingECG`);
//! - `aecg`: HL7 aECG (`AnnotatedECG`);
//! - `scp`: SCP-ECG (EN 1064), default and custom Huffman tables, difference encodings;
//! - `leads`: lead codes in every scheme seen in real files;
//! - `xml`: a small, bounded XML tree that refuses DTDs and entity declarations;
//! - `measure`: Ferry's own measurements from the samples;
//! - `print`: the A4 printout, PDF and PNG.

pub mod aecg;
pub mod dicom;
pub mod dicom_out;
pub mod http;
pub mod ingest;
pub mod leads;
pub mod measure;
pub mod muse;
pub mod print;
pub mod scp;
pub mod store;
pub mod xml;

use serde::Serialize;

use crate::phi::Phi;
pub use leads::Lead;

/// The formats Ferry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Dicom,
    Muse,
    Aecg,
    Scp,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dicom => "dicom",
            Format::Muse => "muse",
            Format::Aecg => "aecg",
            Format::Scp => "scp",
        }
    }
}

/// What a group of leads holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The recording itself (typically 10 s).
    Rhythm,
    /// One representative (median, average) beat per lead.
    Median,
}

/// Leads sampled together.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub kind: Kind,
    pub sampling_hz: f64,
    /// Leads of equal length, in microvolts.
    pub leads: Vec<(Lead, Vec<i32>)>,
}

impl Group {
    pub fn samples(&self) -> usize {
        self.leads.first().map_or(0, |(_, s)| s.len())
    }

    pub fn duration_ms(&self) -> f64 {
        self.samples() as f64 * 1000.0 / self.sampling_hz
    }

    pub fn lead(&self, lead: Lead) -> Option<&[i32]> {
        self.leads.iter().find(|(l, _)| *l == lead).map(|(_, s)| s.as_slice())
    }
}

/// Global measurements, each absent when unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Measurements {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heart_rate_bpm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rr_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qrs_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtc_bazett_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtc_fridericia_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_axis_deg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qrs_axis_deg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_axis_deg: Option<f64>,
}

impl Measurements {
    /// Sets a measurement by its short name (`hr`, `rr`, `pr`, `qrs`, `qt`, `qtcb`, `qtcf`,
    /// `pax`, `qrsax`, else the T axis) unless already set: a record's first (global) value
    /// wins over per-lead ones that follow.
    pub fn set_first(&mut self, field: &str, v: f64) {
        let slot = match field {
            "hr" => &mut self.heart_rate_bpm,
            "rr" => &mut self.rr_ms,
            "pr" => &mut self.pr_ms,
            "qrs" => &mut self.qrs_ms,
            "qt" => &mut self.qt_ms,
            "qtcb" => &mut self.qtc_bazett_ms,
            "qtcf" => &mut self.qtc_fridericia_ms,
            "pax" => &mut self.p_axis_deg,
            "qrsax" => &mut self.qrs_axis_deg,
            _ => &mut self.t_axis_deg,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }
}

/// Who the ECG is of, as the file says (patient data: never logged).
#[derive(Debug, Clone, Default)]
pub struct Patient {
    pub name: Phi<Option<String>>,
    pub id: Phi<Option<String>>,
    pub birth_date: Phi<Option<String>>,
    pub sex: Option<String>,
}

/// One ECG, whatever format it came in.
#[derive(Debug, Clone)]
pub struct Ecg {
    pub format: Format,
    /// When it was recorded, as `YYYY-MM-DDTHH:MM:SS` local time of the cart, if known.
    pub acquired_at: Option<String>,
    pub patient: Patient,
    pub groups: Vec<Group>,
    pub device: Measurements,
    /// The device's interpretation lines.
    pub statements: Vec<String>,
    /// The cart, as it names itself.
    pub device_model: Option<String>,
}

impl Ecg {
    pub fn group(&self, kind: Kind) -> Option<&Group> {
        self.groups.iter().find(|g| g.kind == kind)
    }
}

/// Why an ECG was refused: a stable code and words for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcgError {
    #[error("not an ECG in a format Ferry reads (DICOM waveform, GE MUSE XML, HL7 aECG, SCP-ECG)")]
    UnknownFormat,
    #[error(
        "XML with a document type declaration or entities is refused (they are never expanded or fetched)"
    )]
    XmlDtd,
    #[error("malformed {0}: {1}")]
    Malformed(&'static str, String),
    #[error("{0} declares more data than the file holds")]
    Truncated(&'static str),
    #[error("the leads of a group have different lengths")]
    UnequalLeads,
    #[error("sampling rate {0} Hz is outside 50 Hz to 20 kHz")]
    SamplingRate(String),
    #[error("{0} channels: at most 64 are accepted")]
    TooManyChannels(usize),
    #[error("no waveform in the file")]
    NoWaveform,
}

impl EcgError {
    /// The stable code a problem carries.
    pub fn code(&self) -> &'static str {
        match self {
            EcgError::UnknownFormat => "unknown_format",
            EcgError::XmlDtd => "xml_dtd_refused",
            EcgError::Malformed(..) => "malformed_ecg",
            EcgError::Truncated(_) => "truncated_ecg",
            EcgError::UnequalLeads => "unequal_leads",
            EcgError::SamplingRate(_) => "sampling_rate",
            EcgError::TooManyChannels(_) => "too_many_channels",
            EcgError::NoWaveform => "no_waveform",
        }
    }
}

/// Largest channel count accepted.
pub const MAX_CHANNELS: usize = 64;
/// Most samples per lead (an hour at 1 kHz; ambulatory records beyond are refused).
pub const MAX_SAMPLES: usize = 3_600_000;

/// Checks what every parser must hold to: sampling rate, channel count, equal lengths.
pub(crate) fn check_group(g: &Group) -> Result<(), EcgError> {
    if !(50.0..=20_000.0).contains(&g.sampling_hz) || !g.sampling_hz.is_finite() {
        return Err(EcgError::SamplingRate(format!("{}", g.sampling_hz)));
    }
    if g.leads.len() > MAX_CHANNELS {
        return Err(EcgError::TooManyChannels(g.leads.len()));
    }
    if g.leads.is_empty() {
        return Err(EcgError::NoWaveform);
    }
    let n = g.leads[0].1.len();
    if n == 0 || g.leads.iter().any(|(_, s)| s.len() != n) {
        return Err(EcgError::UnequalLeads);
    }
    Ok(())
}

/// The format of `bytes`, from their content.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        return Some(Format::Dicom);
    }
    if scp::looks_like(bytes) {
        return Some(Format::Scp);
    }
    // XML: the root element's name, after any declaration, comments and BOM.
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}');
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("<?") {
            rest = r.split_once("?>").map(|(_, r)| r.trim_start())?;
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->").map(|(_, r)| r.trim_start())?;
        } else {
            break;
        }
    }
    if rest.starts_with("<!DOCTYPE") || rest.starts_with("<!doctype") {
        // Refused by the XML reader with its own words; say which format it claims to be.
        let after = rest.split_once('>').map_or("", |(_, r)| r);
        return xml_root_format(after.trim_start()).or(Some(Format::Aecg));
    }
    xml_root_format(rest)
}

fn xml_root_format(rest: &str) -> Option<Format> {
    let name = rest.strip_prefix('<')?;
    let end = name.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(name.len());
    let local = name[..end].rsplit(':').next().unwrap_or("");
    match local {
        "RestingECG" => Some(Format::Muse),
        "AnnotatedECG" => Some(Format::Aecg),
        _ => None,
    }
}

/// Reads an ECG in any format Ferry knows.
pub fn parse(bytes: &[u8]) -> Result<Ecg, EcgError> {
    let mut ecg = match detect(bytes).ok_or(EcgError::UnknownFormat)? {
        Format::Dicom => dicom::parse(bytes)?,
        Format::Muse => muse::parse(bytes)?,
        Format::Aecg => aecg::parse(bytes)?,
        Format::Scp => scp::parse(bytes)?,
    };
    if ecg.groups.is_empty() {
        return Err(EcgError::NoWaveform);
    }
    for g in &ecg.groups {
        check_group(g)?;
    }
    // The rhythm first, whatever order the file had (MUSE writes the median first).
    ecg.groups.sort_by_key(|g| g.kind != Kind::Rhythm);
    Ok(ecg)
}

/// The DICOM SOP classes that hold ECGs: 12-lead, General and Ambulatory ECG Waveform Storage.
pub fn is_ecg_sop_class(uid: &str) -> bool {
    matches!(
        uid,
        "1.2.840.10008.5.1.4.1.1.9.1.1"
            | "1.2.840.10008.5.1.4.1.1.9.1.2"
            | "1.2.840.10008.5.1.4.1.1.9.1.3"
    )
}

/// The ECG record of a DICOM ECG just stored in the archive (under the archive's permit, whose
/// decision was recorded): parsed on a blocking thread; a waveform the ECG reader cannot read
/// leaves the instance stored (it passed the archive's checks) and says so in the log.
pub async fn record_dicom(
    db: &crate::storage::Db,
    permit: &crate::auth::policy::Permit<crate::auth::policy::ImagingStore>,
    study: &str,
    sop: &str,
    bytes: bytes::Bytes,
    sha256: &str,
    now: i64,
) {
    // An ECG that came in another format already has its record (this is its DICOM form),
    // and so has one stored before: nothing to read.
    if matches!(store::by_instance(db, sop).await, Ok(Some(_))) {
        return;
    }
    let parsed = tokio::task::spawn_blocking(move || {
        let e = parse(&bytes)?;
        let computed = measure::computed(&e);
        Ok::<_, EcgError>((e, computed))
    })
    .await;
    let (ecg, computed) = match parsed {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!(code = e.code(), "a DICOM ECG stored without an ECG record: {e}");
            return;
        }
        Err(_) => return,
    };
    let key = match crate::archive::store::instance_object(db, sop).await {
        Ok(Some(k)) => k,
        _ => return,
    };
    let id = format!("ecg_{}", crate::ids::random_id(9));
    let summary = store::summary(&ecg, &computed);
    let actor = permit.actor().map(|a| a.to_string()).unwrap_or_else(|| "device".into());
    let new = store::NewEcg {
        id: &id,
        ecg: &ecg,
        sha256,
        object_key: &key,
        study_uid: Some(study),
        sop_instance_uid: Some(sop),
        summary: &summary,
        created_by: &actor,
        now,
    };
    match store::insert(db, permit, new).await {
        Ok((row, true)) => {
            crate::reading::route::ecg_arrived(db, &row.site, &row.id, study, now).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the ECG record of a stored DICOM ECG could not be written")
        }
    }
}

/// A decimal number from text, tolerant of spaces; None when it is not one.
pub(crate) fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Microvolts per unit of a UCUM-style amplitude unit (`uV`, `mV`, `V`, `nV`).
pub(crate) fn microvolts_per(unit: &str) -> Option<f64> {
    match unit.trim() {
        "uV" | "µV" | "microvolt" | "MICROVOLTS" | "" => Some(1.0),
        "mV" | "millivolt" => Some(1000.0),
        "V" => Some(1_000_000.0),
        "nV" => Some(0.001),
        _ => None,
    }
}
