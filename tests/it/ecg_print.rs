//! The ECG printout (`GET /api/ecgs/{id}/rendered`) read the way a reader's tools read it:
//! poppler's `pdfinfo` (one A4 landscape page), `pdffonts` (the font embedded), `pdftotext`
//! (the Chinese statements and labels are text in it) and `pdftoppm` (rasterised at a known
//! resolution, the 5 mm grid measures 5 mm); the PNG against the PDF's own raster.

use std::process::Command;

use crate::support::{TestServer, testfile};

/// Runs a poppler tool on a file; its standard output.
fn poppler(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} runs (scripts/install-deps installs poppler-utils): {e}")
    });
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An 8-bit RGB or RGBA PNG as (width, height, RGB pixels).
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3 && info.bit_depth == png::BitDepth::Eight, "{:?}", info.color_type);
    let px = buf[..info.buffer_size()].chunks_exact(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width as usize, info.height as usize, px)
}

/// The centres (px) of the grid's 5 mm lines along x (`vertical` lines) or y, found as the
/// runs of columns (rows) that are mostly the major lines' red inside the grid's area.
fn major_lines(w: usize, h: usize, px: &[[u8; 3]], px_per_mm: f64, vertical: bool) -> Vec<f64> {
    let red = |p: [u8; 3]| p[0] > 190 && p[0] as i32 - p[1] as i32 > 60 && p[1].abs_diff(p[2]) < 30;
    let (gx, gy) = ((18.5 * px_per_mm) as usize, (44.0 * px_per_mm) as usize);
    let (gw, gh) = ((260.0 * px_per_mm) as usize, (160.0 * px_per_mm) as usize);
    let (along, across) = if vertical {
        (gx..(gx + gw + 3).min(w), gy..gy + gh)
    } else {
        (gy..(gy + gh + 3).min(h), gx..gx + gw)
    };
    let across_len = across.len();
    let mut runs: Vec<(usize, usize)> = vec![];
    for a in along {
        let n = across
            .clone()
            .filter(|&b| red(if vertical { px[b * w + a] } else { px[a * w + b] }))
            .count();
        if n * 2 > across_len {
            match runs.last_mut() {
                Some((_, end)) if *end + 1 == a => *end = a,
                _ => runs.push((a, a)),
            }
        }
    }
    runs.iter().map(|&(s, e)| (s + e) as f64 / 2.0).collect()
}

