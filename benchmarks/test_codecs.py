"""The suite: every candidate x clip x rate point, judged from a real sandboxed round trip.

Parametrized by the harness plugin (ids like `test_rate[dct_inter-bikes-r2]`). Each test is a
projection of one gate (harness/gates.py) that the session's `Judge` evaluates: it runs each
encode and decode once, measures the decoded frames against the source, and remembers. What a
test judged goes to the report as a fragment in the report's own shape (harness.report.fragment).
"""

from __future__ import annotations

import pytest

from harness.errors import ClipError
from harness.report import fragment


def _project(judge, record, gate, **parts) -> None:
    """Record what was judged with the gate's result; the test fails with the gate's message."""
    record("results", **fragment(judge, candidate=gate.candidate, clip=gate.clip, gate=gate, **parts))
    if not gate.passed:
        pytest.fail(gate.message, pytrace=False)


def _usable(judge, clip) -> None:
    try:
        judge.source(clip)
    except ClipError as err:
        pytest.fail(f"clip {clip!r} cannot be used: {err}", pytrace=False)


def _point_test(judge, record, name, candidate, clip, rung) -> None:
    _usable(judge, clip)
    point = judge.point(candidate, clip, rung)
    _project(judge, record, judge.gate(name, candidate, clip, rung), point=point)


def test_contract(judge, candidate, record):
    """The candidate imports in the sandbox and defines encode(video, target_bitrate) and decode(bitstream)."""
    _project(judge, record, judge.gate("contract", candidate), check=True)


def test_round_trip(judge, candidate, clip, rung, record):
    """decode(encode(clip)) gives uint8 4:2:0 planes of the source's size, frame count and rate."""
    _point_test(judge, record, "round_trip", candidate, clip, rung)


def test_rate(judge, candidate, clip, rung, record):
    """Measured bitrate 8 * len(bitstream) * fps / frames stays within max_overshoot x target."""
    _point_test(judge, record, "rate", candidate, clip, rung)


def test_quality(judge, candidate, clip, rung, record):
    """Decoded frames compared with the source clear the PSNR-Y floor (mean over frames)."""
    _point_test(judge, record, "quality", candidate, clip, rung)


def test_limits(judge, candidate, clip, rung, record):
    """Each sandboxed call stays inside the time and memory budget for the clip's size."""
    _point_test(judge, record, "limits", candidate, clip, rung)


def test_determinism(judge, candidate, clip, record):
    """At every rate point, encodes in separate processes give identical bytes and decodes identical frames."""
    _usable(judge, clip)
    gate = judge.gate("determinism", candidate, clip)
    _project(judge, record, gate, determinism=judge.determinism(candidate, clip))


def test_bd_rate(judge, candidate, clip, record):
    """BD-rate against each anchor on PSNR-YUV, SSIM and VMAF; gated against the rate anchor (x265)."""
    _usable(judge, clip)
    results, vs, _ = judge.bd_results(candidate, clip)
    _project(judge, record, judge.gate("bd_rate", candidate, clip), anchors=True, bd=(results, vs))
