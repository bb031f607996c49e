"""What `pytest benchmarks/` prints at the end: the leaderboard; and what it runs: codecs, not the harness's speed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

from harness.render.terminal import leaderboard_lines

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "report_small.json"


def test_the_leaderboard_ranks_candidates_with_coverage_and_names_the_renderings():
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    lines = leaderboard_lines(doc, Path("reports/run-1.json"))
    assert lines[0].split()[:2] == ["candidate", "verdict"] and "PSNR-YUV vs x265" in lines[0]
    rows = {line.split()[0]: line for line in lines[1 : 1 + len(doc["candidates"])]}
    assert set(rows) == set(doc["candidates"])
    for name, cand in doc["candidates"].items():
        slot = cand["bd_overall"].get("x265", {}).get("psnr_yuv", {})
        if slot.get("bd_rate") is not None:
            judged = len(slot["clips"]) + len(slot["excluded"])
            assert f"{slot['bd_rate']:+.1f} % ({len(slot['clips'])}/{judged})" in rows[name], rows[name]
    assert lines[-1] == "HTML: reports/run-1.html   Markdown: reports/run-1.md"
    flagged = copy.deepcopy(doc)
    name = next(iter(flagged["candidates"]))
    flagged["candidates"][name]["flags"] = ["too good to be true: confirm on held-out clips (BD-rate -97.0 %)"]
    assert f"WARNING {name}: too good to be true: confirm on held-out clips (BD-rate -97.0 %)" in leaderboard_lines(flagged)


def _collected(*extra: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_the_main_job_judges_codecs_and_the_harness_benchmarks_are_opt_in():
    default = _collected()
    assert default and all(line.startswith("benchmarks/test_codecs.py::") for line in default), default[-5:]
    everything = _collected("--harness-benchmarks")
    extra = set(everything) - set(default)
    assert any("test_metrics_speed.py::" in line for line in extra) and any("test_speed.py::" in line for line in extra)
