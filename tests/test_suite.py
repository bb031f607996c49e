"""harness.suite: the suite's options declared once, and run_suite, the one way to run the suite.

The real run judges the lossless control candidate on the default clips (the anchor cache is the
user's default one, as for `pytest benchmarks/`, so a second run encodes nothing) from a project
root that holds only candidates/ and fixtures/: the suite itself is found beside the harness
package. The timeout and no-report cases run a stand-in for python, without pytest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results import RunResults
from harness.suite import SUITE_FILE, SuiteError, SuiteOptions, locate_suite, run_suite

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]

EVERY_OPTION = SuiteOptions(
    clips="shared",
    heldout="/clips/held out",
    frames=3,
    candidates=("dct_inter", "x264_pyav"),
    candidates_dir=Path("/p/cands"),
    fixtures_dir=Path("rel/fixtures"),
    sandbox="none",
    sandbox_gpu=True,
    report_dir=Path("/p/reports"),
    cache_dir=Path("/p/cache"),
    refresh_anchors=True,
    rerun=True,
    ledger=Path("/p/ledger.jsonl"),
    harness_benchmarks=True,
)


def parse(pytester: pytest.Pytester, args: list[str]) -> SuiteOptions:
    return SuiteOptions.from_config(pytester.parseconfig("-p", "harness.plugin", *args))


@pytest.mark.parametrize(
    "options",
    [SuiteOptions(), EVERY_OPTION, SuiteOptions(clips="-odd-name", candidates=("a",), frames=0)],
    ids=["defaults", "every-option", "dash-value"],
)
def test_options_round_trip_through_the_plugins_command_line(pytester, options):
    assert parse(pytester, options.to_pytest_args()) == options


def test_every_field_is_an_option_and_defaults_give_no_flags(pytester):
    assert SuiteOptions().to_pytest_args() == []
    flags = [flag for flag, _ in SuiteOptions.option_specs()]
    assert flags == [
        "--profile", "--clips", "--heldout", "--frames", "--candidates", "--candidates-dir", "--fixtures-dir", "--sandbox",
        "--sandbox-gpu", "--report-dir", "--cache-dir", "--refresh-anchors", "--rerun", "--ledger", "--harness-benchmarks",
    ]
    assert EVERY_OPTION.to_pytest_args()[:6] == ["--clips", "shared", "--heldout", "/clips/held out", "--frames", "3"]
    assert "--candidates" in EVERY_OPTION.to_pytest_args()
    assert parse(pytester, ["--candidates", " a, ,b "]).candidates == ("a", "b")
    assert parse(pytester, ["--candidates", ""]).candidates is None
    assert SuiteOptions(candidates="a,b", ledger="x.jsonl") == SuiteOptions(candidates=["a", "b"], ledger=Path("x.jsonl"))


def test_project_root_fills_in_the_folders(tmp_path):
    (tmp_path / "fixtures").mkdir()
    opts = SuiteOptions(cache_dir=Path("cache"), ledger=Path("/abs/ledger.jsonl")).for_project(tmp_path)
    root = tmp_path.resolve()
    assert opts.candidates_dir == root / "candidates" and opts.report_dir == root / "reports"
    assert opts.fixtures_dir == root / "fixtures" and opts.cache_dir == root / "cache"
    assert opts.ledger == Path("/abs/ledger.jsonl")
    # no fixtures/ in the root: left to the suite's own (the plugin's default)
    assert SuiteOptions().for_project(tmp_path / "elsewhere").fixtures_dir is None


def test_run_suite_from_a_root_with_only_candidates_and_fixtures(tmp_path):
    project = tmp_path / "project"
    (project / "candidates").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "candidates_ok" / "zlib_lossless.py", project / "candidates")
    shutil.copytree(REPO / "fixtures", project / "fixtures")
    log = tmp_path / "suite.log"

    run = run_suite(SuiteOptions(), ["zlib_lossless"], root=project, log=log, pytest_args=["-q"], timeout=900)

    text = log.read_text()
    assert text.startswith("$ ") and str(REPO / SUITE_FILE) in text.splitlines()[0]
    assert run.problem is None and not run.timed_out, run.problem
    assert run.report is not None and run.report.parent == (project / "reports").resolve()
    assert run.report.name.startswith("run-") and (project / "reports" / "latest.json").exists()
    assert isinstance(run.results, RunResults) and run.ok
    assert list(run.results.candidates) == ["zlib_lossless"]
    assert run.results.settings["candidates_dir"] == str((project / "candidates").resolve())
    assert run.results.champion is None  # the project's ledger.jsonl does not exist: no champion
    tests = run.results.tests
    assert tests and all(t["outcome"] in ("passed", "failed") for t in tests.values())
    # lossless cannot meet the low rates: some test fails, and the exit status says so
    assert run.returncode == (0 if all(t["outcome"] == "passed" for t in tests.values()) else 1)
    assert any(t["outcome"] == "failed" for t in tests.values())
    assert all(k.startswith("benchmarks/test_codecs.py::") for k in tests)


def fake_python(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    python = fake_python(tmp_path, f"sleep 300 &\necho $! > {pid_file}\nsleep 300\n")
    start = time.monotonic()
    run = run_suite(SuiteOptions(), root=tmp_path, python=python, timeout=2, log=tmp_path / "log")
    assert time.monotonic() - start < 30
    assert run.timed_out and run.returncode is None and run.report is None and run.results is None
    assert "did not finish within 2 s and was killed" in run.problem
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the suite's own child outlived the timeout"


def test_a_run_that_writes_no_report_says_so_with_its_output(tmp_path):
    python = fake_python(tmp_path, "echo 'ERROR: usage: no such option' >&2\nexit 4\n")
    run = run_suite(SuiteOptions(frames=2), ["a", "b"], root=tmp_path, python=python, log=tmp_path / "log")
    assert run.returncode == 4 and run.report is None and not run.ok
    assert "wrote no report (exit status 4)" in run.problem and "no such option" in run.problem
    assert run.command[1:4] == ["-m", "pytest", str(REPO / SUITE_FILE)]
    assert run.command[run.command.index("--candidates") + 1] == "a,b"
    assert run.command[run.command.index("--report-dir") + 1] == str(tmp_path.resolve() / "reports")


def test_the_suite_is_found_from_a_copy_of_the_package_outside_the_checkout(tmp_path):
    """An installed harness (here: a copy on PYTHONPATH) finds the suite in the project root, or says
    where it looked; the child it starts imports that same package."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "harness", site / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    project = tmp_path / "project"
    project.mkdir()
    probe = (
        "import json, sys\n"
        "from harness.suite import SuiteError, _child_env, locate_suite\n"
        "try:\n"
        "    found = str(locate_suite(sys.argv[1]))\n"
        "except SuiteError as err:\n"
        "    found = 'error: ' + str(err)\n"
        "import harness\n"
        "print(json.dumps([found, harness.__file__, _child_env({})['PYTHONPATH']]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}

    def ask() -> list[str]:
        out = subprocess.run([sys.executable, "-c", probe, str(project)], cwd=project, env=env,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    found, package, pythonpath = ask()
    assert package == str(site / "harness" / "__init__.py")
    assert pythonpath.split(os.pathsep)[0] == str(site)
    assert found.startswith("error: cannot find the suite benchmarks/test_codecs.py")
    assert str(project) in found and str(site) in found

    (project / "benchmarks").mkdir()
    shutil.copy(REPO / SUITE_FILE, project / SUITE_FILE)
    assert ask()[0] == str(project / SUITE_FILE)


def test_locate_suite_prefers_the_project_root(tmp_path):
    assert locate_suite(tmp_path) == REPO / SUITE_FILE  # nothing in the root: the checkout's
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / SUITE_FILE).write_text("")
    assert locate_suite(tmp_path) == (tmp_path / SUITE_FILE).resolve()
    with pytest.raises(SuiteError):
        run_suite(SuiteOptions(), root=tmp_path, suite=tmp_path / "nope.py", python="/nonexistent/python")
