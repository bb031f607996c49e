"""The quality gate catches decoders that do not decode, not weak codecs (issue 15, item 2).

Through the real Judge, sandbox and x265 anchor, in the suite's "anchor" rate mode, on a hard
clip (park_joy: high texture and a pan): an honest but weak codec (tests/data/honest/jpeg_planes.py,
JPEG per plane, intra only) is far below x265 at every rate point and far behind it in BD-rate,
yet passes the quality gate; a decoder that synthesizes frames from a few stored parameters
(tests/hostile/param_storage.py) fails it at every rate point, told that its frames do not
reproduce the source because their correlation with it was measured near zero.
"""

from __future__ import annotations

import pytest

from harness.anchors import load_anchor_specs
from tests.conftest import REPO, SHARED_FIXTURES, make_judge, suite_config

pytestmark = pytest.mark.sandbox

CLIP_FILE = SHARED_FIXTURES / "svt_park_joy_160x90_10f.y4m"
CLIP = CLIP_FILE.stem
HONEST = REPO / "tests" / "data" / "honest" / "jpeg_planes.py"
FAKE = REPO / "tests" / "hostile" / "param_storage.py"


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    if not CLIP_FILE.is_file():
        pytest.fail(f"development clip {CLIP_FILE} not found: clone the project beside ../shared", pytrace=False)
    specs = load_anchor_specs(REPO / "fixtures" / "anchors.toml")
    config = suite_config(rate_mode="anchor", rate_anchor="x265", compare_anchors=("x265",))
    return make_judge(
        candidates=[HONEST, FAKE], clips=[CLIP_FILE], frames=10, config=config, anchors={"x265": specs["x265"]},
        cache_dir=tmp_path_factory.mktemp("cache"),
    )


def test_an_honest_weak_codec_passes_the_quality_gate_while_far_behind_x265(judge):
    anchor = {p.qp: p.measurement for p in judge.anchor_curve(CLIP, "x265")}
    for rung in range(judge.rung_count):
        point = judge.point("jpeg_planes", CLIP, rung)
        assert point.ok, point.failure_details
        gate = judge.gate("quality", "jpeg_planes", CLIP, rung)
        assert gate.passed, gate.message
        assert judge.gate("rate", "jpeg_planes", CLIP, rung).passed
        mine, theirs = point.measurement, anchor[point.point.anchor_qp]
        # Far below x265 at the same rate point, yet reproducing the source.
        assert mine.mean["psnr_y"] < theirs.mean["psnr_y"] - 3.0, (rung, mine.mean["psnr_y"], theirs.mean["psnr_y"])
        assert mine.mean_luma_correlation > judge.config.min_luma_correlation + 0.2
    bd = judge.bd_results("jpeg_planes", CLIP)[0]["x265"]["psnr_yuv"]
    # Far behind x265: over twice its bits at equal quality, or no quality in common at all.
    assert (bd.bd_rate is not None and bd.bd_rate > 100.0) or bd.dominance == "worse", bd
    assert judge.gate("bd_rate", "jpeg_planes", CLIP).passed


def test_a_decoder_of_stored_parameters_fails_the_floor_with_what_was_measured(judge):
    for rung in range(judge.rung_count):
        point = judge.point("param_storage", CLIP, rung)
        assert point.ok, point.failure_details  # a formally correct round trip
        gate = judge.gate("quality", "param_storage", CLIP, rung)
        assert not gate.passed
        assert gate.message.startswith(f"PSNR-Y {point.measurement.mean['psnr_y']:.2f} dB at r{rung}"), gate.message
        correlation = point.measurement.mean_luma_correlation
        assert abs(correlation) < 0.2
        assert gate.message.endswith(
            f"the decoded frames do not reproduce the source (luma correlation {correlation:.2f}, "
            f"under {judge.config.min_luma_correlation:.2f})"
        ), gate.message
