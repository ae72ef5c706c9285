//! Decoding stored frames: to native pixels (for frames asked for uncompressed) and to
//! JPEG/PNG pictures (WADO-RS `rendered` and `thumbnail`). Pure and synchronous — callers run
//! it on blocking threads. Every failure is a [`DecodeError`] a client can read; nothing here
//! quotes data-set values.
//!
//! A frame is decoded from a small object: the stored header (everything before Pixel Data)
//! plus that one frame's bytes, so rendering frame 200 of a 2 GB multi-frame reads a few
//! kilobytes and one frame, not the whole file.

use std::io::Cursor;

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_object::file::ReadPreamble;
use dicom_pixeldata::{DecodedPixelData, PixelDecoder, VoiLutFunction, WindowLevel};

/// Why a frame could not be decoded or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The transfer syntax or pixel layout has no decoder here.
    #[error("{0}")]
    Unsupported(String),
    /// The stored pixel data does not decode.
    #[error("the pixel data of this instance could not be decoded")]
    Corrupt,
    /// The request's parameters are not valid.
    #[error("{0}")]
    BadParameter(String),
}

/// The picture format of a rendered answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// A source region and the box the picture must fit in (`viewport=vw,vh[,sx,sy,sw,sh]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    /// (x, y, width, height) of the source region; the whole frame when absent.
    pub source: Option<(u32, u32, u32, u32)>,
}

/// How to render: the window (else the instance's own, else min–max), the viewport (else
/// the frame's size), the JPEG quality.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderParams {
    pub format: Format,
    pub window: Option<(WindowLevel, VoiLutFunction)>,
    pub viewport: Option<Viewport>,
    pub quality: u8,
}

impl RenderParams {
    /// Parses the WADO-RS `window`, `viewport` and `quality` parameters.
    pub fn parse(
        format: Format,
        window: Option<&str>,
        viewport: Option<&str>,
        quality: Option<&str>,
        default_quality: u8,
    ) -> Result<Self, DecodeError> {
        let bad = |m: &str| DecodeError::BadParameter(m.to_string());
        let window = match window {
            None => None,
            Some(w) => {
                let p: Vec<&str> = w.split(',').map(str::trim).collect();
                let num = |s: &str| s.parse::<f64>().ok().filter(|f| f.is_finite());
                let (Some(center), Some(width)) =
                    (p.first().and_then(|s| num(s)), p.get(1).and_then(|s| num(s)))
                else {
                    return Err(bad("window is center,width[,function]"));
                };
                let function = match p.get(2).map(|f| f.to_ascii_lowercase()) {
                    None => VoiLutFunction::Linear,
                    Some(f) if f == "linear" => VoiLutFunction::Linear,
                    Some(f) if f == "linear-exact" || f == "linear_exact" => {
                        VoiLutFunction::LinearExact
                    }
                    Some(f) if f == "sigmoid" => VoiLutFunction::Sigmoid,
                    Some(_) => {
                        return Err(bad("the window function is linear, linear-exact or sigmoid"));
                    }
                };
                if p.len() > 3
                    || width <= 0.0
                    || (function == VoiLutFunction::Linear && width < 1.0)
                {
                    return Err(bad("the window width must be positive (at least 1 for linear)"));
                }
                Some((WindowLevel { center, width }, function))
            }
        };
        let viewport = match viewport {
            None => None,
            Some(v) => {
                let p: Option<Vec<u32>> = v.split(',').map(|s| s.trim().parse().ok()).collect();
                let p = p.ok_or_else(|| {
                    bad("viewport is vw,vh or vw,vh,sx,sy,sw,sh in non-negative integers")
                })?;
                let vp = match p[..] {
                    [w, h] => Viewport { width: w, height: h, source: None },
                    [w, h, sx, sy, sw, sh] => {
                        Viewport { width: w, height: h, source: Some((sx, sy, sw, sh)) }
                    }
                    _ => return Err(bad("viewport is vw,vh or vw,vh,sx,sy,sw,sh")),
                };
                if vp.width == 0 || vp.height == 0 || vp.width > 4096 || vp.height > 4096 {
                    return Err(bad("viewport sides are between 1 and 4096 pixels"));
                }
                if vp.source.is_some_and(|(_, _, w, h)| w == 0 || h == 0) {
                    return Err(bad("the viewport's source region is empty"));
                }
                Some(vp)
            }
        };
        let quality = match quality {
            None => default_quality,
            Some(q) => q
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|q| (1..=100).contains(q))
                .ok_or_else(|| bad("quality is an integer from 1 to 100"))?,
        };
        Ok(RenderParams { format, window, viewport, quality })
    }
}

