"""One attempt of the evolution loop (harness/evolve/attempt.py): the reply's module named, checked,
written, judged by the real suite and recorded; the record, the ledger entry and the candidate file."""

from __future__ import annotations

import ast
import hashlib
import io

import pytest

from harness.candidate import CONTRACT_TEXT, discover_candidates
from harness.errors import HarnessError
from harness.evolve.loop import Evolution
from harness.evolve.prompt import SYSTEM_TEXT, build_prompt
from harness.ledger import Ledger
from tests import evolve_helpers
from tests.evolve_helpers import (
    CHAMPION,
    IN_TOKENS,
    MODEL,
    OUT_TOKENS,
    FakeAPI,
    as_reply,
    canned,
    evolve,
    good_code,
    log_records,
    new_entries,
    settings_for,
)

pytestmark = pytest.mark.sandbox
project, world = evolve_helpers.project, evolve_helpers.world  # the fixtures


def test_good_candidate_is_adopted(project):
    api = FakeAPI(as_reply(good_code()))
    result, out = evolve(project, api)
    [record] = result.records
    name = record["candidate"]
    assert record["verdict"] == "adopted", record["reason"]
    assert record["parent"] == CHAMPION and record["bd_vs_champion"] < -1.0
    assert isinstance(record["bd_vs_anchor"], float)
    champion = Ledger(project["ledger"]).champion()
    assert champion.candidate == name and champion.parent == CHAMPION and champion.seq == record["ledger_seq"]
    assert champion.track == "native" and new_entries(project) == [champion]

    # the request: model, max_tokens, no temperature, the key, the prompt whose hash is recorded
    [req] = api.requests
    body = req["body"]
    assert body["model"] == MODEL and body["stream"] is True and "temperature" not in body
    assert req["headers"]["authorization"] == "Bearer sk-test-not-a-key"
    user = body["messages"][0]["content"]
    assert body["system"] == SYSTEM_TEXT
    assert hashlib.sha256((body["system"] + "\0" + user).encode()).hexdigest() == record["prompt_sha256"]
    assert CONTRACT_TEXT.strip() in user and "Nothing was left out." in user
    assert f"The current champion: `{CHAMPION}`" in user
    assert (project["cands"] / f"{CHAMPION}.py").read_text().splitlines()[0] in user
    assert "| r0 |" in user  # the champion's rate points from its adoption report

    # usage and cost
    assert record["usage"]["input_tokens"] == IN_TOKENS and record["usage"]["output_tokens"] == OUT_TOKENS
    assert record["cost_usd"] == pytest.approx((IN_TOKENS * 3.0 + OUT_TOKENS * 15.0) / 1e6)

    # the file: the docstring first and intact, the header right after it
    path = project["cands"] / f"{name}.py"
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)) == ast.get_docstring(ast.parse(good_code()))
    assert text.startswith('"""Evolved (canned reply)')
    header = [ln for ln in text.splitlines() if ln.startswith("# ")][:6]
    assert header[0].startswith("# evolve: written by the evolution loop")
    assert f"# parent: {CHAMPION}" in header[1] and f"# model: {MODEL}" == header[2]
    assert header[3] == f"# prompt sha256: {record['prompt_sha256']}" and header[4].startswith("# time (UTC): ")
    assert {c.name: c.sha256 for c in discover_candidates(project["cands"])}[name] == champion.source_sha256

    assert f"attempt 1/1 {name}: ADOPTED" in out and "vs x265" in out and "fewer bits" in out
    assert "best attempt: 1" in out and "adopted 1, rejected 0 (failed the suite 0, no valid module 0)" in out
    assert f"written to the ledger {project['ledger']}: seq {record['ledger_seq']} {name} adopted" in out
    assert (project["run"] / "summary.md").is_file()


def test_syntax_error_is_rejected_without_judging(project):
    api = FakeAPI(canned("syntax_error_reply.md"))
    result, _ = evolve(project, api)
    [record] = result.records
    assert record["verdict"] == "invalid" and record["stage"] == "check"
    assert "syntax error" in record["reason"] and "line 10" in record["reason"]  # the line in the module as written
    name = record["candidate"]
    assert not (project["cands"] / f"{name}.py").exists()
    kept = project["run"] / "attempts" / "0001"
    assert (kept / "candidate" / f"{name}.py").read_text().startswith('"""Intra DCT codec')
    assert "while True\n" in (kept / "reply.md").read_text()
    [entry] = new_entries(project)
    assert (entry.candidate, entry.decision) == (name, "rejected") and "syntax error" in entry.reason
    assert Ledger(project["ledger"]).champion().candidate == CHAMPION


def test_reply_without_code_is_recorded(project):
    api = FakeAPI(canned("no_code_reply.md"))
    result, out = evolve(project, api)
    [record] = result.records
    assert record["verdict"] == "invalid" and record["stage"] == "extract"
    assert record["reason"].startswith("reply has no code")
    assert not list(project["cands"].glob("evo_*"))
    assert "arithmetic coder" in (project["run"] / "attempts" / "0001" / "reply.md").read_text()
    [entry] = new_entries(project)
    assert entry.decision == "rejected" and entry.reason.startswith("reply has no code")
    assert "REJECTED (no valid module)" in out and "reply has no code" in out and "INVALID" not in out
    assert f"written to the ledger {project['ledger']}: seq {entry.seq} {record['candidate']} rejected" in out


def test_hostile_candidate_is_stopped_by_the_sandbox(project):
    api = FakeAPI(canned("hostile_reply.md"))
    result, _ = evolve(project, api)
    [record] = result.records
    assert record["verdict"] == "failed" and record["stage"] == "verdict"
    # decode could not see the source clip; encode's upload found no network (its stderr is kept)
    assert "not visible" in record["reason"]
    assert "not visible" in record["failure"] and "Network is unreachable" in record["failure"]
    [entry] = new_entries(project)
    assert entry.decision == "rejected" and "not visible" in entry.reason
    # not adopted: out of the candidates folder, kept in the attempt's as it was judged
    assert not (project["cands"] / f"{record['candidate']}.py").exists()
    kept = project["run"] / "attempts" / "0001" / "candidate" / f"{record['candidate']}.py"
    assert record["candidate_path"] == str(kept)
    assert {c.name: c.sha256 for c in discover_candidates(kept.parent)}[record["candidate"]] == entry.source_sha256
    # the next prompt carries the failure text
    evo = Evolution(settings_for(project), api_key="sk-test", out=io.StringIO())
    prompt = build_prompt(evo.prompt_inputs(log_records(project), Ledger(project["ledger"]).champion()),
                          char_budget=120_000)
    assert "FAILED" in prompt.user and "Network is unreachable" in prompt.user and "not visible" in prompt.user


def test_a_suite_that_refuses_its_clips_stops_the_run_and_blames_no_candidate(project):
    """No usable clip is the run's fault: the suite's usage error (exit 2) stops the loop, nothing is recorded."""
    bad = project["tmp"] / "badclips"
    bad.mkdir()
    (bad / "broken.mkv").write_text("not a video\n" * 20)
    refused = r"the suite refused to run \(exit status 2; .*suite\.log\): ERROR: no usable clip in the clip set 'badclips'"
    with pytest.raises(HarnessError, match=refused):
        evolve({**project, "clips": bad}, FakeAPI(canned("hostile_reply.md")))
    assert new_entries(project) == [] and log_records(project) == []
