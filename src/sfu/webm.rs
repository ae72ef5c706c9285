//! A WebM writer for recordings of broadcasts: VP8 video and Opus audio frames in, a WebM file
//! that players can seek in out — clusters of known size starting at video keyframes, cues
//! pointing at them, the duration in the segment's info and a seek head at the front so a
//! reader finds the cues without scanning. Written as frames come (nothing held in memory but
//! the current cluster's position); `finish` goes back to fill in sizes and the duration.
//!
//! Element ids and layout follow the Matroska specification (RFC 9559) as WebM restricts it.

use std::io::{self, Seek, SeekFrom, Write};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CODEC_DELAY: u32 = 0x56AA;
const SEEK_PRE_ROLL: u32 = 0x56BB;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;

pub const VIDEO_TRACK: u64 = 1;
pub const AUDIO_TRACK: u64 = 2;

/// A cluster is closed after this long even without a keyframe (block times are 16-bit
/// offsets from the cluster's, in milliseconds).
const MAX_CLUSTER_MS: i64 = 5_000;

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(3);
    b[skip..].to_vec()
}

/// An EBML variable-size integer of `len` bytes (1–8).
fn vint(value: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let marked = value | (1u64 << (7 * len));
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (marked >> (8 * (len - 1 - i))) as u8;
    }
    out
}

/// The shortest size vint for `value`.
fn size_vint(value: u64) -> Vec<u8> {
    let len = (1..=8).find(|&l| value < (1u64 << (7 * l)) - 1).unwrap_or(8);
    vint(value, len)
}

fn element(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(size_vint(body.len() as u64));
    out.extend_from_slice(body);
    out
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(7);
    element(id, &b[skip..])
}

fn float(id: u32, v: f64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

fn string(id: u32, s: &str) -> Vec<u8> {
    element(id, s.as_bytes())
}

/// Opus's identification header (RFC 7845 §5.1), the track's CodecPrivate.
fn opus_head(channels: u8, pre_skip: u16) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend(pre_skip.to_le_bytes());
    h.extend(48_000u32.to_le_bytes());
    h.extend(0i16.to_le_bytes());
    h.push(0);
    h
}

/// The sizes `finish` fills in are written as 8-byte vints.
const PATCH_LEN: usize = 8;

