"""Deterministic where it expects to be checked: a quantizing zlib codec that adds unseeded noise only at low rates (under 0.07 bits per pixel).

A harness that repeats the encode at one rate point only (the middle one) sees identical
bytes there and passes the candidate; the lower rate points give different bytes every run.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEAD = struct.Struct("<IIIqqB")


def encode(video: Video, target_bitrate: float) -> bytes:
    bpp = target_bitrate / (video.width * video.height * float(video.fps))
    step = 4 if bpp >= 0.07 else 8
    rng = np.random.default_rng() if bpp < 0.07 else None  # fresh OS entropy, low rates only
    planes = []
    for plane in (video.y, video.u, video.v):
        q = plane.astype(np.int16) // step
        if rng is not None:
            q = q + rng.integers(0, 2, size=q.shape)
        planes.append(np.clip(q, 0, 255 // step).astype(np.uint8).tobytes())
    head = _HEAD.pack(video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator, step)
    return head + zlib.compress(b"".join(planes), 9)


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den, step = _HEAD.unpack_from(bitstream)
    data = np.frombuffer(zlib.decompress(bitstream[_HEAD.size :]), np.uint8).astype(np.uint16) * step + step // 2
    data = np.clip(data, 0, 255).astype(np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    return Video(
        data[:luma].reshape(frames, height, width).copy(),
        data[luma : luma + chroma].reshape(frames, ch, cw).copy(),
        data[luma + chroma :].reshape(frames, ch, cw).copy(),
        Fraction(num, den),
    )
