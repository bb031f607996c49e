"""Metric throughput at 1080p: the full set against its parts and against a naive stack.

Side by side on the same frames in one run (ratios, not absolute times; the machines are shared):
- full: `compute_metrics` with PSNR, SSIM, MS-SSIM, VMAF and VMAF NEG;
- parts: each metric alone through the same fastest path (OpenCV kernels, libvmaf n_threads=2);
- naive: numpy float64 PSNR + scikit-image SSIM (Wang settings) on Y, U, V + libvmaf n_threads=1.
The targets (full <= 1.2 x sum of parts, naive >= 4 x full) are recorded in extra_info, not asserted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from harness.metrics import compute_metrics
from harness.video import Video, read_video
from harness.vmaf import compute_vmaf
from tests.conftest import SHARED_FIXTURES, x264_round_trip

SHARED_1080P = "libvpx_screen_code_1920x1080_3f.mkv"
FRAMES = 12
ALL = ("psnr", "ssim", "ms_ssim", "vmaf", "vmaf_neg")
_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def pair(judge):
    path = SHARED_FIXTURES / SHARED_1080P
    if not path.exists():
        pytest.fail(f"the 1080p development clip {path} is missing (../shared/fixtures)")
    head, _ = read_video(path)
    reps = -(-FRAMES // head.frames)
    ref = Video(*(np.concatenate([p] * reps)[:FRAMES] for p in (head.y, head.u, head.v)), head.fps)
    return ref, x264_round_trip(ref, 35)


def _luma_mpix(video: Video) -> float:
    return video.frames * video.width * video.height / 1e6


@pytest.mark.parametrize("metric", [*ALL[:3], "vmaf+vmaf_neg"])
def test_metric_alone(benchmark, pair, metric):
    ref, dist = pair
    names = ("vmaf", "vmaf_neg") if metric == "vmaf+vmaf_neg" else (metric,)
    result = benchmark.pedantic(lambda: compute_metrics(ref, dist, metrics=names), rounds=2, iterations=1)
    _TIMES[metric] = benchmark.stats.stats.min
    benchmark.extra_info.update(mpixel_per_s=_luma_mpix(ref) / benchmark.stats.stats.min, mean=result.mean)


def test_full_metric_set(benchmark, pair):
    ref, dist = pair
    result = benchmark.pedantic(lambda: compute_metrics(ref, dist, metrics=ALL), rounds=2, iterations=1)
    full = benchmark.stats.stats.min
    _TIMES["full"] = full
    parts = sum(_TIMES[m] for m in (*ALL[:3], "vmaf+vmaf_neg") if m in _TIMES)
    benchmark.extra_info.update(
        mpixel_per_s=_luma_mpix(ref) / full,
        sum_of_parts_s=parts,
        full_over_parts=full / parts if parts else None,
        target_full_over_parts=1.2,
        psnr_yuv=result.mean["psnr_yuv"],
    )


def _naive(ref: Video, dist: Video) -> None:
    for i in range(ref.frames):
        for a, b in zip(ref.frame(i), dist.frame(i)):
            mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
            10 * np.log10(255**2 / max(mse, 1e-10))
            structural_similarity(
                a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
            )
    compute_vmaf(ref, dist, models=("vmaf", "vmaf_neg"), threads=1)


def test_naive_stack(benchmark, pair):
    ref, dist = pair
    start = time.perf_counter()
    benchmark.pedantic(lambda: _naive(ref, dist), rounds=1, iterations=1)
    naive = time.perf_counter() - start
    full = _TIMES.get("full")
    benchmark.extra_info.update(
        mpixel_per_s=_luma_mpix(ref) / naive,
        naive_over_full=naive / full if full else None,
        target_naive_over_full=4.0,
        note="naive = numpy float64 PSNR + skimage SSIM (Y, U, V) + libvmaf n_threads=1; no MS-SSIM (torch optional)",
    )
