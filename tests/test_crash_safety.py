"""Crash safety and concurrency of `pytest benchmarks/`, the result cache, the reports and the ledger.

- SIGKILL of a whole suite run (its process group) at seeded random moments: every report is
  complete valid JSON, earlier reports are unchanged, every cache entry verifies, the ledger
  parses, nothing of the killed run keeps running, and the next complete run succeeds.
- SIGKILL of a process appending to the ledger in a loop: the ledger holds a prefix of the
  appends, every line complete, and the next append continues the sequence.
- Two suite runs at once on the same cache, ledger and report folder; pytest-xdist `-n 2`
  gives the same bitstreams and metrics as `-n 0`; four processes appending to one ledger.

Runs are real: `python -m pytest benchmarks/test_codecs.py` in a subprocess (sandboxed with
bwrap) on a 3-frame 160x90 clip, with a ledger whose champion is dct_inter. One module-wide
cache means the anchors are encoded once. The clip gets 16 random luma samples so that the
decoded copy each run keeps in /dev/shm is recognisably this session's (and removed at the end).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.cache import ResultCache
from harness.candidate import discover_candidates
from harness.ledger import Ledger, LedgerEntry
from harness.results import load_report
from harness.video import read_video

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "fixtures"
CLIP = "svt_park_joy_160x90_10f.y4m"
FRAMES = 3
RUN_TIMEOUT_S = 300
REPORT_NAME = re.compile(r"(run-\d{8}T\d{6}-\d+|latest)\.(json|html|md)")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_temp(name: str) -> bool:
    """write_text_atomic's and put_blob's temporary files (.NAME.XXXX.tmp), left by a kill before
    their rename; no reader opens them (reports are found as run-*.json, entries by key)."""
    return name.startswith(".") and name.endswith(".tmp")


@dataclass
class Workspace:
    root: Path
    clips: Path
    cache: Path
    ledger: Path
    reports: Path
    clip_sha: str  # Video.sha256 of the 3 frames judged: the name of the run's raw copy
    ledger_bytes: bytes = b""
    reference: dict = field(default_factory=dict)  # the first (-n 0, cold cache) run's report

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["XDG_CACHE_HOME"] = str(self.root / "xdg-cache")
        env["TMPDIR"] = str(self.root / "tmp")
        return env

    def suite(self, report_dir: Path, candidates: str = "x264_pyav", *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "pytest", "benchmarks/test_codecs.py",
            f"--clips={self.clips}", f"--frames={FRAMES}", f"--candidates={candidates}",
            f"--cache-dir={self.cache}", f"--report-dir={report_dir}", f"--ledger={self.ledger}",
            "-p", "no:cacheprovider", "-q", *extra,
        ]

    def start(self, cmd: list[str], log: str) -> subprocess.Popen:
        out = open(self.root / "logs" / f"{log}.log", "wb")  # noqa: SIM115 - closed by _finish
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc.log = out  # type: ignore[attr-defined]
        return proc

    def leftovers(self) -> list[str]:
        """Files holding this session's decoded clip outside a live process (there must be none)."""
        found = glob.glob(f"/dev/shm/**/{self.clip_sha}*", recursive=True)
        found += glob.glob(str(self.root / "tmp" / "**" / f"{self.clip_sha}*"), recursive=True)
        return sorted(found)


def _clip_memfds(pid: int) -> list[str]:
    """The sealed in-memory clip files a process holds (harness.clips.ClipStore)."""
    found = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/memfd:clip-"):
                found.append(target)
    except OSError:
        pass
    return found


def _finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = -9
    proc.log.close()  # type: ignore[attr-defined]
    return rc, Path(proc.log.name).read_text(errors="replace")  # type: ignore[attr-defined]


def _processes() -> dict[int, tuple[int, int]]:
    """Live (non-zombie) processes: pid -> (parent pid, process group)."""
    out = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            out[int(stat.split("/")[2])] = (int(fields[1]), int(fields[2]))
    return out


