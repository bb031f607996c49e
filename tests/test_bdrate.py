"""BD-rate maths: exact cases, overlap handling, and agreement with the `bjontegaard` package."""

from __future__ import annotations

import json
import warnings

import pytest

from harness.bdrate import (
    MIN_OVERLAP,
    BDRateError,
    BDResult,
    average_bd_rate,
    bd_rate,
    describe,
)

# CTC-like 4-point curves (kbps, PSNR-Y dB) at QP 37, 32, 27, 22.
HEVC = [(1358.24, 36.210), (2486.44, 37.425), (4593.60, 38.615), (9487.76, 40.037)]
CURVES = {
    "close": [(1356.24, 36.249), (2451.52, 37.409), (4469.00, 38.592), (9787.80, 40.096)],
    "avc_like": [(1880.0, 36.05), (3420.0, 37.31), (6310.0, 38.52), (12940.0, 39.95)],
    "av1_like": [(1120.0, 36.31), (2050.0, 37.52), (3800.0, 38.70), (7900.0, 40.12)],
    "crossing": [(1500.0, 35.90), (2600.0, 37.50), (4300.0, 38.80), (8400.0, 39.90)],
    "uneven": [(700.0, 34.80), (1900.0, 36.90), (5200.0, 38.90), (15000.0, 41.30)],
    "five_points": [(900.0, 35.4), (1400.0, 36.3), (2500.0, 37.5), (4700.0, 38.7), (9900.0, 40.1)],
}
METHODS = ("pchip", "akima")


def scaled(points, rate=1.0, quality=0.0):
    return [(r * rate, q + quality) for r, q in points]


@pytest.mark.parametrize("method", METHODS)
def test_identical_curves_give_zero(method):
    result = bd_rate(HEVC, HEVC, method=method)
    assert result.bd_rate == pytest.approx(0.0, abs=1e-12)
    assert result.bd_quality == pytest.approx(0.0, abs=1e-12)
    assert result.overlap == 1.0 and result.rate_overlap == 1.0
    assert result.comparable and result.warning is None
    assert result.interval == (36.210, 40.037)
    assert describe(result.bd_rate) == "= same bits"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("factor", "expected"), [(0.5, -50.0), (2.0, 100.0), (0.8, -20.0)])
def test_scaling_every_rate_gives_exact_percent(method, factor, expected):
    result = bd_rate(HEVC, scaled(HEVC, rate=factor), method=method)
    assert result.bd_rate == pytest.approx(expected, abs=1e-9)
    assert result.overlap == 1.0


def test_halving_is_reported_as_fewer_bits():
    assert describe(bd_rate(HEVC, scaled(HEVC, rate=0.5)).bd_rate) == "↓ 50.0 % fewer bits"
    assert describe(bd_rate(HEVC, scaled(HEVC, rate=2.0)).bd_rate) == "↑ 100.0 % more bits"
    assert describe(-12.34) == "↓ 12.3 % fewer bits"
    assert describe(4.0) == "↑ 4.0 % more bits"
    assert describe(0.04) == "= same bits"
    assert describe(None) == "– not comparable"


@pytest.mark.parametrize("method", METHODS)
def test_quality_shift_gives_exact_bd_psnr(method):
    result = bd_rate(HEVC, scaled(HEVC, quality=1.0), method=method)
    assert result.bd_quality == pytest.approx(1.0, abs=1e-12)
    assert result.rate_overlap == 1.0
    assert result.bd_rate < 0  # better quality at every rate = fewer bits at equal quality


def test_order_of_points_does_not_matter():
    assert bd_rate(HEVC[::-1], CURVES["avc_like"][::-1]).bd_rate == pytest.approx(
        bd_rate(HEVC, CURVES["avc_like"]).bd_rate, abs=1e-12
    )


def test_no_overlap_is_not_comparable_and_gives_bd_psnr_and_the_verdict_instead():
    far = scaled(HEVC, quality=10.0)  # 46.2..50.0 dB against 36.2..40.0 dB, at the same rates
    result = bd_rate(HEVC, far)
    assert not result.comparable
    assert result.bd_rate is None and result.interval is None and result.overlap == 0.0
    assert describe(result.bd_rate) == "– not comparable"
    assert result.bd_quality == pytest.approx(10.0) and result.dominance == "better"
    assert result.warning == (
        "not comparable: quality ranges do not overlap (reference 36.21..40.04, test 46.21..50.04), no BD-rate; "
        "BD-quality +10 at equal rate over the shared rates 1358..9488; "
        "the test is better than the reference at every rate point"
    )
    assert "encode the test at rates" not in result.warning  # no advice a codec cannot follow
    assert result.verdict("dB") == "better than the reference at every rate point, +10.00 dB at equal rate"
    data = json.loads(json.dumps(result.to_json()))
    assert data["dominance"] == "better" and data["summary"] == result.verdict()