fn open(bytes: &[u8], until_pixel_data: bool) -> Result<DefaultDicomObject, DecodeError> {
    let mut opts = dicom_object::OpenFileOptions::new().read_preamble(ReadPreamble::Always);
    if until_pixel_data {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.from_reader(Cursor::new(bytes)).map_err(|_| DecodeError::Corrupt)
}

/// One frame, ready to decode: an object holding only that frame's pixel data.
pub struct FrameObject {
    obj: DefaultDicomObject,
    /// The frame's 0-based number inside `obj` (0 when built from one frame).
    frame: u32,
}

impl FrameObject {
    /// From the stored header (the bytes before the first frame) and one frame's fragments
    /// (one part for native pixel data).
    pub fn from_parts(
        header: &[u8],
        parts: Vec<Vec<u8>>,
        encapsulated: bool,
    ) -> Result<Self, DecodeError> {
        let mut obj = open(header, true)?;
        let value: Value<_, _> = if encapsulated {
            Value::PixelSequence(PixelFragmentSequence::new_fragments(parts))
        } else {
            Value::Primitive(PrimitiveValue::from(parts.concat()))
        };
        obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, value));
        if obj.element_opt(tags::NUMBER_OF_FRAMES).ok().flatten().is_some() {
            obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from("1")));
        }
        Ok(FrameObject { obj, frame: 0 })
    }

    /// From a whole stored file (for data sets whose frames are not indexed), frame `n`
    /// counted from 0.
    pub fn from_file(bytes: &[u8], n: u32) -> Result<Self, DecodeError> {
        Ok(FrameObject { obj: open(bytes, false)?, frame: n })
    }

    fn decode(&self) -> Result<DecodedPixelData<'_>, DecodeError> {
        use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
        let ts = self.obj.meta().transfer_syntax().trim_end_matches('\0');
        match TransferSyntaxRegistry.get(ts) {
            Some(t) if t.can_decode_all() => {}
            known => {
                let name =
                    known.map_or_else(|| format!("transfer syntax {ts}"), |t| t.name().into());
                return Err(DecodeError::Unsupported(format!(
                    "frames in {name} cannot be decoded by this server; retrieve them as stored (transfer-syntax=*)"
                )));
            }
        }
        if self.obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
            return Err(DecodeError::Unsupported("this instance holds no pixel data".into()));
        }
        let frames = self
            .obj
            .element_opt(tags::NUMBER_OF_FRAMES)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        if self.frame >= frames {
            return Err(DecodeError::BadParameter("no such frame".into()));
        }
        self.obj.decode_pixel_data_frame(self.frame).map_err(|e| {
            tracing::info!(error = %e, "pixel data did not decode");
            DecodeError::Corrupt
        })
    }

    /// The frame's samples in native little-endian layout (what explicit VR little endian
    /// would carry), for frames asked for uncompressed.
    pub fn native(&self) -> Result<Vec<u8>, DecodeError> {
        let d = self.decode()?;
        let n = if d.number_of_frames() > 1 { self.frame } else { 0 };
        d.frame_data(n).map(<[u8]>::to_vec).map_err(|_| DecodeError::Corrupt)
    }

    /// The frame as a JPEG or PNG picture.
    pub fn render(&self, p: &RenderParams) -> Result<Vec<u8>, DecodeError> {
        let d = self.decode()?;
        let n = if d.number_of_frames() > 1 { self.frame } else { 0 };
        let (w, h) = (d.columns(), d.rows());
        let spp = d.samples_per_pixel();
        let pi = d.photometric_interpretation().as_str().to_string();
        let (pixels, channels) = if spp == 1 {
            // Rescaled values (modality LUT), then the VOI window to 8 bits.
            let values: Vec<f64> = d.to_vec_frame(n).map_err(|_| DecodeError::Corrupt)?;
            let own = d.window().ok().flatten().and_then(|w| w.first().copied());
            let own_fn = d.voi_lut_function().ok().flatten().and_then(|f| f.first().copied());
            let window = p.window.or(own.map(|w| (w, own_fn.unwrap_or(VoiLutFunction::Linear))));
            let mut v = match window {
                Some((wl, f)) => values.iter().map(|x| voi(*x, wl, f)).collect(),
                None => normalize(&values),
            };
            if pi == "MONOCHROME1" {
                v.iter_mut().for_each(|x| *x = 255 - *x);
            }
            (v, 1usize)
        } else if spp == 3 {
            let mut v: Vec<u8> = if d.bits_allocated() == 8 {
                d.frame_data(n).map_err(|_| DecodeError::Corrupt)?.to_vec()
            } else {
                // 16-bit colour: keep the high byte of each sample.
                d.frame_data(n)
                    .map_err(|_| DecodeError::Corrupt)?
                    .chunks_exact(2)
                    .map(|c| (u16::from_le_bytes([c[0], c[1]]) >> 8) as u8)
                    .collect()
            };
            if d.planar_configuration() == dicom_pixeldata::PlanarConfiguration::PixelFirst
                && v.len() >= (w * h * 3) as usize
            {
                v = interleave(&v, (w * h) as usize);
            }
            if pi == "YBR_FULL" || pi == "YBR_FULL_422" {
                ybr_to_rgb(&mut v);
            }
            (v, 3)
        } else {
            return Err(DecodeError::Unsupported(format!(
                "rendering images of {spp} samples per pixel is not supported"
            )));
        };
        if pixels.len() < (w as usize) * (h as usize) * channels {
            return Err(DecodeError::Corrupt);
        }
        let (img, ow, oh) = fit(&pixels, w, h, channels, p.viewport)?;
        encode(&img, ow, oh, channels, p.format, p.quality)
    }
}

