//! Ferry's own measurements, computed from the samples (and labelled as computed, never as
//! the device's): R peaks (Pan–Tompkins style), rate and RR from them; the waves of the median
//! beat (the device's, else Ferry's own) delineated from all leads at once, giving PR, QRS, QT,
//! QTc (Bazett, Fridericia) and the P, QRS and T axes. Pure: samples in, numbers out.

use super::{Ecg, Group, Kind, Lead, Measurements};

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
                && let Some(best) = argmax(pending.iter().copied(), |k| integ[k])
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
    let by = |f: &dyn Fn(usize) -> f64, i: usize| argmax(window(i), f).unwrap_or(i);
    let extremes: Vec<f64> = beats.iter().map(|i| hp[by(&|k| hp[k].abs(), *i)]).collect();
    let sign = if median(extremes).unwrap_or(0.0) >= 0.0 { 1.0 } else { -1.0 };
    let mut out: Vec<usize> = beats.iter().map(|i| by(&|k| sign * hp[k], *i)).collect();
    out.dedup();
    out
}

/// The position in `range` where `f` is largest (the last of equals).
fn argmax(range: impl Iterator<Item = usize>, f: impl Fn(usize) -> f64) -> Option<usize> {
    range.max_by(|a, b| f(*a).total_cmp(&f(*b)))
}

