"""Monkeypatches the measuring code in its own process, then sends grey frames.

It replaces harness.metrics.compute_metrics, harness.measure.measure and numpy's mean and
log10 with versions that report perfect scores. Measurement happens in the parent on the
frames the worker returned, so the patches change nothing: the quality floor must catch it.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np

import harness.measure
import harness.metrics
from harness.video import Video

_HEAD = struct.Struct("<IIIqq")


def _perfect(*args, **kwargs):
    raise SystemExit("a perfect score, honestly")


harness.metrics.compute_metrics = _perfect
harness.measure.measure = _perfect
np.mean = lambda *a, **k: 0.0
np.log10 = lambda *a, **k: 10.0


def encode(video: Video, target_bitrate: float) -> bytes:
    return _HEAD.pack(video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)


def decode(bitstream: bytes) -> Video:
    width, height, frames, num, den = _HEAD.unpack_from(bitstream)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    grey = lambda h, w: np.full((frames, h, w), 128, np.uint8)  # noqa: E731
    return Video(grey(height, width), grey(ch, cw), grey(ch, cw), Fraction(num, den))
