//! SCP-ECG (EN 1064 / ISO 11073-91064): a record of sections, each with its own header and
//! checked against the record's length before it is read. Section 3 names the leads, section 2
//! the Huffman tables (19999: the standard's default table), section 6 the rhythm data
//! (amplitude multiplier in nV, sample interval in µs, real / first / second differences),
//! section 5 the reference (median) beats, section 7 the global measurements, section 8 the
//! statements, section 1 the patient. Bimodal compression and reference-beat subtraction are
//! refused with a clear error rather than decoded wrong.

use super::{
    Ecg, EcgError, Format, Group, Kind, Lead, MAX_CHANNELS, MAX_SAMPLES, Measurements, Patient,
};
use crate::phi::Phi;

fn bad(what: impl Into<String>) -> EcgError {
    EcgError::Malformed("SCP-ECG", what.into())
}

/// Whether `b` starts like an SCP-ECG record: section 0's header names itself `SCPECG`.
pub fn looks_like(b: &[u8]) -> bool {
    b.len() >= 22 && b[8..10] == [0, 0] && &b[16..22] == b"SCPECG"
}

fn u8_at(b: &[u8], p: usize) -> Result<u8, EcgError> {
    b.get(p).copied().ok_or(EcgError::Truncated("an SCP-ECG section"))
}

fn u16_at(b: &[u8], p: usize) -> Result<u16, EcgError> {
    Ok(u16::from_le_bytes([u8_at(b, p)?, u8_at(b, p + 1)?]))
}

fn i16_at(b: &[u8], p: usize) -> Result<i16, EcgError> {
    Ok(u16_at(b, p)? as i16)
}

fn u32_at(b: &[u8], p: usize) -> Result<u32, EcgError> {
    Ok(u32::from_le_bytes([u8_at(b, p)?, u8_at(b, p + 1)?, u8_at(b, p + 2)?, u8_at(b, p + 3)?]))
}

/// The sections present: id → its data (after the 16-byte section header).
fn sections(b: &[u8]) -> Result<Vec<(u16, &[u8])>, EcgError> {
    let size = u32_at(b, 2)? as usize;
    if size > b.len() || size < 22 {
        return Err(EcgError::Truncated("the SCP-ECG record"));
    }
    let b = &b[..size];
    let len0 = u32_at(b, 6 + 4)? as usize;
    if len0 < 16 || 6 + len0 > size {
        return Err(EcgError::Truncated("section 0"));
    }
    let mut out = vec![];
    let mut q = 6 + 16;
    while q + 10 <= 6 + len0 {
        let (id, len, index) =
            (u16_at(b, q)?, u32_at(b, q + 2)? as usize, u32_at(b, q + 6)? as usize);
        q += 10;
        if len == 0 || id == 0 {
            continue;
        }
        let start = index.checked_sub(1).ok_or_else(|| bad("a section at index 0"))?;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= size)
            .ok_or(EcgError::Truncated("a section"))?;
        if len < 16 {
            return Err(bad(format!("section {id} shorter than its header")));
        }
        out.push((id, &b[start + 16..end]));
    }
    Ok(out)
}

/// One Huffman code: its length in bits, its bits (MSB first), and what it means.
#[derive(Clone, Copy)]
struct Code {
    bits: u8,
    code: u32,
    /// Some(v): the value v; None: the value follows in `extra` bits.
    value: Option<i32>,
    extra: u8,
}

/// The standard's default table: 0 → 0; ±1 … ±8 in 3 to 10 bits; then an 8- or 16-bit value.
fn default_table() -> Vec<Code> {
    let mut t = vec![Code { bits: 1, code: 0, value: Some(0), extra: 0 }];
    for v in 1..=8i32 {
        let bits = (v + 2) as u8;
        // v ones, a zero, then the sign: 1..10 then 0 / 1.
        let ones = ((1u32 << v) - 1) << 2;
        t.push(Code { bits, code: ones, value: Some(v), extra: 0 });
        t.push(Code { bits, code: ones | 1, value: Some(-v), extra: 0 });
    }
    t.push(Code { bits: 10, code: 0b11_1111_1110, value: None, extra: 8 });
    t.push(Code { bits: 10, code: 0b11_1111_1111, value: None, extra: 16 });
    t
}

