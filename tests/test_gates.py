"""harness.gates: each gate's pass, and its failure with the text the test and adoption show."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.bdrate import BDResult, bd_rate
from harness.candidate import CandidateSource
from harness.config import load_suite_config
from harness.gates import (
    Gate,
    bd_rate_gate,
    contract_gate,
    determinism_gate,
    limits_gate,
    point_gates,
    quality_gate,
    rate_gate,
)
from harness.judge import DeterminismResult, PointResult, RatePoint
from harness.measure import Measurement
from harness.runner import Outcome
from harness.video import Video

CONFIG = load_suite_config(Path(__file__).resolve().parents[1] / "fixtures" / "suite.toml")
SOURCE = Video(np.zeros((10, 90, 160), np.uint8), np.zeros((10, 45, 80), np.uint8),
               np.zeros((10, 45, 80), np.uint8), Fraction(50))


def _outcome(stage: str, wall_s: float = 0.5, rss: int = 100 << 20) -> Outcome:
    return Outcome(ok=True, stage=stage, kind="ok", message="", wall_s=wall_s, peak_rss_bytes=rss)


def _point(bitrate: float = 100_000.0, psnr_y: float = 35.0, correlation=None, **outcomes) -> PointResult:
    m = Measurement(1000, bitrate, 0.1, "a" * 64, "b" * 64, {"psnr_y": psnr_y, "psnr_yuv": psnr_y}, {},
                    luma_correlation=correlation)
    fmt = {"width": 160, "height": 90, "frames": 10, "fps": "50", "chroma": [45, 80]}
    return PointResult(
        candidate="c", clip="park", point=RatePoint(1, 100_000.0, 0.1, 32),
        encode=outcomes.get("encode", _outcome("encode")), decode=outcomes.get("decode", _outcome("decode")),
        measurement=m, failure=None, decoded_format=fmt,
    )


def test_a_good_point_passes_every_point_gate():
    gates = point_gates(_point(), SOURCE, CONFIG)
    assert [g.passed for g in gates.values()] == [True] * 4
    assert {g.key for g in gates.values()} == {f"{n}/park/r1" for n in ("round_trip", "rate", "quality", "limits")}


def test_a_failed_point_fails_every_point_gate_with_its_reason():
    point = dataclasses.replace(_point(), measurement=None, failure="decode failed (exception): boom",
                                failure_details="decode failed (exception): boom\nTraceback ...")
    for gate in point_gates(point, SOURCE, CONFIG).values():
        assert not gate.passed
        assert gate.message == "c on park at r1: decode failed (exception): boom\nTraceback ..."


def test_rate_quality_and_limits_messages():
    over = rate_gate(_point(bitrate=120_000.0), CONFIG)
    assert not over.passed and over.message == "120.0 kbps is 1.20 x the target 100.0 kbps (limit 1.10 x)"
    assert rate_gate(_point(bitrate=110_000.0), CONFIG).passed  # exactly at the limit passes
    # Wall time is not judged (a loaded machine must not change a verdict): the call's own CPU is.
    assert limits_gate(_point(encode=_outcome("encode", wall_s=1e4)), SOURCE, CONFIG).passed
    budget = CONFIG.encode_cpu_s_per_mpixel * 0.144
    busy = dataclasses.replace(_outcome("encode"), call_cpu_s=budget + 0.01, cpu_s=budget + 0.2)
    slow = limits_gate(_point(encode=busy), SOURCE, CONFIG)
    assert not slow.passed and slow.message == (
        f"encode used {budget + 0.01:.2f} s of CPU, over the budget of {budget:.2f} s "
        f"({CONFIG.encode_cpu_s_per_mpixel:g} s per Mpixel-frame x 0.144 Mpixel-frames (160x90 x 10 frames))"
    )
    fat = limits_gate(_point(decode=_outcome("decode", rss=CONFIG.peak_rss_bytes + (1 << 20))), SOURCE, CONFIG)
    assert not fat.passed and fat.message == "decode peaked at 4097 MiB, over 4096 MiB"


def test_quality_gate_absolute_floor_and_relative_floor_messages():
    floor, below = CONFIG.min_psnr_y, CONFIG.max_psnr_y_below_anchor_db
    assert quality_gate(_point(psnr_y=floor), CONFIG).passed  # at the floor passes
    low = quality_gate(_point(psnr_y=floor - 1.0), CONFIG)
    assert not low.passed and low.message == f"PSNR-Y {floor - 1.0:.2f} dB at r1 is under the absolute floor of {floor:.1f} dB"
    assert "reproduce" not in low.message  # a low PSNR alone is not called a fake decoder
    # Far under x265 at the same rate point: the candidate's figure, x265's, the difference.
    weak = quality_gate(_point(psnr_y=22.61), CONFIG, anchor_psnr_y=22.61 + below + 0.5)
    assert not weak.passed and weak.message == (
        f"PSNR-Y 22.61 dB at r1; x265 reaches {22.61 + below + 0.5:.2f} dB at the same rate point "
        f"(-{below + 0.5:.2f} dB), more than {below:g} dB below"
    )
    # An honest weak codec: 6 dB under x265 passes (the BD-rate says how weak it is).
    assert quality_gate(_point(psnr_y=22.61), CONFIG, anchor_psnr_y=28.40).passed
    assert quality_gate(_point(psnr_y=22.61), CONFIG, anchor_psnr_y=22.61 + below).passed  # exactly N below passes
    both = quality_gate(_point(psnr_y=floor - 2.0), CONFIG, anchor_psnr_y=floor + below)
    assert both.message == (
        f"PSNR-Y {floor - 2.0:.2f} dB at r1 is under the absolute floor of {floor:.1f} dB; x265 reaches "
        f"{floor + below:.2f} dB at the same rate point (-{below + 2.0:.2f} dB), more than {below:g} dB below"
    )


def test_quality_gate_says_does_not_reproduce_only_when_the_correlation_says_so():
    least = CONFIG.min_luma_correlation
    grey = quality_gate(_point(psnr_y=30.0, correlation=(0.0, 0.04, None)), CONFIG)
    assert not grey.passed and grey.message == (
        f"PSNR-Y 30.00 dB at r1; the decoded frames do not reproduce the source (luma correlation 0.02, under {least:.2f})"
    )
    fake = quality_gate(
        _point(psnr_y=12.0, correlation=(0.0, 0.0)), CONFIG, anchor_psnr_y=13.0 + CONFIG.max_psnr_y_below_anchor_db
    )
    assert fake.message.startswith(f"PSNR-Y 12.00 dB at r1 is under the absolute floor of {CONFIG.min_psnr_y:.1f} dB; x265")
    assert fake.message.endswith(f"; the decoded frames do not reproduce the source (luma correlation 0.00, under {least:.2f})")
    # Coarse but faithful: correlated with the source, however low its PSNR against x265's.
    assert quality_gate(_point(psnr_y=22.0, correlation=(0.93, 0.91)), CONFIG, anchor_psnr_y=30.0).passed
    # Every frame flat in the source, or measured before correlations were recorded: not claimed.
    assert quality_gate(_point(psnr_y=30.0, correlation=(None, None)), CONFIG).passed
    assert quality_gate(_point(psnr_y=30.0, correlation=None), CONFIG).passed


def test_contract_gate(tmp_path):
    path = tmp_path / "c.py"
    path.write_text('"""A codec."""\n')
    source = CandidateSource(name="c", path=path, is_package=False, sha256="0" * 64, size_bytes=100,
                             summary="A codec.", problem=None)
    assert contract_gate(source, Outcome(ok=True, stage="check", kind="ok", message=""), CONFIG).passed
    failed = contract_gate(source, Outcome(ok=False, stage="check", kind="contract", message="no decode"), CONFIG)
    assert not failed.passed and failed.message.startswith("check failed (contract): no decode")
    big = dataclasses.replace(source, size_bytes=CONFIG.max_candidate_bytes + 1)
    too_big = contract_gate(big, Outcome(ok=True, stage="check", kind="ok", message=""), CONFIG)
    assert not too_big.passed and "over the cap" in too_big.message


def test_determinism_and_bd_rate_gates():
    assert determinism_gate(DeterminismResult("c", "park", None, "same")).passed
    det = determinism_gate(DeterminismResult("c", "park", "r0: two encodes differ", "threads=2"))
    assert not det.passed and det.message == "c on park: r0: two encodes differ\nthreads=2" and det.key == "determinism/park"

    def bd(value, comparable=True):
        return BDResult(value, None, 1.0, (30.0, 40.0), comparable, None if comparable else "no overlap", "pchip")

    ok = bd_rate_gate("c", "park", {"x265": {"psnr_yuv": bd(12.0)}}, CONFIG)
    assert ok.passed
    strict = dataclasses.replace(CONFIG, max_bd_rate_vs_anchor=10.0)
    over = bd_rate_gate("c", "park", {"x265": {"psnr_yuv": bd(12.0)}}, strict)
    assert not over.passed and "is over the gate of +10 %" in over.message
    apart = bd_rate_gate("c", "park", {"x265": {"psnr_yuv": bd(None, False)}}, CONFIG)
    assert not apart.passed and apart.message == "BD-rate against x265 not comparable: no overlap"
    gone = dataclasses.replace(bd(None, False), warning="not comparable: quality ranges do not overlap")
    apart_twice = bd_rate_gate("c", "park", {"x265": {"psnr_yuv": gone}}, CONFIG)
    assert apart_twice.message == "BD-rate against x265 not comparable: quality ranges do not overlap"


def test_bd_rate_gate_passes_a_clip_without_shared_qualities_when_the_curves_still_compare():
    # The real curves: x265-like, and a weak codec 20 dB under it at the same rates.
    line = [(10.0**lr, 30.0 + 4.0 * (lr - 2)) for lr in (2, 3, 4, 5)]
    worse = bd_rate(line, [(r, q - 20.0) for r, q in line])
    assert worse.bd_rate is None and worse.dominance == "worse"
    assert bd_rate_gate("c", "park", {"x265": {"psnr_yuv": worse}}, CONFIG).passed
    # BD-quality alone (no verdict at every point) is enough to compare.
    mixed = bd_rate(line, [(10.0, 5.0)] + [(r, q - 20.0) for r, q in line[:3]])
    assert mixed.dominance is None and mixed.bd_quality is not None
    assert bd_rate_gate("c", "park", {"x265": {"psnr_yuv": mixed}}, CONFIG).passed
    # Cheaper and worse with no rate in common: nothing compares; the gate fails and says why.
    apart = bd_rate(line, [(1.0, 10.0), (10.0, 12.0)])
    gate = bd_rate_gate("c", "park", {"x265": {"psnr_yuv": apart}}, CONFIG)
    assert not gate.passed and gate.message.startswith("BD-rate against x265 not comparable: quality ranges do not overlap")
    assert gate.message.endswith("neither curve is above the other")
    # A curve whose quality falls with rate is the codec's to fix: it fails as before.
    falling = bd_rate(line, [(100.0, 12.0), (1000.0, 11.0)])
    assert not bd_rate_gate("c", "park", {"x265": {"psnr_yuv": falling}}, CONFIG).passed
    error = bd_rate_gate("c", "park", None, CONFIG, error="no rate-distortion curve")
    assert error.message == "c on park: no rate-distortion curve"


def test_gate_json_round_trip_and_unknown_names():
    gate = Gate("rate", "c", False, "too many bits", "park", "r2")
    assert Gate.from_json(gate.to_json()) == gate
    with pytest.raises(ValueError, match="unknown gate 'speed'"):
        Gate.from_json({**gate.to_json(), "gate": "speed"})
