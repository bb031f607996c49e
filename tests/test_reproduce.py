"""`python -m harness reproduce`: a report re-run here, every bitstream and number compared.

The comparison is checked on the real sample report against altered copies of itself (one
bitstream hash, a metric value under another libvmaf version, an anchor under another x265); the
command end to end on a real small run (zlib_lossless on a 160x90 clip at 2 frames): the re-run
of an unaltered report is bit-exact (exit 0), one altered bitstream hash is a difference (exit 1),
a changed candidate source stops before running (exit 3).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.reproduce import (
    EXIT_DIFFERENT,
    EXIT_INPUTS,
    EXIT_REPRODUCED,
    Reproduction,
    compare_runs,
    likely_cause,
    version_differences,
)
from harness.results import RunResults, load_report
from harness.suite import SuiteOptions, run_suite

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE = TESTS / "data" / "report_small.json"
SHARED_CLIP = REPO.parent / "shared" / "fixtures" / "svt_park_joy_160x90_10f.y4m"


def _doc() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def _first_point(doc: dict) -> tuple[str, str, dict]:
    """(candidate, "clip/rN", point) of the first measured rate point."""
    for name in sorted(doc["candidates"]):
        for key, point in sorted(doc["candidates"][name]["points"].items()):
            if point.get("measurement"):
                return name, key, point
    raise AssertionError("the sample report has no measured point")


# ----------------------------------------------------------------------------- comparing


def test_version_differences_name_every_changed_or_missing_version():
    report = {"av": "18.1.0", "encoders": {"libx265": "4.2", "libx264": "core 165"}, "numpy": "2.4.6"}
    here = {"av": "18.1.0", "encoders": {"libx265": "4.1", "libx264": "core 165"}, "opencv": "5.1.0"}
    assert version_differences(report, here) == [
        "encoders.libx265: report 4.2, here 4.1",
        "numpy: report 2.4.6, here (not recorded)",
        "opencv: report (not recorded), here 5.1.0",
    ]
    assert version_differences(report, copy.deepcopy(report)) == []


def test_a_report_compared_with_itself_has_no_difference():
    report = load_report(SAMPLE)
    diffs, counts = compare_runs(report, load_report(SAMPLE))
    assert diffs == []
    points = sum(len(c.points) for c in report.candidates.values())
    anchor_points = sum(len(p) for per in report.anchors.values() for p in per.values())
    assert counts == {"anchor points": anchor_points, "candidate points": points, "tests": len(report.tests)}
    assert points >= 16 and anchor_points >= 24
    assert Reproduction([], diffs, counts).verdict_lines()[-1] == "VERDICT: reproduced bit-exactly"


def test_one_altered_bitstream_hash_is_one_difference_blamed_on_the_candidate():
    doc = _doc()
    name, key, point = _first_point(doc)
    real = point["measurement"]["bitstream_sha256"]
    point["measurement"]["bitstream_sha256"] = "0" * 64
    report, again = RunResults.from_json(doc), load_report(SAMPLE)
    diffs, counts = compare_runs(report, again)
    assert [(d.kind, d.where, d.report, d.here) for d in diffs] == [("bitstream", f"{name} {key}", "0" * 12, real[:12])]
    result = Reproduction([], diffs, counts, likely_cause(diffs, [], report, again))
    assert result.exit_status == EXIT_DIFFERENT != EXIT_REPRODUCED
    lines = result.verdict_lines()
    assert lines[1] == "VERDICT: not reproduced: 1 differences (bitstream 1)"
    assert lines[-1].startswith("likely cause: candidate bitstreams differ with the same versions")


def test_other_vmaf_values_under_another_libvmaf_are_blamed_on_the_metric_version():
    doc = _doc()
    name, key, point = _first_point(doc)
    point["measurement"]["metrics"]["vmaf"] += 0.5  # what another libvmaf would give on the same frames
    doc["versions"]["vmaf"] = doc["versions"]["vmaf"].replace("libvmaf=", "libvmaf=older-")
    report, again = RunResults.from_json(doc), load_report(SAMPLE)
    changed = version_differences(report.versions, again.versions)
    assert changed == [f"vmaf: report {doc['versions']['vmaf']}, here {again.versions['vmaf']}"]
    diffs, counts = compare_runs(report, again)
    kinds = {d.kind for d in diffs}
    assert ("metric", f"{name} {key} vmaf") in {(d.kind, d.where) for d in diffs}
    assert kinds <= {"metric", "bd_rate"}  # the BD-rate on VMAF moves with it; no bitstream differs
    result = Reproduction(changed, diffs, counts, likely_cause(diffs, changed, report, again))
    assert result.exit_status == EXIT_DIFFERENT
    assert result.cause == "the same decoded frames measure differently: metric versions differ (vmaf)"


def test_an_anchor_bitstream_under_another_x265_is_blamed_on_the_encoder():
    doc = _doc()
    clip = min(doc["anchors"])
    doc["anchors"][clip]["x265"][1]["measurement"]["bitstream_sha256"] = "f" * 64
    doc["versions"]["encoders"]["libx265"] = "3.5"
    report, again = RunResults.from_json(doc), load_report(SAMPLE)
    changed = version_differences(report.versions, again.versions)
    diffs, _ = compare_runs(report, again)
    qp = doc["anchors"][clip]["x265"][1]["qp"]
    assert [(d.kind, d.where) for d in diffs] == [("bitstream", f"anchor x265 {clip} QP {qp}")]
    assert likely_cause(diffs, changed, report, again) == (
        "anchor bitstreams differ: the encoder libraries differ (encoders.libx265)"
    )


def test_a_test_that_flipped_and_a_point_missing_are_differences():
    doc = _doc()
    nodeid = next(n for n, t in sorted(doc["tests"].items()) if t["outcome"] == "passed")
    again_doc = copy.deepcopy(doc)
    again_doc["tests"][nodeid] = {**again_doc["tests"][nodeid], "outcome": "failed", "reason": "limits"}
    name, key, _ = _first_point(again_doc)
    del again_doc["candidates"][name]["points"][key]
    diffs, _ = compare_runs(RunResults.from_json(doc), RunResults.from_json(again_doc))
    found = {(d.kind, d.where) for d in diffs}
    assert ("outcome", nodeid) in found and ("missing", f"{name} {key}") in found


# ----------------------------------------------------------------------------- end to end


def _reproduce(report: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(root / "xdg")}
    return subprocess.run(
        [sys.executable, "-m", "harness", "reproduce", str(report), "--repo", str(root), *extra],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.mark.sandbox
def test_reproduce_a_real_run_bit_exactly_and_catch_an_altered_hash(tmp_path):
    if not SHARED_CLIP.is_file():
        pytest.fail(f"development clip {SHARED_CLIP} not found; clone the project beside ../shared", pytrace=False)
    root = tmp_path / "project"
    (root / "candidates").mkdir(parents=True)
    shutil.copy(TESTS / "candidates_ok" / "zlib_lossless.py", root / "candidates" / "zlib_lossless.py")
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(SHARED_CLIP, clips / "park_joy.y4m")
    options = SuiteOptions(clips=str(clips), frames=2, cache_dir=tmp_path / "cache")
    run = run_suite(options, root=root, log=tmp_path / "run.log", timeout=600)
    assert run.results is not None, run.problem
    report = run.report
    assert {c for c in run.results.candidates} == {"zlib_lossless"}

    same = _reproduce(report, root)
    assert same.returncode == EXIT_REPRODUCED, same.stdout + same.stderr
    assert "versions: all the same as the report's" in same.stdout
    assert "compared: 12 anchor points, 4 candidate points" in same.stdout
    assert same.stdout.rstrip().endswith("VERDICT: reproduced bit-exactly")

    doc = json.loads(report.read_text(encoding="utf-8"))
    point = doc["candidates"]["zlib_lossless"]["points"]["park_joy/r2"]
    real = point["measurement"]["bitstream_sha256"]
    assert point["bitstream_sha256"] == real  # every point carries its bitstream's hash
    point["measurement"]["bitstream_sha256"] = point["bitstream_sha256"] = "0" * 64
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc), encoding="utf-8")
    differs = _reproduce(altered, root)
    assert differs.returncode == EXIT_DIFFERENT, differs.stdout + differs.stderr
    assert "VERDICT: not reproduced: 1 differences (bitstream 1)" in differs.stdout
    assert f"bitstream   zlib_lossless park_joy/r2: report 000000000000, here {real[:12]}" in differs.stdout

    doc["candidates"]["zlib_lossless"]["sha256"] = "1" * 64
    changed = tmp_path / "changed_source.json"
    changed.write_text(json.dumps(doc), encoding="utf-8")
    refused = _reproduce(changed, root)
    assert refused.returncode == EXIT_INPUTS, refused.stdout + refused.stderr
    assert "VERDICT: cannot reproduce here: candidate zlib_lossless's source differs: report 111111111111" in refused.stdout
