"""The sandbox and hostile tests again as an ordinary user: the mode GitHub's runners and most people run.

As root, bwrap runs without a user namespace and the worker drops to another uid; as an
ordinary user, bwrap makes a user namespace and the candidate runs as the harness's own uid,
so whatever the harness's files allow its user, the candidate is allowed too. The two modes
differ (a source reopened through /proc was writable only in the second), so both are tested:
when these tests run as root, this one runs tests/test_sandbox.py, tests/test_hostile.py and
the memorized-clips case of tests/test_suite_e2e.py in a subprocess as uid `CODEC_HARNESS_TEST_UID` (default 65534, nobody), which needs the
interpreter and the checkout readable by that uid (.ci/run makes them so).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INNER = "CODEC_HARNESS_UNPRIVILEGED_RUN"
UID = int(os.environ.get("CODEC_HARNESS_TEST_UID", "65534"))

pytestmark = pytest.mark.sandbox


def _unreachable_for(uid: int) -> list[str]:
    """Paths the unprivileged run needs that `uid` cannot read or traverse (checked as that uid)."""
    needed = [os.path.realpath(sys.executable), str(REPO / "tests" / "test_sandbox.py"), str(REPO / "harness")]
    probe = "import os,sys; print('\\n'.join(p for p in sys.argv[1:] if not os.access(p, os.R_OK)))"
    out = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/python3", "-c", probe, *needed],
        capture_output=True, text=True, timeout=30, check=False,
    )
    return [line for line in out.stdout.splitlines() if line] or ([out.stderr.strip()] if out.returncode else [])


@pytest.fixture
def home():
    """A home and temporary folder the unprivileged uid owns (pytest's own tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="codec-harness-unprivileged-"))
    os.chown(path, UID, UID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_sandbox_and_hostile_tests_pass_as_an_ordinary_user(home):
    if os.environ.get(INNER):
        pytest.skip("this is the unprivileged run itself")
    if os.geteuid() != 0:
        pytest.skip("already running as an ordinary user: the other sandbox tests run in this mode")
    if not shutil.which("setpriv"):
        pytest.fail("setpriv (util-linux) is needed to run the tests as an ordinary user", pytrace=False)
    blocked = _unreachable_for(UID)
    if blocked:
        message = (
            f"uid {UID} cannot read {blocked}: give it read and traverse access (e.g. `chmod o+rx` on the "
            "folders leading to the interpreter), or set CODEC_HARNESS_TEST_UID to a user that can"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", INNER: "1",
        "XDG_CACHE_HOME": str(home / ".cache"), "TMPDIR": str(home),
    }
    cmd = [
        "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--inh-caps=-all",
        sys.executable, "-m", "pytest", "tests/test_sandbox.py", "tests/test_hostile.py",
        "tests/test_suite_e2e.py::test_memorized_public_clips_are_flagged_and_fail_on_held_out_clips",
        "-p", "no:cacheprovider", "-q", "-rfEs", "--basetemp", str(home / "pytest"),
    ]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False)
    tail = (out.stdout + out.stderr)[-6000:]
    assert out.returncode == 0, f"the sandbox or hostile tests failed as uid {UID}:\n{tail}"
    summary = re.search(r"(\d+) passed", out.stdout)
    assert summary and int(summary.group(1)) >= 60, f"too few tests ran as uid {UID}:\n{tail}"
    assert " failed" not in out.stdout.splitlines()[-1], tail
