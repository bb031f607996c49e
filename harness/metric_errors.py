"""What harness.metrics and harness.vmaf share: their errors and the check that two clips match.

Both import from here, so that neither imports the other at module level (harness.metrics starts
harness.vmaf lazily, for VMAF only; harness.vmaf never imports harness.metrics).
"""

from __future__ import annotations

from harness.errors import HarnessError, VideoFormatError
from harness.video import Video

__all__ = ["MetricError", "UnknownMetricError", "frame_count_check"]


class MetricError(HarnessError):
    """A metric could not be computed, or gave a non-finite value."""


class UnknownMetricError(MetricError, ValueError):
    """A metric name that does not exist was asked for."""


def frame_count_check(ref: Video, dist: Video) -> None:
    """Raise VideoFormatError unless both clips have the same frame count and plane shapes (PITFALLS 4)."""
    if not isinstance(ref, Video) or not isinstance(dist, Video):
        raise VideoFormatError(
            f"metrics compare two Video objects, got {type(ref).__name__} and {type(dist).__name__}"
        )
    if ref.frames != dist.frames:
        raise VideoFormatError(
            f"frame counts differ: reference has {ref.frames}, distorted has {dist.frames}; "
            "no metric is computed on clips of different length (a decoder dropped or added frames)"
        )
    for name in ("y", "u", "v"):
        a, b = getattr(ref, name).shape, getattr(dist, name).shape
        if a != b:
            raise VideoFormatError(
                f"plane {name} shapes differ: reference {a}, distorted {b}; the decode must keep the size"
            )
