"""The evolution loop at scale, end to end: the scripted Messages API (tests/scripted_api.py) over real HTTP,
the real `anthropic` SDK, evaluations on a real Ray (embedded, or two nodes started with `ray start` on
127.0.0.1), the real suite in its sandbox on one 160x90 clip at 3 frames.

Ray 2.60 enables token authentication for local clusters: the two-node cluster gets its own token in
the environment (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN) of both nodes and of the driver, so nothing reads
or writes ~/.ray/auth_token; its processes are found by the cluster's own temporary folder (every one
of them names it, or descends from one that does) and killed in the fixture's finalizer, whatever the
test did.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.evolve.database import ProgramDatabase
from harness.evolve.loop import Evolution
from harness.ledger import Ledger
from tests import evolve_helpers
from tests.evolve_helpers import (
    CHAMPION,
    MODEL,
    REPO,
    as_reply,
    broken_code,
    canned,
    good_code,
    log_records,
    new_entries,
    settings_for,
    worse_variant,
)
from tests.scripted_api import ScriptedAPI, Text

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
project, world = evolve_helpers.project, evolve_helpers.world  # the fixtures

RAY = Path(sys.executable).with_name("ray")


# ----------------------------------------------------------------------------- a two-node Ray on 127.0.0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_of(root: Path) -> dict[int, str]:
    """pid -> command line of every process that names `root` in its command line, and their descendants."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry.name)] = (ppid, cmd)
    mine = {pid for pid, (_, cmd) in table.items() if str(root) in cmd}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in table.items() if ppid in mine and pid not in mine}
        mine |= more
        grew = bool(more)
    return {pid: table[pid][1] for pid in mine}


