"""The evolution loop (harness/evolve/) offline, through the real `anthropic` SDK.

The SDK is built with an HTTP client whose transport answers from canned replies (an httpx
MockTransport of the httpx flavour the SDK uses), so its request building, retries, streaming and
parsing all run. Candidates are judged by the real suite (a subprocess of pytest
benchmarks/test_codecs.py, sandboxed) on one small real clip, 3 frames, with a ledger whose
champion is dct_inter (seeded once per session from a real suite run) and a shared anchor cache.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from harness import adoption
from harness.__main__ import main as harness_main
from harness.candidate import CONTRACT_TEXT, discover_candidates
from harness.errors import ConfigError, HarnessError
from harness.evolve import cli as evolve_cli
from harness.evolve.client import ApiKeyMissing, LLMClient, ModelError
from harness.evolve.config import Price, load_config, parse_config
from harness.evolve.extract import add_header, extract_code
from harness.evolve.log import AttemptsLog
from harness.evolve.loop import Evolution, RunSettings
from harness.evolve.prompt import SYSTEM_TEXT, AttemptView, ChampionView, PromptInputs, build_prompt
from harness.ledger import Ledger
from harness.suite import SuiteOptions, run_suite

try:  # anthropic SDK 2.x speaks httpx2; older ones httpx
    import httpx2 as httpx_sdk
except ImportError:  # pragma: no cover
    import httpx as httpx_sdk

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data" / "evolve"
CLIP = REPO.parent / "shared" / "fixtures" / "svt_park_joy_160x90_10f.y4m"
MODEL = "claude-test-model"
PRICE = Price(input=3.0, output=15.0)
IN_TOKENS, OUT_TOKENS = 1000, 500

pytestmark = pytest.mark.sandbox


# ----------------------------------------------------------------------------- canned replies


def _x264_source() -> str:
    return (REPO / "candidates" / "x264_pyav.py").read_text(encoding="utf-8")


def good_code() -> str:
    """A real, working codec (the x264 reference wrapper) with a new docstring."""
    src = _x264_source()
    out = src.replace('"""Reference wrapper of libx264', '"""Evolved (canned reply): libx264', 1)
    assert out != src
    return out


def worse_code() -> str:
    """The same codec at x264's ultrafast preset: passes the suite, needs many more bits."""
    out = good_code().replace('"preset": "medium"', '"preset": "ultrafast"').replace(
        "Evolved (canned reply)", "Evolved (canned reply, ultrafast preset)", 1
    )
    assert '"preset": "ultrafast"' in out
    return out


def as_reply(code: str, plan: str = "Plan: reuse what works, tune what does not.") -> str:
    return f"{plan}\n\n```python\n{code.rstrip()}\n```\n\nThat is the whole module.\n"


