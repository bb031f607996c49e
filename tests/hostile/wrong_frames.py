"""Drops the last frame: a zlib codec with an off-by-one in its frame loop.

The decoded clip is one frame short: the harness must name the frame-count mismatch.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEAD = struct.Struct("<IIIqq")


def encode(video: Video, target_bitrate: float) -> bytes:
    head = _HEAD.pack(video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)
    return head + zlib.compress(b"".join(p.tobytes() for p in (video.y, video.u, video.v)))


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den = _HEAD.unpack_from(bitstream)
    data = np.frombuffer(zlib.decompress(bitstream[_HEAD.size :]), np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    y = data[:luma].reshape(frames, height, width)
    u = data[luma : luma + chroma].reshape(frames, ch, cw)
    v = data[luma + chroma :].reshape(frames, ch, cw)
    keep = range(frames - 1)  # off by one
    return Video(y[keep], u[keep], v[keep], Fraction(num, den))
