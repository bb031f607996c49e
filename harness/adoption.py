"""Adoption: which candidate of a benchmark report becomes the champion, recorded in the ledger.

"Adoption means passing the suite": a candidate is adoptable when every correctness test of the
report passed and its BD-rate against the current champion (the last adopted ledger entry) beats
the margin of fixtures/adoption.toml on the primary metric, with no clip and no secondary metric
regressing beyond its bound. With no champion yet, the passing candidate with the best BD-rate
against the rate anchor (x265) becomes the first champion: the best reference candidate.

- `load_adoption_config(path)` reads the thresholds.
- `verdict(doc, name, config=, ledger=)` judges one candidate of a report document; `decide_all`
  judges every candidate. Nothing is run: the numbers come from the report.
- `fingerprint(doc, name)`: sha256 over the sorted bitstream hashes of the candidate's rate
  points. A fingerprint (or rounded scores on the same clips) equal to an earlier ledger entry's
  flags the candidate: identical results are the signature of a harness that ran the same code
  again (the seeds' fixed baseline, 22 identical "experiments").
- `adopt(report, name, ledger=, candidates_dir=, config=)` checks that the report is current (the
  candidate's source hash on disk equals the report's) and appends an "adopted" entry, or a
  "rejected" one when the candidate passed but did not beat the champion.

BD-rates are percent; negative = fewer bits at equal quality = better.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.bdrate import BDRateError, bd_rate, describe
from harness.candidate import discover_candidates
from harness.errors import ConfigError, HarnessError
from harness.ledger import Ledger, LedgerEntry

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LEDGER",
    "AdoptionConfig",
    "AdoptionError",
    "Verdict",
    "adopt",
    "best_candidate",
    "decide_all",
    "fingerprint",
    "load_adoption_config",
    "metric_label",
    "parse_adoption_config",
    "register",
    "verdict",
]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = Path("fixtures") / "adoption.toml"
DEFAULT_LEDGER = Path("ledger.jsonl")

METRIC_LABELS = {
    "psnr_y": "PSNR-Y",
    "psnr_u": "PSNR-U",
    "psnr_v": "PSNR-V",
    "psnr_yuv": "PSNR-YUV",
    "ssim_y": "SSIM-Y",
    "ms_ssim_y": "MS-SSIM-Y",
    "vmaf": "VMAF",
    "vmaf_neg": "VMAF NEG",
}

Decision = Literal["adopted", "rejected", "failed"]


class AdoptionError(HarnessError):
    """A candidate cannot be adopted from this report (stale, unknown, failed, not comparable)."""


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


# ----------------------------------------------------------------------------- configuration


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
    required_tests: tuple[str, ...] = (
        "test_contract",
        "test_round_trip",
        "test_rate",
        "test_quality",
        "test_limits",
        "test_determinism",
        "test_bd_rate",
    )
    identical_score_decimals: int = 3
    bootstrap_anchor: str = "x265"
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
            "required_tests": list(self.required_tests),
            "identical_score_decimals": self.identical_score_decimals,
            "bootstrap_anchor": self.bootstrap_anchor,
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
        "required_tests",
        "identical_score_decimals",
    },
    "bootstrap": {"anchor"},
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
    required = get(a, "required_tests", list, "adoption.required_tests")
    if not all(isinstance(t, str) and t for t in required):
        raise ConfigError(f"{where}: adoption.required_tests must list test function names")
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
        required_tests=tuple(required),
        identical_score_decimals=decimals,
        bootstrap_anchor=get(b, "anchor", str, "bootstrap.anchor") if "anchor" in b else "x265",
        source=where,
    )


def default_config_path(root: str | os.PathLike[str] | None = None) -> Path:
    """fixtures/adoption.toml under `root` (or the working directory), else beside this package."""
    here = Path(root or ".") / DEFAULT_CONFIG
    return here if here.exists() else ROOT / DEFAULT_CONFIG


# ----------------------------------------------------------------------------- reading a report


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _first_line(text: object, limit: int = 240) -> str:
    line = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    for prefix in ("Failed: ", "AssertionError: "):  # pytest's wording around the test's own message
        line = line.removeprefix(prefix)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _test_kind(nodeid: str) -> str:
    return nodeid.split("::")[-1].split("[")[0]


def _short_id(nodeid: str) -> str:
    return nodeid.split("::")[-1]


def fingerprint(doc: Mapping, name: str) -> str | None:
    """sha256 over the sorted bitstream sha256s of the candidate's rate points (None without any)."""
    cand = _dict(_dict(doc.get("candidates")).get(name))
    hashes = sorted(
        h
        for point in _dict(cand.get("points")).values()
        if isinstance(h := _dict(_dict(point).get("measurement")).get("bitstream_sha256"), str)
    )
    if not hashes:
        return None
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def _basis(doc: Mapping) -> dict[str, object]:
    """What makes scores of two reports comparable: the clips (by content hash) and the frames."""
    settings = _dict(doc.get("settings"))
    return {
        "clip_set": settings.get("clip_set"),
        "frames": settings.get("frames"),
        "clips": {k: _dict(v).get("sha256") for k, v in sorted(_dict(doc.get("clips")).items())},
    }


