"""Progress of `pytest benchmarks/`: one plain line when a candidate x clip reaches a new stage.

The Judge does each piece of work once, in the first test that needs it (tests of one candidate
x clip x rate point share an encode), so a stage starts with the first test of its key: the
contract check per candidate; the clip's anchor encodes (x265 for the rate ladder) before its
first rate point; encode, decode and metrics per rate point; determinism; BD-rate (which
encodes the other compared anchors on a clip's first). A line per stage, with the run's elapsed time, written
through pytest's terminal reporter: no carriage returns, so a CI log reads like a terminal; no
line for a candidate whose contract failed (its other tests are skipped). The plugin makes one only where it can print (not under -q, not
with pytest-xdist, whose workers cannot write to the terminal).

A stage can last minutes (a slow candidate's determinism re-encodes every rung): while a test
runs, a helper thread calls `tick()` about every second and, `heartbeat_s` after the last line,
the current stage is repeated with its elapsed time ("... (still running, 24 s)"), so a run
never goes silent for longer. Only while a test's setup or call runs (`running`): pytest itself
writes between tests, and a lock keeps the two writers apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["HEARTBEAT_S", "Progress", "stages"]

HEARTBEAT_S = 8.0  # the longest silence while a test runs

_POINT_TESTS = frozenset({"test_round_trip", "test_rate", "test_quality", "test_limits"})


def stages(test: str, params: Mapping[str, object]) -> list[tuple[tuple, str]]:
    """(key, words) of each stage the test `test` (a function name) may start, first to last."""
    cand, clip, rung = params.get("candidate"), params.get("clip"), params.get("rung")
    if test == "test_contract":
        return [((cand,), f"{cand}: contract check (imports in the sandbox)")]
    if clip is None:
        return []
    if test in _POINT_TESTS and rung is not None:
        return [
            (("anchors", clip), f"{clip}: rate anchor encodes (from the cache when nothing changed)"),
            ((cand, clip, rung), f"{cand} x {clip}: encode at r{rung}, decode, metrics"),
        ]
    if test == "test_determinism":
        return [
            (
                (cand, clip, "determinism"),
                f"{cand} x {clip}: determinism (encode and decode again at every rung)",
            )
        ]
    if test == "test_bd_rate":
        return [
            (
                (cand, clip, "bd"),
                f"{cand} x {clip}: BD-rate against the compared anchors (encoded once per clip)",
            )
        ]
    return []


@dataclass
class Progress:
    """Writes stage lines through `write` (text without a final newline: pytest's next result ends it)."""

    write: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    heartbeat_s: float = HEARTBEAT_S
    write_in_test: Callable[[str], None] | None = None  # heartbeats: written while output is captured
    _tests: dict[str, list[tuple[tuple, str]]] = field(default_factory=dict)
    _seen: set[tuple] = field(default_factory=set)
    _blocked: set[object] = field(default_factory=set)
    _start: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: bool = False
    _stage: str | None = None  # the newest stage's words, and when it began
    _stage_at: float = 0.0
    _last_line: float = 0.0

    def expect(self, nodeid: str, test: str, params: Mapping[str, object]) -> None:
        """A collected test of the suite: its function name and parameters (candidate, clip, rung)."""
        self._tests[nodeid] = stages(test, params)

    def begin(self) -> None:
        """Collection is over: the clock starts."""
        self._start = self.clock()

    def block(self, candidate: object) -> None:
        """The candidate's contract failed: its other tests are skipped, so no stage of it is announced."""
        self._blocked.add(candidate)

    def started(self, nodeid: str) -> None:
        """A test starts: announce each stage of its that no earlier test started (one write)."""
        new = [
            (key, words)
            for key, words in self._tests.get(nodeid, ())
            if key not in self._seen and not (len(key) > 1 and key[0] in self._blocked)
        ]
        if not new:
            return
        with self._lock:
            now = self.clock()
            if self._start is None:
                self._start = now
            self._seen.update(key for key, _ in new)
            self._stage, self._stage_at, self._last_line = new[-1][1], now, now
            self.write("\n".join(f"[{now - self._start:6.1f} s] {words}" for _, words in new))

    def running(self, on: bool) -> None:
        """A test's setup or call starts (True) or ends (False): heartbeats only in between."""
        with self._lock:
            self._running = on

    def tick(self) -> None:
        """From the helper thread, about every second: repeat the stage when it has been quiet too long."""
        with self._lock:
            if not self._running or self._stage is None or self._start is None:
                return
            now = self.clock()
            if now - self._last_line < self.heartbeat_s:
                return
            self._last_line = now
            took = now - self._stage_at
            (self.write_in_test or self.write)(
                f"[{now - self._start:6.1f} s] {self._stage} (still running, {took:.0f} s)"
            )
