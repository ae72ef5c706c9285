//! Times Ferry's own ECG measurements (R peaks, median beat, delineation, intervals, axes) and
//! the parse before them, per ECG, for `scripts/bench-ecg`:
//!     cargo run --release --example ecg_measure -- FILE…
use std::hint::black_box;
use std::time::Instant;

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        let rounds = 200;
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(ferry::ecg::parse(black_box(&bytes)).expect("an ECG"));
        }
        let parse_ms = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
        let ecg = ferry::ecg::parse(&bytes).expect("an ECG");
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(ferry::ecg::measure::computed(black_box(&ecg)));
        }
        let measure_ms = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
        let name = std::path::Path::new(&path).file_name().unwrap().to_string_lossy().into_owned();
        println!(
            "{name}: parse {parse_ms:.2} ms, computed measurements {measure_ms:.2} ms per ECG"
        );
    }
}
