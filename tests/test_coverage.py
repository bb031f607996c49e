"""Honest coverage: every overall BD-rate states how many clips it covers and which it leaves out
(JSON, HTML, Markdown, terminal), and a ranking never puts a candidate ahead because its worst
clips were dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.render.html import render_html
from harness.render.markdown import render_markdown
from harness.render.terminal import leaderboard_lines
from harness.render.view import ReportView, coverage, coverage_words
from harness.results import NO_CURVE, mean_bd
from harness.schema import validate_report

SAMPLE = Path(__file__).parent / "data" / "report_small.json"
CLIPS = ["a_clip", "b_clip", "c_clip"]
APART = "not comparable: quality ranges do not overlap (reference 30..40, test 20..26), no BD-rate"


def _result(value: float | None) -> dict:
    return {"bd_rate": value, "comparable": value is not None, "warning": None if value is not None else APART,
            "method": "pchip"}


def _overall(per_clip: dict[str, float | None], judged: list[str]) -> dict:
    return mean_bd({clip: {"x265": {"psnr_yuv": _result(v)}} for clip, v in per_clip.items()}, judged)


@pytest.fixture
def doc() -> dict:
    """Two passing candidates: `full` covers 3/3 clips at +50 % on average; `partial` covers 1/3 at
    -20 %: its other clips have no BD-rate (no shared qualities, no curve)."""
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    base = next(c for c in sample["candidates"].values() if c.get("passed_all"))
    out = copy.deepcopy(sample)
    out["candidates"] = {}
    for name, per_clip in (("partial", {"a_clip": -20.0, "b_clip": None}), ("full", dict.fromkeys(CLIPS, 50.0))):
        cand = copy.deepcopy(base)
        cand.pop("verdict", None)
        cand["flags"] = []
        cand["bd_overall"] = _overall(per_clip, CLIPS)
        out["candidates"][name] = cand
    return out


def test_the_json_overall_states_covered_total_and_the_clips_left_out(doc):
    slot = doc["candidates"]["partial"]["bd_overall"]["x265"]["psnr_yuv"]
    assert (slot["clips_covered"], slot["clips_total"]) == (1, 3)
    assert slot["excluded"] == {"b_clip": APART, "c_clip": NO_CURVE}
    assert coverage(slot) == (1, 3, ["b_clip", "c_clip"]) and coverage_words(slot) == "1/3 clips"
    validate_report(doc)


def test_a_report_from_before_clips_total_counts_clips_and_excluded():
    assert coverage({"clips": ["a"], "excluded": {"b": "x"}}) == (1, 2, ["b"])
    assert coverage({"clips": [], "excluded": {}}) is None and coverage_words({}) == ""


def test_incomplete_coverage_ranks_after_full_coverage_whatever_its_mean(doc):
    assert ReportView(doc).order() == ["full", "partial"]  # -20 % over 1/3 does not beat +50 % over 3/3
    # Between equal coverage the BD-rate decides.
    doc["candidates"]["partial"]["bd_overall"] = _overall(dict.fromkeys(CLIPS, -20.0), CLIPS)
    assert ReportView(doc).order() == ["partial", "full"]


def test_the_terminal_states_coverage_and_names_the_clips_left_out(doc):
    lines = leaderboard_lines(doc)
    rows = {line.split()[0]: line for line in lines[1:3]}
    assert list(rows) == ["full", "partial"]
    assert "+50.0 % (3/3)" in rows["full"] and "-20.0 % (1/3)" in rows["partial"]
    assert "partial: PSNR-YUV vs x265 over 1/3 clips; left out: b_clip, c_clip" in lines
    assert not any(line.startswith("full: ") for line in lines)


def test_markdown_states_coverage_and_names_the_clips_left_out(doc):
    text = render_markdown(doc)
    partial = next(line for line in text.splitlines() if line.startswith("| **partial**"))
    assert "↓ 20.0 % fewer bits (1/3 clips)" in partial
    full = next(line for line in text.splitlines() if line.startswith("| **full**"))
    assert "↑ 50.0 % more bits (3/3 clips)" in full
    assert text.index("| **full**") < text.index("| **partial**")
    note = next(line for line in text.splitlines() if line.startswith("- **partial**: BD-rate over"))
    assert note.startswith("- **partial**: BD-rate over 1/3 clips; left out: b\\_clip, c\\_clip (e.g. b\\_clip: not comparable")


def test_html_states_coverage_and_names_the_clips_left_out(doc):
    html = render_html(doc)
    assert "(1/3 clips)" in html and "(3/3 clips)" in html
    assert "left out: b_clip, c_clip" in html
