"""Transposes the frames: a zlib codec whose decoder swaps rows and columns (a classic numpy axis mix-up).

The decoded clip is a valid Video of the wrong size: the harness must name the size mismatch.
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
    return head + zlib.compress(video.y.tobytes() + video.u.tobytes() + video.v.tobytes())


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den = _HEAD.unpack_from(bitstream)
    data = np.frombuffer(zlib.decompress(bitstream[_HEAD.size :]), np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    y = data[:luma].reshape(frames, height, width).transpose(0, 2, 1)
    u = data[luma : luma + chroma].reshape(frames, ch, cw).transpose(0, 2, 1)
    v = data[luma + chroma :].reshape(frames, ch, cw).transpose(0, 2, 1)
    return Video(y.copy(), u.copy(), v.copy(), Fraction(num, den))
