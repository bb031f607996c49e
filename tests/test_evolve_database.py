"""The program database (harness/evolve/database.py): storage, islands, MAP-Elites, parents, inspirations."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from harness.evolve.database import (
    BD_EDGES,
    COMPLEXITY_EDGES,
    DatabaseError,
    Program,
    ProgramDatabase,
    bin_label,
    bin_of,
)


def prog(attempt, bd, cx=3.0, *, island=None, islands=2, verdict="rejected", stage="verdict", name=None):
    name = name or (f"cand{attempt}" if attempt is not None else "champ")
    return Program(
        attempt=attempt,
        candidate=name,
        code_sha256=f"sha-{name}",
        code_path=f"/run/attempts/{name}.py",
        parent="champ" if attempt is not None else None,
        parent_attempt=None,
        island=island if island is not None else (attempt % islands if attempt is not None else 0),
        stage=stage,
        verdict=verdict,
        bd_vs_anchor=bd,
        encode_complexity=cx,
        added_utc="2026-12-06T06:00:00Z",
    )


def seeded(tmp_path: Path, **kw) -> ProgramDatabase:
    db = ProgramDatabase(tmp_path / "programs.jsonl", **kw)
    assert db.seed(prog(None, 60.0, 3.0, verdict="adopted"))
    return db


def test_bins_and_their_labels():
    assert [bin_of(v, BD_EDGES) for v in (-25, -20, -0.1, 0, 4.9, 63.9, 200, 900)] == [0, 1, 3, 4, 4, 8, 10, 10]
    assert bin_of(None, BD_EDGES) is None
    assert [bin_of(v, COMPLEXITY_EDGES) for v in (0.1, 0.25, 1.0, 3.0, 40.0)] == [0, 1, 3, 4, 8]
    assert bin_label(4, BD_EDGES, " %") == "[0, 5) %"
    assert bin_label(0, BD_EDGES, " %") == "< -20 %"
    assert bin_label(10, BD_EDGES, " %") == ">= 200 %"
    assert bin_label(4, COMPLEXITY_EDGES, "x") == "[2, 4)x"
    assert bin_label(None, COMPLEXITY_EDGES, "x") == "unknown"


def test_program_round_trips_and_judged():
    p = prog(3, -12.5, 0.7)
    assert Program.from_json(json.loads(json.dumps(p.to_json()))) == p
    assert p.judged
    assert not prog(4, None, stage="screen", verdict="failed").judged
    assert not prog(5, 10.0, stage="suite", verdict="failed").judged
    assert not prog(6, 10.0, stage="verdict", verdict="failed").judged  # a test failed: not bred from
    assert not prog(7, 10.0, stage="identical", verdict="rejected").judged
    assert not prog(8, float("nan")).judged
    assert prog(9, 10.0, verdict="adopted").judged
    with pytest.raises(DatabaseError, match="lacks bd_vs_anchor"):
        Program.from_json({k: v for k, v in p.to_json().items() if k != "bd_vs_anchor"})


def test_seed_only_when_empty_and_on_every_island(tmp_path):
    db = seeded(tmp_path, islands=3)
    assert sorted(p.island for p in db.programs()) == [0, 1, 2]
    assert {p.candidate for p in db.programs()} == {"champ"}
    assert not db.seed(prog(None, 10.0, name="other_champ"))  # seeds already there
    assert db.add(prog(1, 50.0, islands=3))
    assert not db.seed(prog(None, 10.0, name="other_champ"))
    assert [p.candidate for p in db.programs()] == ["champ", "champ", "champ", "cand1"]
    # a seed cut short by a kill (one island written) is completed, not duplicated
    db2 = ProgramDatabase(tmp_path / "two.jsonl", islands=3)
    db2.add(prog(None, 60.0, island=1))
    assert db2.seed(prog(None, 60.0))
    assert sorted(p.island for p in db2.programs()) == [0, 1, 2]


def test_readd_of_an_attempt_is_ignored(tmp_path):
    db = seeded(tmp_path)
    assert db.add(prog(1, 50.0))
    assert not db.add(prog(1, 50.0))
    assert not db.add(prog(1, 20.0))  # the first record of an attempt stands
    lines = (tmp_path / "programs.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert [p.bd_vs_anchor for p in db.programs() if p.attempt == 1] == [50.0]
    assert db.add(prog(2, float("nan"), cx=float("inf")))  # stored as unknown, never as NaN
    assert [(p.bd_vs_anchor, p.encode_complexity) for p in db.programs() if p.attempt == 2] == [(None, None)]


def test_torn_last_line_is_tolerated_then_repaired(tmp_path):
    db = seeded(tmp_path)
    db.add(prog(1, 50.0))
    path = tmp_path / "programs.jsonl"
    whole = path.read_bytes()
    torn_line = (json.dumps(prog(2, 40.0).to_json()) + "\n").encode()[:37]
    path.write_bytes(whole + torn_line)
    assert [p.attempt for p in db.programs()] == [None, None, 1]  # the torn program is not there
    assert db.add(prog(3, 30.0))  # repairs under the lock, then appends
    assert path.read_bytes() == whole + (json.dumps(prog(3, 30.0).to_json(), sort_keys=True) + "\n").encode()
    assert [p.attempt for p in db.programs()] == [None, None, 1, 3]
    # killed between the JSON and its newline: the program is whole, kept, and the newline restored
    complete = json.dumps(prog(4, 20.0).to_json(), sort_keys=True).encode()
    path.write_bytes(path.read_bytes() + complete)
    assert [p.attempt for p in db.programs()] == [None, None, 1, 3, 4]
    assert not db.add(prog(4, 20.0))
    assert path.read_bytes().endswith(complete + b"\n")
    assert len(path.read_text().splitlines()) == 5
    # a broken line in the middle is not a torn write: it is reported with its line number
    path.write_text("{not json\n" + path.read_text())
    with pytest.raises(DatabaseError, match=r"programs.jsonl:1: not a program"):
        db.programs()


def _writer(path: str, worker: int, count: int) -> None:
    db = ProgramDatabase(path, islands=4)
    for i in range(count):
        attempt = worker * 1000 + i
        db.add(prog(attempt, float(i), islands=4))


def test_concurrent_adds_from_four_processes(tmp_path):
    path = tmp_path / "programs.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    lines = path.read_text().split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 200
    assert sorted(r["attempt"] for r in records) == sorted(w * 1000 + i for w in range(4) for i in range(50))
    assert len(ProgramDatabase(path, islands=4).programs()) == 200


def test_concurrent_adds_from_threads_of_one_process(tmp_path):
    import threading

    path = tmp_path / "programs.jsonl"
    threads = [threading.Thread(target=_writer, args=(str(path), w, 25)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(path.read_text().splitlines()) == 100
    assert len({p.attempt for p in ProgramDatabase(path, islands=4).programs()}) == 100


def test_islands_stay_apart(tmp_path):
    db = seeded(tmp_path, islands=2)
    db.add(prog(1, -8.0))  # island 1
    db.add(prog(2, 30.0))  # island 0
    db.add(prog(4, 45.0, cx=0.3))  # island 0
    assert db.island_of(6) == 0 and db.island_of(7) == 1
    for attempt in range(10, 60, 2):  # island 0 never sees island 1's far better program
        assert db.sample_parent(attempt).island == 0
        assert db.sample_parent(attempt).candidate in {"champ", "cand2", "cand4"}
    drawn = {db.sample_parent(a).candidate for a in range(11, 61, 2)}
    assert drawn <= {"champ", "cand1"} and "cand1" in drawn
    assert set(db.cells(island=1).values()) == {prog(1, -8.0), prog(None, 60.0, island=1, verdict="adopted")}
    with pytest.raises(DatabaseError, match="island 5"):
        db.add(prog(9, 1.0, island=5))


def test_map_elites_keeps_the_best_per_cell(tmp_path):
    db = seeded(tmp_path, islands=1)
    db.add(prog(1, 7.0, cx=3.0, islands=1))  # cell BD [5, 10), cx [2, 4)
    db.add(prog(2, 6.0, cx=2.5, islands=1))  # same cell, better
    db.add(prog(3, 9.0, cx=2.1, islands=1))  # same cell, worse
    db.add(prog(4, 70.0, cx=20.0, islands=1))  # a cell of its own, worse than everything
    db.add(prog(5, -30.0, stage="screen", verdict="failed", islands=1))  # never judged: not an elite
    db.add(prog(6, 55.0, cx=3.0, islands=1))  # the seed's cell (BD [50, 100), cx [2, 4)), better than the seed
    cells = db.cells(island=0)
    assert cells == {(5, 4): prog(2, 6.0, cx=2.5, islands=1), (8, 4): prog(6, 55.0, islands=1), (8, 7): prog(4, 70.0, cx=20.0, islands=1)}
    assert db.describe_cell((5, 4)) == "BD [5, 10) %, complexity [2, 4)x"


def test_sample_parent_is_deterministic_and_order_independent(tmp_path):
    programs = [prog(a, bd, cx) for a, bd, cx in [(1, 40.0, 1.5), (2, 20.0, 9.0), (3, 5.0, 0.4), (4, 80.0, 3.0), (5, 12.0, 3.0), (6, 60.0, 0.7)]]
    a = seeded(tmp_path / "a", seed=3)
    b = seeded(tmp_path / "b", seed=3)
    for p in programs:
        a.add(p)
    for p in reversed(programs):
        b.add(p)
    draws = [a.sample_parent(n).candidate for n in range(7, 200)]
    assert draws == [b.sample_parent(n).candidate for n in range(7, 200)]
    assert draws == [a.sample_parent(n).candidate for n in range(7, 200)]
    assert len(set(draws)) >= 4  # exploration reaches other elites
    other_seed = seeded(tmp_path / "c", seed=4)
    for p in programs:
        other_seed.add(p)
    assert [other_seed.sample_parent(n).candidate for n in range(7, 200)] != draws


def test_sample_parent_takes_the_best_about_seven_times_in_ten(tmp_path):
    db = seeded(tmp_path, islands=1)
    for attempt, bd, cx in [(1, 40.0, 1.5), (2, 20.0, 9.0), (3, 5.0, 0.4), (4, 80.0, 20.0)]:
        db.add(prog(attempt, bd, cx, islands=1))
    best = sum(db.sample_parent(n).candidate == "cand3" for n in range(100, 600))
    assert 0.6 <= best / 500 <= 0.8
    explored = {db.sample_parent(n).candidate for n in range(100, 600)} - {"cand3"}
    assert explored == {"champ", "cand1", "cand2", "cand4"}  # every other elite, the seed included
    with pytest.raises(DatabaseError, match="seed the database first"):
        ProgramDatabase(tmp_path / "empty.jsonl").sample_parent(1)


def test_inspirations_are_the_best_then_diverse_and_never_the_parent(tmp_path):
    db = seeded(tmp_path, islands=2, inspirations=3)
    db.add(prog(1, -12.3, cx=3.0))  # island 1: the best overall
    db.add(prog(2, 52.0, cx=3.0))  # island 0, the seed's cell, better than the seed
    db.add(prog(3, 51.0, cx=2.8))  # island 1, same cell as cand2 but on another island
    db.add(prog(4, 150.0, cx=0.3))  # island 0, far corner
    db.add(prog(6, 7.0, cx=25.0))  # island 0, another far corner
    db.add(prog(8, -40.0, stage="screen", verdict="failed"))  # never judged: never shown
    parent = db.sample_parent(2)
    assert parent.island == 0
    shown = db.inspirations(parent, 10)
    names = [p.candidate for p, _ in shown]
    assert len(shown) == 3 and parent.candidate not in names and "cand8" not in names
    assert shown[0] == (prog(1, -12.3), "best overall: -12.3 % vs x265")
    assert set(names[1:]) == {"cand4", "cand6"}  # the farthest cells, not the parent's neighbour cand3
    why = {p.candidate: w for p, w in shown}
    assert why["cand4"] == "elite of cell BD [100, 200) %, complexity [0.25, 0.5)x, island 0"
    assert db.inspirations(parent, 10) == shown
    # the best overall as parent: only diverse elites, none with the parent's code
    best = prog(1, -12.3)
    assert all(p.code_sha256 != best.code_sha256 for p, _ in db.inspirations(best, 11))
    assert len(db.inspirations(best, 11)) == 3
    assert ProgramDatabase(db.path, inspirations=0).inspirations(parent, 10) == []


def test_from_settings(tmp_path):
    from harness.evolve.config import DatabaseSettings

    db = ProgramDatabase.from_settings(tmp_path / "p.jsonl", DatabaseSettings(islands=3, inspirations=1, seed=9, bd_edges=(0.0, 10.0)))
    assert (db.islands, db.k, db.seed_value, db.bd_edges) == (3, 1, 9, (0.0, 10.0))
    with pytest.raises(DatabaseError, match="strictly increasing"):
        ProgramDatabase(tmp_path / "p.jsonl", bd_edges=(5.0, 1.0))
