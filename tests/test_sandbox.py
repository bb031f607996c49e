"""Isolation properties of the bubblewrap sandbox, observed from inside by probe candidates.

A probe is a tiny candidate written to tmp_path whose encode returns what it sees as JSON
(its decode raises with the same facts in the message). The test process plants secrets and
listeners on the host and asserts the probe sees none of them.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import harness.sandbox
from harness.candidate import discover_candidates
from harness.errors import SandboxError
from harness.runner import Runner
from harness.sandbox import Limits, Sandbox
from harness.video import Video

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
LIMITS = Limits(
    wall_s=20, cpu_s=30, memory_bytes=2 << 30, processes=24, file_bytes=128 << 20,
    tmp_bytes=16 << 20, open_files=128, flood_bytes=1 << 20,
)
SECRET_NAME = "ANTHROPIC_API_KEY"
SECRET = "sk-ant-api03-" + uuid.uuid4().hex  # fake, planted in this process's environment

PROBE = '''"""Isolation probe: reports what it can see from inside the sandbox."""
import ctypes, json, os, platform, resource, socket, sys

TMP_AT_IMPORT = sorted(os.listdir("/tmp"))
SHM_AT_IMPORT = sorted(os.listdir("/dev/shm"))
MARKER_BEFORE = os.path.exists("/tmp/probe-marker")
with open("/tmp/probe-marker", "w") as f:
    f.write("{call_id}")
HOST_PATHS = {host_paths!r}
TARGETS = {targets!r}
SECRET_NAME = {secret_name!r}


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return "connected"
    except OSError as err:
        return f"{{type(err).__name__}}: {{err}}"


def _try_write(directory):
    try:
        with open(os.path.join(directory, "probe-write-test"), "w") as f:
            f.write("x")
        return "written"
    except OSError as err:
        return f"{{type(err).__name__}}: {{err.strerror}}"


def _add_key():
    number = {{"x86_64": 248, "aarch64": 217}}.get(platform.machine())
    if number is None:
        return "unknown architecture"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except PermissionError as err:  # the worker's toolbox guard: no ctypes from a candidate
        return f"refused: {{err}}"[:120]
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(number, b"user", b"codec-probe", b"x", ctypes.c_size_t(1), ctypes.c_int(-4))
    return f"serial {{result}}" if result >= 0 else f"errno {{ctypes.get_errno()}}"


def facts():
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    cmdlines = {{p: (_read(f"/proc/{{p}}/cmdline", "rb") or b"").replace(b"\\0", b" ").decode(errors="replace") for p in pids}}
    environs = [(_read(f"/proc/{{p}}/environ", "rb") or b"") for p in pids]
    status = dict(line.split(":", 1) for line in (_read("/proc/self/status") or "").splitlines() if ":" in line)
    limits = {{name: list(resource.getrlimit(getattr(resource, name))) for name in (
        "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE")}}
    return {{
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "pid": os.getpid(),
        "pids": pids, "cmdlines": cmdlines,
        "env": dict(os.environ),
        "secret_in_proc_environ": any(SECRET_NAME.encode() in e for e in environs),
        "tmp_at_import": TMP_AT_IMPORT, "shm_at_import": SHM_AT_IMPORT, "marker_before": MARKER_BEFORE,
        "host_paths": {{p: (sorted(os.listdir(p)) if os.path.isdir(p) else "file") if os.path.exists(p) else None
                       for p in HOST_PATHS}},
        "writes": {{d: _try_write(d) for d in ["/", "/usr", "/etc", "/opt", "/opt/codec-sandbox",
                                              "/opt/codec-sandbox/candidate", "/opt/codec-sandbox/lib/harness",
                                              os.path.dirname(os.path.abspath(__file__)), sys.prefix, "/tmp", "/dev/shm"]}},
        "connect": {{f"{{h}}:{{p}}": _connect(h, p) for h, p in TARGETS}},
        "interfaces": [line.split(":")[0].strip() for line in (_read("/proc/net/dev") or "").splitlines()[2:]],
        "rlimits": limits,
        "cap_eff": status.get("CapEff", "").strip(),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "add_key": _add_key(),
        "sched": os.sched_getscheduler(0),
    }}


def encode(video, target_bitrate):
    return json.dumps(facts()).encode()


def decode(bitstream):
    raise RuntimeError("FACTS:" + json.dumps(facts()))
'''


def _host_ip() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the outgoing interface
            ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


def _tiny_video() -> Video:
    y = np.full((1, 16, 16), 100, np.uint8)
    c = np.full((1, 8, 8), 128, np.uint8)
    return Video(y, c, c.copy(), Fraction(25))


def _python_root_dirs() -> set[str]:
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    roots |= {os.path.realpath(p) for p in sys.path if "site-packages" in p and os.path.isdir(p)}
    return roots


def _allowed_children(directory: str) -> set[str]:
    """Names under `directory` the sandbox must show because the Python installation lives there."""
    out = set()
    for root in _python_root_dirs():
        if root.startswith(directory.rstrip("/") + "/"):
            out.add(root[len(directory.rstrip("/")) + 1 :].split("/")[0])
    return out


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """Runs the probe's encode twice and decode once, with a secret in the environment and a listener on the host."""
    if not (SHARED / "fixtures").is_dir():
        pytest.fail(f"../shared not found at {SHARED}; clone the project beside it", pytrace=False)
    folder = tmp_path_factory.mktemp("probe")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    targets = [("127.0.0.1", port), ("1.1.1.1", 80), ("8.8.8.8", 53)]
    if (ip := _host_ip()) is not None:
        targets.append((ip, port))
    host_paths = [str(REPO), str(SHARED), str(SHARED / "fixtures"), str(Path.home()), str(folder), os.getcwd(), "/work"]
    (folder / "probe.py").write_text(
        PROBE.format(call_id=uuid.uuid4().hex, host_paths=host_paths, targets=targets, secret_name=SECRET_NAME)
    )
    host_only = Path("/tmp") / f"host-only-{uuid.uuid4().hex}"  # in the host's /tmp, never in the sandbox's
    host_only.mkdir()
    candidate = discover_candidates(folder)[0]
    runner = Runner(sandbox=Sandbox(mode="bwrap"), limits=LIMITS)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(SECRET_NAME, SECRET)
            mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
            runs = [runner.encode(candidate, _tiny_video(), 1e6) for _ in range(2)]
            dec, _ = runner.decode(candidate, b"anything")
    finally:
        host_only.rmdir()
    for outcome, _ in runs:
        assert outcome.ok, outcome.details()
    assert not dec.ok and "FACTS:" in dec.message, dec.details()
    try:
        accepted = listener.accept()
    except BlockingIOError:
        accepted = None
    listener.close()
    first, second = (json.loads(data) for _, data in runs)
    decoded = json.loads(dec.message.split("FACTS:", 1)[1].splitlines()[0])
    yield {
        "first": first, "second": second, "decode": decoded, "accepted": accepted, "targets": targets,
        "host_only": host_only.name, "folder": str(folder),
    }
    from tests.test_hostile import purge_sandbox_keys

    purge_sandbox_keys()


