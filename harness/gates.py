"""The suite's policy: each gate a function from judged results to a pass or a failure with its text.

The pytest tests in `benchmarks/test_codecs.py` are projections of these results (one test per
gate and candidate x clip x rate point), the Judge records every gate it evaluates in the run's
results, adoption reads those records (never pytest test names), and the hostile corpus in
tests/ judges with the same functions. A threshold lives in fixtures/suite.toml, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness.bdrate import BDResult
from harness.candidate import CandidateSource
from harness.config import SuiteConfig
from harness.runner import Outcome
from harness.video import Video

__all__ = [
    "GATE_NAMES",
    "Gate",
    "GateName",
    "bd_rate_gate",
    "contract_gate",
    "determinism_gate",
    "limits_gate",
    "point_gate",
    "point_gates",
    "quality_gate",
    "rate_gate",
    "round_trip_gate",
]

GateName = Literal["contract", "round_trip", "rate", "quality", "limits", "determinism", "bd_rate"]
GATE_NAMES: tuple[GateName, ...] = GateName.__args__
# Gates judged once per candidate x clip x rate point; the others once per candidate x clip
# (determinism, bd_rate) or once per candidate (contract).
POINT_GATES: tuple[GateName, ...] = ("round_trip", "rate", "quality", "limits")
CLIP_GATES: tuple[GateName, ...] = ("determinism", "bd_rate")


@dataclass(frozen=True)
class Gate:
    """One gate's result for one candidate (and clip, and rate point where it applies)."""

    gate: GateName
    candidate: str
    passed: bool
    message: str = ""  # why it failed, as the test prints it; empty when passed
    clip: str | None = None
    rung: str | None = None

    @property
    def key(self) -> str:
        return "/".join(p for p in (self.gate, self.clip, self.rung) if p)

    def to_json(self) -> dict[str, object]:
        return {
            "gate": self.gate, "candidate": self.candidate, "clip": self.clip, "rung": self.rung,
            "passed": self.passed, "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Gate:
        if data.get("gate") not in GATE_NAMES:
            raise ValueError(f"unknown gate {data.get('gate')!r}; known: {', '.join(GATE_NAMES)}")
        return cls(
            gate=data["gate"], candidate=str(data["candidate"]), passed=bool(data["passed"]),
            message=str(data.get("message") or ""), clip=data.get("clip"), rung=data.get("rung"),
        )


def _passed(gate: GateName, candidate: str, clip: str | None = None, rung: str | None = None) -> Gate:
    return Gate(gate, candidate, True, "", clip, rung)


def _failed(gate: GateName, candidate: str, message: str, clip: str | None = None, rung: str | None = None) -> Gate:
    return Gate(gate, candidate, False, message, clip, rung)


def contract_gate(source: CandidateSource, check: Outcome, config: SuiteConfig) -> Gate:
    """The module imports in the sandbox, has the contract's shape, and ships no more than the cap."""
    if not check.ok:
        return _failed("contract", source.name, check.details())
    size, cap = source.size_bytes, config.max_candidate_bytes
    if size > cap:
        return _failed(
            "contract", source.name,
            f"{source.name} ships {size} bytes of source and data, over the cap of {cap}: "
            "a codec may not carry its test material",
        )
    return _passed("contract", source.name)


def _point_failure(gate: GateName, point) -> Gate | None:
    """A rate point without a measurement fails every point gate with the same reason."""
    if point.ok:
        return None
    message = f"{point.candidate} on {point.clip} at {point.point.id}: {point.failure_details}"
    return _failed(gate, point.candidate, message, point.clip, point.point.id)


def round_trip_gate(point, source: Video) -> Gate:
    """decode(encode(clip)) has the source's size, frame count and rate."""
    failed = _point_failure("round_trip", point)
    if failed:
        return failed
    fmt = point.decoded_format
    got = (fmt["width"], fmt["height"], fmt["frames"], fmt["fps"])
    want = (source.width, source.height, source.frames, str(source.fps))
    if got != want:
        return _failed(
            "round_trip", point.candidate, f"decoded {got[0]}x{got[1]}, {got[2]} frames at {got[3]} fps; "
            f"the source is {want[0]}x{want[1]}, {want[2]} frames at {want[3]} fps", point.clip, point.point.id,
        )
    return _passed("round_trip", point.candidate, point.clip, point.point.id)


def rate_gate(point, config: SuiteConfig) -> Gate:
    """The measured bitrate stays within max_overshoot x the target."""
    failed = _point_failure("rate", point)
    if failed:
        return failed
    target = point.point.target_bps
    got = point.measurement.bitrate_bps
    if got > config.max_overshoot * target:
        return _failed(
            "rate", point.candidate,
            f"{got / 1000:.1f} kbps is {got / target:.2f} x the target "
            f"{target / 1000:.1f} kbps (limit {config.max_overshoot:.2f} x)",
            point.clip, point.point.id,
        )
    return _passed("rate", point.candidate, point.clip, point.point.id)


def quality_gate(point, config: SuiteConfig, anchor_psnr_y: float | None = None) -> Gate:
    """The decoded frames reproduce the source: three checks, each failing on its own.

    PSNR-Y (mean over frames) at least the absolute floor `min_psnr_y`; at most
    `max_psnr_y_below_anchor_db` under the rate anchor's PSNR-Y at the same rate point
    (`anchor_psnr_y`; None in "ladder" rate mode: not checked); the decoded luma's correlation
    with the source (mean over frames) at least `min_luma_correlation` (not checked for a
    measurement made before it was recorded). Only that last check says "does not reproduce
    the source": a weak codec is never told it is a fake."""
    failed = _point_failure("quality", point)
    if failed:
        return failed
    psnr_y = point.measurement.mean["psnr_y"]
    head = f"PSNR-Y {psnr_y:.2f} dB at {point.point.id}"
    clauses = []
    if psnr_y < config.min_psnr_y:
        head += f" is under the absolute floor of {config.min_psnr_y:.1f} dB"
    if anchor_psnr_y is not None and psnr_y < anchor_psnr_y - config.max_psnr_y_below_anchor_db:
        clauses.append(
            f"{config.rate_anchor} reaches {anchor_psnr_y:.2f} dB at the same rate point "
            f"({psnr_y - anchor_psnr_y:+.2f} dB), more than {config.max_psnr_y_below_anchor_db:g} dB below"
        )
    correlation = point.measurement.mean_luma_correlation
    if correlation is not None and correlation < config.min_luma_correlation:
        clauses.append(
            f"the decoded frames do not reproduce the source (luma correlation {correlation:.2f}, "
            f"under {config.min_luma_correlation:.2f})"
        )
    if clauses or psnr_y < config.min_psnr_y:
        return _failed("quality", point.candidate, "; ".join([head, *clauses]), point.clip, point.point.id)
    return _passed("quality", point.candidate, point.clip, point.point.id)


def limits_gate(point, source: Video, config: SuiteConfig) -> Gate:
    """Each call's own CPU time, its import time and its peak memory stay inside the budget.

    The CPU budget scales with the clip (seconds per megapixel-frame, luma); the import has its own
    allowance; wall time is not judged here (it only kills, at `limits.wall_s`): a loaded machine
    must not change a verdict."""
    failed = _point_failure("limits", point)
    if failed:
        return failed
    for stage, outcome in (("encode", point.encode), ("decode", point.decode)):
        message = _call_over_limits(stage, outcome, source, config)
        if message:
            return _failed("limits", point.candidate, message, point.clip, point.point.id)
    return _passed("limits", point.candidate, point.clip, point.point.id)


def _call_over_limits(stage: str, outcome: Outcome, source: Video, config: SuiteConfig) -> str | None:
    """Why one sandboxed call is over its limits, or None."""
    mpix = source.width * source.height * source.frames / 1e6
    rate = config.encode_cpu_s_per_mpixel if stage == "encode" else config.decode_cpu_s_per_mpixel
    budget = rate * mpix
    how = (
        f"{rate:g} s per Mpixel-frame x {mpix:.3f} Mpixel-frames "
        f"({source.width}x{source.height} x {source.frames} frames)"
    )
    if outcome.import_s is not None and outcome.import_s > config.import_allowance_s:
        return f"{stage}: import took {outcome.import_s:.1f} s, over the import allowance of {config.import_allowance_s:g} s"
    if outcome.call_cpu_s is not None and outcome.call_cpu_s > budget:
        return f"{stage} used {outcome.call_cpu_s:.2f} s of CPU, over the budget of {budget:.2f} s ({how})"
    # The call's own figure comes from inside the sandbox; the whole process's CPU (from wait4 in
    # the parent) cannot be understated: start-up, import and call together stay within the call's
    # budget plus the import allowance.
    if outcome.cpu_s > budget + config.import_allowance_s:
        return (
            f"{stage} used {outcome.cpu_s:.2f} s of CPU in all (start-up, import and call; the call itself "
            f"{'unknown' if outcome.call_cpu_s is None else f'{outcome.call_cpu_s:.2f} s'}), over the call's budget "
            f"plus the import allowance, {budget:.2f} + {config.import_allowance_s:g} s ({how})"
        )
    if outcome.peak_rss_bytes > config.peak_rss_bytes:
        return f"{stage} peaked at {outcome.peak_rss_bytes >> 20} MiB, over {config.peak_rss_bytes >> 20} MiB"
    return None


def point_gate(
    name: GateName, point, source: Video, config: SuiteConfig, *, anchor_psnr_y: float | None = None
) -> Gate:
    """One per-point gate (round_trip, rate, quality or limits) of one rate point; `anchor_psnr_y`:
    the rate anchor's PSNR-Y at the same rate point, for the quality gate."""
    if name == "round_trip":
        return round_trip_gate(point, source)
    if name == "limits":
        return limits_gate(point, source, config)
    if name == "quality":
        return quality_gate(point, config, anchor_psnr_y)
    return rate_gate(point, config)


def point_gates(
    point, source: Video, config: SuiteConfig, *, anchor_psnr_y: float | None = None
) -> dict[GateName, Gate]:
    """Every per-point gate of one rate point."""
    return {name: point_gate(name, point, source, config, anchor_psnr_y=anchor_psnr_y) for name in POINT_GATES}


def determinism_gate(result) -> Gate:
    """Repeated encodes and decodes (other processes, thread counts, hash seeds) gave the same bytes."""
    if result.failure:
        return _failed(
            "determinism", result.candidate, f"{result.candidate} on {result.clip}: {result.failure}\n{result.details}",
            result.clip,
        )
    return _passed("determinism", result.candidate, result.clip)


def bd_rate_gate(
    candidate: str, clip: str, results: Mapping[str, Mapping[str, BDResult]] | None, config: SuiteConfig,
    *, error: str | None = None,
) -> Gate:
    """BD-rate against the rate anchor on the primary metric: at most the gate where there is one.

    A clip whose quality range does not overlap the anchor's has no BD-rate; that is a fact about
    the codec, not a demand it can meet (the rates are the anchor's), so the gate passes it when
    the curves still compare: BD-quality over the rates both cover, or the candidate worse (or
    better) than the anchor at every rate point. That verdict is in the clip's BD result (report
    `bd`); the clip is left out of the overall BD-rate, which states its coverage, and adoption
    (adoption.toml require_all_clips_comparable) still requires every clip comparable. It fails
    when the curve itself is unusable (quality not rising with rate, two targets given the same
    bitstream) or when the curves share neither qualities nor rates and neither is above the other.
    """
    if error is not None:
        return _failed("bd_rate", candidate, f"{candidate} on {clip}: {error}", clip)
    anchor, metric = config.rate_anchor, config.bd_metrics[0]
    primary = (results or {}).get(anchor, {}).get(metric)
    if primary is None:
        return _failed("bd_rate", candidate, f"{metric} was not measured on {clip}", clip)
    if not primary.comparable:
        if primary.dominance is not None or primary.bd_quality is not None:
            return _passed("bd_rate", candidate, clip)
        why = primary.warning or "no BD-rate"
        why = why if why.startswith("not comparable") else f"not comparable: {why}"
        return _failed("bd_rate", candidate, f"BD-rate against {anchor} {why}", clip)
    if primary.bd_rate > config.max_bd_rate_vs_anchor:
        return _failed(
            "bd_rate", candidate,
            f"BD-rate {primary.describe()} against {anchor} on {metric} "
            f"is over the gate of +{config.max_bd_rate_vs_anchor:g} %",
            clip,
        )
    return _passed("bd_rate", candidate, clip)