def canned(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def sse(text: str, *, model: str = MODEL) -> bytes:
    """A Messages API event stream carrying `text` as one text block."""
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_canned", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": IN_TOKENS, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": OUT_TOKENS}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()


def api_error(status: int, kind: str, message: str, **headers: str):
    return ("status", status, {"type": "error", "error": {"type": kind, "message": message}}, headers)


class FakeAPI:
    """The Messages API as a MockTransport: answers in order from `script` and records every request."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.requests: list[dict] = []

    def handler(self, request):
        body = json.loads(request.content)
        self.requests.append({"body": body, "headers": dict(request.headers), "url": str(request.url)})
        if not self.script:
            raise AssertionError(f"unexpected request #{len(self.requests)}: no canned answer left")
        item = self.script.pop(0)
        if isinstance(item, str):
            return httpx_sdk.Response(200, content=sse(item), headers={"content-type": "text/event-stream"})
        if isinstance(item, BaseException):
            raise item
        _, status, payload, headers = item
        return httpx_sdk.Response(status, json=payload, headers=headers)

    def client(self):
        return httpx_sdk.Client(transport=httpx_sdk.MockTransport(self.handler))


# ----------------------------------------------------------------------------- the project


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict:
    """One clip, a shared anchor cache and a ledger whose champion is dct_inter (from a real suite run)."""
    if not CLIP.is_file():
        pytest.fail(f"development clip {CLIP} not found; clone the project beside ../shared", pytrace=False)
    root = tmp_path_factory.mktemp("evolve_world")
    clips = root / "clips"
    clips.mkdir()
    shutil.copy(CLIP, clips / CLIP.name)
    cands = root / "cands"
    cands.mkdir()
    shutil.copy(REPO / "candidates" / "dct_inter.py", cands / "dct_inter.py")
    ledger = root / "ledger.jsonl"
    options = SuiteOptions(
        clips=str(clips), frames=3, report_dir=root / "seed", cache_dir=root / "cache", ledger=ledger,
        candidates_dir=cands,
    )
    done = run_suite(options, ["dct_inter"], root=REPO, log=root / "seed.log", pytest_args=["-q"])
    assert done.returncode == 0 and done.ok, (root / "seed.log").read_text()[-3000:]
    config = adoption.load_adoption_config(REPO / "fixtures" / "adoption.toml")
    entry = adoption.adopt(root / "seed" / "latest.json", "dct_inter", ledger=Ledger(ledger), candidates_dir=cands,
                           config=config)
    assert entry.decision == "adopted"
    return {"root": root, "clips": clips, "cands": cands, "ledger": ledger, "cache": root / "cache"}


@pytest.fixture
def project(world, tmp_path) -> dict:
    cands = tmp_path / "cands"
    shutil.copytree(world["cands"], cands)
    shutil.copy(world["ledger"], tmp_path / "ledger.jsonl")
    return {"cands": cands, "ledger": tmp_path / "ledger.jsonl", "run": tmp_path / "run", "clips": world["clips"],
            "cache": world["cache"], "tmp": tmp_path}


def settings_for(project: dict, **stop) -> RunSettings:
    config = load_config(REPO / "fixtures" / "evolve.toml").with_overrides(
        model={"name": MODEL, "max_retries": 3},
        suite={"clips": str(project["clips"]), "frames": 3, "timeout_s": 600},
        stop={"iterations": 1, **stop},
    )
    config = dataclasses.replace(config, prices={**config.prices, MODEL: PRICE})
    return RunSettings(
        run_dir=project["run"], candidates_dir=project["cands"], ledger=project["ledger"],
        adoption_config=REPO / "fixtures" / "adoption.toml", config=config, cache_dir=project["cache"],
        waive_heldout=True,  # the scripted runs judge public clips only (held-out: test_adoption, test_suite_e2e)
    )


def evolve(project: dict, api: FakeAPI, **stop):
    out = io.StringIO()
    evo = Evolution(settings_for(project, **stop), api_key="sk-test-not-a-key", http_client=api.client(), out=out)
    result = evo.run()
    return result, out.getvalue()


def log_records(project: dict) -> list[dict]:
    return AttemptsLog(project["run"] / "attempts.jsonl").records()


def new_entries(project: dict):
    return [e for e in Ledger(project["ledger"]).entries() if e.seq > 1]


# ----------------------------------------------------------------------------- loop tests


def test_good_candidate_is_adopted(project):
    api = FakeAPI(as_reply(good_code()))
    result, out = evolve(project, api)
    [record] = result.records
    name = record["candidate"]
    assert record["verdict"] == "adopted", record["reason"]
    assert record["parent"] == "dct_inter" and record["bd_vs_champion"] < -1.0
    assert isinstance(record["bd_vs_anchor"], float)
    champion = Ledger(project["ledger"]).champion()
    assert champion.candidate == name and champion.parent == "dct_inter" and champion.seq == record["ledger_seq"]

    # the request: model, max_tokens, no temperature, the key, the prompt whose hash is recorded
    [req] = api.requests
    body = req["body"]
    assert body["model"] == MODEL and body["stream"] is True and "temperature" not in body
    assert req["headers"]["authorization"] == "Bearer sk-test-not-a-key"
    user = body["messages"][0]["content"]
    assert body["system"] == SYSTEM_TEXT
    assert hashlib.sha256((body["system"] + "\0" + user).encode()).hexdigest() == record["prompt_sha256"]
    assert CONTRACT_TEXT.strip() in user and "Nothing was left out." in user
    assert "The current champion: `dct_inter`" in user
    assert (project["cands"] / "dct_inter.py").read_text().splitlines()[0] in user
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
    assert "# parent: dct_inter" in header[1] and f"# model: {MODEL}" == header[2]
    assert header[3] == f"# prompt sha256: {record['prompt_sha256']}" and header[4].startswith("# time (UTC): ")
    assert {c.name: c.sha256 for c in discover_candidates(project["cands"])}[name] == champion.source_sha256

    assert f"attempt 1/1 {name}: ADOPTED" in out and "vs x265" in out and "fewer bits" in out
    assert "best attempt: 1" in out and "adopted 1, rejected 0, failed 0, invalid 0" in out
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
    assert Ledger(project["ledger"]).champion().candidate == "dct_inter"


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
    assert "INVALID" in out and "reply has no code" in out


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
    assert (project["cands"] / f"{record['candidate']}.py").exists()  # kept, as every attempt
    # the next prompt carries the failure text
    evo = Evolution(settings_for(project), api_key="sk-test", out=io.StringIO())
    prompt = build_prompt(evo.prompt_inputs(log_records(project), Ledger(project["ledger"]).champion()),
                          char_budget=120_000)
    assert "FAILED" in prompt.user and "Network is unreachable" in prompt.user and "not visible" in prompt.user


def test_rate_limited_then_success(project):
    api = FakeAPI(api_error(429, "rate_limit_error", "slow down", **{"retry-after-ms": "10"}), canned("no_code_reply.md"))
    result, _ = evolve(project, api)
    assert len(api.requests) == 2  # the SDK retried the same request
    assert api.requests[0]["body"] == api.requests[1]["body"]
    assert len(result.records) == 1 and result.records[0]["stage"] == "extract"


def test_overloaded_then_success(project):
    api = FakeAPI(
        api_error(529, "overloaded_error", "Overloaded"),  # no retry-after: the SDK's own backoff
        httpx_sdk.ConnectError("connection refused"),
        canned("no_code_reply.md"),
    )
    result, _ = evolve(project, api)
    assert len(api.requests) == 3 and len(result.records) == 1


def test_overloaded_after_every_retry_records_nothing(project):
    api = FakeAPI(*[api_error(529, "overloaded_error", "Overloaded", **{"retry-after-ms": "1"})] * 4)
    with pytest.raises(ModelError, match=r"HTTP 529 after 3 retries: overloaded_error: Overloaded"):
        evolve(project, api)
    assert len(api.requests) == 4
    assert log_records(project) == [] and new_entries(project) == []
    assert (project["run"] / "attempts" / "0001" / "request.json").exists()
    assert not (project["run"] / "attempts" / "0001" / "reply.json").exists()


def test_missing_api_key(project, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    api = FakeAPI(canned("no_code_reply.md"))
    argv = ["evolve", "--run-dir", str(project["run"]), "--candidates-dir", str(project["cands"]),
            "--ledger", str(project["ledger"]), "--clips", str(project["clips"]), "--frames", "3"]
    parser = argparse.ArgumentParser()
    evolve_cli.register(parser.add_subparsers())
    with pytest.raises(ApiKeyMissing, match="ANTHROPIC_API_KEY is not set"):
        evolve_cli.cli_evolve(parser.parse_args(argv), http_client=api.client())
    assert harness_main(argv) == 2
    assert "ANTHROPIC_API_KEY is not set" in capsys.readouterr().err
    with pytest.raises(ApiKeyMissing):
        Evolution(settings_for(project), http_client=api.client())
    assert api.requests == [] and not project["run"].exists() and new_entries(project) == []


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
    import harness.evolve.loop as loop_module

    real_run_suite = loop_module.run_suite

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the candidate file is written, before judging

    monkeypatch.setattr(loop_module, "run_suite", killed)
    api = FakeAPI(as_reply(good_code()))
    with pytest.raises(KeyboardInterrupt):
        evolve(project, api, iterations=1)
    attempt = project["run"] / "attempts" / "0001"
    pending = json.loads((attempt / "pending.json").read_text())
    path = project["cands"] / f"{pending['candidate']}.py"
    written = path.read_bytes()
    assert (attempt / "reply.json").exists() and log_records(project) == [] and new_entries(project) == []

    monkeypatch.setattr(loop_module, "run_suite", real_run_suite)
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
    # the next iterations built on the new champion
    assert good["parent"] == "dct_inter" and broken["parent"] == worse["parent"] == good["candidate"]
    assert f"The current champion: `{good['candidate']}`" in api.requests[2]["body"]["messages"][0]["content"]
    assert "### Attempt 2:" in api.requests[2]["body"]["messages"][0]["content"]

    # ledger, attempts log and candidates agree
    entries = new_entries(project)
    assert [e.candidate for e in entries] == [r["candidate"] for r in records]
    assert [e.seq for e in entries] == [r["ledger_seq"] for r in records]
    assert [e.decision for e in entries] == ["adopted", "rejected", "rejected"]
    assert all(e.reason for e in entries) and entries[2].parent == good["candidate"]
    assert Ledger(project["ledger"]).champion().candidate == good["candidate"]
    on_disk = {c.name: c.sha256 for c in discover_candidates(project["cands"])}
    assert set(on_disk) == {"dct_inter", good["candidate"], worse["candidate"]}
    for entry, record in zip(entries, records):
        assert entry.source_sha256 == record["source_sha256"]
        if record["candidate"] in on_disk:
            assert on_disk[record["candidate"]] == entry.source_sha256
    assert (project["run"] / "attempts" / "0002" / "candidate" / f"{broken['candidate']}.py").exists()
    assert "adopted 1, rejected 1, failed 0, invalid 1" in out
    assert "iteration budget reached (3 of 3 attempts)" in result.stop_reason


# ----------------------------------------------------------------------------- parts


def _inputs(attempts: int = 6, failure: str = "Traceback (most recent call last):\n" + "  frame\n" * 400) -> PromptInputs:
    champion = ChampionView(
        name="champ", source='"""A codec."""\n' + "x = 1\n" * 3000, source_sha256="ab" * 32, ledger_seq=3,
        overall_vs_anchor={"psnr_yuv": 12.5}, clips=[], scores_from="test",
    )
    views = [
        AttemptView(attempt=i, candidate=f"evo_{i}", parent="champ", verdict="failed", reason=f"reason {i}",
                    bd_vs_anchor=5.0 + i, bd_vs_anchor_per_clip={"clip": 5.0 + i}, failure=failure)
        for i in range(1, attempts + 1)
    ]
    return PromptInputs(contract=CONTRACT_TEXT, champion=champion, attempts=views, rules=["beat it"])


def test_prompt_is_deterministic_and_bounded():
    a = build_prompt(_inputs(), char_budget=200_000)
    b = build_prompt(_inputs(), char_budget=200_000)
    assert a == b and a.sha256 == hashlib.sha256((a.system + "\0" + a.user).encode()).hexdigest()
    assert "shortened to 2500 characters" in a.cut[0] and "characters cut" in a.user
    assert "Clips that lost to x265: clip +6.0 % (↑ 6.0 % more bits)" in a.user

    small = build_prompt(_inputs(), char_budget=20_000)
    assert small.chars <= 20_000 and small.sha256 != a.sha256
    assert "## What was left out" in small.user
    cut = "\n".join(small.cut)
    assert "600 characters" in cut and "the oldest" in cut and "the middle of the champion's source" in cut
    for line in small.cut:
        assert f"- {line}" in small.user
    assert "### Attempt 6:" in small.user and "### Attempt 1:" not in small.user  # the newest are kept


def test_extract_and_header():
    reply = "plan\n```py\n'''Doc.'''\nfrom __future__ import annotations\nx = 1\n```\n```python\ny = 2\n```\n"
    got = extract_code(reply)
    assert got.code == "'''Doc.'''\nfrom __future__ import annotations\nx = 1\n" and got.blocks == 2
    assert extract_code("no fences here").problem.startswith("reply has no code")
    cut = extract_code("```python\n'''Doc.'''\nx = [\n", stop_reason="max_tokens")
    assert cut.code is None and "max_tokens" in cut.problem
    text = add_header('"""First line.\n\nMore."""\nfrom __future__ import annotations\n\nx = 1\n', ["parent: p", "model: m"])
    tree = ast.parse(text)  # `from __future__` must stay the first statement after the docstring
    assert ast.get_docstring(tree) == "First line.\n\nMore."
    assert text.splitlines()[3:5] == ["# parent: p", "# model: m"]
    with pytest.raises(ValueError):
        add_header("x = 1\n", ["h"])


def test_temperature_goes_in_the_body_with_the_legacy_api_version():
    api = FakeAPI("hello")
    settings = load_config(REPO / "fixtures" / "evolve.toml").model
    client = LLMClient(dataclasses.replace(settings, name=MODEL, temperature=0.3), api_key="k", price=PRICE,
                       http_client=api.client())
    reply = client.complete("sys", "user")
    assert reply.text == "hello" and reply.total_tokens == IN_TOKENS + OUT_TOKENS and reply.stop_reason == "end_turn"
    [req] = api.requests
    assert req["body"]["temperature"] == 0.3 and req["headers"]["anthropic-version"] == "2023-06-01"


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config("[model]\nnmae = 'x'\n")
    with pytest.raises(ConfigError, match="max_tokens"):
        parse_config("[model]\nmax_tokens = 0\n")
    with pytest.raises(ConfigError, match="needs input and output"):
        parse_config("[prices.m]\ninput = 1.0\n")
    assert load_config(REPO / "fixtures" / "evolve.toml").price() is not None


def test_resume_keeps_the_run_settings(project, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    api = FakeAPI(canned("no_code_reply.md"))
    evolve(project, api)
    parser = argparse.ArgumentParser()
    evolve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evolve", "--run-dir", str(project["run"]), "--clips", "default"])
    with pytest.raises(HarnessError, match="was started with --clips"):
        evolve_cli.resolve_settings(args)
    args = parser.parse_args(["evolve", "--run-dir", str(project["run"]), "--iterations", "7"])
    settings, resumed = evolve_cli.resolve_settings(args)
    assert resumed and settings.config.stop.iterations == 7 and settings.candidates_dir == project["cands"]
