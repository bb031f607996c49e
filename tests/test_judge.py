"""harness.judge.Judge: each sandboxed call made once and remembered, rate points, the result cache, determinism, gates.

A real Judge (tests/conftest.py `make_judge`) runs real candidates in bubblewrap on a small real
clip (160x90, 3 frames): the lossless control tests/candidates_ok/zlib_lossless.py, and
tests/hostile/noise_low_rates.py, deterministic only at the middle rate point.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from harness.anchors import load_anchor_specs
from harness.judge import Judge
from tests.conftest import REPO, SHARED_FIXTURES, make_judge, suite_config

pytestmark = pytest.mark.sandbox

CLIP_FILE = SHARED_FIXTURES / "svt_park_joy_160x90_10f.y4m"
CLIP = "svt_park_joy_160x90_10f"
ZLIB = REPO / "tests" / "candidates_ok" / "zlib_lossless.py"
NOISE = REPO / "tests" / "hostile" / "noise_low_rates.py"
NAME = "zlib_lossless"


class Counting:
    """A Runner that counts its sandboxed calls (a Runner is frozen: it is wrapped, not patched)."""

    def __init__(self, runner) -> None:
        self._runner = runner
        self.calls = {"check": 0, "encode": 0, "decode": 0}

    def __getattr__(self, name):
        attr = getattr(self._runner, name)
        if name in self.calls:
            def counted(*args, **kwargs):
                self.calls[name] += 1
                return attr(*args, **kwargs)
            return counted
        return attr


def counted(judge: Judge) -> Counting:
    judge.runner = Counting(judge.runner)
    return judge.runner


@pytest.fixture
def clip(shared_fixtures):
    return CLIP_FILE


def test_each_call_is_made_once_and_remembered(clip, tmp_path):
    judge = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=tmp_path / "cache")
    calls = counted(judge)
    first = judge.point(NAME, CLIP, 1)
    assert first.ok and not first.cached
    assert calls.calls == {"check": 1, "encode": 1, "decode": 1}
    assert judge.point(NAME, CLIP, 1) is first
    assert judge.check(NAME) is judge.check(NAME)
    assert judge.gate("rate", NAME, CLIP, 1) is judge.gate("rate", NAME, CLIP, 1)
    assert calls.calls == {"check": 1, "encode": 1, "decode": 1}
    assert first.measurement.mean["psnr_y"] == 100.0 and first.measurement.bytes == len(first.bitstream)
    assert judge.source(CLIP).video.frames == 3


def test_ladder_rate_points_are_bits_per_pixel_of_the_clip(clip, tmp_path):
    judge = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=tmp_path / "cache")
    video = judge.source(CLIP).video
    points = judge.rate_points(CLIP)
    assert [p.id for p in points] == ["r0", "r1", "r2", "r3"] and judge.rung_count == 4
    assert [p.bits_per_pixel for p in points] == [0.02, 0.05, 0.1, 0.2]
    assert [p.target_bps for p in points] == pytest.approx([bpp * 160 * 90 * float(video.fps) for bpp in (0.02, 0.05, 0.1, 0.2)])
    assert all(p.anchor_qp is None for p in points)


def test_anchor_rate_points_are_the_anchors_bitrates_and_the_anchor_is_cached(clip, tmp_path):
    specs = load_anchor_specs(REPO / "fixtures" / "anchors.toml")
    config = suite_config(rate_mode="anchor", rate_anchor="x265", compare_anchors=("x265",))
    judge = make_judge(
        candidates=[ZLIB], clips=[clip], config=config, anchors={"x265": specs["x265"]}, cache_dir=tmp_path / "c"
    )
    curve = judge.anchor_curve(CLIP, "x265")
    assert judge.anchor_encodes == len(specs["x265"].qps) == 4
    points = judge.rate_points(CLIP)
    by_rate = sorted(curve, key=lambda p: p.measurement.bitrate_bps)
    assert [p.target_bps for p in points] == [a.measurement.bitrate_bps for a in by_rate]
    assert [p.anchor_qp for p in points] == [a.qp for a in by_rate] == sorted(specs["x265"].qps, reverse=True)
    assert [p.target_bps for p in points] == sorted(p.target_bps for p in points)
    assert all(0 < a.measurement.mean["psnr_y"] < 100 for a in curve)

    again = make_judge(
        candidates=[ZLIB], clips=[clip], config=config, anchors={"x265": specs["x265"]}, cache_dir=tmp_path / "c"
    )
    assert [p.target_bps for p in again.rate_points(CLIP)] == [p.target_bps for p in points]
    assert again.anchor_encodes == 0 and all(a.cached for a in again.anchor_curve(CLIP, "x265"))

    # BD-rate against the anchor: a lossless codec's flat curve is gated, with the reason
    gate = judge.gate("bd_rate", NAME, CLIP)
    assert not gate.passed and gate.clip == CLIP and gate.message


def test_cached_results_are_reused_across_judges_with_the_same_cache(clip, tmp_path):
    cache = tmp_path / "cache"
    first = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=cache)
    det = first.determinism(NAME, CLIP)
    assert det.failure is None and "(cached)" not in det.details
    fresh = {r: first.point(NAME, CLIP, r) for r in range(4)}

    second = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=cache)
    calls = counted(second)
    for rung, old in fresh.items():
        point = second.point(NAME, CLIP, rung)
        assert point.cached and point.bitstream == old.bitstream
        assert point.measurement == old.measurement
    assert second.determinism(NAME, CLIP).details.endswith("(cached)")
    assert calls.calls["encode"] == calls.calls["decode"] == 0


def test_cached_results_are_refused_with_other_limits(clip, tmp_path):
    cache = tmp_path / "cache"
    first = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=cache)
    assert first.point(NAME, CLIP, 0).ok
    limits = dataclasses.replace(first.runner.limits, wall_s=first.runner.limits.wall_s + 1)
    other = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=cache, limits=limits)
    calls = counted(other)
    point = other.point(NAME, CLIP, 0)
    assert point.ok and not point.cached and calls.calls["encode"] == 1
    # ... and with other frames of the clip
    longer = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=cache, frames=4)
    assert not longer.point(NAME, CLIP, 0).cached


def test_cached_results_are_refused_for_another_source(clip, tmp_path):
    cache = tmp_path / "cache"
    first = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=cache)
    assert first.point(NAME, CLIP, 0).ok
    changed = tmp_path / "other" / "zlib_lossless.py"
    changed.parent.mkdir()
    shutil.copy(ZLIB, changed)
    changed.write_text(changed.read_text(encoding="utf-8") + "\n# one more line\n", encoding="utf-8")
    other = make_judge(candidates=[changed], clips=[clip], cache_dir=cache)
    assert other.candidates[NAME].sha256 != first.candidates[NAME].sha256
    calls = counted(other)
    point = other.point(NAME, CLIP, 0)
    assert point.ok and not point.cached and calls.calls["encode"] == 1
    assert point.bitstream == first.point(NAME, CLIP, 0).bitstream  # same codec, judged afresh


def test_determinism_is_checked_at_every_rate_point(clip, tmp_path):
    judge = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=tmp_path / "cache")
    calls = counted(judge)
    result = judge.determinism(NAME, CLIP)
    assert result.failure is None
    assert result.details == "at each of 4 rate points: 2 encodes and 2 decodes identical"
    # 4 first encodes and decodes, then a repeat of each at every point
    assert calls.calls == {"check": 1, "encode": 8, "decode": 8}
    assert judge.determinism(NAME, CLIP) is result and calls.calls["encode"] == 8
    assert judge.gate("determinism", NAME, CLIP).passed


def test_nondeterminism_away_from_the_middle_rate_point_is_caught(clip, tmp_path):
    judge = make_judge(candidates=[NOISE], clips=[clip], cache_dir=tmp_path / "cache")
    name = "noise_low_rates"
    middle = judge.determinism_rung(CLIP)
    assert middle == 2 and judge.rate_points(CLIP)[middle].bits_per_pixel >= 0.07  # the noise-free point
    result = judge.determinism(name, CLIP)
    assert result.failure is not None
    assert result.failure.startswith("r0: two encodes of the same input gave different bytes"), result.failure
    assert "first difference at byte" in result.failure
    gate = judge.gate("determinism", name, CLIP)
    assert not gate.passed and "r0: two encodes" in gate.message
    # a failure is not cached: another Judge on the same cache checks again and fails again
    again = make_judge(candidates=[NOISE], clips=[clip], cache_dir=tmp_path / "cache")
    assert again.determinism(name, CLIP).failure.startswith("r0: two encodes")


def test_gates_are_recorded_once_in_order(clip, tmp_path):
    judge = make_judge(candidates=[ZLIB], clips=[clip], cache_dir=tmp_path / "cache")
    assert judge.gates == []
    contract = judge.gate("contract", NAME)
    rate = judge.gate("rate", NAME, CLIP, 0)
    quality = judge.gate("quality", NAME, CLIP, 0)
    round_trip = judge.gate("round_trip", NAME, CLIP, 0)
    judge.gate("rate", NAME, CLIP, 0)  # asked again: not recorded twice
    assert judge.gates == [contract, rate, quality, round_trip]
    assert [g.key for g in judge.gates] == ["contract", f"rate/{CLIP}/r0", f"quality/{CLIP}/r0", f"round_trip/{CLIP}/r0"]
    assert contract.passed and quality.passed and round_trip.passed
    assert not rate.passed and rate.rung == "r0" and rate.clip == CLIP
    got = judge.point(NAME, CLIP, 0).measurement.bitrate_bps
    assert f"{got / 1000:.1f} kbps is" in rate.message and "x the target" in rate.message
    with pytest.raises(ValueError, match="unknown gate"):
        judge.gate("speed", NAME, CLIP)
