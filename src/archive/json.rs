//! DICOM JSON (PS3.18 Annex F) for QIDO results and STOW responses.

use serde_json::{Map, Value, json};

use super::store::{InstanceRow, SeriesRow, StudyRow};

/// An attribute object: `{"vr": VR, "Value": [...]}`, or `{"vr": VR}` when empty.
fn attr(vr: &str, values: Vec<Value>) -> Value {
    if values.is_empty() { json!({ "vr": vr }) } else { json!({ "vr": vr, "Value": values }) }
}

fn s(vr: &str, v: &Option<String>) -> Value {
    attr(vr, v.iter().map(|x| json!(x)).collect())
}

fn pn(v: &Option<String>) -> Value {
    attr("PN", v.iter().map(|x| json!({ "Alphabetic": x })).collect())
}

fn int(vr: &str, v: Option<i64>) -> Value {
    attr(vr, v.into_iter().map(|x| json!(x)).collect())
}

/// The attributes of a study-level QIDO result.
pub fn study(r: &StudyRow, base: &str) -> Value {
    let mut m = Map::new();
    m.insert("00080020".into(), s("DA", &r.study_date));
    m.insert("00080030".into(), s("TM", &r.study_time));
    m.insert("00080050".into(), s("SH", &r.accession_number));
    m.insert("00080061".into(), attr("CS", r.modalities.iter().map(|x| json!(x)).collect()));
    m.insert("00080090".into(), pn(&r.referring_physician));
    m.insert("00081030".into(), s("LO", &r.study_description));
    m.insert("00081190".into(), attr("UR", vec![json!(format!("{base}/studies/{}", r.study_uid))]));
    m.insert("00100010".into(), pn(&r.patient_name));
    m.insert("00100020".into(), s("LO", &r.patient_id));
    m.insert("00100030".into(), s("DA", &r.patient_birth_date));
    m.insert("00100040".into(), s("CS", &r.patient_sex));
    m.insert("0020000D".into(), attr("UI", vec![json!(r.study_uid)]));
    m.insert("00200010".into(), s("SH", &r.study_id));
    m.insert("00201206".into(), int("IS", Some(r.series_count)));
    m.insert("00201208".into(), int("IS", Some(r.instance_count)));
    Value::Object(m)
}

/// The attributes of a series-level QIDO result.
pub fn series(r: &SeriesRow, base: &str) -> Value {
    let mut m = Map::new();
    m.insert("00080021".into(), s("DA", &r.series_date));
    m.insert("00080060".into(), s("CS", &r.modality));
    m.insert("0008103E".into(), s("LO", &r.series_description));
    m.insert(
        "00081190".into(),
        attr("UR", vec![json!(format!("{base}/studies/{}/series/{}", r.study_uid, r.series_uid))]),
    );
    m.insert("0020000D".into(), attr("UI", vec![json!(r.study_uid)]));
    m.insert("0020000E".into(), attr("UI", vec![json!(r.series_uid)]));
    m.insert("00200011".into(), int("IS", r.series_number));
    m.insert("00201209".into(), int("IS", Some(r.instance_count)));
    Value::Object(m)
}

/// The attributes of an instance-level QIDO result.
pub fn instance(r: &InstanceRow, base: &str) -> Value {
    let mut m = Map::new();
    m.insert("00080016".into(), attr("UI", vec![json!(r.sop_class_uid)]));
    m.insert("00080018".into(), attr("UI", vec![json!(r.sop_instance_uid)]));
    m.insert(
        "00081190".into(),
        attr(
            "UR",
            vec![json!(format!(
                "{base}/studies/{}/series/{}/instances/{}",
                r.study_uid, r.series_uid, r.sop_instance_uid
            ))],
        ),
    );
    m.insert("00083002".into(), attr("UI", vec![json!(r.transfer_syntax)]));
    m.insert("0020000D".into(), attr("UI", vec![json!(r.study_uid)]));
    m.insert("0020000E".into(), attr("UI", vec![json!(r.series_uid)]));
    m.insert("00200013".into(), int("IS", r.instance_number));
    m.insert("00280008".into(), int("IS", r.frames));
    m.insert("00280010".into(), int("US", r.rows));
    m.insert("00280011".into(), int("US", r.columns));
    m.insert("00280100".into(), int("US", r.bits_allocated));
    Value::Object(m)
}

/// One item of ReferencedSOPSequence or FailedSOPSequence.
pub struct StowItem {
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub retrieve_url: Option<String>,
    pub failure: Option<u16>,
    pub warning: Option<u16>,
}

/// The Store Instances Response Module.
pub fn stow_response(study_url: Option<String>, stored: &[StowItem], failed: &[StowItem]) -> Value {
    let item = |i: &StowItem| {
        let mut m = Map::new();
        if let Some(c) = &i.sop_class_uid {
            m.insert("00081150".into(), attr("UI", vec![json!(c)]));
        }
        if let Some(u) = &i.sop_instance_uid {
            m.insert("00081155".into(), attr("UI", vec![json!(u)]));
        }
        if let Some(url) = &i.retrieve_url {
            m.insert("00081190".into(), attr("UR", vec![json!(url)]));
        }
        if let Some(w) = i.warning {
            m.insert("00081196".into(), attr("US", vec![json!(w)]));
        }
        if let Some(f) = i.failure {
            m.insert("00081197".into(), attr("US", vec![json!(f)]));
        }
        Value::Object(m)
    };
    let mut m = Map::new();
    if let Some(url) = study_url {
        m.insert("00081190".into(), attr("UR", vec![json!(url)]));
    }
    if !failed.is_empty() {
        m.insert("00081198".into(), attr("SQ", failed.iter().map(item).collect()));
    }
    m.insert("00081199".into(), attr("SQ", stored.iter().map(item).collect()));
    Value::Object(m)
}
