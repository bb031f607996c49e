"""The one function that measures: bits from the bitstream's length, quality from decoded frames.

Candidates and anchors go through `measure` alike; nothing a codec reports about itself is used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from harness.metrics import compute_metrics
from harness.video import Video

__all__ = ["Measurement", "measure", "bitrate_bps", "SUITE_METRICS"]

# Metrics the suite computes on every rate point (VMAF is added by the anchors/BD-rate stage).
SUITE_METRICS: tuple[str, ...] = ("psnr", "ssim")


def bitrate_bps(n_bytes: int, source: Video) -> float:
    """Bits per second of a bitstream of `n_bytes` coding all of `source`: 8 * bytes * fps / frames."""
    return 8.0 * n_bytes * float(source.fps) / source.frames


@dataclass(frozen=True)
class Measurement:
    """Rate and quality of one bitstream against its source; means are over frames."""

    bytes: int
    bitrate_bps: float
    bits_per_pixel: float
    bitstream_sha256: str
    decoded_sha256: str
    mean: dict[str, float]
    per_frame: dict[str, list[float]] = field(repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "bytes": self.bytes,
            "bitrate_bps": self.bitrate_bps,
            "bits_per_pixel": self.bits_per_pixel,
            "bitstream_sha256": self.bitstream_sha256,
            "decoded_sha256": self.decoded_sha256,
            "metrics": self.mean,
            "per_frame": self.per_frame,
        }


def measure(source: Video, bitstream: bytes, decoded: Video, *, metrics=SUITE_METRICS) -> Measurement:
    """Measure `bitstream` and its decode against `source` (which must have the same format)."""
    result = compute_metrics(source, decoded, metrics=metrics)
    per_frame = {k: [float(x) for x in v] for k, v in result.per_frame.items()}
    return Measurement(
        bytes=len(bitstream),
        bitrate_bps=bitrate_bps(len(bitstream), source),
        bits_per_pixel=8.0 * len(bitstream) / (source.frames * source.width * source.height),
        bitstream_sha256=hashlib.sha256(bitstream).hexdigest(),
        decoded_sha256=decoded.sha256(),
        mean={k: float(v) for k, v in result.mean.items()},
        per_frame=per_frame,
    )