/// The VOI LUT functions of PS3.3 C.11.2.1.2 (linear, linear exact, sigmoid) to 0–255.
fn voi(x: f64, wl: WindowLevel, f: VoiLutFunction) -> u8 {
    let (c, w) = (wl.center, wl.width);
    let y = match f {
        VoiLutFunction::Linear => {
            if x <= c - 0.5 - (w - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                255.0
            } else {
                ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
            }
        }
        VoiLutFunction::LinearExact => ((x - c) / w + 0.5) * 255.0,
        VoiLutFunction::Sigmoid => 255.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
    };
    y.round().clamp(0.0, 255.0) as u8
}

/// Min–max to 0–255, for images that carry no window.
fn normalize(values: &[f64]) -> Vec<u8> {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    let span = (hi - lo).max(f64::EPSILON);
    values.iter().map(|x| ((x - lo) / span * 255.0).round() as u8).collect()
}

/// Planar RRR…GGG…BBB to interleaved RGBRGB….
fn interleave(planar: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3);
    for i in 0..n {
        out.extend_from_slice(&[planar[i], planar[n + i], planar[2 * n + i]]);
    }
    out
}

/// Full-range YCbCr (ITU-R BT.601, as DICOM defines YBR_FULL) to RGB, in place.
fn ybr_to_rgb(v: &mut [u8]) {
    for px in v.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0] as f32, px[1] as f32 - 128.0, px[2] as f32 - 128.0);
        px[0] = (y + 1.402 * cr).round().clamp(0.0, 255.0) as u8;
        px[1] = (y - 0.344_136 * cb - 0.714_136 * cr).round().clamp(0.0, 255.0) as u8;
        px[2] = (y + 1.772 * cb).round().clamp(0.0, 255.0) as u8;
    }
}

/// Crops to the viewport's source region and scales to fit its box, keeping the aspect
/// ratio: area averaging when shrinking, nearest neighbour when enlarging.
fn fit(
    src: &[u8],
    w: u32,
    h: u32,
    ch: usize,
    vp: Option<Viewport>,
) -> Result<(Vec<u8>, u32, u32), DecodeError> {
    let Some(vp) = vp else { return Ok((src[..(w * h) as usize * ch].to_vec(), w, h)) };
    let (sx, sy, sw, sh) = vp.source.unwrap_or((0, 0, w, h));
    let (sw, sh) = (sw.min(w.saturating_sub(sx)), sh.min(h.saturating_sub(sy)));
    if sw == 0 || sh == 0 {
        return Err(DecodeError::BadParameter(
            "the viewport's source region lies outside the frame".into(),
        ));
    }
    let scale = (vp.width as f64 / sw as f64).min(vp.height as f64 / sh as f64);
    let ow = ((sw as f64 * scale).round() as u32).clamp(1, vp.width);
    let oh = ((sh as f64 * scale).round() as u32).clamp(1, vp.height);
    let mut out = Vec::with_capacity((ow * oh) as usize * ch);
    let span = |o: u32, out_len: u32, src_len: u32| {
        let a = (o as u64 * src_len as u64 / out_len as u64) as u32;
        let b = (((o + 1) as u64 * src_len as u64).div_ceil(out_len as u64) as u32).max(a + 1);
        (a, b.min(src_len))
    };
    for oy in 0..oh {
        let (y0, y1) = span(oy, oh, sh);
        for ox in 0..ow {
            let (x0, x1) = span(ox, ow, sw);
            for c in 0..ch {
                let mut sum = 0u64;
                for y in y0..y1 {
                    let row = ((sy + y) * w) as usize;
                    for x in x0..x1 {
                        sum += src[(row + (sx + x) as usize) * ch + c] as u64;
                    }
                }
                let n = ((y1 - y0) * (x1 - x0)) as u64;
                out.push(((sum + n / 2) / n) as u8);
            }
        }
    }
    Ok((out, ow, oh))
}