def _tree(root: int) -> set[int]:
    """`root`, its process group and all their descendants (sandboxed workers run in a session of their own)."""
    procs = _processes()
    found = {pid for pid, (_, pgid) in procs.items() if pgid == root} | {root}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group; nothing of it (sandboxed workers included) may survive."""
    tree = _tree(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while (alive := (tree | _tree(proc.pid)) & set(_processes())) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.log.close()  # type: ignore[attr-defined]
    assert not alive, f"processes of the killed run survive: {sorted(alive)}"


def _run_ok(ws: Workspace, cmd: list[str], log: str) -> dict:
    """Run the suite to the end; it must pass; returns the report it wrote."""
    rc, text = _finish(ws.start(cmd, log))
    assert rc == 0, f"{' '.join(cmd)} exited {rc}:\n{text[-4000:]}"
    match = re.search(r"codec harness result: (\S+\.json)", text)
    assert match, text[-2000:]
    return load_report(match.group(1)).to_json()


# ----------------------------------------------------------------------------- state checks


def _check_cache(cache_dir: Path) -> int:
    """Every entry and blob verifies and reads back through ResultCache; returns how many."""
    cache = ResultCache(cache_dir)
    count = 0
    for path in sorted(cache_dir.rglob("*")):
        if path.is_dir() or _is_temp(path.name) or path.suffix == ".lock":  # empty lock files of ResultCache.lock
            continue
        rel = path.relative_to(cache_dir)
        if rel.parts[0] == "blobs":
            assert cache.get_blob(path.name) is not None, f"blob {rel} does not match its hash"
        else:
            assert path.suffix == ".json", f"unexpected file {rel} in the cache"
            entry = json.loads(path.read_text(encoding="utf-8"))  # complete JSON, or this fails
            assert entry["key"] == path.stem, rel
            assert cache.get(rel.parts[0], entry["fields"]) == entry["value"], f"{rel} does not verify"
        count += 1
    assert cache.rejected == []
    return count


def _check_reports(report_dir: Path, before: dict[str, str]) -> dict[str, str]:
    """Reports are whole and valid, earlier ones untouched, latest.json a copy of a run; returns hashes."""
    now: dict[str, str] = {}
    for path in sorted(report_dir.iterdir()) if report_dir.exists() else []:
        if _is_temp(path.name):
            continue
        match = REPORT_NAME.fullmatch(path.name)
        assert match, f"unexpected file {path.name} in the reports folder"
        kind = match.group(2)
        if kind == "json":
            load_report(path)  # complete, valid JSON matching the schema
        elif kind == "html":
            assert path.read_text(encoding="utf-8").rstrip().endswith("</html>"), f"{path.name} is cut short"
        else:
            assert path.stat().st_size > 0, f"{path.name} is empty"
        now[path.name] = _sha(path)
    assert not [p for p in report_dir.glob("run-*.json") if _is_temp(p.name)]  # what readers glob
    for name, digest in before.items():
        if name.startswith("run-"):
            assert now.get(name) == digest, f"earlier report {name} changed or vanished"
    if "latest.json" in now:
        runs = {d for n, d in now.items() if n.startswith("run-") and n.endswith(".json")}
        assert now["latest.json"] in runs, "latest.json is not a copy of any run report"
    return now


def _check_ledger(ws: Workspace) -> None:
    assert ws.ledger.read_bytes() == ws.ledger_bytes, "a suite run changed the ledger"
    assert [e.candidate for e in Ledger(ws.ledger).entries()] == ["dct_inter"]


def _results(doc: dict) -> dict:
    """What must not depend on how the run was scheduled: bitstreams, decodes, metrics, outcomes."""
    out: dict = {"tests": {k: v["outcome"] for k, v in doc["tests"].items()}}
    for name, cand in doc["candidates"].items():
        for key, point in cand["points"].items():
            m = point["measurement"]
            out[f"{name}/{key}"] = (m["bitstream_sha256"], m["decoded_sha256"], m["bytes"], m["metrics"])
        for clip, det in cand["determinism"].items():
            out[f"{name}/determinism/{clip}"] = det["failure"]
    for clip, anchors in doc["anchors"].items():
        for anchor, points in anchors.items():
            for p in points:
                m = p["measurement"]
                out[f"anchor/{clip}/{anchor}/{p['qp']}"] = (m["bitstream_sha256"], m["decoded_sha256"], m["metrics"])
    return out


# ----------------------------------------------------------------------------- the workspace


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Workspace:
    source = SHARED / CLIP
    if not source.is_file():
        pytest.fail(f"development clip {source} is missing; clone the project beside ../shared")
    root = tmp_path_factory.mktemp("crash")
    for sub in ("clips", "logs", "tmp", "xdg-cache"):
        (root / sub).mkdir()
    data = bytearray(source.read_bytes())
    first_luma = data.index(b"FRAME\n") + len(b"FRAME\n")
    data[first_luma + 4000 : first_luma + 4016] = os.urandom(16)
    clip = root / "clips" / "park_joy.y4m"
    clip.write_bytes(data)
    ws = Workspace(
        root=root, clips=root / "clips", cache=root / "cache", ledger=root / "ledger.jsonl",
        reports=root / "reports", clip_sha=read_video(clip, max_frames=FRAMES)[0].sha256(),
    )
    dct = next(c for c in discover_candidates(REPO / "candidates") if c.name == "dct_inter")
    Ledger(ws.ledger).append(
        LedgerEntry(candidate="dct_inter", source_sha256=dct.sha256, decision="adopted", reason="crash-safety champion")
    )
    ws.ledger_bytes = ws.ledger.read_bytes()
    ws.reference = _run_ok(ws, ws.suite(ws.reports), "reference")
    assert set(ws.reference["candidates"]) == {"x264_pyav", "dct_inter"}
    yield ws


# ----------------------------------------------------------------------------- SIGKILL


def _kill_trial(ws: Workspace, log: str, *, after_s: float | None = None, after_tests_s: float | None = None) -> bool:
    """One run with --rerun --refresh-anchors (every encode and cache write happens again, so a kill
    can cut them), SIGKILLed `after_s` seconds after its start or `after_tests_s` after its last test
    (while it writes the report and its renderings). False when it finished first."""
    proc = ws.start(ws.suite(ws.reports, "x264_pyav", "--rerun", "--refresh-anchors"), log)
    path = Path(proc.log.name)  # type: ignore[attr-defined]
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < RUN_TIMEOUT_S:
        if after_s is not None and time.monotonic() - start >= after_s:
            break
        if after_tests_s is not None and "[100%]" in path.read_text(errors="replace"):
            time.sleep(after_tests_s)
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        rc, text = _finish(proc)
        assert rc == 0, text[-3000:]
        return False
    _kill_group(proc)
    return True


def test_sigkill_at_random_moments_leaves_everything_valid(ws):
    """Kill the whole run (-9, process group) at seeded moments from start-up to the report writes."""
    rng = random.Random(20261122)
    before = _check_reports(ws.reports, {})
    entries = _check_cache(ws.cache)
    # A complete run first: how long one takes here.
    start = time.monotonic()
    assert not _kill_trial(ws, "kill-0")
    duration = time.monotonic() - start
    # One moment in each quarter of the first 90 % of a run (start-up, anchors, candidates, gates),
    # then two in the report and rendering writes after the last test.
    plan = [{"after_s": max(0.3, (i + rng.random()) / 4 * 0.9 * duration)} for i in range(4)]
    plan += [{"after_tests_s": rng.uniform(0.0, 0.3)} for _ in range(2)]
    killed = []
    for i, when in enumerate(plan, 1):
        before = _check_reports(ws.reports, before)
        if _kill_trial(ws, f"kill-{i}", **when):
            killed.append(when)
        before = _check_reports(ws.reports, before)
        assert _check_cache(ws.cache) >= entries
        _check_ledger(ws)
    assert len(killed) >= 4, f"only {killed} of {plan} found the run still going (a complete run took {duration:.1f} s)"
    # After the kills, a complete run reuses what verifies and recomputes the rest, with the same results.
    doc = _run_ok(ws, ws.suite(ws.reports), "after-kills")
    _check_reports(ws.reports, before)
    _check_cache(ws.cache)
    _check_ledger(ws)
    assert _results(doc) == _results(ws.reference)


def test_corrupted_cache_entries_are_rejected_and_recomputed(ws):
    """Entries damaged on disk (cut, edited, garbage) are reported as rejected and written afresh."""
    entries = sorted(p for p in ws.cache.rglob("*.json") if p.parts[-3] in ("anchors", "points", "determinism"))
    by_kind = {kind: [p for p in entries if p.parts[-3] == kind] for kind in ("anchors", "points", "determinism")}
    damaged = {
        by_kind["anchors"][0]: lambda b: b[: len(b) // 2],
        by_kind["anchors"][1]: lambda b: b.replace(b'"bytes": ', b'"bytes": 1', 1),
        by_kind["points"][0]: lambda b: b.replace(b'"psnr_y": ', b'"psnr_y": 9', 1),
        by_kind["determinism"][0]: lambda b: os.urandom(len(b)),
    }
    for path, damage in damaged.items():
        good = path.read_bytes()
        path.write_bytes(damage(good))
        assert path.read_bytes() != good
    reports = ws.root / "corrupt-reports"
    doc = _run_ok(ws, ws.suite(reports), "corrupted-cache")
    rejected = set(doc["settings"]["anchor_cache"]["rejected"])
    assert {str(p) for p in damaged} <= rejected, rejected
    _check_cache(ws.cache)
    for path in damaged:
        assert path.exists(), f"{path} was not written again"
    assert _results(doc) == _results(ws.reference)


def test_killed_run_leaves_no_decoded_clip(ws):
    """The decoded clip lives in a sealed memfd of the run's own process: a killed run leaves no file
    (in /dev/shm, which is memory, or anywhere else) for a later run to sweep."""
    assert ws.leftovers() == []
    proc = ws.start(ws.suite(ws.root / "kill-clip-reports", "x264_pyav", "--rerun"), "clip-kill")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not _clip_memfds(proc.pid):
        time.sleep(0.05)
    try:
        assert _clip_memfds(proc.pid) and proc.poll() is None, "the run ended before it held its clip"
        assert ws.leftovers() == [], "the clip was written to a file"
        _kill_group(proc)
        assert ws.leftovers() == [], "a killed run left its decoded clip behind"
    finally:
        if proc.poll() is None:
            _kill_group(proc)


# ----------------------------------------------------------------------------- ledger under SIGKILL

_APPENDER = textwrap.dedent(
    """
    import sys
    from harness.ledger import Ledger, LedgerEntry
    ledger, tag, count = Ledger(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(count):
        ledger.append(LedgerEntry(candidate=f"{tag}-{i}", source_sha256="0" * 64, decision="rejected",
                                  reason=f"append {i} of {tag}", extra={"pad": "x" * (i % 300)}))
        print(i, flush=True)
    """
)


def _appender(ws: Workspace, ledger: Path, tag: str, count: int, log: str) -> subprocess.Popen:
    return ws.start([sys.executable, "-c", _APPENDER, str(ledger), tag, str(count)], log)


def test_sigkill_during_ledger_appends_keeps_a_prefix(ws):
    rng = random.Random(7)
    ledger_path = ws.root / "append-kill.jsonl"
    total = 0
    for trial in range(3):
        proc = _appender(ws, ledger_path, f"t{trial}", 1_000_000, f"append-kill-{trial}")
        log = Path(proc.log.name)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while not log.read_text().strip() and time.monotonic() < deadline:  # started appending
            assert proc.poll() is None, log.read_text()
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.8))
        _kill_group(proc)
        printed = len(log.read_text().split())
        text = ledger_path.read_text(encoding="utf-8")
        assert text.endswith("\n"), "the kill left a partial line (one os.write per line should prevent it)"
        entries = Ledger(ledger_path).entries()
        mine = [e for e in entries if e.candidate.startswith(f"t{trial}-")]
        # Every append that returned is on disk; at most one more (killed between write and print).
        assert printed <= len(mine) <= printed + 1, (printed, len(mine))
        assert [e.reason for e in mine] == [f"append {i} of t{trial}" for i in range(len(mine))]
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        total += len(mine)
        assert len(entries) == total
    # The lock of a killed appender is gone: the next append continues the sequence.
    stamped = Ledger(ledger_path).append(
        LedgerEntry(candidate="after", source_sha256="0" * 64, decision="rejected", reason="after the kills")
    )
    assert stamped.seq == total + 1
    assert Ledger(ledger_path).entries()[-1] == stamped


def test_concurrent_ledger_appends_from_four_processes(ws):
    ledger_path = ws.root / "append-concurrent.jsonl"
    procs = [_appender(ws, ledger_path, f"p{k}", 25, f"append-{k}") for k in range(4)]
    for proc in procs:
        rc, text = _finish(proc, timeout=120)
        assert rc == 0, text[-2000:]
    lines = ledger_path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 101, "100 complete lines"
    entries = Ledger(ledger_path).entries()
    assert sorted(e.seq for e in entries) == list(range(1, 101))
    assert [e.seq for e in entries] == list(range(1, 101)), "seq follows the file order"
    for k in range(4):
        mine = [e.reason for e in entries if e.candidate.startswith(f"p{k}-")]
        assert mine == [f"append {i} of p{k}" for i in range(25)]


# ----------------------------------------------------------------------------- runs at once


def test_two_suite_runs_at_once_share_cache_ledger_and_reports(ws):
    """Two terminals: both runs judge dct_inter (the champion) and write the same anchor entries."""
    reports = ws.root / "concurrent-reports"
    procs = {
        cand: ws.start(ws.suite(reports, cand, "--rerun", "--refresh-anchors"), f"concurrent-{cand}")
        for cand in ("x264_pyav", "dct_inter")
    }
    docs = {}
    for cand, proc in procs.items():
        rc, text = _finish(proc)
        assert rc == 0, f"{cand} run exited {rc}:\n{text[-4000:]}"
        match = re.search(r"codec harness result: (\S+\.json)", text)
        assert match, text[-2000:]
        docs[cand] = (Path(match.group(1)), load_report(match.group(1)).to_json())
    paths = {p for p, _ in docs.values()}
    assert len(paths) == 2, "the two runs wrote the same report file"
    assert sorted(p.name for p in reports.glob("run-*.json")) == sorted(p.name for p in paths)
    for cand, (_, doc) in docs.items():
        assert cand in doc["candidates"] and doc["summary"].get("failed", 0) == 0
        assert _same_points(doc, ws.reference), f"the {cand} run's bitstreams or metrics differ from the reference"
    hashes = _check_reports(reports, {})
    assert hashes["latest.json"] in {_sha(p) for p in paths}
    _check_cache(ws.cache)
    _check_ledger(ws)


def _same_points(doc: dict, reference: dict) -> bool:
    """Every point, determinism result and anchor of `doc` is the reference's (which may hold more)."""
    mine, ref = _results(doc), _results(reference)
    return all(k in ref and ref[k] == v for k, v in mine.items() if k != "tests")


def test_xdist_gives_the_same_results_as_one_process(ws):
    reports = ws.root / "xdist-reports"
    # -vv after the suite's -q: one line per test naming the worker that ran it.
    cmd = ws.suite(reports, "x264_pyav", "-n", "2", "--rerun", "--refresh-anchors", "-vv")
    rc, text = _finish(ws.start(cmd, "xdist"))
    assert rc == 0, f"{' '.join(cmd)} exited {rc}:\n{text[-4000:]}"
    match = re.search(r"codec harness result: (\S+\.json)", text)
    assert match, text[-2000:]
    doc = load_report(match.group(1)).to_json()
    # `-n 2` alone must mean loadgroup: every test of one candidate x clip on one worker, so
    # each encode and decode happens once (a worker re-parses argv, where --dist is absent).
    workers: dict[str, set[str]] = {}
    for worker, group in re.findall(r"^\[(gw\d+)\].*?PASSED \S+\]@(\S+)", text, re.M):
        workers.setdefault(group, set()).add(worker)
    assert workers, f"no test line carries an xdist group:\n{text[-3000:]}"
    split = {g: w for g, w in workers.items() if len(w) > 1}
    assert not split, f"groups dealt to more than one worker: {split}"
    assert _results(doc) == _results(ws.reference)
    assert not any("@" in nodeid for nodeid in doc["tests"]), "xdist's @group leaked into the report's test ids"
    _check_reports(reports, {})
    _check_cache(ws.cache)
    _check_ledger(ws)
