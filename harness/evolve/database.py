"""The program database: every judged attempt of a run, with its scores, lineage and code (RUN/programs.jsonl).

Parents are sampled from it with diversity, and the prompt shows a few "inspirations" besides the
parent (OpenEvolve / FunSearch style); adoption stays the ledger's decision.

Storage. One JSON object per line, appended with one `write` + fsync under an exclusive `fcntl` lock
(several processes or threads of one run may add at once). A writer killed mid-line leaves a torn
last line: readers skip it, and the next `add` repairs it under the lock (a tail that is a whole
program lacking only its newline is kept, anything else is cut). The same attempt added twice is
ignored, so a resumed run can add what it may have added before it was killed.

Diversity. Programs live on `islands` islands: attempt n works on island n % islands and its program
stays there (its parent came from that island); the seed (the track's ledger champion when the run
started, attempt None) is on every island. Islands evolve apart, so one lucky line of descent does
not take over the whole run; inspirations carry ideas between islands. Inside an island, MAP-Elites
cells over (BD-rate against x265 in %, encode complexity relative to x265) keep the best program
(lowest BD-rate) of each cell, so a slower-but-better and a faster-but-worse codec both survive.

Bin edges (a value v falls in bin i when edges[i-1] <= v < edges[i]; below the first edge is bin 0,
at or above the last is bin len(edges); an unknown value is bin None):
- BD-rate vs x265, %: -20, -10, -5, 0, 5, 10, 25, 50, 100, 200. Fine near 0 (where beating x265 is
  decided and a few % is a real step), coarse above +50 % (where native Python codecs start: the
  project's dct_inter is at about +64 %) and one open bin each for < -20 % and >= +200 %.
- Encode complexity (CPU per megapixel-frame over x265's), x: 0.25, 0.5, 1, 2, 4, 8, 16, 32. Powers
  of two: CPU cost is multiplicative (numpy, a Python loop and a search multiply it), and a factor
  of 2 is a real difference in design while run-to-run timing noise stays well inside it.

Only programs that passed the full evaluation with a BD-rate (`Program.judged`: stage "verdict",
adopted or rejected) become elites and parents; screened-out, failed and invalid attempts are
recorded (the progress page counts them) but never bred from. The seed is always eligible, even
with no scores (its cell is then "unknown" and it ranks below every scored program).

Sampling (`sample_parent`, deterministic for (seed, attempt, the database's contents) whatever the
order of the lines): with probability EXPLOIT = 0.7 the island's best elite (lowest BD-rate), else,
exploring, one of the island's other elites uniformly at random (so the best is chosen with
probability exactly 0.7 when the island has more than one elite, always when it has one).
`inspirations(parent, attempt)`: up to k programs other than the parent (and none with the parent's
code): the best judged program of the whole run first, then elites of any island chosen farthest
first from the parent and those already chosen (distance in cells, plus one for another island),
ties drawn at random; each comes with a one-line reason for the prompt.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.evolve.config import DatabaseSettings

__all__ = [
    "BD_EDGES",
    "COMPLEXITY_EDGES",
    "EXPLOIT",
    "DatabaseError",
    "Program",
    "ProgramDatabase",
    "bin_label",
    "bin_of",
]

BD_EDGES: tuple[float, ...] = (-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0)
COMPLEXITY_EDGES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
EXPLOIT = 0.7  # probability that sample_parent takes the island's best elite

Cell = tuple[int | None, int | None]


class DatabaseError(HarnessError):
    """The program database is unusable (a line in its middle is not a program, bad settings)."""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Program:
    """One program: an attempt's judged candidate, or the seed (attempt None: the ledger champion)."""

    attempt: int | None
    candidate: str
    code_sha256: str
    code_path: str  # absolute path of the judged source
    parent: str | None
    parent_attempt: int | None
    island: int
    stage: str  # where the attempt stopped: extract | identical | check | screen | suite | verdict
    verdict: str  # adopted | rejected | failed | invalid
    bd_vs_anchor: float | None  # BD-rate in % against x265; negative means fewer bits than x265
    encode_complexity: float | None  # encode CPU per megapixel-frame relative to x265's
    added_utc: str

    @property
    def judged(self) -> bool:
        """Passed the full evaluation (stage "verdict", adopted or rejected) with a BD-rate: may be a parent.

        A "failed" verdict (a test of the suite failed) is not bred from even when it has a BD-rate.
        """
        return self.stage == "verdict" and self.verdict in ("adopted", "rejected") and _finite(self.bd_vs_anchor)

    @property
    def is_seed(self) -> bool:
        return self.attempt is None

    @property
    def key(self) -> tuple:
        """What makes a line a duplicate: the attempt, or for a seed its candidate and island."""
        return ("attempt", self.attempt) if self.attempt is not None else ("seed", self.candidate, self.island)

    def read_source(self) -> str | None:
        """The judged source, None when the file is gone."""
        try:
            return Path(self.code_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Program:
        if not isinstance(data, dict):
            raise DatabaseError(f"not a program: {data!r:.80}")
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise DatabaseError(f"program record lacks {', '.join(sorted(missing))}")
        values = {k: data[k] for k in names}
        for key in ("bd_vs_anchor", "encode_complexity"):
            if values[key] is not None and not _finite(values[key]):
                raise DatabaseError(f"program record: {key} = {values[key]!r} is not a number")
            if values[key] is not None:
                values[key] = float(values[key])
        if values["attempt"] is not None and (isinstance(values["attempt"], bool) or not isinstance(values["attempt"], int)):
            raise DatabaseError(f"program record: attempt = {values['attempt']!r} is not an integer")
        if isinstance(values["island"], bool) or not isinstance(values["island"], int) or values["island"] < 0:
            raise DatabaseError(f"program record: island = {values['island']!r} is not an island number")
        if not isinstance(values["candidate"], str) or not values["candidate"]:
            raise DatabaseError("program record: candidate is empty")
        return cls(**values)


def bin_of(value: float | None, edges: Sequence[float]) -> int | None:
    """The bin of `value`: i when edges[i-1] <= value < edges[i]; None when the value is unknown."""
    if value is None:
        return None
    return sum(1 for e in edges if value >= e)


def bin_label(index: int | None, edges: Sequence[float], unit: str) -> str:
    """A bin in words: "[0, 5) %", "< -20 %", ">= 200 %", "unknown"."""
    if index is None:
        return "unknown"

    def num(x: float) -> str:
        return f"{x:g}"

    if index == 0:
        return f"< {num(edges[0])}{unit}"
    if index >= len(edges):
        return f">= {num(edges[-1])}{unit}"
    return f"[{num(edges[index - 1])}, {num(edges[index])}){unit}"


def _rank(p: Program) -> tuple:
    """Order of merit inside a cell and overall: lowest BD-rate, then cheaper, then older, then name."""
    bd = p.bd_vs_anchor if p.bd_vs_anchor is not None else math.inf
    cx = p.encode_complexity if p.encode_complexity is not None else math.inf
    return (bd, cx, -1 if p.attempt is None else p.attempt, p.candidate, p.island)


def _check_edges(edges: Iterable[float], what: str) -> tuple[float, ...]:
    out = tuple(float(e) for e in edges)
    if not out or any(not math.isfinite(e) for e in out) or any(b <= a for a, b in itertools.pairwise(out)):
        raise DatabaseError(f"{what} must be finite and strictly increasing, got {list(out)}")
    return out


class ProgramDatabase:
    """RUN/programs.jsonl: add programs, sample parents and inspirations (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        islands: int = 2,
        inspirations: int = 2,
        seed: int = 0,
        bd_edges: Sequence[float] = BD_EDGES,
        complexity_edges: Sequence[float] = COMPLEXITY_EDGES,
        exploit: float = EXPLOIT,
    ) -> None:
        if islands < 1:
            raise DatabaseError(f"islands = {islands} must be >= 1")
        if inspirations < 0:
            raise DatabaseError(f"inspirations = {inspirations} must be >= 0")
        if not 0.0 <= exploit <= 1.0:
            raise DatabaseError(f"exploit = {exploit} must be 0..1")
        self.path = Path(path)
        self.islands = islands
        self.k = inspirations
        self.seed_value = seed
        self.bd_edges = _check_edges(bd_edges, "bd_edges")
        self.complexity_edges = _check_edges(complexity_edges, "complexity_edges")
        self.exploit = exploit

    @classmethod
    def from_settings(cls, path: str | os.PathLike[str], settings: DatabaseSettings) -> ProgramDatabase:
        """From the config's [database] section."""
        return cls(
            path,
            islands=settings.islands,
            inspirations=settings.inspirations,
            seed=settings.seed,
            bd_edges=settings.bd_edges,
            complexity_edges=settings.complexity_edges,
        )

    # -- storage -------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> tuple[list[Program], int, bool]:
        """(programs, byte length of the whole lines, whether a torn tail is a whole program)."""
        end = data.rfind(b"\n") + 1
        programs: list[Program] = []
        seen: set[tuple] = set()
        for number, line in enumerate(data[:end].split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                program = Program.from_json(json.loads(line))
            except (ValueError, DatabaseError) as err:
                raise DatabaseError(f"{self.path}:{number}: not a program ({err}); repair the file by hand") from err
            if program.key not in seen:
                seen.add(program.key)
                programs.append(program)
        tail_whole = False
        tail = data[end:]
        if tail.strip():
            try:
                program = Program.from_json(json.loads(tail))
            except (ValueError, DatabaseError):
                pass
            else:
                tail_whole = True
                if program.key not in seen:
                    programs.append(program)
        return programs, end, tail_whole

    def programs(self) -> list[Program]:
        """Every program, in the order added (duplicates and a torn last line left out)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        finally:
            os.close(fd)
        return self._parse(data)[0]

    def _locked_write(self, make_lines) -> bool:
        """Under the exclusive lock: repair a torn tail, then append what make_lines(programs) returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
            programs, end, tail_whole = self._parse(data)
            if end < len(data):
                if tail_whole:  # the writer died between the program and its newline
                    os.pwrite(fd, b"\n", len(data))
                else:
                    os.ftruncate(fd, end)
                os.fsync(fd)
            lines = make_lines(programs)
            if lines:
                blob = b"".join(
                    (json.dumps(p.to_json(), sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")
                    for p in lines
                )
                os.lseek(fd, 0, os.SEEK_END)
                written = 0
                while written < len(blob):
                    written += os.write(fd, blob[written:])
                os.fsync(fd)
            return bool(lines)
        finally:
            os.close(fd)

    def add(self, program: Program) -> bool:
        """Append one program (fsynced under the lock); False when its attempt is already there.

        A score that is not a finite number (NaN from a broken report) is stored as unknown (None).
        """
        program = replace(
            program,
            bd_vs_anchor=program.bd_vs_anchor if _finite(program.bd_vs_anchor) else None,
            encode_complexity=program.encode_complexity if _finite(program.encode_complexity) else None,
        )
        if program.island >= self.islands and program.attempt is not None:
            raise DatabaseError(f"program of attempt {program.attempt}: island {program.island} >= islands ({self.islands})")
        return self._locked_write(lambda have: [] if program.key in {p.key for p in have} else [program])

    def seed(self, champion: Program) -> bool:
        """Put the track's champion (attempt None) on every island when the database has no programs.

        A seed cut short by a kill (some islands seeded) is completed; once any attempt or a full
        set of seeds is there, nothing is written. Returns whether anything was written.
        """
        if champion.attempt is not None:
            raise DatabaseError(f"a seed has no attempt (got attempt {champion.attempt})")

        def lines(have: list[Program]) -> list[Program]:
            if any(p.attempt is not None for p in have):
                return []
            seeded = {p.island for p in have}
            return [replace(champion, island=i) for i in range(self.islands) if i not in seeded]

        return self._locked_write(lines)

    # -- diversity -----------------------------------------------------------------------------

    def island_of(self, attempt: int) -> int:
        return attempt % self.islands

    def cell_of(self, program: Program) -> Cell:
        return (bin_of(program.bd_vs_anchor, self.bd_edges), bin_of(program.encode_complexity, self.complexity_edges))

    def describe_cell(self, cell: Cell) -> str:
        return (
            f"BD {bin_label(cell[0], self.bd_edges, ' %')}, "
            f"complexity {bin_label(cell[1], self.complexity_edges, 'x')}"
        )

    @staticmethod
    def _eligible(p: Program) -> bool:
        return p.judged or p.is_seed

    def _elites(self, programs: Sequence[Program], island: int | None) -> dict[Cell, Program]:
        best: dict[Cell, Program] = {}
        for p in programs:
            if not self._eligible(p) or (island is not None and p.island != island):
                continue
            cell = self.cell_of(p)
            if cell not in best or _rank(p) < _rank(best[cell]):
                best[cell] = p
        return dict(sorted(best.items(), key=lambda kv: _cell_sort(kv[0])))

    def cells(self, island: int | None = None) -> dict[Cell, Program]:
        """The elites (best program per cell) of one island, or with island None of the whole run."""
        return self._elites(self.programs(), island)

    def _rng(self, attempt: int) -> random.Random:
        return random.Random(self.seed_value * 1_000_003 + attempt)

    def sample_parent(self, attempt: int) -> Program:
        """The program attempt `attempt` builds on (see the module docstring); raises when there is none."""
        island = self.island_of(attempt)
        elites = sorted(self._elites(self.programs(), island).values(), key=_rank)
        if not elites:
            raise DatabaseError(f"{self.path}: island {island} has no program to build on; seed the database first")
        rng = self._rng(attempt)
        if rng.random() < self.exploit or len(elites) == 1:
            return elites[0]
        return rng.choice(elites[1:])

    def inspirations(self, parent: Program, attempt: int) -> list[tuple[Program, str]]:
        """Up to k programs besides `parent` for the prompt, each with why it was chosen."""
        if self.k == 0:
            return []
        programs = self.programs()
        rng = self._rng(attempt)
        excluded_code = {parent.code_sha256}
        out: list[tuple[Program, str]] = []

        judged = sorted((p for p in programs if p.judged or (p.is_seed and _finite(p.bd_vs_anchor))), key=_rank)
        if judged and judged[0].code_sha256 not in excluded_code and judged[0].candidate != parent.candidate:
            best = judged[0]
            out.append((best, f"best overall: {best.bd_vs_anchor:+.1f} % vs x265"))
            excluded_code.add(best.code_sha256)

        pool: list[Program] = []
        names = {parent.candidate, *(p.candidate for p, _ in out)}
        for p in sorted((e for i in range(self.islands) for e in self._elites(programs, i).values()), key=_rank):
            if p.code_sha256 in excluded_code or p.candidate in names or not _finite(p.bd_vs_anchor):
                continue
            if any(q.code_sha256 == p.code_sha256 for q in pool):
                continue
            pool.append(p)

        chosen = [parent, *(p for p, _ in out)]
        while len(out) < self.k and pool:
            def distance(p: Program) -> int:
                return min(self._distance(p, q) for q in chosen)

            far = max(distance(p) for p in pool)
            ties = [p for p in pool if distance(p) == far]
            pick = ties[0] if len(ties) == 1 else rng.choice(ties)
            pool.remove(pick)
            chosen.append(pick)
            out.append((pick, f"elite of cell {self.describe_cell(self.cell_of(pick))}, island {pick.island}"))
        return out[: self.k]

    def _distance(self, a: Program, b: Program) -> int:
        """Cells apart (Manhattan over the bins; an unknown bin is one past the last), plus one across islands."""
        ca, cb = self.cell_of(a), self.cell_of(b)
        unknown = (len(self.bd_edges) + 1, len(self.complexity_edges) + 1)
        d = sum(abs((x if x is not None else u) - (y if y is not None else u)) for x, y, u in zip(ca, cb, unknown))
        return d + (a.island != b.island)


def _cell_sort(cell: Cell) -> tuple:
    return tuple(-1 if c is None else c for c in cell)
