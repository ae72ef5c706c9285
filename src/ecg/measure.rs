//! Ferry's own measurements, computed from the samples (and labelled as computed, never as
//! the device's): R peaks by a Pan–Tompkins-style detector (band-limited slope, squared,
//! integrated over 150 ms, adaptive threshold, 250 ms refractory period, each peak moved back
//! by the integration's delay onto the largest deflection of the band-limited signal), rate
//! and RR from them; the QRS axis from the median beat's net QRS area in I and aVF. Pure:
//! samples in, numbers out.

use super::{Ecg, Kind, Lead, Measurements};

/// A centred moving average of width `w` samples.
fn moving_average(x: &[f64], w: usize) -> Vec<f64> {
    let w = w.max(1);
    let half = w / 2;
    let mut prefix = Vec::with_capacity(x.len() + 1);
    prefix.push(0.0);
    for v in x {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    (0..x.len())
        .map(|i| {
            let a = i.saturating_sub(half);
            let b = (i + half + 1).min(x.len());
            (prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect()
}

/// The signal band-limited to roughly 5–15 Hz (where QRS energy lies): a short average
/// removes noise, subtracting a longer one removes baseline wander and the T wave's slow rise.
fn band(x: &[i32], fs: f64) -> Vec<f64> {
    let x: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let low = moving_average(&x, (fs * 0.025).round() as usize);
    let base = moving_average(&low, (fs * 0.12).round() as usize);
    low.iter().zip(&base).map(|(a, b)| a - b).collect()
}

/// R-peak sample positions in one lead.
pub fn r_peaks(uv: &[i32], fs: f64) -> Vec<usize> {
    if !(50.0..=20_000.0).contains(&fs) || uv.len() < (fs * 0.5) as usize {
        return vec![];
    }
    let b = band(uv, fs);
    let slope: Vec<f64> =
        (0..b.len()).map(|i| b[(i + 1).min(b.len() - 1)] - b[i.saturating_sub(1)]).collect();
    let energy: Vec<f64> = slope.iter().map(|d| d * d).collect();
    let window = (fs * 0.15).round() as usize;
    let integrated = moving_average(&energy, window);
    // The threshold follows the signal: a fraction of a high percentile over the record, so
    // one huge artefact does not hide every beat.
    let mut sorted = integrated.clone();
    sorted.sort_by(|a, c| a.partial_cmp(c).unwrap_or(std::cmp::Ordering::Equal));
    let high = sorted[(sorted.len() as f64 * 0.98) as usize..].first().copied().unwrap_or(0.0);
    let threshold = 0.25 * high;
    let refractory = (fs * 0.25) as usize;
    let search = (fs * 0.08) as usize;
    let mut peaks: Vec<usize> = vec![];
    let mut i = 1;
    while i + 1 < integrated.len() {
        let v = integrated[i];
        if v > threshold && v >= integrated[i - 1] && v >= integrated[i + 1] {
            // Refine onto the largest deflection of the band-limited signal near the energy
            // peak (the centred average has no delay; the slope's energy peaks on the R flank).
            let a = i.saturating_sub(search);
            let z = (i + search).min(b.len() - 1);
            let r = (a..=z)
                .max_by(|p, q| {
                    b[*p].abs().partial_cmp(&b[*q].abs()).unwrap_or(std::cmp::Ordering::Equal)
                })
                .unwrap_or(i);
            match peaks.last() {
                Some(last) if r < last + refractory => {
                    if b[r].abs() > b[*last].abs() {
                        *peaks.last_mut().expect("one") = r;
                    }
                }
                _ => peaks.push(r),
            }
            i += search.max(1);
        } else {
            i += 1;
        }
    }
    peaks
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The QRS axis (degrees) from a median beat: the net area of I and aVF over the QRS (40 ms
/// either side of the largest deflection of II), each measured from its level in the 40 ms
/// before the QRS (the PR segment), not from the beat's average, which the T wave would pull.
fn qrs_axis(ecg: &Ecg) -> Option<f64> {
    let g = ecg.group(Kind::Median)?;
    if !(50.0..=20_000.0).contains(&g.sampling_hz) {
        return None;
    }
    let (i, avf, ii) = (g.lead(Lead::I)?, g.lead(Lead::AVF)?, g.lead(Lead::II)?);
    let all = median(ii.iter().map(|v| *v as f64).collect()).unwrap_or(0.0);
    let peak = (0..ii.len()).max_by(|a, b| {
        ((ii[*a] as f64 - all).abs())
            .partial_cmp(&(ii[*b] as f64 - all).abs())
            .unwrap_or(std::cmp::Ordering::Equal)
    })?;
    let half = (g.sampling_hz * 0.04) as usize;
    let start = peak.checked_sub(half)?;
    let before = start.checked_sub(half)?..start;
    let range = start..(peak + half).min(ii.len());
    let level = |x: &[i32]| median(before.clone().map(|k| x[k] as f64).collect()).unwrap_or(0.0);
    let area = |x: &[i32]| {
        let b = level(x);
        range.clone().map(|k| x[k] as f64 - b).sum::<f64>()
    };
    let (x, y) = (area(i), area(avf));
    (x != 0.0 || y != 0.0).then(|| y.atan2(x).to_degrees().round())
}

/// Ferry's measurements of an ECG.
pub fn computed(ecg: &Ecg) -> Measurements {
    let mut m = Measurements::default();
    if let Some(g) = ecg.group(Kind::Rhythm) {
        let lead = g.lead(Lead::II).or_else(|| g.leads.first().map(|(_, s)| s.as_slice()));
        if let Some(x) = lead {
            let peaks = r_peaks(x, g.sampling_hz);
            let rr: Vec<f64> =
                peaks.windows(2).map(|w| (w[1] - w[0]) as f64 * 1000.0 / g.sampling_hz).collect();
            if let Some(rr) = median(rr) {
                m.rr_ms = Some(rr.round());
                m.heart_rate_bpm = Some((60_000.0 / rr).round());
            }
        }
    }
    m.qrs_axis_deg = qrs_axis(ecg);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic ECG-like signal: narrow triangles (QRS) every `rr` samples on a slow wave.
    fn synthetic(fs: f64, rr: usize, n: usize) -> Vec<i32> {
        (0..n)
            .map(|i| {
                let k = i % rr;
                // The QRS 200 samples into each beat, away from the record's first sample.
                let qrs =
                    if (200..220).contains(&k) { 1000 - 100 * (k as i32 - 210).abs() } else { 0 };
                let wave = (200.0 * (i as f64 / fs * 0.3 * std::f64::consts::TAU).sin()) as i32;
                qrs + wave
            })
            .collect()
    }

    #[test]
    fn peaks_fall_on_each_beat_once() {
        let fs = 500.0;
        let x = synthetic(fs, 400, 5000);
        let p = r_peaks(&x, fs);
        assert_eq!(p.len(), 12, "{p:?}");
        for (k, r) in p.iter().enumerate() {
            let expected = k * 400 + 210;
            assert!(r.abs_diff(expected) <= 3, "peak {k} at {r}, expected {expected}");
        }
    }
}
