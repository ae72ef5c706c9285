//! Decoding on the server: compressed frames asked for uncompressed (checked against dcmtk's
//! decoders and the uncompressed originals), WADO-RS `rendered` and `thumbnail` (checked
//! against the DICOM window formula), and clear refusals for what cannot be decoded.

use crate::support::{
    Client, Obj, Sql, TestServer, audit_events, dj, problem, testfile, testfile_path,
};

archive_backends!([
    compressed_frames_decode_to_what_reference_decoders_give,
    rendered_and_thumbnails_at_every_level,
]);

const PLAIN: &str = "multipart/related; type=\"application/octet-stream\"";

/// A pydicom test file with fresh Study/Series/SOP Instance UIDs (so variants of one image
/// can be stored side by side), pixel data untouched.
fn recast(name: &str) -> Vec<u8> {
    recast_with(name, "")
}

/// As [`recast`], running `extra` (Python, `ds` in scope) before saving.
fn recast_with(name: &str, extra: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.dcm");
    let script = format!(
        "import sys, pydicom\n\
         from pydicom.data import get_testdata_file\n\
         from pydicom.uid import generate_uid\n\
         ds = pydicom.dcmread(get_testdata_file(sys.argv[1]))\n\
         ds.StudyInstanceUID = generate_uid(); ds.SeriesInstanceUID = generate_uid()\n\
         ds.SOPInstanceUID = generate_uid(); ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID\n\
         {extra}\n\
         ds.save_as(sys.argv[2], enforce_file_format=True)\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script, name, out_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(out_path).unwrap()
}

/// Stores one instance; returns its WADO-RS path (`/dicomweb/studies/…/instances/…`).
async fn store(c: &Client, bytes: &[u8]) -> String {
    let (st, v) = c.stow("/dicomweb/studies", &[bytes]).await;
    assert_eq!(st, 200, "{v}");
    let url = dj(&v["00081199"]["Value"][0], "00081190").as_str().unwrap().to_string();
    url[url.find("/dicomweb/").unwrap()..].to_string()
}

/// The native pixel bytes of a file, frame by frame, as pydicom reads them (after an
/// optional dcmtk decoder such as `dcmdjpeg` made them native).
fn native_frames(file: &str, decoder: Option<&str>) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut path = std::path::PathBuf::from(file);
    if let Some(tool) = decoder {
        let out = dir.path().join("decoded.dcm");
        let st = std::process::Command::new(tool).arg(file).arg(&out).status().unwrap();
        assert!(st.success(), "{tool} failed");
        path = out;
    }
    let script = "import sys, pydicom\n\
        ds = pydicom.dcmread(sys.argv[1])\n\
        assert not ds.file_meta.TransferSyntaxUID.is_compressed\n\
        px = ds.PixelData\n\
        if ds.file_meta.TransferSyntaxUID == '1.2.840.10008.1.2.2' and ds.BitsAllocated == 16:\n\
        \x20   px = b''.join(px[i+1:i+2] + px[i:i+1] for i in range(0, len(px), 2))\n\
        n = int(ds.get('NumberOfFrames', 1))\n\
        size = len(px) // n\n\
        for i in range(n):\n\
        \x20   open(sys.argv[2] + '/%d' % i, 'wb').write(px[i * size:(i + 1) * size])\n\
        print(n)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap(), dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n: usize = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    (0..n).map(|i| std::fs::read(dir.path().join(i.to_string())).unwrap()).collect()
}

/// Frames asked for uncompressed: (status, parts, Content-Type).
async fn plain_frames(c: &Client, path: &str) -> (u16, Vec<Vec<u8>>, String) {
    let r = c.req(reqwest::Method::GET, path).header("accept", PLAIN).send().await.unwrap();
    let st = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let ct = ct.unwrap_or_default();
    if st != 200 {
        return (st, vec![], ct);
    }
    let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
    let body = r.bytes().await.unwrap();
    let parts = crate::support::split_parts(
        &body,
        &boundary,
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
    );
    (st, parts, ct)
}