def test_environment_is_cleared(probe):
    for facts in (probe["first"], probe["decode"]):
        env = facts["env"]
        assert SECRET_NAME not in env and "AWS_SECRET_ACCESS_KEY" not in env
        assert SECRET not in json.dumps(env)
        assert not facts["secret_in_proc_environ"], "the secret is readable in some /proc/<pid>/environ"
        assert set(env) <= {
            "PATH", "HOME", "TMPDIR", "LANG", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PWD",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "SVT_LOG",
        }, sorted(env)


def test_no_network(probe):
    facts = probe["first"]
    for target, result in facts["connect"].items():
        assert result != "connected", f"the sandbox reached {target}"
        assert "unreachable" in result or "refused" in result, f"{target}: {result}"
    assert facts["interfaces"] == ["lo"], facts["interfaces"]
    assert probe["accepted"] is None, "the host listener got a connection from the sandbox"


def test_file_system_is_read_only_except_private_tmp(probe):
    writes = probe["first"]["writes"]
    for directory, result in writes.items():
        if directory in ("/tmp", "/dev/shm"):
            assert result == "written", f"{directory}: {result}"
        else:
            assert result != "written", f"the candidate wrote into {directory}"
            assert "Read-only file system" in result or "Permission denied" in result, f"{directory}: {result}"