# Quality linear in log10(rate): PCHIP and Akima reproduce a straight line exactly, so every
# BD-quality below is computed by hand.
LINE = [(10.0**lr, 30.0 + 4.0 * (lr - 2)) for lr in (2, 3, 4, 5)]  # 30, 34, 38, 42 dB at 100..100000


@pytest.mark.parametrize("method", METHODS)
def test_a_curve_far_below_at_the_same_rates_is_worse_at_every_point_by_its_bd_psnr(method):
    weak = [(r, q - 20.0) for r, q in LINE]  # 10..22 dB: no quality in common
    result = bd_rate(LINE, weak, method=method)
    assert not result.comparable and result.bd_rate is None
    assert result.bd_quality == pytest.approx(-20.0) and result.rate_overlap == pytest.approx(1.0)
    assert result.dominance == "worse"
    assert "the test is worse than the reference at every rate point" in result.warning
    assert result.verdict("dB") == "worse than the reference at every rate point, -20.00 dB at equal rate"


def test_bd_psnr_is_over_the_shared_rates_only():
    # Test rates 10^3.5..10^6.5 (shared with the reference: 10^3.5..10^5), 6 dB below the line there.
    weak = [(10.0**lr, 30.0 + 4.0 * (lr - 2) - 6.0 - 20.0) for lr in (3.5, 4.5, 5.5, 6.5)]
    result = bd_rate(LINE, weak)
    assert result.bd_quality == pytest.approx(-26.0)
    assert result.rate_interval == pytest.approx((10.0**3.5, 1e5))
    # Each test point: inside the reference's rates it is under the curve; beyond them, under its best point.
    assert result.dominance == "worse"


def test_without_shared_rates_domination_still_decides():
    above_costlier = [(10.0**lr, q) for lr, q in ((6, 10.0), (7, 12.0), (8, 14.0))]  # more bits, less quality
    result = bd_rate(LINE, above_costlier)
    assert result.bd_quality is None and result.dominance == "worse"
    assert "BD-quality" not in result.warning and "worse than the reference at every rate point" in result.warning
    cheaper_better = [(10.0**lr, q) for lr, q in ((0, 50.0), (1, 52.0))]  # fewer bits, more quality
    assert bd_rate(LINE, cheaper_better).dominance == "better"


def test_cheaper_and_worse_without_shared_rates_says_why_nothing_compares():
    cheaper_worse = [(10.0**lr, q) for lr, q in ((0, 10.0), (1, 12.0))]  # fewer bits, less quality
    result = bd_rate(LINE, cheaper_worse)
    assert result.bd_quality is None and result.dominance is None and not result.comparable
    assert result.warning.endswith(
        "the rate ranges do not overlap either (reference 100..1e+05, test 1..10) and neither curve is above the other"
    )
    assert result.verdict() == "– not comparable"


def test_domination_needs_every_point():
    # Under the reference at three points; the fourth is under the reference's lowest rate, where
    # (without extrapolation) it cannot be called worse: no verdict, BD-quality stands.
    mixed = [(10.0, 5.0)] + [(r, q - 20.0) for r, q in LINE[:3]]
    result = bd_rate(LINE, mixed)
    assert result.dominance is None and result.bd_quality is not None


def test_partial_overlap_warns():
    shifted = scaled(HEVC, quality=2.0)  # 38.2..42.0 against 36.2..40.0: overlap 1.8 / 5.8
    result = bd_rate(HEVC, shifted)
    assert result.comparable and result.bd_rate is not None
    assert result.overlap == pytest.approx((40.037 - 38.210) / (42.037 - 36.210))
    assert result.overlap < MIN_OVERLAP
    assert result.interval == pytest.approx((38.210, 40.037))
    assert "overlap only 31%" in result.warning