async fn compressed_frames_decode_to_what_reference_decoders_give((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    // The uncompressed original of the MR variants.
    let mr = native_frames(&testfile_path("MR_small.dcm"), None);
    assert_eq!(mr[0].len(), 64 * 64 * 2);
    for variant in ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm"] {
        let path = store(&zhao, &recast(variant)).await;
        let (st, parts, ct) = plain_frames(&zhao, &format!("{path}/frames/1")).await;
        assert_eq!(st, 200, "{variant}");
        assert!(ct.contains("transfer-syntax=1.2.840.10008.1.2.1"), "{ct}");
        assert!(parts == vec![mr[0].clone()], "{variant}: decoded pixels differ from MR_small");
    }
    // Lossy JPEG: within rounding of dcmtk's decoder (IDCTs differ by a unit here and there).
    let jpeg = testfile_path("SC_rgb_jpeg_dcmtk.dcm");
    let reference = native_frames(&jpeg, Some("dcmdjpeg"));
    let path = store(&zhao, &recast("SC_rgb_jpeg_dcmtk.dcm")).await;
    let (st, parts, _) = plain_frames(&zhao, &format!("{path}/frames/1")).await;
    assert_eq!(st, 200);
    assert_eq!(parts[0].len(), reference[0].len());
    let diff: Vec<u32> =
        parts[0].iter().zip(&reference[0]).map(|(a, b)| a.abs_diff(*b) as u32).collect();
    let mean = diff.iter().sum::<u32>() as f64 / diff.len() as f64;
    assert!(mean < 1.0 && *diff.iter().max().unwrap() <= 8, "mean {mean}");
    // A multi-frame JPEG, two frames at once, against dcmtk frame by frame.
    let us_ref = native_frames(&testfile_path("examples_ybr_color.dcm"), Some("dcmdjpeg"));
    let path = store(&zhao, &recast("examples_ybr_color.dcm")).await;
    let (st, parts, _) = plain_frames(&zhao, &format!("{path}/frames/2,30")).await;
    assert_eq!((st, parts.len()), (200, 2));
    for (got, want) in parts.iter().zip([&us_ref[1], &us_ref[29]]) {
        let mean = got.iter().zip(want).map(|(a, b)| a.abs_diff(*b) as u64).sum::<u64>() as f64
            / want.len() as f64;
        assert_eq!(got.len(), want.len());
        assert!(mean < 1.0, "mean difference {mean}");
    }
    // As stored still works for the same instance.
    let r = zhao
        .req(reqwest::Method::GET, &format!("{path}/frames/1"))
        .header("accept", "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().contains("1.2.840.10008.1.2.4.50"));

    // JPEG-LS has no decoder here: a clear 406 naming it, for frames and for rendering.
    let path = store(&zhao, &recast("MR_small_jpeg_ls_lossless.dcm")).await;
    let (st, p) = problem(
        zhao.req(reqwest::Method::GET, &format!("{path}/frames/1"))
            .header("accept", PLAIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 406);
    assert!(p["detail"].as_str().unwrap().contains("JPEG-LS"), "{p}");
    assert_eq!(problem(zhao.get(&format!("{path}/rendered")).await).await.0, 406);

    // Pixel data that is not JPEG at all: 422, and the server carries on.
    let broken = recast_with(
        "SC_rgb_jpeg_dcmtk.dcm",
        "from pydicom.encaps import encapsulate\n\
         ds.PixelData = encapsulate([b'\\xff\\xd8\\xff\\xc0 not a jpeg at all \\xff\\xd9'])",
    );
    let path = store(&zhao, &broken).await;
    for route in ["frames/1", "rendered", "thumbnail"] {
        let r = zhao
            .req(reqwest::Method::GET, &format!("{path}/{route}"))
            .header("accept", if route == "frames/1" { PLAIN } else { "image/jpeg" })
            .send()
            .await
            .unwrap();
        let (st, p) = problem(r).await;
        assert_eq!((st, p["code"].as_str().unwrap()), (422, "cannot_decode"), "{route}");
    }
    assert_eq!(s.anonymous().get("/healthz").await.status(), 200);
    s.stop().await;
}

/// Width, height and components of a baseline/extended JPEG (from its SOF segment).
fn jpeg_size(b: &[u8]) -> (u32, u32, u8) {
    assert_eq!(&b[..2], [0xFF, 0xD8], "not a JPEG");
    let mut p = 2;
    loop {
        assert_eq!(b[p], 0xFF);
        let marker = b[p + 1];
        let len = u16::from_be_bytes([b[p + 2], b[p + 3]]) as usize;
        if (0xC0..=0xC2).contains(&marker) {
            let h = u16::from_be_bytes([b[p + 5], b[p + 6]]) as u32;
            let w = u16::from_be_bytes([b[p + 7], b[p + 8]]) as u32;
            return (w, h, b[p + 9]);
        }
        p += 2 + len;
    }
}

/// (width, height, channels, pixels) of a PNG.
fn png_pixels(b: &[u8]) -> (u32, u32, usize, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(b)).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), buf)
}

