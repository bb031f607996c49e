"""Sample candidate with failures: 2x2-averaged planes, uniformly quantized and zlib-compressed; refuses rates it cannot reach.

For the sample reports in tests/data (scripts/regenerate_samples): an honest but weak codec
that fails its low rate points (the encoder raises when even its coarsest step overshoots the
target) and passes the others. Deterministic, no files, no environment.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEADER = struct.Struct("<4sIIIqqB")
STEPS = (2, 4, 8, 16, 32)


def _down(plane: np.ndarray) -> np.ndarray:
    """Mean of each 2x2 block (the last row or column repeated for an odd size)."""
    h, w = plane.shape[1:]
    p = np.pad(plane, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge").astype(np.uint16)
    return ((p[:, 0::2, 0::2] + p[:, 1::2, 0::2] + p[:, 0::2, 1::2] + p[:, 1::2, 1::2] + 2) // 4).astype(np.uint8)


def _up(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.repeat(np.repeat(plane, 2, axis=1), 2, axis=2)[:, :h, :w]


def encode(video: Video, target_bitrate: float) -> bytes:
    budget = target_bitrate * video.frames / float(video.fps) / 8
    small = [_down(p) for p in (video.y, video.u, video.v)]
    for step in STEPS:
        header = _HEADER.pack(
            b"CRS1", video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator, step
        )
        data = b"".join((p // step).astype(np.uint8).tobytes() for p in small)
        out = header + zlib.compress(data, 9)
        if len(out) <= budget:
            return out
    raise ValueError(f"cannot reach {target_bitrate:.0f} bit/s: {len(out)} bytes at the coarsest step, budget {budget:.0f}")


def decode(bitstream: bytes) -> Video:
    magic, width, height, frames, num, den, step = _HEADER.unpack_from(bitstream)
    if magic != b"CRS1":
        raise ValueError(f"not a coarse bitstream (magic {magic!r})")
    data = np.frombuffer(zlib.decompress(bitstream[_HEADER.size :]), dtype=np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    planes, offset = [], 0
    for h, w in ((height, width), (ch, cw), (ch, cw)):
        sh, sw = (h + 1) // 2, (w + 1) // 2
        n = frames * sh * sw
        small = data[offset : offset + n].reshape(frames, sh, sw).astype(np.uint16) * step + step // 2
        planes.append(_up(np.clip(small, 0, 255).astype(np.uint8), h, w))
        offset += n
    return Video(*(np.ascontiguousarray(p) for p in planes), Fraction(num, den))
