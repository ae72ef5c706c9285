#!/usr/bin/env python3
"""A training broadcast's presenter or viewer with the PyPI `aiortc` (a WebRTC stack the tests
do not control), against Ferry's SFU: WHIP to publish, WHEP to watch (docs/broadcasts.md).

    python3 broadcast_aiortc.py publish BASE_URL TOKEN SESSION_ID SECONDS
    python3 broadcast_aiortc.py view    BASE_URL TOKEN SESSION_ID SECONDS

publish: sends a generated 440 Hz tone (Opus) and a moving 640x360 test pattern (VP8, one layer)
for SECONDS once connected, then hangs up: {"connected", "status", "seconds", "frames_sent",
"audio_frames_sent", ...}. view: receives for SECONDS from the POST on, decoding every frame,
then hangs up: {"connected", "status", "video_frames", "width", "height", "audio_frames",
"first_video_ms", "first_audio_ms", "last_…_ms", "max_…_gap_ms", "audio_tone_hz", "rtp", ...}
(times in ms from the POST of the offer; "rtp": packets received and lost per kind). One JSON
line on stdout; exit 0 when connected (and, viewing, both video and audio decoded). A refused
offer prints its status and body and exits 1. Nothing waits past SECONDS + 30 s.
BROADCAST_AIORTC_DEBUG=1 prints aiortc's log on stderr.
"""
import asyncio
import fractions
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

RATE = 48000
TONE_HZ = 440
WIDTH, HEIGHT = 640, 360
CONNECT_TIMEOUT = 15
HTTP_TIMEOUT = 10


