"""The adoption thresholds (fixtures/adoption.toml), their checking, and the names shared by the package."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import ConfigError, HarnessError
from harness.gates import GATE_NAMES
from harness.render.view import METRIC_LABELS, metric_label  # one table of metric names

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LEDGER",
    "METRIC_LABELS",
    "ROOT",
    "AdoptionConfig",
    "AdoptionError",
    "Decision",
    "default_config_path",
    "load_adoption_config",
    "metric_label",
    "parse_adoption_config",
]

ROOT = Path(__file__).resolve().parents[2]  # the repository (harness/adoption/config.py)
DEFAULT_CONFIG = Path("fixtures") / "adoption.toml"
DEFAULT_LEDGER = Path("ledger.jsonl")

Decision = Literal["adopted", "rejected", "failed"]


class AdoptionError(HarnessError):
    """A candidate cannot be adopted from this report (stale, unknown, failed, not comparable)."""


@dataclass(frozen=True, kw_only=True)
class AdoptionConfig:
    """The thresholds of fixtures/adoption.toml (percent BD-rate, negative = fewer bits)."""

    primary_metric: str = "psnr_yuv"
    margin_percent: float = 1.0
    max_clip_regression_percent: float = 5.0
    secondary_metrics: tuple[tuple[str, ...], ...] = (("ssim_y",), ("vmaf_neg", "vmaf"))
    max_secondary_regression_percent: float = 2.0
    require_all_clips_comparable: bool = True
    require_secondary: bool = True
    required_gates: tuple[str, ...] = GATE_NAMES
    identical_score_decimals: int = 3
    bootstrap_anchor: str = "x265"
    # Adoption judges held-out clips too (a candidate could carry the public ones inside itself);
    # False only by an explicit waiver (`adopt --waive-heldout`), recorded in the ledger entry.
    require_heldout: bool = True
    # A cap on decode complexity: the candidate's decode CPU time per megapixel-frame over x265's
    # decoder's, measured in the run (harness.complexity); None = no cap (the default).
    max_decode_ratio: float | None = None
    source: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "primary_metric": self.primary_metric,
            "margin_percent": self.margin_percent,
            "max_clip_regression_percent": self.max_clip_regression_percent,
            "secondary_metrics": [list(g) for g in self.secondary_metrics],
            "max_secondary_regression_percent": self.max_secondary_regression_percent,
            "require_all_clips_comparable": self.require_all_clips_comparable,
            "require_secondary": self.require_secondary,
            "required_gates": list(self.required_gates),
            "identical_score_decimals": self.identical_score_decimals,
            "bootstrap_anchor": self.bootstrap_anchor,
            "require_heldout": self.require_heldout,
            "max_decode_ratio": self.max_decode_ratio,
        }


_KEYS = {
    "adoption": {
        "primary_metric",
        "margin_percent",
        "max_clip_regression_percent",
        "secondary_metrics",
        "max_secondary_regression_percent",
        "require_all_clips_comparable",
        "require_secondary",
        "required_gates",
        "required_tests",  # before 2026-12-05: test function names, read as the gates they project
        "identical_score_decimals",
    },
    "bootstrap": {"anchor"},
    "heldout": {"required"},
    "complexity": {"max_decode_ratio"},
}


def load_adoption_config(path: str | os.PathLike[str]) -> AdoptionConfig:
    """Read and check fixtures/adoption.toml; an unknown, missing or mistyped key raises ConfigError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the adoption config {path}: {err}") from err
    return _config_from(data, str(path))


