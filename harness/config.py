"""The suite's thresholds and limits, read from fixtures/suite.toml (data, not code)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.runner import CallBudget
from harness.sandbox import Limits

__all__ = ["Profile", "SuiteConfig", "load_suite_config"]


@dataclass(frozen=True)
class Profile:
    """A named run of the suite ([profiles.NAME]): its clip set and frames per clip (None: [frames] default)."""

    name: str
    description: str
    clips: str
    frames: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "clips": self.clips, "frames": self.frames}


@dataclass(frozen=True, kw_only=True)
class SuiteConfig:
    """Rate ladder (bits per luma pixel per frame), rate and quality gates, limits and budgets."""

    default_frames: int
    rate_mode: str
    rate_anchor: str
    compare_anchors: tuple[str, ...]
    bd_metrics: tuple[str, ...]
    bd_method: str
    max_bd_rate_vs_anchor: float
    heldout_gap_percent: float
    ladder_bpp: tuple[float, ...]
    max_overshoot: float
    min_psnr_y: float  # the absolute floor (dB, mean PSNR-Y over frames)
    # The floor relative to the rate anchor at the same rate point (dB below it), and the least
    # mean luma correlation with the source of a decode that reproduces it (fixtures/suite.toml).
    max_psnr_y_below_anchor_db: float = 28.0
    min_luma_correlation: float = 0.6
    limits: Limits
    # [budget]: CPU seconds of the encode/decode call per megapixel-frame of the clip, the
    # wall-clock allowance for importing the candidate, and peak resident memory per call.
    encode_cpu_s_per_mpixel: float
    decode_cpu_s_per_mpixel: float
    import_allowance_s: float
    peak_rss_bytes: int
    max_candidate_bytes: int
    # A result this far ahead of the rate anchor is flagged "too good to be true" in every report.
    too_good_bd_rate_percent: float = -50.0
    too_good_bits_fraction: float = 0.25
    # [profiles]: `--profile NAME` picks a clip set and frames; `default_profile` when none is given,
    # `decision_profile` for the gate and adoption decisions.
    profiles: tuple[Profile, ...] = ()
    default_profile: str = "quick"
    decision_profile: str = "standard"

    def profile(self, name: str | None) -> Profile:
        """The profile `name` (None: the default one); an unknown name raises ConfigError listing the known."""
        name = name or self.default_profile
        found = {p.name: p for p in self.profiles}
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise ConfigError(f"unknown profile {name!r}; fixtures/suite.toml [profiles] defines: {known}")
        return found[name]

    def call_cpu_budget_s(self, stage: str, mpixel_frames: float) -> float:
        """The CPU seconds an encode or decode call of a clip of `mpixel_frames` may use."""
        rate = self.encode_cpu_s_per_mpixel if stage == "encode" else self.decode_cpu_s_per_mpixel
        return rate * mpixel_frames

    def call_budget(self) -> CallBudget:
        """What the runner scales each call's kill limits with (never below [limits])."""
        return CallBudget(self.encode_cpu_s_per_mpixel, self.decode_cpu_s_per_mpixel, self.import_allowance_s)

    def limits_text(self) -> str:
        """The limits in words, as the evolve prompt and the README state them (the gates' own figures)."""
        example = 1280 * 720 * 10 / 1e6
        return (
            f"Each encode or decode call may use {self.encode_cpu_s_per_mpixel:g} (encode) or "
            f"{self.decode_cpu_s_per_mpixel:g} (decode) CPU seconds per megapixel-frame of the clip "
            f"(width x height x frames / 1e6; every thread and child process counted; e.g. "
            f"{self.call_cpu_budget_s('encode', example):.0f} s to encode and "
            f"{self.call_cpu_budget_s('decode', example):.0f} s to decode 10 frames of 1280x720), and "
            f"{self.peak_rss_bytes / 2**30:.1f} GiB of resident memory. Importing the module is timed "
            f"apart from the call and may take {self.import_allowance_s:g} s. A call is killed after "
            f"{self.limits.wall_s:g} s of wall time, {self.limits.cpu_s:g} s of CPU or "
            f"{self.limits.memory_bytes / 2**30:.1f} GiB of address space (the time limits rise with a long "
            "clip's budget, so a call within it is never killed)."
        )

    def to_json(self) -> dict[str, object]:
        return {
            "default_frames": self.default_frames,
            "rate_mode": self.rate_mode,
            "rate_anchor": self.rate_anchor,
            "compare_anchors": list(self.compare_anchors),
            "bd_metrics": list(self.bd_metrics),
            "bd_method": self.bd_method,
            "max_bd_rate_vs_anchor": self.max_bd_rate_vs_anchor,
            "heldout_gap_percent": self.heldout_gap_percent,
            "ladder_bpp": list(self.ladder_bpp),
            "max_overshoot": self.max_overshoot,
            "min_psnr_y": self.min_psnr_y,
            "max_psnr_y_below_anchor_db": self.max_psnr_y_below_anchor_db,
            "min_luma_correlation": self.min_luma_correlation,
            "limits": self.limits.to_json(),
            "budget": {
                "encode_cpu_s_per_mpixel": self.encode_cpu_s_per_mpixel,
                "decode_cpu_s_per_mpixel": self.decode_cpu_s_per_mpixel,
                "import_allowance_s": self.import_allowance_s,
                "peak_rss_bytes": self.peak_rss_bytes,
            },
            "max_candidate_bytes": self.max_candidate_bytes,
            "flags": {
                "too_good_bd_rate_percent": self.too_good_bd_rate_percent,
                "too_good_bits_fraction": self.too_good_bits_fraction,
            },
            "profiles": {p.name: p.to_json() for p in self.profiles},
        }