def _suite(doc: Mapping) -> dict:
    return _dict(_dict(doc.get("settings")).get("suite"))


def _curve(doc: Mapping, name: str, clip: str, metric: str) -> list[tuple[float, float]]:
    points = []
    for point in _dict(_dict(_dict(doc.get("candidates")).get(name)).get("points")).values():
        point = _dict(point)
        if point.get("clip") != clip or point.get("failure"):
            continue
        m = _dict(point.get("measurement"))
        rate, quality = _num(m.get("bitrate_bps")), _num(_dict(m.get("metrics")).get(metric))
        if rate is not None and quality is not None:
            points.append((rate, quality))
    return sorted(points)


def _overall(per_clip: Mapping[str, Mapping[str, Mapping]]) -> dict[str, dict]:
    """Mean over comparable clips per metric, the others listed (as harness.report.overall_bd)."""
    out: dict[str, dict] = {}
    for clip, metrics in sorted(per_clip.items()):
        for metric, result in _dict(metrics).items():
            slot = out.setdefault(metric, {"bd_rate": None, "clips": [], "excluded": {}, "values": {}})
            result = _dict(result)
            if result.get("comparable") and _num(result.get("bd_rate")) is not None:
                slot["values"][clip] = result["bd_rate"]
                slot["clips"].append(clip)
            else:
                slot["excluded"][clip] = result.get("warning") or "not comparable"
    for slot in out.values():
        values = slot["values"]
        slot["bd_rate"] = sum(values.values()) / len(values) if values else None
        slot["worst_clip"] = max(values, key=values.get) if values else None
    return out


def _bd_vs_from_points(doc: Mapping, name: str, champion: str) -> dict | None:
    """BD-rate of `name` against `champion` from both candidates' points in the report."""
    suite = _suite(doc)
    metrics = [m for m in suite.get("bd_metrics") or [] if isinstance(m, str)]
    method = suite.get("bd_method") or "pchip"
    clips = list(_dict(doc.get("clips"))) or sorted(
        {
            _dict(p).get("clip")
            for p in _dict(_dict(_dict(doc.get("candidates")).get(name)).get("points")).values()
        }
        - {None}
    )
    if not metrics or not clips:
        return None
    per_clip: dict[str, dict] = {}
    for clip in clips:
        per_clip[clip] = {}
        for metric in metrics:
            ref, test = _curve(doc, champion, clip, metric), _curve(doc, name, clip, metric)
            if not ref or not test:
                continue
            try:
                per_clip[clip][metric] = bd_rate(ref, test, method=method).to_json()
            except BDRateError as err:
                per_clip[clip][metric] = {"bd_rate": None, "comparable": False, "warning": str(err)}
    return {
        "champion": champion,
        "per_clip": per_clip,
        "overall": _overall(per_clip),
        "computed_by": "adoption",
    }


