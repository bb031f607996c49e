"""harness.report: fragments of what tests judged, merged by the ResultCollector into a valid document, written atomically."""

from __future__ import annotations

import json
import os

import pytest

from harness import atomic
from harness.report import ResultCollector, fragment, merge
from harness.results import load_report
from harness.schema import ReportError, validate_report
from tests.conftest import REPO, SHARED_FIXTURES, make_judge

CLIP_FILE = SHARED_FIXTURES / "svt_park_joy_160x90_10f.y4m"
CLIP = "svt_park_joy_160x90_10f"
NAME = "zlib_lossless"
PREFIX = "benchmarks/test_codecs.py::"

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def judge(tmp_path_factory, shared_fixtures):
    judge = make_judge(
        candidates=[REPO / "tests" / "candidates_ok" / "zlib_lossless.py"], clips=[CLIP_FILE], frames=3,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )
    judge.run_info = {
        "settings": {"clip_set": "test", "frames": 3, "suite": judge.config.to_json(), "candidates_dir": "x"},
        "champion": None,
    }
    return judge


def collect(judge) -> ResultCollector:
    """What the suite records for one candidate on one clip at r0, each part its own (worker's) fragment."""
    collector = ResultCollector()
    point = judge.point(NAME, CLIP, 0)
    parts = [
        fragment(judge, candidate=NAME, check=True),
        fragment(judge, candidate=NAME, clip=CLIP, point=point),
        fragment(judge, candidate=NAME, clip=CLIP, gate=judge.gate("rate", NAME, CLIP, 0)),
        fragment(judge, candidate=NAME, clip=CLIP, gate=judge.gate("round_trip", NAME, CLIP, 0)),
        fragment(judge, candidate=NAME, clip=CLIP, gate=judge.gate("contract", NAME)),
    ]
    for part in parts:
        collector.add({"kind": "results", **json.loads(json.dumps(part))})  # as it crosses from an xdist worker
    collector.add_test(f"{PREFIX}test_contract[{NAME}]", "passed", None, params={"candidate": NAME})
    collector.add_test(
        f"{PREFIX}test_round_trip[{NAME}-{CLIP}-r0]", "passed", None, params={"candidate": NAME, "clip": CLIP, "rung": 0}
    )
    rate = judge.gate("rate", NAME, CLIP, 0)
    collector.add_test(
        f"{PREFIX}test_rate[{NAME}-{CLIP}-r0]", "failed", f"Failed: {rate.message}",
        params={"candidate": NAME, "clip": CLIP, "rung": 0},
    )
    collector.add_test(f"{PREFIX}test_other", "passed", None)
    return collector


def test_a_fragment_is_report_shaped(judge):
    point = judge.point(NAME, CLIP, 0)
    part = fragment(judge, candidate=NAME, clip=CLIP, point=point, check=True)
    cand = part["candidates"][NAME]
    source = judge.candidates[NAME]
    assert cand["sha256"] == source.sha256 and cand["size_bytes"] == source.size_bytes
    assert cand["points"] == {f"{CLIP}/r0": point.to_json()}
    assert cand["check"]["ok"] is True
    video = judge.source(CLIP).video
    clip = part["clips"][CLIP]
    assert (clip["sha256"], clip["width"], clip["height"], clip["frames"]) == (video.sha256(), 160, 90, 3)
    assert part["settings"]["frames"] == 3 and part["champion"] is None
    assert "anchors" not in part and "gates" not in cand
    no_candidate = fragment(judge, clip=CLIP)
    assert "candidates" not in no_candidate and set(no_candidate["clips"]) == {CLIP}


