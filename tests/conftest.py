"""Shared helpers of the harness's own tests: where the development clips are, synthetic clips, a Judge."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from harness.anchors import AnchorSpec
from harness.cache import ResultCache
from harness.candidate import CandidateSource, discover_candidates
from harness.clips import Clip
from harness.config import SuiteConfig, load_suite_config
from harness.judge import Judge
from harness.realtime import realtime_threads, set_back
from harness.runner import Runner
from harness.sandbox import Limits, Sandbox
from harness.video import Video, chroma_shape

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The development clips (../shared/fixtures). Their absence is a failure, not a skip."""
    if not (SHARED_FIXTURES / "MANIFEST.md").exists():
        pytest.fail(f"development clips not found at {SHARED_FIXTURES}; clone the project beside ../shared")
    return SHARED_FIXTURES


def synthetic(width: int, height: int, frames: int, *, seed: int = 0, fps=Fraction(25)) -> Video:
    """Gradient plus noise plus a moving square: deterministic, any size."""
    rng = np.random.default_rng(seed)
    ch, cw = chroma_shape(height, width)
    yy, xx = np.mgrid[0:height, 0:width]
    ys, us, vs = [], [], []
    for f in range(frames):
        y = (xx * 3 + yy * 2 + f * 5) % 256 + rng.integers(-8, 9, size=(height, width))
        y[(yy // 8 + f) % 4 == 0] //= 2
        ys.append(np.clip(y, 0, 255).astype(np.uint8))
        us.append(np.clip(128 + (np.mgrid[0:ch, 0:cw][1] - cw // 2) + f, 0, 255).astype(np.uint8))
        vs.append(np.clip(128 - (np.mgrid[0:ch, 0:cw][0] - ch // 2), 0, 255).astype(np.uint8))
    return Video(np.stack(ys), np.stack(us), np.stack(vs), fps)


def write_clip(path: Path, video: Video, *, codec: str, pix_fmt: str = "yuv420p", options=None, fmt=None) -> None:
    """Encode `video` with PyAV, copying planes row by row (honouring line_size).

    A stream `pix_fmt` that is not 4:2:0 (e.g. yuv444p) gets the 4:2:0 frames through libswscale."""
    frame_fmt = pix_fmt if pix_fmt in ("yuv420p", "yuvj420p") else "yuv420p"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=video.fps)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, pix_fmt
        stream.options = options or {}
        for i in range(video.frames):
            frame = av.VideoFrame(video.width, video.height, frame_fmt)
            for plane, data in zip(frame.planes, video.frame(i)):
                buf = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                buf[:, : plane.width] = data
            out.mux(stream.encode(frame if frame_fmt == pix_fmt else frame.reformat(format=pix_fmt)))
        out.mux(stream.encode())


def x264_round_trip(video: Video, crf: int) -> Video:
    """libx264 (one thread, preset veryfast) at `crf` and back through PyAV: real codec distortion."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=video.fps)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(video.frames):
            stacked = np.concatenate([np.ascontiguousarray(p).ravel() for p in video.frame(i)])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(stacked.reshape(-1, video.width), format="yuv420p")))
        out.mux(stream.encode())
    buf.seek(0)
    h, w, frames = video.height, video.width, []
    with av.open(buf) as src:
        for frame in src.decode(video=0):
            a = frame.to_ndarray(format="yuv420p")
            chroma = a[h:].reshape(2, h // 2, w // 2)
            frames.append((a[:h].copy(), chroma[0].copy(), chroma[1].copy()))
    decoded = Video.from_frames(frames, video.fps)
    assert decoded.frames == video.frames, f"x264 round trip returned {decoded.frames} of {video.frames} frames"
    return decoded


def suite_config(**changes: object) -> SuiteConfig:
    """The shipped fixtures/suite.toml, with `changes` (e.g. rate_mode="ladder") applied."""
    config = load_suite_config(REPO / "fixtures" / "suite.toml")
    return dataclasses.replace(config, **changes) if changes else config


def make_judge(
    *,
    candidates: Iterable[CandidateSource | Path],
    clips: Iterable[Clip | Path],
    cache_dir: Path,
    frames: int | None = 3,
    config: SuiteConfig | None = None,
    anchors: dict[str, AnchorSpec] | None = None,
    sandbox: str = "bwrap",
    limits: Limits | None = None,
    champion: str | None = None,
) -> Judge:
    """A Judge as the suite builds one, from plain parts: no pytest options, no ledger.

    `candidates`: CandidateSource objects or candidate files/packages (discovered from their
    folder by name); `clips`: Clip objects or clip files (named by stem). `config` defaults to
    the shipped suite.toml in rate-ladder mode when no `anchors` are given (nothing to encode)
    and as shipped otherwise; `anchors` defaults to none; `limits` to the config's limits.
    The result cache lives in `cache_dir`: two Judges given the same folder share results."""
    sources = []
    for cand in candidates:
        if isinstance(cand, CandidateSource):
            sources.append(cand)
            continue
        path = Path(cand)
        name = path.stem if path.suffix == ".py" else path.name
        found = {c.name: c for c in discover_candidates(path.parent)}
        if name not in found:
            raise ValueError(f"no candidate {name!r} in {path.parent}: found {sorted(found)}")
        sources.append(found[name])
    clip_list = [c if isinstance(c, Clip) else Clip(name=Path(c).stem, path=Path(c).resolve()) for c in clips]
    if config is None:
        config = suite_config() if anchors else suite_config(rate_mode="ladder")
    box = Sandbox(mode=sandbox, hide=tuple(str(c.path) for c in clip_list))
    return Judge(
        runner=Runner(sandbox=box, limits=limits or config.limits),
        config=config,
        clips=clip_list,
        candidates=sources,
        champion=champion,
        max_frames=frames,
        anchors=dict(anchors or {}),
        cache=ResultCache(Path(cache_dir)),
    )


# A test that hangs fails after this many seconds with its stack (pytest-timeout) instead of
# taking the whole CI run's time; a test that needs longer says so with its own timeout mark.
TEST_TIMEOUT_S = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))


@pytest.fixture(autouse=True)
def _ordinary_scheduling_after_each_test():
    """No test may leave this process real-time: everything started later would inherit it (a library
    encoder did so as root, harness/realtime.py, and CI hung). Fails the test that did it, resets."""
    yield
    left = realtime_threads()
    set_back(left)
    if left:
        pytest.fail(f"the test left threads {sorted(left)} of the test process on a real-time policy")
