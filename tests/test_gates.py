"""harness.gates: each gate's pass, and its failure with the text the test and adoption show."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.bdrate import BDResult
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


def _point(bitrate: float = 100_000.0, psnr_y: float = 35.0, **outcomes) -> PointResult:
    m = Measurement(1000, bitrate, 0.1, "a" * 64, "b" * 64, {"psnr_y": psnr_y, "psnr_yuv": psnr_y}, {})
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
    low = quality_gate(_point(psnr_y=20.0), CONFIG)
    assert not low.passed and low.message.startswith("PSNR-Y 20.00 dB is under the floor of 24.0 dB")
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
    error = bd_rate_gate("c", "park", None, CONFIG, error="no rate-distortion curve")
    assert error.message == "c on park: no rate-distortion curve"


def test_gate_json_round_trip_and_unknown_names():
    gate = Gate("rate", "c", False, "too many bits", "park", "r2")
    assert Gate.from_json(gate.to_json()) == gate
    with pytest.raises(ValueError, match="unknown gate 'speed'"):
        Gate.from_json({**gate.to_json(), "gate": "speed"})