class Tone(AudioStreamTrack):
    """A 440 Hz sine, 20 ms s16 mono frames at 48 kHz, paced in real time."""

    def __init__(self):
        super().__init__()
        self.sent = 0
        self._n = 0
        self._start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        samples = RATE // 50
        if self._start is None:
            self._start = time.time()
        else:
            wait = self._start + self._n / RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(samples) + self._n) / RATE
        pcm = (0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._n
        frame.time_base = fractions.Fraction(1, RATE)
        self._n += samples
        self.sent += 1
        return frame


class Pattern(VideoStreamTrack):
    """A moving diagonal gradient with a bright square crossing it, yuv420p, 30 frames/s."""

    def __init__(self):
        super().__init__()
        self.sent = 0
        y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
        self._diag = (x + y).astype(np.int32)
        self._chroma = np.full((HEIGHT // 2, WIDTH), 128, np.uint8)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        i = self.sent
        luma = ((self._diag + 3 * i) % 200 + 16).astype(np.uint8)
        x0 = (8 * i) % (WIDTH - 64)
        luma[HEIGHT // 2 - 32 : HEIGHT // 2 + 32, x0 : x0 + 64] = 235
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, self._chroma]), format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        self.sent += 1
        return frame


def only(transceiver, kind, mime, caps):
    """Offer one codec (Opus, VP8): the SFU takes nothing else."""
    codecs = [c for c in caps(kind).codecs if c.mimeType.lower() == mime]
    transceiver.setCodecPreferences(codecs)


def http(method, url, token, body=None):
    headers = {"Authorization": "Bearer " + token}
    if body is not None:
        headers["Content-Type"] = "application/sdp"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:  # unreachable, timed out: no status
        return None, {}, str(getattr(e, "reason", e))


async def inbound(pc):
    """RTP packets (and losses) received per kind, from aiortc's stats."""
    got = {}
    for r in pc.getReceivers():
        for s in (await r.getStats()).values():
            if s.type == "inbound-rtp":
                got[s.kind] = {"packets": s.packetsReceived, "lost": s.packetsLost}
    return got


def ms(since):
    return round((time.monotonic() - since) * 1000)


class Peer:
    """One RTCPeerConnection and its WHIP/WHEP resource."""

    def __init__(self, out):
        self.out = out
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connected = asyncio.Event()
        self.location = None
        self.t0 = None
        self.pc.on("connectionstatechange", self._state)

    def _state(self):
        state = self.pc.connectionState
        self.out.setdefault("states", []).append(state)
        if state == "connected" and not self.connected.is_set():
            self.out["connected"] = True
            self.out["connect_ms"] = ms(self.t0)
            self.connected.set()

    async def join(self, url, token):
        """Offers (candidates gathered), applies the answer, waits for ICE and DTLS.
        False: the offer was refused."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.t0 = time.monotonic()
        status, headers, body = await asyncio.to_thread(
            http, "POST", url, token, self.pc.localDescription.sdp.encode()
        )
        self.out["status"] = status
        if status != 201:
            self.out["body"] = body
            return False
        self.location = urllib.parse.urljoin(url, headers.get("Location", ""))
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        try:
            await asyncio.wait_for(self.connected.wait(), CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            self.out["error"] = f"not connected within {CONNECT_TIMEOUT} s"
        return True

    async def leave(self, token):
        if self.location:
            status, _, _ = await asyncio.to_thread(http, "DELETE", self.location, token)
            self.out["delete_status"] = status
        try:
            await asyncio.wait_for(self.pc.close(), 5)
        except asyncio.TimeoutError:
            self.out["close"] = "timed out"


async def publish(base, token, sid, seconds, out):
    peer = Peer(out)
    audio, video = Tone(), Pattern()
    sender = RTCRtpSender.getCapabilities
    only(peer.pc.addTransceiver(audio, direction="sendonly"), "audio", "audio/opus", sender)
    only(peer.pc.addTransceiver(video, direction="sendonly"), "video", "video/vp8", sender)
    try:
        if not await peer.join(f"{base}/api/broadcasts/{sid}/whip", token):
            return 1
        if out.get("connected"):
            await asyncio.sleep(seconds)
        out["seconds"] = seconds
        out["frames_sent"] = video.sent
        out["audio_frames_sent"] = audio.sent
        out["width"], out["height"] = WIDTH, HEIGHT
    finally:
        await peer.leave(token)
    return 0 if out.get("connected") else 1


async def view(base, token, sid, seconds, out):
    peer = Peer(out)
    receiver = RTCRtpReceiver.getCapabilities
    only(peer.pc.addTransceiver("audio", direction="recvonly"), "audio", "audio/opus", receiver)
    only(peer.pc.addTransceiver("video", direction="recvonly"), "video", "video/vp8", receiver)
    out.update(video_frames=0, width=None, height=None, audio_frames=0,
               first_video_ms=None, first_audio_ms=None, audio_peak=0)
    sizes = {}
    tail = []  # the latest second of received audio, mono
    readers = []

    def arrived(kind):
        """Counts a decoded frame and when it came (ms from the POST), with the longest pause."""
        now = ms(peer.t0)
        if out[f"first_{kind}_ms"] is None:
            out[f"first_{kind}_ms"] = now
        else:
            gap = now - out[f"last_{kind}_ms"]
            out[f"max_{kind}_gap_ms"] = max(out.get(f"max_{kind}_gap_ms", 0), gap)
        out[f"last_{kind}_ms"] = now
        out[f"{kind}_frames"] += 1

    async def read(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrived(track.kind)
            if track.kind == "video":
                out["width"], out["height"] = frame.width, frame.height
                size = f"{frame.width}x{frame.height}"
                sizes[size] = sizes.get(size, 0) + 1
            else:
                pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                out["audio_peak"] = max(out["audio_peak"], int(np.abs(pcm.astype(np.int32)).max()))
                out["audio_rate"] = frame.sample_rate
                tail.append(pcm)
                del tail[:-50]

    peer.pc.on("track", lambda track: readers.append(asyncio.ensure_future(read(track))))
    try:
        if not await peer.join(f"{base}/api/broadcasts/{sid}/whep", token):
            return 1
        await asyncio.sleep(max(0.0, seconds - ms(peer.t0) / 1000))
        out["seconds"] = seconds
        out["sizes"] = sizes
        out["rtp"] = await inbound(peer.pc)
        if tail:
            pcm = np.concatenate(tail).astype(np.float64)
            spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
            out["audio_tone_hz"] = round(float(np.argmax(spectrum)) * out["audio_rate"] / len(pcm))
    finally:
        for r in readers:
            r.cancel()
        await peer.leave(token)
    return 0 if out.get("connected") and out["video_frames"] and out["audio_frames"] else 1


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("publish", "view"):
        sys.exit(__doc__)
    mode, base, token, sid, seconds = sys.argv[1:]
    seconds = float(seconds)
    if os.environ.get("BROADCAST_AIORTC_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    out = {"mode": mode, "connected": False}
    # Last resort if the event loop itself is stuck.
    threading.Timer(seconds + 35, lambda: (print(json.dumps({**out, "error": "killed by watchdog"}),
                                                 flush=True), os._exit(2))).start()
    run = publish if mode == "publish" else view
    try:
        code = asyncio.run(asyncio.wait_for(run(base.rstrip("/"), token, sid, seconds, out),
                                            seconds + 30))
    except asyncio.TimeoutError:
        out["error"] = f"deadline of {seconds + 30} s passed"
        code = 1
    print(json.dumps(out), flush=True)
    os._exit(code)


if __name__ == "__main__":
    main()
