"""The scripted Messages API (tests/scripted_api.py) through the harness's client and the real SDK over HTTP."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from harness.evolve.client import LLMClient, ModelError
from harness.evolve.config import load_config
from tests.evolve_helpers import MODEL, PRICE, REPO, httpx_sdk
from tests.scripted_api import DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, Failure, ScriptedAPI, Text

pytestmark = pytest.mark.timeout(120)


def _client(api: ScriptedAPI | None = None, *, retries: int = 3, lines: list[str] | None = None) -> LLMClient:
    settings = dataclasses.replace(load_config(REPO / "fixtures" / "evolve.toml").model, name=MODEL,
                                   max_retries=retries, timeout_s=60)
    return LLMClient(settings, api_key="sk-test-not-a-key", price=PRICE,
                     base_url=api.base_url if api is not None else None,
                     on_retry=None if lines is None else lines.append)


def test_streamed_text_usage_and_cost_through_the_sdk():
    text = "Plan: fewer bits.\n\n```python\nprint('x' * 3)\n```\n" + "padding " * 200
    with ScriptedAPI([text, Text("second", input_tokens=10, output_tokens=20)], chunks=16) as api:
        client = _client(api)
        first = client.complete("the system", "the user")
        second = client.complete("the system", "again")
        client.close()
    assert first.text == text and second.text == "second"
    assert first.stop_reason == "end_turn" and first.model == MODEL
    assert first.usage["input_tokens"] == DEFAULT_INPUT_TOKENS and first.usage["output_tokens"] == DEFAULT_OUTPUT_TOKENS
    assert first.total_tokens == 1500 and second.total_tokens == 30
    assert first.cost_usd == pytest.approx((1000 * 3.0 + 500 * 15.0) / 1e6)
    assert second.cost_usd == pytest.approx((10 * 3.0 + 20 * 15.0) / 1e6)
    assert first.message_id == "msg_scripted_0001" and second.message_id == "msg_scripted_0002"
    bodies = api.bodies()
    assert [b["messages"][0]["content"] for b in bodies] == ["the user", "again"]
    assert all(b["stream"] is True and b["system"] == "the system" and b["model"] == MODEL for b in bodies)
    assert api.requests[0].headers["authorization"] == "Bearer sk-test-not-a-key"  # SDK 2.x
    assert [r.answer for r in api.requests] == ["text", "text"] and api.left == 0


def test_the_event_stream_has_the_api_events_in_order():
    with ScriptedAPI(["abcdefgh"], chunks=4) as api, httpx_sdk.Client() as http:
        answer = http.post(f"{api.base_url}/v1/messages", headers={"x-api-key": "k"},
                           json={"model": MODEL, "max_tokens": 10, "stream": True, "messages": []})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in answer.text.split("\n\n") if b.strip()]
    names = [b.splitlines()[0].removeprefix("event: ") for b in blocks]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4 + [
        "content_block_stop", "message_delta", "message_stop"]
    datas = [json.loads(b.splitlines()[1].removeprefix("data: ")) for b in blocks]
    assert [d["type"] for d in datas] == names
    assert "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta") == "abcdefgh"
    assert datas[-2]["delta"]["stop_reason"] == "end_turn" and datas[-2]["usage"] == {"output_tokens": 500}


def test_without_stream_one_json_message_and_without_a_key_401():
    with ScriptedAPI(["plain"]) as api, httpx_sdk.Client() as http:
        refused = http.post(f"{api.base_url}/v1/messages", json={"model": MODEL, "messages": []})
        answer = http.post(f"{api.base_url}/v1/messages", headers={"x-api-key": "k"},
                           json={"model": MODEL, "max_tokens": 10, "messages": []})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    message = answer.json()
    assert message["content"] == [{"type": "text", "text": "plain"}] and message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 1000, "output_tokens": 500}
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert [r.answer for r in api.requests] == ["failure 401", "text"]


def test_overloaded_then_success_is_retried_with_a_retry_line():
    lines: list[str] = []
    with ScriptedAPI([Failure(529, "overloaded_error", "Overloaded", retry_after=0.05),
                      Failure(500, "api_error", "Internal server error"), "done"]) as api:
        reply = _client(api, lines=lines).complete("s", "u")
    assert reply.text == "done"
    assert [r.answer for r in api.requests] == ["failure 529", "failure 500", "text"]
    assert api.requests[0].body == api.requests[2].body  # the same request again
    assert lines == ["529 overloaded_error, retry 1/3 in 0.05 s", "500 api_error, retry 2/3 in 1 s"]
    assert api.requests[1].received - api.requests[0].finished >= 0.04


def test_a_request_past_the_script_fails_clearly_and_is_not_retried():
    with ScriptedAPI([]) as api, pytest.raises(
        ModelError, match=r"HTTP 400 \(not retried\).*no scripted reply left for request #1"
    ):
        _client(api).complete("s", "u")
    assert len(api.requests) == 1 and api.requests[0].answer == "unscripted"


def test_latency_is_spread_over_the_stream_and_concurrency_is_recorded():
    with ScriptedAPI([f"reply {i}" for i in range(4)], latency_s=0.6) as api:
        replies: list[str] = []
        lock = threading.Lock()

        def ask() -> None:
            reply = _client(api).complete("s", "u")
            with lock:
                replies.append(reply.text)
            assert reply.wall_s >= 0.6

        start = time.monotonic()
        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
    assert sorted(replies) == [f"reply {i}" for i in range(4)]  # each item used once
    assert api.max_in_flight == 4 and api.in_flight == 0
    assert wall < 4 * 0.6  # side by side, not one after another
    assert all(r.finished - r.received >= 0.6 for r in api.requests)


def test_the_sdk_honours_anthropic_base_url(monkeypatch):
    with ScriptedAPI(["from the environment"]) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        assert _client(None).complete("s", "u").text == "from the environment"
    assert len(api.requests) == 1 and api.requests[0].path == "/v1/messages"


def test_a_client_gone_mid_stream_is_recorded_as_aborted():
    with ScriptedAPI(["x" * 64], latency_s=1.0, chunks=8) as api:
        with httpx_sdk.Client() as http, http.stream(
            "POST", f"{api.base_url}/v1/messages", headers={"x-api-key": "k"},
            json={"model": MODEL, "max_tokens": 10, "stream": True, "messages": []},
        ) as answer:
            next(answer.iter_bytes())
        deadline = time.monotonic() + 5
        while api.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
    assert api.in_flight == 0 and api.requests[0].answer == "aborted"


def test_a_held_reply_starts_when_its_condition_holds():
    go = threading.Event()
    with ScriptedAPI([Text("held", hold=go.is_set), "free"]) as api:
        client = _client(api)
        got: list[str] = []
        first = threading.Thread(target=lambda: got.append(client.complete("s", "1").text))
        first.start()
        while not api.requests:
            time.sleep(0.02)
        second = _client(api).complete("s", "2").text  # answered while the first is held
        assert got == [] and api.in_flight == 1
        go.set()
        first.join(timeout=30)
    assert (got, second) == (["held"], "free")
    assert api.requests[0].finished > api.requests[1].finished