def test_non_monotone_curve_is_not_comparable_with_reason():
    bad = [(1000.0, 36.0), (2000.0, 37.5), (4000.0, 37.2), (8000.0, 39.0)]
    result = bd_rate(HEVC, bad)
    assert not result.comparable and result.bd_rate is None
    assert "test curve is not monotone" in result.warning and "37.5" in result.warning


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(1000.0, 36.0)], "at least 2"),
        ([(1000.0, 36.0), (0.0, 37.0)], "rate <= 0"),
        ([(1000.0, 36.0), (2000.0, float("nan"))], "non-finite"),
        ([(1000.0, 36.0), (2000.0, float("inf"))], "non-finite"),
        (["ab", "cd"], "pairs of numbers"),
    ],
)
def test_malformed_points_raise(points, message):
    with pytest.raises(BDRateError, match=message):
        bd_rate(HEVC, points)


def test_unknown_method_raises():
    with pytest.raises(BDRateError, match="pchip"):
        bd_rate(HEVC, HEVC, method="cubic")


def test_result_is_frozen_and_serialisable():
    result = bd_rate(HEVC, CURVES["avc_like"])
    with pytest.raises(AttributeError):
        result.bd_rate = 0.0
    data = json.loads(json.dumps(result.to_json()))
    assert data["method"] == "pchip" and data["comparable"] is True
    assert data["summary"].startswith("↑")


def test_average_over_clips_excludes_not_comparable():
    results = {
        "a": bd_rate(HEVC, scaled(HEVC, rate=0.5)),
        "b": bd_rate(HEVC, scaled(HEVC, rate=0.8)),
        "far": bd_rate(HEVC, scaled(HEVC, quality=10.0)),
        "partial": bd_rate(HEVC, scaled(HEVC, rate=0.9, quality=2.0)),
    }
    avg = average_bd_rate(results)
    assert avg.included == ("a", "b", "partial")
    assert avg.bd_rate == pytest.approx((-50.0 - 20.0 + results["partial"].bd_rate) / 3)
    assert [clip for clip, _ in avg.excluded] == ["far"]
    assert "do not overlap" in avg.excluded[0][1]
    assert [clip for clip, _ in avg.warned] == ["partial"]
    json.dumps(avg.to_json())


def test_average_of_nothing_comparable_is_none():
    avg = average_bd_rate({"far": bd_rate(HEVC, scaled(HEVC, quality=10.0))})
    assert avg.bd_rate is None and avg.included == ()
    assert describe(avg.bd_rate) == "– not comparable"


def test_average_refuses_mixed_methods():
    with pytest.raises(BDRateError, match="different methods"):
        average_bd_rate({"a": bd_rate(HEVC, HEVC), "b": bd_rate(HEVC, HEVC, method="akima")})


try:
    import bjontegaard
except ImportError:  # a missing reference implementation fails loudly, never skips
    bjontegaard = None


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(CURVES))
def test_agrees_with_bjontegaard_package(name, method):
    if bjontegaard is None:
        pytest.fail("the reference package is missing: pip install bjontegaard (the project's dev extra)")
    test = CURVES[name]
    ours: BDResult = bd_rate(HEVC, test, method=method)
    ref_r, ref_q = zip(*HEVC)
    test_r, test_q = zip(*test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_rate = bjontegaard.bd_rate(
            ref_r, ref_q, test_r, test_q, method=method, require_matching_points=False
        )
        theirs_psnr = bjontegaard.bd_psnr(
            ref_r, ref_q, test_r, test_q, method=method, require_matching_points=False
        )
    assert ours.bd_rate == pytest.approx(theirs_rate, abs=0.01)
    assert ours.bd_quality == pytest.approx(theirs_psnr, abs=1e-4)


def test_the_same_bitstream_for_two_targets_is_named():
    """Two rate points with the same rate and quality: the encoder ignored the target, and the
    warning says so instead of a generic "not monotone"."""
    ref = [(1000.0, 30.0), (2000.0, 34.0), (4000.0, 38.0), (8000.0, 42.0)]
    test = [(1500.0, 31.0), (1500.0, 31.0), (3000.0, 36.0), (6000.0, 40.0)]
    result = bd_rate(ref, test)
    assert not result.comparable and result.bd_rate is None
    assert result.warning == (
        "test curve has two points with the same rate 1500 and quality 31.0000: "
        "the encoder gave the same bitstream for two target rates"
    )