def parse_adoption_config(text: str, where: str = "adoption config") -> AdoptionConfig:
    """The same as `load_adoption_config` from TOML text (e.g. a file of another git revision)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where} is not valid TOML: {err}") from err
    return _config_from(data, where)


def _config_from(data: dict, where: str) -> AdoptionConfig:
    unknown = [f"[{t}]" for t in data if t not in _KEYS]
    unknown += [f"{t}.{k}" for t, keys in _KEYS.items() for k in data.get(t, {}) if k not in keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    a = data.get("adoption")
    b = data.get("bootstrap", {})
    h = data.get("heldout", {})
    cx = data.get("complexity", {})
    if not isinstance(a, dict):
        raise ConfigError(f"{where}: missing the [adoption] table")

    def get(table: dict, name: str, kind, full: str):
        if name not in table:
            raise ConfigError(f"{where}: missing `{full}`")
        value = table[name]
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{where}: `{full}` = {value!r} should be {getattr(kind, '__name__', kind)}")
        return value

    num = (int, float)
    margin = float(get(a, "margin_percent", num, "adoption.margin_percent"))
    clip_reg = float(get(a, "max_clip_regression_percent", num, "adoption.max_clip_regression_percent"))
    sec_reg = float(
        get(a, "max_secondary_regression_percent", num, "adoption.max_secondary_regression_percent")
    )
    for name, value in (
        ("margin_percent", margin),
        ("max_clip_regression_percent", clip_reg),
        ("max_secondary_regression_percent", sec_reg),
    ):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}: adoption.{name} = {value} must be a finite number >= 0")
    groups = get(a, "secondary_metrics", list, "adoption.secondary_metrics")
    secondary = []
    for group in groups:
        alts = [group] if isinstance(group, str) else group
        if not isinstance(alts, list) or not alts or not all(isinstance(m, str) and m for m in alts):
            raise ConfigError(
                f"{where}: adoption.secondary_metrics entries are metric names or lists of alternatives, got {group!r}"
            )
        secondary.append(tuple(alts))
    required = _required_gates(a, where)
    cap = float(get(cx, "max_decode_ratio", (int, float), "complexity.max_decode_ratio")) if "max_decode_ratio" in cx else 0.0
    if not math.isfinite(cap) or cap < 0:
        raise ConfigError(f"{where}: complexity.max_decode_ratio = {cap} must be a finite number >= 0 (0: no cap)")
    decimals = int(get(a, "identical_score_decimals", int, "adoption.identical_score_decimals"))
    if not 0 <= decimals <= 9:
        raise ConfigError(f"{where}: adoption.identical_score_decimals = {decimals} must be 0..9")
    return AdoptionConfig(
        primary_metric=get(a, "primary_metric", str, "adoption.primary_metric"),
        margin_percent=margin,
        max_clip_regression_percent=clip_reg,
        secondary_metrics=tuple(secondary),
        max_secondary_regression_percent=sec_reg,
        require_all_clips_comparable=get(
            a, "require_all_clips_comparable", bool, "adoption.require_all_clips_comparable"
        ),
        require_secondary=get(a, "require_secondary", bool, "adoption.require_secondary"),
        required_gates=required,
        identical_score_decimals=decimals,
        bootstrap_anchor=get(b, "anchor", str, "bootstrap.anchor") if "anchor" in b else "x265",
        require_heldout=get(h, "required", bool, "heldout.required") if "required" in h else True,
        max_decode_ratio=cap or None,
        source=where,
    )


def _required_gates(a: dict, where: str) -> tuple[str, ...]:
    """adoption.required_gates (harness.gates names); an older config's required_tests read as gates."""
    if "required_gates" in a and "required_tests" in a:
        raise ConfigError(f"{where}: give adoption.required_gates or the older required_tests, not both")
    if "required_tests" in a:
        names = a["required_tests"]
        if not isinstance(names, list) or not all(isinstance(t, str) and t.startswith("test_") for t in names):
            raise ConfigError(f"{where}: adoption.required_tests must list test function names")
        names = [t.removeprefix("test_") for t in names]
    else:
        names = a.get("required_gates", list(GATE_NAMES))
        if not isinstance(names, list):
            raise ConfigError(f"{where}: adoption.required_gates must be a list of gate names")
    unknown = [n for n in names if n not in GATE_NAMES]
    if unknown:
        raise ConfigError(f"{where}: unknown gate(s) {unknown} in adoption.required_gates; known: {', '.join(GATE_NAMES)}")
    return tuple(names)


def default_config_path(root: str | os.PathLike[str] | None = None) -> Path:
    """fixtures/adoption.toml under `root` (or the working directory), else beside this package."""
    here = Path(root or ".") / DEFAULT_CONFIG
    return here if here.exists() else ROOT / DEFAULT_CONFIG
