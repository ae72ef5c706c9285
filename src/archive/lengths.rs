//! Before a data set is handed to the DICOM parser: does every declared value length fit in the
//! bytes actually received? The parser allocates a value's declared length up front, so a
//! 40 KB file that claims a 2.5 GB element would otherwise exhaust memory (found by
//! `fuzz/fuzz_targets/ingest_parse.rs`). Pure: bytes in, verdict out.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATE: &[&str] = &["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"];
const MAX_DEPTH: u8 = 32;

/// Why the structure was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad;

/// A refused file, with the SOP Class and Instance UIDs when they were read before the fault.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refused {
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

/// A reader of element headers in one encoding (shared with `frames`).
pub(crate) struct Walk<'a> {
    b: &'a [u8],
    explicit: bool,
    big_endian: bool,
    /// Top-level SOP Class and Instance UIDs seen so far.
    ids: std::cell::RefCell<Refused>,
}

pub(crate) struct Head {
    pub tag: Tag,
    vr: Option<[u8; 2]>,
    pub len: u32,
}

impl<'a> Walk<'a> {
    /// A little-endian walker: explicit VR unless `implicit`.
    pub(crate) fn little_endian(b: &'a [u8], implicit: bool) -> Self {
        Walk { b, explicit: !implicit, big_endian: false, ids: Default::default() }
    }

    /// Where the data set starts: after the file meta group (explicit VR little endian).
    pub(crate) fn after_meta(b: &[u8]) -> Option<usize> {
        file_meta(b).map(|(p, _)| p)
    }

    pub(crate) fn u32_at(&self, p: usize) -> Option<u32> {
        self.u32(p).ok()
    }

    fn u16(&self, p: usize) -> Result<u16, Bad> {
        let s: [u8; 2] = self.b.get(p..p + 2).ok_or(Bad)?.try_into().map_err(|_| Bad)?;
        Ok(if self.big_endian { u16::from_be_bytes(s) } else { u16::from_le_bytes(s) })
    }

    fn u32(&self, p: usize) -> Result<u32, Bad> {
        let s: [u8; 4] = self.b.get(p..p + 4).ok_or(Bad)?.try_into().map_err(|_| Bad)?;
        Ok(if self.big_endian { u32::from_be_bytes(s) } else { u32::from_le_bytes(s) })
    }

    pub(crate) fn head(&self, p: usize) -> Result<(Head, usize), Bad> {
        let tag = Tag(self.u16(p)?, self.u16(p + 2)?);
        if tag.0 == 0xFFFE || !self.explicit {
            return Ok((Head { tag, vr: None, len: self.u32(p + 4)? }, p + 8));
        }
        let vr: [u8; 2] = self.b.get(p + 4..p + 6).ok_or(Bad)?.try_into().map_err(|_| Bad)?;
        let long = !matches!(
            &vr,
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FL"
                | b"FD"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SS"
                | b"ST"
                | b"TM"
                | b"UI"
                | b"UL"
                | b"US"
        );
        // Unknown VRs are read as UN, which has the long form.
        if long {
            Ok((Head { tag, vr: Some(vr), len: self.u32(p + 8)? }, p + 12))
        } else {
            Ok((Head { tag, vr: Some(vr), len: self.u16(p + 6)? as u32 }, p + 8))
        }
    }

