"""A scripted Messages API on 127.0.0.1: real HTTP, server-sent events as the API streams them.

    with ScriptedAPI(["first reply", Failure(529, "overloaded_error", "Overloaded", retry_after=1), "second"],
                     latency_s=20) as api:
        client = LLMClient(settings, api_key="sk-test", base_url=api.base_url)   # or ANTHROPIC_BASE_URL
        ...
        api.requests        # every request: body, headers, when it came and when its answer ended
        api.max_in_flight   # the most requests answered at the same time

POST /v1/messages is answered from `script`, one item per request in the order the requests
arrive (thread-safe: concurrent requests take consecutive items):

- a `str` (or `Text`, to set latency or usage for one reply): a message whose one text block is
  that text. With `"stream": true` in the body it is an event stream (message_start, ping,
  content_block_start, content_block_delta text_delta chunks, content_block_stop, message_delta
  with stop_reason and usage, message_stop; the events and fields of the API's streaming
  documentation), without it one JSON message;
- a `Failure`: an HTTP error with the API's error body ({"type": "error", "error": {"type",
  "message"}}) and, if given, a retry-after header (529 overloaded_error, 500 api_error, 429 ...).

The latency of a reply (seconds) is spread over its stream: the first event comes at once, the
text chunks at equal intervals, the last at `latency_s` (a JSON reply comes after `latency_s`).
A request with no item left is answered HTTP 400 invalid_request_error "no scripted reply left"
(not retried by the harness's client: the test fails on it, naming the request). A request
with neither an x-api-key nor an authorization: Bearer header (what SDK 2.x sends) gets 401.

The server is a `ThreadingHTTPServer` on port 0 (the kernel picks a free one), started and
stopped as a context manager; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

__all__ = ["DEFAULT_INPUT_TOKENS", "DEFAULT_OUTPUT_TOKENS", "Failure", "ScriptedAPI", "Text", "sse_events"]

DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS = 1000, 500
DEFAULT_MODEL = "claude-test-model"


@dataclass(frozen=True)
class Text:
    """One reply: `text` as one text block; `latency_s` / tokens override the server's defaults.

    `hold` (a test's condition, e.g. "attempt 1 is recorded"): the reply starts only once it returns
    True (polled every 50 ms, at most `hold_s` seconds, then answered anyway): a model that is slow
    until a given moment, to order concurrent events without guessing timings."""

    text: str
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str = "end_turn"
    hold: Callable[[], bool] | None = field(default=None, compare=False)
    hold_s: float = 300.0


@dataclass(frozen=True)
class Failure:
    """One HTTP error answer: `status` with the API's error body; `retry_after` seconds as a header."""

    status: int
    kind: str
    message: str
    retry_after: float | None = None
    latency_s: float = 0.0

    def body(self) -> dict[str, object]:
        return {"type": "error", "error": {"type": self.kind, "message": self.message}}


@dataclass
class Request:
    """What the server received and when (time.monotonic() seconds; `finished` None while in flight)."""

    index: int
    body: dict
    headers: dict[str, str]
    path: str
    received: float
    finished: float | None = None
    answer: str = ""  # "text", "failure 529", "unscripted", "aborted" (the client went away mid-stream)


def sse_events(
    text: str, *, model: str, message_id: str, input_tokens: int, output_tokens: int, chunks: int,
    stop_reason: str = "end_turn",
) -> list[tuple[str, dict]]:
    """The events of one streamed message carrying `text` as one text block in `chunks` text deltas."""
    size = max(1, -(-len(text) // max(1, chunks)))
    pieces = [text[i:i + size] for i in range(0, len(text), size)] or [""]
    events: list[tuple[str, dict]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


class ScriptedAPI:
    """The Messages API answering from `script` (see the module's docstring); a context manager."""

    def __init__(
        self,
        script: Iterable[str | Text | Failure] = (),
        *,
        latency_s: float = 0.0,
        input_tokens: int = DEFAULT_INPUT_TOKENS,
        output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        chunks: int = 8,
        model: str | None = None,
    ) -> None:
        self.script: list[str | Text | Failure] = list(script)
        self.latency_s = latency_s
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        self.chunks = chunks
        self.model = model
        self.requests: list[Request] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.started = time.monotonic()

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        api = self

        class Handler(_Handler):
            server_api = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-api", daemon=True)
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the scripted API is not running (use it as a context manager)")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What the SDK's base_url (or ANTHROPIC_BASE_URL) should be: the SDK adds /v1/messages."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ what happened

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def left(self) -> int:
        """Script items not yet used."""
        with self._lock:
            return len(self.script)

    def bodies(self) -> list[dict]:
        with self._lock:
            return [r.body for r in self.requests]

    def extend(self, items: Iterable[str | Text | Failure]) -> None:
        with self._lock:
            self.script.extend(items)

    # ------------------------------------------------------------------ used by the handler

    def _take(
        self, body: dict, headers: dict[str, str], path: str, *, consume: bool
    ) -> tuple[Request, str | Text | Failure | None]:
        with self._lock:
            request = Request(index=len(self.requests), body=body, headers=headers, path=path,
                              received=time.monotonic())
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            item = self.script.pop(0) if consume and self.script else None
            return request, item

    def _done(self, request: Request, answer: str) -> None:
        with self._lock:
            request.finished = time.monotonic()
            request.answer = answer
            self._in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    server_api: ScriptedAPI
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the API answers

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0] != "/v1/messages":
            self._json(404, Failure(404, "not_found_error", f"no route {self.path}").body())
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as err:
            self._json(400, Failure(400, "invalid_request_error", f"the body is not JSON: {err}").body())
            return
        api = self.server_api
        headers = {k.lower(): v for k, v in self.headers.items()}
        authorized = bool(headers.get("x-api-key") or headers.get("authorization", "").startswith("Bearer "))
        request, item = api._take(body, headers, self.path, consume=authorized)
        answer = "aborted"
        try:
            if not authorized:
                answer = "failure 401"
                self._json(401, Failure(401, "authentication_error",
                                        "an x-api-key or authorization: Bearer header is required").body())
            elif item is None:
                answer = "unscripted"
                self._json(400, Failure(400, "invalid_request_error",
                                        f"no scripted reply left for request #{request.index + 1}").body())
            elif isinstance(item, Failure):
                time.sleep(item.latency_s)
                extra = {"retry-after": f"{item.retry_after:g}"} if item.retry_after is not None else {}
                self._json(item.status, item.body(), extra)
                answer = f"failure {item.status}"
            else:
                reply = item if isinstance(item, Text) else Text(item)
                self._message(request, body, reply)
                answer = "text"
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            api._done(request, answer)

    # ------------------------------------------------------------------ answers

    def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_scripted")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _message(self, request: Request, body: dict, reply: Text) -> None:
        api = self.server_api
        if reply.hold is not None:
            deadline = time.monotonic() + reply.hold_s
            while not reply.hold() and time.monotonic() < deadline:
                time.sleep(0.05)
        latency = api.latency_s if reply.latency_s is None else reply.latency_s
        model = api.model or str(body.get("model") or DEFAULT_MODEL)
        message_id = f"msg_scripted_{request.index + 1:04d}"
        tokens_in = api.input_tokens if reply.input_tokens is None else reply.input_tokens
        tokens_out = api.output_tokens if reply.output_tokens is None else reply.output_tokens
        if not body.get("stream"):
            time.sleep(latency)
            self._json(200, {
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": reply.text}], "stop_reason": reply.stop_reason,
                "stop_sequence": None, "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
            })
            return
        events = sse_events(reply.text, model=model, message_id=message_id, input_tokens=tokens_in,
                            output_tokens=tokens_out, chunks=api.chunks, stop_reason=reply.stop_reason)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", "req_scripted")
        self.end_headers()
        deltas = sum(1 for name, _ in events if name == "content_block_delta")
        pause = latency / (deltas + 1) if latency > 0 else 0.0
        for name, data in events:
            if pause and name in ("content_block_delta", "content_block_stop"):
                time.sleep(pause)
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

