//! Fuzzes the ECG parsers: any bytes must give a checked record or a refusal, never a panic
//! or an allocation beyond what was received. The first byte picks the parser, so each one is
//! reached whatever the content looks like; `ecg::parse` (detection first) gets the rest too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else { return };
    let parsed = match pick % 5 {
        0 => ferry::ecg::dicom::parse(rest),
        1 => ferry::ecg::muse::parse(rest),
        2 => ferry::ecg::aecg::parse(rest),
        3 => ferry::ecg::scp::parse(rest),
        _ => ferry::ecg::parse(rest),
    };
    if let Ok(ecg) = parsed {
        for g in &ecg.groups {
            let n = g.samples();
            assert!(g.leads.iter().all(|(_, s)| s.len() == n) || *pick % 5 != 4);
        }
        let _ = ferry::ecg::measure::computed(&ecg);
    }
});
