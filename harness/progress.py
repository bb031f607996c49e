"""Progress of `pytest benchmarks/`: one plain line when a candidate x clip reaches a new stage.

The Judge does each piece of work once, in the first test that needs it (tests of one candidate
x clip x rate point share an encode), so a stage starts with the first test of its key: the
contract check per candidate; the clip's anchor encodes (x265 for the rate ladder) before its
first rate point; encode, decode and metrics per rate point; determinism; BD-rate (which
encodes the other compared anchors on a clip's first). A line per stage, with the run's elapsed time, written
through pytest's terminal reporter: no carriage returns, so a CI log reads like a terminal; no
line for a candidate whose contract failed (its other tests are skipped). The plugin makes one only where it can print (not under -q, not
with pytest-xdist, whose workers cannot write to the terminal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Progress", "stages"]

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
    _tests: dict[str, list[tuple[tuple, str]]] = field(default_factory=dict)
    _seen: set[tuple] = field(default_factory=set)
    _blocked: set[object] = field(default_factory=set)
    _start: float | None = None

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
        now = self.clock()
        if self._start is None:
            self._start = now
        self._seen.update(key for key, _ in new)
        self.write("\n".join(f"[{now - self._start:6.1f} s] {words}" for _, words in new))
