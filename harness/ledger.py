"""The adoption ledger: an append-only JSON Lines file; the champion is derived from it.

Each line is one decision about one candidate (adopted or rejected) with its source hash,
parent, the report it was judged by, its scores and the reason. Appends take an exclusive
file lock and are written with one `write` of a whole line followed by fsync, so concurrent
runs and a kill at any moment leave every earlier line intact; a torn last line (a crash
mid-write on a filesystem without atomic appends) is reported, never silently dropped.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from harness.errors import HarnessError

__all__ = ["LEDGER_SCHEMA", "Decision", "Ledger", "LedgerEntry", "LedgerError", "champion_of"]

LEDGER_SCHEMA = 1
Decision = Literal["adopted", "rejected"]


class LedgerError(HarnessError):
    """The ledger file is unreadable or a line in it is malformed."""


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One decision. `scores` holds BD-rates (percent, negative = fewer bits) by reference and metric."""

    candidate: str
    source_sha256: str
    decision: Decision
    reason: str
    parent: str | None = None
    report: str | None = None
    report_sha256: str | None = None
    scores: dict[str, object] = field(default_factory=dict)
    fingerprint: str | None = None  # sha256 over the candidate's bitstream hashes in the report
    identical_to: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    time_utc: str = ""
    seq: int = 0
    schema: int = LEDGER_SCHEMA

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, *, where: str) -> LedgerEntry:
        if not isinstance(data, dict):
            raise LedgerError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("candidate", "source_sha256", "decision", "reason") if not isinstance(data.get(k), str)]
        if missing:
            raise LedgerError(f"{where}: missing or non-string {', '.join(missing)}")
        if data["decision"] not in ("adopted", "rejected"):
            raise LedgerError(f"{where}: decision {data['decision']!r} is neither 'adopted' nor 'rejected'")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LedgerError(f"{where}: unknown field(s) {', '.join(unknown)}")
        types = {
            "parent": (str, type(None)), "report": (str, type(None)), "report_sha256": (str, type(None)),
            "scores": dict, "fingerprint": (str, type(None)), "identical_to": (str, type(None)),
            "extra": dict, "time_utc": str, "seq": int, "schema": int,
        }
        wrong = [k for k, t in types.items() if k in data and (not isinstance(data[k], t) or data[k] is True
                                                              or data[k] is False)]
        if wrong:
            raise LedgerError(f"{where}: field(s) of the wrong type: {', '.join(wrong)}")
        if data.get("schema", LEDGER_SCHEMA) != LEDGER_SCHEMA:
            raise LedgerError(f"{where}: ledger schema {data['schema']!r}; this harness reads {LEDGER_SCHEMA}")
        try:
            return cls(**data)
        except TypeError as err:
            raise LedgerError(f"{where}: {err}") from err


class Ledger:
    """The ledger at `path` (created on first append)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self, mode: str) -> Iterator[object]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if "a" in mode else fcntl.LOCK_SH)
            try:
                with open(self.path, mode, encoding="utf-8") as f:
                    yield f
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> list[LedgerEntry]:
        """Every entry in order; a malformed line raises LedgerError naming its line number."""
        if not self.path.exists():
            return []
        try:
            with self._locked("r") as f:
                text = f.read()
        except UnicodeDecodeError as err:
            raise LedgerError(f"{self.path}: not UTF-8 text at byte {err.start}") from err
        out = []
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            if number == len(lines) and not text.endswith("\n"):
                raise LedgerError(f"{where}: the last line is incomplete (a write was interrupted); repair by hand")
            try:
                data = json.loads(line)
            except (ValueError, RecursionError) as err:
                raise LedgerError(f"{where}: not JSON ({getattr(err, 'msg', err)})") from err
            out.append(LedgerEntry.from_json(data, where=where))
        return out

    def champion(self) -> LedgerEntry | None:
        """The most recently adopted entry, or None before the first adoption."""
        return champion_of(self.entries())

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Append `entry` with the next sequence number and the current time; returns what was written."""
        with self._locked("a+") as f:
            f.seek(0)
            existing = sum(1 for line in f.read().split("\n") if line.strip())
            stamped = LedgerEntry(
                **{
                    **asdict(entry),
                    "seq": existing + 1,
                    "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
            line = json.dumps(stamped.to_json(), sort_keys=True, allow_nan=False) + "\n"
            os.write(f.fileno(), line.encode("utf-8"))
            os.fsync(f.fileno())
        return stamped


def champion_of(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    """The champion rule, the one place it is written: the last adopted entry (None before the first)."""
    adopted = [e for e in entries if e.decision == "adopted"]
    return adopted[-1] if adopted else None
