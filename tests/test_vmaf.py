"""VMAF / VMAF NEG through libvmaf in the bundled ffmpeg: argument order, frame counts, sizes, versions."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from harness import metrics as M
from harness import vmaf as V
from harness.errors import VideoFormatError
from harness.video import Video, read_video
from tests.conftest import SHARED_FIXTURES, x264_round_trip

BUS = SHARED_FIXTURES / "derf_bus_352x288_17f.mkv"


def _luma(video: Video, fn) -> Video:
    return Video(np.stack([fn(f) for f in video.y]), video.u, video.v, video.fps)


@pytest.fixture(scope="module")
def bus() -> Video:
    if not BUS.exists():
        pytest.fail(f"fixture clip {BUS} is missing; see ../shared/fixtures/MANIFEST.md")
    return read_video(BUS, max_frames=8)[0]


def test_identical_clip_scores_near_100(bus):
    r = V.compute_vmaf(bus, bus)
    for name in ("vmaf", "vmaf_neg"):
        scores = r.per_frame[name]
        assert scores.shape == (bus.frames,)
        # frame 0 has no motion feature to lean on; libvmaf 86da14d gives ~97.4 there, ~100 after
        assert np.all(scores > 97.0) and r.mean[name] > 99.0, (name, scores)


def test_codec_distortion_scores_lower_and_falls_with_crf(bus):
    scores = [V.compute_vmaf(bus, x264_round_trip(bus, crf), models=["vmaf"]).mean["vmaf"] for crf in (20, 32, 44)]
    assert 100.0 > scores[0] > scores[1] > scores[2] > 0.0, scores


def test_distorted_goes_first_reference_second(bus):
    """PITFALLS 6: blur is penalised only when the BLURRED clip is the distorted one."""
    blurred = _luma(bus, lambda f: cv2.GaussianBlur(f, (0, 0), 1.0))
    right = V.compute_vmaf(bus, blurred).mean
    swapped = V.compute_vmaf(blurred, bus).mean  # a sharper "distorted" clip: VMAF rewards it
    assert right["vmaf"] < 85.0 and swapped["vmaf"] > 95.0, (right, swapped)
    assert right["vmaf_neg"] < swapped["vmaf_neg"]
    coded = x264_round_trip(bus, 32)  # the same asymmetry with real codec distortion (measured 74.8 vs 84.8)
    assert V.compute_vmaf(bus, coded).mean["vmaf"] < V.compute_vmaf(coded, bus).mean["vmaf"] - 3.0


def test_neg_does_not_reward_sharpening(bus):
    sharpened = _luma(bus, lambda f: cv2.addWeighted(f, 2.0, cv2.GaussianBlur(f, (0, 0), 1.5), -1.0, 0))
    r = V.compute_vmaf(bus, sharpened)
    assert r.mean["vmaf_neg"] < r.mean["vmaf"] - 5.0, r.mean
    assert np.all(r.per_frame["vmaf_neg"] <= r.per_frame["vmaf"] + 1e-9)


def test_frame_count_and_shape_mismatch_raise_before_ffmpeg(bus, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("ffmpeg must not run on mismatched clips")

    monkeypatch.setattr(V, "_run", boom)
    with pytest.raises(VideoFormatError, match="frame counts differ"):
        V.compute_vmaf(bus, bus.head(bus.frames - 1))
    cropped = Video(bus.y[:, :-2], bus.u[:, :-1], bus.v[:, :-1], bus.fps)
    with pytest.raises(VideoFormatError, match="shapes differ"):
        V.compute_vmaf(bus, cropped)


def test_libvmaf_frame_count_is_checked(bus, monkeypatch):
    real = V._run

    def short_log(ref, dist, models, threads):
        log = real(ref, dist, models, threads)
        log["frames"] = log["frames"][:-1]
        return log

    monkeypatch.setattr(V, "_run", short_log)
    with pytest.raises(
        M.MetricError, match=f"scored {bus.frames - 1} frames but the clips have {bus.frames}"
    ):
        V.compute_vmaf(bus, bus)


def test_odd_size_works_and_tiny_is_refused(bus):
    odd = Video(bus.y[:3, :33, :67].copy(), bus.u[:3, :17, :34].copy(), bus.v[:3, :17, :34].copy(), bus.fps)
    blurred = _luma(odd, lambda f: cv2.GaussianBlur(f, (0, 0), 1.0))
    r = V.compute_vmaf(odd, blurred)
    assert r.per_frame["vmaf"].shape == (3,) and 20.0 < r.mean["vmaf"] < 95.0
    assert V.compute_vmaf(odd, odd).mean["vmaf"] > 97.0
    tiny = Video(bus.y[:2, :16, :200].copy(), bus.u[:2, :8, :100].copy(), bus.v[:2, :8, :100].copy(), bus.fps)
    with pytest.raises(M.MetricError, match="at least 17x17"):
        V.compute_vmaf(tiny, tiny)


def test_versions_and_compute_metrics_integration(bus):
    clip = bus.head(3)
    dist = x264_round_trip(clip, 30)
    m = M.compute_metrics(clip, dist, metrics=["psnr", "vmaf", "vmaf_neg"])
    assert list(m.per_frame) == ["psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "vmaf", "vmaf_neg"]
    direct = V.compute_vmaf(clip, dist)
    assert np.array_equal(m.per_frame["vmaf"], direct.per_frame["vmaf"])
    for name, model in (("vmaf", "vmaf_v0.6.1"), ("vmaf_neg", "vmaf_v0.6.1neg")):
        version = m.versions[name]
        assert version.endswith(f"model={model}") and "ffmpeg=" in version and "libvmaf=" in version
        assert version == M.metric_versions([name])[name]
    with pytest.raises(M.UnknownMetricError, match="vmaf, vmaf_neg"):
        V.compute_vmaf(clip, dist, models=["vmaf_4k"])
