"""Anchor encoders: pinned settings took effect, bytes are reproducible, real decodes in plausible bands."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.anchors import (
    AnchorError,
    UnknownAnchorError,
    anchor_id,
    anchor_versions,
    decode_anchor,
    encode_anchor,
    encode_anchor_with_report,
    encoder_settings,
    load_anchor_specs,
    load_encoder_settings,
)
from harness.anchors.settings import expected_settings
from harness.errors import ConfigError
from harness.video import Video, read_video

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
ANCHORS = ("x265", "x264", "svtav1")


@pytest.fixture(scope="module")
def specs():
    return load_anchor_specs()


def clip(name: str, frames: int) -> Video:
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"shared clip {path} is missing; see ../shared/fixtures/MANIFEST.md")
    return read_video(path, max_frames=frames)[0]


@pytest.fixture(scope="module")
def small():
    return clip("cisco_vt2people_320x192_9f.mkv", 5)


@pytest.fixture(scope="module")
def bus():
    return clip("derf_bus_352x288_17f.mkv", 10)


def synthetic(width: int, height: int, frames: int) -> Video:
    """Moving gradient with sharp 4-pixel blocks: smooth enough to code well, edges to catch misalignment."""
    yy, xx = np.mgrid[0:height, 0:width]
    y = np.stack(
        [((xx * 3 + yy * 2 + 5 * t) % 200 + 28 + 40 * (((xx + t) // 4 + yy // 4) % 2)) for t in range(frames)]
    )
    ch, cw = (height + 1) // 2, (width + 1) // 2
    cy, cx = np.mgrid[0:ch, 0:cw]
    u = np.stack([(96 + (cx * 4 + t) % 64) for t in range(frames)])
    v = np.stack([(160 - (cy * 4 + t) % 64) for t in range(frames)])
    return Video(y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8), fps=25)


def psnr_y(ref: Video, dist: Video) -> float:
    """Mean of per-frame PSNR-Y (the common test conditions' average, PITFALLS 5)."""
    err = ref.y.astype(np.float64) - dist.y.astype(np.float64)
    mse = np.maximum(np.mean(err * err, axis=(1, 2)), 1e-10)
    return float(np.mean(10 * np.log10(255.0**2 / mse)))


# -- settings as data ------------------------------------------------------------------------


def test_specs_pin_threads_and_ladders(specs):
    assert set(specs) == set(ANCHORS)
    assert specs["x265"].qps == specs["x264"].qps == (22, 27, 32, 37)
    assert specs["x265"].preset == "medium"
    x265 = dict(specs["x265"].params)
    assert x265["pools"] == "1" and x265["frame-threads"] == "1" and x265["log-level"] == "error"
    assert dict(specs["x264"].params)["threads"] == "1" and specs["x264"].thread_count == 1
    assert dict(specs["svtav1"].params)["lp"] == "1" and dict(specs["svtav1"].env)["SVT_LOG"] == "1"
    assert len(specs["svtav1"].qps) == 4 and list(specs["svtav1"].qps) == sorted(specs["svtav1"].qps)


def test_unknown_anchor_lists_known_names(specs):
    with pytest.raises(UnknownAnchorError, match=r"'svtav1', 'x264', 'x265'.*Did you mean 'x265'"):
        specs["x256"]


def test_misspelled_option_names_are_refused(specs):
    x265 = specs["x265"]
    with pytest.raises(AnchorError, match="frame-threads"):
        x265.replace(params=(*x265.params, ("frame-thread", "2")))
    with pytest.raises(AnchorError, match="unknown libx265 option 'tunes'"):
        x265.replace(options=(("tunes", "psnr"),))
    with pytest.raises(AnchorError, match="set by the QP ladder"):
        x265.replace(params=(*x265.params, ("qp", "30")))
    with pytest.raises(AnchorError, match="info=1"):
        x265.replace(params=tuple(p for p in x265.params if p[0] != "info"))


def test_toml_with_unknown_key_is_refused(tmp_path):
    text = (ROOT / "fixtures" / "anchors.toml").read_text().replace("min_size = 16", "min_sise = 16")
    (tmp_path / "anchors.toml").write_text(text)
    with pytest.raises(ConfigError, match="min_sise.*Did you mean 'min_size'"):
        load_anchor_specs(tmp_path / "anchors.toml")


def test_settings_table_is_data(specs):
    table = encoder_settings()
    assert set(table) == {"libx265", "libx264", "libsvtav1"}
    assert table["libx265"].params_option == "x265-params" and "frame-threads" in table["libx265"].params
    assert table["libsvtav1"].report is None and not specs["svtav1"].reports_settings
    assert specs["x265"].reports_settings and specs["x264"].reports_settings
    x265 = specs["x265"].replace(params=(*specs["x265"].params, ("cutree", "0")))
    expected = {asked: (key, value) for asked, key, value in expected_settings(x265, 27)}
    assert expected["pools=1"] == ("numa-pools", "1")  # reported under another name
    assert expected["wpp=0"] == ("no-wpp", "") and expected["cutree=0"] == ("no-cutree", "")  # flags
    assert expected["log-level=error"] == ("log-level", "0")  # value mapped
    assert expected["qp=27"] == ("qp", "27") and "sei_expect rc=cqp" in expected
    x264 = specs["x264"].replace(params=(*specs["x264"].params, ("min-keyint", "8"), ("asm", "0")))
    expected = {asked: (key, value) for asked, key, value in expected_settings(x264, 27)}
    assert (
        expected["min-keyint=8"] == ("keyint_min", "8")
        and expected["sliced-threads=0"][0] == "sliced_threads"
    )
    assert "asm=0" not in expected  # unreported


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            'params_option = "x265-params"',
            'params_opton = "x265-params"',
            r"\[libx265\] has unknown key.*'params_option'",
        ),
        ('dash = "_"', 'dash = "."', r"\[libx264.report\] dash must be '-' or '_'"),
        ('unreported = ["asm"]', 'unreported = "asm"', r"\[libx265.report\] unreported must be a list"),
        (
            'names = { pools = "numa-pools" }',
            'names = { poolz = "numa-pools" }',
            r"names 'poolz'.*Did you mean 'pools'",
        ),
        (
            '"rect", "amp", "log-level"',
            '"rect", "rect", "log-level"',
            r"\[libx265\] params lists \['rect'\] more than once",
        ),
        (
            'params_option = "svtav1-params"',
            'params_option = "svt-params"',
            r"'svt-params' is not one of its options",
        ),
        ("schema = 1", "schema = 2", "expected 'schema = 1'"),
        ("[libx264.report]", "[libx264.report]\nwrong = ", "cannot read encoder settings"),
    ],
)
def test_settings_toml_errors_name_the_file_and_key(tmp_path, old, new, error):
    text = (ROOT / "fixtures" / "anchor_settings.toml").read_text()
    assert old in text
    path = tmp_path / "anchor_settings.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=error) as info:
        load_encoder_settings(path)
    assert str(path) in str(info.value)


