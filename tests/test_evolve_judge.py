"""Recording verdicts (harness/evolve/judge.py): the loop's ledger entries and `adopt`'s come from one
builder (harness.adoption.recording.ledger_entry) and are field for field what they were before it.

The "before" builders below are the constructions `adopt` and `record_rejection` had inline until
the builder was shared (commit d949462), kept verbatim but for the append and for the two fields
added on purpose since (each marked where it is built): the entry's track (the ledger keeps a
champion per track) and `adopt`'s "profile" in extra (62ae125: the entry records the report's
profile). Each test builds an entry through today's code path and through the old construction on
the same inputs. The report judged is the world's seed run of its native champion (CHAMPION).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest

from harness import adoption
from harness.adoption import recording
from harness.adoption.scores import report_basis
from harness.evolve.judge import record_rejection, record_verdict
from harness.ledger import Ledger, LedgerEntry, champion_of
from tests import evolve_helpers
from tests.evolve_helpers import CHAMPION, REPO

pytestmark = pytest.mark.sandbox
project, world = evolve_helpers.project, evolve_helpers.world  # the fixtures


# ----------------------------------------------------------------------------- the builders before


def _adopt_entry_before(report_path, report_sha, doc, name, judged_sha, v, champion, parent, config):
    """harness/adoption/recording.py `adopt`, d949462."""
    return LedgerEntry(
        candidate=name,
        track=v.track,  # added with tracks: the track the report judged the candidate in
        source_sha256=judged_sha,
        decision="adopted" if v.adoptable else "rejected",
        reason=v.reason,
        parent=parent,
        report=recording._report_label(report_path, report_sha),
        report_sha256=report_sha,
        scores=v.scores,
        fingerprint=v.fingerprint,
        identical_to=v.identical_to,
        extra={
            "reasons": list(v.reasons),
            "basis": report_basis(doc),
            "champion": {"name": champion.candidate, "seq": champion.seq} if champion else None,
            "bootstrap": v.bootstrap,
            "report_created_utc": doc.get("created_utc"),
            "profile": doc["settings"]["profile"],  # added in 62ae125: the report's profile
            "git": doc.get("git"),
            "config": config.to_json(),
        },
    )


def _rejection_entry_before(
    ledger, name, source_sha256, reason, *, parent, reasons=None, report=None, verdict=None, extra=None,
    identical_to=None,
):
    """harness/evolve/judge.py `record_rejection`, d949462 (without the append)."""
    report_sha = hashlib.sha256(report.read_bytes()).hexdigest() if report is not None and report.exists() else None
    champion = ledger.champion()
    return LedgerEntry(
        candidate=name,
        track=verdict.track if verdict is not None else "native",  # added with tracks (the loop evolves native)
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


def _same(written: LedgerEntry, before: LedgerEntry) -> None:
    """Field for field, and as the ledger line, but for what `append` stamps (seq, time)."""
    stamped = dataclasses.replace(before, seq=written.seq, time_utc=written.time_utc)
    assert written == stamped
    assert json.dumps(written.to_json(), sort_keys=True) == json.dumps(stamped.to_json(), sort_keys=True)


@pytest.fixture
def config() -> adoption.AdoptionConfig:
    return dataclasses.replace(
        adoption.load_adoption_config(REPO / "fixtures" / "adoption.toml"), require_heldout=False
    )


# ----------------------------------------------------------------------------- the tests


def test_adopt_writes_the_entry_it_wrote_before(project, world, config):
    """`adopt` on a real report: first champion (empty ledger), then against that champion."""
    report = world["root"] / "seed" / "latest.json"
    doc, report_sha = recording.load_doc(report)
    judged_sha = doc["candidates"][CHAMPION]["sha256"]
    for ledger_path, parent in ((project["tmp"] / "empty.jsonl", None), (project["ledger"], CHAMPION)):
        ledger = Ledger(ledger_path)
        entries = ledger.entries()
        v = adoption.verdict(doc, CHAMPION, config=config, ledger=entries)
        before = _adopt_entry_before(report, report_sha, doc, CHAMPION, judged_sha, v, champion_of(entries),
                                     parent, config)
        written = adoption.adopt(report, CHAMPION, ledger=ledger, candidates_dir=project["cands"],
                                 config=config, parent=parent, force_record_rejection=True)
        _same(written, before)
        assert Ledger(ledger_path).entries()[-1] == written
    assert [e.decision for e in Ledger(project["ledger"]).entries()] == ["adopted", "rejected"]


def test_record_rejection_writes_the_entry_it_wrote_before(project, world):
    """Each shape the loop writes: no code, identical source, failed suite, verdict with a report."""
    ledger = Ledger(project["ledger"])
    report = project["tmp"] / "report.json"
    report.write_text('{"a report": true}\n')
    verdict = adoption.Verdict(
        candidate="evo_v", decision="rejected", adoptable=False, reasons=["needs more bits", "clip x worse"],
        scores={"vs_champion": {"psnr_yuv": 3.5}}, identical_to="evo_t (seq 2)", fingerprint="f" * 64,
    )
    evo = {"evolve": {"run": "RUN", "attempt": 1, "model": "m", "prompt_sha256": "p" * 64}}
    cases = [  # (name, source hash, reason, the other arguments)
        ("evo_a", "a" * 64, "reply has no code",
         {"parent": CHAMPION, "extra": {**evo, "stage": "extract", "source": "the reply (no module)"}}),
        ("evo_b", "b" * 64, "identical source",
         {"parent": CHAMPION, "identical_to": "evo_a", "extra": {**evo, "stage": "identical"}}),
        ("evo_c", "c" * 64, "the suite failed", {"parent": None, "extra": {**evo, "stage": "suite"}}),
        ("evo_v", "d" * 64, verdict.reason,
         {"parent": CHAMPION, "report": report, "verdict": verdict, "reasons": list(verdict.reasons),
          "extra": {**evo, "stage": "verdict"}}),
        ("evo_w", "e" * 64, "not recorded",
         {"parent": CHAMPION, "report": report, "verdict": verdict, "reasons": [], "identical_to": "evo_b",
          "extra": {"reasons": ["overridden"]}}),
        ("evo_x", "e" * 64, "gone", {"parent": CHAMPION, "report": project["tmp"] / "missing.json"}),
    ]
    for name, sha, reason, args in cases:
        before = _rejection_entry_before(ledger, name, sha, reason, **args)
        written = record_rejection(ledger, name, sha, reason, **args)
        _same(written, before)
    again = record_rejection(ledger, "evo_a", "a" * 64, "once more", parent=None)
    assert again.seq == 2 and again.reason == "reply has no code"  # recorded once


def test_record_verdict_writes_the_entries_it_wrote_before(project, world, config, tmp_path):
    """A judged verdict goes through `adopt` (recorded once); one that cannot be decided is a rejection."""
    report = tmp_path / "latest.json"
    shutil.copy(world["root"] / "seed" / "latest.json", report)
    doc, report_sha = recording.load_doc(report)
    sha = doc["candidates"][CHAMPION]["sha256"]

    ledger = Ledger(tmp_path / "fresh.jsonl")  # (tmp_path / "ledger.jsonl" is the project's)
    v_before = adoption.verdict(doc, CHAMPION, config=config, ledger=[])
    before = _adopt_entry_before(report, report_sha, doc, CHAMPION, sha, v_before, None, None, config)
    v, written = record_verdict(doc, report, CHAMPION, ledger=ledger, candidates_dir=project["cands"],
                                config=config, parent=None, extra={"stage": "verdict"})
    assert v == v_before and written.decision == "adopted"
    _same(written, before)
    v2, again = record_verdict(doc, report, CHAMPION, ledger=ledger, candidates_dir=project["cands"],
                               config=config, parent=None)
    assert v2 == v and again == written and len(ledger.entries()) == 1  # recorded once

    other = Ledger(tmp_path / "other.jsonl")  # a champion the report did not run: no decision
    other.append(LedgerEntry(candidate="elsewhere", source_sha256="0" * 64, decision="adopted", reason="seed"))
    v = adoption.verdict(doc, CHAMPION, config=config, ledger=other.entries())
    assert not v.judged
    before = _rejection_entry_before(other, CHAMPION, sha, v.reason, parent="elsewhere", report=report,
                                     verdict=v, reasons=list(v.reasons), extra={"stage": "verdict"})
    v3, written = record_verdict(doc, report, CHAMPION, ledger=other, candidates_dir=project["cands"],
                                 config=config, parent="elsewhere", extra={"stage": "verdict"})
    assert v3 == v and written.decision == "rejected"
    _same(written, before)
