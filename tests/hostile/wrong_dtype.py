"""Returns 16-bit samples: a zlib codec whose decoder keeps a 10-bit internal precision (uint16 planes).

Building the Video fails in decode, naming the dtype and what was expected.
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
    data = np.frombuffer(zlib.decompress(bitstream[_HEAD.size :]), np.uint8).astype(np.uint16) << 2
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    y = data[:luma].reshape(frames, height, width)
    u = data[luma : luma + chroma].reshape(frames, ch, cw)
    v = data[luma + chroma :].reshape(frames, ch, cw)
    return Video(y, u, v, Fraction(num, den))