def _get(data: dict, path: str, kind: type | tuple[type, ...], source: Path):
    node: object = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{source}: missing `{path}`")
        node = node[part]
    if not isinstance(node, kind) or isinstance(node, bool):
        raise ConfigError(f"{source}: `{path}` = {node!r} should be {getattr(kind, '__name__', kind)}")
    return node


def _positive(data: dict, path: str, source: Path, *, kind: type | tuple[type, ...] = (int, float)):
    """A budget: a finite number above zero (a zero or negative budget fails every candidate)."""
    value = _get(data, path, kind, source)
    if not 0 < value < float("inf"):
        raise ConfigError(f"{source}: `{path}` = {value!r} must be a positive number")
    return value


_KNOWN = {
    "frames": {"default"},
    "rate": {"mode", "anchor", "ladder_bpp", "max_overshoot"},
    "quality": {"min_psnr_y", "max_psnr_y_below_anchor_db", "min_luma_correlation"},
    "limits": {"wall_s", "cpu_s", "memory_bytes", "processes", "file_bytes", "tmp_bytes", "max_candidate_bytes"},
    "budget": {"encode_cpu_s_per_mpixel", "decode_cpu_s_per_mpixel", "import_allowance_s", "peak_rss_bytes"},
    "anchors": {"compare"},
    "bd": {"metrics", "method"},
    "gates": {"max_bd_rate_vs_anchor", "heldout_gap_percent"},
    "flags": {"too_good_bd_rate_percent", "too_good_bits_fraction"},
    "profiles": {"default", "decisions"},  # and a [profiles.NAME] table per profile (_PROFILE_KEYS)
}
_PROFILE_KEYS = {"description", "clips", "frames"}


def _load_profiles(data: dict, source: Path) -> tuple[tuple[Profile, ...], str, str]:
    """([profiles.NAME] tables, the default profile's name, the decisions' profile's name)."""
    section = data.get("profiles")
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: missing [profiles] (e.g. [profiles.quick] and [profiles.standard])")
    profiles = []
    for name, table in section.items():
        if not isinstance(table, dict):
            continue  # `default` / `decisions`: checked below
        unknown = set(table) - _PROFILE_KEYS
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {sorted(unknown)} in [profiles.{name}]; known: {', '.join(sorted(_PROFILE_KEYS))}"
            )
        frames = table.get("frames")
        if frames is not None and (type(frames) is not int or frames < 1):
            raise ConfigError(f"{source}: `profiles.{name}.frames` = {frames!r} must be a whole number >= 1")
        clips = _get(data, f"profiles.{name}.clips", str, source)
        profiles.append(Profile(name, str(table.get("description", "")), clips, frames))
    names = [p.name for p in profiles]
    picks = []
    for key in ("default", "decisions"):
        pick = _get(data, f"profiles.{key}", str, source)
        if pick not in names:
            raise ConfigError(f"{source}: `profiles.{key}` = {pick!r} is not one of the profiles {names}")
        picks.append(pick)
    return tuple(profiles), picks[0], picks[1]


