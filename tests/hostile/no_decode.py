"""Has no decode: the decoder was named `decompress`, so the contract's `decode` is missing.

The harness must refuse it at the contract check, naming the missing function.
"""

from __future__ import annotations

import zlib

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    return zlib.compress(video.y.tobytes() + video.u.tobytes() + video.v.tobytes())


def decompress(bitstream: bytes) -> Video:
    raise NotImplementedError
