"""PSNR / SSIM / MS-SSIM: exact maths, and agreement with independent implementations on real frames.

Tolerances and why:
- PSNR vs skimage.metrics.peak_signal_noise_ratio: 1e-6 dB (same formula, float64 both sides).
- PSNR vs ffmpeg's psnr filter, per frame: 0.006 dB (its stats file prints 2 decimals).
- SSIM vs skimage structural_similarity (PITFALLS 9 settings): 1e-6 on each plane's mean
  (ours is float32; measured ~1e-7).
- SSIM vs ffmpeg's ssim filter: 0.02, and only as a sanity band: ffmpeg averages 8x8 blocks
  on a 4-sample grid without a Gaussian window, a different (and usually higher) number.
- MS-SSIM vs the float64 scipy implementation below: 1e-6.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import signal
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from harness import metrics as M
from harness.errors import HarnessError, VideoFormatError
from harness.video import Video, read_video
from tests.conftest import SHARED_FIXTURES, x264_round_trip

FIXTURES = SHARED_FIXTURES
BUS = FIXTURES / "derf_bus_352x288_17f.mkv"
PARK = FIXTURES / "svt_park_joy_160x90_10f.y4m"
SCREEN = FIXTURES / "libvpx_screen_code_1920x1080_3f.mkv"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"fixture clip {path} is missing; see ../shared/fixtures/MANIFEST.md")
    return path


def _map(video: Video, fn) -> Video:
    return Video(*(np.stack([fn(f) for f in plane]) for plane in (video.y, video.u, video.v)), fps=video.fps)


@pytest.fixture(scope="module")
def bus() -> Video:
    return read_video(_need(BUS), max_frames=6)[0]


@pytest.fixture(scope="module")
def bus_x264(bus) -> Video:
    return x264_round_trip(bus, 32)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )


# --------------------------------------------------------------------------- exact maths


def test_identical_clips_give_cap_and_one(bus):
    m = M.compute_metrics(bus, bus)
    for key in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv"):
        assert np.all(m.per_frame[key] == M.PSNR_CAP_DB), key
    for key in ("ssim_y", "ssim_u", "ssim_v", "ms_ssim_y"):
        assert np.all(m.per_frame[key] == 1.0), key
    assert M.PSNR_CAP_DB == 100.0


def test_known_mse_gives_exact_psnr_and_yuv_weighting(bus):
    base = _map(bus, lambda p: np.minimum(p, 240))
    plus = Video(base.y + 1, base.u + 2, base.v + 4, base.fps)  # MSE 1, 4, 16
    m = M.compute_metrics(base, plus, metrics=["psnr"])
    want = {
        "psnr_y": 10 * math.log10(255**2),
        "psnr_u": 10 * math.log10(255**2 / 4),
        "psnr_v": 10 * math.log10(255**2 / 16),
    }
    assert want["psnr_y"] == pytest.approx(48.1308036, abs=1e-7)
    for key, value in want.items():
        np.testing.assert_allclose(m.per_frame[key], value, rtol=0, atol=1e-12)
    yuv = (6 * want["psnr_y"] + want["psnr_u"] + want["psnr_v"]) / 8
    np.testing.assert_allclose(m.per_frame["psnr_yuv"], yuv, rtol=0, atol=1e-12)
    assert m.mean["psnr_yuv"] == pytest.approx(yuv, abs=1e-12)


def test_psnr_cap_is_a_ceiling_not_only_for_identical():
    a = np.zeros((1080, 1920), np.uint8)
    b = a.copy()
    b[0, 0] = 1  # MSE 4.8e-7 -> 111 dB uncapped
    assert M.psnr_plane(a, b) == M.PSNR_CAP_DB
    b[:100] = 1
    assert M.psnr_plane(a, b) < M.PSNR_CAP_DB


def test_clip_value_is_mean_of_per_frame_psnr_not_psnr_of_mean_mse(bus):
    noisy = _map(bus, lambda p: p.copy())
    noisy.y[0] ^= 1  # one frame with MSE ~1, the rest identical
    m = M.compute_metrics(bus, noisy, metrics=["psnr"])
    assert m.mean["psnr_y"] == pytest.approx(float(np.mean(m.per_frame["psnr_y"])), abs=1e-12)
    assert m.per_frame["psnr_y"][1] == M.PSNR_CAP_DB


def test_ssim_of_one_by_one_planes_is_the_luminance_term():
    c1 = (0.01 * 255) ** 2
    for a, b in ((10, 200), (0, 255), (128, 129), (7, 7)):
        want = (2 * a * b + c1) / (a * a + b * b + c1)
        got = M.ssim_plane(np.array([[a]], np.uint8), np.array([[b]], np.uint8))
        assert got == pytest.approx(want, abs=1e-6)


# --------------------------------------------------------------------------- PSNR vs others


def test_psnr_matches_skimage_per_plane(bus, bus_x264):
    m = M.compute_metrics(bus, bus_x264, metrics=["psnr"])
    for p in "yuv":
        for i in range(bus.frames):
            ref = peak_signal_noise_ratio(getattr(bus, p)[i], getattr(bus_x264, p)[i], data_range=255)
            assert m.per_frame[f"psnr_{p}"][i] == pytest.approx(ref, abs=1e-6)


def _ffmpeg_stats(filter_name: str, ref: Video, dist: Video, tmp_path: Path) -> list[dict[str, float]]:
    import imageio_ffmpeg

    paths = []
    for name, video in (("dist", dist), ("ref", ref)):
        path = tmp_path / f"{name}.yuv"
        with open(path, "wb") as f:
            for i in range(video.frames):
                f.writelines(np.ascontiguousarray(plane).data for plane in video.frame(i))
        paths.append(path)
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{ref.width}x{ref.height}", "-framerate", "25"]
    stats = tmp_path / f"{filter_name}.log"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    cmd += [*raw, "-i", str(paths[0]), *raw, "-i", str(paths[1])]
    cmd += ["-lavfi", f"[0:v][1:v]{filter_name}=stats_file={stats.name}:shortest=1", "-f", "null", "-"]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True)
    rows = []
    for line in stats.read_text().splitlines():
        row = {}
        for item in line.split():
            key, _, value = item.partition(":")
            try:
                row[key] = float(value)
            except ValueError:
                pass
        rows.append(row)
    assert len(rows) == ref.frames
    return rows


def test_psnr_matches_ffmpeg_psnr_filter_per_frame(bus, bus_x264, tmp_path):
    rows = _ffmpeg_stats("psnr", bus, bus_x264, tmp_path)
    m = M.compute_metrics(bus, bus_x264, metrics=["psnr"])
    for i, row in enumerate(rows):
        for p in "yuv":
            assert m.per_frame[f"psnr_{p}"][i] == pytest.approx(row[f"psnr_{p}"], abs=0.006)
    # ffmpeg's summary is the PSNR of the mean MSE (PITFALLS 5); ours is the mean of per-frame PSNR.
    mse = np.mean([r["mse_y"] for r in rows])
    assert m.mean["psnr_y"] != pytest.approx(10 * math.log10(255**2 / mse), abs=1e-4)


# --------------------------------------------------------------------------- SSIM vs others


@pytest.mark.parametrize("clip", [BUS, SCREEN], ids=["bus", "screen1080"])
def test_ssim_matches_skimage(clip):
    ref = read_video(_need(clip), max_frames=2)[0]
    dist = x264_round_trip(ref, 30)
    m = M.compute_metrics(ref, dist, metrics=["ssim"])
    for p in "yuv":
        for i in range(ref.frames):
            want = _skimage_ssim(getattr(ref, p)[i], getattr(dist, p)[i])
            assert m.per_frame[f"ssim_{p}"][i] == pytest.approx(want, abs=1e-6), (p, i)


def test_ssim_matches_skimage_under_noise_and_blur(bus):
    rng = np.random.default_rng(1)
    y = bus.y[0]
    noisy = np.clip(y + rng.normal(0, 12, y.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(y, (0, 0), 2.0)
    for dist in (noisy, blurred, 255 - y):
        assert M.ssim_plane(y, dist) == pytest.approx(_skimage_ssim(y, dist), abs=1e-6)


def test_ssim_is_near_ffmpeg_ssim_filter(bus, bus_x264, tmp_path):
    rows = _ffmpeg_stats("ssim", bus, bus_x264, tmp_path)
    m = M.compute_metrics(bus, bus_x264, metrics=["ssim"])
    for i, row in enumerate(rows):
        for p in "YUV":
            assert m.per_frame[f"ssim_{p.lower()}"][i] == pytest.approx(row[p], abs=0.02)


# --------------------------------------------------------------------------- MS-SSIM


def _ref_ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Float64 SSIM and CS with scipy's 'valid' 2-D convolution; written apart from harness.metrics."""
    g = signal.windows.gaussian(11, 1.5)
    win = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda a: signal.fftconvolve(a, win, mode="valid")
    mx, my = f(x), f(y)
    vx, vy, cov = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cs = (2 * cov + c2) / (vx + vy + c2)
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _ref_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    x, y = a.astype(np.float64), b.astype(np.float64)
    values = []
    while True:
        values.append(_ref_ssim_cs(x, y))
        h, w = x.shape[0] // 2, x.shape[1] // 2
        if len(values) == 5 or min(h, w) < 11:
            break
        x = x[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
        y = y[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    w = np.array(weights[: len(values)])
    w /= w.sum()
    terms = [max(cs, 0.0) for _, cs in values[:-1]] + [max(values[-1][0], 0.0)]
    return float(np.prod(np.power(terms, w)))


@pytest.mark.parametrize("clip,scales", [(BUS, 5), (PARK, 4)], ids=["352x288", "160x90"])
def test_ms_ssim_matches_independent_implementation(clip, scales):
    ref = read_video(_need(clip), max_frames=3)[0]
    dist = x264_round_trip(ref, 34)
    assert M.ms_ssim_scales(ref.height, ref.width) == scales
    m = M.compute_metrics(ref, dist, metrics=["ms_ssim", "ssim"])
    m_alone = M.compute_metrics(ref, dist, metrics=["ms_ssim"])
    for i in range(ref.frames):
        want = _ref_ms_ssim(ref.y[i], dist.y[i])
        assert m.per_frame["ms_ssim_y"][i] == pytest.approx(want, abs=1e-6)
        assert m_alone.per_frame["ms_ssim_y"][i] == pytest.approx(want, abs=1e-6)


def test_quality_falls_monotonically_with_crf(bus):
    clip = bus.head(3)
    means = [M.compute_metrics(clip, x264_round_trip(clip, crf)).mean for crf in (18, 28, 38, 48)]
    for key in ("psnr_yuv", "ssim_y", "ms_ssim_y"):
        series = [m[key] for m in means]
        assert all(a > b for a, b in itertools.pairwise(series)), (key, series)
    assert 0.5 < means[-1]["ms_ssim_y"] < means[0]["ms_ssim_y"] < 1.0


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("shape", [(33, 67), (1, 1), (5, 9), (9, 40), (12, 12), (2, 3)])
def test_odd_and_tiny_frames(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    h, w = shape
    ch, cw = (h + 1) // 2, (w + 1) // 2
    ref = Video(
        rng.integers(0, 256, (2, h, w), dtype=np.uint8),
        rng.integers(0, 256, (2, ch, cw), dtype=np.uint8),
        rng.integers(0, 256, (2, ch, cw), dtype=np.uint8),
        25,
    )
    dist = _map(
        ref, lambda p: np.clip(p.astype(int) + rng.integers(-9, 10, p.shape), 0, 255).astype(np.uint8)
    )
    m = M.compute_metrics(ref, dist)
    for key, values in m.per_frame.items():
        assert values.shape == (2,) and np.all(np.isfinite(values)), key
    for p in "yuv":
        plane_r, plane_d = getattr(ref, p)[0], getattr(dist, p)[0]
        want = (
            peak_signal_noise_ratio(plane_r, plane_d, data_range=255) if np.any(plane_r != plane_d) else 100.0
        )
        assert m.per_frame[f"psnr_{p}"][0] == pytest.approx(min(want, 100.0), abs=1e-6)
        assert m.per_frame[f"ssim_{p}"][0] == pytest.approx(_ref_small_ssim(plane_r, plane_d), abs=1e-5)
    if min(h, w) >= 11:
        assert m.per_frame["ssim_y"][0] == pytest.approx(_skimage_ssim(ref.y[0], dist.y[0]), abs=1e-6)
    assert M.compute_metrics(ref, ref).per_frame["ssim_y"].tolist() == [1.0, 1.0]


def _ref_small_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The stated small-plane rule: per axis the largest odd window <= 11, same Gaussian, renormalised."""

    def taps(n: int) -> np.ndarray:
        t = min(11, n if n % 2 else n - 1)
        g = np.exp(-0.5 * (np.arange(t) - t // 2) ** 2 / 1.5**2)
        return g / g.sum()

    win = np.outer(taps(a.shape[0]), taps(a.shape[1]))
    f = lambda z: signal.convolve2d(z, win[::-1, ::-1], mode="valid")
    x, y = a.astype(np.float64), b.astype(np.float64)
    mx, my = f(x), f(y)
    vx, vy, cov = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(np.mean((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))


def test_ms_ssim_on_small_planes_uses_fewer_scales():
    assert [M.ms_ssim_scales(n, n) for n in (5, 11, 21, 22, 44, 88, 175, 176, 1080)] == [
        1,
        1,
        1,
        2,
        3,
        4,
        4,
        5,
        5,
    ]
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (15, 30), dtype=np.uint8)
    b = np.clip(a + rng.integers(-5, 6, a.shape), 0, 255).astype(np.uint8)
    assert M.ms_ssim_plane(a, b) == pytest.approx(M.ssim_plane(a, b), abs=1e-12)


# --------------------------------------------------------------------------- API contract


def test_mismatched_clips_are_refused(bus):
    with pytest.raises(VideoFormatError, match="frame counts differ"):
        M.compute_metrics(bus, bus.head(5))
    small = Video(bus.y[:, :, :350], bus.u[:, :, :175], bus.v[:, :, :175], bus.fps)
    with pytest.raises(VideoFormatError, match="shapes differ"):
        M.compute_metrics(bus, small)
    with pytest.raises(VideoFormatError):
        M.frame_count_check(bus, small)


def test_unknown_metric_lists_known_ones(bus):
    with pytest.raises(M.UnknownMetricError, match="psnr, ssim, ms_ssim, vmaf, vmaf_neg") as err:
        M.compute_metrics(bus, bus, metrics=["psnr", "ssim2"])
    assert isinstance(err.value, ValueError) and isinstance(err.value, HarnessError)


def test_non_finite_result_raises(bus, monkeypatch):
    monkeypatch.setattr(M, "_ssim_core", lambda b: (float("nan"), 1.0))
    with pytest.raises(M.MetricError, match="ssim_y is not finite"):
        M.compute_metrics(bus.head(2), bus.head(2), metrics=["ssim"])


def test_threads_do_not_change_results_and_json_is_plain(bus, bus_x264):
    one = M.compute_metrics(bus, bus_x264, threads=1)
    two = M.compute_metrics(bus, bus_x264, threads=2)
    assert one.mean == two.mean
    for key in one.per_frame:
        assert np.array_equal(one.per_frame[key], two.per_frame[key])
    doc = json.loads(json.dumps(two.to_json()))
    assert doc["frames"] == bus.frames and doc["versions"] == {"psnr": "1", "ssim": "1", "ms_ssim": "1"}
    assert set(doc["per_frame"]) == {
        "psnr_y",
        "psnr_u",
        "psnr_v",
        "psnr_yuv",
        "ssim_y",
        "ssim_u",
        "ssim_v",
        "ms_ssim_y",
    }
    assert doc["mean"]["psnr_y"] == pytest.approx(np.mean(doc["per_frame"]["psnr_y"]))
    assert set(M.METRIC_VERSIONS) == set(M.METRIC_NAMES)
    with pytest.raises(ValueError):
        two.per_frame["psnr_y"][0] = 0.0  # read-only results


def test_opencv_thread_setting_is_restored(bus):
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        M.compute_metrics(bus.head(2), bus.head(2), metrics=["ssim"])
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