def _unknown_keys(data: dict, source: Path) -> None:
    """A misspelt threshold would be silently unused: name every key this harness does not read."""
    import difflib

    for section, value in data.items():
        if section not in _KNOWN:
            hint = difflib.get_close_matches(section, _KNOWN, 1)
            raise ConfigError(
                f"{source}: unknown section [{section}]" + (f"; did you mean [{hint[0]}]?" if hint else "")
            )
        for key in value if isinstance(value, dict) else ():
            if section == "profiles" and isinstance(value[key], dict):
                continue  # a [profiles.NAME] table, checked by _load_profiles
            if key not in _KNOWN[section]:
                hint = difflib.get_close_matches(key, _KNOWN[section], 1)
                raise ConfigError(
                    f"{source}: unknown key `{section}.{key}`"
                    + (f"; did you mean `{section}.{hint[0]}`?" if hint else f"; known: {', '.join(sorted(_KNOWN[section]))}")
                )


def load_suite_config(path: Path) -> SuiteConfig:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the suite config {path}: {err}") from err
    _unknown_keys(data, path)
    num = (int, float)
    ladder = _get(data, "rate.ladder_bpp", list, path)
    if not ladder or not all(isinstance(x, num) and x > 0 for x in ladder):
        raise ConfigError(f"{path}: rate.ladder_bpp must be a non-empty list of positive numbers")
    limits = Limits(
        wall_s=float(_get(data, "limits.wall_s", num, path)),
        cpu_s=int(_get(data, "limits.cpu_s", int, path)),
        memory_bytes=int(_get(data, "limits.memory_bytes", int, path)),
        processes=int(_get(data, "limits.processes", int, path)),
        file_bytes=int(_get(data, "limits.file_bytes", int, path)),
        tmp_bytes=int(_get(data, "limits.tmp_bytes", int, path)),
    )
    mode = _get(data, "rate.mode", str, path)
    if mode not in ("anchor", "ladder"):
        raise ConfigError(f"{path}: rate.mode = {mode!r}; use 'anchor' or 'ladder'")
    compare = _get(data, "anchors.compare", list, path)
    anchor = _get(data, "rate.anchor", str, path)
    if anchor not in compare:
        raise ConfigError(f"{path}: rate.anchor {anchor!r} must be one of anchors.compare {compare}")
    bd_metrics = _get(data, "bd.metrics", list, path)
    if not bd_metrics or not all(isinstance(m, str) for m in bd_metrics):
        raise ConfigError(f"{path}: bd.metrics must list metric keys such as 'psnr_yuv'")
    profiles, default_profile, decision_profile = _load_profiles(data, path)
    return SuiteConfig(
        default_frames=int(_get(data, "frames.default", int, path)),
        rate_mode=mode,
        rate_anchor=anchor,
        compare_anchors=tuple(compare),
        bd_metrics=tuple(bd_metrics),
        bd_method=_get(data, "bd.method", str, path),
        max_bd_rate_vs_anchor=float(_get(data, "gates.max_bd_rate_vs_anchor", num, path)),
        heldout_gap_percent=float(_get(data, "gates.heldout_gap_percent", num, path)),
        ladder_bpp=tuple(float(x) for x in sorted(ladder)),
        max_overshoot=float(_get(data, "rate.max_overshoot", num, path)),
        min_psnr_y=float(_get(data, "quality.min_psnr_y", num, path)),
        max_psnr_y_below_anchor_db=float(_get(data, "quality.max_psnr_y_below_anchor_db", num, path)),
        min_luma_correlation=float(_get(data, "quality.min_luma_correlation", num, path)),
        limits=limits,
        encode_cpu_s_per_mpixel=float(_positive(data, "budget.encode_cpu_s_per_mpixel", path)),
        decode_cpu_s_per_mpixel=float(_positive(data, "budget.decode_cpu_s_per_mpixel", path)),
        import_allowance_s=float(_positive(data, "budget.import_allowance_s", path)),
        peak_rss_bytes=int(_positive(data, "budget.peak_rss_bytes", path, kind=int)),
        max_candidate_bytes=int(_get(data, "limits.max_candidate_bytes", int, path)),
        too_good_bd_rate_percent=float(_get(data, "flags.too_good_bd_rate_percent", num, path)),
        too_good_bits_fraction=float(_get(data, "flags.too_good_bits_fraction", num, path)),
        profiles=profiles,
        default_profile=default_profile,
        decision_profile=decision_profile,
    )
