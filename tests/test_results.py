"""harness.results: the typed report model, and the one mean-BD, BD-between-curves and champion rule."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.adoption.scores import bd_vs_from_points
from harness.bdrate import bd_rate
from harness.ledger import LedgerEntry, champion_of
from harness.measure import Measurement
from harness.results import NO_CURVE, CandidateResults, Curve, RunResults, bd_between, load_report, mean_bd
from harness.schema import ReportError, validate_report

SAMPLE = Path(__file__).parent / "data" / "report_small.json"


@pytest.fixture
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def _bd(value: float | None, comparable: bool = True, warning: str | None = None) -> dict:
    return {"bd_rate": value, "comparable": comparable, "warning": warning, "method": "pchip"}


def test_mean_bd_averages_comparable_clips_and_lists_the_others():
    per_clip = {
        "b": {"x265": {"psnr_yuv": _bd(-10.0)}},
        "a": {"x265": {"psnr_yuv": _bd(4.0)}},
        "c": {"x265": {"psnr_yuv": _bd(None, False, "no quality overlap")}},
    }
    slot = mean_bd(per_clip)["x265"]["psnr_yuv"]
    assert slot["bd_rate"] == pytest.approx(-3.0)
    assert slot["clips"] == ["a", "b"] and slot["values"] == {"a": 4.0, "b": -10.0}
    assert slot["excluded"] == {"c": "no quality overlap"}
    assert slot["worst_clip"] == "a"
    empty = mean_bd({"c": {"x265": {"psnr_yuv": _bd(None, False)}}})["x265"]["psnr_yuv"]
    assert empty["bd_rate"] is None and empty["worst_clip"] is None and empty["excluded"] == {"c": "not comparable"}


def test_mean_bd_states_its_coverage_and_names_clips_without_a_result():
    per_clip = {
        "a": {"x265": {"psnr_yuv": _bd(4.0)}},
        "c": {"x265": {"psnr_yuv": _bd(None, False, "quality ranges do not overlap")}},
    }
    slot = mean_bd(per_clip, ["a", "b", "c", "d"])["x265"]["psnr_yuv"]
    assert slot["bd_rate"] == pytest.approx(4.0) and slot["clips"] == ["a"]
    assert (slot["clips_covered"], slot["clips_total"]) == (1, 4)
    assert slot["excluded"] == {"b": NO_CURVE, "c": "quality ranges do not overlap", "d": NO_CURVE}


def test_a_candidates_overall_bd_counts_every_clip_it_was_judged_on():
    measured = {"bitrate_bps": 1000.0, "metrics": {"psnr_yuv": 30.0}}
    points = {
        "a/r0": {"clip": "a", "measurement": measured, "failure": None},
        "b/r0": {"clip": "b", "measurement": None, "failure": "decode failed"},
    }
    cand = CandidateResults(name="c", points=points, bd={"a": {"x265": {"psnr_yuv": _bd(12.0)}}})
    slot = cand.bd_overall["x265"]["psnr_yuv"]
    assert (slot["clips_covered"], slot["clips_total"], slot["excluded"]) == (1, 2, {"b": NO_CURVE})


def _m(rate: float, psnr: float) -> Measurement:
    return Measurement(1, rate, 0.1, "0" * 64, "0" * 64, {"psnr_yuv": psnr}, {})


def test_curve_and_bd_between_are_the_bd_rate_of_sorted_pairs():
    ref = [_m(4000, 40.0), _m(1000, 32.0), _m(2000, 36.0), _m(8000, 44.0)]
    test = [_m(r * 0.9, q) for r, q in ((1000, 32.0), (2000, 36.0), (4000, 40.0), (8000, 44.0))]
    curve = Curve.of(ref)
    assert [p[0] for p in curve.points] == [1000, 2000, 4000, 8000]
    assert Curve.of(m.to_json() for m in ref) == curve  # measurement JSON and objects alike
    got = bd_between(curve, Curve.of(test), ["psnr_yuv", "vmaf"])
    assert set(got) == {"psnr_yuv"}  # a metric neither measured is left out
    assert got["psnr_yuv"].bd_rate == pytest.approx(-10.0, abs=1e-9)
    direct = bd_rate(curve.pairs("psnr_yuv"), Curve.of(test).pairs("psnr_yuv"))
    assert direct.to_json() == got["psnr_yuv"].to_json()


def test_a_report_round_trips_through_the_model(sample):
    results = RunResults.from_json(sample)
    again = RunResults.from_json(results.to_json())
    assert again == results
    validate_report(results.to_json())
    for name, cand in results.candidates.items():
        raw = sample["candidates"][name]
        assert cand.summary == raw["summary"] and cand.passed_all == raw["passed_all"]
        for ref, metrics in cand.bd_overall.items():
            for metric, slot in metrics.items():
                old = raw["bd_overall"][ref][metric]
                assert {k: slot[k] for k in ("bd_rate", "clips", "values", "worst_clip")} == {
                    k: old[k] for k in ("bd_rate", "clips", "values", "worst_clip")
                }
                # Coverage: every clip judged is either averaged or left out with its reason.
                assert old["excluded"].items() <= slot["excluded"].items()
                assert slot["clips_covered"] == len(slot["clips"])
                assert slot["clips_total"] == len(slot["clips"]) + len(slot["excluded"]) == len(cand.clips())


def test_bd_vs_from_the_model_equals_adoptions(sample):
    """BD-rate against the champion from the points: RunResults.bd_vs and adoption agree."""
    results = RunResults.from_json(sample)
    typed = results.bd_vs("dct_inter", "x264_pyav")
    adoption = bd_vs_from_points(sample, "dct_inter", "x264_pyav")
    assert typed, "no clip where both candidates have curves"
    for clip, per_metric in typed.items():
        for metric, result in per_metric.items():
            assert adoption["per_clip"][clip][metric] == result.to_json()


def test_load_report_validates_and_names_the_file(sample, tmp_path):
    bad = copy.deepcopy(sample)
    bad["candidates"]["dct_inter"]["points"] = {"bus/r0": {"clip": 3}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ReportError, match=r"bad\.json: report is invalid at \$\.candidates\.dct_inter\.points"):
        load_report(path)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sample), encoding="utf-8")
    assert load_report(good) == RunResults.from_json(sample)


def test_champion_is_the_last_adopted_entry():
    def entry(name: str, decision: str) -> LedgerEntry:
        return LedgerEntry(candidate=name, source_sha256="0" * 64, decision=decision, reason="")

    assert champion_of([]) is None
    assert champion_of([entry("a", "rejected")]) is None
    entries = [entry("a", "adopted"), entry("b", "adopted"), entry("c", "rejected")]
    assert champion_of(entries).candidate == "b"
