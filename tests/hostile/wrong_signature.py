"""Wrong signature: decode wants the frame size as extra arguments, which the contract does not give.

The harness must refuse it at the contract check, showing the signature it found.
"""

from __future__ import annotations

import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    return zlib.compress(video.y.tobytes() + video.u.tobytes() + video.v.tobytes())


def decode(bitstream: bytes, width: int, height: int, frames: int) -> Video:
    data = np.frombuffer(zlib.decompress(bitstream), np.uint8)
    luma = frames * width * height
    y = data[:luma].reshape(frames, height, width)
    u = data[luma : luma + luma // 4].reshape(frames, height // 2, width // 2)
    v = data[luma + luma // 4 :].reshape(frames, height // 2, width // 2)
    return Video(y, u, v, Fraction(25))
