"""Returns a numpy array from encode instead of bytes (the compressed buffer was never converted).

The worker must refuse it as bad output naming the type it got.
"""

from __future__ import annotations

import zlib

import numpy as np

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    packed = zlib.compress(video.y.tobytes())
    return np.frombuffer(packed, dtype=np.uint8)


def decode(bitstream: bytes) -> Video:
    raise NotImplementedError