def test_settings_toml_missing_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read encoder settings .*nothing.toml"):
        load_encoder_settings(tmp_path / "nothing.toml")
    assert load_encoder_settings().keys() == encoder_settings().keys()


# -- the encoders applied what was asked -----------------------------------------------------


def test_x265_settings_verified_from_sei(specs, small):
    report = encode_anchor_with_report(small, specs["x265"], 27)
    s = report.settings
    assert s["qp"] == "27" and s["rc"] == "cqp"
    assert s["frame-threads"] == "1" and s["numa-pools"] == "1"
    assert "no-wpp" in s and s["lookahead-slices"] == "0"
    assert s["keyint"] == "64" and s["scenecut"] == "0" and "no-open-gop" in s
    assert s["psy-rd"] == "0.00"  # tune=psnr took effect
    assert report.encoder_version and "build" in report.encoder_version
    assert report.info_bytes > 1000
    assert b"x265 (build" not in report.bitstream  # the settings SEI was stripped


def test_x264_settings_verified_from_sei(specs, small):
    report = encode_anchor_with_report(small, specs["x264"], 32)
    s = report.settings
    assert s["qp"] == "32" and s["rc"] == "cqp" and s["threads"] == "1" and s["sliced_threads"] == "0"
    assert s["keyint"] == "64" and s["psy"] == "0"
    assert b"x264 - core" not in report.bitstream


def test_setting_not_applied_is_caught(specs, small):
    with pytest.raises(
        AnchorError, match="asked for sei_expect psy-rd=2.00 but the encoder reports psy-rd=0.00"
    ):
        encode_anchor(small, specs["x265"].replace(sei_expect=("psy-rd=2.00",)), 27)


def test_option_the_encoder_rejects_is_caught(specs, small):
    spec = specs["svtav1"]
    object.__setattr__(spec := spec.replace(), "params", (*spec.params, ("bogus", "2")))  # past validation
    with pytest.raises(AnchorError, match="did not accept its options"):
        encode_anchor(small, spec, 40)


def test_qp_outside_range_is_refused(specs, small):
    with pytest.raises(AnchorError, match="outside 1..63"):
        encode_anchor(small, specs["svtav1"], 0)


