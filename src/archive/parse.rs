//! Bytes → a checked [`Instance`]. Pure: no IO, no clock. The whole data set is read, so a
//! truncated file is refused here rather than discovered by a reader later.

use std::io::Cursor;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use super::status::*;
use super::{Instance, Rejection, SeriesAttrs, StudyAttrs, is_uid};
use crate::phi::Phi;

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_end_matches(['\0', ' ']).trim_start().to_string();
    (!s.is_empty()).then_some(s)
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    let e = obj.element_opt(tag).ok().flatten()?;
    e.to_int::<i64>().ok()
}

fn uid(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<String, Rejection> {
    let v = text(obj, tag)
        .ok_or_else(|| Rejection::new(CANNOT_UNDERSTAND, format!("{name} is missing")))?;
    if !is_uid(&v) {
        return Err(Rejection::new(CANNOT_UNDERSTAND, format!("{name} is not a valid UID")));
    }
    Ok(v)
}

/// Parses and checks one Part 10 file (128-byte preamble, `DICM`, file meta, data set).
pub fn parse(bytes: &[u8]) -> Result<Instance, Rejection> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(Rejection::new(
            CANNOT_UNDERSTAND,
            "not a DICOM Part 10 file (no DICM marker after the 128-byte preamble)",
        ));
    }
    let obj = match OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(Cursor::new(bytes))
    {
        Ok(obj) => obj,
        Err(_) => {
            // Name the instance in the refusal if its header, at least, can be read.
            let head = OpenFileOptions::new()
                .read_preamble(ReadPreamble::Always)
                .read_until(tags::PIXEL_DATA)
                .from_reader(Cursor::new(bytes))
                .ok();
            let ids = head
                .as_ref()
                .map(|h| (text(h, tags::SOP_CLASS_UID), text(h, tags::SOP_INSTANCE_UID)));
            let (class, instance) = ids.unwrap_or((None, None));
            return Err(Rejection::new(
                CANNOT_UNDERSTAND,
                "unreadable or truncated DICOM data set",
            )
            .of(class.filter(|u| is_uid(u)), instance.filter(|u| is_uid(u))));
        }
    };
    let meta = obj.meta();
    let transfer_syntax = meta.transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let meta_class = meta.media_storage_sop_class_uid().trim_end_matches(['\0', ' ']).to_string();
    let meta_instance =
        meta.media_storage_sop_instance_uid().trim_end_matches(['\0', ' ']).to_string();

    let sop_class_uid = uid(&obj, tags::SOP_CLASS_UID, "SOP Class UID")?;
    let sop_instance_uid = uid(&obj, tags::SOP_INSTANCE_UID, "SOP Instance UID")
        .map_err(|r| r.of(Some(sop_class_uid.clone()), None))?;
    let named = |r: Rejection| r.of(Some(sop_class_uid.clone()), Some(sop_instance_uid.clone()));
    let study_uid = uid(&obj, tags::STUDY_INSTANCE_UID, "Study Instance UID").map_err(named)?;
    let series_uid = uid(&obj, tags::SERIES_INSTANCE_UID, "Series Instance UID").map_err(named)?;
    if !is_uid(&transfer_syntax) {
        return Err(named(Rejection::new(
            CANNOT_UNDERSTAND,
            "file meta has no valid Transfer Syntax UID",
        )));
    }
    if meta_instance != sop_instance_uid {
        return Err(named(Rejection::new(
            DATASET_MISMATCH,
            "file meta Media Storage SOP Instance UID differs from the data set's SOP Instance UID",
        )));
    }
    if meta_class != sop_class_uid {
        return Err(named(Rejection::new(
            DATASET_MISMATCH,
            "file meta Media Storage SOP Class UID differs from the data set's SOP Class UID",
        )));
    }
    Ok(Instance {
        sop_class_uid,
        sop_instance_uid,
        study_uid,
        series_uid,
        transfer_syntax,
        instance_number: int(&obj, tags::INSTANCE_NUMBER),
        rows: int(&obj, tags::ROWS),
        columns: int(&obj, tags::COLUMNS),
        frames: int(&obj, tags::NUMBER_OF_FRAMES),
        bits_allocated: int(&obj, tags::BITS_ALLOCATED),
        study: StudyAttrs {
            patient_name: Phi::new(text(&obj, tags::PATIENT_NAME)),
            patient_id: Phi::new(text(&obj, tags::PATIENT_ID)),
            patient_birth_date: Phi::new(text(&obj, tags::PATIENT_BIRTH_DATE)),
            patient_sex: text(&obj, tags::PATIENT_SEX),
            study_date: text(&obj, tags::STUDY_DATE),
            study_time: text(&obj, tags::STUDY_TIME),
            accession_number: text(&obj, tags::ACCESSION_NUMBER),
            study_description: text(&obj, tags::STUDY_DESCRIPTION),
            study_id: text(&obj, tags::STUDY_ID),
            referring_physician: text(&obj, tags::REFERRING_PHYSICIAN_NAME),
        },
        series: SeriesAttrs {
            modality: text(&obj, tags::MODALITY),
            series_number: int(&obj, tags::SERIES_NUMBER),
            series_description: text(&obj, tags::SERIES_DESCRIPTION),
            series_date: text(&obj, tags::SERIES_DATE),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_cannot_understand() {
        for bytes in [&b""[..], b"hello", &[0u8; 200][..]] {
            let e = parse(bytes).unwrap_err();
            assert_eq!(e.status, CANNOT_UNDERSTAND);
        }
        let mut fake = vec![0u8; 128];
        fake.extend_from_slice(b"DICM");
        fake.extend_from_slice(&[0xff; 64]);
        assert_eq!(parse(&fake).unwrap_err().status, CANNOT_UNDERSTAND);
    }

    #[test]
    fn uids() {
        assert!(is_uid("1.2.840.10008.1.2.1"));
        for bad in ["", "1..2", "1.2.", "1.2a", &"1".repeat(65)] {
            assert!(!is_uid(bad), "{bad}");
        }
    }
}