/// Tables given in section 2 (`None`: the default table).
fn tables(s2: Option<&[u8]>) -> Result<Vec<Vec<Code>>, EcgError> {
    let Some(s) = s2 else { return Ok(vec![default_table()]) };
    let n = u16_at(s, 0)?;
    if n == 19999 {
        return Ok(vec![default_table()]);
    }
    let mut p = 2;
    let mut out = vec![];
    for _ in 0..n.min(64) {
        let codes = u16_at(s, p)? as usize;
        p += 2;
        let mut t = vec![];
        for _ in 0..codes.min(512) {
            let (prefix, total, mode) = (u8_at(s, p)?, u8_at(s, p + 1)?, u8_at(s, p + 2)?);
            let base = i16_at(s, p + 3)? as i32;
            let reversed = u32_at(s, p + 5)?;
            p += 9;
            if prefix == 0 || prefix > 32 || total < prefix {
                return Err(bad("a Huffman code of impossible length"));
            }
            if mode == 0 {
                return Err(bad("Huffman table switching is not supported"));
            }
            // The standard stores each code with its bits in reverse order.
            let code = reversed.reverse_bits() >> (32 - prefix as u32);
            let extra = total - prefix;
            t.push(Code { bits: prefix, code, value: (extra == 0).then_some(base), extra });
        }
        out.push(t);
    }
    if out.is_empty() {
        return Err(bad("no Huffman table"));
    }
    Ok(out)
}

struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }

    fn take(&mut self, n: u8) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some(acc << 1 | self.bit()?))
    }
}

/// Decodes `count` values from `data` with `table`.
fn huffman(data: &[u8], table: &[Code], count: usize) -> Result<Vec<i32>, EcgError> {
    let mut r = Bits { b: data, pos: 0 };
    // Never more room than the bits could fill (one bit per value at best).
    let mut out = Vec::with_capacity(count.min(MAX_SAMPLES).min(data.len() * 8));
    'values: while out.len() < count {
        let mut code = 0u32;
        for len in 1..=32u8 {
            code = code << 1 | r.bit().ok_or(EcgError::Truncated("Huffman-coded data"))?;
            if let Some(c) = table.iter().find(|c| c.bits == len && c.code == code) {
                let v = match c.value {
                    Some(v) => v,
                    None => {
                        let raw =
                            r.take(c.extra).ok_or(EcgError::Truncated("Huffman-coded data"))?;
                        // Two's complement in `extra` bits.
                        let shift = 32 - c.extra as u32;
                        ((raw << shift) as i32) >> shift
                    }
                };
                out.push(v);
                continue 'values;
            }
        }
        return Err(bad("a bit pattern no Huffman code matches"));
    }
    Ok(out)
}

/// Undoes first or second differences.
fn undifference(d: Vec<i32>, encoding: u8) -> Result<Vec<i32>, EcgError> {
    let mut x = d;
    match encoding {
        0 => {}
        1 => {
            for n in 1..x.len() {
                x[n] = x[n].wrapping_add(x[n - 1]);
            }
        }
        2 => {
            for n in 2..x.len() {
                x[n] = x[n].wrapping_add(2i32.wrapping_mul(x[n - 1])).wrapping_sub(x[n - 2]);
            }
        }
        e => return Err(bad(format!("difference encoding {e}"))),
    }
    Ok(x)
}

/// Leads (section 3): (lead, number of samples).
fn leads(s3: &[u8]) -> Result<(Vec<(Lead, usize)>, u8), EcgError> {
    let n = u8_at(s3, 0)? as usize;
    let flags = u8_at(s3, 1)?;
    if n > MAX_CHANNELS {
        return Err(EcgError::TooManyChannels(n));
    }
    let mut out = vec![];
    for k in 0..n {
        let p = 2 + 9 * k;
        let (start, end, id) = (u32_at(s3, p)?, u32_at(s3, p + 4)?, u8_at(s3, p + 8)?);
        let samples =
            (end as usize + 1).checked_sub(start as usize).filter(|s| *s > 0 && *s <= MAX_SAMPLES);
        out.push((
            Lead::from_number(id as u32),
            samples.ok_or_else(|| bad("a lead of no samples"))?,
        ));
    }
    Ok((out, flags))
}

