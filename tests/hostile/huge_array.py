"""Claims a ~100 GB clip: decode returns a Video whose planes are zero-stride views (as_strided) of one byte.

The Video constructor accepts them (uint8, 3-D, consistent shapes); writing them out would take
100 GB. The worker must refuse them before copying, naming the output limit.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import as_strided

from harness.video import Video

_FRAMES, _H, _W = 25_000, 2160, 1920  # about 100 GB of luma+chroma


def encode(video: Video, target_bitrate: float) -> bytes:
    return b"\x00"


def decode(bitstream: bytes) -> Video:
    one = np.zeros(1, np.uint8)
    y = as_strided(one, shape=(_FRAMES, _H, _W), strides=(0, 0, 0))
    u = as_strided(one, shape=(_FRAMES, _H // 2, _W // 2), strides=(0, 0, 0))
    return Video(y, u, u, Fraction(25))
