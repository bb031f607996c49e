"""Judging one candidate: the suite run as a subprocess, then the verdict recorded in the ledger.

The suite is exactly what `pytest benchmarks/` runs (benchmarks/test_codecs.py with the harness
plugin, the candidate's code in the sandbox), started as `python -m pytest` in the project root
with `--candidates NAME` and the run's clips, frames, ledger, cache and candidates folder. The
plugin adds the ledger's champion to the run, so the report compares the two. The verdict is
harness.adoption's; `adoption.adopt` appends "adopted" or "rejected". A candidate the suite
failed, or one that never reached it (no code, a module that does not parse), is appended as
"rejected" with the reason here, so every attempt has exactly one ledger entry.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import adoption
from harness.errors import HarnessError
from harness.ledger import Ledger, LedgerEntry

__all__ = ["PROJECT_ROOT", "SuiteRun", "SuiteSetup", "record_rejection", "record_verdict", "run_suite"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUITE_FILE = "benchmarks/test_codecs.py"


@dataclass(frozen=True)
class SuiteSetup:
    """How every candidate of a run is judged."""

    clips: str
    frames: int | None
    ledger: Path
    candidates_dir: Path
    cache_dir: Path | None
    fixtures_dir: Path | None = None
    timeout_s: float = 3600.0
    extra_args: tuple[str, ...] = ()
    root: Path = PROJECT_ROOT
    python: str = sys.executable

    def command(self, name: str, report_dir: Path) -> list[str]:
        cmd = [
            self.python, "-m", "pytest", SUITE_FILE,
            "--candidates", name,
            "--clips", self.clips,
            "--candidates-dir", str(self.candidates_dir),
            "--ledger", str(self.ledger),
            "--report-dir", str(report_dir),
            "-p", "no:cacheprovider", "-q", "-rN", "--color=no",
        ]
        if self.frames:
            cmd += ["--frames", str(self.frames)]
        if self.cache_dir is not None:
            cmd += ["--cache-dir", str(self.cache_dir)]
        if self.fixtures_dir is not None:
            cmd += ["--fixtures-dir", str(self.fixtures_dir)]
        return cmd + list(self.extra_args)


@dataclass(frozen=True)
class SuiteRun:
    returncode: int | None
    report: Path | None  # latest.json when the suite wrote one that judged `name`
    problem: str | None  # why there is no usable report
    wall_s: float
    command: list[str]


def run_suite(setup: SuiteSetup, name: str, report_dir: Path, log_path: Path) -> SuiteRun:
    """Run the suite on `name`; its output goes to `log_path`, its report to `report_dir`."""
    report_dir = Path(report_dir)
    latest = report_dir / "latest.json"
    if latest.exists():
        latest.unlink()  # a report from an interrupted earlier try must not be mistaken for this one
    cmd = setup.command(name, report_dir.resolve())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(setup.root), *filter(None, [env.get("PYTHONPATH")])])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=setup.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=setup.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return SuiteRun(None, None, f"the suite did not finish within {setup.timeout_s:.0f} s and was killed",
                            time.monotonic() - start, cmd)
        except BaseException:
            _kill_group(proc)
            raise
    wall = time.monotonic() - start
    if not latest.exists():
        tail = _tail(log_path)
        return SuiteRun(rc, None, f"the suite wrote no report (exit status {rc}): {tail}", wall, cmd)
    from harness.evolve.results import load_doc

    doc = load_doc(latest)
    if doc is None or name not in doc["candidates"]:
        return SuiteRun(rc, None, f"the suite's report does not judge {name} (exit status {rc}): {_tail(log_path)}",
                        wall, cmd)
    return SuiteRun(rc, latest, None, wall, cmd)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return text[-chars:].strip() or "(no output)"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _existing(ledger: Ledger, name: str, source_sha256: str) -> LedgerEntry | None:
    """The ledger entry of this candidate and source, if a killed run already wrote it."""
    return next(
        (e for e in reversed(ledger.entries()) if e.candidate == name and e.source_sha256 == source_sha256), None
    )


def record_rejection(
    ledger: Ledger, name: str, source_sha256: str, reason: str, *, parent: str | None,
    reasons: list[str] | None = None, report: Path | None = None, verdict: adoption.Verdict | None = None,
    extra: dict | None = None, identical_to: str | None = None,
) -> LedgerEntry:
    """Append a "rejected" entry for a candidate that failed or never reached the suite (once)."""
    earlier = _existing(ledger, name, source_sha256)
    if earlier is not None:
        return earlier
    report_sha = hashlib.sha256(report.read_bytes()).hexdigest() if report is not None and report.exists() else None
    champion = ledger.champion()
    entry = LedgerEntry(
        candidate=name,
        source_sha256=source_sha256,
        decision="rejected",
        reason=reason,
        parent=parent,
        report=str(report) if report is not None else None,
        report_sha256=report_sha,
        scores=verdict.scores if verdict is not None else {},
        fingerprint=verdict.fingerprint if verdict is not None else None,
        identical_to=identical_to or (verdict.identical_to if verdict is not None else None),
        extra={
            "reasons": reasons or [reason],
            "champion": {"name": champion.candidate, "seq": champion.seq} if champion else None,
            **(extra or {}),
        },
    )
    return ledger.append(entry)


def record_verdict(
    doc: dict, report: Path, name: str, *, ledger: Ledger, candidates_dir: Path,
    config: adoption.AdoptionConfig, parent: str | None, extra: dict | None = None,
) -> tuple[adoption.Verdict, LedgerEntry]:
    """The adoption verdict of `name` from its report, recorded in the ledger (exactly once)."""
    source_sha = doc["candidates"][name].get("sha256")
    earlier = _existing(ledger, name, source_sha) if isinstance(source_sha, str) else None
    if earlier is not None:
        # A killed run already recorded it: the verdict as it was, against the ledger before that entry.
        before = [e for e in ledger.entries() if e.seq < earlier.seq]
        return adoption.verdict(doc, name, config=config, ledger=before), earlier
    v = adoption.verdict(doc, name, config=config, ledger=ledger)
    if v.decision != "failed" and v.judged:
        try:
            entry = adoption.adopt(
                report, name, ledger=ledger, candidates_dir=candidates_dir, config=config, parent=parent,
                force_record_rejection=True,
            )
            return v, entry
        except adoption.AdoptionError as err:
            reason = f"not recorded by adoption: {err}"
            return v, record_rejection(ledger, name, source_sha or "", reason, parent=parent, report=report,
                                       verdict=v, reasons=[reason, *v.reasons], extra=extra)
    source = source_sha if isinstance(source_sha, str) else _disk_sha(candidates_dir, name)
    return v, record_rejection(
        ledger, name, source, v.reason, parent=parent, report=report, verdict=v, reasons=list(v.reasons), extra=extra
    )


def _disk_sha(candidates_dir: Path, name: str) -> str:
    from harness.candidate import discover_candidates

    for c in discover_candidates(candidates_dir):
        if c.name == name:
            return c.sha256
    raise HarnessError(f"candidate {name} vanished from {candidates_dir}")