/// A data section (6: rhythm, 5: reference beats): header, per-lead byte counts, coded data.
fn data_group(
    s: &[u8],
    leads: &[(Lead, usize)],
    samples: impl Fn(usize) -> usize,
    table: &[Code],
    kind: Kind,
) -> Result<Group, EcgError> {
    let avm_nv = u16_at(s, 0)? as f64;
    let interval_us = u16_at(s, 2)? as f64;
    let encoding = u8_at(s, 4)?;
    if kind == Kind::Rhythm && u8_at(s, 5)? != 0 {
        return Err(bad("bimodal compression is not supported"));
    }
    if interval_us <= 0.0 {
        return Err(EcgError::SamplingRate("0".into()));
    }
    let mut p = 6 + 2 * leads.len();
    let mut out = vec![];
    for (k, (lead, _)) in leads.iter().enumerate() {
        let bytes = u16_at(s, 6 + 2 * k)? as usize;
        let chunk = s.get(p..p + bytes).ok_or(EcgError::Truncated("section 5 or 6"))?;
        p += bytes;
        let d = huffman(chunk, table, samples(k))?;
        let x = undifference(d, encoding)?;
        let uv = x.iter().map(|v| (*v as f64 * avm_nv / 1000.0).round() as i32).collect();
        out.push((*lead, uv));
    }
    Ok(Group { kind, sampling_hz: 1e6 / interval_us, leads: out })
}

/// The ms value of a section 7 field, unless it says "not computed" (29999), "rejected"
/// (29998) or "absent" (19999).
fn ms(v: u16) -> Option<f64> {
    (![29999, 29998, 19999].contains(&v)).then_some(v as f64)
}

fn measurements(s7: &[u8]) -> Result<Measurements, EcgError> {
    let rr = ms(u16_at(s7, 2)?);
    let p = 6;
    let (p_on, _p_off, qrs_on, qrs_off, t_off) = (
        u16_at(s7, p)?,
        u16_at(s7, p + 2)?,
        u16_at(s7, p + 4)?,
        u16_at(s7, p + 6)?,
        u16_at(s7, p + 8)?,
    );
    let axis = |v: i16| (v.unsigned_abs() < 999).then_some(v as f64);
    let span = |a: u16, b: u16| Some(ms(b)? - ms(a)?).filter(|d| *d > 0.0);
    Ok(Measurements {
        heart_rate_bpm: rr.filter(|r| *r > 0.0).map(|r| (60_000.0 / r).round()),
        rr_ms: rr,
        pr_ms: span(p_on, qrs_on),
        qrs_ms: span(qrs_on, qrs_off),
        qt_ms: span(qrs_on, t_off),
        qtc_bazett_ms: None,
        qtc_fridericia_ms: None,
        p_axis_deg: axis(i16_at(s7, p + 10)?),
        qrs_axis_deg: axis(i16_at(s7, p + 12)?),
        t_axis_deg: axis(i16_at(s7, p + 14)?),
    })
}

fn statements(s8: &[u8]) -> Vec<String> {
    let Ok(n) = u8_at(s8, 8) else { return vec![] };
    let mut p = 9;
    let mut out = vec![];
    for _ in 0..n {
        let (Ok(_), Ok(len)) = (u8_at(s8, p), u16_at(s8, p + 1)) else { break };
        let Some(text) = s8.get(p + 3..p + 3 + len as usize) else { break };
        p += 3 + len as usize;
        let t = String::from_utf8_lossy(text).trim_end_matches('\0').trim().to_string();
        if !t.is_empty() {
            out.push(t);
        }
    }
    out
}

/// Section 1's tagged fields: tag → value bytes.
fn patient_fields(s1: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = vec![];
    let mut p = 0;
    while let (Ok(tag), Ok(len)) = (u8_at(s1, p), u16_at(s1, p + 1)) {
        if tag == 255 {
            break;
        }
        let Some(v) = s1.get(p + 3..p + 3 + len as usize) else { break };
        out.push((tag, v));
        p += 3 + len as usize;
    }
    out
}

