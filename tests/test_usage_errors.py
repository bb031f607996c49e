"""Usage errors of `pytest benchmarks/`: pytest's one-line `ERROR: ...` and exit status 2, no traceback.

A bad --clips, an unknown candidate, a broken fixture file and a clip set with no usable clip are
the user's to fix before anything is judged: the run stops before collection, naming the problem.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEN_BIT = REPO.parent / "shared" / "fixtures" / "10bit" / "netflix_sparks_480x270_5f_10bit.mkv"


def _suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "-p", "no:cacheprovider", f"--report-dir={tmp_path / 'r'}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    """The single `ERROR: ...` line of a refused run (exit status 2, nothing collected, no traceback)."""
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "Traceback" not in text and "ERROR collecting" not in text and "INTERNALERROR" not in text, text[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "collected" not in out.stdout, out.stdout[-2000:]
    return errors[0]


def test_an_unknown_clip_set_is_one_line(tmp_path):
    line = _one_line_error(_suite(tmp_path, "--clips", "no-such-set"))
    assert "--clips 'no-such-set' is neither a clip set (default" in line, line


def test_an_unknown_candidate_is_one_line(tmp_path):
    line = _one_line_error(_suite(tmp_path, "--candidates", "no_such_codec"))
    assert "unknown candidate(s) no_such_codec; known: " in line and "dct_inter" in line, line


def test_a_broken_suite_config_is_one_line(tmp_path):
    fixtures = tmp_path / "fixtures"
    shutil.copytree(REPO / "fixtures", fixtures)
    (fixtures / "suite.toml").write_text("[suite\nbroken = ", encoding="utf-8")
    line = _one_line_error(_suite(tmp_path, f"--fixtures-dir={fixtures}"))
    assert "suite.toml" in line, line


def test_a_clip_set_without_a_usable_clip_is_refused_naming_each_clip(tmp_path):
    if not TEN_BIT.is_file():
        pytest.fail(f"the 10-bit development clip is missing: {TEN_BIT}", pytrace=False)
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(TEN_BIT, clips / "deep.mkv")
    (clips / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    line = _one_line_error(_suite(tmp_path, f"--clips={clips}"))
    assert "no usable clip in the clip set 'clips'" in line, line
    assert "broken: " in line and "broken.mp4" in line, line
    assert "deep: " in line and "10-bit" in line, line


def test_frames_zero_is_one_line(tmp_path):
    line = _one_line_error(_suite(tmp_path, "--frames", "0"))
    assert "--frames must be at least 1, got 0" in line, line
