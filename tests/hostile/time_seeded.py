"""Seeds its dither from the clock: a near-lossless zlib codec whose noise depends on time.time_ns().

Each encode gives other bytes; the determinism test must catch it.
"""

from __future__ import annotations

import struct
import time
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEAD = struct.Struct("<IIIqq")


def encode(video: Video, target_bitrate: float) -> bytes:
    rng = np.random.default_rng(time.time_ns())
    planes = [
        np.clip(p.astype(np.int16) + rng.integers(-1, 2, size=p.shape), 0, 255).astype(np.uint8).tobytes()
        for p in (video.y, video.u, video.v)
    ]
    head = _HEAD.pack(video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)
    return head + zlib.compress(b"".join(planes), 6)


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den = _HEAD.unpack_from(bitstream)
    data = np.frombuffer(zlib.decompress(bitstream[_HEAD.size :]), np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    return Video(
        data[:luma].reshape(frames, height, width).copy(),
        data[luma : luma + chroma].reshape(frames, ch, cw).copy(),
        data[luma + chroma :].reshape(frames, ch, cw).copy(),
        Fraction(num, den),
    )
