"""Progress of `pytest benchmarks/`: a line per candidate x clip stage, quiet under -q, none under xdist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.progress import Progress, stages

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "fixtures" / "svt_park_joy_160x90_10f.y4m"


def test_a_stage_is_announced_once_by_the_first_test_that_starts_it():
    lines: list[str] = []
    now = iter([0.0, 0.5, 3.25, 9.0, 12.0])
    progress = Progress(lines.append, clock=lambda: next(now))
    tests = {
        "c": ("test_contract", {"candidate": "a"}),
        "rt0": ("test_round_trip", {"candidate": "a", "clip": "bikes", "rung": 0}),
        "rate0": ("test_rate", {"candidate": "a", "clip": "bikes", "rung": 0}),
        "rt1": ("test_round_trip", {"candidate": "a", "clip": "bikes", "rung": 1}),
        "det": ("test_determinism", {"candidate": "a", "clip": "bikes"}),
    }
    for nodeid, (test, params) in tests.items():
        progress.expect(nodeid, test, params)
    progress.begin()
    for nodeid in tests:
        progress.started(nodeid)
    assert lines == [
        "[   0.5 s] a: contract check (imports in the sandbox)",
        (
            "[   3.2 s] bikes: rate anchor encodes (from the cache when nothing changed)\n"
            "[   3.2 s] a x bikes: encode at r0, decode, metrics"
        ),
        "[   9.0 s] a x bikes: encode at r1, decode, metrics",
        "[  12.0 s] a x bikes: determinism (encode and decode again at every rung)",
    ]


def test_a_candidate_whose_contract_failed_announces_no_more_stages():
    lines: list[str] = []
    progress = Progress(lines.append, clock=lambda: 1.0)
    progress.expect("c", "test_contract", {"candidate": "a"})
    progress.expect("rt", "test_round_trip", {"candidate": "a", "clip": "k", "rung": 2})
    progress.begin()
    progress.started("c")
    progress.block("a")
    progress.started("rt")
    assert lines == [
        "[   0.0 s] a: contract check (imports in the sandbox)",
        "[   0.0 s] k: rate anchor encodes (from the cache when nothing changed)",
    ]
    assert stages("test_something_else", {"candidate": "a", "clip": "k"}) == []


def test_a_long_stage_is_repeated_with_its_time_only_while_a_test_runs():
    lines: list[str] = []
    now = [0.0]
    progress = Progress(lines.append, clock=lambda: now[0], heartbeat_s=8.0)
    progress.expect("det", "test_determinism", {"candidate": "a", "clip": "bikes"})
    progress.begin()
    progress.tick()  # nothing started yet
    now[0] = 2.0
    progress.running(True)
    progress.started("det")
    for t in (3.0, 9.9, 10.0, 12.0, 18.5, 30.0):
        now[0] = t
        progress.tick()
    progress.running(False)  # pytest writes the result now: no heartbeat may come in between
    now[0] = 60.0
    progress.tick()
    assert lines == [
        "[   2.0 s] a x bikes: determinism (encode and decode again at every rung)",
        "[  10.0 s] a x bikes: determinism (encode and decode again at every rung) (still running, 8 s)",
        "[  18.5 s] a x bikes: determinism (encode and decode again at every rung) (still running, 16 s)",
        "[  30.0 s] a x bikes: determinism (encode and decode again at every rung) (still running, 28 s)",
    ]


def _run(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if not CLIP.is_file():
        pytest.fail(f"development clip missing: {CLIP}", pytrace=False)
    clips = tmp_path / "clips"
    if not clips.is_dir():
        clips.mkdir()
        shutil.copy(CLIP, clips / "park_joy.y4m")
        (tmp_path / "ledger.jsonl").write_text("")  # no champion joins: only x264_pyav's stages
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "benchmarks/test_codecs.py", "-p", "no:cacheprovider", "-p", "no:randomly",
            f"--clips={clips}", "--frames=2", "--candidates=x264_pyav", f"--report-dir={tmp_path / 'r'}",
            f"--cache-dir={tmp_path / 'cache'}", f"--ledger={tmp_path / 'ledger.jsonl'}", "-k", "test_contract or test_round_trip", *extra,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **(env or {})},
    )


STAGE = re.compile(r"^\[ *\d+\.\d s\] (.*?)(?<!\(still running, \d s\))(?<!\(still running, \d\d s\))$", re.MULTILINE)
HEARTBEAT = re.compile(r"^\[ *(\d+\.\d) s\] (.*) \(still running, (\d+) s\)$", re.MULTILINE)


def test_the_suite_prints_a_plain_line_per_stage_and_is_quiet_under_q(tmp_path):
    out = _run(tmp_path)
    text = out.stdout + out.stderr
    assert "\r" not in out.stdout and "Traceback" not in text, text[-3000:]
    assert STAGE.findall(out.stdout) == [
        "x264_pyav: contract check (imports in the sandbox)",
        "park_joy: rate anchor encodes (from the cache when nothing changed)",
        *[f"x264_pyav x park_joy: encode at r{r}, decode, metrics" for r in range(4)],
    ], out.stdout[-3000:]
    quiet = _run(tmp_path, "-q")
    assert not STAGE.findall(quiet.stdout) and quiet.returncode == out.returncode, quiet.stdout[-3000:]


def test_a_run_is_never_silent_longer_than_the_heartbeat(tmp_path):
    """With a 0.5 s heartbeat, a stage that takes longer (the anchors' encodes, a sandboxed call) is
    repeated with its time while its test runs; the lines stay whole and pytest's results intact."""
    out = _run(tmp_path, "--rerun", env={"CODEC_HARNESS_HEARTBEAT_S": "0.5"})
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "\r" not in out.stdout and "Traceback" not in text, text[-3000:]
    beats = HEARTBEAT.findall(out.stdout)
    assert beats, out.stdout[-3000:]
    assert {stage for _, stage, _ in beats} <= set(STAGE.findall(out.stdout)), out.stdout[-3000:]
    times = [float(t) for t in re.findall(r"^\[ *(\d+\.\d) s\]", out.stdout, re.MULTILINE)]
    assert times == sorted(times), out.stdout[-3000:]
    assert re.search(r"^\d+ passed", out.stdout.splitlines()[-1].strip("= ")), out.stdout[-3000:]


def test_under_xdist_the_run_works_without_progress_lines(tmp_path):
    out = _run(tmp_path, "-n", "2")
    text = out.stdout + out.stderr
    assert not STAGE.findall(out.stdout) and "INTERNALERROR" not in text, text[-3000:]
    assert re.search(r"\d+ (passed|failed)", out.stdout), text[-3000:]
