"""Complexity: CPU per megapixel-frame as ratios to x265, the Pareto front, and where reports show them.

The ratios and the front are exact arithmetic on given figures; the measurement runs real x265,
x264 and their decoders on a real clip (only that the figures exist and are positive is asserted:
times are never asserted in tests, the spread across runs is in the README); the report, the
renderings and the adoption cap read the sample report with a complexity reference added.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.adoption import decide_all, load_adoption_config
from harness.complexity import (
    ComplexityConfig,
    anchor_ratios,
    candidate_complexity,
    front,
    load_complexity_config,
    measure_cost,
    measure_costs,
)
from harness.errors import ConfigError
from harness.results import RunResults
from harness.schema import validate_report

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE = TESTS / "data" / "report_small.json"


def _reference(x265: tuple[float, float], **others: tuple[float, float]) -> dict:
    """One clip's reference as `measure_costs` writes it, from (encode, decode) CPU s per megapixel-frame."""
    anchors = {"x265": x265, **others}
    return {
        "reference": "x265",
        "repeats": 1,
        "anchors": {
            name: {"encode_cpu_s_per_mpf": enc, "decode_cpu_s_per_mpf": dec} for name, (enc, dec) in anchors.items()
        },
    }


def _point(clip: str, enc: dict, dec: dict, cached: bool = False) -> dict:
    return {"clip": clip, "cached": cached, "encode": {"ok": True, **enc}, "decode": {"ok": True, **dec}}


# ----------------------------------------------------------------------------- the arithmetic


def test_front_and_the_distance_of_each_codec_to_it():
    placed = front({
        "x265": (0.0, 1.0),
        "x264": (9.6, 0.125),
        "fast_but_worse": (13.5, 0.5),  # x264 is cheaper and better
        "better_but_slow": (-5.0, 8.0),  # nothing is better: on the front however slow
        "no_bd": (None, 2.0),
    })
    assert {n for n, p in placed.items() if p["on_front"]} == {"x265", "x264", "better_but_slow"}
    worse = placed["fast_but_worse"]
    assert worse["on_front"] is False
    assert worse["bd_gap_points"] == pytest.approx(13.5 - 9.6)  # the best front codec at most as complex: x264
    assert worse["complexity_factor"] == pytest.approx(0.5 / 0.125)  # the cheapest front codec as good: x264
    assert placed["x265"] == {"on_front": True, "bd_gap_points": 0.0, "complexity_factor": 1.0, "why": None}
    assert placed["no_bd"]["on_front"] is None and placed["no_bd"]["why"] == "no comparable BD-rate"


def test_candidate_ratios_use_the_call_cpu_when_recorded_and_average_clips_geometrically():
    clips = {"a": {"width": 1000, "height": 500, "frames": 2}, "b": {"width": 100, "height": 100, "frames": 10}}
    refs = {"a": _reference((2.0, 0.1)), "b": _reference((1.0, 0.05))}
    points = {
        # clip a: 1 megapixel-frame; the call alone took 4 and 6 s to encode: 5 s/Mpf = 2.5 x x265
        "a/r0": _point("a", {"cpu_s": 9.0, "call_cpu_s": 4.0}, {"cpu_s": 9.0, "call_cpu_s": 0.2}),
        "a/r1": _point("a", {"cpu_s": 9.0, "call_cpu_s": 6.0}, {"cpu_s": 9.0, "call_cpu_s": 0.4}),
        # clip b: 0.1 megapixel-frame; no call time recorded (an older report): the process's cpu_s
        "b/r0": _point("b", {"cpu_s": 0.8}, {"cpu_s": 0.02}, cached=True),
    }
    out = candidate_complexity(points, clips, refs)
    a, b = out["per_clip"]["a"], out["per_clip"]["b"]
    assert a["encode_ratio"] == pytest.approx(2.5) and a["decode_ratio"] == pytest.approx(3.0)
    assert a["cpu_field"] == "call_cpu_s" and b["cpu_field"] == "cpu_s" and out["cpu_field"] == "cpu_s"
    assert b["encode_ratio"] == pytest.approx(8.0) and b["decode_ratio"] == pytest.approx(4.0)
    assert b["cached_points"] == 1 and a["points"] == 2
    assert out["encode_ratio"] == pytest.approx(math.sqrt(2.5 * 8.0))
    assert out["decode_ratio"] == pytest.approx(math.sqrt(3.0 * 4.0))


def test_a_clip_with_a_failed_call_has_no_ratio():
    clips = {"a": {"width": 1000, "height": 1000, "frames": 1}}
    failed = {"a/r0": {"clip": "a", "encode": {"ok": True, "cpu_s": 1.0}, "decode": {"ok": False, "cpu_s": 0.1}}}
    assert candidate_complexity(failed, clips, {"a": _reference((1.0, 1.0))}) is None