pub struct WebmWriter<W: Write + Seek> {
    w: W,
    /// Where the segment's data starts (positions in the seek head and cues count from here).
    segment_data: u64,
    segment_size_at: u64,
    duration_at: u64,
    /// Reserved room in the seek head for the cues' position.
    cues_seek_at: u64,
    /// The open cluster: where its size goes, where its data starts, its time.
    cluster: Option<(u64, u64, i64)>,
    cues: Vec<(i64, u64)>,
    last_ms: i64,
    first_ms: Option<i64>,
    video_frames: u64,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Starts a file with a VP8 track of `width`×`height` and a stereo Opus track.
    pub fn new(mut w: W, width: u16, height: u16) -> io::Result<Self> {
        let header = element(
            EBML,
            &[
                uint(0x4286, 1),
                uint(0x42F7, 1),
                uint(0x42F2, 4),
                uint(0x42F3, 8),
                string(0x4282, "webm"),
                uint(0x4287, 4),
                uint(0x4285, 2),
            ]
            .concat(),
        );
        w.write_all(&header)?;
        w.write_all(&id_bytes(SEGMENT))?;
        let segment_size_at = w.stream_position()?;
        w.write_all(&vint(0, PATCH_LEN))?;
        let segment_data = w.stream_position()?;
        // Seek head: Info, Tracks and Cues. Info and Tracks follow it at known offsets; the
        // cues' position is patched in at the end.
        let seek = |id: u32, pos: u64| {
            element(
                SEEK,
                &[element(SEEK_ID, &id_bytes(id)), element_fixed(SEEK_POSITION, pos)].concat(),
            )
        };
        let seek_head_len =
            element(SEEK_HEAD, &[seek(INFO, 0), seek(TRACKS, 0), seek(CUES, 0)].concat()).len()
                as u64;
        let info = element(
            INFO,
            &[
                uint(TIMECODE_SCALE, 1_000_000),
                string(MUXING_APP, "Ferry"),
                string(WRITING_APP, "Ferry"),
                float(DURATION, 0.0),
            ]
            .concat(),
        );
        let info_at = seek_head_len;
        let tracks_at = info_at + info.len() as u64;
        let seek_head = element(
            SEEK_HEAD,
            &[seek(INFO, info_at), seek(TRACKS, tracks_at), seek(CUES, 0)].concat(),
        );
        let head_at = w.stream_position()?;
        w.write_all(&seek_head)?;
        // The cues' SeekPosition is the last 8 bytes of the seek head.
        let cues_seek_at = head_at + seek_head.len() as u64 - 8;
        // Info, with the duration's 8 bytes at its end.
        w.write_all(&info)?;
        let duration_at = w.stream_position()? - 8;
        let video = element(
            TRACK_ENTRY,
            &[
                uint(TRACK_NUMBER, VIDEO_TRACK),
                uint(TRACK_UID, VIDEO_TRACK),
                uint(TRACK_TYPE, 1),
                string(CODEC_ID, "V_VP8"),
                element(
                    VIDEO,
                    &[uint(PIXEL_WIDTH, width as u64), uint(PIXEL_HEIGHT, height as u64)].concat(),
                ),
            ]
            .concat(),
        );
        let audio = element(
            TRACK_ENTRY,
            &[
                uint(TRACK_NUMBER, AUDIO_TRACK),
                uint(TRACK_UID, AUDIO_TRACK),
                uint(TRACK_TYPE, 2),
                string(CODEC_ID, "A_OPUS"),
                element(CODEC_PRIVATE, &opus_head(2, 0)),
                uint(CODEC_DELAY, 0),
                uint(SEEK_PRE_ROLL, 80_000_000),
                element(AUDIO, &[float(SAMPLING_FREQUENCY, 48_000.0), uint(CHANNELS, 2)].concat()),
            ]
            .concat(),
        );
        w.write_all(&element(TRACKS, &[video, audio].concat()))?;
        Ok(WebmWriter {
            w,
            segment_data,
            segment_size_at,
            duration_at,
            cues_seek_at,
            cluster: None,
            cues: vec![],
            last_ms: 0,
            first_ms: None,
            video_frames: 0,
        })
    }

    /// Video frames written so far.
    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    /// The time of the last frame written, from the first keyframe, in ms.
    pub fn duration_ms(&self) -> i64 {
        self.last_ms
    }

    /// A whole VP8 frame at `ms` (milliseconds on any clock shared with the audio).
    pub fn video(&mut self, ms: i64, keyframe: bool, frame: &[u8]) -> io::Result<()> {
        if self.first_ms.is_none() && !keyframe {
            return Ok(()); // a recording starts at a keyframe
        }
        let ms = self.time(ms);
        let due = self.cluster.is_some_and(|(_, _, start)| ms - start >= MAX_CLUSTER_MS);
        if self.cluster.is_none() || (keyframe && self.cluster.is_some()) || due {
            self.open_cluster(ms, keyframe)?;
        }
        self.video_frames += 1;
        self.block(VIDEO_TRACK, ms, keyframe, frame)
    }

    /// An Opus frame at `ms`. Audio before the first video keyframe is left out, so both
    /// tracks start together.
    pub fn audio(&mut self, ms: i64, frame: &[u8]) -> io::Result<()> {
        if self.first_ms.is_none() {
            return Ok(());
        }
        let ms = self.time(ms);
        if self.cluster.is_some_and(|(_, _, start)| ms - start >= MAX_CLUSTER_MS) {
            self.open_cluster(ms, false)?;
        }
        self.block(AUDIO_TRACK, ms, true, frame)
    }