class LocalCluster:
    """A Ray head and one worker node on 127.0.0.1, `cpus` CPUs each, under `root` (a fresh folder)."""

    def __init__(self, root: Path, *, cpus: int = 1) -> None:
        self.root = root
        self.cpus = cpus
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def _ray_start(self, *args: str) -> None:
        common = [f"--num-cpus={self.cpus}", "--node-ip-address=127.0.0.1", "--object-store-memory=80000000",
                  "--disable-usage-stats"]
        done = subprocess.run([str(RAY), "start", *args, *common], check=False, env=self.env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, f"ray start {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    def start(self) -> None:
        self._ray_start("--head", f"--port={self.port}", f"--temp-dir={self.root / 'head'}",
                        "--include-dashboard=false")
        self._ray_start(f"--address={self.address}", f"--temp-dir={self.root / 'worker'}")

    def node_ids(self) -> list[str]:
        """The alive nodes' ids, asked from a separate driver process (this one never joins the cluster)."""
        code = (f"import ray; ray.init(address={self.address!r}, log_to_driver=False); "
                "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive'])); ray.shutdown()")
        done = subprocess.run([sys.executable, "-c", code], check=False, env=self.env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.split()

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            pids = _processes_of(self.root)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                time.sleep(0.2)
                pids = {p: c for p, c in _processes_of(self.root).items() if not _zombie(p)}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def cluster(request):
    root = Path(f"/tmp/ray-evolve-{os.getpid()}-{secrets.token_hex(3)}")  # short: Ray's socket paths must fit
    root.mkdir()
    c = LocalCluster(root)

    def stop() -> None:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)

    request.addfinalizer(stop)
    c.start()
    return c


# ----------------------------------------------------------------------------- an embedded Ray for this module


@pytest.fixture(scope="module")
def local_ray(request):
    """One embedded Ray (2 CPUs) for the in-process runs of this module: the loop's RayEvaluator uses a Ray
    already initialized in its process as it is, so each run does not pay for a start."""
    import ray

    root = Path(f"/tmp/ray-evolve-{os.getpid()}-{secrets.token_hex(3)}")
    root.mkdir()

    def stop() -> None:
        if ray.is_initialized():
            ray.shutdown()
        LocalCluster(root).stop()  # whatever is left of it
        shutil.rmtree(root, ignore_errors=True)

    request.addfinalizer(stop)
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False,
             _temp_dir=str(root), runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    return ray


# ----------------------------------------------------------------------------- runs


def _settings(project: dict, *, scale: dict, cascade: dict | None = None, **stop):
    settings = settings_for(project, **stop)
    config = settings.config.with_overrides(scale=scale, cascade=cascade or {"enabled": False})
    return dataclasses.replace(settings, config=config)


def _evolve(project: dict, api: ScriptedAPI, monkeypatch, *, scale: dict, cascade: dict | None = None, **stop):
    """A run in this process through the SDK's own HTTP client, pointed at the scripted API by ANTHROPIC_BASE_URL."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    out = io.StringIO()
    evo = Evolution(_settings(project, scale=scale, cascade=cascade, **stop), api_key="sk-test-not-a-key", out=out)
    result = evo.run()
    return result, out.getvalue()


def _logged(project: dict) -> int:
    """Attempts recorded so far (read by the scripted API's threads to hold a reply until then)."""
    path = project["run"] / "attempts.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


def _by_attempt(records: list[dict]) -> dict[int, dict]:
    out = {int(r["attempt"]): r for r in records}
    assert len(out) == len(records), [r["attempt"] for r in records]  # each attempt once
    return out


SCREEN = {"enabled": True, "frames": 2}  # the run judges 3 frames: a 2-frame screen is cheaper, so it runs


def test_broken_better_identical_ends_with_the_better_one_adopted(project, local_ray, monkeypatch):
    """Two attempts open at once (after the first reply), two evaluations at once on the embedded Ray, the
    cascade on: the broken candidate stops at the screen, the better one passes it and is adopted in the
    native track after the full stage, the same module again (asked while the better one is still being
    judged) is not judged and stops the run as identical."""
    script = [as_reply(broken_code("a")), as_reply(good_code()), as_reply(good_code(), plan="Plan: the same again.")]
    with ScriptedAPI(script, latency_s=0.2) as api:
        result, out = _evolve(project, api, monkeypatch, cascade=SCREEN,
                              scale={"requests_in_flight": 2, "evaluations_in_flight": 2, "ray_address": ""},
                              iterations=6, patience=5)
    assert len(api.requests) == 3 and api.left == 0
    assert all(r.body["stream"] is True and r.body["model"] == MODEL for r in api.requests)
    assert "evaluations on embedded local Ray" in out, out
    recs = _by_attempt(log_records(project))
    assert sorted(recs) == [1, 2, 3] and len(result.records) == 3
    broken, good, again = recs[1], recs[2], recs[3]
    assert (broken["stage"], broken["verdict"]) == ("screen", "failed"), broken
    assert "round" in (broken.get("failure") or broken.get("reason") or "").lower(), broken
    assert broken["screen_s"] > 0 and broken["suite_s"] is None and broken["eval_node"]
    assert (good["stage"], good["verdict"]) == ("verdict", "adopted"), good
    assert good["screen_s"] > 0 and good["suite_s"] > 0 and good["eval_node"]
    assert good["bd_vs_anchor"] < json.loads(project["run"].joinpath("run.json").read_text())[
        "initial_champion"]["bd_vs_anchor"]
    assert (again["stage"], again["identical_attempt"], again["eval_node"]) == ("identical", 2, None), again
    assert result.stop_reason.startswith("attempt 3 (") and "identical to attempt 2" in result.stop_reason
    champion = Ledger(project["ledger"]).champion("native")
    assert champion.candidate == good["candidate"] == result.champion
    assert (project["cands"] / f"{good['candidate']}.py").is_file()
    programs = ProgramDatabase(project["run"] / "programs.jsonl").programs()
    judged = {p.attempt: p for p in programs if p.judged and p.attempt is not None}  # None: the ledger's seed
    assert sorted(p.attempt for p in programs if p.attempt is not None) == [1, 2, 3] and set(judged) == {2} and judged[2].bd_vs_anchor == pytest.approx(good["bd_vs_anchor"])
    assert (project["run"] / "progress.html").is_file()


def test_stagnation_stops_after_patience_attempts(project, local_ray, monkeypatch):
    """Two attempts open at once; two broken candidates in a row with patience 2: the run stops, the
    request already in flight is finished and recorded, nothing more is asked. Replies are held until
    the attempt before is recorded, so the order does not depend on how fast the machine is."""
    script = [
        as_reply(broken_code("b")),
        Text(as_reply(broken_code("c")), hold=lambda: _logged(project) >= 1),
        Text(canned("no_code_reply.md"), hold=lambda: _logged(project) >= 2),
    ]
    with ScriptedAPI(script) as api:
        result, _ = _evolve(project, api, monkeypatch, cascade=SCREEN,
                            scale={"requests_in_flight": 2, "evaluations_in_flight": 2, "ray_address": ""},
                            iterations=8, patience=2)
    # Said as things stand once nothing is in flight: the request in flight at the stop counts too.
    assert result.stop_reason == "3 attempts in a row without improvement (patience 2)"
    assert len(api.requests) == 3 and api.left == 0
    recs = _by_attempt(log_records(project))
    assert [(recs[n]["stage"], recs[n]["verdict"]) for n in (1, 2)] == [("screen", "failed")] * 2
    assert recs[3]["stage"] == "extract"
    assert new_entries(project) and Ledger(project["ledger"]).champion("native").candidate == CHAMPION


def test_the_token_budget_holds_with_three_requests_in_flight(project, monkeypatch):
    """The first request goes alone (1,500 tokens, under the 2,000-token budget); then three start at once,
    and the first of them to come back passes the budget while the other two are in flight: they are
    finished and recorded, none more is sent, and the run says by how much the budget was passed. (No
    candidate reaches an evaluation: no Ray needed.)"""
    api = ScriptedAPI()
    api.extend([
        canned("no_code_reply.md"),
        Text(canned("no_code_reply.md"), hold=lambda: api.in_flight >= 3),
        Text(canned("no_code_reply.md"), hold=lambda: _logged(project) >= 2),
        Text(canned("no_code_reply.md"), hold=lambda: _logged(project) >= 2),
    ])
    with api:
        result, _ = _evolve(project, api, monkeypatch, scale={"requests_in_flight": 3, "ray_address": "none"},
                            iterations=10, max_total_tokens=2000)
    assert api.max_in_flight == 3 and len(api.requests) == 4 and api.left == 0
    assert result.stop_reason == ("token budget reached (6,000 of 2,000 tokens; passed by 4,000 tokens; "
                                  "2 request(s) were in flight when it was reached)")
    recs = _by_attempt(log_records(project))
    assert sorted(recs) == [1, 2, 3, 4] and sum(r["tokens"] for r in recs.values()) == 6000
    assert {r["stage"] for r in recs.values()} == {"extract"}


# ----------------------------------------------------------------------------- the command line, in a subprocess


def _cli(project: dict, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "harness", "evolve", "--run-dir", str(project["run"]),
        "--candidates-dir", str(project["cands"]), "--ledger", str(project["ledger"]),
        "--clips", str(project["clips"]), "--frames", "3", "--cache-dir", str(project["cache"]),
        "--waive-heldout", "--model", MODEL, *args,
    ]


def _env(project: dict, api: ScriptedAPI, base: dict | None = None) -> dict[str, str]:
    tmp = project["tmp"] / "t"  # the evaluations' folders: their suite processes name it (found by _processes_of)
    tmp.mkdir(exist_ok=True)
    env = {**(base or os.environ), "ANTHROPIC_API_KEY": "sk-test-not-a-key", "ANTHROPIC_BASE_URL": api.base_url,
           "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    env.pop("CODEC_HARNESS_HELDOUT", None)
    return env


def _ledger_candidates(project: dict) -> list[str]:
    """The candidates of the ledger's entries after the seed, one per outcome (duplicates kept)."""
    return sorted(e.candidate for e in new_entries(project))


@pytest.mark.timeout(600)
def test_resume_after_a_kill_loses_and_repeats_nothing(project, request):
    """`python -m harness evolve` killed with SIGKILL while attempt 1 is being judged and attempt 2's request
    is in flight, then resumed with --run-dir: attempt 1 is judged again from its saved reply (no new
    request), attempt 2 is asked again, attempt 3 is new; the attempts log and the ledger hold each attempt
    exactly once. Evaluations in threads (--no-ray): a killed driver leaves no Ray processes behind."""
    killed = threading.Event()
    script = [
        as_reply(broken_code("k")),
        Text(as_reply(worse_variant(4)), hold=killed.is_set),  # in flight at the kill: lost with the process
        as_reply(worse_variant(4)),  # attempt 2 asked again on resume
        canned("no_code_reply.md"),
    ]
    log = project["tmp"] / "first.log"
    with ScriptedAPI(script) as api:
        env = _env(project, api)
        request.addfinalizer(lambda: LocalCluster(Path(env["TMPDIR"])).stop())  # orphaned suite runs
        args = ["--iterations", "3", "--patience", "9", "--evaluations-in-flight", "1", "--no-ray", "--no-cascade"]
        with open(log, "w") as sink:  # two attempts open: attempt 2 is asked while attempt 1 is judged
            proc = subprocess.Popen(_cli(project, *args, "--requests-in-flight", "2"), cwd=REPO, env=env,
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not ("attempt 1: judging" in log.read_text() and len(api.requests) >= 2):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(1.0)  # inside the suite run
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            killed.set()
        assert _logged(project) == 0 and (project["run"] / "attempts" / "0001" / "reply.json").exists()
        assert not (project["run"] / "attempts" / "0002" / "reply.json").exists()
        again = subprocess.run(_cli(project, *args, "--requests-in-flight", "1"), check=False, cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=400)
    out = again.stdout + again.stderr
    assert again.returncode == 1, out[-4000:]  # ended without an adoption
    assert "attempt 1: the reply is already on disk" in out, out[-4000:]
    assert [r.answer for r in api.requests] == ["text", "aborted", "text", "text"]
    recs = _by_attempt(log_records(project))
    assert sorted(recs) == [1, 2, 3]
    assert [(recs[n]["stage"], recs[n]["verdict"], recs[n]["resumed"]) for n in (1, 2, 3)] == [
        ("verdict", "failed", True), ("verdict", "rejected", False), ("extract", "invalid", False)], recs
    assert "decoded clip has 1 frames, expected 3" in recs[1]["reason"]
    assert _ledger_candidates(project) == sorted(recs[n]["candidate"] for n in (1, 2, 3))


@pytest.mark.timeout(600)
def test_two_ray_nodes_on_127_0_0_1_both_run_evaluations(project, cluster):
    """A head (`ray start --head`) and a worker node, one CPU each; the loop joins with --ray-address and
    keeps two evaluations in flight (after the first request, which goes alone and has no code): each
    node runs one (the records' eval_node values differ)."""
    nodes = cluster.node_ids()
    assert len(nodes) == 2
    script = [canned("no_code_reply.md"), as_reply(worse_variant(1)), as_reply(worse_variant(3))]
    with ScriptedAPI(script) as api:
        done = subprocess.run(
            _cli(project, "--iterations", "3", "--patience", "9", "--requests-in-flight", "2",
                 "--evaluations-in-flight", "2", "--ray-address", cluster.address, "--no-cascade"),
            check=False, cwd=REPO, env=_env(project, api, cluster.env), capture_output=True, text=True, timeout=500)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert f"Ray cluster {cluster.address} (2 node(s)" in out, out[-4000:]
    recs = _by_attempt(log_records(project))
    assert [(recs[n]["stage"], recs[n]["verdict"]) for n in (1, 2, 3)] == [
        ("extract", "invalid"), ("verdict", "rejected"), ("verdict", "rejected")], recs
    where = {recs[n]["eval_node"] for n in (2, 3)}
    assert len(where) == 2, where
    assert {w.split("@")[0] for w in where} == {n[:12] for n in nodes}
