"""The one function that measures: bits from the bitstream's length, quality from decoded frames.

Candidates and anchors go through `measure` alike; nothing a codec reports about itself is used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from harness.metrics import compute_metrics, metric_versions
from harness.video import Video
from harness.vmaf import VMAF_MIN_SIDE

__all__ = ["SUITE_METRICS", "Measurement", "bitrate_bps", "luma_correlation", "measure"]

# Metrics the suite computes on every rate point, candidates and anchors alike.
SUITE_METRICS: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "vmaf", "vmaf_neg")
MEASURE_VERSION = "1"  # bump when bit counting or what `measure` records changes
# A source frame whose luma has a standard deviation under this (8-bit levels) is flat: whether
# a decode reproduces it cannot be told from a correlation, so it gets none.
FLAT_LUMA_STD = 1.0


def metrics_for(video: Video, wanted: tuple[str, ...] = SUITE_METRICS) -> tuple[str, ...]:
    """The metrics that apply to a clip: libvmaf crashes on frames with a side of 16 or less."""
    if min(video.width, video.height) <= VMAF_MIN_SIDE - 1:
        return tuple(m for m in wanted if m not in ("vmaf", "vmaf_neg"))
    return wanted


def measurement_versions(metrics: tuple[str, ...] = SUITE_METRICS) -> dict[str, str]:
    """Everything a cached measurement depends on besides the clip and the codec."""
    return {"measure": MEASURE_VERSION, **metric_versions(metrics)}


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
    # Per frame: Pearson correlation of the decoded luma with the source luma (None for a flat
    # source frame); None when not measured (results from before it was).
    luma_correlation: tuple[float | None, ...] | None = field(default=None, repr=False)

    @property
    def mean_luma_correlation(self) -> float | None:
        """Mean over the frames that have one; None when not measured or every frame is flat."""
        values = [c for c in self.luma_correlation or () if c is not None]
        return sum(values) / len(values) if values else None

    @classmethod
    def from_json(cls, data: dict) -> Measurement:
        return cls(
            bytes=int(data["bytes"]),
            bitrate_bps=float(data["bitrate_bps"]),
            bits_per_pixel=float(data["bits_per_pixel"]),
            bitstream_sha256=str(data["bitstream_sha256"]),
            decoded_sha256=str(data["decoded_sha256"]),
            mean={k: float(v) for k, v in data["metrics"].items()},
            per_frame={k: [float(x) for x in v] for k, v in data["per_frame"].items()},
            luma_correlation=(
                tuple(None if c is None else float(c) for c in data["luma_correlation"])
                if data.get("luma_correlation") is not None else None
            ),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "bytes": self.bytes,
            "bitrate_bps": self.bitrate_bps,
            "bits_per_pixel": self.bits_per_pixel,
            "bitstream_sha256": self.bitstream_sha256,
            "decoded_sha256": self.decoded_sha256,
            "metrics": self.mean,
            "per_frame": self.per_frame,
            "luma_correlation": None if self.luma_correlation is None else list(self.luma_correlation),
        }


def luma_correlation(source: Video, decoded: Video) -> tuple[float | None, ...]:
    """Per frame, the Pearson correlation of the decoded luma with the source's: near 1 for any
    codec that reproduces the picture, even coarsely; near 0 for frames that have nothing to do
    with the source (stored, synthesized). A constant decoded frame gives 0; a flat source frame
    (luma deviation under FLAT_LUMA_STD) gives None: nothing to reproduce."""
    out: list[float | None] = []
    for src, dec in zip(source.y, decoded.y, strict=True):
        s = src.astype(np.float64).ravel()
        d = dec.astype(np.float64).ravel()
        s -= s.mean()
        d -= d.mean()
        s_norm, d_norm = float(np.sqrt(s @ s)), float(np.sqrt(d @ d))
        if s_norm < FLAT_LUMA_STD * np.sqrt(s.size):
            out.append(None)
        elif d_norm == 0.0:
            out.append(0.0)
        else:
            out.append(float(np.clip((s @ d) / (s_norm * d_norm), -1.0, 1.0)))
    return tuple(out)


def measure(source: Video, bitstream: bytes, decoded: Video, *, metrics=SUITE_METRICS) -> Measurement:
    """Measure `bitstream` and its decode against `source` (which must have the same format)."""
    result = compute_metrics(source, decoded, metrics=metrics_for(source, tuple(metrics)))
    per_frame = {k: [float(x) for x in v] for k, v in result.per_frame.items()}
    return Measurement(
        bytes=len(bitstream),
        bitrate_bps=bitrate_bps(len(bitstream), source),
        bits_per_pixel=8.0 * len(bitstream) / (source.frames * source.width * source.height),
        bitstream_sha256=hashlib.sha256(bitstream).hexdigest(),
        decoded_sha256=decoded.sha256(),
        mean={k: float(v) for k, v in result.mean.items()},
        per_frame=per_frame,
        luma_correlation=luma_correlation(source, decoded),
    )