    /// Milliseconds from the recording's start, never going back.
    fn time(&mut self, ms: i64) -> i64 {
        let first = *self.first_ms.get_or_insert(ms);
        let t = (ms - first).max(self.cluster.map_or(0, |c| c.2));
        self.last_ms = self.last_ms.max(t);
        t
    }

    fn close_cluster(&mut self) -> io::Result<()> {
        if let Some((size_at, data_at, _)) = self.cluster.take() {
            let end = self.w.stream_position()?;
            self.w.seek(SeekFrom::Start(size_at))?;
            self.w.write_all(&vint(end - data_at, PATCH_LEN))?;
            self.w.seek(SeekFrom::Start(end))?;
        }
        Ok(())
    }

    fn open_cluster(&mut self, ms: i64, keyframe: bool) -> io::Result<()> {
        self.close_cluster()?;
        let at = self.w.stream_position()?;
        if keyframe {
            self.cues.push((ms, at - self.segment_data));
        }
        self.w.write_all(&id_bytes(CLUSTER))?;
        let size_at = self.w.stream_position()?;
        self.w.write_all(&vint(0, PATCH_LEN))?;
        let data_at = self.w.stream_position()?;
        self.w.write_all(&uint(TIMECODE, ms as u64))?;
        self.cluster = Some((size_at, data_at, ms));
        Ok(())
    }

    fn block(&mut self, track: u64, ms: i64, keyframe: bool, frame: &[u8]) -> io::Result<()> {
        let start = self.cluster.map_or(0, |c| c.2);
        let rel = (ms - start).clamp(0, i16::MAX as i64) as i16;
        let mut body = vint(track, 1);
        body.extend(rel.to_be_bytes());
        body.push(if keyframe { 0x80 } else { 0x00 });
        body.extend_from_slice(frame);
        self.w.write_all(&element(SIMPLE_BLOCK, &body))
    }