/// DICOM's linear window (PS3.3 C.11.2.1.2) to 8 bits.
fn window(x: f64, c: f64, w: f64) -> u8 {
    if x <= c - 0.5 - (w - 1.0) / 2.0 {
        0
    } else if x > c - 0.5 + (w - 1.0) / 2.0 {
        255
    } else {
        (((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0).round() as u8
    }
}

async fn image(c: &Client, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let r = c.req(reqwest::Method::GET, path).header("accept", accept).send().await.unwrap();
    let st = r.status().as_u16();
    if st == 200 && accept != "*/*" {
        assert_eq!(r.headers()["content-type"], accept);
    }
    (st, r.bytes().await.unwrap().to_vec())
}

async fn rendered_and_thumbnails_at_every_level((sql, obj): (Sql, Obj)) {
    let s = TestServer::start_with(sql, obj, &[]).await;
    let zhao = s.login("dr-zhao").await;
    let mr_path = store(&zhao, &testfile("MR_small.dcm")).await;
    let raw = native_frames(&testfile_path("MR_small.dcm"), None).remove(0);
    let values: Vec<f64> =
        raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f64).collect();

    // PNG with the window given: every pixel as the DICOM formula says (±1 for rounding).
    let (st, png) = image(&zhao, &format!("{mr_path}/rendered?window=500,1000"), "image/png").await;
    assert_eq!(st, 200);
    let (w, h, ch, px) = png_pixels(&png);
    assert_eq!((w, h, ch), (64, 64, 1));
    for (i, (got, x)) in px.iter().zip(&values).enumerate() {
        assert!(got.abs_diff(window(*x, 500.0, 1000.0)) <= 1, "pixel {i}: {got} for {x}");
    }
    // Without a window, the instance's own (600/1600) applies; the `accept` parameter works
    // like the header.
    let (_, own) = image(&zhao, &format!("{mr_path}/rendered?accept=image/png"), "*/*").await;
    let (_, _, _, own_px) = png_pixels(&own);
    for (got, x) in own_px.iter().zip(&values) {
        assert!(got.abs_diff(window(*x, 600.0, 1600.0)) <= 1);
    }
    assert_ne!(own_px, px, "the window parameter changes the picture");
    // Viewport: fits the box, aspect kept.
    let (_, small) = image(&zhao, &format!("{mr_path}/rendered?viewport=32,16"), "image/png").await;
    assert_eq!(png_pixels(&small).0, 16);
    // JPEG, default: quality changes the size, dimensions stay.
    let (st, jpg) = image(&zhao, &format!("{mr_path}/rendered"), "image/jpeg").await;
    assert_eq!(st, 200);
    assert_eq!(jpeg_size(&jpg), (64, 64, 1));
    let (_, low) = image(&zhao, &format!("{mr_path}/rendered?quality=5"), "image/jpeg").await;
    assert!(low.len() < jpg.len(), "quality=5 gives a smaller JPEG");
    let (_, frame) = image(&zhao, &format!("{mr_path}/frames/1/rendered"), "image/jpeg").await;
    assert_eq!(frame, jpg, "the frame-level answer is the instance's first frame");

    // Multi-frame colour ultrasound: frame 30, colour JPEG at full size; thumbnails at every
    // level fit 128 pixels.
    let us = testfile("examples_ybr_color.dcm");
    let us_path = store(&zhao, &us).await;
    let (st, f30) = image(&zhao, &format!("{us_path}/frames/30/rendered"), "image/jpeg").await;
    assert_eq!(st, 200);
    assert_eq!(jpeg_size(&f30), (320, 240, 3));
    let series = &us_path[..us_path.find("/instances/").unwrap()];
    let study = &us_path[..us_path.find("/series/").unwrap()];
    for p in [
        format!("{study}/thumbnail"),
        format!("{series}/thumbnail"),
        format!("{us_path}/thumbnail"),
    ] {
        let (st, t) = image(&zhao, &p, "image/jpeg").await;
        assert_eq!(st, 200, "{p}");
        assert_eq!(jpeg_size(&t), (128, 96, 3), "{p}");
    }
    let (st, t) = image(&zhao, &format!("{series}/rendered"), "image/png").await;
    assert_eq!((st, png_pixels(&t).0), (200, 320));

    // Refusals: bad parameters, formats, frames; other sites see nothing (audited).
    for (q, code) in [
        ("rendered?window=abc", 400),
        ("rendered?viewport=0,10", 400),
        ("rendered?quality=0", 400),
        ("frames/1,2/rendered", 400),
        ("frames/31/rendered", 404),
    ] {
        let (st, _) = problem(zhao.get(&format!("{us_path}/{q}")).await).await;
        assert_eq!(st, code, "{q}");
    }
    assert_eq!(image(&zhao, &format!("{us_path}/rendered"), "image/gif").await.0, 406);
    let ma = s.login("dr-ma").await;
    assert_eq!(image(&ma, &format!("{us_path}/thumbnail"), "image/jpeg").await.0, 404);
    let us_study = study.rsplit('/').next().unwrap();
    let denied = audit_events(&s, "user=dr-ma&outcome=denied").await;
    assert!(denied.iter().any(|e| e["action"] == "imaging.read" && e["resource_id"] == us_study));
    s.stop().await;
}
