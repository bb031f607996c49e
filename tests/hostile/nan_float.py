"""Returns float planes full of NaN, slipping past Video's checks by building the object without __init__.

A decoder that divides by zero in its inverse transform; to "get it through" it constructs
the Video with object.__new__. The worker's own validation must reject the planes as bad output.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEAD = struct.Struct("<IIIqq")


def encode(video: Video, target_bitrate: float) -> bytes:
    return _HEAD.pack(video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den = _HEAD.unpack_from(bitstream)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    with np.errstate(all="ignore"):
        scale = np.zeros(1)
        y = np.zeros((frames, height, width)) / scale  # 0/0: NaN everywhere
        u = np.zeros((frames, ch, cw)) / scale
    out = object.__new__(Video)
    for name, value in (("y", y), ("u", u), ("v", u.copy()), ("fps", Fraction(num, den)), ("_sha", [])):
        object.__setattr__(out, name, value)
    return out
