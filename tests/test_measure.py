"""harness.measure: the one function that measures bits and quality, for candidates and anchors alike."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np
import pytest

from harness.measure import SUITE_METRICS, Measurement, bitrate_bps, luma_correlation, measure, metrics_for
from harness.metrics import PSNR_CAP_DB, compute_metrics
from harness.video import Video
from tests.conftest import synthetic, x264_round_trip

LOCAL = ("psnr", "ssim", "ms_ssim")  # no VMAF: these tests are about bookkeeping, not libvmaf


def test_bits_come_from_the_bitstream_length_and_the_bitrate_formula():
    source = synthetic(64, 48, 6, fps=Fraction(30000, 1001))
    bitstream = bytes(range(256)) * 5 + b"tail"  # 1284 bytes; its content says nothing about its rate
    m = measure(source, bitstream, source, metrics=("psnr",))
    assert m.bytes == 1284
    # 8 * bytes * fps / frames: 8 * 1284 * 30000 / 1001 / 6
    assert m.bitrate_bps == pytest.approx(8 * 1284 * 30000 / 1001 / 6, rel=1e-12)
    assert m.bitrate_bps == pytest.approx(51_308.69, abs=0.01)
    assert m.bits_per_pixel == pytest.approx(8 * 1284 / (6 * 64 * 48), rel=1e-12)
    assert m.bitstream_sha256 == hashlib.sha256(bitstream).hexdigest()
    assert m.decoded_sha256 == source.sha256()


def test_bitrate_scales_with_fps_and_frames():
    clip = synthetic(16, 16, 4, fps=Fraction(25))
    assert bitrate_bps(1000, clip) == pytest.approx(8 * 1000 * 25 / 4)
    assert bitrate_bps(1000, synthetic(16, 16, 8, fps=Fraction(25))) == pytest.approx(8 * 1000 * 25 / 8)
    assert bitrate_bps(1000, synthetic(16, 16, 4, fps=Fraction(50))) == pytest.approx(2 * 8 * 1000 * 25 / 4)
    assert bitrate_bps(0, clip) == 0.0


def test_metrics_equal_harness_metrics_on_the_same_frames():
    source = synthetic(96, 64, 4, seed=3)
    decoded = x264_round_trip(source, crf=35)
    m = measure(source, b"x" * 100, decoded, metrics=LOCAL)
    expected = compute_metrics(source, decoded, metrics=LOCAL)
    assert set(m.mean) == set(expected.mean) >= {"psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ssim_y", "ms_ssim_y"}
    for key, value in expected.mean.items():
        assert m.mean[key] == value, key  # the same numbers, not re-derived ones
        assert m.per_frame[key] == [float(x) for x in expected.per_frame[key]], key
        assert len(m.per_frame[key]) == source.frames
    assert 20 < m.mean["psnr_y"] < 60  # real distortion: a bug measuring source vs source would give 100
    assert m.mean["psnr_yuv"] == pytest.approx(
        np.mean([(6 * y + u + v) / 8 for y, u, v in zip(m.per_frame["psnr_y"], m.per_frame["psnr_u"], m.per_frame["psnr_v"])])
    )
    assert m.decoded_sha256 == decoded.sha256() != source.sha256()


def test_identical_frames_give_psnr_capped_at_100():
    source = synthetic(48, 32, 3, seed=1)
    copy = Video(source.y.copy(), source.u.copy(), source.v.copy(), source.fps)
    m = measure(source, b"\0" * 10, copy, metrics=LOCAL)
    assert PSNR_CAP_DB == 100.0
    for key in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv"):
        assert m.mean[key] == 100.0, key
        assert m.per_frame[key] == [100.0] * 3, key
    assert m.mean["ssim_y"] == pytest.approx(1.0, abs=1e-9)


def test_one_changed_sample_is_measured_below_the_cap():
    source = synthetic(48, 32, 2, seed=1)
    y = source.y.copy()
    y[1, 0, 0] ^= 1
    m = measure(source, b"", Video(y, source.u, source.v, source.fps), metrics=("psnr",))
    assert m.per_frame["psnr_y"][0] == 100.0
    # one squared error of 1 in 48 x 32 samples: 10 log10(255^2 x 1536) = 80.0 dB
    assert m.per_frame["psnr_y"][1] == pytest.approx(10 * np.log10(255**2 * 48 * 32), abs=1e-9)
    assert m.per_frame["psnr_y"][1] < 100.0


def test_vmaf_is_left_out_only_where_libvmaf_cannot_run():
    assert metrics_for(synthetic(16, 64, 1)) == ("psnr", "ssim", "ms_ssim")
    assert metrics_for(synthetic(64, 16, 1)) == ("psnr", "ssim", "ms_ssim")
    assert metrics_for(synthetic(17, 17, 1)) == SUITE_METRICS
    tiny = synthetic(16, 16, 2)
    m = measure(tiny, b"ab", tiny)  # the suite's metrics: VMAF dropped, not crashed
    assert "vmaf" not in m.mean and "vmaf_neg" not in m.mean and m.mean["psnr_y"] == 100.0


def test_json_round_trip_keeps_every_field():
    source = synthetic(32, 32, 2)
    m = measure(source, b"abc", x264_round_trip(synthetic(32, 32, 2), 30), metrics=("psnr",))
    data = m.to_json()
    assert set(data) == {
        "bytes", "bitrate_bps", "bits_per_pixel", "bitstream_sha256", "decoded_sha256", "metrics", "per_frame",
        "luma_correlation",
    }
    assert Measurement.from_json(data) == m
    older = {k: v for k, v in data.items() if k != "luma_correlation"}  # cached before it was recorded
    assert Measurement.from_json(older).luma_correlation is None and Measurement.from_json(older).mean_luma_correlation is None


def test_luma_correlation_is_near_one_for_a_coarse_decode_and_zero_for_a_flat_one():
    source = synthetic(64, 48, 3)
    coarse = x264_round_trip(synthetic(64, 48, 3), 45)  # a very low rate: blurred, but the picture
    values = luma_correlation(source, coarse)
    assert len(values) == 3 and all(0.8 < v <= 1.0 for v in values), values
    assert luma_correlation(source, source) == pytest.approx((1.0, 1.0, 1.0))
    grey = Video(np.full_like(source.y, 128), source.u, source.v, source.fps)
    assert luma_correlation(source, grey) == (0.0, 0.0, 0.0)
    inverted = Video(255 - source.y, source.u, source.v, source.fps)
    assert luma_correlation(source, inverted) == pytest.approx((-1.0, -1.0, -1.0))
    # A flat source frame has nothing to reproduce: no correlation, left out of the mean.
    flat_y = source.y.copy()
    flat_y[1] = 77
    flat = Video(flat_y, source.u, source.v, source.fps)
    values = luma_correlation(flat, coarse)
    assert values[1] is None and values[0] is not None
    m = measure(flat, b"abc", coarse, metrics=("psnr",))
    assert m.mean_luma_correlation == pytest.approx((values[0] + values[2]) / 2)
