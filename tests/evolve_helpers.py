"""Shared by the evolution loop's tests (tests/test_evolve_*.py): canned replies, a fake Messages API, the project.

The SDK is built with an HTTP client whose transport answers from canned replies (an httpx
MockTransport of the httpx flavour the SDK uses), so its request building, retries, streaming and
parsing all run. Candidates are judged by the real suite (a subprocess of pytest
benchmarks/test_codecs.py, sandboxed) on one small real clip, 3 frames, with a ledger whose
native champion is jpeg_planes (tests/data/honest: an honest but weak intra-only numpy codec,
seeded once per session from a real suite run) and a shared anchor cache. The loop evolves the
native track (the default), so the canned candidates are native codecs: the good one is
candidates/dct_inter.py under a new docstring (motion compensation and zstd: far fewer bits than
the champion), the worse one jpeg_planes at a weaker zlib level.

A test module uses the fixtures by importing them: `from tests.evolve_helpers import project, world`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import pytest

from harness import adoption
from harness.evolve.config import Price, load_config
from harness.evolve.log import AttemptsLog
from harness.evolve.loop import Evolution, RunSettings
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
_WORLD = pytest.StashKey[dict]()


# ----------------------------------------------------------------------------- canned replies


CHAMPION = "jpeg_planes"  # the world's native champion (ledger seq 1)


def _champion_source() -> str:
    return (TESTS / "data" / "honest" / f"{CHAMPION}.py").read_text(encoding="utf-8")


def good_code() -> str:
    """A real, working native codec that beats the champion: candidates/dct_inter.py with a new docstring."""
    src = (REPO / "candidates" / "dct_inter.py").read_text(encoding="utf-8")
    out = src.replace('"""Reference hybrid codec in numpy', '"""Evolved (canned reply): hybrid codec in numpy', 1)
    assert out != src and "TRACK" not in out  # native: no track declaration
    return out


def worse_code() -> str:
    """The champion's intra-only codec at zlib level 1: passes the suite, needs many more bits than good_code."""
    src = _champion_source()
    out = src.replace("zlib.compress(b\"\".join(parts), 9)", "zlib.compress(b\"\".join(parts), 1)").replace(
        '"""Honest but weak', '"""Evolved (canned reply, zlib level 1): honest but weak', 1
    )
    assert "zlib.compress(b\"\".join(parts), 1)" in out and out.startswith('"""Evolved (canned reply, zlib')
    return out


def worse_variant(level: int) -> str:
    """worse_code at zlib level `level` (1..5): distinct sources and bitstreams, each needing more bits than the champion."""
    out = worse_code().replace("zlib.compress(b\"\".join(parts), 1)", f"zlib.compress(b\"\".join(parts), {level})")
    out = out.replace("(canned reply, zlib level 1)", f"(canned reply, zlib level {level})", 1)
    assert 1 <= level <= 5 and f"zlib level {level})" in out
    return out


def broken_code(tag: str) -> str:
    """The champion whose decode returns one frame of the clip: passes the contract, fails every round trip
    after the real encode and decode work (`tag` keeps each broken source distinct)."""
    src = _champion_source()
    out = src.replace("    return Video(*planes, Fraction(num, den))",
                      f"    return Video(*(p[:1] for p in planes), Fraction(num, den))  # broken: {tag}").replace(
        '"""Honest but weak', f'"""Evolved (canned reply, broken {tag}): honest but weak', 1)
    assert f"# broken: {tag}" in out
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
def world(request, tmp_path_factory) -> dict:
    """One clip, a shared anchor cache and a ledger whose native champion is jpeg_planes (from a real suite run).

    Built once per session however many test modules import this fixture (each import is its own
    fixture definition to pytest; the result is kept in the session's config stash)."""
    if _WORLD not in request.config.stash:
        request.config.stash[_WORLD] = _build_world(tmp_path_factory)
    return request.config.stash[_WORLD]


def _build_world(tmp_path_factory) -> dict:
    if not CLIP.is_file():
        pytest.fail(f"development clip {CLIP} not found; clone the project beside ../shared", pytrace=False)
    root = tmp_path_factory.mktemp("evolve_world")
    clips = root / "clips"
    clips.mkdir()
    shutil.copy(CLIP, clips / CLIP.name)
    cands = root / "cands"
    cands.mkdir()
    shutil.copy(TESTS / "data" / "honest" / f"{CHAMPION}.py", cands / f"{CHAMPION}.py")
    ledger = root / "ledger.jsonl"
    options = SuiteOptions(
        clips=str(clips), frames=3, report_dir=root / "seed", cache_dir=root / "cache", ledger=ledger,
        candidates_dir=cands,
    )
    done = run_suite(options, [CHAMPION], root=REPO, log=root / "seed.log", pytest_args=["-q"])
    assert done.returncode == 0 and done.ok, (root / "seed.log").read_text()[-3000:]
    # The seed run judges public clips only, as the scripted runs do (settings_for: waive_heldout).
    config = dataclasses.replace(adoption.load_adoption_config(REPO / "fixtures" / "adoption.toml"),
                                 require_heldout=False)
    entry = adoption.adopt(root / "seed" / "latest.json", CHAMPION, ledger=Ledger(ledger), candidates_dir=cands,
                           config=config)
    assert entry.decision == "adopted" and entry.track == "native"
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
