"""Parent side of a sandboxed call: hand data to the worker, read it back, name what went wrong."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Literal

from harness.candidate import CandidateSource
from harness.errors import VideoFormatError
from harness.sandbox import Limits, RawRun, Sandbox
from harness.sealed import SealedFile
from harness.video import Video

__all__ = ["FailureKind", "Outcome", "Runner", "Stage", "read_decoded_output"]

Stage = Literal["check", "encode", "decode"]
FailureKind = Literal[
    "ok",
    "contract",
    "exception",
    "bad_output",
    "timeout",
    "cpu_time",
    "memory",
    "processes",
    "file_size",
    "output_flood",
    "killed",
    "crash",
    "sandbox",
]

_STATUS_LIMIT = 256 << 10


@dataclass(frozen=True)
class Outcome:
    """What one sandboxed call did: a failure is a value with its stage, kind and captured text."""

    ok: bool
    stage: Stage
    kind: FailureKind
    message: str
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0  # the whole sandboxed process: start-up, import, call, write-back
    cpu_s: float = 0.0
    call_s: float | None = None  # wall time of the encode/decode call alone
    peak_rss_bytes: int = 0
    import_s: float | None = None  # wall time of importing the candidate (its own allowance)
    import_cpu_s: float | None = None
    call_cpu_s: float | None = None  # CPU (all threads, reaped children) of the call alone: the budget's figure
    extra: dict[str, object] = field(default_factory=dict)
    # Library codec entry points the call used, as the worker's guard recorded them ("libx264 via av").
    library_codecs: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """One line for a test failure or a report: stage, kind and the first line of the message."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.stage} failed ({self.kind}): {first}" if not self.ok else f"{self.stage} ok"

    @property
    def sandbox_overhead_s(self) -> float:
        """Wall time of the call minus the time the candidate's function itself ran."""
        return max(0.0, self.wall_s - (self.call_s or 0.0))

    def details(self) -> str:
        parts = [self.reason]
        rest = self.message.strip().splitlines()[1:]
        if rest:
            parts.append("\n".join(rest))
        if self.extra.get("traceback"):
            parts.append(str(self.extra["traceback"]))
        if self.stderr.strip():
            parts.append("--- stderr ---\n" + self.stderr[-8000:])
        if self.stdout.strip():
            parts.append("--- stdout ---\n" + self.stdout[-4000:])
        return "\n".join(parts)

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        return cls(
            ok=bool(data["ok"]), stage=data["stage"], kind=data["kind"], message=str(data["message"]),
            stdout=str(data.get("stdout", "")), stderr=str(data.get("stderr", "")),
            wall_s=float(data["wall_s"]), cpu_s=float(data["cpu_s"]),
            call_s=_float_or_none(data.get("call_s")),
            peak_rss_bytes=int(data["peak_rss_bytes"]),
            import_s=_float_or_none(data.get("import_s")),
            import_cpu_s=_float_or_none(data.get("import_cpu_s")),
            call_cpu_s=_float_or_none(data.get("call_cpu_s")),
            library_codecs=tuple(str(c) for c in data.get("library_codecs") or ()),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "stage": self.stage,
            "kind": self.kind,
            "message": self.message[:20_000],
            "stdout": self.stdout[-8000:],
            "stderr": self.stderr[-16000:],
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "call_s": self.call_s,
            "peak_rss_bytes": self.peak_rss_bytes,
            "import_s": self.import_s,
            "import_cpu_s": self.import_cpu_s,
            "call_cpu_s": self.call_cpu_s,
            "library_codecs": list(self.library_codecs),
        }


