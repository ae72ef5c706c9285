//! Where each frame's bytes lie inside a stored Part 10 file, found once at ingest so that a
//! frame is served with range reads and no parsing. Pure: bytes in, byte ranges out.
//!
//! Handles little-endian data sets (implicit or explicit VR), which covers the uncompressed
//! syntaxes and every encapsulated one. Big-endian and deflated files get no index (their
//! frames need decoding, which comes with rendering).

use dicom_core::Tag;

use super::lengths::Walk;

/// Byte ranges (offset, length) in the file, per frame; a frame of several fragments has
/// several ranges.
pub type FrameIndex = Vec<Vec<(u64, u64)>>;

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATE: &[&str] = &["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"];

/// Is pixel data in this transfer syntax stored native (uncompressed, not encapsulated)?
pub fn is_native(ts: &str) -> bool {
    ts == IMPLICIT_LE || ts == EXPLICIT_LE || ts == EXPLICIT_BE
}

/// Where the top-level Pixel Data element is: `Some(Some((value offset, length)))` (length
/// `u32::MAX` = encapsulated), `Some(None)` when the data set has none, `None` when the
/// structure cannot be walked here (big endian, deflated, or malformed).
pub fn pixel_data_location(b: &[u8], ts: &str) -> Option<Option<(usize, u32)>> {
    if ts == EXPLICIT_BE || DEFLATE.contains(&ts) {
        return None;
    }
    let mut p = Walk::after_meta(b)?;
    let w = Walk::little_endian(b, ts == IMPLICIT_LE);
    while p < b.len() {
        let (h, v) = w.head(p).ok()?;
        if h.tag == Tag(0x7FE0, 0x0010) {
            return Some(Some((v, h.len)));
        }
        if h.tag.0 > 0x7FE0 {
            return Some(None);
        }
        p = if h.len == u32::MAX {
            w.items(v, b.len(), 0, !w.is_sequence(&h)).ok()?
        } else {
            v.checked_add(h.len as usize)?
        };
    }
    Some(None)
}

fn pixel_data(b: &[u8], ts: &str) -> Option<(usize, u32)> {
    pixel_data_location(b, ts).flatten()
}

/// Builds the frame index, or None when it cannot be built safely (the frame endpoint then
/// says so instead of guessing).
pub fn index(
    b: &[u8],
    ts: &str,
    rows: Option<i64>,
    columns: Option<i64>,
    samples: Option<i64>,
    bits_allocated: Option<i64>,
    frames: Option<i64>,
) -> Option<FrameIndex> {
    if ts == EXPLICIT_BE || DEFLATE.contains(&ts) {
        return None;
    }
    let n = frames.unwrap_or(1).max(1) as usize;
    let (start, len) = pixel_data(b, ts)?;
    if len != u32::MAX {
        let bits = bits_allocated?;
        if bits % 8 != 0 {
            return None;
        }
        let size = rows? as u64 * columns? as u64 * samples.unwrap_or(1) as u64 * (bits as u64 / 8);
        if size == 0 || size * n as u64 > len as u64 || start as u64 + len as u64 > b.len() as u64 {
            return None;
        }
        return Some((0..n as u64).map(|i| vec![(start as u64 + i * size, size)]).collect());
    }
    // Encapsulated: the Basic Offset Table item, then one item per fragment.
    let w = Walk::little_endian(b, false);
    let (bot, mut p) = w.head(start).ok()?;
    if bot.tag != Tag(0xFFFE, 0xE000) || bot.len == u32::MAX {
        return None;
    }
    let offsets: Vec<u64> =
        (0..bot.len as usize / 4).filter_map(|i| w.u32_at(p + i * 4).map(u64::from)).collect();
    p += bot.len as usize;
    let first_fragment = p;
    let mut fragments = vec![];
    loop {
        let (h, v) = w.head(p).ok()?;
        match (h.tag.0, h.tag.1) {
            (0xFFFE, 0xE0DD) => break,
            (0xFFFE, 0xE000) if h.len != u32::MAX && v + h.len as usize <= b.len() => {
                // (item start relative to the first fragment, value offset, length)
                fragments.push(((p - first_fragment) as u64, v as u64, h.len as u64));
                p = v + h.len as usize;
            }
            _ => return None,
        }
    }
    if fragments.is_empty() {
        return None;
    }
    if n == 1 {
        return Some(vec![fragments.iter().map(|f| (f.1, f.2)).collect()]);
    }
    if offsets.len() == n {
        let mut out = vec![];
        for (i, start) in offsets.iter().enumerate() {
            let end = offsets.get(i + 1).copied().unwrap_or(u64::MAX);
            let frame: Vec<_> = fragments
                .iter()
                .filter(|f| f.0 >= *start && f.0 < end)
                .map(|f| (f.1, f.2))
                .collect();
            if frame.is_empty() {
                return None;
            }
            out.push(frame);
        }
        return Some(out);
    }
    if fragments.len() == n {
        return Some(fragments.iter().map(|f| vec![(f.1, f.2)]).collect());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny explicit-LE file: meta group, a sequence of undefined length with an item, then
    /// encapsulated pixel data of two frames, one fragment each, with an offset table.
    fn encapsulated() -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        // (0002,0010) UI "1.2.840.10008.1.2.4.50"
        let ts = b"1.2.840.10008.1.2.4.50";
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        b.extend_from_slice(ts);
        // (0008,1140) SQ undefined length, one undefined item holding (0008,1150) UI "1.2"
        b.extend_from_slice(&[0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        b.extend_from_slice(&[0x08, 0x00, 0x50, 0x11, b'U', b'I', 4, 0, b'1', b'.', b'2', 0]);
        b.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        // (7FE0,0010) OB undefined: BOT [0, 12], fragments of 4 and 6 bytes
        b.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&12u32.to_le_bytes());
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]);
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 6, 0, 0, 0, 5, 6, 7, 8, 9, 10]);
        b.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn encapsulated_frames_via_offset_table() {
        let b = encapsulated();
        let idx = index(&b, "1.2.840.10008.1.2.4.50", Some(2), Some(2), Some(1), Some(8), Some(2))
            .unwrap();
        let frame = |i: usize| -> Vec<u8> {
            idx[i].iter().flat_map(|(o, l)| b[*o as usize..(*o + *l) as usize].to_vec()).collect()
        };
        assert_eq!(frame(0), [1, 2, 3, 4]);
        assert_eq!(frame(1), [5, 6, 7, 8, 9, 10]);
        // One frame: both fragments.
        let one =
            index(&b, "1.2.840.10008.1.2.4.50", Some(2), Some(2), Some(1), Some(8), None).unwrap();
        assert_eq!(one[0].len(), 2);
    }

    #[test]
    fn refuses_what_it_cannot_index() {
        let b = encapsulated();
        assert!(index(&b, EXPLICIT_BE, Some(2), Some(2), Some(1), Some(8), Some(2)).is_none());
        assert!(
            index(
                &b[..b.len() - 9],
                "1.2.840.10008.1.2.4.50",
                Some(2),
                Some(2),
                Some(1),
                Some(8),
                Some(2)
            )
            .is_none()
        );
        assert!(index(b"garbage", EXPLICIT_LE, None, None, None, None, None).is_none());
        // Three frames claimed, two fragments and a two-entry table: no guess.
        assert!(
            index(&b, "1.2.840.10008.1.2.4.50", Some(2), Some(2), Some(1), Some(8), Some(3))
                .is_none()
        );
    }
}