fn text(v: &[u8]) -> Option<String> {
    let t = String::from_utf8_lossy(v).trim_end_matches('\0').trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// Reads an SCP-ECG record.
pub fn parse(b: &[u8]) -> Result<Ecg, EcgError> {
    if !looks_like(b) {
        return Err(EcgError::UnknownFormat);
    }
    let secs = sections(b)?;
    let get = |id: u16| secs.iter().find(|(i, _)| *i == id).map(|(_, s)| *s);
    let (lead_list, flags) = leads(get(3).ok_or_else(|| bad("no lead definitions (section 3)"))?)?;
    if flags & 1 == 1 {
        return Err(bad("reference-beat subtraction is not supported"));
    }
    let tables = tables(get(2))?;
    let table = &tables[0];
    let mut groups = vec![];
    if let Some(s6) = get(6) {
        groups.push(data_group(s6, &lead_list, |k| lead_list[k].1, table, Kind::Rhythm)?);
    }
    if let (Some(s5), Some(s4)) = (get(5), get(4)) {
        let length_ms = u16_at(s4, 0)? as f64;
        let interval_us = u16_at(s5, 2)? as f64;
        if length_ms > 0.0 && interval_us > 0.0 {
            let n = (length_ms * 1000.0 / interval_us).round() as usize;
            groups.push(data_group(s5, &lead_list, |_| n, table, Kind::Median)?);
        }
    }
    if groups.is_empty() {
        return Err(EcgError::NoWaveform);
    }
    let fields = get(1).map(patient_fields).unwrap_or_default();
    let field = |t: u8| fields.iter().find(|(k, _)| *k == t).map(|(_, v)| *v);
    let date = |v: &[u8]| -> Option<(u16, u8, u8)> {
        Some((u16::from_le_bytes([*v.first()?, *v.get(1)?]), *v.get(2)?, *v.get(3)?))
    };
    let acquired_at = field(25).and_then(date).map(|(y, m, d)| {
        let t = field(26).unwrap_or(&[0, 0, 0]);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            t.first().copied().unwrap_or(0),
            t.get(1).copied().unwrap_or(0),
            t.get(2).copied().unwrap_or(0)
        )
    });
    let name = match (field(0).and_then(text), field(1).and_then(text)) {
        (Some(l), Some(f)) => Some(format!("{l}^{f}")),
        (l, f) => l.or(f),
    };
    Ok(Ecg {
        format: Format::Scp,
        acquired_at,
        patient: Patient {
            name: Phi::new(name),
            id: Phi::new(field(2).and_then(text)),
            birth_date: Phi::new(
                field(5).and_then(date).map(|(y, m, d)| format!("{y:04}{m:02}{d:02}")),
            ),
            sex: field(8).and_then(|v| v.first()).and_then(|s| match s {
                1 => Some("M".to_string()),
                2 => Some("F".to_string()),
                _ => None,
            }),
        },
        groups,
        device: match get(7) {
            Some(s7) => measurements(s7)?,
            None => Measurements::default(),
        },
        statements: get(8).map(statements).unwrap_or_default(),
        device_model: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_decodes_its_own_codes() {
        // 0 | 100 (+1) | 101 (-1) | 1111111110 + 11111101 (-3 in 8 bits) | 11111101 (-6).
        let bits = "0100101111111111011111101".to_string() + "11111101";
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, c) in bits.bytes().enumerate() {
            bytes[i / 8] |= (c - b'0') << (7 - i % 8);
        }
        assert_eq!(huffman(&bytes, &default_table(), 5).unwrap(), vec![0, 1, -1, -3, -6]);
        // Asking for more values than the bits hold runs out of bits: an error, not garbage.
        assert_eq!(
            huffman(&bytes, &default_table(), 100).unwrap_err(),
            EcgError::Truncated("Huffman-coded data")
        );
    }

    /// The fuzzer's find: an axis of -32768 (the most negative 16-bit value) overflowed when
    /// its magnitude was taken. It is "unknown", like any axis beyond ±999.
    #[test]
    fn extreme_axes_are_unknown_not_a_panic() {
        let mut s7 = vec![0u8; 22];
        s7[2..4].copy_from_slice(&800u16.to_le_bytes());
        for (at, v) in [(16, i16::MIN), (18, 60i16), (20, 1000i16)] {
            s7[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
        let m = measurements(&s7).unwrap();
        assert_eq!((m.p_axis_deg, m.qrs_axis_deg, m.t_axis_deg), (None, Some(60.0), None));
        assert_eq!(m.rr_ms, Some(800.0));
        // The fuzzer's own input (its first byte picked this parser): parsed or refused.
        let found = include_bytes!("../../tests/data/fuzz/ecg-scp-axis-overflow.bin");
        let _ = parse(&found[1..]);
    }

    #[test]
    fn second_differences_are_undone() {
        assert_eq!(undifference(vec![1, 3, 0, 0], 2).unwrap(), vec![1, 3, 5, 7]);
        assert_eq!(undifference(vec![1, 2, 3], 1).unwrap(), vec![1, 3, 6]);
    }
}