def test_tmp_is_private_and_empty_on_every_call(probe):
    allowed = _allowed_children("/tmp")  # a Python environment that lives under /tmp stays visible
    for facts in (probe["first"], probe["second"], probe["decode"]):
        assert set(facts["tmp_at_import"]) <= allowed, f"/tmp is not empty: {facts['tmp_at_import']}"
        assert facts["shm_at_import"] == []
        assert facts["marker_before"] is False, "a file written by an earlier call was still in /tmp"
    assert probe["host_only"] not in probe["first"]["tmp_at_import"]


def test_repository_shared_clips_and_home_are_invisible(probe):
    seen = probe["decode"]["host_paths"]
    for path, listing in seen.items():
        if path in ("/work",) or path.startswith((str(REPO), str(SHARED))) or "pytest-of" in path:
            # A virtual environment inside the repository (.venv) is bound, and only it.
            assert listing is None or set(listing) <= _allowed_children(path), (
                f"{path} is visible in the sandbox: {listing}"
            )
    home = str(Path.home())
    assert set(seen[home] or []) <= _allowed_children(home), f"home shows {seen[home]}"
    # The only processes in view are the sandbox's own bwrap (pid 1) and the worker: never the test runner.
    others = [c for c in probe["decode"]["cmdlines"].values() if "bwrap" not in c and "harness.worker" not in c]
    assert not others, others


def test_command_lines_inside_name_no_host_path(probe):
    """bwrap's options (every bind's host path, the environment) travel by descriptor, not on pid 1's command line."""
    cmdlines = probe["decode"]["cmdlines"]
    assert any(c.startswith(("bwrap --args", f"{shutil.which('bwrap')} --args")) for c in cmdlines.values()), cmdlines
    for pid, cmdline in cmdlines.items():
        for host in (probe["folder"], str(REPO / "harness"), SECRET_NAME, "--ro-bind", "--setenv", "--tmpfs"):
            assert host not in cmdline, f"pid {pid} shows {host!r}: {cmdline}"


def test_decoder_gets_only_its_own_descriptors(probe):
    # stdin/stdout/stderr, the bitstream, the output, the status, and the one listing /proc/self/fd
    assert len(probe["decode"]["fds"]) <= 7, probe["decode"]["fds"]


def test_own_pid_namespace(probe):
    facts = probe["first"]
    assert facts["pid"] <= 3, f"pid {facts['pid']}: not a fresh PID namespace"
    assert len(facts["pids"]) <= 3, f"host processes visible: {facts['cmdlines']}"


def test_not_root_and_no_capabilities(probe):
    facts = probe["first"]
    assert facts["uid"] != 0 and facts["euid"] != 0, f"uid {facts['uid']} euid {facts['euid']}"
    assert int(facts["cap_eff"] or "0", 16) == 0, f"effective capabilities {facts['cap_eff']}"


