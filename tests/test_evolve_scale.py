"""The loop at scale (issue 17): concurrent requests, evaluations on a local Ray, the cascade, budgets, resume.

The Messages API is the fake transport of tests/evolve_helpers.py, slowed down so that requests
overlap (it records how many were in flight at once); the evaluations run the real suite in Ray
tasks of a local embedded Ray with 2 CPUs (one per test module), on the one small clip: the full
stage at 3 frames, the screen at 2.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from pathlib import Path

import pytest

from harness.evolve.database import ProgramDatabase
from harness.evolve.extract import code_sha256
from harness.evolve.loop import Evolution
from harness.ledger import Ledger
from tests import evolve_helpers
from tests.evolve_helpers import (
    CHAMPION,
    IN_TOKENS,
    OUT_TOKENS,
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


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """An embedded Ray with 2 CPUs for this module's runs (the loop uses a Ray it finds initialized)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield ray
    finally:
        ray.shutdown()


class SlowAPI(FakeAPI):
    """FakeAPI whose answers take `delays[i]` seconds (request i, in arrival order); records the most
    requests in flight at once."""

    def __init__(self, *script, delays=(1.0,)) -> None:
        super().__init__(*script)
        self.delays = list(delays)
        self.lock = threading.Lock()
        self.now = self.most = 0

    def handler(self, request):
        with self.lock:
            i = len(self.requests)
            self.now += 1
            self.most = max(self.most, self.now)
            response = super().handler(request)
        time.sleep(self.delays[min(i, len(self.delays) - 1)])
        with self.lock:
            self.now -= 1
        return response


def broken_code() -> str:
    """The good codec whose decode raises: passes the checks by reading, fails the round trip."""
    out = good_code().replace("def decode(", "def decode(*args, **kwargs):\n    raise RuntimeError('broken on purpose')\n\n\ndef _decode(", 1)
    assert "broken on purpose" in out
    return out


def run(project: dict, api: FakeAPI, *, scale: dict, cascade: dict | None = None, **stop):
    settings = settings_for(project, **stop)
    config = settings.config.with_overrides(scale=scale, cascade=cascade or {"frames": 2})
    out = io.StringIO()
    evo = Evolution(dataclasses.replace(settings, config=config), api_key="sk-test-not-a-key",
                    http_client=api.client(), out=out)
    return evo.run(), out.getvalue()


def by_code(records: list[dict], code: str) -> dict:
    return next(r for r in records if r.get("code_sha256") == code_sha256(code))


def test_concurrent_attempts_on_ray_adopt_the_good_candidate(project, local_ray):
    api = SlowAPI(as_reply(broken_code()), as_reply(good_code()), as_reply(worse_code()), canned("no_code_reply.md"),
                  delays=(1.5,))
    result, out = run(project, api, scale={"requests_in_flight": 3, "evaluations_in_flight": 2}, iterations=4,
                      patience=10)
    assert api.most >= 2, "requests never overlapped"
    assert "evolve: evaluations on embedded local Ray (1 node(s), 2 evaluation(s) at once)" in out
    records = log_records(project)
    assert sorted(r["attempt"] for r in records) == [1, 2, 3, 4] and records == result.records
    good, broken, worse = by_code(records, good_code()), by_code(records, broken_code()), by_code(records, worse_code())
    nocode = next(r for r in records if r["stage"] == "extract")
    # the good one adopted in the native track; the broken one stopped by the screen; the worse one judged
    assert good["verdict"] == "adopted" and good["stage"] == "verdict"
    champion = Ledger(project["ledger"]).champion("native")
    assert champion.candidate == good["candidate"] and champion.track == "native"
    assert broken["stage"] == "screen" and broken["verdict"] == "failed" and broken["suite_s"] is None
    assert "failed the screen" in broken["reason"] and "broken on purpose" in broken["failure"]
    assert (project["run"] / "attempts" / f"{broken['attempt']:04d}" / "screen" / "suite.log").is_file()
    assert worse["stage"] == "verdict" and worse["verdict"] == "rejected"
    assert nocode["verdict"] == "invalid" and nocode["eval_node"] is None
    for r in (good, worse):
        assert r["screen_s"] > 0 and r["suite_s"] > 0 and r["eval_node"] and r["report"]
        assert isinstance(r["encode_complexity"], float) and r["encode_complexity"] > 0
    # a verdict decided after the adoption compares with the new champion (a stale one is judged again)
    after = records[records.index(good) + 1:]
    assert all(r["champion"] == good["candidate"] for r in after if r["stage"] == "verdict")
    # the ledger: one entry per attempt, in completion order, with the records' sequence numbers
    entries = new_entries(project)
    assert [e.candidate for e in entries] == [r["candidate"] for r in records]
    assert [e.seq for e in entries] == [r["ledger_seq"] for r in records]
    # the program database: every attempt once, with its stage and verdict; the seed on both islands
    programs = ProgramDatabase(project["run"] / "programs.jsonl").programs()
    attempts = [p for p in programs if p.attempt is not None]
    assert sorted(p.attempt for p in attempts) == [1, 2, 3, 4]
    assert {p.attempt: (p.stage, p.verdict) for p in attempts} == {r["attempt"]: (r["stage"], r["verdict"]) for r in records}
    assert [p.candidate for p in programs if p.attempt is None] == [CHAMPION, CHAMPION]
    assert "stopped at: extract 1, screen 1, verdict 2" in out
    assert "iteration budget reached (4 of 4 attempts)" in result.stop_reason