    pub(crate) fn is_sequence(&self, h: &Head) -> bool {
        match h.vr {
            Some(vr) => &vr == b"SQ",
            None => StandardDataDictionary
                .by_tag(h.tag)
                .is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(VR::SQ))),
        }
    }

    /// Elements from `p` up to `end` or an item delimiter; returns where they stop.
    fn elements(&self, mut p: usize, end: usize, depth: u8) -> Result<usize, Bad> {
        if depth > MAX_DEPTH {
            return Err(Bad);
        }
        while p < end {
            let (h, v) = self.head(p)?;
            if h.tag == Tag(0xFFFE, 0xE00D) {
                if depth > 0 {
                    return Ok(v);
                }
                // A stray delimiter in the top-level data set ends nothing: DICOM readers step
                // over it and read on, so the check reads on too (the fuzzer found a file
                // whose checked part stopped there while the parser went on to a 1 GB item).
                p = v;
                continue;
            }
            if depth == 0 && h.tag == Tag(0xFFFE, 0xE0DD) {
                p = v;
                continue;
            }
            if h.len == u32::MAX {
                // Undefined length: a sequence, or encapsulated pixel data (opaque fragments).
                let opaque = h.tag == Tag(0x7FE0, 0x0010) || !self.is_sequence(&h);
                p = self.items(v, end, depth + 1, opaque)?;
            } else {
                let e = v.checked_add(h.len as usize).filter(|e| *e <= end).ok_or(Bad)?;
                if depth == 0 && (h.tag == Tag(0x0008, 0x0016) || h.tag == Tag(0x0008, 0x0018)) {
                    let text = String::from_utf8_lossy(&self.b[v..e])
                        .trim_end_matches(['\0', ' '])
                        .to_string();
                    let mut ids = self.ids.borrow_mut();
                    if h.tag.1 == 0x0016 {
                        ids.sop_class_uid = Some(text);
                    } else {
                        ids.sop_instance_uid = Some(text);
                    }
                }
                if self.is_sequence(&h) {
                    self.items(v, e, depth + 1, false)?;
                }
                p = e;
            }
        }
        if p > end { Err(Bad) } else { Ok(p) }
    }

    /// Items from `p` up to `end` or a sequence delimiter. Opaque items (pixel fragments)
    /// are only checked to fit; others hold elements.
    pub(crate) fn items(
        &self,
        mut p: usize,
        end: usize,
        depth: u8,
        opaque: bool,
    ) -> Result<usize, Bad> {
        if depth > MAX_DEPTH {
            return Err(Bad);
        }
        loop {
            if p >= end {
                return if p == end { Ok(p) } else { Err(Bad) };
            }
            let (h, v) = self.head(p)?;
            match (h.tag.0, h.tag.1) {
                (0xFFFE, 0xE0DD) => return Ok(v),
                (0xFFFE, 0xE000) if h.len == u32::MAX && !opaque => {
                    p = self.elements(v, end, depth + 1)?
                }
                (0xFFFE, 0xE000) if h.len != u32::MAX => {
                    let e = v.checked_add(h.len as usize).filter(|e| *e <= end).ok_or(Bad)?;
                    if !opaque {
                        self.elements(v, e, depth + 1)?;
                    }
                    p = e;
                }
                _ => return Err(Bad),
            }
        }
    }
}

/// The file meta group of a Part 10 file: where the data set starts and the transfer syntax
/// it names; None when there is no `DICM` marker or a meta element overruns the bytes.
///
/// Read as the parser reads it: when the group opens with its length (0002,0000), elements
/// are read, whatever their group, until that many bytes are consumed, and the data set
/// starts after the last one (the fuzzer found a deflated file with an off-group element in
/// its meta: checked from where group 0002 stopped, its data set was an empty stream, while
/// the parser inflated from the group's end and met a 2.3 GB element). Without the length,
/// the elements of group 0002 (the parser refuses such a file anyway).
pub(crate) fn file_meta(b: &[u8]) -> Option<(usize, String)> {
    if b.get(128..132)? != b"DICM" {
        return None;
    }
    let meta = Walk::little_endian(b, false);
    let mut p = 132;
    let mut ts = String::new();
    let group_length = match meta.head(p) {
        Ok((h, v)) if h.tag == Tag(0x0002, 0x0000) && h.len == 4 => {
            p = v + 4;
            Some(meta.u32(v).ok()? as usize)
        }
        _ => None,
    };
    let start = p;
    loop {
        let (h, v) = match (meta.head(p), group_length) {
            (Ok(x), _) => x,
            // The group's length promised more than there is.
            (Err(_), Some(n)) if p - start < n => return None,
            (Err(_), _) => break,
        };
        match group_length {
            Some(n) if p - start >= n => break,
            None if h.tag.0 != 0x0002 => break,
            _ => {}
        }
        let e = v.checked_add(h.len as usize).filter(|e| *e <= b.len())?;
        if h.tag == Tag(0x0002, 0x0010) {
            ts = String::from_utf8_lossy(&b[v..e]).trim_end_matches(['\0', ' ']).to_string();
        }
        p = e;
    }
    Some((p, ts))
}

/// Checks a Part 10 file (`DICM` at 128), its data set read in the transfer syntax its file
/// meta names. Deflated data sets are inflated first, up to `max_inflated` bytes.
pub fn check(b: &[u8], max_inflated: u64) -> Result<(), Refused> {
    let ids = Default::default();
    check_inner(b, max_inflated, &ids).map_err(|Bad| ids.into_inner())
}