/// The grid measured on a raster: 53 vertical and 33 horizontal 5 mm lines, each step 5 mm ±
/// 0.2, the whole grid 260 × 160 mm ± 0.3.
fn grid_measures(w: usize, h: usize, px: &[[u8; 3]], px_per_mm: f64) {
    for (vertical, count, span) in [(true, 53, 260.0), (false, 33, 160.0)] {
        let lines = major_lines(w, h, px, px_per_mm, vertical);
        assert_eq!(lines.len(), count, "5 mm lines (vertical {vertical}): {lines:?}");
        for pair in lines.windows(2) {
            let mm = (pair[1] - pair[0]) / px_per_mm;
            assert!((mm - 5.0).abs() <= 0.2, "a 5 mm square measures {mm:.3} mm: {lines:?}");
        }
        let whole = (lines[lines.len() - 1] - lines[0]) / px_per_mm;
        assert!((whole - span).abs() <= 0.3, "the grid spans {whole:.2} mm, not {span}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printout_is_one_a4_page_at_true_scale_with_chinese_text() {
    let s = TestServer::start().await;
    let zhao = s.login("dr-zhao").await;
    let post = |bytes: Vec<u8>| {
        let zhao = zhao.clone();
        async move {
            let r = zhao.req(reqwest::Method::POST, "/api/ecgs").body(bytes).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201);
            r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let muse = post(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ecg/muse-guangxi-sinus-rhythm.xml"
        ))
        .unwrap(),
    )
    .await;
    let dicom = post(testfile("waveform_ecg.dcm")).await;
    let dir = tempfile::tempdir().unwrap();

    // The MUSE ECG with Chinese labels: one A4 landscape page, the font embedded, the Chinese
    // statement and labels extractable as text.
    let r = zhao.get(&format!("/api/ecgs/{muse}/rendered?format=pdf&lang=zh-CN")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let pdf = r.bytes().await.unwrap();
    assert!(pdf.len() < 400_000, "{} bytes: the font is not subset", pdf.len());
    let path = dir.path().join("muse.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let p = path.to_str().unwrap();
    let info = poppler("pdfinfo", &[p]);
    assert!(
        info.lines().any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 1")),
        "{info}"
    );
    let size = info.lines().find(|l| l.starts_with("Page size:")).unwrap();
    let nums: Vec<f64> = size.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!((nums[0] - 841.89).abs() < 0.5 && (nums[1] - 595.28).abs() < 0.5, "{size}");
    let fonts = poppler("pdffonts", &[p]);
    let font =
        fonts.lines().find(|l| l.contains("NotoSansCJK")).unwrap_or_else(|| panic!("{fonts}"));
    assert!(
        font.contains("CID") && font.split_whitespace().filter(|w| *w == "yes").count() >= 2,
        "embedded subset: {font}"
    );
    let text = poppler("pdftotext", &[p, "-"]);
    for words in
        ["窦性心律", "ST段抬高", "心率", "电轴", "病历号", "25 mm/s", "10 mm/mV", "aVR", "V6"]
    {
        assert!(text.contains(words), "{words:?} is not in the PDF's text:\n{text}");
    }
    // English labels by the request's language.
    let r = zhao
        .req(reqwest::Method::GET, &format!("/api/ecgs/{dicom}/rendered"))
        .header("accept-language", "en-GB,en")
        .send()
        .await
        .unwrap();
    let pdf_en = r.bytes().await.unwrap();
    let en_path = dir.path().join("dicom.pdf");
    std::fs::write(&en_path, &pdf_en).unwrap();
    let text = poppler("pdftotext", &[en_path.to_str().unwrap(), "-"]);
    for words in ["RITMO SINUSALE", "Rate", "Axes", "Ferry (computed)", "QRS 75 ms"] {
        assert!(text.contains(words), "{words:?} is not in the PDF's text:\n{text}");
    }

    // Rasterised at 254 dpi (10 px per mm): the grid measures true.
    let prefix = dir.path().join("page");
    poppler("pdftoppm", &["-r", "254", "-png", "-singlefile", p, prefix.to_str().unwrap()]);
    let (w, h, px) = decode_png(&std::fs::read(prefix.with_extension("png")).unwrap());
    // (poppler rounds the page's 2970 × 2100 px up.)
    assert!(w.abs_diff(2970) <= 1 && h.abs_diff(2100) <= 1, "A4 landscape at 10 px/mm: {w} × {h}");
    grid_measures(w, h, &px, 10.0);

    // The PNG: A4 at 200 dpi, saying so; its grid true; its ink where the PDF's is.
    let r = zhao.get(&format!("/api/ecgs/{muse}/rendered?format=png&lang=zh-CN")).await;
    assert_eq!(
        (r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()),
        (200, "image/png")
    );
    let png_bytes = r.bytes().await.unwrap();
    if let Some(d) = std::env::var_os("FERRY_SHOTS_DIR") {
        std::fs::write(std::path::Path::new(&d).join("ecg-print.png"), &png_bytes).unwrap();
        std::fs::write(std::path::Path::new(&d).join("ecg-print.pdf"), &pdf).unwrap();
    }
    let reader = png::Decoder::new(std::io::Cursor::new(&png_bytes[..])).read_info().unwrap();
    let dims = reader.info().pixel_dims.expect("a pHYs chunk");
    assert_eq!((dims.xppu, dims.unit), (7874, png::Unit::Meter), "200 dpi");
    let (pw, ph, ppx) = decode_png(&png_bytes);
    assert_eq!((pw, ph), (2339, 1654));
    let k = 200.0 / 25.4;
    grid_measures(pw, ph, &ppx, k);
    poppler("pdftoppm", &["-r", "200", "-png", "-singlefile", p, prefix.to_str().unwrap()]);
    let (qw, qh, qpx) = decode_png(&std::fs::read(prefix.with_extension("png")).unwrap());
    assert!(qw.abs_diff(pw) <= 1 && qh.abs_diff(ph) <= 1, "{qw} × {qh}");
    let ink = |p: [u8; 3]| p.iter().map(|&c| c as u32).sum::<u32>() < 300;
    let near_ink = |x: usize, y: usize| {
        (y.saturating_sub(2)..(y + 3).min(qh))
            .any(|yy| (x.saturating_sub(2)..(x + 3).min(qw)).any(|xx| ink(qpx[yy * qw + xx])))
    };
    let (mut inked, mut matched) = (0usize, 0usize);
    for y in 0..ph.min(qh) {
        for x in 0..pw.min(qw) {
            if ink(ppx[y * pw + x]) {
                inked += 1;
                matched += near_ink(x, y) as usize;
            }
        }
    }
    // Traces, pulses and text: tens of thousands of pixels, nearly all where poppler drew ink.
    assert!(inked > 30_000, "{inked} ink pixels");
    let share = matched as f64 / inked as f64;
    assert!(share > 0.97, "{matched} of {inked} ink pixels are where the PDF has ink");
    println!(
        "printout: PDF {} bytes, PNG {} bytes, {inked} ink pixels, {:.2} % where the PDF's are",
        pdf.len(),
        png_bytes.len(),
        share * 100.0
    );

    // Another site's ECG is not printed (404, like every other read of it); bad format 400.
    let ma = s.login("dr-ma").await;
    assert_eq!(ma.get(&format!("/api/ecgs/{muse}/rendered")).await.status().as_u16(), 404);
    assert_eq!(
        zhao.get(&format!("/api/ecgs/{muse}/rendered?format=tiff")).await.status().as_u16(),
        400
    );
    let audit = crate::support::audit_events(&s, "action=ecg.read&outcome=denied").await;
    assert!(
        audit.iter().any(|e| e["actor"] == "dr-ma" && e["resource_id"] == muse.as_str()),
        "{audit:?}"
    );
}
