"""harness.config: fixtures/suite.toml loads into SuiteConfig; a broken file raises ConfigError naming the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from harness.config import SuiteConfig, load_suite_config
from harness.errors import ConfigError, HarnessError
from harness.sandbox import Limits
from tests.conftest import REPO

SUITE = REPO / "fixtures" / "suite.toml"
SHIPPED = SUITE.read_text(encoding="utf-8")


def test_the_shipped_suite_config_loads_with_its_values():
    config = load_suite_config(SUITE)
    raw = tomllib.loads(SHIPPED)
    assert isinstance(config, SuiteConfig)
    assert config.default_frames == raw["frames"]["default"] == 10
    assert config.rate_mode == "anchor" and config.rate_anchor == "x265"
    assert config.compare_anchors == ("x265", "x264", "svtav1")
    assert config.bd_metrics[0] == "psnr_yuv" and config.bd_method == "pchip"
    assert config.ladder_bpp == (0.02, 0.05, 0.1, 0.2)
    assert config.max_overshoot == pytest.approx(1.10)
    assert config.min_psnr_y == raw["quality"]["min_psnr_y"]
    assert config.max_bd_rate_vs_anchor == raw["gates"]["max_bd_rate_vs_anchor"]
    assert config.heldout_gap_percent == raw["gates"]["heldout_gap_percent"]
    assert config.limits == Limits(
        wall_s=raw["limits"]["wall_s"], cpu_s=raw["limits"]["cpu_s"], memory_bytes=raw["limits"]["memory_bytes"],
        processes=raw["limits"]["processes"], file_bytes=raw["limits"]["file_bytes"],
        tmp_bytes=raw["limits"]["tmp_bytes"],
    )
    assert config.max_candidate_bytes == raw["limits"]["max_candidate_bytes"]
    assert config.peak_rss_bytes == raw["budget"]["peak_rss_bytes"]
    budget = raw["budget"]
    assert (config.encode_cpu_s_per_mpixel, config.decode_cpu_s_per_mpixel, config.import_allowance_s) == (
        budget["encode_cpu_s_per_mpixel"], budget["decode_cpu_s_per_mpixel"], budget["import_allowance_s"]
    )


def test_to_json_says_what_the_report_records():
    data = load_suite_config(SUITE).to_json()
    assert data["ladder_bpp"] == [0.02, 0.05, 0.1, 0.2] and data["compare_anchors"] == ["x265", "x264", "svtav1"]
    assert data["budget"]["import_allowance_s"] == 60.0 and data["limits"]["cpu_s"] == 600
    assert data["max_candidate_bytes"] == 16777216


def test_the_ladder_is_sorted_low_to_high(tmp_path):
    path = _write(tmp_path, SHIPPED.replace("ladder_bpp = [0.02, 0.05, 0.1, 0.2]", "ladder_bpp = [0.2, 0.02, 0.1]"))
    assert load_suite_config(path).ladder_bpp == (0.02, 0.1, 0.2)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _without(text: str, section: str, key: str) -> str:
    """The file with `key = ...` removed from `[section]` only."""
    head, _, rest = text.partition(f"[{section}]\n")
    assert rest, section
    body, sep, tail = rest.partition("\n[")
    changed, n = re.subn(rf"(?m)^{re.escape(key)} = .*\n", "", body)
    assert n == 1, (section, key)
    return f"{head}[{section}]\n{changed}{sep}{tail}"


def _replace(text: str, section: str, key: str, value: str) -> str:
    head, _, rest = text.partition(f"[{section}]\n")
    body, sep, tail = rest.partition("\n[")
    changed, n = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", body)
    assert n == 1, (section, key)
    return f"{head}[{section}]\n{changed}{sep}{tail}"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("frames", "default"), ("rate", "mode"), ("rate", "anchor"), ("rate", "ladder_bpp"),
        ("rate", "max_overshoot"), ("quality", "min_psnr_y"), ("limits", "wall_s"), ("limits", "tmp_bytes"),
        ("limits", "max_candidate_bytes"), ("budget", "peak_rss_bytes"), ("anchors", "compare"),
        ("bd", "metrics"), ("bd", "method"), ("gates", "max_bd_rate_vs_anchor"), ("gates", "heldout_gap_percent"),
    ],
)
def test_a_missing_key_is_named(tmp_path, section, key):
    path = _write(tmp_path, _without(SHIPPED, section, key))
    with pytest.raises(ConfigError) as info:
        load_suite_config(path)
    assert f"missing `{section}.{key}`" in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_section_is_named(tmp_path):
    renamed = SHIPPED.replace("[budget]", "[budget_renamed]")
    with pytest.raises(ConfigError, match=r"unknown section \[budget_renamed\]; did you mean \[budget\]\?"):
        load_suite_config(_write(tmp_path, renamed))
    start = SHIPPED.index("[budget]")
    end = SHIPPED.index("\n[", start + 1)
    with pytest.raises(ConfigError, match=r"missing `budget\.encode_cpu_s_per_mpixel`"):
        load_suite_config(_write(tmp_path, SHIPPED[:start] + SHIPPED[end + 1 :]))


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("frames", "default", '"10"', r"`frames\.default` = '10' should be int"),
        ("frames", "default", "10.5", r"`frames\.default` = 10\.5 should be int"),
        ("limits", "cpu_s", "true", r"`limits\.cpu_s` = True should be int"),
        ("limits", "wall_s", '"300"', r"`limits\.wall_s` = '300' should be"),
        ("quality", "min_psnr_y", "false", r"`quality\.min_psnr_y` = False should be"),
        ("rate", "mode", "1", r"`rate\.mode` = 1 should be str"),
        ("anchors", "compare", '"x265"', r"`anchors\.compare` = 'x265' should be list"),
        ("budget", "peak_rss_bytes", "4.0e9", r"`budget\.peak_rss_bytes` = 4000000000\.0 should be int"),
    ],
)
def test_a_mistyped_key_is_named_with_its_value(tmp_path, section, key, value, expected):
    path = _write(tmp_path, _replace(SHIPPED, section, key, value))
    with pytest.raises(ConfigError, match=expected):
        load_suite_config(path)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("rate", "mode", '"crf"', r"rate\.mode = 'crf'; use 'anchor' or 'ladder'"),
        ("rate", "anchor", '"vvenc"', r"rate\.anchor 'vvenc' must be one of anchors\.compare"),
        ("rate", "ladder_bpp", "[]", r"rate\.ladder_bpp must be a non-empty list of positive numbers"),
        ("rate", "ladder_bpp", "[0.1, -0.2]", r"rate\.ladder_bpp must be a non-empty list"),
        ("rate", "ladder_bpp", '[0.1, "x"]', r"rate\.ladder_bpp must be a non-empty list"),
        ("bd", "metrics", "[]", r"bd\.metrics must list metric keys"),
        ("bd", "metrics", "[1]", r"bd\.metrics must list metric keys"),
    ],
)
def test_a_bad_value_is_named(tmp_path, section, key, value, expected):
    with pytest.raises(ConfigError, match=expected):
        load_suite_config(_write(tmp_path, _replace(SHIPPED, section, key, value)))


def test_a_non_positive_limit_is_refused(tmp_path):
    with pytest.raises(HarnessError, match="limit processes must be positive, got 0"):
        load_suite_config(_write(tmp_path, _replace(SHIPPED, "limits", "processes", "0")))


@pytest.mark.parametrize(
    ("section", "line"),
    [("gates", "max_bd_rate_vs_x264 = 5.0"), ("rate", "max_overshot = 1.5"), ("quality", "min_ssim_y = 0.9")],
)
def test_an_unknown_key_is_named(tmp_path, section, line):
    text = SHIPPED.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    key = f"{section}.{line.split(' =')[0]}"
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_suite_config(_write(tmp_path, text))


def test_unreadable_and_malformed_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the suite config .*absent.toml"):
        load_suite_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="cannot read the suite config"):
        load_suite_config(_write(tmp_path, "[rate\nmode = "))
    assert issubclass(ConfigError, HarnessError)
