//! The imaging archive: DICOM instances in, checked and indexed; studies out. `parse` is the
//! pure core (bytes → checked instance, or a DICOM failure status with a reason); `store` puts
//! bytes in the object store and rows in SQL; `json` builds DICOM JSON for DICOMweb.

pub mod bulk;
pub mod frames;
pub mod json;
pub mod lengths;
pub mod parse;
pub mod render;
pub mod store;
pub mod sweep;

use crate::phi::Phi;

/// DICOM failure statuses used in C-STORE responses and STOW-RS FailedSOPSequence items.
pub mod status {
    /// Refused: out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATASET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Processing failure.
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// Duplicate SOP instance (a different instance with the same SOP Instance UID).
    pub const DUPLICATE_INSTANCE: u16 = 0x0111;
    /// SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Not authorised.
    pub const NOT_AUTHORISED: u16 = 0x0124;
}

/// Why an instance was not stored: a DICOM status and a reason a person can act on. Reasons
/// never quote data-set values (which may identify a patient).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (status 0x{status:04X})")]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    /// The instance's SOP Class and Instance UIDs, when they could be read.
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

impl Rejection {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection { status, reason: reason.into(), sop_class_uid: None, sop_instance_uid: None }
    }

    /// The same refusal, naming the instance.
    pub fn of(mut self, class: Option<String>, instance: Option<String>) -> Self {
        self.sop_class_uid = self.sop_class_uid.or(class);
        self.sop_instance_uid = self.sop_instance_uid.or(instance);
        self
    }
}

/// Study-level attributes, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyAttrs {
    pub patient_name: Phi<Option<String>>,
    pub patient_id: Phi<Option<String>>,
    pub patient_birth_date: Phi<Option<String>>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_id: Option<String>,
    pub referring_physician: Option<String>,
}

/// Series-level attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesAttrs {
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub series_date: Option<String>,
}

/// A checked instance: its identity, where it belongs, and what queries need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub transfer_syntax: String,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub frames: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub study: StudyAttrs,
    pub series: SeriesAttrs,
    /// The instance's DICOM JSON, bulk values replaced by `BulkDataURI`s that start with
    /// [`BASE_PLACEHOLDER`] (the server's DICOMweb base URL, filled in when served).
    pub metadata: String,
    /// Byte ranges of each frame in the file, when they could be found.
    pub frame_index: Option<frames::FrameIndex>,
    /// Byte ranges of the large values (those the metadata refers to by URI), when found.
    pub bulk_index: Option<bulk::BulkIndex>,
}

/// Stands for the DICOMweb base URL inside stored metadata.
pub const BASE_PLACEHOLDER: &str = "ferry-base:";

/// A DICOM UID: 1–64 characters of digits and dots, no empty component.
pub fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}
