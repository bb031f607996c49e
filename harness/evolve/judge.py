"""Judging one candidate: the suite run as a subprocess, then the verdict recorded in the ledger.

The suite is exactly what `pytest benchmarks/` runs (benchmarks/test_codecs.py with the harness
plugin, the candidate's code in the sandbox), started by `harness.suite.run_suite` in the project
root (the working directory by default) with `--candidates NAME` and the run's clips, frames,
ledger, cache and candidates folder. The plugin adds the ledger's champion to the run, so the
report compares the two. The verdict is harness.adoption's; `adoption.adopt` appends "adopted"
or "rejected". A candidate the suite failed, or one that never reached it (no code, a module
that does not parse), is appended as "rejected" with the reason here, so every attempt has
exactly one ledger entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import adoption
from harness.adoption.recording import ledger_entry
from harness.errors import HarnessError
from harness.ledger import Ledger, LedgerEntry
from harness.suite import SuiteOptions, SuiteRun, log_tail
from harness.suite import run_suite as run_the_suite

__all__ = ["SuiteRun", "SuiteSetup", "record_rejection", "record_verdict", "run_suite"]


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
    root: Path = field(default_factory=Path.cwd)  # the project root: the suite runs there
    python: str = sys.executable

    def options(self, name: str, report_dir: Path) -> SuiteOptions:
        return SuiteOptions(
            clips=self.clips, frames=self.frames or None, candidates=(name,), candidates_dir=self.candidates_dir,
            ledger=self.ledger, report_dir=Path(report_dir).resolve(), cache_dir=self.cache_dir,
            fixtures_dir=self.fixtures_dir,
        )


def run_suite(setup: SuiteSetup, name: str, report_dir: Path, log_path: Path) -> SuiteRun:
    """Run the suite on `name`; its output goes to `log_path`, its report to `report_dir`.

    The run's `report` is None (and `problem` says why) unless the suite wrote a report that judged `name`."""
    run = run_the_suite(
        setup.options(name, report_dir), [name], root=setup.root, timeout=setup.timeout_s, log=log_path,
        pytest_args=("-q", "-rN", "--color=no", *setup.extra_args), python=setup.python,
    )
    if run.problem is not None:
        return dataclasses.replace(run, report=None)
    if name not in run.results.candidates:
        why = f"the suite's report does not judge {name} (exit status {run.returncode}): {log_tail(log_path)}"
        return dataclasses.replace(run, report=None, problem=why)
    return run


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
    extra: dict | None = None, identical_to: str | None = None, track: str = "native",
) -> LedgerEntry:
    """Append a "rejected" entry in `track` for a candidate that failed or never reached the suite (once).

    The entry is built by `harness.adoption.recording.ledger_entry`, as `adopt`'s are."""
    earlier = _existing(ledger, name, source_sha256)
    if earlier is not None:
        return earlier
    report_sha = hashlib.sha256(report.read_bytes()).hexdigest() if report is not None and report.exists() else None
    entry = ledger_entry(
        name,
        source_sha256,
        decision="rejected",
        reason=reason,
        parent=parent,
        champion=ledger.champion(track),
        verdict=verdict,
        track=track,
        report=str(report) if report is not None else None,
        report_sha256=report_sha,
        reasons=reasons or [reason],
        identical_to=identical_to,
        extra=extra,
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