def test_the_collector_merges_fragments_into_a_valid_document(judge, tmp_path):
    collector = collect(judge)
    doc = json.loads(json.dumps(collector.document(tmp_path), allow_nan=False))
    validate_report(doc)
    cand = doc["candidates"][NAME]
    point = judge.point(NAME, CLIP, 0)
    assert cand["points"][f"{CLIP}/r0"]["measurement"]["bytes"] == point.measurement.bytes
    assert cand["points"][f"{CLIP}/r0"]["measurement"]["metrics"]["psnr_y"] == 100.0  # lossless
    assert set(cand["gates"]) == {f"rate/{CLIP}/r0", f"round_trip/{CLIP}/r0", "contract"}
    assert cand["gates"][f"rate/{CLIP}/r0"]["passed"] is False
    assert "x the target" in cand["gates"][f"rate/{CLIP}/r0"]["message"]
    assert cand["gates"]["contract"]["passed"] is True and cand["check"]["ok"] is True
    assert cand["summary"] == {"failed": 1, "passed": 2} and cand["passed_all"] is False
    assert doc["summary"] == {"failed": 1, "passed": 3}
    assert doc["clips"][CLIP]["frames"] == 3 and doc["schema_version"] == 1


def test_add_test_attaches_tests_to_their_candidate(judge, tmp_path):
    collector = collect(judge)
    doc = collector.document(tmp_path)
    tests = doc["candidates"][NAME]["tests"]
    assert set(tests) == {
        f"{PREFIX}test_contract[{NAME}]", f"{PREFIX}test_round_trip[{NAME}-{CLIP}-r0]", f"{PREFIX}test_rate[{NAME}-{CLIP}-r0]",
    }
    rate = tests[f"{PREFIX}test_rate[{NAME}-{CLIP}-r0]"]
    assert (rate["outcome"], rate["candidate"], rate["clip"], rate["rung"]) == ("failed", NAME, CLIP, "r0")
    assert "rung" not in tests[f"{PREFIX}test_contract[{NAME}]"]
    assert doc["tests"][f"{PREFIX}test_other"] == {"outcome": "passed", "reason": None}  # in no candidate
    assert collector.has_results


def test_merge_is_deep_later_scalars_win_and_values_are_copied():
    doc = {"a": {"b": 1, "c": {"d": 2}}, "e": [1]}
    part = {"a": {"c": {"x": 3}, "b": 5}, "e": [2, 3], "f": {"g": [4]}}
    merge(doc, part)
    assert doc == {"a": {"b": 5, "c": {"d": 2, "x": 3}}, "e": [2, 3], "f": {"g": [4]}}
    part["f"]["g"].append(5)
    part["e"].append(9)
    assert doc["f"] == {"g": [4]} and doc["e"] == [2, 3]


def test_an_unknown_record_kind_is_refused():
    with pytest.raises(ValueError, match="unknown record kind 'point'"):
        ResultCollector().add({"kind": "point", "candidate": "x"})


def test_write_makes_run_and_latest_files_that_load(judge, tmp_path):
    collector = collect(judge)
    seen = []
    path = collector.write(tmp_path / "reports", root=tmp_path, enrich=lambda d: seen.append(d["schema_version"]))
    assert seen == [1]
    assert path.parent == tmp_path / "reports" and path.name.startswith("run-") and path.suffix == ".json"
    assert path.name.endswith(f"-{os.getpid()}.json")
    latest = tmp_path / "reports" / "latest.json"
    assert latest.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == collector.last_document
    assert load_report(latest).candidates[NAME].summary == {"failed": 1, "passed": 2}
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted([path.name, "latest.json"])


def test_an_invalid_document_is_not_written(judge, tmp_path):
    collector = collect(judge)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest.json").write_text("previous", encoding="utf-8")

    def spoil(doc):
        doc["candidates"][NAME]["points"][f"{CLIP}/r0"]["measurement"]["bytes"] = "many"

    with pytest.raises(ReportError, match="bytes"):
        collector.write(reports, root=tmp_path, enrich=spoil)
    assert [p.name for p in reports.iterdir()] == ["latest.json"]
    assert (reports / "latest.json").read_text(encoding="utf-8") == "previous"


def test_a_write_that_fails_midway_leaves_the_old_latest_whole(judge, tmp_path, monkeypatch):
    collector = collect(judge)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "latest.json").write_text('{"old": true}', encoding="utf-8")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("latest.json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        collector.write(reports, root=tmp_path)
    assert (reports / "latest.json").read_text(encoding="utf-8") == '{"old": true}'
    names = sorted(p.name for p in reports.iterdir())
    assert len(names) == 2 and names[0] == "latest.json" and names[1].startswith("run-")  # no temporary left
