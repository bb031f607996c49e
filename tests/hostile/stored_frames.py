"""Ignores the bitstream: decode returns a clip built into the module (a CIF gradient, 10 frames at 30 fps).

A "codec" with a 1-byte bitstream whose decoder always produces the same frames, whatever
was encoded; the harness must see that the decoded clip is not the source.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from harness.video import Video

_W, _H, _FRAMES = 352, 288, 10


def encode(video: Video, target_bitrate: float) -> bytes:
    return b"\x00"


def decode(bitstream: bytes) -> Video:
    yy, xx = np.mgrid[0:_H, 0:_W]
    y = np.stack([((xx + yy + 4 * f) % 256).astype(np.uint8) for f in range(_FRAMES)])
    u = np.full((_FRAMES, _H // 2, _W // 2), 128, np.uint8)
    return Video(y, u, u.copy(), Fraction(30))
