//! ECG leads and their codes. The same leads are named differently by each format and scheme:
//! DICOM's CID 3001 in the MDC scheme (`2:1`, or the numeric 131329) and in the older `SCPECG`
//! scheme (`5.6.3-9-1`), SCP-ECG's section 3 lead ids, HL7 aECG's `MDC_ECG_LEAD_*` and MUSE's
//! `LeadID`. All are read by code, never by the meaning text (which varies: "Lead I
//! (Einthoven)", "I").

use serde::Serialize;

/// A lead. The twelve standard leads by name; any other by its number in the shared numbering
/// of SCP-ECG and MDC (partition 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lead {
    I,
    II,
    III,
    AVR,
    AVL,
    AVF,
    V1,
    V2,
    V3,
    V4,
    V5,
    V6,
    /// Another lead, by its SCP/MDC number.
    Other(u16),
}

impl Lead {
    /// The standard order of a 12-lead display.
    pub const TWELVE: [Lead; 12] = [
        Lead::I,
        Lead::II,
        Lead::III,
        Lead::AVR,
        Lead::AVL,
        Lead::AVF,
        Lead::V1,
        Lead::V2,
        Lead::V3,
        Lead::V4,
        Lead::V5,
        Lead::V6,
    ];

    pub fn name(self) -> String {
        match self {
            Lead::I => "I".into(),
            Lead::II => "II".into(),
            Lead::III => "III".into(),
            Lead::AVR => "aVR".into(),
            Lead::AVL => "aVL".into(),
            Lead::AVF => "aVF".into(),
            Lead::V1 => "V1".into(),
            Lead::V2 => "V2".into(),
            Lead::V3 => "V3".into(),
            Lead::V4 => "V4".into(),
            Lead::V5 => "V5".into(),
            Lead::V6 => "V6".into(),
            Lead::Other(n) => format!("lead {n}"),
        }
    }

    /// By the number SCP-ECG (section 3) and MDC partition 2 share: 1 I, 2 II, 3–8 V1–V6,
    /// 61 III, 62 aVR, 63 aVL, 64 aVF.
    pub fn from_number(n: u32) -> Lead {
        match n {
            1 => Lead::I,
            2 => Lead::II,
            3 => Lead::V1,
            4 => Lead::V2,
            5 => Lead::V3,
            6 => Lead::V4,
            7 => Lead::V5,
            8 => Lead::V6,
            61 => Lead::III,
            62 => Lead::AVR,
            63 => Lead::AVL,
            64 => Lead::AVF,
            n => Lead::Other(n.min(u16::MAX as u32) as u16),
        }
    }

    /// By a DICOM Channel Source code: MDC (`2:1`, `MDC 2:1`, or the numeric 131329) or SCPECG
    /// (`5.6.3-9-1`). None for codes of no known lead scheme.
    pub fn from_dicom_code(scheme: &str, value: &str) -> Option<Lead> {
        let value = value.trim();
        match scheme.trim() {
            "MDC" => {
                if let Some(n) = value.strip_prefix("2:") {
                    return n.parse().ok().map(Lead::from_number);
                }
                // The numeric form: partition 2 (<< 16) plus 256 plus the lead's number, so
                // MDC_ECG_LEAD_I is 131329.
                let code: u32 = value.parse().ok()?;
                let term = code & 0xFFFF;
                (code >> 16 == 2 && term > 256).then(|| Lead::from_number(term - 256))
            }
            "SCPECG" => value.strip_prefix("5.6.3-9-")?.parse().ok().map(Lead::from_number),
            _ => None,
        }
    }

    /// By an HL7 aECG code (`MDC_ECG_LEAD_I`, `MDC_ECG_LEAD_aVR` or `…_AVR`, `MDC_ECG_LEAD_V1`).
    pub fn from_mdc_name(code: &str) -> Option<Lead> {
        Lead::from_label(code.strip_prefix("MDC_ECG_LEAD_")?)
    }

