"""An evaluation: the suite run on one candidate, self-contained so that it can run on another node.

An `EvalRequest` carries everything the suite needs besides the harness itself: the candidate's
source files and the champion's (text, as they are in the driver's candidates folder), the
ledger's text (the suite's plugin adds the ledger's champion of the track to the run and the
report compares the two), the clips (a set name or folder the node resolves, or for the screen
the one clip's bytes), frames, pytest arguments and the timeout. `evaluate(request)` writes them
into a temporary folder, runs the suite there exactly as `python -m harness evolve` always did
(harness.evolve.judge.run_suite: `pytest benchmarks/test_codecs.py` in a subprocess, each codec
call in the bubblewrap sandbox) with the harness installed on that node, and returns an
`EvalResult`: the report's JSON text, the log's text, the exit status, the wall seconds and the
node (Ray node id, else the hostname). The driver writes report and log into the attempt's
folder and decides the verdict there (harness/evolve/attempt.py): nothing on the node touches the
driver's ledger, candidates folder or run directory.

Anchors and passing results are cached per node: the request's cache folder where that node can
write it (the run's --cache-dir; on one machine all evaluations share it), else the node's default
(~/.cache/codec-harness). Anchors are deterministic, so every node computes the same ones.

The cascade (harness/evolve/loop.py decides which stages run):

- stage "screen": the suite's cheap tests (`SCREEN_TESTS`: contract, round trip, rate and
  determinism) on one small clip at a few frames ([cascade] clip and frames), stopping at the
  first failure (-x): a broken candidate is rejected in seconds;
- stage "full": the whole suite on the run's clips, frames and arguments (what adoption judges).

Evaluators run requests concurrently and return `concurrent.futures.Future`s of `EvalResult`:
`LocalEvaluator` (threads in this process; each evaluation is a subprocess anyway) and
`RayEvaluator` (each evaluation a Ray task with `num_cpus=cpus_per_evaluation`; `address=None`
starts an embedded local Ray, `address="HOST:PORT"` or "auto" joins an existing cluster).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Self

import harness
from harness.errors import HarnessError
from harness.evolve.judge import SuiteSetup, run_suite

__all__ = [
    "SCREEN_TESTS",
    "EvalRequest",
    "EvalResult",
    "Evaluator",
    "LocalEvaluator",
    "RayEvaluator",
    "evaluate",
    "make_evaluator",
    "source_files",
]

# The suite's cheap tests: what the screen runs (quality, limits and BD-rate wait for the full stage).
SCREEN_TESTS = "test_contract or test_round_trip or test_rate or test_determinism"
_MAX_CLIP_BYTES = 64 * 1024 * 1024  # a screen clip travels in the request up to this size
CHECKOUT = Path(harness.__file__).resolve().parent.parent


@dataclass(frozen=True)
class EvalRequest:
    """One suite run on one candidate, with everything it needs (pickled to a Ray node as it is).

    files: path relative to the candidates folder -> text, the candidate's module and the champion's
    (a package's every .py file); ledger_text: the driver's ledger (JSON Lines) at submission;
    champion_sha256: the champion's source hash the comparison is made against (stale when the
    ledger's champion changed before the verdict); clips: the suite's --clips as the node resolves
    it, or with clip_data the one clip's bytes (named clip_name, in a folder named clip_set);
    root: the project root on the driver (used on the node when it holds benchmarks/test_codecs.py,
    else the checkout the node's harness comes from); cache_dir / fixtures_dir as the run gives them."""

    attempt: int
    stage: str  # "screen" | "full"
    candidate: str
    files: dict[str, str]
    ledger_text: str
    champion: str | None = None
    champion_sha256: str | None = None
    clips: str = "default"
    clip_name: str | None = None
    clip_set: str | None = None
    clip_data: bytes | None = None
    frames: int | None = None
    pytest_args: tuple[str, ...] = ()
    cache_dir: str | None = None
    fixtures_dir: str | None = None
    root: str | None = None
    timeout_s: float = 3600.0


@dataclass(frozen=True)
class EvalResult:
    """What came back from one evaluation: the report (JSON text) or why there is none, and the log."""

    attempt: int
    stage: str
    candidate: str
    returncode: int | None
    report_text: str | None
    report_name: str | None  # the run-*.json file name the suite gave it
    problem: str | None
    log_text: str
    wall_s: float
    node: str
    timed_out: bool = False
    champion_sha256: str | None = None
    extra: dict = field(default_factory=dict)


def _node_id() -> str:
    """The Ray node id where this runs inside a Ray task, else the hostname."""
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            if ctx.worker.mode == ray.WORKER_MODE:  # inside a task
                return f"{ctx.get_node_id()[:12]}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001, S110 - Ray missing or not in a task: the hostname is enough
        pass
    return socket.gethostname()


def _safe(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise HarnessError(f"evaluation request: file name {rel!r} is not a plain relative path")
    return path


def _usable_dir(path: str | None) -> Path | None:
    """The folder if it exists or can be made on this node, else None (the node's default then)."""
    if not path:
        return None
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return p if os.access(p, os.W_OK) else None


def evaluate(request: EvalRequest) -> EvalResult:
    """Run the suite on the request's candidate in a temporary folder on this node (see the module docstring)."""
    start = time.monotonic()
    node = _node_id()
    with tempfile.TemporaryDirectory(prefix=f"evolve-eval-{request.attempt}-{request.stage}-") as tmp:
        work = Path(tmp)
        cands = work / "candidates"
        cands.mkdir()
        for rel, text in request.files.items():
            target = cands / _safe(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        ledger = work / "ledger.jsonl"
        ledger.write_text(request.ledger_text, encoding="utf-8")
        clips = request.clips
        if request.clip_data is not None:
            folder = work / "clips" / (request.clip_set or "screen")
            folder.mkdir(parents=True)
            (folder / _safe(request.clip_name or "clip.y4m").name).write_bytes(request.clip_data)
            clips = str(folder)
        root = Path(request.root) if request.root else CHECKOUT
        if not (root / "benchmarks" / "test_codecs.py").is_file():
            root = CHECKOUT
        fixtures = Path(request.fixtures_dir) if request.fixtures_dir and Path(request.fixtures_dir).is_dir() else None
        setup = SuiteSetup(
            clips=clips, frames=request.frames or None, ledger=ledger, candidates_dir=cands,
            cache_dir=_usable_dir(request.cache_dir), fixtures_dir=fixtures, timeout_s=request.timeout_s,
            extra_args=tuple(request.pytest_args), root=root,
        )
        log = work / "suite.log"
        try:
            run = run_suite(setup, request.candidate, work / "report", log)
        except HarnessError as err:  # the suite could not be started at all
            return EvalResult(request.attempt, request.stage, request.candidate, None, None, None, str(err),
                              "", time.monotonic() - start, node, champion_sha256=request.champion_sha256)
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        # Paths inside the temporary folder mean nothing on the driver: say where they were.
        text = text.replace(str(work), f"<{node}:evaluation folder>")
        problem = run.problem.replace(str(work), f"<{node}:evaluation folder>") if run.problem else None
        report_text = run.report.read_text(encoding="utf-8") if run.report is not None else None
        return EvalResult(
            attempt=request.attempt, stage=request.stage, candidate=request.candidate, returncode=run.returncode,
            report_text=report_text, report_name=run.report.name if run.report is not None else None,
            problem=problem, log_text=text, wall_s=time.monotonic() - start, node=node,
            timed_out=run.timed_out, champion_sha256=request.champion_sha256,
        )


def _suite_children() -> list[int]:
    """The suite runs (pytest of benchmarks/test_codecs.py, each the leader of its own session) that descend
    from this process (its evaluation threads' children, or an embedded Ray's workers'), from /proc (Linux);
    [] where /proc cannot tell."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    me, out = os.getpid(), []
    for pid in parent:
        up, seen = parent.get(pid), 0
        while up not in (None, 0, 1, me) and seen < 64:
            up, seen = parent.get(up), seen + 1
        if up != me:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"harness.plugin" in cmdline and any(arg.endswith(b"test_codecs.py") for arg in cmdline):
            out.append(pid)
    return sorted(out)


def _kill_suite_runs() -> None:
    for pid in _suite_children():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def source_files(candidates_dir: Path, name: str) -> dict[str, str]:
    """The text of candidate `name` in `candidates_dir` (NAME.py, or every .py file of the package NAME/)."""
    single, package = candidates_dir / f"{name}.py", candidates_dir / name
    if single.is_file():
        return {single.name: single.read_text(encoding="utf-8")}
    if package.is_dir():
        return {
            p.relative_to(candidates_dir).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(package.rglob("*.py")) if "__pycache__" not in p.parts
        }
    raise HarnessError(f"candidate {name} is not in {candidates_dir}")


def clip_bytes(path: Path) -> bytes:
    size = path.stat().st_size
    if size > _MAX_CLIP_BYTES:
        raise HarnessError(f"the screen clip {path} is {size:,} bytes; at most {_MAX_CLIP_BYTES:,} travel with a request")
    return path.read_bytes()


# ----------------------------------------------------------------------------- evaluators


class Evaluator:
    """Runs `EvalRequest`s concurrently; `submit` returns a Future of its `EvalResult`."""

    kind = "none"
    slots = 1

    def submit(self, request: EvalRequest) -> concurrent.futures.Future:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind

    def close(self, wait: bool = True) -> None:
        """Release what the evaluator holds; `wait` False: do not wait for evaluations still running."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEvaluator(Evaluator):
    """Evaluations in threads of this process (each one a pytest subprocess): no Ray at all."""

    kind = "local"

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)
        self._pool = concurrent.futures.ThreadPoolExecutor(self.slots, thread_name_prefix="evolve-eval")

    def submit(self, request: EvalRequest) -> concurrent.futures.Future:
        return self._pool.submit(evaluate, request)

    def describe(self) -> str:
        return f"local threads ({self.slots} at once)"

    def close(self, wait: bool = True) -> None:
        if not wait:  # interrupted: stop the suite runs this process started (else exit waits for them)
            _kill_suite_runs()
        self._pool.shutdown(wait=wait, cancel_futures=True)


class RayEvaluator(Evaluator):
    """Each evaluation a Ray task (`num_cpus=cpus_per_evaluation`, no retries: a suite run is not idempotent
    in time, and its failure is the candidate's verdict).

    address None: an embedded local Ray (`ray.init(num_cpus=slots * cpus_per_evaluation)`, no dashboard,
    a small object store) shut down by `close`; an address ("auto", "HOST:6379", "ray://..."): join that
    cluster, whose nodes must have the harness installed at the same path (see README, evolve). A Ray
    already initialized in this process (a test's fixture) is used as it is and left running."""

    kind = "ray"

    def __init__(self, address: str | None = None, *, slots: int = 2, cpus_per_evaluation: float = 1.0,
                 object_store_bytes: int = 128 * 1024 * 1024) -> None:
        import ray

        self.slots = max(1, slots)
        self.address = address
        self._owned = False
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env})
            else:
                ray.init(
                    num_cpus=max(1, int(self.slots * cpus_per_evaluation + 0.999)), include_dashboard=False,
                    object_store_memory=object_store_bytes, log_to_driver=False, runtime_env={"env_vars": env},
                )
            self._owned = True
        self._ray = ray
        self._task = ray.remote(evaluate).options(num_cpus=cpus_per_evaluation, max_retries=0)

    def submit(self, request: EvalRequest) -> concurrent.futures.Future:
        return self._task.remote(request).future()

    def nodes(self) -> list[str]:
        return [n["NodeID"] for n in self._ray.nodes() if n.get("Alive")]

    def describe(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "embedded local Ray"
        return f"{where} ({len(self.nodes())} node(s), {self.slots} evaluation(s) at once)"

    def close(self, wait: bool = True) -> None:
        if not wait and self._owned:  # an embedded Ray's suite runs would outlive its workers
            _kill_suite_runs()
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False


def make_evaluator(*, use_ray: bool, address: str | None, slots: int, cpus_per_evaluation: float) -> Evaluator:
    """The run's evaluator: Ray (embedded, or the cluster at `address`) unless `use_ray` is False."""
    if not use_ray:
        return LocalEvaluator(slots)
    return RayEvaluator(address or None, slots=slots, cpus_per_evaluation=cpus_per_evaluation)
