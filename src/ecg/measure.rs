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

/// R-peak sample positions in one lead, Pan–Tompkins style: the band-limited signal's slope,
/// squared and integrated over 150 ms; candidate peaks at least 200 ms apart; adaptive signal
/// and noise levels (a candidate above noise + 0.15 × (signal − noise) is a beat); a candidate
/// within 360 ms of the last beat with less than half its slope is its T wave; a gap longer
/// than 1.66 × the recent RR is searched again at half the threshold (a missed beat). Each beat
/// is then placed on the peak of the baseline-free signal in the lead's dominant polarity
/// within 80 ms.
pub fn r_peaks(uv: &[i32], fs: f64) -> Vec<usize> {
    if !(50.0..=20_000.0).contains(&fs) || uv.len() < (fs * 2.0) as usize {
        return vec![];
    }
    let x: Vec<f64> = uv.iter().map(|v| *v as f64).collect();
    let b = band(uv, fs);
    let n = b.len();
    let slope: Vec<f64> = (0..n).map(|i| b[(i + 1).min(n - 1)] - b[i.saturating_sub(1)]).collect();
    let energy: Vec<f64> = slope.iter().map(|d| d * d).collect();
    let integ = moving_average(&energy, (fs * 0.15).round() as usize);
    let refractory = (fs * 0.2) as usize;
    let mut cand: Vec<usize> = vec![];
    for i in 1..n - 1 {
        if integ[i] > 0.0 && integ[i] >= integ[i - 1] && integ[i] >= integ[i + 1] {
            match cand.last_mut() {
                Some(last) if i - *last < refractory => {
                    if integ[i] > integ[*last] {
                        *last = i;
                    }
                }
                _ => cand.push(i),
            }
        }
    }
    let init = ((fs * 2.0) as usize).min(n);
    let mut signal = integ[..init].iter().cloned().fold(0.0, f64::max) / 3.0;
    let mut noise = integ[..init].iter().sum::<f64>() / init as f64 / 2.0;
    let max_slope = |i: usize| {
        let a = i.saturating_sub((fs * 0.075) as usize);
        slope[a..=i].iter().fold(0.0f64, |m, v| m.max(v.abs()))
    };
    let (mut beats, mut rr): (Vec<usize>, Vec<usize>) = (vec![], vec![]);
    let mut last_slope = 0.0;
    let mut pending: Vec<usize> = vec![];
    for i in cand {
        let v = integ[i];
        let thr1 = noise + 0.15 * (signal - noise);
        let mut beat = v > thr1;
        if beat
            && let Some(last) = beats.last()
            && ((i - last) as f64) < 0.36 * fs
            && max_slope(i) < 0.5 * last_slope
        {
            beat = false; // its T wave
        }
        if !beat {
            noise = 0.125 * v + 0.875 * noise;
            pending.push(i);
            continue;
        }
        // A gap too long for the rhythm: the best candidate in it, at half the threshold.
        if let Some(&last) = beats.last()
            && !rr.is_empty()
        {
            let recent = &rr[rr.len().saturating_sub(8)..];
            let avg = recent.iter().sum::<usize>() as f64 / recent.len() as f64;
            if (i - last) as f64 > 1.66 * avg
                && let Some(&best) = pending.iter().max_by(|p, q| {
                    integ[**p].partial_cmp(&integ[**q]).unwrap_or(std::cmp::Ordering::Equal)
                })
                && integ[best] > 0.5 * thr1
                && best - last > refractory
            {
                signal = 0.25 * integ[best] + 0.75 * signal;
                rr.push(best - last);
                beats.push(best);
            }
        }
        signal = 0.125 * v + 0.875 * signal;
        if let Some(&last) = beats.last() {
            rr.push(i - last);
        }
        beats.push(i);
        last_slope = max_slope(i);
        pending.clear();
    }
    // Place each beat on the peak of the baseline-free signal, in the lead's dominant polarity.
    let base = moving_average(&x, (fs * 0.6).round() as usize);
    let hp: Vec<f64> = x.iter().zip(&base).map(|(a, b)| a - b).collect();
    let search = (fs * 0.08) as usize;
    let window = |i: usize| i.saturating_sub(search)..=(i + search).min(n - 1);
    let by = |f: &dyn Fn(usize) -> f64, i: usize| {
        window(i)
            .max_by(|p, q| f(*p).partial_cmp(&f(*q)).unwrap_or(std::cmp::Ordering::Equal))
            .unwrap_or(i)
    };
    let extremes: Vec<f64> = beats.iter().map(|i| hp[by(&|k| hp[k].abs(), *i)]).collect();
    let sign = if median(extremes).unwrap_or(0.0) >= 0.0 { 1.0 } else { -1.0 };
    let mut out: Vec<usize> = beats.iter().map(|i| by(&|k| sign * hp[k], *i)).collect();
    out.dedup();
    out
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