def test_candidate_never_inherits_real_time_scheduling(probe):
    """A library in the harness's process can switch it to SCHED_FIFO (SVT-AV1 does, as root): the
    candidate must still run as an ordinary process, or its timings and the machine's fairness go."""
    assert probe["first"]["sched"] == os.SCHED_OTHER
    facts: list = []

    def call_from_a_fifo_thread():
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # this thread only
        except PermissionError:
            facts.append("unprivileged")
            return
        candidate = discover_candidates(Path(probe["folder"]))[0]
        outcome, data = Runner(sandbox=Sandbox(mode="bwrap"), limits=LIMITS).encode(candidate, _tiny_video(), 1e6)
        facts.append(json.loads(data)["sched"] if outcome.ok else outcome.details())

    thread = threading.Thread(target=call_from_a_fifo_thread)
    thread.start()
    thread.join(120)
    if facts == ["unprivileged"]:
        pytest.skip("setting SCHED_FIFO needs root or CAP_SYS_NICE; an unprivileged harness cannot pass it on")
    assert facts == [os.SCHED_OTHER], facts


def test_rlimits_are_in_effect(probe):
    limits = probe["first"]["rlimits"]
    assert limits["RLIMIT_AS"] == [LIMITS.memory_bytes] * 2
    assert limits["RLIMIT_CPU"][0] == LIMITS.cpu_s
    assert limits["RLIMIT_FSIZE"] == [LIMITS.file_bytes] * 2
    assert limits["RLIMIT_NOFILE"] == [LIMITS.open_files] * 2
    assert limits["RLIMIT_NPROC"] == [LIMITS.processes] * 2
    assert limits["RLIMIT_CORE"] == [0, 0]
    # and they did not leak into this process
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != LIMITS.memory_bytes


def test_kernel_keyring_is_closed(probe):
    assert not probe["first"]["add_key"].startswith("serial"), probe["first"]["add_key"]


SLEEPER = '''"""Sleeper: forks a detached child (its command line names this file), then blocks past the wall-clock limit."""
import os, sys, time


def encode(video, target_bitrate):
    if os.fork() == 0:
        os.setsid()  # a fork, not a new program (no exec in the sandbox): its command line names this file
        time.sleep(120)
        os._exit(0)
    time.sleep(120)


def decode(bitstream):
    raise NotImplementedError
'''


def test_timeout_kills_the_whole_process_tree(tmp_path):
    marker = f"sleeper_{uuid.uuid4().hex}"  # the candidate's file name, in its forked child's command line
    (tmp_path / f"{marker}.py").write_text(SLEEPER.format(marker=marker))
    candidate = discover_candidates(tmp_path)[0]
    limits = Limits(wall_s=2, memory_bytes=1 << 30, processes=16, tmp_bytes=8 << 20)
    start = time.perf_counter()
    outcome, _ = Runner(sandbox=Sandbox(mode="bwrap"), limits=limits).encode(candidate, _tiny_video(), 1e6)
    assert time.perf_counter() - start < limits.wall_s + 3
    assert outcome.kind == "timeout", outcome.details()
    deadline = time.monotonic() + 3
    while True:
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
        if marker not in ps or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert marker not in ps, [line for line in ps.splitlines() if marker in line]


