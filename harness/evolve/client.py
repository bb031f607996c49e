"""The model behind the loop: one Messages API call through the official `anthropic` SDK.

- The API key comes from ANTHROPIC_API_KEY only; `require_api_key()` fails before any work when
  it is missing (no request is made, nothing is written).
- Retries (`max_retries`) are made here, not by the SDK, so that each is said (`on_retry`, e.g.
  "529 overloaded_error, retry 3/8 in 2 s"): 408, 409, 429, 5xx (529 overloaded included) and
  connection errors, after the server's retry-after or an exponential backoff (0.5 s doubling to
  8 s). What is still failing after the last retry raises `ModelError`, naming the status and the
  message.
- The reply is streamed (`messages.stream`) so a long module (thinking included) does not hit the
  SDK's 10-minute limit on non-streaming requests; the final message is what is returned. A reply
  that is not a complete event stream (e.g. a plain JSON body from a proxy) is a `ModelError`
  naming what came instead, as is any other protocol error the SDK raises.
- Token usage and the cost (prices from fixtures/evolve.toml, per model, per million tokens) are
  returned with the text.

Tests pass `http_client` (an `httpx2.Client` over a `MockTransport`): the real SDK code runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.evolve.config import ModelSettings, Price

__all__ = ["LEGACY_API_VERSION", "ApiKeyMissing", "LLMClient", "ModelError", "Reply", "require_api_key"]

API_KEY_ENV = "ANTHROPIC_API_KEY"
# The last API version that accepts `temperature` (2026-10-21, sent by SDK 2.x, rejects it).
LEGACY_API_VERSION = "2023-06-01"


class ApiKeyMissing(HarnessError):
    """ANTHROPIC_API_KEY is not set."""


class ModelError(HarnessError):
    """The API call failed after the SDK's retries (or could not be made)."""


def require_api_key(environ: Mapping[str, str] | None = None) -> str:
    key = (os.environ if environ is None else environ).get(API_KEY_ENV, "").strip()
    if not key:
        raise ApiKeyMissing(
            f"{API_KEY_ENV} is not set: export your Anthropic API key (https://console.anthropic.com/) "
            "before running `python -m harness evolve`; nothing was sent and nothing was written"
        )
    return key


@dataclass(frozen=True)
class Reply:
    """What came back: the text blocks joined, why it stopped, token usage and cost."""

    text: str
    model: str
    stop_reason: str | None
    usage: dict[str, int | None]
    cost_usd: float | None
    message_id: str | None
    wall_s: float
    raw: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "model": self.model,
            "stop_reason": self.stop_reason,
            "usage": self.usage,
            "cost_usd": self.cost_usd,
            "message_id": self.message_id,
            "wall_s": self.wall_s,
            "raw": self.raw,
        }

    @classmethod
    def from_json(cls, data: dict) -> Reply:
        return cls(
            text=data["text"],
            model=data["model"],
            stop_reason=data.get("stop_reason"),
            usage=dict(data.get("usage") or {}),
            cost_usd=data.get("cost_usd"),
            message_id=data.get("message_id"),
            wall_s=float(data.get("wall_s") or 0.0),
            raw=dict(data.get("raw") or {}),
        )

    @property
    def total_tokens(self) -> int:
        return sum(int(self.usage.get(k) or 0) for k in _USAGE_KEYS)


_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def usage_dict(usage: object) -> dict[str, int | None]:
    return {k: getattr(usage, k, None) for k in _USAGE_KEYS}


