"""The reference candidates (candidates/dct_inter.py, candidates/x264_pyav.py) called directly.

They are trusted code, so they are imported here (the harness itself never imports candidate
code; it runs it in the sandbox). Real clips from ../shared/fixtures: a missing fixture is a
failure, not a skip. Value bands are the measured results with a margin: they catch a codec
that got worse, a rate control that overshoots or wastes its budget, planes swapped or
misaligned, and results too good to be a real decode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from harness.video import Video, read_video

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parents[1].parent / "shared" / "fixtures"
CODECS = ("dct_inter", "x264_pyav")

CLIPS = {  # short name: (file, frames used)
    "foreman": ("derf_foreman_352x288_300f.mkv", 6),
    "friday": ("mdn_his_girl_friday_640x480_185f.mp4", 6),
    "flower": ("cisco_flower_1280x720_60f.mkv", 4),
}
BPPS = (0.05, 0.2)

# Measured PSNR-Y (mean of per-frame PSNR, dB) of each codec on each clip at 0.05 and 0.2
# bits per pixel per frame; a result must lie within [measured - 2, measured + 3].
MEASURED = {
    ("dct_inter", "foreman"): (28.5, 35.4),
    ("dct_inter", "friday"): (37.3, 45.9),
    ("dct_inter", "flower"): (32.5, 39.6),
    ("x264_pyav", "foreman"): (30.9, 37.7),
    ("x264_pyav", "friday"): (40.2, 49.4),
    ("x264_pyav", "flower"): (33.9, 44.8),
}
BELOW, ABOVE = 2.0, 3.0

_modules: dict[str, ModuleType] = {}
_clips: dict[str, Video] = {}
_runs: dict[tuple[str, str, float], tuple[bytes, Video]] = {}


def load_codec(name: str) -> ModuleType:
    if name not in _modules:
        path = ROOT / "candidates" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"reference_candidate_{name}", path)
        assert spec is not None and spec.loader is not None, f"cannot load {path}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


def clip(short: str) -> Video:
    if short not in _clips:
        name, frames = CLIPS[short]
        path = FIXTURES / name
        if not path.is_file():
            pytest.fail(
                f"fixture {path} is missing: these tests need the shared real clips "
                f"(see {FIXTURES / 'MANIFEST.md'}); they are never skipped"
            )
        _clips[short] = read_video(path, max_frames=frames)[0]
    return _clips[short]


def target_bps(video: Video, bpp: float) -> float:
    return bpp * video.width * video.height * float(video.fps)


def run(codec: str, short: str, bpp: float) -> tuple[bytes, Video]:
    """Encode and decode once per (codec, clip, rate); the tests share the results."""
    key = (codec, short, bpp)
    if key not in _runs:
        module, video = load_codec(codec), clip(short)
        data = module.encode(video, target_bps(video, bpp))
        assert isinstance(data, bytes)
        _runs[key] = (data, module.decode(data))
    return _runs[key]


def bitrate(data: bytes, video: Video) -> float:
    return 8 * len(data) * float(video.fps) / video.frames


def psnr(decoded: np.ndarray, source: np.ndarray) -> float:
    """Mean over frames of per-frame PSNR (dB), capped at 100 for identical frames."""
    diff = decoded.astype(np.float64) - source.astype(np.float64)
    mse = (diff * diff).reshape(diff.shape[0], -1).mean(axis=1)
    return float(np.mean(np.where(mse > 0, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12)), 100.0)))


def synthetic(frames: int, height: int, width: int, seed: int) -> Video:
    """A moving gradient with a little noise, at 29.97 fps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    cy, cx = np.mgrid[0:ch, 0:cw].astype(np.float64)

    def plane(base: np.ndarray, t: int) -> np.ndarray:
        noisy = base + 6 * t + rng.normal(0, 3, base.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    luma = 40 + 150 * xx / max(width - 1, 1) + 50 * yy / max(height - 1, 1)
    cb = 90 + 60 * cx / max(cw - 1, 1)
    cr = 160 - 50 * cy / max(ch - 1, 1)
    y = np.stack([plane(luma, t) for t in range(frames)])
    u = np.stack([plane(cb, t) for t in range(frames)])
    v = np.stack([plane(cr, t) for t in range(frames)])
    return Video(y, u, v, Fraction(30000, 1001))


@pytest.fixture(params=CODECS)
def codec(request) -> str:
    return request.param


def test_both_reference_candidates_follow_the_contract(codec):
    module = load_codec(codec)
    assert callable(module.encode) and callable(module.decode)
    summary = (module.__doc__ or "").strip().splitlines()
    assert summary and len(summary[0]) > 20, "the first docstring line must say what the codec does"


@pytest.mark.parametrize("short", sorted(CLIPS))
def test_decode_returns_the_source_format(codec, short):
    video = clip(short)
    for bpp in BPPS:
        _, decoded = run(codec, short, bpp)
        assert isinstance(decoded, Video)
        assert decoded.y.shape == video.y.shape and decoded.u.shape == video.u.shape
        assert decoded.v.shape == video.v.shape
        assert decoded.y.dtype == np.uint8
        assert decoded.fps == video.fps and isinstance(decoded.fps, Fraction)


@pytest.mark.parametrize("short", sorted(CLIPS))
def test_rate_control_fits_the_target_without_wasting_it(codec, short):
    video = clip(short)
    for bpp in BPPS:
        data, _ = run(codec, short, bpp)
        ratio = bitrate(data, video) / target_bps(video, bpp)
        assert ratio <= 1.0, f"{codec} on {short} at {bpp} bpp: {ratio:.3f} x the target bitrate"
        assert ratio >= 0.8, f"{codec} on {short} at {bpp} bpp uses only {ratio:.3f} x its budget"


@pytest.mark.parametrize("short", sorted(CLIPS))
def test_luma_quality_is_in_the_measured_band(codec, short):
    video = clip(short)
    got = []
    for bpp, expected in zip(BPPS, MEASURED[(codec, short)]):
        _, decoded = run(codec, short, bpp)
        value = psnr(decoded.y, video.y)
        got.append(value)
        assert expected - BELOW <= value <= expected + ABOVE, (
            f"{codec} on {short} at {bpp} bpp: PSNR-Y {value:.2f} dB, measured {expected} dB"
        )
    assert got[1] > got[0] + 3.0, f"{codec} on {short}: PSNR-Y {got} does not rise with the rate"


def test_chroma_is_coded_in_the_right_planes(codec):
    for short, floor in (("foreman", 33.0), ("flower", 35.0), ("friday", 60.0)):
        video = clip(short)
        _, decoded = run(codec, short, 0.05)
        for name in ("u", "v"):
            value = psnr(getattr(decoded, name), getattr(video, name))
            assert value >= floor, f"{codec} on {short}: PSNR-{name.upper()} {value:.2f} dB < {floor}"


def test_encoding_is_deterministic(codec):
    module, video = load_codec(codec), clip("foreman")
    data, decoded = run(codec, "foreman", 0.05)
    again = module.encode(video, target_bps(video, 0.05))
    if again != data:
        first = next((i for i, (a, b) in enumerate(zip(again, data)) if a != b), min(len(again), len(data)))
        pytest.fail(
            f"{codec} gave other bytes on a second encode of the same clip: "
            f"{len(data)} then {len(again)} bytes, first difference at byte {first}"
        )
    redecoded = module.decode(again)
    for name in ("y", "u", "v"):
        assert np.array_equal(getattr(redecoded, name), getattr(decoded, name))
    assert run(codec, "foreman", 0.2)[0] != data, "different rates gave the same bitstream"


def test_bytes_do_not_depend_on_threads_or_hash_seed():
    """A fresh interpreter with one BLAS thread and another hash seed gives the same bytes."""
    video = clip("foreman").head(3)
    here = {
        name: hashlib.sha256(load_codec(name).encode(video, target_bps(video, 0.1))).hexdigest()
        for name in CODECS
    }
    script = textwrap.dedent(
        f"""
        import hashlib, importlib.util, sys
        sys.path.insert(0, {str(ROOT)!r})
        from harness.video import read_video
        video = read_video({str(FIXTURES / CLIPS["foreman"][0])!r}, max_frames=3)[0]
        for name in {CODECS!r}:
            spec = importlib.util.spec_from_file_location(name, {str(ROOT / "candidates")!r} + "/" + name + ".py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            data = module.encode(video, 0.1 * video.width * video.height * float(video.fps))
            print(name, hashlib.sha256(data).hexdigest())
        """
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    there = dict(line.split() for line in out.stdout.strip().splitlines())
    assert there == here


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 5), (2, 5, 3), (3, 33, 67), (2, 17, 16), (1, 2, 2)])
def test_odd_and_tiny_sizes_round_trip(codec, shape):
    frames, height, width = shape
    video = synthetic(frames, height, width, seed=sum(shape))
    module = load_codec(codec)
    decoded = module.decode(module.encode(video, target_bps(video, 4.0)))
    assert decoded.y.shape == video.y.shape
    assert decoded.u.shape == video.u.shape == decoded.v.shape
    assert decoded.fps == video.fps


@pytest.mark.parametrize("shape", [(3, 33, 67), (2, 45, 61)])
def test_odd_sizes_meet_rate_and_quality(codec, shape):
    frames, height, width = shape
    video = synthetic(frames, height, width, seed=7)
    module = load_codec(codec)
    target = target_bps(video, 3.0)
    data = module.encode(video, target)
    decoded = module.decode(data)
    assert bitrate(data, video) <= target
    assert psnr(decoded.y, video.y) >= 33.0
    assert psnr(decoded.u, video.u) >= 33.0 and psnr(decoded.v, video.v) >= 33.0


def test_garbage_is_refused(codec):
    module = load_codec(codec)
    data, _ = run(codec, "foreman", 0.05)
    other = run(next(c for c in CODECS if c != codec), "foreman", 0.05)[0]
    rng = np.random.default_rng(3)
    bad = [
        b"",
        b"\x00" * 64,
        rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        other,
        data[: len(data) // 2],
        data[:12],
        data + b"\x00",
    ]
    for blob in bad:
        with pytest.raises(ValueError):
            module.decode(blob)