    /// By a label as carts write it (`I`, `aVR`, `AVR`, `V1`).
    pub fn from_label(label: &str) -> Option<Lead> {
        Some(match label.trim().to_ascii_uppercase().as_str() {
            "I" => Lead::I,
            "II" => Lead::II,
            "III" => Lead::III,
            "AVR" => Lead::AVR,
            "AVL" => Lead::AVL,
            "AVF" => Lead::AVF,
            "V1" => Lead::V1,
            "V2" => Lead::V2,
            "V3" => Lead::V3,
            "V4" => Lead::V4,
            "V5" => Lead::V5,
            "V6" => Lead::V6,
            _ => return None,
        })
    }
}

impl Serialize for Lead {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Adds the limb leads a cart left out because they follow from I and II (Einthoven,
/// Goldberger): III = II − I, aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2.
pub fn derive_limb_leads(leads: &mut Vec<(Lead, Vec<i32>)>) {
    let get = |l: Lead, leads: &Vec<(Lead, Vec<i32>)>| {
        leads.iter().find(|(x, _)| *x == l).map(|(_, s)| s.clone())
    };
    let (Some(i), Some(ii)) = (get(Lead::I, leads), get(Lead::II, leads)) else { return };
    if i.len() != ii.len() {
        return;
    }
    type FromIandII = fn(f64, f64) -> f64;
    let derived: [(Lead, FromIandII); 4] = [
        (Lead::III, |a, b| b - a),
        (Lead::AVR, |a, b| -(a + b) / 2.0),
        (Lead::AVL, |a, b| a - b / 2.0),
        (Lead::AVF, |a, b| b - a / 2.0),
    ];
    for (lead, f) in derived {
        if get(lead, leads).is_none() {
            let values = i.iter().zip(&ii).map(|(a, b)| f(*a as f64, *b as f64).round() as i32);
            leads.push((lead, values.collect()));
        }
    }
    leads.sort_by_key(|(l, _)| Lead::TWELVE.iter().position(|x| x == l).unwrap_or(99));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_names_the_same_leads() {
        assert_eq!(Lead::from_dicom_code("SCPECG", "5.6.3-9-1"), Some(Lead::I));
        assert_eq!(Lead::from_dicom_code("SCPECG", "5.6.3-9-61"), Some(Lead::III));
        assert_eq!(Lead::from_dicom_code("MDC", "2:1"), Some(Lead::I));
        assert_eq!(Lead::from_dicom_code("MDC", "2:64"), Some(Lead::AVF));
        assert_eq!(Lead::from_dicom_code("MDC", "131329"), Some(Lead::I));
        assert_eq!(Lead::from_dicom_code("MDC", "131336"), Some(Lead::V6));
        assert_eq!(Lead::from_dicom_code("SRT", "R-00001"), None);
        assert_eq!(Lead::from_mdc_name("MDC_ECG_LEAD_aVR"), Some(Lead::AVR));
        assert_eq!(Lead::from_mdc_name("MDC_ECG_LEAD_AVL"), Some(Lead::AVL));
        assert_eq!(Lead::from_number(5), Lead::V3);
    }

    #[test]
    fn limb_leads_follow_from_i_and_ii() {
        let mut leads =
            vec![(Lead::I, vec![100, 0]), (Lead::II, vec![300, 40]), (Lead::V1, vec![1, 1])];
        derive_limb_leads(&mut leads);
        let names: Vec<String> = leads.iter().map(|(l, _)| l.name()).collect();
        assert_eq!(names, ["I", "II", "III", "aVR", "aVL", "aVF", "V1"]);
        assert_eq!(leads[2].1, vec![200, 40]);
        assert_eq!(leads[3].1, vec![-200, -20]);
        assert_eq!(leads[4].1, vec![-50, -20]);
        assert_eq!(leads[5].1, vec![250, 40]);
        // Halves round away from zero, as the reference decoders do.
        let mut odd = vec![(Lead::I, vec![1]), (Lead::II, vec![2])];
        derive_limb_leads(&mut odd);
        assert_eq!(odd.iter().find(|(l, _)| *l == Lead::AVR).unwrap().1, vec![-2]);
    }
}
