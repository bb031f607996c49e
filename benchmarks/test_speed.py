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

# The harness's own speed, for its developers: run with `pytest benchmarks/ --harness-benchmarks`.
pytestmark = pytest.mark.harness_benchmark

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
        outcome, _ = runner.encode(noop_candidate, source.sealed, 1e6)
        assert outcome.ok, outcome.details()
        overheads.append(outcome.sandbox_overhead_s)

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


def test_codec_speed(benchmark, judge, candidate, clip):
    """One more sandboxed encode and decode of each candidate on each clip (middle rate point),
    timed by pytest-benchmark: the wall time includes the sandbox, as a user of the codec sees it."""
    first = judge.point(candidate, clip, judge.determinism_rung(clip))
    if not first.ok:
        pytest.fail(f"{candidate} on {clip}: no passing point to time: {first.failure}", pytrace=False)
    cand, source = judge.candidates[candidate], judge.source(clip)

    def encode_and_decode():
        enc, bitstream = judge.runner.encode(cand, source.sealed, first.point.target_bps)
        assert enc.ok, enc.details()
        dec, video = judge.runner.decode(cand, bitstream)
        assert dec.ok, dec.details()
        return enc, dec, bitstream

    enc, dec, bitstream = benchmark.pedantic(encode_and_decode, rounds=1, iterations=1)
    assert bitstream == first.bitstream, "the timed encode gave other bytes than the judged one"
    frames = source.video.frames
    benchmark.extra_info.update(
        candidate=candidate,
        clip=clip,
        target_bps=first.point.target_bps,
        encode_wall_s=enc.wall_s,
        decode_wall_s=dec.wall_s,
        encode_fps=frames / enc.call_s if enc.call_s else None,
        decode_fps=frames / dec.call_s if dec.call_s else None,
    )
