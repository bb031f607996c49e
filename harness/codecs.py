"""One small interface for every codec the judge measures: a sandboxed candidate or an anchor encoder.

The Judge has one point path (`Judge._measure_point`): encode the source at a rate point, decode
the bitstream, check the decoded format, measure. What differs is only how a codec encodes and
decodes, which lives here: a `CandidateCodec` runs the candidate's module in a fresh sandboxed
process per call (harness/runner.py); an `AnchorCodec` runs x265 / x264 / SVT-AV1 through PyAV
at the rate point's QP (harness/anchors). Both report each call as an `Outcome` (stage, kind,
message, wall and CPU time), so a failure of either reads the same.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Protocol

from harness.anchors import AnchorSpec, decode_anchor, encode_anchor
from harness.candidate import CandidateSource
from harness.errors import HarnessError
from harness.runner import Outcome, Runner
from harness.sealed import SealedFile
from harness.video import Video

__all__ = ["AnchorCodec", "CandidateCodec", "Codec"]


class Codec(Protocol):
    """What the judge needs of a codec: its name, an encode at a rate point and a decode."""

    name: str

    def encode(self, source: Video, sealed: SealedFile, target_bps: float, qp: int | None) -> tuple[Outcome, bytes | None]:
        """The bitstream of `source` at the rate point (a target bitrate, or an anchor's QP)."""
        ...

    def decode(self, bitstream: bytes, like: Video) -> tuple[Outcome, Video | None]:
        """The decoded clip; `like` is the source (an anchor's raw stream carries no rate or crop)."""
        ...


@dataclass(frozen=True)
class CandidateCodec:
    """A candidate module, each call in a fresh sandboxed process that sees only its input."""

    source: CandidateSource
    runner: Runner

    @property
    def name(self) -> str:
        return self.source.name

    def encode(self, source: Video, sealed: SealedFile, target_bps: float, qp: int | None) -> tuple[Outcome, bytes | None]:
        return self.runner.encode(self.source, sealed, target_bps, mpixel_frames=mpixel_frames(source))

    def decode(self, bitstream: bytes, like: Video) -> tuple[Outcome, Video | None]:
        return self.runner.decode(self.source, bitstream, mpixel_frames=mpixel_frames(like))


def mpixel_frames(video: Video) -> float:
    """A clip's size as the budgets count it: luma width x height x frames / 1e6."""
    return video.width * video.height * video.frames / 1e6


@dataclass(frozen=True)
class AnchorCodec:
    """An anchor encoder through PyAV at a fixed QP, its settings pinned and verified, decoded by a real decoder."""

    name: str
    spec: AnchorSpec

    def encode(self, source: Video, sealed: SealedFile, target_bps: float, qp: int | None) -> tuple[Outcome, bytes | None]:
        if qp is None:
            raise HarnessError(f"the anchor {self.name} encodes at a QP; the rate point has none")
        return _timed("encode", lambda: encode_anchor(source, self.spec, qp))

    def decode(self, bitstream: bytes, like: Video) -> tuple[Outcome, Video | None]:
        return _timed("decode", lambda: decode_anchor(bitstream, self.spec, like=like))


def _timed(stage: str, call) -> tuple[Outcome, object]:
    """Run an in-process call, timed (wall and CPU) like a sandboxed one; a HarnessError is its failure."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = call()
    except HarnessError as err:
        outcome = Outcome(
            ok=False, stage=stage, kind="exception", message=f"{type(err).__name__}: {err}",
            wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
            extra={"traceback": traceback.format_exc()},
        )
        return outcome, None
    wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return Outcome(ok=True, stage=stage, kind="ok", message="", wall_s=wall_s, cpu_s=cpu_s, call_s=wall_s), result
