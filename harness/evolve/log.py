"""A run directory: its settings, the attempts log (JSON Lines) and one folder per attempt.

    RUN/run.json              what the run was started with (paths, model, budgets)
    RUN/attempts.jsonl        one line per finished attempt, appended as the attempt's last step, in the
                              order attempts finish (several run at once: numbers need not ascend)
    RUN/attempts/0003/        prompt.md, request.json, reply.json + reply.md (once the API answered),
                              pending.json (the candidate's name, header and hash, before it is written),
                              candidate/<name>.py (a module that failed the checks or was not adopted),
                              screen/ (the cascade's screen: its report and suite.log), report/ and
                              suite.log (the full evaluation)
    RUN/programs.jsonl        the program database (harness/evolve/database.py)
    RUN/progress.html         the progress page (harness/evolve/page.py), rewritten after each attempt
    RUN/summary.md            the table printed at the end

A line of the log is written with one `write` and fsync under a lock; a line cut by a kill is
reported by `read()` and removed by `repair()` (the attempt is then finished again on resume from
its folder, the ledger and the candidate file: nothing is lost or recorded twice).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.errors import HarnessError

__all__ = ["AttemptsLog", "RunDir", "RunDirError", "utc_stamp"]


def utc_stamp(now: datetime | None = None) -> str:
    """A time as the run's files record it: ISO 8601 to the second, UTC, with a Z."""
    return (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


class RunDirError(HarnessError):
    """The run directory is unusable (unreadable log line, settings that do not match)."""


@dataclass(frozen=True)
class LogState:
    records: list[dict]
    torn: str | None  # the text of an incomplete last line, if any


class AttemptsLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> LogState:
        if not self.path.exists():
            return LogState([], None)
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        records, torn = [], None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            last = number == len(lines) and not text.endswith("\n")
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                if last:
                    torn = line
                    continue
                raise RunDirError(f"{self.path}:{number}: not JSON ({err.msg}); repair the log by hand") from err
            if last:  # parsed, but the newline never came: treat as incomplete too
                torn = line
                continue
            if not isinstance(data, dict) or not isinstance(data.get("attempt"), int):
                raise RunDirError(f"{self.path}:{number}: not an attempt record")
            records.append(data)
        seen: set[int] = set()
        for record in records:  # in completion order: attempts run concurrently
            if record["attempt"] in seen or record["attempt"] < 1:
                raise RunDirError(f"{self.path}: attempt {record['attempt']} recorded twice (or not a number >= 1)")
            seen.add(record["attempt"])
        return LogState(records, torn)

    def records(self) -> list[dict]:
        return self.read().records

    def repair(self) -> str | None:
        """Cut an incomplete last line; returns it (None when the log was whole)."""
        state = self.read()
        if state.torn is None:
            return None
        with open(self.path, "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            data = f.read()
            end = data.rfind(b"\n") + 1
            f.truncate(end)
            os.fsync(f.fileno())
        return state.torn

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.log = AttemptsLog(self.path / "attempts.jsonl")

    @property
    def settings_path(self) -> Path:
        return self.path / "run.json"

    def exists(self) -> bool:
        return self.settings_path.exists()

    def load_settings(self) -> dict:
        try:
            data = json.loads(self.settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunDirError(f"cannot read {self.settings_path}: {err}") from err
        if not isinstance(data, dict):
            raise RunDirError(f"{self.settings_path} is not a JSON object")
        return data

    def save_settings(self, data: dict) -> None:
        self.write_json(self.settings_path, data)

    def attempt_dir(self, number: int) -> Path:
        return self.path / "attempts" / f"{number:04d}"

    @staticmethod
    def write_json(path: Path, data: object) -> None:
        write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n")

    @staticmethod
    def read_json(path: Path) -> dict | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
