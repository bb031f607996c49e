"""The suite: every candidate x clip x rate point, judged from a real sandboxed round trip.

Parametrized by the harness plugin (ids like `test_rate[dct_inter-bikes-r2]`); the thresholds
come from fixtures/suite.toml. Each test asks the session's `Judge`, which runs each encode
and decode once and measures the decoded frames against the source.
"""

from __future__ import annotations

import pytest

from harness.errors import ClipError, HarnessError


def _source(judge, clip, record):
    record("run", **judge.run_info)
    try:
        source = judge.source(clip)
    except ClipError as err:
        pytest.fail(f"clip {clip!r} cannot be used: {err}", pytrace=False)
    v, info = source.video, source.info
    record(
        "clip", name=clip, path=info.path, sha256=v.sha256(), width=v.width, height=v.height,
        frames=v.frames, fps=str(v.fps), codec=info.codec, pix_fmt=info.pix_fmt,
        color_range=info.color_range, set=judge.clip_sets.get(clip, "public"),
    )
    return source


def _candidate_info(judge, candidate, record):
    cand = judge.candidates[candidate]
    record(
        "candidate", name=candidate, sha256=cand.sha256, summary=cand.summary, size_bytes=cand.size_bytes,
        path=str(cand.path),
    )


def _point(judge, candidate, clip, rung, record):
    _source(judge, clip, record)
    _candidate_info(judge, candidate, record)
    result = judge.point(candidate, clip, rung)
    record("point", **result.to_json())
    if not result.ok:
        pytest.fail(f"{candidate} on {clip} at {result.point.id}: {result.failure_details}", pytrace=False)
    return result


def test_contract(judge, candidate, record):
    """The candidate imports in the sandbox and defines encode(video, target_bitrate) and decode(bitstream)."""
    record("run", **judge.run_info)
    _candidate_info(judge, candidate, record)
    outcome = judge.check(candidate)
    record("candidate", name=candidate, check=outcome.to_json())
    if not outcome.ok:
        pytest.fail(outcome.details(), pytrace=False)
    size, cap = judge.candidates[candidate].size_bytes, judge.config.max_candidate_bytes
    assert size <= cap, (
        f"{candidate} ships {size} bytes of source and data, over the cap of {cap}: "
        "a codec may not carry its test material"
    )


def test_round_trip(judge, candidate, clip, rung, record):
    """decode(encode(clip)) gives uint8 4:2:0 planes of the source's size, frame count and rate."""
    result = _point(judge, candidate, clip, rung, record)
    source = judge.source(clip).video
    fmt = result.decoded_format
    assert (fmt["width"], fmt["height"], fmt["frames"]) == (source.width, source.height, source.frames)
    assert fmt["fps"] == str(source.fps)


def test_rate(judge, candidate, clip, rung, record):
    """Measured bitrate 8 * len(bitstream) * fps / frames stays within max_overshoot x target."""
    result = _point(judge, candidate, clip, rung, record)
    limit = judge.config.max_overshoot * result.point.target_bps
    got = result.measurement.bitrate_bps
    assert got <= limit, (
        f"{got / 1000:.1f} kbps is {got / result.point.target_bps:.2f} x the target "
        f"{result.point.target_bps / 1000:.1f} kbps (limit {judge.config.max_overshoot:.2f} x)"
    )


def test_quality(judge, candidate, clip, rung, record):
    """Decoded frames compared with the source clear the PSNR-Y floor (mean over frames)."""
    result = _point(judge, candidate, clip, rung, record)
    psnr_y = result.measurement.mean["psnr_y"]
    floor = judge.config.min_psnr_y
    assert psnr_y >= floor, (
        f"PSNR-Y {psnr_y:.2f} dB is under the floor of {floor:.1f} dB: "
        "the decoded frames do not reproduce the source"
    )


def test_limits(judge, candidate, clip, rung, record):
    """Each sandboxed call stays inside the time and memory budget for the clip's size."""
    result = _point(judge, candidate, clip, rung, record)
    source = judge.source(clip).video
    cfg = judge.config
    mpix = source.width * source.height * source.frames / 1e6
    budgets = {
        "encode": cfg.startup_s + cfg.encode_s_per_mpixel * mpix,
        "decode": cfg.startup_s + cfg.decode_s_per_mpixel * mpix,
    }
    for stage, outcome in (("encode", result.encode), ("decode", result.decode)):
        assert outcome.wall_s <= budgets[stage], (
            f"{stage} took {outcome.wall_s:.1f} s, over the budget of {budgets[stage]:.1f} s "
            f"for {mpix:.2f} Mpixel"
        )
        assert outcome.peak_rss_bytes <= cfg.peak_rss_bytes, (
            f"{stage} peaked at {outcome.peak_rss_bytes >> 20} MiB, over {cfg.peak_rss_bytes >> 20} MiB"
        )


def test_determinism(judge, candidate, clip, record):
    """Two encodes in separate processes give identical bytes; decodes with other threads/seeds match."""
    _source(judge, clip, record)
    result = judge.determinism(candidate, clip)
    record("determinism", **result.to_json())
    if result.failure:
        pytest.fail(f"{candidate} on {clip}: {result.failure}\n{result.details}", pytrace=False)


def test_bd_rate(judge, candidate, clip, record):
    """BD-rate against each anchor on PSNR-YUV, SSIM and VMAF; gated against the rate anchor (x265)."""
    _source(judge, clip, record)
    for anchor in judge.config.compare_anchors:
        record("anchor", clip=clip, anchor=anchor, points=[p.to_json() for p in judge.anchor_curve(clip, anchor)])
    try:
        results = judge.bd(candidate, clip)
    except HarnessError as err:
        pytest.fail(f"{candidate} on {clip}: {err}", pytrace=False)
    record(
        "bd", candidate=candidate, clip=clip,
        results={a: {m: r.to_json() for m, r in per.items()} for a, per in results.items()},
    )
    if judge.champion and candidate != judge.champion:
        try:
            vs = judge.bd_vs_candidate(candidate, judge.champion, clip)
        except HarnessError as err:
            pytest.fail(f"{candidate} on {clip}: no comparison with the champion: {err}", pytrace=False)
        record(
            "bd_vs_champion", candidate=candidate, clip=clip, champion=judge.champion,
            results={m: r.to_json() for m, r in vs.items()},
        )
    cfg = judge.config
    primary = results[cfg.rate_anchor].get(cfg.bd_metrics[0])
    assert primary is not None, f"{cfg.bd_metrics[0]} was not measured on {clip}"
    assert primary.comparable, f"BD-rate against {cfg.rate_anchor} not comparable: {primary.warning}"
    assert primary.bd_rate <= cfg.max_bd_rate_vs_anchor, (
        f"BD-rate {primary.describe()} against {cfg.rate_anchor} on {cfg.bd_metrics[0]} "
        f"is over the gate of +{cfg.max_bd_rate_vs_anchor:g} %"
    )