# ----------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """The decision about one candidate of a report.

    decision: "adopted" (would be / was adopted), "rejected" (passed, did not beat the champion, or
    flagged), "failed" (a correctness test failed or the report is incomplete for it).
    reasons[0] is one line for a pull-request comment. `judged` is False when the report cannot
    support a decision (no comparison with the ledger's champion): such a verdict is never recorded.
    """

    candidate: str
    decision: Decision
    adoptable: bool
    reasons: list[str]
    scores: dict[str, object]
    identical_to: str | None = None
    fingerprint: str | None = None
    source_sha256: str | None = None
    champion: str | None = None
    judged: bool = True
    bootstrap: bool = False

    @property
    def reason(self) -> str:
        return self.reasons[0] if self.reasons else ""

    def to_json(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "decision": self.decision,
            "adoptable": self.adoptable,
            "reasons": list(self.reasons),
            "scores": self.scores,
            "identical_to": self.identical_to,
            "fingerprint": self.fingerprint,
            "source_sha256": self.source_sha256,
            "champion": self.champion,
            "judged": self.judged,
            "bootstrap": self.bootstrap,
        }


def _entries(ledger: Ledger | Sequence[LedgerEntry] | None) -> list[LedgerEntry]:
    if ledger is None:
        return []
    if isinstance(ledger, Ledger):
        return ledger.entries()
    return list(ledger)


def _champion(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    adopted = [e for e in entries if e.decision == "adopted"]
    return adopted[-1] if adopted else None


def _correctness(doc: Mapping, name: str, config: AdoptionConfig) -> str | None:
    """Why the candidate did not pass (first failing test and its reason), or None."""
    cand = _dict(_dict(doc.get("candidates")).get(name))
    tests = _dict(cand.get("tests"))
    if not tests:
        return f"no test results for {name} in the report"
    bad = [(nodeid, _dict(t)) for nodeid, t in tests.items() if _dict(t).get("outcome") != "passed"]
    if bad:
        failed = [b for b in bad if b[1].get("outcome") == "failed"] or bad
        nodeid, test = failed[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        outcome = test.get("outcome") or "did not pass"
        why = _first_line(test.get("reason")) or "no reason recorded"
        return f"{_short_id(nodeid)} {outcome}: {why}{more}"
    if cand.get("passed_all") is False:
        return f"{name} did not pass every test (passed_all is false)"
    kinds = {_test_kind(n) for n in tests}
    missing = [k for k in config.required_tests if k not in kinds]
    if missing:
        return f"incomplete run: no {', '.join(missing)} result for {name} (was the suite filtered with -k?)"
    clips = list(_dict(doc.get("clips")))
    no_bd = [c for c in clips if c not in _dict(cand.get("bd"))]
    if no_bd:
        return f"incomplete run: no BD-rate for {name} on clip(s) {', '.join(no_bd)}"
    if not isinstance(cand.get("sha256"), str):
        return f"the report does not record {name}'s source hash (test_contract did not run)"
    return None


def _anchor_scores(cand: Mapping) -> dict[str, dict[str, float | None]]:
    return {
        anchor: {metric: _num(_dict(slot).get("bd_rate")) for metric, slot in _dict(metrics).items()}
        for anchor, metrics in _dict(cand.get("bd_overall")).items()
    }


def _rounded(scores: Mapping, decimals: int) -> dict:
    return {
        anchor: {
            m: (round(v, decimals) if v is not None else None) for m, v in sorted(_dict(metrics).items())
        }
        for anchor, metrics in sorted(_dict(scores).items())
    }


def _has_value(scores: Mapping) -> bool:
    return any(v is not None for metrics in scores.values() for v in _dict(metrics).values())


def _identical(
    doc: Mapping,
    name: str,
    fp: str | None,
    scores: Mapping,
    entries: Sequence[LedgerEntry],
    champion: LedgerEntry | None,
    config: AdoptionConfig,
    established: Collection[str] = (),
) -> tuple[str | None, str | None]:
    """(identical_to, reason) against earlier ledger entries, then other candidates of the report."""
    cand = _dict(_dict(doc.get("candidates")).get(name))
    source = cand.get("sha256")
    basis = _basis(doc)
    mine = _rounded(scores, config.identical_score_decimals)
    for entry in reversed(entries):
        if entry.candidate == name and entry.source_sha256 == source:
            continue  # the same source judged again: history, not a copy
        same_bits = fp is not None and entry.fingerprint == fp
        theirs = _dict(entry.scores.get("vs_anchor"))
        same_scores = (
            not same_bits
            and _has_value(scores)
            and _dict(entry.extra).get("basis") == basis
            and _rounded(theirs, config.identical_score_decimals) == mine
        )
        if same_bits or same_scores:
            what = "the same bitstreams" if same_bits else "the same scores on the same clips"
            label = f"{entry.candidate} (seq {entry.seq})"
            return label, f"identical results to {label}: {what} — is this the same codec?"
    if fp is None:
        return None, None
    # Of identical candidates in one report, one stands: the champion, then a candidate the ledger
    # knows, then one of `established` (e.g. unchanged by a pull request), then the first by name.
    champion_name = champion.candidate if champion else None
    in_ledger = {e.candidate for e in entries}

    def rank(n: str) -> tuple[bool, bool, bool, str]:
        return (n != champion_name, n not in in_ledger, n not in established, n)

    for other in sorted(_dict(doc.get("candidates")), key=rank):
        if other == name or fingerprint(doc, other) != fp:
            continue
        if rank(other) < rank(name):
            label = f"{other} (same report)"
            return label, f"identical results to {label}: the same bitstreams — is this the same codec?"
    return None, None


def _primary_anchor_slot(doc: Mapping, name: str, config: AdoptionConfig) -> dict:
    cand = _dict(_dict(doc.get("candidates")).get(name))
    return _dict(_dict(_dict(cand.get("bd_overall")).get(config.bootstrap_anchor)).get(config.primary_metric))


def _bootstrap_rank(
    doc: Mapping, config: AdoptionConfig, entries: Sequence[LedgerEntry], established: Collection[str]
) -> tuple[list[tuple[float, str]], dict[str, str]]:
    """Passing candidates with a comparable BD-rate vs the anchor, best first; and why others are not."""
    ranked, excluded = [], {}
    label = f"{metric_label(config.primary_metric)} vs {config.bootstrap_anchor}"
    for name in _dict(doc.get("candidates")):
        problem = _correctness(doc, name, config)
        if problem:
            excluded[name] = problem
            continue
        cand = _dict(_dict(doc.get("candidates")).get(name))
        _, identical = _identical(
            doc, name, fingerprint(doc, name), _anchor_scores(cand), entries, None, config, established
        )
        if identical:
            excluded[name] = identical
            continue
        slot = _primary_anchor_slot(doc, name, config)
        value = _num(slot.get("bd_rate"))
        if value is None:
            excluded[name] = f"no comparable BD-rate {label}"
        elif slot.get("excluded") and config.require_all_clips_comparable:
            clip, why = next(iter(_dict(slot.get("excluded")).items()))
            excluded[name] = f"BD-rate {label} not comparable on {clip}: {_first_line(why)}"
        else:
            ranked.append((value, name))
    ranked.sort()
    return ranked, excluded


def _secondary(groups: Iterable[Sequence[str]], available: Iterable[str]) -> list[tuple[str, ...] | str]:
    """For each group of alternatives, the first metric available, or the group itself when none is."""
    have = set(available)
    out: list[tuple[str, ...] | str] = []
    for group in groups:
        out.append(next((m for m in group if m in have), tuple(group)))
    return out


def _vs_champion(doc: Mapping, name: str, champion: LedgerEntry) -> tuple[dict | None, str | None]:
    """The report's comparison of `name` with the ledger's champion, or why there is none."""
    cands = _dict(doc.get("candidates"))
    champ = champion.candidate
    label = f"{champ} (seq {champion.seq})"
    champ_doc = _dict(cands.get(champ))
    ran = champ_doc.get("sha256")
    if isinstance(ran, str) and ran != champion.source_sha256:
        return None, (
            f"the report ran a changed {champ} (source {ran[:12]}, adopted as "
            f"{champion.source_sha256[:12]}): re-run pytest benchmarks/ with the adopted version"
        )
    vs = _dict(_dict(cands.get(name)).get("bd_vs_champion"))
    if vs and vs.get("champion") == champ:
        sha = vs.get("champion_sha256") or ran
        if sha is None or sha == champion.source_sha256:
            if "overall" not in vs:
                vs = {**vs, "overall": _overall(_dict(vs.get("per_clip")))}
            return vs, None
    if champ_doc:
        computed = _bd_vs_from_points(doc, name, champ)
        if computed is not None:
            return computed, None
    return None, (
        f"the report has no comparison with the ledger's champion {label}: "
        "re-run pytest benchmarks/ with this ledger (it adds the champion to the run)"
    )


def verdict(
    doc: Mapping,
    name: str,
    *,
    config: AdoptionConfig,
    ledger: Ledger | Sequence[LedgerEntry] | None,
    established: Collection[str] = (),
) -> Verdict:
    """Judge candidate `name` of report `doc` against the ledger's champion (see the module docstring).

    `established`: candidates that stand when another candidate of the same report has identical
    bitstreams (the gate passes those a pull request did not change).
    """
    cands = _dict(doc.get("candidates"))
    if name not in cands:
        raise AdoptionError(
            f"candidate {name!r} is not in the report; it has: {', '.join(sorted(cands)) or '(none)'}"
        )
    entries = _entries(ledger)
    champion = _champion(entries)
    cand = _dict(cands[name])
    fp = fingerprint(doc, name)
    source = cand.get("sha256") if isinstance(cand.get("sha256"), str) else None
    vs_anchor = _anchor_scores(cand)
    primary = config.primary_metric
    plabel = metric_label(primary)
    scores: dict[str, object] = {
        "primary_metric": primary,
        "vs_anchor": vs_anchor,
        "champion": champion.candidate if champion else None,
        "vs_champion": {},
        "vs_champion_per_clip": {},
    }
    identical_to, identical_reason = _identical(
        doc, name, fp, vs_anchor, entries, champion, config, established
    )
    common = {
        "candidate": name,
        "scores": scores,
        "identical_to": identical_to,
        "fingerprint": fp,
        "source_sha256": source,
        "champion": champion.candidate if champion else None,
    }

    problem = _correctness(doc, name, config)
    if problem:
        reasons = [problem] + ([identical_reason] if identical_reason else [])
        return Verdict(decision="failed", adoptable=False, reasons=reasons, **common)

    if champion is None:
        ranked, excluded = _bootstrap_rank(doc, config, entries, established)
        anchor_label = f"{plabel} vs {config.bootstrap_anchor}"
        mine = _num(_primary_anchor_slot(doc, name, config).get("bd_rate"))
        reasons: list[str] = []
        if identical_reason:
            reasons.append(identical_reason)
        if name in excluded and excluded[name] != identical_reason:
            reasons.append(excluded[name])
        elif ranked and ranked[0][1] != name:
            best_value, best = ranked[0]
            reasons.append(
                f"not the best reference candidate for the first champion: {best} has BD-rate {anchor_label} "
                f"{describe(best_value)}, {name} {describe(mine)}"
            )
        if reasons:
            return Verdict(decision="rejected", adoptable=False, reasons=reasons, bootstrap=True, **common)
        plural = "s" if len(ranked) > 1 else ""
        first = (
            f"first champion (no champion in the ledger): the best of {len(ranked)} passing candidate{plural} "
            f"on BD-rate {anchor_label}: {describe(mine)}"
        )
        return Verdict(decision="adopted", adoptable=True, bootstrap=True, reasons=[first], **common)

    label = f"{champion.candidate} (seq {champion.seq})"
    if name == champion.candidate:
        if source == champion.source_sha256:
            reason = f"{name} is already the champion ({label})"
        else:
            reason = (
                f"{name} changes the champion in place (adopted source {champion.source_sha256[:12]}, now "
                f"{(source or '?')[:12]}): add the change as a new candidate so it can be compared with the champion"
            )
        reasons = [reason] + ([identical_reason] if identical_reason else [])
        return Verdict(decision="rejected", adoptable=False, reasons=reasons, **common)

    vs, missing = _vs_champion(doc, name, champion)
    if vs is None:
        reasons = [missing] + ([identical_reason] if identical_reason else [])
        return Verdict(decision="rejected", adoptable=False, reasons=reasons, judged=False, **common)

    overall = _dict(vs.get("overall"))
    per_clip = _dict(vs.get("per_clip"))
    scores["vs_champion"] = {m: _num(_dict(s).get("bd_rate")) for m, s in overall.items()}
    scores["vs_champion_per_clip"] = {
        clip: _num(_dict(_dict(r).get(primary)).get("bd_rate")) for clip, r in per_clip.items()
    }
    scores["vs_champion_worst_clip"] = _dict(overall.get(primary)).get("worst_clip")

    reasons = []
    p_slot = _dict(overall.get(primary))
    p_value = _num(p_slot.get("bd_rate"))
    versus = f"BD-rate vs champion {champion.candidate} on {plabel}"
    if p_value is None:
        reasons.append(f"{versus}: not comparable on any clip")
    elif p_value > -config.margin_percent:
        reasons.append(
            f"{versus}: {describe(p_value)}, needs at least {config.margin_percent:.1f} % fewer bits"
        )
    clips = list(_dict(doc.get("clips"))) or list(per_clip)
    for clip in clips:
        result = _dict(_dict(per_clip.get(clip)).get(primary))
        value = _num(result.get("bd_rate"))
        if not result:
            reasons.append(f"no {plabel} comparison with the champion on {clip}")
        elif not result.get("comparable") or value is None:
            if config.require_all_clips_comparable:
                why = _first_line(result.get("warning")) or "not comparable"
                reasons.append(f"{plabel} vs champion not comparable on {clip}: {why}")
        elif value > config.max_clip_regression_percent:
            reasons.append(
                f"regresses on {clip}: {describe(value)} than the champion on {plabel} "
                f"(limit +{config.max_clip_regression_percent:.1f} %)"
            )
    for metric in _secondary(config.secondary_metrics, overall):
        if isinstance(metric, tuple):
            if config.require_secondary:
                reasons.append(
                    f"no {' or '.join(metric_label(m) for m in metric)} comparison with the champion"
                )
            continue
        s_slot = _dict(overall.get(metric))
        value = _num(s_slot.get("bd_rate"))
        if value is None:
            reasons.append(f"{metric_label(metric)} vs champion not comparable on any clip")
            continue
        if s_slot.get("excluded") and config.require_all_clips_comparable:
            clip, why = next(iter(_dict(s_slot.get("excluded")).items()))
            reasons.append(f"{metric_label(metric)} vs champion not comparable on {clip}: {_first_line(why)}")
        if value > config.max_secondary_regression_percent:
            reasons.append(
                f"{metric_label(metric)} regresses: {describe(value)} than the champion "
                f"(limit +{config.max_secondary_regression_percent:.1f} %)"
            )
    if identical_reason:
        reasons.insert(0, identical_reason)
    if reasons:
        return Verdict(decision="rejected", adoptable=False, reasons=reasons, **common)
    worst = scores["vs_champion_worst_clip"]
    worst_text = ""
    worst_value = _num(_dict(_dict(per_clip.get(worst)).get(primary)).get("bd_rate")) if worst else None
    if worst_value is not None:
        worst_text = f"; worst clip {worst}: {describe(worst_value)}"
    return Verdict(
        decision="adopted",
        adoptable=True,
        **common,
        reasons=[
            f"beats champion {label} on {plabel}: {describe(p_value)} (margin {config.margin_percent:.1f} %){worst_text}"
        ],
    )


def decide_all(
    doc: Mapping,
    *,
    config: AdoptionConfig,
    ledger: Ledger | Sequence[LedgerEntry] | None,
    names: Iterable[str] | None = None,
    established: Collection[str] = (),
) -> dict[str, Verdict]:
    """A verdict for each candidate of the report (or each of `names`), in report order."""
    entries = _entries(ledger)
    wanted = list(_dict(doc.get("candidates"))) if names is None else list(names)
    return {
        name: verdict(doc, name, config=config, ledger=entries, established=established) for name in wanted
    }


def best_candidate(
    doc: Mapping, *, config: AdoptionConfig, ledger: Ledger | Sequence[LedgerEntry] | None
) -> str:
    """The adoptable candidate of the report with the best primary BD-rate (vs champion, or vs the anchor)."""
    verdicts = decide_all(doc, config=config, ledger=ledger)
    adoptable = [v for v in verdicts.values() if v.adoptable]
    if not adoptable:
        lines = "; ".join(f"{n}: {v.decision}: {v.reason}" for n, v in verdicts.items())
        raise AdoptionError(f"no candidate in the report is adoptable ({lines or 'no candidates'})")

    def key(v: Verdict) -> tuple[float, str]:
        vs = _dict(v.scores.get("vs_champion")).get(config.primary_metric)
        if vs is None:
            vs = _dict(_dict(v.scores.get("vs_anchor")).get(config.bootstrap_anchor)).get(
                config.primary_metric
            )
        return (vs if vs is not None else math.inf, v.candidate)

    return min(adoptable, key=key).candidate


# ----------------------------------------------------------------------------- adopting


def _load_doc(report_path: Path) -> tuple[dict, str]:
    try:
        data = report_path.read_bytes()
    except OSError as err:
        raise AdoptionError(f"cannot read the report {report_path}: {err}") from err
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdoptionError(f"the report {report_path} is not JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("candidates"), dict):
        raise AdoptionError(f"{report_path} is not a benchmark report (no `candidates` object)")
    return doc, hashlib.sha256(data).hexdigest()


def _report_label(path: Path, sha256: str) -> str:
    """The report's path for the ledger: relative to the working directory when inside it, and for
    reports/latest.json (overwritten by the next run) the run-*.json file with the same bytes."""
    if path.name == "latest.json":
        runs = sorted(path.parent.glob("run-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)[:50]
        same = next((r for r in runs if hashlib.sha256(r.read_bytes()).hexdigest() == sha256), None)
        path = same or path
    try:
        full = path.resolve()
        return os.path.relpath(full, Path.cwd()) if full.is_relative_to(Path.cwd()) else str(full)
    except (OSError, ValueError):
        return str(path)


def adopt(
    report_path: str | os.PathLike[str],
    name: str,
    *,
    ledger: Ledger,
    candidates_dir: str | os.PathLike[str],
    config: AdoptionConfig,
    parent: str | None = None,
    force_record_rejection: bool = False,
) -> LedgerEntry:
    """Record the decision about `name` from a report: an "adopted" entry, or a "rejected" one.

    Raises AdoptionError (nothing recorded) when the candidate is unknown, the report is stale
    (its source hash differs from the file in `candidates_dir`), it did not pass, the report
    cannot support a decision (no comparison with the ledger's champion), or the same source was
    already rejected against the same champion (unless `force_record_rejection`).
    """
    report_path = Path(report_path)
    doc, report_sha = _load_doc(report_path)
    cands = _dict(doc.get("candidates"))
    if name not in cands:
        raise AdoptionError(
            f"candidate {name!r} is not in the report {report_path}; it has: {', '.join(sorted(cands)) or '(none)'}"
        )
    on_disk = {c.name: c for c in discover_candidates(candidates_dir)}
    if name not in on_disk:
        raise AdoptionError(
            f"unknown candidate {name!r}: no candidates/{name}.py or package in {candidates_dir}"
        )
    judged_sha = cands[name].get("sha256")
    if not isinstance(judged_sha, str):
        raise AdoptionError(
            f"the report does not record {name}'s source hash (test_contract did not run): run the whole suite"
        )
    if on_disk[name].sha256 != judged_sha:
        raise AdoptionError(
            f"stale report: {name}'s source is now {on_disk[name].sha256[:12]} but {report_path} judged "
            f"{judged_sha[:12]}; re-run pytest benchmarks/ and adopt from the new report"
        )
    entries = ledger.entries()
    known = {e.candidate for e in entries} | set(on_disk)
    if parent is not None and parent not in known:
        raise AdoptionError(f"unknown parent {parent!r}: neither in the ledger nor in {candidates_dir}")
    v = verdict(doc, name, config=config, ledger=entries)
    if v.decision == "failed":
        raise AdoptionError(f"{name} did not pass the suite: {v.reason}")
    if not v.judged:
        raise AdoptionError(f"cannot decide about {name} from {report_path}: {v.reason}")
    champion = _champion(entries)
    if not v.adoptable and not force_record_rejection:
        earlier = next(
            (
                e
                for e in reversed(entries)
                if e.decision == "rejected"
                and e.candidate == name
                and e.source_sha256 == judged_sha
                and _dict(e.extra.get("champion")).get("seq") == (champion.seq if champion else None)
            ),
            None,
        )
        if earlier is not None:
            raise AdoptionError(
                f"{name} (source {judged_sha[:12]}) was already rejected against this champion (seq {earlier.seq}): "
                f"{earlier.reason}; use --force-record to record it again"
            )
    entry = LedgerEntry(
        candidate=name,
        source_sha256=judged_sha,
        decision="adopted" if v.adoptable else "rejected",
        reason=v.reason,
        parent=parent,
        report=_report_label(report_path, report_sha),
        report_sha256=report_sha,
        scores=v.scores,
        fingerprint=v.fingerprint,
        identical_to=v.identical_to,
        extra={
            "reasons": list(v.reasons),
            "basis": _basis(doc),
            "champion": {"name": champion.candidate, "seq": champion.seq} if champion else None,
            "bootstrap": v.bootstrap,
            "report_created_utc": doc.get("created_utc"),
            "git": doc.get("git"),
            "config": config.to_json(),
        },
    )
    return ledger.append(entry)


# ----------------------------------------------------------------------------- command line


def _fmt(value: object) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v:+.1f} %"


def ledger_table(entries: Sequence[LedgerEntry], *, primary: str = "psnr_yuv", anchor: str = "x265") -> str:
    """The ledger as a plain-text table and the champion line."""
    head = (
        "seq",
        "time (UTC)",
        "decision",
        "candidate",
        "source",
        "parent",
        f"vs {anchor}",
        "vs champion",
        "reason",
    )
    rows = []
    for e in entries:
        vs_anchor = _dict(_dict(e.scores.get("vs_anchor")).get(anchor)).get(primary)
        vs_champ = _dict(e.scores.get("vs_champion")).get(primary)
        reason = e.reason if len(e.reason) <= 90 else e.reason[:89] + "…"
        if e.identical_to:
            reason = f"[identical to {e.identical_to}] {reason}"
        rows.append(
            (
                str(e.seq),
                e.time_utc.replace("+00:00", "Z"),
                e.decision,
                e.candidate,
                e.source_sha256[:12],
                e.parent or "-",
                _fmt(vs_anchor),
                _fmt(vs_champ),
                reason,
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    for r in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
    champion = _champion(entries)
    if champion is None:
        lines.append(
            "champion: none yet — seed it from a full run: "
            "pytest benchmarks/ && python -m harness adopt reports/latest.json --best"
        )
    else:
        lines.append(
            f"champion: {champion.candidate} (seq {champion.seq}, source {champion.source_sha256[:12]}, "
            f"adopted {champion.time_utc})"
        )
    return "\n".join(lines)


def _cli_adopt(args: argparse.Namespace) -> int:
    config = load_adoption_config(args.config or default_config_path())
    ledger = Ledger(args.ledger)
    if bool(args.candidate) == bool(args.best):
        raise AdoptionError("name one CANDIDATE or pass --best (the best adoptable candidate of the report)")
    name = args.candidate
    if args.best:
        doc, _ = _load_doc(Path(args.report))
        name = best_candidate(doc, config=config, ledger=ledger)
    entry = adopt(
        args.report,
        name,
        ledger=ledger,
        candidates_dir=args.candidates_dir,
        config=config,
        parent=args.parent,
        force_record_rejection=args.force_record,
    )
    print(f"{entry.decision}: {entry.candidate} (seq {entry.seq}, source {entry.source_sha256[:12]})")
    for reason in _dict(entry.extra).get("reasons") or [entry.reason]:
        print(f"  - {reason}")
    print(f"ledger: {ledger.path}")
    return 0 if entry.decision == "adopted" else 1


def _cli_ledger(args: argparse.Namespace) -> int:
    config = load_adoption_config(args.config or default_config_path())
    entries = Ledger(args.ledger).entries()
    if args.json:
        for e in entries:
            print(json.dumps(e.to_json(), sort_keys=True))
        return 0
    if not entries:
        print(f"{args.ledger}: no entries")
    print(ledger_table(entries, primary=config.primary_metric, anchor=config.bootstrap_anchor))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `adopt` and `ledger` subcommands to the harness CLI."""
    p = subparsers.add_parser(
        "adopt",
        help="adopt a candidate from a report into the ledger (or record its rejection)",
        description="Judge CANDIDATE of a benchmark report against the ledger's champion with the thresholds of "
        "fixtures/adoption.toml and append the decision to the ledger. Refuses (exit 2, nothing recorded) when the "
        "report is stale, the candidate is unknown or did not pass. Exit 0 adopted, 1 rejected (recorded).",
    )
    p.add_argument("report", help="a JSON report written by pytest benchmarks/ (e.g. reports/latest.json)")
    p.add_argument("candidate", nargs="?", help="the candidate's name")
    p.add_argument(
        "--best", action="store_true", help="the best adoptable candidate of the report (seeds the ledger)"
    )
    p.add_argument("--ledger", default=str(DEFAULT_LEDGER), help="the ledger (default: ledger.jsonl)")
    p.add_argument("--parent", default=None, help="the candidate it was derived from, if known")
    p.add_argument(
        "--candidates-dir", default="candidates", help="where the candidates are (default: candidates)"
    )
    p.add_argument("--config", default=None, help="adoption thresholds (default: fixtures/adoption.toml)")
    p.add_argument(
        "--force-record", action="store_true", help="record a rejection again even if already recorded"
    )
    p.set_defaults(func=_cli_adopt)

    q = subparsers.add_parser(
        "ledger",
        help="print the adoption ledger and the current champion",
        description="Print every ledger entry as a table and the current champion (the last adopted entry).",
    )
    q.add_argument("--ledger", default=str(DEFAULT_LEDGER), help="the ledger (default: ledger.jsonl)")
    q.add_argument("--config", default=None, help="adoption thresholds (for the metric shown)")
    q.add_argument("--json", action="store_true", help="print the entries as JSON Lines")
    q.set_defaults(func=_cli_ledger)
