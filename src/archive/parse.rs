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

/// A deflated data set may inflate to at most this many bytes.
const MAX_INFLATED: u64 = 1 << 30;

/// Values larger than this (base64 text) go out as BulkDataURI instead of InlineBinary.
const INLINE_LIMIT: usize = 1400;

/// The data set as DICOM JSON, pixel data and large binary values as BulkDataURIs.
/// `pixel_vr` announces Pixel Data the object was read without.
fn metadata_json(
    obj: &DefaultDicomObject,
    path: &str,
    pixel_vr: Option<&str>,
) -> Result<String, Rejection> {
    let failed =
        |_| Rejection::new(CANNOT_UNDERSTAND, "the data set cannot be expressed as DICOM JSON");
    let mut v = dicom_json::to_value(&**obj).map_err(failed)?;
    numbers_as_numbers(&mut v);
    if let (serde_json::Value::Object(map), Some(vr)) = (&mut v, pixel_vr) {
        map.insert("7FE00010".into(), serde_json::json!({"vr": vr}));
    }
    bulk_uris(&mut v, &format!("{}{path}/bulkdata/", super::BASE_PLACEHOLDER), "", true);
    serde_json::to_string(&v).map_err(failed)
}

/// Replaces large binary values, at any depth, by BulkDataURIs named by their path
/// (`archive::bulk`): `{base}{tag}`, or `{base}{sequence}/{item}/{tag}` inside sequences.
fn bulk_uris(v: &mut serde_json::Value, base: &str, prefix: &str, top: bool) {
    let serde_json::Value::Object(map) = v else { return };
    for (tag, attr) in map.iter_mut() {
        let here = format!("{prefix}{tag}");
        let big = (top && tag == "7FE00010")
            || attr
                .get("InlineBinary")
                .and_then(|b| b.as_str())
                .is_some_and(|b| b.len() > INLINE_LIMIT);
        if big {
            let vr = attr.get("vr").cloned().unwrap_or(serde_json::Value::Null);
            *attr = serde_json::json!({ "vr": vr, "BulkDataURI": format!("{base}{here}") });
            continue;
        }
        if attr.get("vr").and_then(|v| v.as_str()) == Some("SQ")
            && let Some(serde_json::Value::Array(items)) = attr.get_mut("Value")
        {
            for (n, item) in items.iter_mut().enumerate() {
                bulk_uris(item, base, &format!("{here}/{n}/"), false);
            }
        }
    }
}

/// PS3.18 F.2.3: IS and DS values are JSON numbers (dicom-json writes them as strings).
/// Applies to nested sequence items too.
fn numbers_as_numbers(v: &mut serde_json::Value) {
    let serde_json::Value::Object(map) = v else { return };
    for attr in map.values_mut() {
        let vr = attr.get("vr").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let Some(serde_json::Value::Array(values)) = attr.get_mut("Value") else { continue };
        match vr.as_str() {
            "IS" | "DS" => {
                for x in values.iter_mut() {
                    let parsed = x.as_str().and_then(|s| {
                        let t = s.trim();
                        t.parse::<i64>().map(serde_json::Value::from).ok().or_else(|| {
                            t.parse::<f64>()
                                .ok()
                                .and_then(serde_json::Number::from_f64)
                                .map(serde_json::Value::Number)
                        })
                    });
                    if let Some(n) = parsed {
                        *x = n;
                    }
                }
            }
            "SQ" => values.iter_mut().for_each(numbers_as_numbers),
            _ => {}
        }
    }
}

/// Parses and checks one Part 10 file (128-byte preamble, `DICM`, file meta, data set).
pub fn parse(bytes: &[u8]) -> Result<Instance, Rejection> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(Rejection::new(
            CANNOT_UNDERSTAND,
            "not a DICOM Part 10 file (no DICM marker after the 128-byte preamble)",
        ));
    }
    // Refuse declared lengths that exceed what was received before the parser allocates them.
    if let Err(ids) = super::lengths::check(bytes, MAX_INFLATED) {
        return Err(Rejection::new(
            CANNOT_UNDERSTAND,
            "element lengths do not fit the data received (truncated or corrupt)",
        )
        .of(ids.sop_class_uid.filter(|u| is_uid(u)), ids.sop_instance_uid.filter(|u| is_uid(u))));
    }
    // Everything indexed or put in the metadata lies before Pixel Data, so the parser stops
    // there: the pixel bytes (most of the file) are neither copied nor base64-encoded. Where
    // the structure cannot be walked here (big endian, deflated), the whole data set is read.
    let pixel = super::lengths::file_meta(bytes)
        .and_then(|(_, ts)| super::frames::pixel_data_location(bytes, &ts));
    let mut opts = OpenFileOptions::new().read_preamble(ReadPreamble::Always);
    if pixel.is_some() {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    let obj = match opts.from_reader(Cursor::new(bytes)) {
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
    let rows = int(&obj, tags::ROWS);
    let columns = int(&obj, tags::COLUMNS);
    let frames = int(&obj, tags::NUMBER_OF_FRAMES);
    let bits_allocated = int(&obj, tags::BITS_ALLOCATED);
    let frame_index = super::frames::index(
        bytes,
        &transfer_syntax,
        rows,
        columns,
        int(&obj, tags::SAMPLES_PER_PIXEL),
        bits_allocated,
        frames,
    );
    let path = format!("studies/{study_uid}/series/{series_uid}/instances/{sop_instance_uid}");
    // Pixel data not read (see above) is still announced, as bulk data.
    let pixel_vr = match pixel {
        Some(Some((_, len))) if len == u32::MAX => Some("OB"),
        Some(Some(_)) if bits_allocated.unwrap_or(8) > 8 => Some("OW"),
        Some(Some(_)) => Some("OB"),
        _ => None,
    };
    let metadata = metadata_json(&obj, &path, pixel_vr).map_err(named)?;
    let bulk_index = super::bulk::index(bytes, &transfer_syntax);
    Ok(Instance {
        metadata,
        frame_index,
        bulk_index,
        sop_class_uid,
        sop_instance_uid,
        study_uid,
        series_uid,
        transfer_syntax,
        instance_number: int(&obj, tags::INSTANCE_NUMBER),
        rows,
        columns,
        frames,
        bits_allocated,
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

#[cfg(test)]
mod fuzz_regressions {
    /// Found by the fuzzer: a CT_small variant declaring a 2.5 GB element exhausted memory in
    /// the parser. It must now be refused, cheaply.
    #[test]
    fn huge_declared_length_is_refused() {
        let bytes = include_bytes!("../../tests/data/fuzz/oom-declared-length.dcm");
        let e = super::parse(bytes).unwrap_err();
        assert_eq!(e.status, super::CANNOT_UNDERSTAND);
        assert!(e.reason.contains("lengths"), "{}", e.reason);
    }

    /// Found by the fuzzer: an unknown VR (read as UN, 4-byte length) hid a huge length from
    /// a check that took unknown VRs for the short form.
    #[test]
    fn unknown_vr_is_read_with_the_long_length() {
        let bytes = include_bytes!("../../tests/data/fuzz/oom-unknown-vr-length.dcm");
        assert_eq!(super::parse(bytes).unwrap_err().status, super::CANNOT_UNDERSTAND);
    }
}
