"""harness.ledger: a champion per track, entries that record their track, and the pre-track ledger.

The project's own ledger.jsonl began before tracks (schema 1 lines, no `track`). Those lines are
read as the open track's and never rewritten: these tests read a copy of the real file.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from harness.adoption import decide_all, ledger_table
from harness.adoption.config import AdoptionError
from harness.adoption.recording import ledger_entry
from harness.adoption.rules import candidate_track
from harness.ledger import (
    LEDGER_SCHEMA,
    LEGACY_TRACK,
    TRACKS,
    Ledger,
    LedgerEntry,
    LedgerError,
    champion_of,
    champions,
)
from tests.test_adoption import config, doc, raw  # noqa: F401  (fixtures: the recorded report, waived config)

REPO = Path(__file__).resolve().parents[1]
REAL_LEDGER = REPO / "ledger.jsonl"


@pytest.fixture
def real_copy(tmp_path) -> Path:
    path = tmp_path / "ledger.jsonl"
    shutil.copyfile(REAL_LEDGER, path)
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_real_ledger_is_read_whole_and_pre_track_lines_are_the_open_tracks(real_copy):
    raw_lines = _lines(real_copy)
    entries = Ledger(real_copy).entries()
    assert len(entries) == len(raw_lines) >= 1  # no line lost
    legacy = [(line, e) for line, e in zip(raw_lines, entries) if line.get("schema", 1) == 1]
    assert legacy, "the real ledger starts with pre-track lines"
    for line, entry in legacy:
        assert "track" not in line
        assert entry.track == LEGACY_TRACK == "open" and entry.schema == 1
        # Every field of the line is kept as written; the track is the only addition.
        assert {k: v for k, v in entry.to_json().items() if k != "track"} == {"schema": 1, **line}
    for line, entry in zip(raw_lines, entries):
        if line.get("schema", 1) == LEDGER_SCHEMA:
            assert entry.to_json() == line and entry.track in TRACKS


def test_x264_pyav_is_the_open_champion_and_never_the_native_one(real_copy):
    ledger = Ledger(real_copy)
    entries = ledger.entries()
    assert ledger.champion("open").candidate == "x264_pyav"
    native = ledger.champion("native")
    assert native is None or (native.candidate != "x264_pyav" and native.schema == LEDGER_SCHEMA)
    assert champions(entries) == {"native": native, "open": ledger.champion("open")}
    assert ledger.champion() == native  # the default track is native


def test_appending_keeps_the_old_bytes_and_writes_the_track(real_copy):
    before = real_copy.read_bytes()
    ledger = Ledger(real_copy)
    n = len(ledger.entries())
    written = ledger.append(
        LedgerEntry(candidate="dct_inter", track="native", source_sha256="ab" * 32, decision="adopted", reason="r")
    )
    after = real_copy.read_bytes()
    assert after.startswith(before)  # append-only: nothing before it was rewritten
    line = json.loads(after[len(before):].decode())
    assert line["track"] == "native" and line["schema"] == LEDGER_SCHEMA and line["seq"] == n + 1
    assert ledger.champion("native") == written
    assert ledger.champion("open").candidate == "x264_pyav"  # the other track's champion is untouched


def test_a_champion_of_one_track_is_never_anothers():
    e = [
        LedgerEntry(candidate="wrap", track="open", source_sha256="1", decision="adopted", reason=""),
        LedgerEntry(candidate="own", track="native", source_sha256="2", decision="adopted", reason=""),
        LedgerEntry(candidate="wrap2", track="open", source_sha256="3", decision="adopted", reason=""),
        LedgerEntry(candidate="own2", track="native", source_sha256="4", decision="rejected", reason=""),
    ]
    assert champion_of(e, "native").candidate == "own"
    assert champion_of(e, "open").candidate == "wrap2"
    assert champion_of(e[:1], "native") is None
    with pytest.raises(LedgerError, match=r"track 'closed' is none of native, open"):
        champion_of(e, "closed")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"schema": 2}, r"track None is none of native, open \(schema 2 lines name one\)"),
        ({"schema": 2, "track": "gpu"}, r"track 'gpu' is none of native, open"),
        ({"schema": 1, "track": "native"}, r"unknown field\(s\) track"),  # schema 1 predates tracks
        ({"schema": 3, "track": "native"}, r"ledger schema 3; this harness reads 1, 2"),
    ],
)
def test_malformed_track_lines_are_refused_naming_the_line(tmp_path, line, message):
    path = tmp_path / "ledger.jsonl"
    base = {"candidate": "c", "source_sha256": "0" * 64, "decision": "adopted", "reason": "r"}
    path.write_text(json.dumps({**base, **line}) + "\n")
    with pytest.raises(LedgerError, match=rf"ledger.jsonl:1: {message}"):
        Ledger(path).entries()


def test_append_refuses_an_unknown_track(tmp_path):
    with pytest.raises(LedgerError, match="track 'both' is none of native, open"):
        Ledger(tmp_path / "l.jsonl").append(
            LedgerEntry(candidate="c", track="both", source_sha256="0", decision="adopted", reason="")
        )
    assert not (tmp_path / "l.jsonl").exists() or not (tmp_path / "l.jsonl").read_text()


def test_the_ledger_table_names_each_track_and_marks_pre_track_lines(real_copy):
    entries = Ledger(real_copy).entries()
    text = ledger_table(entries)
    header = text.splitlines()[0].split()
    assert header[:4] == ["seq", "time", "(UTC)", "track"]
    assert "open*" in text and "* written before tracks (ledger schema 1): read as the open track's" in text
    assert "open champion: x264_pyav (seq 1," in text
    native = champion_of(entries, "native")
    if native is None:
        assert "native champion: none yet" in text and "--best --track native" in text
    else:
        assert f"native champion: {native.candidate} (seq {native.seq}," in text


# ----------------------------------------------------------------------------- adoption per track


def _tracked(d: dict) -> dict:
    d = copy.deepcopy(d)
    d["candidates"]["x264_pyav"]["track"] = "open"
    d["candidates"]["dct_inter"]["track"] = "native"
    return d


def test_each_track_bootstraps_its_own_first_champion(doc, config):  # noqa: F811
    d = _tracked(doc)
    verdicts = decide_all(d, config=config, ledger=[])
    # Without tracks x264_pyav (the better codec) would be the only first champion and dct_inter
    # rejected as "not the best reference candidate" (test_adoption); per track both stand.
    for name, track in (("dct_inter", "native"), ("x264_pyav", "open")):
        v = verdicts[name]
        assert v.track == track and v.decision == "adopted" and v.bootstrap, v.reasons
        assert v.reason.startswith(f"first {track} champion (no {track} champion in the ledger): the best of 1")
        assert v.scores["track"] == track
    entry = ledger_entry("dct_inter", "0" * 64, decision="adopted", reason="r", parent=None, champion=None,
                         verdict=verdicts["dct_inter"])
    assert entry.track == "native"


def test_a_native_candidate_is_judged_against_the_native_champion_only(doc, config, tmp_path):  # noqa: F811
    d = _tracked(doc)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cand = d["candidates"]["x264_pyav"]
    ledger.append(
        LedgerEntry(candidate="x264_pyav", track="open", source_sha256=cand["sha256"], decision="adopted",
                    reason="seeded")
    )
    # An open champion only: dct_inter is the native track's first, never compared with a wrapper.
    v = decide_all(d, config=config, ledger=ledger)["dct_inter"]
    assert v.champion is None and v.bootstrap and v.decision == "adopted", v.reasons
    assert decide_all(d, config=config, ledger=ledger)["x264_pyav"].reason == (
        "x264_pyav is already the open champion (x264_pyav (seq 1))"
    )


def test_a_report_without_tracks_reads_native_and_an_unknown_track_is_refused(doc):  # noqa: F811
    assert candidate_track(doc, "dct_inter") == "native"  # recorded before tracks: the default track
    d = copy.deepcopy(doc)
    d["candidates"]["dct_inter"]["track"] = "closed"
    with pytest.raises(AdoptionError, match="the report gives dct_inter the track 'closed'; tracks are native, open"):
        candidate_track(d, "dct_inter")
