"""Lossless control codec: the raw planes compressed by zlib level 9 (ignores the target rate).

A well-behaved candidate for the harness's own tests: deterministic, uses no files, no
network, no environment, and decodes from the bitstream alone. Being lossless it cannot
meet low target rates, which is expected.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEADER = struct.Struct("<4sIIIqq")


def encode(video: Video, target_bitrate: float) -> bytes:
    header = _HEADER.pack(
        b"ZLL1", video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator
    )
    planes = b"".join(np.ascontiguousarray(p).tobytes() for p in (video.y, video.u, video.v))
    return header + zlib.compress(planes, 9)


def decode(bitstream: bytes) -> Video:
    magic, width, height, frames, num, den = _HEADER.unpack_from(bitstream)
    if magic != b"ZLL1":
        raise ValueError(f"not a zlib_lossless bitstream (magic {magic!r})")
    data = np.frombuffer(zlib.decompress(bitstream[_HEADER.size :]), dtype=np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * height * width, frames * ch * cw
    y = data[:luma].reshape(frames, height, width)
    u = data[luma : luma + chroma].reshape(frames, ch, cw)
    v = data[luma + chroma : luma + 2 * chroma].reshape(frames, ch, cw)
    return Video(y.copy(), u.copy(), v.copy(), Fraction(num, den))