def test_the_screen_stops_a_broken_candidate_sooner_than_the_full_stage(project, local_ray):
    seq = {"requests_in_flight": 1, "evaluations_in_flight": 1}
    screened, _ = run(project, FakeAPI(as_reply(broken_code())), scale=seq)
    [first] = screened.records
    assert first["stage"] == "screen" and first["suite_s"] is None
    other = {**project, "run": project["tmp"] / "run-full"}
    plain = broken_code().replace("broken on purpose", "broken on purpose, judged in full", 1)
    full, _ = run(other, FakeAPI(as_reply(plain)), scale=seq, cascade={"enabled": False})
    [second] = full.records
    assert second["stage"] == "verdict" and second["verdict"] == "failed" and second["screen_s"] is None
    assert "broken on purpose" in second["failure"]
    print(f"broken candidate: screen {first['screen_s']:.1f} s, full stage {second['suite_s']:.1f} s")
    assert first["screen_s"] * 1.5 < second["suite_s"], (first["screen_s"], second["suite_s"])


def test_the_token_budget_is_passed_by_at_most_the_requests_in_flight(project):
    per = IN_TOKENS + OUT_TOKENS
    # the first request goes alone (it checks key, model and endpoint); then 3 at once, the first of
    # them answers after 1 s (the budget is reached), the other two after 3 s
    api = SlowAPI(*[canned("no_code_reply.md")] * 6, delays=(0.2, 1.0, 3.0, 3.0, 3.0))
    result, out = run(project, api, scale={"requests_in_flight": 3, "ray_address": "none"}, iterations=10,
                      max_total_tokens=per + 1, patience=10)
    assert len(api.requests) == 4 and api.most == 3 and len(result.records) == 4
    expected = (f"token budget reached ({4 * per:,} of {per + 1:,} tokens; passed by {3 * per - 1:,} tokens; "
                "2 request(s) were in flight when it was reached)")
    assert result.stop_reason == expected
    assert f"stopped: {expected}" in out and f"evolve: stopped: {expected}" in out


def test_resume_reasks_unanswered_requests_and_judges_unrecorded_replies(project):
    api = FakeAPI(canned("no_code_reply.md"), canned("syntax_error_reply.md"), canned("no_code_reply.md"))
    scale = {"requests_in_flight": 1, "ray_address": "none"}
    first, _ = run(project, api, scale=scale, iterations=3, patience=10)
    assert [r["attempt"] for r in first.records] == [1, 2, 3]
    run_dir = project["run"]
    # a kill: attempt 3's request had no reply yet, attempt 2's reply was not recorded yet
    (run_dir / "attempts" / "0003" / "reply.json").unlink()
    kept = first.records[0]
    log = run_dir / "attempts.jsonl"
    log.write_text(json.dumps(kept, sort_keys=True) + "\n")
    ledger_before = [e.seq for e in new_entries(project)]

    again = FakeAPI(canned("no_code_reply.md"))
    result, out = run(project, again, scale=scale, iterations=3, patience=10)
    assert len(again.requests) == 1  # only attempt 3 is asked again
    assert "attempt 2: the reply is already on disk" in out and "attempt 3: asking" in out
    records = log_records(project)
    assert [r["attempt"] for r in records] == [1, 2, 3] and records[0] == kept
    assert records[1]["stage"] == "check" and records[1]["resumed"] is True
    assert records[2]["stage"] == "extract" and records[2]["resumed"] is False
    # nothing recorded twice: attempt 2's ledger entry is the one it had; attempt 3's the first written
    entries = new_entries(project)
    assert [e.seq for e in entries][:3] == ledger_before and len(entries) == 3
    assert [e.candidate for e in entries] == [r["candidate"] for r in records]
    programs = ProgramDatabase(run_dir / "programs.jsonl").programs()
    assert sorted(p.attempt for p in programs if p.attempt is not None) == [1, 2, 3]
    assert result.stop_reason == "iteration budget reached (3 of 3 attempts)"


