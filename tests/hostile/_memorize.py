"""Memorizes the public clips: it ships their frames (clips.npz beside it), recognises a clip by its first frame and replays it from a few bytes.

A template, not a corpus module (the underscore keeps discover_candidates away): the frames of the
public clips may not be committed, so tests/test_hostile.py builds the package `memorize/` from this
file and the clips' decoded frames in a temporary folder. On a memorized clip the bitstream is a
clip index and a quantizer step (5 to 40 bytes, longer for finer steps so the rates rise with the
quality): BD-rate far beyond any real codec. On any other clip it sends the size only and decodes
mid-grey, which fails the quality floor: exactly what held-out clips expose.
"""

from __future__ import annotations

import hashlib
import os
import struct
from fractions import Fraction

import numpy as np

from harness.video import Video

_HEAD = struct.Struct("<BIIIqq")  # known, index or width, step or height, frames, fps num, fps den
_STORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clips.npz")


def _clips() -> dict[str, int]:
    with np.load(_STORE) as data:
        return {str(k): i for i, k in enumerate(data["keys"])}


def _key(y0: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(y0).tobytes()).hexdigest()


def encode(video: Video, target_bitrate: float) -> bytes:
    index = _clips().get(_key(video.y[0]))
    fps = video.fps
    if index is None:
        return _HEAD.pack(0, video.width, video.height, video.frames, fps.numerator, fps.denominator)
    bpp = target_bitrate / (video.width * video.height * float(fps))
    step = int(min(40, max(2, round(6.5 / bpp))))  # 30-45 dB over the anchor's rates, like a real codec
    return _HEAD.pack(1, index, step, video.frames, fps.numerator, fps.denominator) + bytes(40 // step)


def decode(bitstream: bytes) -> Video:
    known, a, b, frames, num, den = _HEAD.unpack_from(bitstream)
    fps = Fraction(num, den)
    if not known:
        ch, cw = (b + 1) // 2, (a + 1) // 2
        grey = [np.full(shape, 128, np.uint8) for shape in ((frames, b, a), (frames, ch, cw), (frames, ch, cw))]
        return Video(*grey, fps)
    with np.load(_STORE) as data:
        planes = [data[f"{p}{a}"][:frames] for p in "yuv"]
    step = b
    out = [np.clip(p.astype(np.int32) // step * step + step // 2, 0, 255).astype(np.uint8) for p in planes]
    return Video(*out, fps)