    /// Closes the file: the last cluster's size, the cues, the duration, the segment's size.
    /// The writer back, positioned at the end.
    pub fn finish(mut self) -> io::Result<W> {
        self.close_cluster()?;
        let cues_at = self.w.stream_position()?;
        let points: Vec<u8> = self
            .cues
            .iter()
            .flat_map(|&(ms, pos)| {
                element(
                    CUE_POINT,
                    &[
                        uint(CUE_TIME, ms as u64),
                        element(
                            CUE_TRACK_POSITIONS,
                            &[uint(CUE_TRACK, VIDEO_TRACK), uint(CUE_CLUSTER_POSITION, pos)]
                                .concat(),
                        ),
                    ]
                    .concat(),
                )
            })
            .collect();
        self.w.write_all(&element(CUES, &points))?;
        let end = self.w.stream_position()?;
        self.w.seek(SeekFrom::Start(self.cues_seek_at))?;
        self.w.write_all(&(cues_at - self.segment_data).to_be_bytes())?;
        self.w.seek(SeekFrom::Start(self.duration_at))?;
        self.w.write_all(&(self.last_ms as f64).to_be_bytes())?;
        self.w.seek(SeekFrom::Start(self.segment_size_at))?;
        self.w.write_all(&vint(end - self.segment_data, PATCH_LEN))?;
        self.w.seek(SeekFrom::Start(end))?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// An unsigned integer element with an 8-byte body, so it can be patched in place.
fn element_fixed(id: u32, v: u64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

/// Reassembles VP8 frames from RTP payloads (RFC 7741): a frame starts at a packet with the
/// S bit and partition 0, and ends at the packet with the marker bit; a missing packet drops
/// the frame (and everything until the next keyframe, which the recorder asks for).
#[derive(Default)]
pub struct Vp8Assembler {
    frame: Vec<u8>,
    next_seq: Option<u64>,
    broken: bool,
    need_keyframe: bool,
}

/// Where a VP8 payload descriptor ends (RFC 7741 §4.2), or `None` when it is malformed.
pub fn vp8_payload_offset(p: &[u8]) -> Option<usize> {
    let first = *p.first()?;
    let mut i = 1;
    if first & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let pid = *p.get(i)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    (i < p.len()).then_some(i)
}

impl Vp8Assembler {
    /// One RTP payload with its extended sequence number and marker bit; a whole frame
    /// (`keyframe`, bytes) when this packet completes one.
    pub fn push(&mut self, seq: u64, marker: bool, payload: &[u8]) -> Option<(bool, Vec<u8>)> {
        let start = payload.first().is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0);
        let Some(off) = vp8_payload_offset(payload) else {
            self.broken = true;
            return None;
        };
        if self.next_seq.is_some_and(|n| n != seq) {
            self.broken = true; // a packet is missing
            self.need_keyframe = true;
        }
        self.next_seq = Some(seq + 1);
        if start {
            self.frame.clear();
            self.broken = false;
        }
        if self.broken {
            return None;
        }
        self.frame.extend_from_slice(&payload[off..]);
        if !marker {
            return None;
        }
        let frame = std::mem::take(&mut self.frame);
        let keyframe = frame.first().is_some_and(|b| b & 0x01 == 0);
        if self.need_keyframe && !keyframe {
            return None;
        }
        self.need_keyframe = false;
        Some((keyframe, frame))
    }

    /// Whether a keyframe is needed (a packet was lost since the last one).
    pub fn wants_keyframe(&self) -> bool {
        self.need_keyframe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal EBML reader for the tests: (id, data start, data length) of each element in
    /// `b[from..to]`.
    fn children(b: &[u8], from: usize, to: usize) -> Vec<(u32, usize, usize)> {
        let mut out = vec![];
        let mut i = from;
        while i < to {
            let lead = b[i].leading_zeros() as usize + 1;
            let id = b[i..i + lead].iter().fold(0u32, |a, &x| (a << 8) | x as u32);
            i += lead;
            let len = b[i].leading_zeros() as usize + 1;
            let mut size = (b[i] as u64) & ((1u64 << (8 - len)) - 1);
            for &x in &b[i + 1..i + len] {
                size = (size << 8) | x as u64;
            }
            i += len;
            out.push((id, i, size as usize));
            i += size as usize;
        }
        out
    }

    fn find(list: &[(u32, usize, usize)], id: u32) -> Vec<(u32, usize, usize)> {
        list.iter().copied().filter(|e| e.0 == id).collect()
    }

    fn uint_at(b: &[u8], e: (u32, usize, usize)) -> u64 {
        b[e.1..e.1 + e.2].iter().fold(0u64, |a, &x| (a << 8) | x as u64)
    }

    #[test]
    fn a_recording_is_a_seekable_webm_file() {
        let mut w = WebmWriter::new(io::Cursor::new(Vec::new()), 960, 540).unwrap();
        // Audio before the first keyframe is left out; then 12 s of 30 fps video with a
        // keyframe every 3 s, and audio every 20 ms.
        w.audio(1_000, &[1, 2, 3]).unwrap();
        for f in 0..360 {
            let t = 10_000 + f * 1000 / 30;
            w.video(t, f % 90 == 0, &[if f % 90 == 0 { 0x10 } else { 0x11 }, 7, 7]).unwrap();
            for a in 0..2 {
                w.audio(t + a * 16, &[0xfc, 1]).unwrap();
            }
        }
        let b = w.finish().unwrap().into_inner();
        let top = children(&b, 0, b.len());
        assert_eq!(top.iter().map(|e| e.0).collect::<Vec<_>>(), [EBML, SEGMENT]);
        let seg = top[1];
        assert_eq!(seg.1 + seg.2, b.len(), "the segment's size covers the file");
        let parts = children(&b, seg.1, seg.1 + seg.2);
        let ids: Vec<u32> = parts.iter().map(|e| e.0).collect();
        assert_eq!(ids[..3], [SEEK_HEAD, INFO, TRACKS]);
        assert_eq!(*ids.last().unwrap(), CUES);
        // The seek head points at Info, Tracks and Cues where they are.
        for s in find(&children(&b, parts[0].1, parts[0].1 + parts[0].2), SEEK) {
            let inner = children(&b, s.1, s.1 + s.2);
            let id = uint_at(&b, find(&inner, SEEK_ID)[0]) as u32;
            let pos = uint_at(&b, find(&inner, SEEK_POSITION)[0]) as usize;
            let at = parts.iter().find(|e| e.0 == id).unwrap();
            let head = id_bytes(id).len()
                + (b[seg.1 + pos + id_bytes(id).len()].leading_zeros() as usize + 1);
            assert_eq!(seg.1 + pos + head, at.1, "seek position of {id:x}");
        }
        // The duration: the last frame's time.
        let info = children(&b, parts[1].1, parts[1].1 + parts[1].2);
        let d = find(&info, DURATION)[0];
        let duration = f64::from_be_bytes(b[d.1..d.1 + 8].try_into().unwrap());
        assert!((11_950.0..=12_000.0).contains(&duration), "{duration}");
        // Clusters start at keyframes (one every 3 s), each cue at its cluster.
        let clusters = find(&parts, CLUSTER);
        assert_eq!(clusters.len(), 4);
        let cues = children(
            &b,
            parts.last().unwrap().1,
            parts.last().unwrap().1 + parts.last().unwrap().2,
        );
        assert_eq!(cues.len(), 4);
        let mut blocks = 0;
        for (c, cue) in clusters.iter().zip(&cues) {
            let inner = children(&b, cue.1, cue.1 + cue.2);
            let pos_el = find(
                &children(
                    &b,
                    find(&inner, CUE_TRACK_POSITIONS)[0].1,
                    find(&inner, CUE_TRACK_POSITIONS)[0].1 + find(&inner, CUE_TRACK_POSITIONS)[0].2,
                ),
                CUE_CLUSTER_POSITION,
            )[0];
            let pos = uint_at(&b, pos_el) as usize;
            assert_eq!(&b[seg.1 + pos..seg.1 + pos + 4], &id_bytes(CLUSTER)[..]);
            let cl = children(&b, c.1, c.1 + c.2);
            let time = uint_at(&b, find(&cl, TIMECODE)[0]);
            assert_eq!(time, uint_at(&b, find(&inner, CUE_TIME)[0]));
            let first = find(&cl, SIMPLE_BLOCK)[0];
            assert_eq!(b[first.1], 0x81, "a cluster opens with the video keyframe");
            assert_eq!(b[first.1 + 3], 0x80);
            blocks += find(&cl, SIMPLE_BLOCK).len();
        }
        assert_eq!(blocks, 360 + 720);
    }

    #[test]
    fn vp8_frames_are_reassembled_and_a_gap_waits_for_a_keyframe() {
        let mut a = Vp8Assembler::default();
        // Descriptor with X, I (15-bit picture id), then the frame's bytes.
        let pkt = |start: bool, body: &[u8]| {
            let mut p = vec![if start { 0x90 } else { 0x80 }, 0x80, 0x81, 0x23];
            p.extend_from_slice(body);
            p
        };
        assert_eq!(vp8_payload_offset(&pkt(true, &[1])), Some(4));
        assert_eq!(a.push(10, false, &pkt(true, &[0x10, 1])), None);
        assert_eq!(a.push(11, true, &pkt(false, &[2, 3])), Some((true, vec![0x10, 1, 2, 3])));
        assert_eq!(a.push(12, true, &pkt(true, &[0x11, 9])), Some((false, vec![0x11, 9])));
        // 13 is lost: 14's frame is incomplete, the next delta frames are dropped, a keyframe
        // is wanted and taken.
        assert_eq!(a.push(14, true, &pkt(false, &[5])), None);
        assert!(a.wants_keyframe());
        assert_eq!(a.push(15, true, &pkt(true, &[0x11, 6])), None);
        assert_eq!(a.push(16, true, &pkt(true, &[0x10, 7])), Some((true, vec![0x10, 7])));
        assert!(!a.wants_keyframe());
    }
}
