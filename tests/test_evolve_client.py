"""The Messages API call (harness/evolve/client.py) through the real `anthropic` SDK: retries, the request body."""

from __future__ import annotations

import dataclasses

import pytest

from harness.evolve.client import LLMClient, ModelError
from harness.evolve.config import load_config
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
