"""The Messages API call (harness/evolve/client.py) through the real `anthropic` SDK: retries, the request body."""

from __future__ import annotations

import dataclasses
import re

import pytest

from harness.__main__ import main as harness_main
from harness.evolve import cli as evolve_cli
from harness.evolve.client import LLMClient, ModelError
from harness.evolve.config import load_config
from harness.evolve.loop import Evolution
from tests import evolve_helpers
from tests.evolve_helpers import (
    IN_TOKENS,
    MODEL,
    OUT_TOKENS,
    PRICE,
    REPO,
    FakeAPI,
    api_error,
    canned,
    evolve,
    httpx_sdk,
    log_records,
    new_entries,
)

pytestmark = pytest.mark.sandbox
project, world = evolve_helpers.project, evolve_helpers.world  # the fixtures


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


def test_temperature_goes_in_the_body_with_the_legacy_api_version():
    api = FakeAPI("hello")
    settings = load_config(REPO / "fixtures" / "evolve.toml").model
    client = LLMClient(dataclasses.replace(settings, name=MODEL, temperature=0.3), api_key="k", price=PRICE,
                       http_client=api.client())
    reply = client.complete("sys", "user")
    assert reply.text == "hello" and reply.total_tokens == IN_TOKENS + OUT_TOKENS and reply.stop_reason == "end_turn"
    [req] = api.requests
    assert req["body"]["temperature"] == 0.3 and req["headers"]["anthropic-version"] == "2023-06-01"


def test_each_retry_is_said_with_the_status_and_the_wait(project):
    api = FakeAPI(
        api_error(529, "overloaded_error", "Overloaded", **{"retry-after-ms": "10"}),
        api_error(429, "rate_limit_error", "slow down", **{"retry-after": "0"}),
        canned("no_code_reply.md"),
    )
    _, out = evolve(project, api)
    lines = [line for line in out.splitlines() if ", retry " in line]
    assert lines == [
        "evolve: 529 overloaded_error, retry 1/3 in 0.01 s",
        "evolve: 429 rate_limit_error, retry 2/3 in 0 s",
    ], out


def test_a_json_reply_instead_of_an_event_stream_is_one_clear_error_and_exit_2(project, monkeypatch, capsys):
    """A proxy (or a non-streaming endpoint) answering application/json: named, exit status 2, no traceback."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "end_turn",
               "content": [{"type": "text", "text": "hi"}], "stop_sequence": None,
               "usage": {"input_tokens": 1, "output_tokens": 1}}
    api = FakeAPI(("status", 200, message, {}))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-key")
    monkeypatch.setattr(evolve_cli, "Evolution", lambda settings, **kw: Evolution(
        settings, **{**kw, "http_client": api.client()}))
    argv = ["evolve", "--run-dir", str(project["run"]), "--candidates-dir", str(project["cands"]),
            "--ledger", str(project["ledger"]), "--clips", str(project["clips"]), "--frames", "3",
            "--cache-dir", str(project["cache"]), "--waive-heldout"]
    assert harness_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "AssertionError" not in err, err
    assert re.search(r"the Messages API answered HTTP 200 with application/json instead of an event stream", err), err
    assert len(api.requests) == 1 and new_entries(project) == [] and log_records(project) == []