# -- reproducible bytes ----------------------------------------------------------------------


ENCODE_ALL = """
import hashlib, sys
from harness.anchors import load_anchor_specs, encode_anchor
from harness.video import read_video
video = read_video(sys.argv[1], max_frames=5)[0]
for name, spec in load_anchor_specs().items():
    print(name, hashlib.sha256(encode_anchor(video, spec, spec.qps[1])).hexdigest())
"""


def test_bytes_identical_across_runs_and_processes(specs, small):
    here = {}
    for name in ANCHORS:
        spec = specs[name]
        first, second = encode_anchor(small, spec, spec.qps[1]), encode_anchor(small, spec, spec.qps[1])
        assert first == second, name
        here[name] = hashlib.sha256(first).hexdigest()
    out = subprocess.run(
        [sys.executable, "-c", ENCODE_ALL, str(FIXTURES / "cisco_vt2people_320x192_9f.mkv")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    there = dict(line.split() for line in out.stdout.splitlines())
    assert there == here


@pytest.mark.parametrize(("name", "asm"), [("x265", "0"), ("x265", "sse2"), ("svtav1", "c")])
def test_bytes_do_not_depend_on_simd_level(specs, small, name, asm):
    """Pure C and SSE2 give this machine's bytes, so another CPU's SIMD level would too."""
    spec = specs[name]
    plain = encode_anchor(small, spec, spec.qps[2])
    report = encode_anchor_with_report(small, spec.replace(params=(*spec.params, ("asm", asm))), spec.qps[2])
    if name == "x265":
        assert report.settings["cpuid"] == {"0": "0", "sse2": "15"}[asm]  # the setting took effect
    assert report.bitstream == plain


def test_anchor_id_is_stable_and_tracks_settings(specs):
    spec = specs["x265"]
    assert anchor_id(spec) == anchor_id(load_anchor_specs()["x265"])
    assert anchor_id(spec).startswith("x265-medium-")
    assert anchor_id(spec.replace(preset="slow")) != anchor_id(spec)
    assert anchor_id(spec.replace(params=(*spec.params, ("bframes", "3")))) != anchor_id(spec)
    assert len({anchor_id(s) for s in specs.values()}) == len(specs)


def test_versions_are_found():
    versions = anchor_versions()
    for key in ("libx265", "libx264", "libsvtav1", "libdav1d", "libavcodec", "pyav", "machine"):
        assert versions.get(key) not in (None, "", "unknown"), (key, versions)


# -- rate and quality ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ANCHORS)
def test_bits_fall_as_qp_rises(specs, small, name):
    spec = specs[name]
    sizes = [len(encode_anchor(small, spec, qp)) for qp in spec.qps]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), sizes


@pytest.mark.parametrize("name", ANCHORS)
def test_odd_size_round_trip(specs, name):
    video = synthetic(67, 33, 5)
    spec = specs[name]
    decoded = decode_anchor(encode_anchor(video, spec, spec.qps[0]), spec, like=video)
    assert decoded.y.shape == (5, 33, 67) and decoded.u.shape == decoded.v.shape == (5, 17, 34)
    assert decoded.fps == video.fps
    assert psnr_y(video, decoded) > 35  # a crop in the wrong place would fail this


def test_tiny_frame_is_padded_to_the_encoder_minimum(specs):
    video = synthetic(7, 5, 3)
    spec = specs["x265"]  # x265 refuses frames under 16x16
    report = encode_anchor_with_report(video, spec, 22)
    assert report.padded_size == (16, 16)
    assert decode_anchor(report.bitstream, spec, like=video).y.shape == (3, 5, 7)


@pytest.mark.parametrize("name", ANCHORS)
def test_real_clip_decodes_every_frame(specs, bus, name):
    spec = specs[name]
    stream = encode_anchor(bus, spec, spec.qps[1])
    decoded = decode_anchor(stream, spec, like=bus)
    assert decoded.same_format(bus) and decoded.frames == 10
    with pytest.raises(AnchorError, match="decoded 10 frames, the source has 9"):
        decode_anchor(stream, spec, like=bus.head(9))


def test_x265_psnr_bands(specs, bus):
    spec = specs["x265"]
    high = psnr_y(bus, decode_anchor(encode_anchor(bus, spec, 22), spec, like=bus))
    low = psnr_y(bus, decode_anchor(encode_anchor(bus, spec, 37), spec, like=bus))
    # measured on derf_bus 10 frames: 39.70 dB at QP 22, 29.03 dB at QP 37
    assert 38.0 < high < 42.0
    assert 27.5 < low < 31.5


def test_svtav1_ladder_matches_x265_quality(specs, bus):
    x265, svt = specs["x265"], specs["svtav1"]
    for qp_hevc, qp_av1 in ((x265.qps[0], svt.qps[0]), (x265.qps[-1], svt.qps[-1])):
        a = psnr_y(bus, decode_anchor(encode_anchor(bus, x265, qp_hevc), x265, like=bus))
        b = psnr_y(bus, decode_anchor(encode_anchor(bus, svt, qp_av1), svt, like=bus))
        assert abs(a - b) < 2.0, (qp_hevc, a, qp_av1, b)


# -- full-range sources ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_range(tmp_path_factory):
    """A full-range (yuvj420p, lossless H.264) clip with samples outside 16..235, and what read_video says of it."""
    from tests.conftest import write_clip

    path = tmp_path_factory.mktemp("full") / "full.mkv"
    write_clip(path, synthetic(96, 64, 5), codec="libx264", pix_fmt="yuvj420p", options={"qp": "0", "preset": "ultrafast"})
    video, info = read_video(path)
    assert info.color_range == "pc" and video.y.max() > 235
    return video, info


def signalled_range(bitstream: bytes, spec) -> set[int]:
    """The AVColorRange of every frame a real decoder gives for `bitstream` (2 = full, 1 = limited, 0 = unset)."""
    import av

    from harness.anchors.bitstream import av1_temporal_units

    ctx = av.CodecContext.create(spec.decoder, "r")
    if spec.decoder == "libdav1d":
        packets = [av.Packet(unit) for unit in av1_temporal_units(bitstream)]
    else:
        packets = ctx.parse(bitstream) + ctx.parse(None)
    return {int(frame.color_range) for packet in [*packets, None] for frame in ctx.decode(packet)}


@pytest.mark.parametrize("name", ANCHORS)
def test_full_range_source_is_signalled_full_and_limited_stays_limited(specs, full_range, small, name):
    video, info = full_range
    spec = specs[name].for_source(info.color_range)
    assert spec.full_range and not specs[name].for_source("tv").full_range
    assert specs[name].for_source("unknown") is specs[name]
    report = encode_anchor_with_report(video, spec, spec.qps[0])
    assert signalled_range(report.bitstream, spec) == {2}
    decoded = decode_anchor(report.bitstream, spec, like=video)
    assert psnr_y(video, decoded) > 35  # the samples were coded as they are, not squeezed into 16..235
    limited = specs[name].for_source("tv")
    # Nothing signalled reads as limited range (H.264/HEVC infer video_full_range_flag = 0).
    assert signalled_range(encode_anchor(small, limited, limited.qps[0]), limited) <= {0, 1}
    if name == "x265":  # the settings report says it too (anchors.toml full_range_sei)
        assert report.settings["range"] == "1"
        assert encode_anchor_with_report(small, limited, 27).settings["range"] == "0"


def test_full_range_gives_another_anchor_id_and_leaves_limited_ids_alone(specs):
    for spec in specs.values():
        full = spec.for_source("pc")
        assert anchor_id(full) != anchor_id(spec) and "-full-range-" in anchor_id(full)
        assert anchor_id(spec.for_source("tv")) == anchor_id(spec)
    # limited-range ids are those of before range signalling (cached anchors stay valid)
    assert anchor_id(specs["x265"]).startswith("x265-medium-") and "full" not in anchor_id(specs["x265"])
    assert specs["x265"].for_source("pc").sei_expect[-1] == "range=1"


def test_full_range_sei_needs_a_settings_report(specs):
    with pytest.raises(AnchorError, match="full_range_sei needs a settings report"):
        specs["svtav1"].replace(full_range_sei=("range=1",))


CLI_FORMATS = {"x265": "hevc", "x264": "h264"}


def cli_anchor(video: Video, spec, qp: int, tmp_path: Path) -> tuple[bytes, str | None]:
    """The same anchor through the ffmpeg command line (imageio-ffmpeg's binary), settings SEI stripped,
    and the encoder version that binary reports."""
    import imageio_ffmpeg

    from harness.anchors.bitstream import strip_info_sei
    from harness.anchors.settings import version_from_report

    raw = tmp_path / "source.yuv"
    with open(raw, "wb") as f:
        f.writelines(video.y[i].tobytes() + video.u[i].tobytes() + video.v[i].tobytes() for i in range(video.frames))
    table = encoder_settings()[spec.encoder]
    params = [*spec.params, (spec.qp_option, str(qp))]
    rng = ["-color_range", "pc"] if spec.full_range else []  # input and output: no range conversion
    out = tmp_path / f"cli.{CLI_FORMATS[spec.name]}"
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{video.width}x{video.height}",
        "-framerate", str(video.fps), *rng, "-i", str(raw),
        "-c:v", spec.encoder, "-preset", spec.preset, "-threads", str(spec.thread_count),
        *[x for k, v in spec.options for x in (f"-{k}", v)],
        f"-{table.params_option}", ":".join(f"{k}={v}" for k, v in params), *rng,
        "-f", CLI_FORMATS[spec.name], str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    stream, text = strip_info_sei(out.read_bytes(), spec.encoder)
    return stream, version_from_report(spec.encoder, text)


@pytest.mark.parametrize("name", CLI_FORMATS)
@pytest.mark.parametrize("source", ["limited", "full"])
def test_anchor_bytes_equal_the_ffmpeg_command_line(specs, small, tmp_path, name, source):
    """x265/x264 anchors are what `ffmpeg -c:v libx265 ...` writes, with `-color_range pc` for a full-range
    source (the same samples, declared full range: only the signalling differs)."""
    video = small
    spec = specs[name].for_source("tv" if source == "limited" else "pc")
    qp = spec.qps[1]
    ours = encode_anchor(video, spec, qp)
    theirs, version = cli_anchor(video, spec, qp, tmp_path)
    if ours != theirs and version != anchor_versions()[spec.encoder]:
        pytest.skip(f"the ffmpeg binary's {spec.encoder} ({version}) is not PyAV's ({anchor_versions()[spec.encoder]})")
    assert ours == theirs


def test_the_judge_encodes_a_full_range_clip_with_its_range(tmp_path, full_range, small):
    """Through the suite's own path (Judge.anchor_curve): a full-range clip's anchors signal full range
    and are cached under their own id; a limited-range clip's keep the plain id."""
    import shutil

    from harness.session import build_judge
    from harness.suite import SuiteOptions
    from tests.conftest import write_clip

    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "full.mkv", full_range[0], codec="libx264", pix_fmt="yuvj420p",
               options={"qp": "0", "preset": "ultrafast"})
    shutil.copy(FIXTURES / "cisco_vt2people_320x192_9f.mkv", clips / "limited.mkv")
    options = SuiteOptions(clips=str(clips), frames=3, candidates=("dct_inter",), sandbox="none",
                           cache_dir=tmp_path / "cache", ledger=tmp_path / "ledger.jsonl")
    judge, _ = build_judge(options, ROOT)
    spec = judge.anchor_specs["x265"]
    full = judge.anchor_curve("full", "x265")
    assert judge.source("full").info.color_range == "pc"
    assert {p.anchor_id for p in full} == {anchor_id(spec.for_source("pc"))} and "full-range" in full[0].anchor_id
    assert {p.anchor_id for p in judge.anchor_curve("limited", "x265")} == {anchor_id(spec)}
    # the bitstream the judge measured is the full-range one (decoded and measured like any other)
    assert full[0].measurement.mean["psnr_y"] > 35