fn encode(
    img: &[u8],
    w: u32,
    h: u32,
    ch: usize,
    format: Format,
    quality: u8,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let too_big = || DecodeError::Unsupported("the picture is too large to encode".into());
    match format {
        Format::Jpeg => {
            let (w16, h16) = (
                u16::try_from(w).map_err(|_| too_big())?,
                u16::try_from(h).map_err(|_| too_big())?,
            );
            let color =
                if ch == 1 { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
            jpeg_encoder::Encoder::new(&mut out, quality)
                .encode(img, w16, h16, color)
                .map_err(|_| too_big())?;
        }
        Format::Png => {
            let mut e = png::Encoder::new(&mut out, w, h);
            e.set_color(if ch == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
            e.set_depth(png::BitDepth::Eight);
            let mut writer = e.write_header().map_err(|_| too_big())?;
            writer.write_image_data(img).map_err(|_| too_big())?;
            writer.finish().map_err(|_| too_big())?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_and_refuse_clearly() {
        let p = RenderParams::parse(Format::Png, Some("40,400"), Some("64,32"), None, 90).unwrap();
        assert_eq!(p.window.unwrap().0, WindowLevel { center: 40.0, width: 400.0 });
        assert_eq!(p.viewport.unwrap(), Viewport { width: 64, height: 32, source: None });
        assert_eq!(p.quality, 90);
        let s =
            RenderParams::parse(Format::Jpeg, Some("0,1,sigmoid"), None, Some("50"), 90).unwrap();
        assert_eq!(s.window.unwrap().1, VoiLutFunction::Sigmoid);
        for (w, v, q) in [
            (Some("40"), None, None),
            (Some("40,0"), None, None),
            (Some("40,400,cubic"), None, None),
            (None, Some("0,10"), None),
            (None, Some("10"), None),
            (None, Some("10,10,0,0,0,5"), None),
            (None, None, Some("0")),
            (None, None, Some("101")),
        ] {
            assert!(
                matches!(
                    RenderParams::parse(Format::Jpeg, w, v, q, 90),
                    Err(DecodeError::BadParameter(_))
                ),
                "{w:?} {v:?} {q:?}"
            );
        }
    }

    #[test]
    fn fitting_keeps_aspect_and_averages() {
        // 4×2 grey ramp into a 2×2 box: 2×1, each output pixel the mean of a 2×2 block.
        let src = [0u8, 10, 20, 30, 40, 50, 60, 70];
        let vp = Viewport { width: 2, height: 2, source: None };
        let (out, w, h) = fit(&src, 4, 2, 1, Some(vp)).unwrap();
        assert_eq!((w, h), (2, 1));
        assert_eq!(out, vec![25, 45]);
        // enlarging repeats pixels
        let (big, w, h) =
            fit(&[0u8, 255], 2, 1, 1, Some(Viewport { width: 4, height: 4, source: None }))
                .unwrap();
        assert_eq!((w, h), (4, 2));
        assert_eq!(big, vec![0, 0, 255, 255, 0, 0, 255, 255]);
        // a source region outside the frame is refused
        let out_of = Viewport { width: 2, height: 2, source: Some((9, 9, 2, 2)) };
        assert!(fit(&src, 4, 2, 1, Some(out_of)).is_err());
    }

    #[test]
    fn window_functions_follow_the_standard() {
        let wl = WindowLevel { center: 40.0, width: 400.0 };
        assert_eq!(voi(-1000.0, wl, VoiLutFunction::Linear), 0);
        assert_eq!(voi(1000.0, wl, VoiLutFunction::Linear), 255);
        assert_eq!(voi(40.0, wl, VoiLutFunction::Linear), 128);
        assert_eq!(voi(40.0, wl, VoiLutFunction::LinearExact), 128);
        assert_eq!(voi(40.0, wl, VoiLutFunction::Sigmoid), 128);
        assert_eq!(voi(240.0, wl, VoiLutFunction::Sigmoid), 225); // 255 / (1 + e^-2) = 224.6
        assert_eq!(voi(240.0, wl, VoiLutFunction::Linear), 255);
        assert_eq!(normalize(&[-5.0, 0.0, 5.0]), vec![0, 128, 255]);
        assert_eq!(normalize(&[7.0, 7.0]), vec![0, 0]);
    }

    #[test]
    fn colour_helpers() {
        assert_eq!(interleave(&[1, 2, 3, 4, 5, 6], 2), vec![1, 3, 5, 2, 4, 6]);
        let mut grey = [100u8, 128, 128];
        ybr_to_rgb(&mut grey);
        assert_eq!(grey, [100, 100, 100]);
    }
}
