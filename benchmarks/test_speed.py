"""What the harness itself costs: sandbox overhead per call and clip reading throughput.

Figures go through pytest-benchmark (`--benchmark-json` keeps them); `extra_info` holds the
derived numbers (overhead = wall time of a sandboxed call - time the candidate's function ran).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from harness.candidate import discover_candidates
from harness.runner import Runner
from harness.sandbox import Sandbox
from harness.video import read_video

_NOOP = '''"""Does no work: measures the sandbox's own cost."""
from harness.video import Video


def encode(video, target_bitrate):
    return bytes(16)


def decode(bitstream):
    raise NotImplementedError
'''


@pytest.fixture(scope="module")
def noop_candidate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noop")
    (folder / "noop.py").write_text(_NOOP)
    return discover_candidates(folder)[0]


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_sandbox_overhead_per_call(benchmark, judge, noop_candidate, mode):
    """Wall time of one encode call of a no-op candidate on the first clip, sandboxed or not."""
    clip = next(iter(judge.clips))
    source = judge.source(clip)
    runner = Runner(sandbox=Sandbox(mode=mode), limits=judge.runner.limits)
    overheads: list[float] = []

    def call():
        outcome, _ = runner.encode(noop_candidate, source.raw_path, 1e6)
        assert outcome.ok, outcome.details()
        overheads.append(outcome.wall_s - (outcome.call_s or 0.0))

    benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        clip=clip,
        clip_bytes=source.video.nbytes,
        median_overhead_s=statistics.median(overheads),
        max_overhead_s=max(overheads),
    )


def test_clip_read_throughput(benchmark, judge):
    """Decoding a source clip into planes (frames per second and Mpixel/s)."""
    clip = judge.clips[next(iter(judge.clips))]
    frames = judge.max_frames

    def read():
        return read_video(Path(clip.path), max_frames=frames)[0]

    video = benchmark.pedantic(read, rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        clip=clip.name,
        frames=video.frames,
        fps=video.frames / seconds,
        mpixel_per_s=video.frames * video.width * video.height / seconds / 1e6,
    )