class LLMClient:
    """Messages API calls with one model's settings. `http_client` replaces the SDK's transport (tests)."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        api_key: str,
        price: Price | None = None,
        http_client: object | None = None,
        base_url: str | None = None,
        on_retry: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import anthropic

        self.settings = settings
        self.price = price
        self.on_retry = on_retry
        self._sleep = sleep
        kwargs: dict[str, object] = {
            "api_key": api_key,
            "max_retries": 0,  # retried in `complete`, one line each
            "timeout": settings.timeout_s,
        }
        if http_client is not None:
            kwargs["http_client"] = http_client
        if base_url is not None:
            kwargs["base_url"] = base_url
        self._anthropic = anthropic
        self._client = anthropic.Anthropic(**kwargs)

    def request_params(self, system: str, user: str) -> dict[str, object]:
        """The arguments of the call (also recorded beside the attempt)."""
        params: dict[str, object] = {
            "model": self.settings.name,
            "max_tokens": self.settings.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": user}],
        }
        if self.settings.temperature is not None:
            # SDK 2.x has no `temperature` argument and API version 2026-10-21 rejects the field.
            params["extra_body"] = {"temperature": self.settings.temperature}
            params["extra_headers"] = {"anthropic-version": LEGACY_API_VERSION}
        return params

    def complete(self, system: str, user: str) -> Reply:
        params = self.request_params(system, user)
        start = time.monotonic()
        retries = self.settings.max_retries
        for attempt in range(retries + 1):
            try:
                message = self._stream(params)
                break
            except _Retryable as err:
                if attempt == retries:
                    raise ModelError(f"{err.final} after {retries} retries: {err.text}") from err.__cause__
                delay = err.retry_after if err.retry_after is not None else min(0.5 * 2**attempt, 8.0)
                if self.on_retry is not None:
                    self.on_retry(f"{err.short}, retry {attempt + 1}/{retries} in {delay:g} s")
                self._sleep(delay)
        wall = time.monotonic() - start
        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        usage = usage_dict(message.usage)
        return Reply(
            text=text,
            model=message.model or self.settings.name,
            stop_reason=message.stop_reason,
            usage=usage,
            cost_usd=self.price.cost(usage) if self.price is not None else None,
            message_id=message.id,
            wall_s=wall,
            raw=message.to_dict(),
        )

    def _stream(self, params: dict[str, object]):
        """One streamed call: the final message, `_Retryable`, or `ModelError` (not worth retrying)."""
        anthropic = self._anthropic
        try:
            with self._client.messages.stream(**params) as stream:
                kind = stream.response.headers.get("content-type") or "no content type"
                if not kind.startswith("text/event-stream"):
                    body = " ".join(stream.response.read().decode("utf-8", "replace").split())[:200]
                    raise ModelError(
                        f"the Messages API answered HTTP {stream.response.status_code} with {kind} instead of "
                        f"an event stream (a proxy, or a non-streaming endpoint?): {body}"
                    )
                message = stream.get_final_message()
        except ModelError:
            raise
        except anthropic.APIStatusError as err:
            status, text = err.status_code, _status_text(err)
            if status in (408, 409, 429) or status >= 500:
                kind = text.split(":", 1)[0] if ":" in text else "error"
                raise _Retryable(
                    f"{status} {kind}", f"the Messages API answered HTTP {status}", text,
                    _retry_after(getattr(err, "response", None)),
                ) from err
            raise ModelError(f"the Messages API answered HTTP {status} (not retried): {text}") from err
        except anthropic.APIConnectionError as err:  # timeouts included
            what = f"{type(err).__name__}: {err}"
            raise _Retryable(
                type(err).__name__, "cannot reach the Messages API", what, None
            ) from err
        except anthropic.AnthropicError as err:
            raise ModelError(f"the Messages API call failed: {type(err).__name__}: {err}") from err
        except Exception as err:  # the SDK's parser met something that is not the Messages API's stream
            raise ModelError(
                "the Messages API's event stream could not be read: "
                f"{type(err).__name__}{': ' + str(err) if str(err) else ''}"
            ) from err
        if message is None:
            raise ModelError("the Messages API's event stream ended without a message")
        return message

    def close(self) -> None:
        self._client.close()


class _Retryable(Exception):
    """A failure worth another try: `short` for the retry line, `final` + `text` for the last one."""

    def __init__(self, short: str, final: str, text: str, retry_after: float | None) -> None:
        super().__init__(short)
        self.short, self.final, self.text, self.retry_after = short, final, text, retry_after


def _retry_after(response: object) -> float | None:
    """Seconds the server asked to wait (retry-after-ms, or retry-after in seconds), at most 60."""
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        try:
            seconds = float(value) * scale if value is not None else None
        except ValueError:
            seconds = None
        if seconds is not None and 0 <= seconds <= 60:
            return seconds
    return None



def _status_text(err: object) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return f"{inner.get('type', 'error')}: {inner['message']}"
    return str(getattr(err, "message", err))
