"""The evolution loop (harness/evolve/loop.py): stop rules, resume after a kill, a scripted run of attempts."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from harness.candidate import discover_candidates
from harness.evolve.database import ProgramDatabase
from harness.evolve.loop import Evolution
from harness.ledger import Ledger
from tests import evolve_helpers
from tests.evolve_helpers import (
    CHAMPION,
    FakeAPI,
    as_reply,
    canned,
    good_code,
    log_records,
    new_entries,
    settings_for,
    worse_code,
)

pytestmark = pytest.mark.sandbox
project, world = evolve_helpers.project, evolve_helpers.world  # the fixtures


def evolve(project: dict, api: FakeAPI, **stop):
    """The loop one attempt at a time (one request, one evaluation, in threads: no Ray), as these tests
    expect each attempt to see the verdicts of the ones before (tests/test_evolve_scale.py: concurrency)."""
    settings = settings_for(project, **stop)
    config = settings.config.with_overrides(scale={"requests_in_flight": 1, "evaluations_in_flight": 1,
                                                   "ray_address": "none"})
    out = io.StringIO()
    evo = Evolution(dataclasses.replace(settings, config=config), api_key="sk-test-not-a-key",
                    http_client=api.client(), out=out)
    result = evo.run()
    return result, out.getvalue()


def test_identical_source_stops_the_run(project):
    code = good_code()
    api = FakeAPI(as_reply(code), as_reply(code, plan="Plan: a new idea (the same module)."), "never asked")
    result, out = evolve(project, api, iterations=5)
    first, second = result.records
    assert len(api.requests) == 2
    assert first["verdict"] == "adopted"
    assert second["verdict"] == "rejected" and second["stage"] == "identical" and second["report"] is None
    assert second["identical_attempt"] == 1 and second["identical_to"] == first["candidate"]
    assert f"is identical to attempt 1 ({first['candidate']})" in result.stop_reason
    assert "the same source code" in result.stop_reason and result.stop_reason in out
    assert not (project["cands"] / f"{second['candidate']}.py").exists()
    assert [e.decision for e in new_entries(project)] == ["adopted", "rejected"]


def test_identical_results_stop_the_run(project):
    code = good_code()
    twin = code.replace("(canned reply)", "(canned reply, renamed)", 1)  # other source, same bitstreams
    api = FakeAPI(as_reply(code), as_reply(twin), "never asked")
    result, _ = evolve(project, api, iterations=5)
    first, second = result.records
    assert len(api.requests) == 2 and second["stage"] == "verdict" and second["report"]
    assert second["verdict"] == "rejected" and second["fingerprint"] == first["fingerprint"]
    assert second["identical_attempt"] == 1 and second["identical_to"].startswith(first["candidate"])
    assert "is identical to attempt 1" in result.stop_reason and "the same bitstreams" in result.stop_reason


def test_resume_after_a_kill_between_writing_and_judging(project, monkeypatch):
    import harness.evolve.evaluate as attempt_module  # where an attempt's candidate is judged

    real_run_suite = attempt_module.run_suite

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the candidate file is written, before judging

    monkeypatch.setattr(attempt_module, "run_suite", killed)
    api = FakeAPI(as_reply(good_code()))
    with pytest.raises(KeyboardInterrupt):
        evolve(project, api, iterations=1)
    attempt = project["run"] / "attempts" / "0001"
    pending = json.loads((attempt / "pending.json").read_text())
    path = project["cands"] / f"{pending['candidate']}.py"
    written = path.read_bytes()
    assert (attempt / "reply.json").exists() and log_records(project) == [] and new_entries(project) == []

    monkeypatch.setattr(attempt_module, "run_suite", real_run_suite)
    nobody = FakeAPI()  # any request would fail the test
    _, out = evolve(project, nobody, iterations=1)
    assert nobody.requests == []
    assert "the reply is already on disk" in out
    [record] = log_records(project)
    assert record["candidate"] == pending["candidate"] and record["resumed"] is True
    assert record["verdict"] == "adopted" and path.read_bytes() == written
    assert [e.candidate for e in new_entries(project)] == [pending["candidate"]]

    # a kill while the record was being written: the torn line is dropped and the attempt finished again
    log = project["run"] / "attempts.jsonl"
    log.write_bytes(log.read_bytes()[:-40])
    again = FakeAPI()
    _, out = evolve(project, again, iterations=1)
    assert again.requests == [] and "incomplete last line" in out and "finishing its record" in out
    assert [r["candidate"] for r in log_records(project)] == [pending["candidate"]]
    assert [e.candidate for e in new_entries(project)] == [pending["candidate"]]  # not recorded twice
    assert log_records(project)[0]["ledger_seq"] == record["ledger_seq"]


def test_scripted_run_adopts_one_and_rejects_the_others(project):
    api = FakeAPI(as_reply(good_code()), canned("syntax_error_reply.md"), as_reply(worse_code()))
    result, out = evolve(project, api, iterations=3)
    records = log_records(project)
    assert [r["attempt"] for r in records] == [1, 2, 3] and records == result.records
    assert [r["verdict"] for r in records] == ["adopted", "invalid", "rejected"]
    good, broken, worse = records
    assert "syntax error" in broken["reason"]
    assert "more bits" in worse["reason"] and worse["bd_vs_champion"] > 1.0
    # each attempt built on the parent the program database sampled (the seed, or the new champion),
    # and every attempt is in the database with its stage and verdict
    assert good["parent"] == CHAMPION and {broken["parent"], worse["parent"]} <= {CHAMPION, good["candidate"]}
    for r, req in zip(records, api.requests):
        assert f"`{r['parent']}`" in req["body"]["messages"][0]["content"]
        assert json.loads((project["run"] / "attempts" / f"{r['attempt']:04d}" / "request.json").read_text())[
            "parent"] == r["parent"]
    assert "### Attempt 2:" in api.requests[2]["body"]["messages"][0]["content"]
    programs = {p.attempt: p for p in ProgramDatabase(project["run"] / "programs.jsonl").programs()}
    assert [(programs[r["attempt"]].stage, programs[r["attempt"]].verdict) for r in records] == [
        ("verdict", "adopted"), ("check", "invalid"), ("verdict", "rejected")]
    assert programs[1].bd_vs_anchor == good["bd_vs_anchor"] and programs[None].candidate == CHAMPION

    # ledger, attempts log and candidates agree
    entries = new_entries(project)
    assert [e.candidate for e in entries] == [r["candidate"] for r in records]
    assert [e.seq for e in entries] == [r["ledger_seq"] for r in records]
    assert [e.decision for e in entries] == ["adopted", "rejected", "rejected"]
    assert all(e.reason for e in entries) and entries[2].parent == good["candidate"]
    assert Ledger(project["ledger"]).champion().candidate == good["candidate"]
    # the adopted module stays in the candidates folder; a rejected one is set aside in its attempt's folder
    on_disk = {c.name: c.sha256 for c in discover_candidates(project["cands"])}
    assert set(on_disk) == {CHAMPION, good["candidate"]}
    kept = project["run"] / "attempts" / "0003" / "candidate"
    assert worse["candidate_path"] == str(kept / f"{worse['candidate']}.py")
    on_disk |= {c.name: c.sha256 for c in discover_candidates(kept)}
    for entry, record in zip(entries, records):
        assert entry.source_sha256 == record["source_sha256"]
        if record["candidate"] in on_disk:
            assert on_disk[record["candidate"]] == entry.source_sha256
    assert {good["candidate"], worse["candidate"]} <= set(on_disk)
    assert (project["run"] / "attempts" / "0002" / "candidate" / f"{broken['candidate']}.py").exists()
    assert "adopted 1, rejected 2 (failed the suite 0, no valid module 1)" in out
    assert "iteration budget reached (3 of 3 attempts)" in result.stop_reason


def test_identical_code_is_caught_before_judging_across_runs_and_in_the_candidates(project):
    """The model returning the champion unchanged, or a module an earlier run already tried, is rejected
    before the suite runs, naming what it is identical to."""
    champion = (project["cands"] / f"{CHAMPION}.py").read_text()
    result, out = evolve(project, FakeAPI(as_reply(champion)))
    [rec] = result.records
    assert rec["stage"] == "identical" and rec["report"] is None and rec.get("suite_s") is None
    assert rec["identical_to"] == CHAMPION and f"identical source to {CHAMPION} in {project['cands']}" in rec["reason"]
    assert "judging" not in out and "REJECTED" in out

    earlier = {**project, "run": project["tmp"] / "run2"}
    first, _ = evolve(earlier, FakeAPI(canned("syntax_error_reply.md")))
    [invalid] = first.records
    assert invalid["verdict"] == "invalid"
    later = {**project, "run": project["tmp"] / "run3"}
    result, out = evolve(later, FakeAPI(canned("syntax_error_reply.md")))
    [rec] = result.records
    assert rec["stage"] == "identical" and rec["identical_to"] == invalid["candidate"]
    assert f"attempt 1 ({invalid['candidate']}) of run {earlier['run']}" in rec["reason"], rec["reason"]
    assert "identical" in result.stop_reason and "of run" in result.stop_reason
