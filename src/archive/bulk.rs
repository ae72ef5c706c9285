//! Where each large value lies inside a stored Part 10 file, at any depth (Waveform Data inside
//! the Waveform Sequence, an icon inside a sequence item, an overlay), found once at ingest so
//! that `/bulkdata/…` is one range read: memory follows the value, not the file. Pure: bytes
//! in, byte ranges out.
//!
//! A value is addressed by its path: its tag at the top level (`54001010`), or the sequence's
//! tag, the item's number (from 0) and the tag inside, repeated for each level
//! (`54000100/0/54001010`). The DICOM JSON built at ingest names the same paths in its
//! `BulkDataURI`s.

use dicom_core::Tag;

use super::lengths::Walk;

/// Values at least this long are indexed (the metadata refers to values over ~1 KiB by URI).
pub const MIN_INDEXED: u32 = 1024;

/// Most values indexed per instance.
const MAX_ENTRIES: usize = 4096;

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATE: &[&str] = &["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"];
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// (path, value offset in the file, value length), in file order.
pub type BulkIndex = Vec<(String, u64, u64)>;

/// The path of a tag under `prefix` (`""` at the top level).
pub fn path(prefix: &str, tag: Tag) -> String {
    format!("{prefix}{:04X}{:04X}", tag.0, tag.1)
}

/// Builds the index, or None when the structure cannot be walked here (big endian, deflated,
/// malformed): readers then fall back to reading the file, within the server's budget.
pub fn index(b: &[u8], ts: &str) -> Option<BulkIndex> {
    if ts == EXPLICIT_BE || DEFLATE.contains(&ts) {
        return None;
    }
    let start = Walk::after_meta(b)?;
    let w = Walk::little_endian(b, ts == IMPLICIT_LE);
    let mut out = vec![];
    elements(&w, b.len(), start, b.len(), "", 0, &mut out)?;
    Some(out)
}

/// Elements from `p` to `end` (or an item delimiter); returns where they stop.
fn elements(
    w: &Walk,
    len: usize,
    mut p: usize,
    end: usize,
    prefix: &str,
    depth: u8,
    out: &mut BulkIndex,
) -> Option<usize> {
    if depth > 16 {
        return None;
    }
    while p < end {
        let (h, v) = w.head(p).ok()?;
        if h.tag == Tag(0xFFFE, 0xE00D) {
            return Some(v);
        }
        let here = path(prefix, h.tag);
        if h.tag == PIXEL_DATA && depth == 0 {
            // Served as frames; and the last element that matters.
            return Some(end);
        }
        if h.len == u32::MAX {
            if !w.is_sequence(&h) {
                return None; // an encapsulated value other than pixel data: not indexed
            }
            p = items(w, len, v, end, &here, depth + 1, out)?;
            continue;
        }
        let e = v.checked_add(h.len as usize).filter(|e| *e <= end)?;
        if w.is_sequence(&h) {
            items(w, len, v, e, &here, depth + 1, out)?;
        } else if h.len >= MIN_INDEXED && out.len() < MAX_ENTRIES {
            out.push((here, v as u64, h.len as u64));
        }
        p = e;
    }
    Some(p.min(end))
}

/// The items of the sequence at `prefix`, from `p` to `end` (or a sequence delimiter).
fn items(
    w: &Walk,
    len: usize,
    mut p: usize,
    end: usize,
    prefix: &str,
    depth: u8,
    out: &mut BulkIndex,
) -> Option<usize> {
    let mut n = 0usize;
    while p < end {
        let (h, v) = w.head(p).ok()?;
        match (h.tag.0, h.tag.1) {
            (0xFFFE, 0xE0DD) => return Some(v),
            (0xFFFE, 0xE000) => {
                let item = format!("{prefix}/{n}/");
                p = if h.len == u32::MAX {
                    elements(w, len, v, end, &item, depth, out)?
                } else {
                    let e = v.checked_add(h.len as usize).filter(|e| *e <= end)?;
                    elements(w, len, v, e, &item, depth, out)?;
                    e
                };
                n += 1;
            }
            _ => return None,
        }
    }
    Some(p)
}

/// Parses a bulk-data path (`54000100/0/54001010`) into tags and item numbers; None when it is
/// not one.
pub fn parse_path(path: &str) -> Option<Vec<(Tag, Option<usize>)>> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() % 2 == 0 || parts.len() > 33 {
        return None;
    }
    let tag = |s: &str| {
        (s.len() == 8)
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
            .map(|t| Tag((t >> 16) as u16, t as u16))
    };
    let mut out = vec![];
    let mut i = 0;
    while i < parts.len() {
        let t = tag(parts[i])?;
        let item = match parts.get(i + 1) {
            Some(n) => Some(n.parse::<usize>().ok()?),
            None => None,
        };
        out.push((t, item));
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit VR little endian Part 10 file: the given data set after a minimal meta.
    fn part10(data_set: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        let ts = b"1.2.840.10008.1.2.1\0";
        let mut meta = vec![];
        meta.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        meta.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        meta.extend_from_slice(ts);
        b.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        b.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        b.extend_from_slice(&meta);
        b.extend_from_slice(data_set);
        b
    }

    fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8], undefined: bool) -> Vec<u8> {
        let mut e = vec![];
        e.extend_from_slice(&group.to_le_bytes());
        e.extend_from_slice(&elem.to_le_bytes());
        e.extend_from_slice(vr);
        e.extend_from_slice(&[0, 0]);
        let len = if undefined { u32::MAX } else { value.len() as u32 };
        e.extend_from_slice(&len.to_le_bytes());
        e.extend_from_slice(value);
        e
    }

    fn item(content: &[u8]) -> Vec<u8> {
        let mut e = vec![0xFE, 0xFF, 0x00, 0xE0];
        e.extend_from_slice(&(content.len() as u32).to_le_bytes());
        e.extend_from_slice(content);
        e
    }

    #[test]
    fn values_are_indexed_at_any_depth_and_small_ones_are_not() {
        let wave = vec![7u8; 2000];
        let small = vec![1u8; 10];
        // Waveform Sequence (undefined length) with two items; the second holds Waveform Data.
        let mut seq_items = item(&element(0x5400, 0x1010, b"OW", &small, false));
        seq_items.extend(item(&element(0x5400, 0x1010, b"OW", &wave, false)));
        seq_items.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let mut ds = element(0x0009, 0x1001, b"OB", &vec![3u8; 1500], false);
        ds.extend(element(0x5400, 0x0100, b"SQ", &seq_items, true));
        let file = part10(&ds);
        let idx = index(&file, "1.2.840.10008.1.2.1").unwrap();
        assert_eq!(
            idx.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
            ["00091001", "54000100/1/54001010"]
        );
        let (_, off, len) = &idx[1];
        assert_eq!(&file[*off as usize..(*off + *len) as usize], &wave[..]);
        // Truncated files are not indexed.
        assert!(index(&file[..file.len() - 600], "1.2.840.10008.1.2.1").is_none());
        assert!(index(&file, "1.2.840.10008.1.2.2").is_none(), "big endian");
    }

    #[test]
    fn paths_parse_into_tags_and_items() {
        let p = parse_path("54000100/0/54001010").unwrap();
        assert_eq!(p, vec![(Tag(0x5400, 0x0100), Some(0)), (Tag(0x5400, 0x1010), None)]);
        assert_eq!(parse_path("7FE00010").unwrap(), vec![(Tag(0x7FE0, 0x0010), None)]);
        for bad in ["", "5400", "54000100/0", "54000100/x/54001010", "zzzzzzzz"] {
            assert!(parse_path(bad).is_none(), "{bad}");
        }
    }
}