fn check_inner(b: &[u8], max_inflated: u64, ids: &std::cell::RefCell<Refused>) -> Result<(), Bad> {
    // The file meta group: explicit VR little endian, group 0002 only.
    let (p, ts) = file_meta(b).ok_or(Bad)?;
    let ts = ts.as_str();
    if DEFLATE.contains(&ts) {
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&b[p..])
            .take(max_inflated + 1)
            .read_to_end(&mut inflated)
            .map_err(|_| Bad)?;
        if inflated.len() as u64 > max_inflated {
            return Err(Bad);
        }
        let w = Walk { b: &inflated, explicit: true, big_endian: false, ids: Default::default() };
        let r = w.elements(0, inflated.len(), 0).map(|_| ());
        *ids.borrow_mut() = w.ids.into_inner();
        return r;
    }
    let w = Walk {
        b,
        explicit: ts != IMPLICIT_LE,
        big_endian: ts == EXPLICIT_BE,
        ids: Default::default(),
    };
    let r = w.elements(p, b.len(), 0).map(|_| ());
    *ids.borrow_mut() = w.ids.into_inner();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ts: &str, body: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        b.extend_from_slice(ts.as_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn stray_top_level_delimiters_do_not_end_the_check() {
        // An ECG whose data set has stray delimiters after a sequence, then an item declaring
        // about 1.2 GB: refused before the parser allocates.
        let bytes = include_bytes!("../../tests/data/fuzz/oom-ecg-stray-delimiter.dcm");
        assert!(check(bytes, 1 << 30).is_err());
        assert!(crate::ecg::dicom::parse(bytes).is_err());
    }

    #[test]
    fn the_data_set_starts_where_the_meta_groups_length_says() {
        // A deflated file (from the pydicom wheel's image_dfl.dcm, mutated by the fuzzer)
        // whose meta group ends in an off-group (0003,0016) element: the group's length
        // counts it, so the data set (the deflate stream) starts after it, and what it
        // inflates to declares a 2.3 GB element.
        let bytes = include_bytes!("../../tests/data/fuzz/oom-deflate-off-group-meta.dcm");
        assert_eq!(file_meta(bytes).map(|(p, _)| p), Some(334));
        assert!(check(bytes, 1 << 30).is_err());
        assert!(crate::archive::parse::parse(bytes).is_err());
        // Without the group's length, group 0002 alone is the meta.
        let b = file("1", &[0x08, 0x00, 0x16, 0x00, b'U', b'I', 0, 0]);
        assert_eq!(file_meta(&b), Some((141, "1".to_string())));
        // A group's length beyond the bytes there are is refused.
        let mut short = vec![0u8; 128];
        short.extend_from_slice(b"DICM");
        short.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0, 200, 0, 0, 0]);
        short.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I', 2, 0, b'1', 0]);
        assert_eq!(file_meta(&short), None);
    }

    #[test]
    fn declared_lengths_must_fit() {
        let ts = "1.2.840.10008.1.2.1";
        // (0010,0010) PN "AB": fits.
        let ok = file(ts, &[0x10, 0x00, 0x10, 0x00, b'P', b'N', 2, 0, b'A', b'B']);
        assert_eq!(check(&ok, 1 << 20), Ok(()));
        let refused = |b: &[u8]| check(b, 1 << 20).is_err();
        // (0009,0010) OB claiming 2.5 GB in a few bytes.
        let huge =
            file(ts, &[0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0x00, 0x00, 0x00, 0x99, 1, 2]);
        assert!(refused(&huge));
        // The same, nested in a defined-length sequence item.
        let mut nested = vec![0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 22, 0, 0, 0];
        nested.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 14, 0, 0, 0]);
        nested.extend_from_slice(&[
            0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0x00, 0x00, 0x00, 0x99, 1, 2,
        ]);
        assert!(refused(&file(ts, &nested)));
        // Implicit VR: the dictionary says (0008,1140) is a sequence, so its items are checked.
        let its = "1.2.840.10008.1.2";
        let mut implicit = vec![0x08, 0x00, 0x40, 0x11, 18, 0, 0, 0];
        implicit.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 10, 0, 0, 0]);
        implicit.extend_from_slice(&[0x09, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x99, 1, 2]);
        assert!(refused(&file(its, &implicit)));
        assert!(refused(b"short"));
    }
}