def test_missing_bwrap_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(harness.sandbox.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(SandboxError, match=r"apt-get install bubblewrap"):
        Sandbox(mode="bwrap")


@pytest.mark.parametrize("field", ["wall_s", "memory_bytes", "processes", "tmp_bytes", "flood_bytes"])
@pytest.mark.parametrize("value", [0, -1])
def test_limits_must_be_positive(field, value):
    with pytest.raises(SandboxError, match=field):
        Limits(**{field: value})


def test_unknown_sandbox_mode_is_refused():
    with pytest.raises(SandboxError, match="unknown sandbox mode"):
        Sandbox(mode="docker")  # type: ignore[arg-type]


_ALLOCATE = '''"""Allocates and touches 200 MiB in encode: a known peak of its own."""
import numpy as np
from harness.video import Video


def encode(video, target_bitrate):
    block = np.ones(200 << 20, np.uint8)
    return bytes([int(block[::4096].sum() % 251)])


def decode(bitstream):
    raise NotImplementedError
'''


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_peak_memory_is_the_candidates_not_the_parents(tmp_path, mode):
    """A call's peak memory is measured in the sandboxed process: 2 GiB held by the harness (the
    parent pytest forks from) changes nothing; the candidate's own 200 MiB shows."""
    (tmp_path / "alloc.py").write_text(_ALLOCATE)
    cand = discover_candidates(tmp_path)[0]
    runner = Runner(sandbox=Sandbox(mode=mode), limits=Limits(wall_s=60, memory_bytes=2 << 30))

    def peak() -> int:
        outcome, _ = runner.encode(cand, _tiny_video(), 1e5)
        assert outcome.ok, outcome.details()
        return outcome.peak_rss_bytes

    quiet = peak()
    ballast = np.ones(2 << 30, np.uint8)  # touched: resident in this process
    try:
        loaded = peak()
    finally:
        del ballast
    assert 200 << 20 < quiet < 600 << 20, quiet >> 20
    assert abs(loaded - quiet) < 64 << 20, (quiet >> 20, loaded >> 20)


TOOLBOX_PROBE = '''"""Toolbox probe: tries modules outside the toolbox and every route to an executable."""
import glob, json, os, sys

TRACK = {track!r}


def _try(fn):
    try:
        return "ok: " + str(fn())[:100]
    except BaseException as err:
        return f"{{type(err).__name__}}: {{err}}"[:300]


def _executables():
    found = []
    for root in ["/", *sys.path]:  # the whole visible tree (the host's venv may sit anywhere, /tmp too)
        for dirpath, dirnames, filenames in os.walk(root or "."):
            if dirpath == "/":
                dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                if ".so" not in name and os.access(path, os.X_OK) and os.path.isfile(path):
                    with open(path, "rb") as f:
                        if f.read(4) == b"\\x7fELF":  # a program (scripts need one to run them)
                            found.append(path)
    return sorted(set(found))


def encode(video, target_bitrate):
    out = {{m: _try(lambda m=m: __import__(m)) for m in ("scipy", "PIL", "anthropic", "imageio_ffmpeg", "skimage", "av")}}
    out["sh"] = _try(lambda: __import__("subprocess").run(["/bin/sh", "-c", "true"]))
    out["python"] = _try(lambda: __import__("subprocess").run([sys.executable, "-c", "pass"]))
    out["paths"] = {{p: os.path.exists(p) for p in ("/bin/sh", "/usr/bin", "/bin", "/sbin", "/usr/local/bin")}}
    out["executables"] = _executables()
    out["interpreter"] = os.path.realpath(sys.executable)
    return json.dumps(out).encode()


def decode(bitstream):
    raise NotImplementedError
'''


@pytest.mark.parametrize("track", ["native", "open"])
def test_only_the_toolbox_imports_and_no_executable_runs(tmp_path, track):
    """Inside the sandbox scipy, PIL, anthropic and imageio_ffmpeg are not there (the toolbox message
    says what is), no executable but the interpreter is visible, and none can be run."""
    from harness.toolbox import load_toolbox

    (tmp_path / "toolprobe.py").write_text(TOOLBOX_PROBE.format(track=track))
    cand = discover_candidates(tmp_path)[0]
    assert cand.track == track
    outcome, data = Runner(sandbox=Sandbox(mode="bwrap"), limits=LIMITS).encode(cand, _tiny_video(), 1e6)
    assert outcome.ok, outcome.details()
    got = json.loads(data)
    available = load_toolbox().available_text(track)
    for module in ("scipy", "PIL", "anthropic", "imageio_ffmpeg", "skimage"):
        assert got[module] == f"ModuleNotFoundError: No module named '{module}': it is not in the {track} toolbox. {available}"[:300], got[module]
    if track == "native":
        assert got["av"].startswith("ModuleNotFoundError: No module named 'av': PyAV (av) is a library codec; a native")
    else:
        assert got["av"].startswith("ok: "), got["av"]
    for route in ("sh", "python"):
        assert got[route].startswith("PermissionError: running an executable (subprocess.Popen"), got[route]
    assert not any(got["paths"].values()), got["paths"]
    assert got["executables"] in ([], [got["interpreter"]]), got["executables"][:20]
