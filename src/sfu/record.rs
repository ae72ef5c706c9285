//! Recording a broadcast: the presenter's top video layer and audio, as they arrive at the
//! room, into a WebM file on local disk (`webm::WebmWriter`), which the server then files in
//! the object store. Times come from each stream's RTP time (extended by str0m), anchored at
//! the arrival of its first packet, so audio and video stay together and the file plays at the
//! pace it was captured.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::PathBuf;

use super::webm::{Vp8Assembler, WebmWriter};

/// A finished recording, still on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub path: PathBuf,
    pub duration_ms: i64,
    pub bytes: u64,
    pub video_frames: u64,
}

pub struct Recorder {
    path: PathBuf,
    writer: Option<WebmWriter<BufWriter<File>>>,
    vp8: Vp8Assembler,
    /// (stream time in ms, wall ms) of each stream's first packet.
    video_anchor: Option<(f64, i64)>,
    audio_anchor: Option<(f64, i64)>,
    failed: bool,
    /// When the last keyframe was written (a recording wants one every `KEYFRAME_EVERY_MS`, so
    /// a player seeking into it starts decoding near where it lands).
    last_key_ms: Option<i64>,
}

const KEYFRAME_EVERY_MS: i64 = 10_000;

/// The size a VP8 keyframe declares (RFC 6386 §9.1), if `frame` is one.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

impl Recorder {
    pub fn new(path: PathBuf) -> Self {
        Recorder {
            path,
            writer: None,
            vp8: Vp8Assembler::default(),
            video_anchor: None,
            audio_anchor: None,
            failed: false,
            last_key_ms: None,
        }
    }

    fn at(anchor: &mut Option<(f64, i64)>, stream_ms: f64, wall_ms: i64) -> i64 {
        let (s0, w0) = *anchor.get_or_insert((stream_ms, wall_ms));
        w0 + (stream_ms - s0).round() as i64
    }

    /// One RTP packet of the recorded video layer. Returns whether a keyframe should be asked
    /// for (none yet, a packet was lost, or the last is more than 10 s old); the room throttles
    /// the asking.
    pub fn video(
        &mut self,
        seq: u64,
        stream_ms: f64,
        marker: bool,
        payload: &[u8],
        wall_ms: i64,
    ) -> bool {
        if self.failed {
            return false;
        }
        if let Some((key, frame)) = self.vp8.push(seq, marker, payload) {
            let ms = Self::at(&mut self.video_anchor, stream_ms, wall_ms);
            if self.writer.is_none() {
                let Some((w, h)) = vp8_keyframe_size(&frame) else { return true };
                match File::create(&self.path)
                    .and_then(|f| WebmWriter::new(BufWriter::new(f), w, h))
                {
                    Ok(wr) => self.writer = Some(wr),
                    Err(e) => return self.fail(e),
                }
            }
            if let Some(w) = self.writer.as_mut() {
                if let Err(e) = w.video(ms, key, &frame) {
                    return self.fail(e);
                }
            }
            if key {
                self.last_key_ms = Some(ms);
            }
        }
        let stale = self.last_key_ms.is_some_and(|k| {
            Self::at(&mut self.video_anchor, stream_ms, wall_ms) - k > KEYFRAME_EVERY_MS
        });
        self.writer.is_none() || self.vp8.wants_keyframe() || stale
    }

    /// One Opus packet.
    pub fn audio(&mut self, stream_ms: f64, payload: &[u8], wall_ms: i64) {
        let ms = Self::at(&mut self.audio_anchor, stream_ms, wall_ms);
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.audio(ms, payload) {
                self.fail(e);
            }
        }
    }

    fn fail(&mut self, e: io::Error) -> bool {
        tracing::warn!(error = %e, path = %self.path.display(), "recording failed; it stops here");
        self.failed = true;
        self.writer = None;
        let _ = std::fs::remove_file(&self.path);
        false
    }

    /// Closes the file; `None` when nothing was recorded (no keyframe ever came, or writing
    /// failed).
    pub fn finish(mut self) -> Option<Recorded> {
        let w = self.writer.take()?;
        let frames = w.video_frames();
        let duration_ms = w.duration_ms();
        match w.finish().and_then(|mut b| {
            use std::io::Write;
            b.flush()?;
            b.get_ref().metadata().map(|m| m.len())
        }) {
            Ok(bytes) => {
                Some(Recorded { path: self.path, duration_ms, bytes, video_frames: frames })
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_sizes_are_read() {
        let mut f = vec![0x10, 0, 0, 0x9d, 0x01, 0x2a];
        f.extend(960u16.to_le_bytes());
        f.extend(540u16.to_le_bytes());
        assert_eq!(vp8_keyframe_size(&f), Some((960, 540)));
        f[0] = 0x11;
        assert_eq!(vp8_keyframe_size(&f), None);
    }
}
