"""The benchmark JSON report is described by harness/report.schema.json, and broken reports are refused clearly."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from harness.errors import HarnessError
from harness.render import SCHEMA_PATH, ReportError, load_report, validate_report
from harness.report import ResultCollector

SAMPLE = Path(__file__).parent / "data" / "report_small.json"
POINT = "derf_bus_352x288_17f/r0"


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def doc(sample) -> dict:
    return copy.deepcopy(sample)


def test_schema_is_valid_draft_2020_12():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_sample_report_is_valid(doc):
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    validate_report(doc)
    results = load_report(SAMPLE)
    assert results.schema_version == 1 and set(results.candidates) == set(doc["candidates"])


def test_sample_is_small_and_covers_failures(sample):
    """What the tests of reports rely on (scripts/regenerate_samples makes it from a real run)."""
    assert SAMPLE.stat().st_size < 300_000
    outcomes = {t["outcome"] for t in sample["tests"].values()}
    assert outcomes == {"passed", "failed"}
    cands = sample["candidates"]
    assert any(p["measurement"] is None for c in cands.values() for p in c["points"].values())
    assert any(c["passed_all"] for c in cands.values()) and not all(c["passed_all"] for c in cands.values())
    assert any(not g["passed"] and g["rung"] for c in cands.values() for g in c["gates"].values())
    assert set(sample["anchors"]) == set(sample["clips"]) and all(len(a) == 3 for a in sample["anchors"].values())
    assert any(c.get("bd") for c in cands.values())
    champion = sample["champion"]["name"]
    assert champion in cands and any(c.get("bd_vs_champion", {}).get("champion") == champion for c in cands.values())


@pytest.mark.parametrize("name", ["report_small.json", "adoption_report.json"])
def test_samples_are_shrunk_the_documented_way(name):
    """scripts/regenerate_samples: per-frame lists emptied, captured text cut, no host paths."""
    text = (SAMPLE.parent / name).read_text(encoding="utf-8")
    assert "/tmp/" not in text and "regenerate-samples-" not in text
    doc = json.loads(text)
    validate_report(doc)
    measurements = [p["measurement"] for a in doc["anchors"].values() for pts in a.values() for p in pts]
    measurements += [p["measurement"] for c in doc["candidates"].values() for p in c["points"].values()]
    assert measurements and all(v == [] for m in measurements if m for v in m["per_frame"].values())
    assert all(len(t["reason"] or "") <= 600 + len(" [trimmed for test data]") for t in doc["tests"].values())
    assert all(c["path"] == f"candidates/{n}.py" for n, c in doc["candidates"].items())


def test_report_error_is_a_harness_error():
    assert issubclass(ReportError, HarnessError)


def _problem(doc) -> str:
    with pytest.raises(ReportError) as info:
        validate_report(doc)
    return str(info.value)


def test_missing_schema_version_is_refused(doc):
    del doc["schema_version"]
    message = _problem(doc)
    assert "report is invalid at $:" in message
    assert "'schema_version' is a required property" in message


def test_unknown_schema_version_is_refused(doc):
    doc["schema_version"] = 2
    message = _problem(doc)
    assert "$.schema_version" in message and "version 2" in message


def test_string_bitrate_is_refused_with_its_path(doc):
    doc["candidates"]["dct_inter"]["points"][POINT]["measurement"]["bitrate_bps"] = "537504"
    message = _problem(doc)
    assert f'$.candidates.dct_inter.points["{POINT}"].measurement.bitrate_bps' in message
    assert "'537504' is not of type 'number'" in message


def test_nan_is_refused_in_a_document(doc):
    doc["candidates"]["dct_inter"]["points"][POINT]["measurement"]["metrics"]["vmaf"] = float("nan")
    message = _problem(doc)
    assert f'$.candidates.dct_inter.points["{POINT}"].measurement.metrics.vmaf' in message
    assert "nan is not a JSON number" in message and "null" in message


def test_nan_is_refused_in_a_file(tmp_path, sample):
    text = json.dumps(sample).replace('"bd_rate": null', '"bd_rate": NaN', 1)
    assert "NaN" in text
    path = tmp_path / "nan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportError, match=r"nan\.json: not a valid JSON report: NaN is not valid JSON"):
        load_report(path)


def test_missing_and_malformed_files_are_report_errors(tmp_path):
    with pytest.raises(ReportError, match="no such report file"):
        load_report(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,', encoding="utf-8")
    with pytest.raises(ReportError, match=r"broken\.json: not a valid JSON report"):
        load_report(broken)
    listing = tmp_path / "list.json"
    listing.write_text("[]", encoding="utf-8")
    with pytest.raises(ReportError, match=r"at \$: expected a JSON object"):
        load_report(listing)


@pytest.mark.parametrize(
    ("mutate", "where", "what"),
    [
        (
            lambda d: d["candidates"]["zlib_lossless"].pop("points"),
            "$.candidates.zlib_lossless",
            "'points' is a required property",
        ),
        (
            lambda d: d["clips"]["derf_bus_352x288_17f"].update(sha256="xyz"),
            "$.clips.derf_bus_352x288_17f.sha256",
            "does not match",
        ),
        (
            lambda d: d["tests"][next(iter(d["tests"]))].update(outcome="exploded"),
            '$.tests["benchmarks/',
            "'exploded' is not one of",
        ),
        (
            lambda d: d["candidates"]["coarse"]["points"][POINT].update(encode="crashed"),
            f'$.candidates.coarse.points["{POINT}"].encode',
            "is not of type 'object', 'null'",
        ),
        (
            lambda d: d["candidates"]["dct_inter"]["bd"]["derf_bus_352x288_17f"]["x265"]["vmaf"].update(
                overlap=1.5
            ),
            "$.candidates.dct_inter.bd.derf_bus_352x288_17f.x265.vmaf.overlap",
            "greater than the maximum",
        ),
        (
            lambda d: d["anchors"]["derf_bus_352x288_17f"]["x265"][0].update(qp="22"),
            "$.anchors.derf_bus_352x288_17f.x265[0].qp",
            "is not of type 'integer'",
        ),
    ],
    ids=["no-points", "bad-sha256", "bad-outcome", "bad-call", "overlap-above-1", "string-qp"],
)
def test_broken_parts_are_named(doc, mutate, where, what):
    mutate(doc)
    message = _problem(doc)
    assert where in message and what in message, message


def test_later_additions_are_allowed(doc):
    doc["ledger"] = {"champion": "dct_inter"}
    doc["held_out"] = {"clips": []}
    doc["candidates"]["dct_inter"]["verdict"] = {"decision": "adopted", "reason": "beats the champion"}
    doc["candidates"]["dct_inter"]["scores"] = {"psnr_yuv": -3.0}
    doc["champion"] = None
    validate_report(doc)
    doc["champion"] = {"name": "x264_pyav", "sha256": "0" * 64}
    doc["candidates"]["dct_inter"]["bd_vs_champion"] = {
        "champion": "x264_pyav",
        "per_clip": {},
        "overall": {},
    }
    validate_report(doc)
    doc["candidates"]["dct_inter"]["bd_vs_champion"]["per_clip"] = {"c": {"psnr_yuv": {"bd_rate": "-3"}}}
    assert "bd_vs_champion.per_clip.c.psnr_yuv" in _problem(doc)


def test_a_document_from_the_collector_is_valid(sample, tmp_path):
    """What harness/report.py writes today matches the schema (guards against the two drifting apart):
    the sample's parts go in as the fragments tests record, in the report's own shape."""
    collector = ResultCollector()
    collector.add({"kind": "results", "settings": sample["settings"], "champion": sample.get("champion")})
    collector.add({"clips": sample["clips"], "anchors": sample["anchors"]})
    for name, cand in sample["candidates"].items():
        own = {k: cand[k] for k in ("sha256", "size_bytes", "path", "check")}
        collector.add({"candidates": {name: own}})
        for key, point in cand["points"].items():
            collector.add({"candidates": {name: {"points": {key: point}}}})
        for clip, det in cand["determinism"].items():
            collector.add({"candidates": {name: {"determinism": {clip: det}}}})
        for clip, results in cand.get("bd", {}).items():
            collector.add({"candidates": {name: {"bd": {clip: results}}}})
    with pytest.raises(ValueError, match="unknown record kind 'point'"):
        collector.add({"kind": "point"})
    owner = {nodeid: name for name, cand in sample["candidates"].items() for nodeid in cand["tests"]}
    for nodeid, test in sample["tests"].items():
        collector.add_test(nodeid, test["outcome"], test["reason"], params={"candidate": owner[nodeid]} if nodeid in owner else None)
    doc = json.loads(json.dumps(collector.document(tmp_path), allow_nan=False))
    validate_report(doc)
    assert set(doc["candidates"]) == set(sample["candidates"])
    for name, cand in doc["candidates"].items():
        assert cand["summary"] == sample["candidates"][name]["summary"]
