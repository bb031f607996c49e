"""The suite: every candidate x clip x rate point, judged from a real sandboxed round trip.

Parametrized by the harness plugin (ids like `test_rate[dct_inter-bikes-r2]`). Each test is a
projection of one gate (harness/gates.py) that the session's `Judge` evaluates: it runs each
encode and decode once, measures the decoded frames against the source, and remembers. What a
test judged goes to the report as a fragment in the report's own shape (harness.report.fragment).

One mistake, one failure: a root cause (the contract; a rate point's round trip) fails its own
test; a test whose gate failed because of it is skipped "blocked by test_contract[NAME]: why".
Its gate is recorded failed all the same, so the report and adoption never read it as passed.
"""

from __future__ import annotations

import pytest

from harness.errors import ClipError
from harness.report import fragment


def _project(judge, record, gate, blocked_by=None, **parts) -> None:
    """Record what was judged with the gate's result; the test fails with the gate's message, or
    is skipped naming the root cause (`blocked_by`: (test id, its gate)) when that failed too."""
    record("results", **fragment(judge, candidate=gate.candidate, clip=gate.clip, gate=gate, **parts))
    if gate.passed:
        return
    if blocked_by is not None:
        test, root = blocked_by
        why = next((line for line in root.message.splitlines() if line.strip()), "failed")
        pytest.skip(f"blocked by {test}: {why[:300]}")
    pytest.fail(gate.message, pytrace=False)


def _root_cause(judge, candidate, clip=None, rungs=()):
    """(test id, failed gate) of the first root cause that failed: the contract, then the round
    trip at each of `rungs`; None when they passed."""
    contract = judge.gate("contract", candidate)
    if not contract.passed:
        return f"test_contract[{candidate}]", contract
    for rung in rungs:
        trip = judge.gate("round_trip", candidate, clip, rung)
        if not trip.passed:
            return f"test_round_trip[{candidate}-{clip}-r{rung}]", trip
    return None


def _usable(judge, clip) -> None:
    try:
        judge.source(clip)
    except ClipError as err:
        pytest.fail(f"clip {clip!r} cannot be used: {err}", pytrace=False)


def _point_test(judge, record, name, candidate, clip, rung) -> None:
    _usable(judge, clip)
    point = judge.point(candidate, clip, rung)
    rungs = () if name == "round_trip" else (rung,)
    blocked_by = _root_cause(judge, candidate, clip, rungs)
    _project(judge, record, judge.gate(name, candidate, clip, rung), blocked_by, point=point)


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
    blocked_by = _root_cause(judge, candidate, clip, range(judge.rung_count))
    _project(judge, record, gate, blocked_by, determinism=judge.determinism(candidate, clip))


def test_bd_rate(judge, candidate, clip, record):
    """BD-rate against each anchor on PSNR-YUV, SSIM and VMAF; gated against the rate anchor (x265)."""
    _usable(judge, clip)
    results, vs, _ = judge.bd_results(candidate, clip)
    blocked_by = _root_cause(judge, candidate, clip, range(judge.rung_count))
    gate = judge.gate("bd_rate", candidate, clip)
    _project(judge, record, gate, blocked_by, anchors=True, bd=(results, vs))
