"""harness.compare.compare_reports: what got better or worse between two report documents, with the right sign."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.compare import THRESHOLDS, compare_reports
from harness.results import RunResults

SAMPLE = Path(__file__).parent / "data" / "report_small.json"
BUS, PARK = "derf_bus_352x288_17f", "svt_park_joy_160x90_10f"
PSNR = "BD-rate vs x265, PSNR-YUV"


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def shift_bd(doc: dict, cand: str, clip: str, delta: float, metric: str = "psnr_yuv") -> float:
    """Move a candidate's BD-rate vs x265 on one clip by `delta` points; returns the old value."""
    result = doc["candidates"][cand]["bd"][clip]["x265"][metric]
    old = result["bd_rate"]
    result["bd_rate"] = old + delta
    return old


def by_what(cmp) -> dict:
    return {(c.candidate, c.clip, c.what): c for c in cmp.changes}


def test_an_identical_pair_reports_no_change(sample):
    cmp = compare_reports(sample, copy.deepcopy(sample))
    assert cmp.changes == [] and cmp.warnings == [] and cmp.notes == []
    assert cmp.new_candidates == [] and cmp.removed_candidates == [] and cmp.comparable
    assert "no change in BD-rate, rate points or test outcomes" in cmp.to_text()


def test_a_bd_rate_change_per_clip_has_its_direction_and_sign(sample):
    new = copy.deepcopy(sample)
    bus_was = shift_bd(new, "x264_pyav", BUS, -4.0)  # fewer bits than before: better
    park_was = shift_bd(new, "x264_pyav", PARK, +3.0)  # more bits: worse
    new = RunResults.from_json(new).to_json()  # the overall figures are derived from the per-clip ones
    cmp = compare_reports(sample, new)
    changes = by_what(cmp)
    bus, park = changes[("x264_pyav", BUS, PSNR)], changes[("x264_pyav", PARK, PSNR)]
    assert (bus.direction, bus.delta, bus.kind) == ("better", "-4.0 pp", "bd")
    assert (park.direction, park.delta) == ("worse", "+3.0 pp")
    assert bus.old.startswith(f"{bus_was:+.1f} %") and bus.new.startswith(f"{bus_was - 4:+.1f} %")
    assert park.new.startswith(f"{park_was + 3:+.1f} %")
    # over all clips: the mean of the two clips moves by (-4 + 3) / 2
    overall = changes[("x264_pyav", None, PSNR)]
    assert (overall.direction, overall.delta, overall.kind) == ("better", "-0.5 pp", "bd_overall")
    assert {c.candidate for c in cmp.changes} == {"x264_pyav"} and cmp.comparable
    text = cmp.to_text()
    assert "x264_pyav: 2 better, 1 worse" in text
    assert f"WORSE   {PARK}: {PSNR}:" in text and f"BETTER  {BUS}: {PSNR}:" in text


def test_a_bd_change_below_the_threshold_is_not_reported(sample):
    new = copy.deepcopy(sample)
    shift_bd(new, "dct_inter", BUS, THRESHOLDS["bd_rate"] / 2)
    assert compare_reports(sample, new).changes == []


def test_a_clip_that_becomes_incomparable_is_worse(sample):
    new = copy.deepcopy(sample)
    result = new["candidates"]["dct_inter"]["bd"][PARK]["x265"]["ssim_y"]
    result.update(bd_rate=None, comparable=False)
    change = by_what(compare_reports(sample, new))[("dct_inter", PARK, "BD-rate vs x265, SSIM-Y")]
    assert (change.direction, change.delta, change.new) == ("worse", "no longer comparable", "n/a")
    back = by_what(compare_reports(new, sample))[("dct_inter", PARK, "BD-rate vs x265, SSIM-Y")]
    assert (back.direction, back.delta) == ("better", "now comparable")


def test_rate_point_changes_lower_bitrate_and_higher_quality_are_better(sample):
    new = copy.deepcopy(sample)
    m = new["candidates"]["dct_inter"]["points"][f"{BUS}/r1"]["measurement"]
    m["bitrate_bps"] *= 0.9
    m["metrics"]["psnr_yuv"] += 0.25
    changes = by_what(compare_reports(sample, new))
    rate = changes[("dct_inter", BUS, "r1 bitrate")]
    assert (rate.direction, rate.delta) == ("better", "-10.0 %")
    psnr = changes[("dct_inter", BUS, "r1 PSNR-YUV")]
    assert (psnr.direction, psnr.delta) == ("better", "+0.25 dB")


def test_a_failing_point_that_passes_is_better_and_new_candidates_are_listed(sample):
    old = copy.deepcopy(sample)
    del old["candidates"]["zlib_lossless"]
    new = copy.deepcopy(sample)
    failed = new["candidates"]["coarse"]["points"][f"{BUS}/r0"]
    assert failed["failure"] and failed["measurement"] is None
    old["candidates"]["coarse"]["points"][f"{BUS}/r0"] = copy.deepcopy(
        sample["candidates"]["coarse"]["points"][f"{BUS}/r2"]
    ) | {"rung": "r0"}
    cmp = compare_reports(old, new)
    assert cmp.new_candidates == ["zlib_lossless"] and cmp.removed_candidates == []
    change = by_what(cmp)[("coarse", BUS, "r0: round trip")]
    assert (change.old, change.new, change.direction) == ("ok", "failed", "worse")
    assert "cannot reach" in change.delta