/// The position in `range` where `f` is smallest (the first of equals).
fn argmin(range: impl Iterator<Item = usize>, f: impl Fn(usize) -> f64) -> Option<usize> {
    range.min_by(|a, b| f(*a).total_cmp(&f(*b)))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Where the waves of a median beat lie (sample positions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waves {
    pub p_on: usize,
    pub qrs_on: usize,
    pub qrs_off: usize,
    pub t_end: f64,
}

/// Delineates a median beat from all its leads at once. The spatial velocity (the length of
/// the leads' slope vector, lightly smoothed) finds the QRS: onset and offset where it falls
/// below 6 % of its peak (the offset after 6 ms below, as the QRS may have several lobes). The
/// P wave is the velocity's peak in the 220 ms before the QRS, its onset where velocity falls
/// below 15 % of that peak. The T wave's end is where the tangent at the steepest descent after
/// the T peak (of the leads' vector magnitude, from the PR-segment level) meets that level.
pub fn delineate(g: &Group) -> Option<Waves> {
    let fs = g.sampling_hz;
    if !(50.0..=20_000.0).contains(&fs) {
        return None;
    }
    let smp = |ms: f64| (ms * fs / 1000.0).round() as usize;
    let leads: Vec<Vec<f64>> =
        [Lead::I, Lead::II, Lead::V1, Lead::V2, Lead::V3, Lead::V4, Lead::V5, Lead::V6]
            .iter()
            .filter_map(|l| g.lead(*l))
            .map(|x| moving_average(&x.iter().map(|v| *v as f64).collect::<Vec<_>>(), smp(10.0)))
            .collect();
    let n = leads.iter().map(|x| x.len()).min()?;
    if leads.len() < 2 || n < smp(600.0) {
        return None;
    }
    let mut vel = vec![0.0; n];
    for (k, v) in vel.iter_mut().enumerate().take(n - 1).skip(1) {
        *v = leads.iter().map(|x| (x[k + 1] - x[k - 1]).powi(2)).sum::<f64>().sqrt();
    }
    let vel = moving_average(&vel, smp(8.0));
    let (lo, hi) = (smp(100.0), n - smp(100.0));
    let peak = argmax(lo..hi, |k| vel[k])?;
    let thr = 0.06 * vel[peak];
    let mut on = peak;
    while on > 0 && vel[on] > thr {
        on -= 1;
    }
    let (mut off, mut low) = (peak, 0);
    for (k, v) in vel.iter().enumerate().take(n - 1).skip(peak) {
        if *v < thr {
            low += 1;
            if low > smp(6.0) {
                break;
            }
        } else {
            low = 0;
            off = k;
        }
    }
    // The P wave.
    let (pw0, pw1) = (on.checked_sub(smp(220.0))?, on.checked_sub(smp(20.0))?);
    let p_peak = argmax(pw0..pw1, |k| vel[k])?;
    let p_thr = 0.15 * vel[p_peak];
    let mut p_on = p_peak;
    while p_on > pw0 && vel[p_on] > p_thr {
        p_on -= 1;
    }
    // The T wave, from the PR-segment level of each lead.
    let pr = on.saturating_sub(smp(15.0))..=on;
    let levels: Vec<f64> =
        leads.iter().map(|x| median(pr.clone().map(|k| x[k]).collect()).unwrap_or(0.0)).collect();
    let mag: Vec<f64> = (0..n)
        .map(|k| leads.iter().zip(&levels).map(|(x, l)| (x[k] - l).powi(2)).sum::<f64>().sqrt())
        .collect();
    let (t0, t1) = (off + smp(60.0), (off + smp(500.0)).min(n - 1));
    if t0 >= t1 {
        return None;
    }
    let t_peak = argmax(t0..t1, |k| mag[k])?;
    let slope = |k: usize| (mag[(k + 1).min(n - 1)] - mag[k.saturating_sub(1)]) / 2.0;
    let steepest = argmin(t_peak..(t_peak + smp(250.0)).min(n - 1), slope)?;
    let level = median(pr.map(|k| mag[k]).collect()).unwrap_or(0.0);
    let d = slope(steepest);
    let t_end =
        if d < 0.0 { steepest as f64 + (level - mag[steepest]) / d } else { steepest as f64 };
    Some(Waves { p_on, qrs_on: on, qrs_off: off, t_end })
}

/// The frontal-plane axis (degrees) of the net area of I and aVF between two samples, each
/// measured from its PR-segment level.
fn axis(g: &Group, w: &Waves, from: usize, to: usize) -> Option<f64> {
    let (i, avf) = (g.lead(Lead::I)?, g.lead(Lead::AVF)?);
    let pr = w.qrs_on.saturating_sub((g.sampling_hz * 0.015) as usize)..=w.qrs_on;
    let area = |x: &[i32]| {
        let level = median(pr.clone().map(|k| x[k] as f64).collect()).unwrap_or(0.0);
        (from..to.min(x.len())).map(|k| x[k] as f64 - level).sum::<f64>()
    };
    let (x, y) = (area(i), area(avf));
    (x != 0.0 || y != 0.0).then(|| y.atan2(x).to_degrees().round())
}

/// The lead a rhythm's beats are found in: II, else the first.
fn beat_lead(g: &Group) -> Option<&[i32]> {
    g.lead(Lead::II).or_else(|| g.leads.first().map(|(_, s)| s.as_slice()))
}

/// Ferry's own median beat of a rhythm group: each lead's median, sample by sample, over the
/// beats (400 ms before to 600 ms after each of `peaks`, the R peaks of its `beat_lead`).
pub fn median_beat(g: &Group, peaks: &[usize]) -> Option<Group> {
    let fs = g.sampling_hz;
    let len = g.samples();
    let (before, after) = ((fs * 0.4) as usize, (fs * 0.6) as usize);
    let beats: Vec<usize> =
        peaks.iter().copied().filter(|r| *r >= before && r + after <= len).collect();
    if beats.len() < 3 {
        return None;
    }
    let leads = g
        .leads
        .iter()
        .map(|(lead, x)| {
            let beat = (0..before + after)
                .map(|k| {
                    let v: Vec<f64> = beats.iter().map(|r| x[r - before + k] as f64).collect();
                    median(v).unwrap_or(0.0).round() as i32
                })
                .collect();
            (*lead, beat)
        })
        .collect();
    Some(Group { kind: Kind::Median, sampling_hz: fs, leads })
}

/// The group with every lead cut to its shortest lead's length (the records Ferry stores have
/// equal leads — `ecg::parse` refuses others — but the measurements never index past a lead).
fn even(g: &Group) -> std::borrow::Cow<'_, Group> {
    let n = g.leads.iter().map(|(_, s)| s.len()).min().unwrap_or(0);
    if g.leads.iter().all(|(_, s)| s.len() == n) {
        return std::borrow::Cow::Borrowed(g);
    }
    let leads = g.leads.iter().map(|(l, s)| (*l, s[..n].to_vec())).collect();
    std::borrow::Cow::Owned(Group { leads, ..g.clone() })
}

/// Ferry's measurements of an ECG: rate and RR from the rhythm's R peaks; intervals and axes
/// from the median beat (the device's, else Ferry's own); QTc by Bazett and Fridericia.
pub fn computed(ecg: &Ecg) -> Measurements {
    let mut m = Measurements::default();
    let Some(rhythm) = ecg.group(Kind::Rhythm) else { return m };
    let rhythm = &*even(rhythm);
    if !(50.0..=20_000.0).contains(&rhythm.sampling_hz) {
        return m;
    }
    let peaks = beat_lead(rhythm).map(|x| r_peaks(x, rhythm.sampling_hz)).unwrap_or_default();
    let rr: Vec<f64> =
        peaks.windows(2).map(|w| (w[1] - w[0]) as f64 * 1000.0 / rhythm.sampling_hz).collect();
    if let Some(rr) = median(rr) {
        m.rr_ms = Some(rr.round());
        m.heart_rate_bpm = Some((60_000.0 / rr).round());
    }
    let own;
    let given = ecg.group(Kind::Median).map(even);
    let beat = match &given {
        Some(g) => &**g,
        None => {
            own = median_beat(rhythm, &peaks);
            match &own {
                Some(g) => g,
                None => return m,
            }
        }
    };
    if let Some(w) = delineate(beat) {
        let ms = |samples: f64| (samples * 1000.0 / beat.sampling_hz).round();
        m.pr_ms = Some(ms((w.qrs_on - w.p_on) as f64));
        m.qrs_ms = Some(ms((w.qrs_off - w.qrs_on) as f64));
        let qt = ms(w.t_end - w.qrs_on as f64);
        if qt > 0.0 {
            m.qt_ms = Some(qt);
            if let Some(rr) = m.rr_ms.map(|r| r / 1000.0).filter(|r| *r > 0.0) {
                m.qtc_bazett_ms = Some((qt / rr.sqrt()).round());
                m.qtc_fridericia_ms = Some((qt / rr.cbrt()).round());
            }
        }
        m.p_axis_deg = axis(beat, &w, w.p_on, w.qrs_on);
        m.qrs_axis_deg = axis(beat, &w, w.qrs_on, w.qrs_off);
        m.t_axis_deg = axis(beat, &w, w.qrs_off, w.t_end.round().max(0.0) as usize);
    }
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

    /// The fuzzer's find: an aECG whose leads had unequal lengths sent the delineation past
    /// the end of the shorter ones. Measured on the common length instead.
    #[test]
    fn leads_of_unequal_length_are_measured_not_a_panic() {
        let fs = 500.0;
        let long = synthetic(fs, 400, 5000);
        let short = long[..4000].to_vec();
        let rhythm = Group {
            kind: Kind::Rhythm,
            sampling_hz: fs,
            leads: vec![(Lead::I, long.clone()), (Lead::II, short), (Lead::V1, long.clone())],
        };
        let g = even(&rhythm);
        assert!(g.leads.iter().all(|(_, s)| s.len() == 4000));
        let found = include_bytes!("../../tests/data/fuzz/ecg-aecg-unequal-leads.bin");
        if let Ok(ecg) = super::super::aecg::parse(&found[1..]) {
            let _ = computed(&ecg);
        }
    }
}