def test_cli_concurrency_flags_start_a_run_and_may_change_on_resume(project, monkeypatch):
    import argparse

    from harness.errors import HarnessError
    from harness.evolve import cli as evolve_cli

    parser = argparse.ArgumentParser()
    evolve_cli.register(parser.add_subparsers())
    base = ["evolve", "--run-dir", str(project["run"]), "--candidates-dir", str(project["cands"]),
            "--ledger", str(project["ledger"]), "--clips", str(project["clips"]), "--frames", "3"]
    args = parser.parse_args([*base, "--requests-in-flight", "3", "--evaluations-in-flight", "2", "--no-cascade",
                              "--ray-address", "10.0.0.5:6379"])
    settings, resumed = evolve_cli.resolve_settings(args)
    scale, cascade = settings.config.scale, settings.config.cascade
    assert not resumed and (scale.requests_in_flight, scale.evaluations_in_flight) == (3, 2)
    assert scale.ray_address == "10.0.0.5:6379" and cascade.enabled is False and cascade.frames == 3
    with pytest.raises(HarnessError, match="contradict"):
        evolve_cli.resolve_settings(parser.parse_args([*base, "--no-ray", "--ray-address", "auto"]))
    # a run started with these settings keeps them in run.json; a resume may change the concurrency
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    run(project, FakeAPI(canned("no_code_reply.md")), scale={"requests_in_flight": 3, "ray_address": "none"})
    again = parser.parse_args(["evolve", "--run-dir", str(project["run"]), "--requests-in-flight", "5", "--no-ray",
                               "--cascade"])
    settings, resumed = evolve_cli.resolve_settings(again)
    assert resumed and settings.config.scale.requests_in_flight == 5 and settings.config.scale.ray_address == "none"
    assert settings.config.cascade.enabled is True
    stored = json.loads((project["run"] / "run.json").read_text())["config"]
    assert stored["scale"]["requests_in_flight"] == 5 and stored["cascade"]["enabled"] is True


def test_an_evaluation_the_evaluator_loses_runs_again_then_stops_the_run(project, monkeypatch):
    """A lost evaluation (a dead node or worker: the evaluator's error, not the candidate's) runs again
    EVALUATION_RETRIES times, then the run stops with that error and records nothing for the attempt."""
    import harness.evolve.evaluate as evaluate_module
    from harness.errors import HarnessError
    from harness.evolve.loop import EVALUATION_RETRIES

    calls = []

    def lost(request):
        calls.append((request.attempt, request.stage))
        raise ConnectionError("the node running it died")

    monkeypatch.setattr(evaluate_module, "evaluate", lost)
    out = io.StringIO()
    settings = settings_for(project)
    config = settings.config.with_overrides(scale={"requests_in_flight": 1, "ray_address": "none"})
    evo = Evolution(dataclasses.replace(settings, config=config), api_key="sk-test-not-a-key",
                    http_client=FakeAPI(as_reply(worse_code())).client(), out=out)
    with pytest.raises(HarnessError, match=r"attempt 1: its full evaluation was lost 3 times on local threads"):
        evo.run()
    assert EVALUATION_RETRIES == 2 and calls == [(1, "full")] * 3  # one clip at 3 frames: no screen
    assert out.getvalue().count("evaluation was lost (ConnectionError: the node running it died); it runs again") == 2
    assert log_records(project) == [] and new_entries(project) == []


def test_an_interrupted_run_stops_the_suite_runs_it_started(project, monkeypatch):
    """Ctrl-C while an evaluation runs in a thread (--no-ray): the suite's process group is killed, so the
    process ends at once instead of waiting for the suite; nothing is recorded (a resume judges it)."""
    import concurrent.futures

    import harness.evolve.evaluate as evaluate_module

    real_wait = concurrent.futures.wait
    started = []

    def wait(fs, timeout=None, return_when=concurrent.futures.ALL_COMPLETED):
        while True:
            done, pending = real_wait(fs, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            children = evaluate_module._suite_children()
            if children:
                started.extend(children)
                raise KeyboardInterrupt
            if done:
                return done, pending

    monkeypatch.setattr(concurrent.futures, "wait", wait)
    settings = settings_for(project)
    config = settings.config.with_overrides(scale={"requests_in_flight": 1, "ray_address": "none"})
    evo = Evolution(dataclasses.replace(settings, config=config), api_key="sk-test-not-a-key",
                    http_client=FakeAPI(as_reply(worse_code())).client(), out=io.StringIO())
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        evo.run()
    assert started and time.monotonic() - t0 < 60
    def alive(pid: int) -> bool:  # a killed process not reaped yet is a zombie: dead
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while any(map(alive, started)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, started)) and evaluate_module._suite_children() == []
    assert log_records(project) == [] and new_entries(project) == []
    assert (project["run"] / "attempts" / "0001" / "reply.json").exists()