def _float_or_none(value: object) -> float | None:
    """A number from a report or the worker's status; None (absent in older reports) stays None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_decoded_output(out: BinaryIO, *, max_bytes: int | None) -> Video:
    """The video a sandboxed decoder wrote into `out` (a temporary file in tmpfs).

    Mapped, not copied: the planes are the file's own pages (read-only), so the decoded clip
    is held once, not once in tmpfs and once more in the heap. By the time this is called the
    sandbox's pid namespace is gone, so nothing of the candidate's can still write to the file.
    """
    return Video.read_from(out, max_bytes=max_bytes, name="decoded output", mmap=True)


@contextlib.contextmanager
def _sealed_input(payload: bytes | Video | SealedFile | None) -> Iterator[SealedFile]:
    """What a call reads, as a sealed file: no process can change it (the parent keeps its own copy)."""
    if isinstance(payload, SealedFile):
        yield payload  # the clip store's: it outlives the call
        return
    if isinstance(payload, Video):

        def write(fd: int) -> None:
            with os.fdopen(os.dup(fd), "wb") as out:
                payload.write_to(out)

        sealed = SealedFile("input", write)
    else:
        sealed = SealedFile.of_bytes("input", payload or b"")
    with sealed:
        yield sealed


def _scratch_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


@dataclass(frozen=True)
class CallBudget:
    """The CPU a call of a clip's size may use ([budget] in fixtures/suite.toml): what the kill limits scale with.

    The limits gate judges the candidate's own CPU against this budget; the kill limits of a call
    must never come first for a candidate inside it, on a clip of any length or a loaded machine.
    """

    encode_cpu_s_per_mpixel: float
    decode_cpu_s_per_mpixel: float
    import_allowance_s: float

    def cpu_s(self, stage: Stage, mpixel_frames: float) -> float:
        rate = self.encode_cpu_s_per_mpixel if stage == "encode" else self.decode_cpu_s_per_mpixel
        return rate * mpixel_frames + self.import_allowance_s


# A call's wall-clock kill is at least this many times its CPU kill: on a 2-core machine loaded
# several times over, a candidate inside its CPU budget still finishes before it.
WALL_PER_CPU_S = 4.0


@dataclass(frozen=True, kw_only=True)
class Runner:
    """Runs candidates' check, encode and decode, each in a fresh sandboxed process."""

    sandbox: Sandbox
    limits: Limits = Limits()
    budget: CallBudget | None = None

    def limits_for(self, stage: Stage, mpixel_frames: float | None) -> Limits:
        """The kill limits of one call: the configured ones, raised where the clip's CPU budget needs more.

        A long clip's budget (CPU seconds per Mpixel-frame x its size) can exceed the fixed [limits]
        cpu_s and wall_s; a codec within its budget must then not be killed for the clip's length.
        """
        if self.budget is None or not mpixel_frames or stage == "check":
            return self.limits
        needed = self.budget.cpu_s(stage, mpixel_frames) * 1.1 + 5
        cpu_s = max(self.limits.cpu_s, math.ceil(needed))
        wall_s = max(self.limits.wall_s, WALL_PER_CPU_S * needed)
        if (cpu_s, wall_s) == (self.limits.cpu_s, self.limits.wall_s):
            return self.limits
        return replace(self.limits, cpu_s=cpu_s, wall_s=wall_s)

    def _env(self, threads: int, hash_seed: int) -> dict[str, str]:
        n = str(threads)
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": str(hash_seed),
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": n,
            "OPENBLAS_NUM_THREADS": n,
            "MKL_NUM_THREADS": n,
            "NUMEXPR_NUM_THREADS": n,
            "SVT_LOG": "1",
        }

    def _call(
        self,
        mode: Stage,
        candidate: CandidateSource,
        *,
        payload: bytes | Video | SealedFile | None,
        target_bps: float = 0.0,
        threads: int = 1,
        hash_seed: int = 0,
        mpixel_frames: float | None = None,
    ) -> tuple[Outcome, object]:
        scratch = _scratch_dir()
        if mpixel_frames is None and isinstance(payload, Video):
            mpixel_frames = payload.width * payload.height * payload.frames / 1e6
        limits = self.limits_for(mode, mpixel_frames)
        with (
            _sealed_input(payload) as sealed,
            sealed.open() as inp,
            tempfile.TemporaryFile(dir=scratch) as out,
            tempfile.TemporaryFile(dir=scratch) as status,
        ):
            args = [
                mode,
                "--name",
                candidate.name,
                "--target-bps",
                repr(float(target_bps)),
                "--track",
                candidate.track,
                "--in-fd",
                str(inp.fileno()),
                "--out-fd",
                str(out.fileno()),
                "--status-fd",
                str(status.fileno()),
                "--max-output",
                str(self.limits.file_bytes),
            ]
            raw = self.sandbox.run(
                args,
                candidate=candidate.path,
                limits=limits,
                env=self._env(threads, hash_seed),
                track=candidate.track,
                pass_fds=(inp.fileno(), out.fileno(), status.fileno()),
            )
            status.seek(0)
            status_text = status.read(_STATUS_LIMIT).decode("utf-8", "replace")
            outcome = self._interpret(mode, raw, status_text, limits)
            if not outcome.ok or mode == "check":
                return outcome, None
            out.seek(0)
            if mode == "encode":
                return outcome, out.read()
            try:
                video = read_decoded_output(out, max_bytes=self.limits.file_bytes)
            except VideoFormatError as err:
                return _replace(outcome, ok=False, kind="bad_output", message=str(err)), None
            return outcome, video

    def _interpret(self, mode: Stage, raw: RawRun, status_text: str, lim: Limits) -> Outcome:
        base = {
            "stage": mode,
            "stdout": raw.stdout,
            "stderr": raw.stderr,
            "wall_s": raw.wall_s,
            "cpu_s": raw.cpu_s,
            "peak_rss_bytes": 0,  # unknown until the worker reports its own (a killed worker cannot)
        }
        if raw.timed_out:
            msg = f"killed after {raw.wall_s:.1f} s: over the wall-clock limit of {lim.wall_s:g} s"
            return Outcome(ok=False, kind="timeout", message=msg, **base)
        if raw.flooded:
            msg = f"killed for writing over {lim.flood_bytes} bytes to stdout/stderr (output flood)"
            return Outcome(ok=False, kind="output_flood", message=msg, **base)
        try:
            status = json.loads(status_text) if status_text.strip() else None
        except json.JSONDecodeError:
            status = None
        if not isinstance(status, dict) or status.get("mode") != mode:
            return Outcome(ok=False, **self._no_status(raw, lim), **base)
        for key in ("call_s", "call_cpu_s", "import_s", "import_cpu_s"):
            value = _float_or_none(status.get(key))
            base[key] = value if value is not None and value >= 0 else None
        # The worker's own peak: wait4's ru_maxrss of bwrap (or of a process forked straight from
        # pytest) starts from the parent's resident size, so it is never the candidate's figure.
        codecs = status.get("library_codecs")
        if isinstance(codecs, list):
            base["library_codecs"] = tuple(str(c)[:200] for c in codecs[:32])
        rss = status.get("peak_rss_bytes")
        base["peak_rss_bytes"] = rss if isinstance(rss, int) and rss >= 0 else 0
        cpu = status.get("cpu_s")
        if isinstance(cpu, (int, float)) and cpu > raw.cpu_s:
            base["cpu_s"] = float(cpu)
        if raw.returncode != 0:
            return Outcome(ok=False, **self._no_status(raw, lim), **base)
        if status.get("ok") is True:
            return Outcome(ok=True, kind="ok", message="", **base)
        kind = status.get("kind") if status.get("kind") in FailureKind.__args__ else "exception"
        message = str(status.get("message", "no message"))
        if kind == "exception" and ("MemoryError" in message or "Cannot allocate memory" in message):
            kind = "memory"
        if kind == "exception" and "can't start new thread" in message:
            kind = "processes"
            message += f" (process/thread limit {lim.processes})"
        if kind == "memory":
            message += f" (address-space limit {lim.memory_bytes >> 20} MiB)"
        extra = {"traceback": status["traceback"]} if status.get("traceback") else {}
        return Outcome(ok=False, kind=kind, message=message, extra=extra, **base)

    def _no_status(self, raw: RawRun, lim: Limits) -> dict[str, str]:
        code = raw.returncode
        tail = raw.stderr.strip().splitlines()[-1:] or [""]
        # bwrap reports its child's death by signal N as exit status 128 + N.
        sig = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else 0
        if sig:
            if sig == signal.SIGXCPU:
                return {"kind": "cpu_time", "message": f"killed at the CPU-time limit of {lim.cpu_s} s"}
            if sig == signal.SIGXFSZ:
                return {"kind": "file_size", "message": f"killed for writing a file over {lim.file_bytes} bytes"}
            if sig == signal.SIGKILL:
                return {"kind": "killed", "message": "killed by SIGKILL (out of memory?)"}
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return {"kind": "crash", "message": f"the worker died from signal {name}; {tail[0]}"}
        if "bwrap:" in raw.stderr and "Traceback" not in raw.stderr:
            return {"kind": "sandbox", "message": f"the sandbox could not start: {tail[0]}"}
        if "MemoryError" in raw.stderr or "Cannot allocate memory" in raw.stderr:
            return {"kind": "memory", "message": f"out of memory (limit {lim.memory_bytes >> 20} MiB): {tail[0]}"}
        return {"kind": "crash", "message": f"the worker exited with code {code} and no status: {tail[0]}"}

    def check(self, candidate: CandidateSource) -> Outcome:
        """Import the candidate in the sandbox and check the contract's shape."""
        if candidate.problem:
            return Outcome(ok=False, stage="check", kind="contract", message=candidate.problem)
        return self._call("check", candidate, payload=None)[0]

    def encode(
        self, candidate: CandidateSource, source: Video | SealedFile, target_bps: float, *, threads: int = 1,
        hash_seed: int = 0, mpixel_frames: float | None = None,
    ) -> tuple[Outcome, bytes | None]:
        """encode(source, target_bps) in a fresh sandbox; `source` as a Video or the clip store's sealed file.

        `mpixel_frames` (the clip's size) scales the call's kill limits with its CPU budget.
        """
        return self._call(  # type: ignore[return-value]
            "encode", candidate, payload=source, target_bps=target_bps, threads=threads, hash_seed=hash_seed,
            mpixel_frames=mpixel_frames,
        )

    def decode(
        self, candidate: CandidateSource, bitstream: bytes, *, threads: int = 1, hash_seed: int = 0,
        mpixel_frames: float | None = None,
    ) -> tuple[Outcome, Video | None]:
        """decode(bitstream) in a fresh sandbox that sees nothing but the bitstream."""
        return self._call(  # type: ignore[return-value]
            "decode", candidate, payload=bitstream, threads=threads, hash_seed=hash_seed,
            mpixel_frames=mpixel_frames,
        )


def _replace(outcome: Outcome, **changes: object) -> Outcome:
    return replace(outcome, **changes)