# -- scheduling ------------------------------------------------------------------------------

SCHEDULING_AFTER_ENCODES = """
import os, sys
from harness.anchors import load_anchor_specs, encode_anchor
from harness.realtime import realtime_threads
from harness.video import read_video
video = read_video(sys.argv[1], max_frames=3)[0]
for name, spec in load_anchor_specs().items():
    encode_anchor(video, spec, spec.qps[0])
    print(name, os.sched_getscheduler(0), sorted(realtime_threads().values()))
if os.fork() == 0:  # what a sandboxed candidate started now would inherit
    os._exit(os.sched_getscheduler(0))
print("child", os.waitstatus_to_exitcode(os.wait()[1]))
"""


def test_anchor_encoders_leave_the_process_on_normal_scheduling():
    """SVT-AV1's encoder switches the thread that opens it to SCHED_FIFO 99 when it can (as root):
    every candidate, suite run and thread started afterwards then ran real-time and two such
    processes starved a 2-core machine (CI hung). In a subprocess, so a failure cannot leave this
    test process real-time."""
    out = subprocess.run(
        [sys.executable, "-c", SCHEDULING_AFTER_ENCODES, str(FIXTURES / "cisco_vt2people_320x192_9f.mkv")],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    ).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    normal = f"{os.SCHED_OTHER} []"
    assert {name: lines.get(name) for name in ANCHORS} == dict.fromkeys(ANCHORS, normal), out
    assert lines["child"] == str(os.SCHED_OTHER), out