def test_anchor_ratios_are_relative_to_the_reference_on_each_clip():
    refs = {"a": _reference((2.0, 0.1), x264=(0.5, 0.05)), "b": _reference((1.0, 0.1), x264=(0.5, 0.1))}
    ratios = anchor_ratios(refs)
    assert ratios["x265"]["encode_ratio"] == pytest.approx(1.0) and ratios["x265"]["decode_ratio"] == pytest.approx(1.0)
    assert ratios["x264"]["encode_ratio"] == pytest.approx(math.sqrt(0.25 * 0.5))
    assert ratios["x264"]["decode_ratio"] == pytest.approx(math.sqrt(0.5 * 1.0))
    assert ratios["x264"]["clips"] == ["a", "b"]


def test_the_config_is_checked(tmp_path):
    assert load_complexity_config(REPO / "fixtures" / "complexity.toml") == ComplexityConfig(
        reference="x265", anchors=("x265", "x264", "svtav1"), repeats=2
    )
    bad = tmp_path / "complexity.toml"
    bad.write_text('[complexity]\nreference = "x265"\nanchors = ["x264"]\n')
    with pytest.raises(ConfigError, match="complexity.reference 'x265' must be one of complexity.anchors"):
        load_complexity_config(bad)
    bad.write_text('[complexity]\nrepeat = 3\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['repeat'\]"):
        load_complexity_config(bad)
    assert load_complexity_config(tmp_path / "absent.toml") == ComplexityConfig()


def test_measuring_real_anchors_on_a_real_clip():
    from harness.anchors import load_anchor_specs
    from harness.video import Video

    rng = np.random.default_rng(7)
    y = rng.integers(0, 256, (3, 64, 96), dtype="uint8")
    uv = rng.integers(0, 256, (3, 32, 48), dtype="uint8")
    video = Video(y, uv, uv.copy(), fps=Fraction(25))
    specs = load_anchor_specs(REPO / "fixtures" / "anchors.toml")
    cost = measure_cost(video, specs["x265"], repeats=2)
    assert cost.qps == (22, 27, 32, 37) and cost.megapixel_frames == pytest.approx(3 * 64 * 96 / 1e6)
    assert len(cost.encode_samples) == len(cost.decode_samples) == 2
    assert all(s > 0 for s in cost.encode_samples + cost.decode_samples)
    assert cost.per_mpf("encode") == pytest.approx(min(cost.encode_samples) / 4 / cost.megapixel_frames)
    measured = measure_costs(video, specs, ComplexityConfig(anchors=("x265", "x264"), repeats=1))
    assert set(measured["anchors"]) == {"x265", "x264"} and measured["reference"] == "x265"
    assert measured["anchors"]["x264"]["anchor_id"].startswith("x264-medium-")
    # A long clip is timed on its first max_frames frames, counted as such per megapixel-frame.
    capped = measure_costs(video, specs, ComplexityConfig(anchors=("x265",), repeats=1, max_frames=2))
    assert capped["anchors"]["x265"]["megapixel_frames"] == pytest.approx(2 * 64 * 96 / 1e6)


def test_max_frames_is_read_and_checked(tmp_path):
    path = tmp_path / "complexity.toml"
    path.write_text('[complexity]\nreference = "x265"\nanchors = ["x265"]\nmax_frames = 12\n')
    assert load_complexity_config(path).max_frames == 12
    path.write_text('[complexity]\nreference = "x265"\nanchors = ["x265"]\nmax_frames = 1\n')
    with pytest.raises(ConfigError, match="max_frames = 1 must be an integer of at least 2"):
        load_complexity_config(path)


# ----------------------------------------------------------------------------- reports


def _doc_with_complexity() -> dict:
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["complexity"] = {
        "per_clip": {clip: _reference((0.2, 0.01), x264=(0.05, 0.008), svtav1=(0.1, 0.009)) for clip in doc["clips"]}
    }
    return doc


def test_the_report_carries_ratios_bd_rate_and_the_front_and_validates():
    doc = RunResults.from_json(_doc_with_complexity()).to_json()
    validate_report(doc)
    cx = doc["complexity"]
    assert cx["reference"] == "x265" and cx["anchors"]["x265"]["encode_ratio"] == pytest.approx(1.0)
    assert cx["anchors"]["x265"]["bd_rate"] == 0.0 and cx["anchors"]["x264"]["bd_rate"] > 0
    assert cx["anchors"]["x264"]["encode_ratio"] == pytest.approx(0.25)
    name = "x264_pyav"
    mine = doc["candidates"][name]["complexity"]
    points = doc["candidates"][name]["points"]
    clip = min(doc["clips"])
    info = doc["clips"][clip]
    mpf = info["width"] * info["height"] * info["frames"] / 1e6
    here = [p for k, p in points.items() if k.startswith(clip + "/")]
    expected = sum(p["encode"].get("call_cpu_s") or p["encode"]["cpu_s"] for p in here) / len(here) / mpf / 0.2
    assert mine["per_clip"][clip]["encode_ratio"] == pytest.approx(expected)
    assert mine["bd_rate"] == doc["candidates"][name]["bd_overall"]["x265"]["psnr_yuv"]["bd_rate"]
    assert set(mine["front"]) == {"encode", "decode"}
    assert mine["front"]["encode"]["on_front"] in (True, False)
    # read back: the derived parts are made again from the measured reference, not kept
    again = RunResults.from_json(doc).to_json()
    assert again["complexity"] == cx and again["candidates"][name]["complexity"] == mine


def test_renderings_show_complexity_beside_bd_rate():
    from PIL import Image

    from harness.render.html import render_html
    from harness.render.markdown import render_markdown
    from harness.render.plots import rdc_png
    from harness.render.terminal import leaderboard_lines
    from harness.render.view import ReportView, ratio_words

    doc = RunResults.from_json(_doc_with_complexity()).to_json()
    entry = doc["candidates"]["x264_pyav"]["complexity"]
    words = ratio_words(entry, "encode")
    assert words.startswith(f"x{entry['encode_ratio']:.3g}")
    lines = leaderboard_lines(doc)
    assert "enc vs x265" in lines[0] and "dec vs x265" in lines[0]
    assert any(line.startswith("x264_pyav") and words in line for line in lines)
    md = render_markdown(doc)
    assert "| Encode CPU vs x265 | Decode CPU vs x265 |" in md and words in md
    html = render_html(doc)
    assert "id='rdc'" in html and "Encode CPU vs x265" in html and 'href="#complexity"' in html
    png, _ = rdc_png(ReportView(doc))
    with Image.open(io.BytesIO(base64.b64decode(png))) as image:
        assert image.size[0] > 600 and len(image.convert("RGB").getcolors(1 << 20)) > 20
    without = json.loads(SAMPLE.read_text(encoding="utf-8"))
    assert "id='rdc'" not in render_html(without) and "Encode CPU" not in render_markdown(without)


def test_adoption_may_cap_decode_complexity():
    doc = RunResults.from_json(_doc_with_complexity()).to_json()
    config = dataclasses.replace(load_adoption_config(REPO / "fixtures" / "adoption.toml"), require_heldout=False)
    assert config.max_decode_ratio is None  # off by default
    free = decide_all(copy.deepcopy(doc), config=config, ledger=[])
    adopted = [n for n, v in free.items() if v.decision == "adopted"]
    assert adopted, {n: v.reason for n, v in free.items()}
    name = adopted[0]
    ratio = doc["candidates"][name]["complexity"]["decode_ratio"]
    capped = decide_all(copy.deepcopy(doc), config=dataclasses.replace(config, max_decode_ratio=ratio / 2), ledger=[])
    assert capped[name].decision == "rejected" and not capped[name].adoptable
    assert capped[name].reasons[0] == (
        f"decodes {ratio:.3g} x as much CPU per megapixel-frame as x265's decoder, over the cap of {ratio / 2:g} x"
    )
    roomy = decide_all(copy.deepcopy(doc), config=dataclasses.replace(config, max_decode_ratio=ratio * 2), ledger=[])
    assert roomy[name].decision == "adopted"


def test_the_pareto_picture_displays_in_headless_chromium(tmp_path):
    """The HTML with complexity, screenshot by scripts/screenshot_report: the front's amber line and
    rings (#e6a700, drawn nowhere else in the page) are on screen."""
    import os
    import shutil
    import subprocess
    import sys

    from PIL import Image

    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; the HTML report is checked in a real browser: apt-get install -y chromium")
    report = tmp_path / "report.json"
    report.write_text(json.dumps(RunResults.from_json(_doc_with_complexity()).to_json()), encoding="utf-8")
    out = tmp_path / "shot.png"
    env = {**os.environ, "PYTHON": sys.executable, "WINDOW": "1400,2400"}
    result = subprocess.run(
        [str(REPO / "scripts" / "screenshot_report"), str(report), str(out)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "id='rdc'" in (tmp_path / "shot.html").read_text(encoding="utf-8")
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    amber = np.abs(pixels - np.array([0xE6, 0xA7, 0x00])).max(axis=1) <= 24
    assert amber.sum() > 200, f"only {amber.sum()} pixels of the Pareto front's colour on screen"
