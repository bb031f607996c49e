"""The typed results of a run: what every consumer of a report reads, and the one place its sums are made.

A run's JSON report (`harness/report.schema.json`) is `RunResults.to_json()`; every reader
(render, compare, adoption, the gate, evolve, the terminal summary) goes through
`load_report` / `RunResults.from_json`, which validate against the schema. The computations
several consumers need live here once: the rate-distortion `Curve` of a candidate or an
anchor on a clip, `bd_between` two curves, and `mean_bd` over clips
(the champion rule is `harness.ledger.champion_of`).

Leaves that no consumer computes with (machine facts, versions, settings, per-frame metric
lists, captured output) stay JSON mappings inside the typed records.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.bdrate import BDRateError, BDResult, average_bd_rate, bd_rate
from harness.gates import Gate
from harness.schema import SCHEMA_PATH, SUPPORTED_SCHEMA_VERSIONS, ReportError, read_report, validate_report

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "CandidateResults",
    "Curve",
    "ReportError",
    "RunResults",
    "bd_between",
    "bd_vs_points",
    "load_report",
    "mean_bd",
    "validate_report",
]

SCHEMA_VERSION = 1

JSON = dict[str, Any]


# ----------------------------------------------------------------------------- curves and sums


@dataclass(frozen=True)
class Curve:
    """Rate-distortion points of one codec (candidate or anchor) on one clip, low to high rate."""

    points: tuple[tuple[float, Mapping[str, float]], ...]  # (bitrate_bps, metric -> mean over frames)

    @classmethod
    def of(cls, measurements: Iterable[Mapping]) -> Curve:
        """From measurement JSON (`bitrate_bps`, `metrics`) or `Measurement` objects."""
        points = []
        for m in measurements:
            if isinstance(m, Mapping):
                points.append((float(m["bitrate_bps"]), dict(m.get("metrics") or {})))
            else:
                points.append((float(m.bitrate_bps), dict(m.mean)))
        return cls(tuple(sorted(points, key=lambda p: p[0])))

    def metrics(self) -> set[str]:
        return set.intersection(*(set(q) for _, q in self.points)) if self.points else set()

    def pairs(self, metric: str) -> list[tuple[float, float]]:
        """(bitrate, quality) of every point that measured `metric`, sorted by rate."""
        return sorted((rate, float(q[metric])) for rate, q in self.points if q.get(metric) is not None)


def bd_between(reference: Curve, test: Curve, metrics: Sequence[str], method: str = "pchip") -> dict[str, BDResult]:
    """BD-rate of `test` against `reference` on each metric both curves measured (candidates,
    anchors and the champion alike: one function for all of them)."""
    out: dict[str, BDResult] = {}
    shared = reference.metrics() & test.metrics()
    for metric in metrics:
        if metric in shared:
            out[metric] = bd_rate(reference.pairs(metric), test.pairs(metric), method=method)
    return out


def bd_vs_points(
    test: CandidateResults, reference: CandidateResults, clips: Iterable[str], metrics: Sequence[str],
    method: str = "pchip", *, complete: bool = True,
) -> dict[str, dict[str, BDResult]]:
    """BD-rate of `test` against `reference` on each clip where both have a curve (see
    `CandidateResults.curve` for `complete`), per metric; a curve that cannot be used (too few
    points, non-finite) gives a not-comparable result saying why."""
    out: dict[str, dict[str, BDResult]] = {}
    for clip in clips:
        ref, mine = reference.curve(clip, complete=complete), test.curve(clip, complete=complete)
        if ref is None or mine is None:
            continue
        out[clip] = {}
        for metric in metrics:
            try:
                out[clip].update(bd_between(ref, mine, [metric], method))
            except BDRateError as err:
                out[clip][metric] = BDResult(None, None, 0.0, None, False, str(err), method)
    return out


NO_CURVE = "no BD-rate: no rate-distortion curve on this clip (a rate point failed or was not judged)"


def mean_bd(
    per_clip: Mapping[str, Mapping[str, Mapping[str, Mapping]]], clips: Iterable[str] = (),
) -> dict[str, dict[str, JSON]]:
    """Mean BD-rate over clips, per reference (anchor or "champion") and metric: the report's `bd_overall`.

    `per_clip` is clip -> reference -> metric -> BD result (JSON); `clips` the clips the candidate
    was judged on (those without a result are left out with NO_CURVE). Only comparable clips count;
    every other clip is listed under `excluded` with its reason, `clips` names the ones averaged,
    `clips_covered` / `clips_total` say how many of all (the coverage every overall figure states),
    and `worst_clip` is the comparable clip with the most bits.
    """
    grouped: dict[str, dict[str, dict[str, BDResult]]] = {}
    for clip, refs in sorted(per_clip.items()):
        for ref, metrics in refs.items():
            for metric, result in metrics.items():
                grouped.setdefault(ref, {}).setdefault(metric, {})[clip] = _bd_result(result)
    judged = sorted(set(clips) | set(per_clip))
    out: dict[str, dict[str, JSON]] = {}
    for ref, metrics in grouped.items():
        for metric, results in metrics.items():
            try:
                average = average_bd_rate(results)
            except BDRateError as err:
                raise ReportError(f"mean BD-rate against {ref} on {metric}: {err}") from err
            values = {clip: results[clip].bd_rate for clip in average.included}
            excluded = dict(average.excluded)
            excluded.update({clip: NO_CURVE for clip in judged if clip not in results})
            out.setdefault(ref, {})[metric] = {
                "bd_rate": average.bd_rate,
                "clips": list(average.included),
                "clips_covered": len(average.included),
                "clips_total": len(average.included) + len(excluded),
                "excluded": dict(sorted(excluded.items())),
                "values": values,
                "worst_clip": max(values, key=values.get) if values else None,
            }
    return out


def _bd_result(data: Mapping | BDResult) -> BDResult:
    if isinstance(data, BDResult):
        return data
    interval = data.get("interval")
    rate_interval = data.get("rate_interval")
    return BDResult(
        bd_rate=data.get("bd_rate"),
        bd_quality=data.get("bd_quality"),
        overlap=float(data.get("overlap") or 0.0),
        interval=tuple(interval) if interval else None,
        comparable=bool(data.get("comparable")) and data.get("bd_rate") is not None,
        warning=data.get("warning"),
        method=data.get("method") or "pchip",
        rate_overlap=float(data.get("rate_overlap") or 0.0),
        rate_interval=tuple(rate_interval) if rate_interval else None,
    )


# ----------------------------------------------------------------------------- candidates


_CANDIDATE_KEYS = (
    "sha256", "size_bytes", "path", "check", "points", "determinism", "gates", "tests", "bd",
    "bd_vs_champion", "bd_overall", "bd_by_set", "summary", "passed_all", "verdict", "flags", "totals",
    "complexity", "track", "library_codecs",
)


@dataclass(frozen=True)
class CandidateResults:
    """One candidate's results in a run: its source, check, rate points, determinism, gates,
    test outcomes, BD-rates per clip and overall against each anchor and the champion, verdict."""

    name: str
    sha256: str | None = None
    size_bytes: int | None = None
    path: str | None = None
    check: JSON | None = None
    track: str = "native"  # the candidate's declared track (harness/toolbox.py)
    points: Mapping[str, JSON] = field(default_factory=dict)  # "clip/rN" -> point record
    determinism: Mapping[str, JSON] = field(default_factory=dict)  # clip -> determinism record
    gates: Mapping[str, Gate] = field(default_factory=dict)  # Gate.key -> gate result
    tests: Mapping[str, JSON] = field(default_factory=dict)  # pytest node id -> outcome record
    bd: Mapping[str, Mapping[str, Mapping[str, JSON]]] | None = None  # clip -> anchor -> metric
    bd_vs_champion: JSON | None = None
    verdict: JSON | None = None
    extra: JSON = field(default_factory=dict)  # fields this version does not know, kept as they are

    # ---- derived, in one place
    @property
    def library_codecs(self) -> list[str]:
        """Library codec entry points any of its calls used (check, encodes, decodes), first use first."""
        calls = [self.check, *(c for p in self.points.values() for c in (p.get("encode"), p.get("decode")))]
        calls += [c for d in self.determinism.values() for c in (d.get("calls") or ()) if isinstance(c, Mapping)]
        out: list[str] = []
        for call in calls:
            for codec in (call or {}).get("library_codecs") or ():
                if codec not in out:
                    out.append(codec)
        return out

    @property
    def wraps(self) -> list[str]:
        """The library codecs named in reports: "libx264" from "libx264 via av", "cv2.imencode(.webp)" as is."""
        return list(dict.fromkeys(c.removesuffix(" via av") for c in self.library_codecs))

    @property
    def bd_overall(self) -> dict[str, dict[str, JSON]]:
        """Mean BD-rates over every clip the candidate was judged on (coverage stated: `mean_bd`)."""
        return mean_bd(self.bd or {}, self.clips())

    @property
    def summary(self) -> dict[str, int]:
        outcomes = [t["outcome"] for t in self.tests.values()]
        return {o: outcomes.count(o) for o in sorted(set(outcomes))}

    @property
    def passed_all(self) -> bool:
        outcomes = [t["outcome"] for t in self.tests.values()]
        return bool(outcomes) and all(o == "passed" for o in outcomes)

    def clips(self) -> list[str]:
        return sorted({key.rsplit("/", 1)[0] for key in self.points})

    def curve(self, clip: str, *, complete: bool = True) -> Curve | None:
        """The candidate's curve on `clip`: None when a rate point has no measurement (as the suite
        judges), or with `complete=False` from the points that have one (None without any)."""
        records = [p for key, p in self.points.items() if key.rsplit("/", 1)[0] == clip]
        measured = [p["measurement"] for p in records if p.get("measurement") and not p.get("failure")]
        if not measured or (complete and len(measured) < len(records)):
            return None
        return Curve.of(measured)

    def by_set(self, clip_sets: Mapping[str, str], settings: Mapping) -> JSON | None:
        """Public and held-out BD-rates side by side, flagging a candidate tuned to the public clips."""
        if "heldout" not in clip_sets.values():
            return None
        suite = settings.get("suite", {}) if isinstance(settings, Mapping) else {}
        anchor, metric = suite.get("rate_anchor", "x265"), (suite.get("bd_metrics") or ["psnr_yuv"])[0]
        out: JSON = {}
        for label in ("public", "heldout"):
            subset = {c: r for c, r in (self.bd or {}).items() if clip_sets.get(c) == label}
            judged = [c for c in self.clips() if clip_sets.get(c) == label]
            out[label] = mean_bd(subset, judged).get(anchor, {}).get(metric, {}).get("bd_rate")
        limit = float(suite.get("heldout_gap_percent", 10.0))
        gap = out["heldout"] - out["public"] if None not in (out["heldout"], out["public"]) else None
        flag = None
        if gap is not None and gap > limit:
            flag = (
                f"held-out clips need {gap:.1f} points more bits than the public ones (limit {limit:g}): "
                "tuned to the public clips?"
            )
        out.update(anchor=anchor, metric=metric, gap_percent=gap, limit_percent=limit, flag=flag)
        return out

    def totals(self) -> JSON:
        """What the candidate ships beside its bits, and both together as CLIC counts a decoder:
        shipped bytes (source and data files) + the bytes of every bitstream it produced."""
        bits = sum(int(p["measurement"]["bytes"]) for p in self.points.values() if p.get("measurement"))
        shipped = self.size_bytes or 0
        return {"shipped_bytes": shipped, "bitstream_bytes": bits, "decoder_inclusive_bytes": shipped + bits}

    def flags(self, settings: Mapping, anchors: Mapping) -> list[str]:
        """Warnings every report shows: a result far better than the rate anchor (e.g. a codec that
        memorized the public clips and replays them from a few bytes) must be confirmed on held-out clips."""
        suite = settings.get("suite", {}) if isinstance(settings, Mapping) else {}
        limits = suite.get("flags") or {}
        limit = float(limits.get("too_good_bd_rate_percent", -50.0))
        fraction = float(limits.get("too_good_bits_fraction", 0.25))
        anchor, metric = suite.get("rate_anchor", "x265"), (suite.get("bd_metrics") or ["psnr_yuv"])[0]
        confirm = "too good to be true: confirm on held-out clips"
        out = []
        slot = self.bd_overall.get(anchor, {}).get(metric, {})
        values = slot.get("values") or {}
        if slot.get("bd_rate") is not None and slot["bd_rate"] < limit:
            out.append(f"{confirm} (BD-rate {slot['bd_rate']:+.1f} % against {anchor} on {metric}, beyond {limit:g} %)")
        elif any(v < limit for v in values.values()):
            clip = min(values, key=values.get)
            out.append(f"{confirm} (BD-rate {values[clip]:+.1f} % against {anchor} on {metric} on {clip}, beyond {limit:g} %)")
        else:
            found = self._cheap_point(anchors, anchor, metric, fraction)
            if found:
                out.append(f"{confirm} ({found})")
        out += self.identical_to_anchors(anchors)
        return out

    def identical_to_anchors(self, anchors: Mapping) -> list[str]:
        """"identical to the x265 anchor at r2 (clip, QP 27): same decoded frames": a wrapper that
        reproduces an anchor's bitstream or frames is that anchor, whatever it calls itself."""
        out: list[str] = []
        for key, point in sorted(self.points.items()):
            meas = (point or {}).get("measurement") or {}
            clip, rung = point.get("clip"), point.get("rung")
            mine = {"bitstream": meas.get("bitstream_sha256"), "decoded frames": meas.get("decoded_sha256")}
            for anchor, curve in sorted(((anchors or {}).get(clip) or {}).items()):
                for apoint in curve or ():
                    theirs = (apoint or {}).get("measurement") or {}
                    same = [what for what, sha in mine.items()
                            if sha and sha == theirs.get("bitstream_sha256" if what == "bitstream" else "decoded_sha256")]
                    if same:
                        qp = apoint.get("qp")
                        out.append(
                            f"identical to the {anchor} anchor at {rung or key} ({clip}, QP {qp}): same {' and '.join(same)}"
                        )
        return out

    def _cheap_point(self, anchors: Mapping, anchor: str, metric: str, fraction: float) -> str | None:
        """A rate point whose quality reaches the anchor's at the same QP with a fraction of its bits."""
        for key, point in sorted(self.points.items()):
            m, qp = point.get("measurement"), point.get("anchor_qp")
            ref = next((a for a in (anchors.get(point.get("clip")) or {}).get(anchor) or [] if a.get("qp") == qp), None)
            if not m or ref is None or metric not in m.get("metrics", {}):
                continue
            mine, theirs = m["metrics"][metric], ref["measurement"]["metrics"].get(metric)
            if theirs is not None and mine >= theirs and m["bytes"] <= fraction * ref["measurement"]["bytes"]:
                share = 100.0 * m["bytes"] / max(ref["measurement"]["bytes"], 1)
                return (
                    f"{key}: {metric} {mine:.2f} reaches {anchor}'s {theirs:.2f} at QP {qp} "
                    f"with {share:.1f} % of its bits"
                )
        return None

    def vs_champion_overall(self) -> JSON | None:
        if not self.bd_vs_champion:
            return None
        per_clip = self.bd_vs_champion.get("per_clip") or {}
        return mean_bd({clip: {"champion": r} for clip, r in per_clip.items()}, self.clips()).get("champion", {})

    def to_json(
        self, *, clip_sets: Mapping[str, str], settings: Mapping, sha_of: Mapping[str, str | None], anchors: Mapping
    ) -> JSON:
        out: JSON = dict(self.extra)
        for key in ("sha256", "size_bytes", "path", "check"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["track"] = self.track
        out["library_codecs"] = self.library_codecs
        out["points"] = dict(self.points)
        out["determinism"] = dict(self.determinism)
        if self.gates:
            out["gates"] = {key: gate.to_json() for key, gate in self.gates.items()}
        out["tests"] = dict(self.tests)
        if self.bd is not None:
            out["bd"] = self.bd
        if self.bd_vs_champion is not None:
            vs = dict(self.bd_vs_champion)
            vs["overall"] = self.vs_champion_overall()
            # The source that ran in this report (the ledger's hash is in the run's champion).
            vs["champion_sha256"] = sha_of.get(vs["champion"])
            out["bd_vs_champion"] = vs
        out["bd_overall"] = self.bd_overall
        out["bd_by_set"] = self.by_set(clip_sets, settings)
        out["summary"] = self.summary
        out["passed_all"] = self.passed_all
        out["flags"] = self.flags(settings, anchors)
        out["totals"] = self.totals()
        if self.verdict is not None:
            out["verdict"] = self.verdict
        return out

    @classmethod
    def from_json(cls, name: str, data: Mapping) -> CandidateResults:
        gates = {}
        for key, value in (data.get("gates") or {}).items():
            try:
                gates[key] = Gate.from_json(value)
            except (KeyError, TypeError, ValueError) as err:
                raise ReportError(f"candidate {name}: gate {key}: {err}") from err
        return cls(
            name=name,
            sha256=data.get("sha256"),
            size_bytes=data.get("size_bytes"),
            path=data.get("path"),
            check=data.get("check"),
            track=data.get("track") or "native",
            points=dict(data.get("points") or {}),
            determinism=dict(data.get("determinism") or {}),
            gates=gates,
            tests=dict(data.get("tests") or {}),
            bd=data.get("bd"),
            bd_vs_champion=(
                {k: v for k, v in data["bd_vs_champion"].items() if k not in ("overall", "champion_sha256")}
                if data.get("bd_vs_champion") else None
            ),
            verdict=data.get("verdict"),
            extra={k: v for k, v in data.items() if k not in _CANDIDATE_KEYS},
        )


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunResults:
    """Everything a run judged, on which machine, with which versions."""

    created_utc: str
    machine: JSON
    versions: JSON
    git: JSON
    settings: JSON
    clips: Mapping[str, JSON]  # name -> path, sha256, size, frames, rate, set ("public" / "heldout")...
    anchors: Mapping[str, Mapping[str, list[JSON]]]  # clip -> anchor -> points
    champion: JSON | None  # the native track's champion (the headline), as before tracks
    candidates: Mapping[str, CandidateResults]
    tests: Mapping[str, JSON]
    schema_version: int = SCHEMA_VERSION
    champions: Mapping[str, JSON | None] = field(default_factory=dict)  # track -> champion info or None
    # The complexity reference as measured in the run: {"per_clip": clip -> harness.complexity.measure_costs}.
    complexity: JSON | None = None

    @property
    def summary(self) -> dict[str, int]:
        outcomes = [t["outcome"] for t in self.tests.values()]
        return {o: outcomes.count(o) for o in sorted(set(outcomes))}

    @property
    def clip_sets(self) -> dict[str, str]:
        return {name: info.get("set", "public") for name, info in self.clips.items()}

    def bd_vs(self, candidate: str, reference: str, metrics: Sequence[str] | None = None) -> dict[str, dict[str, BDResult]]:
        """BD-rate of one candidate against another (e.g. the champion) per clip, from their points."""
        suite = self.settings.get("suite", {})
        metrics = tuple(metrics or suite.get("bd_metrics") or ("psnr_yuv",))
        a, b = self.candidates[candidate], self.candidates[reference]
        clips = sorted(set(a.clips()) & set(b.clips()))
        return bd_vs_points(a, b, clips, metrics, suite.get("bd_method", "pchip"))

    def anchor_bd(self, anchor: str) -> JSON | None:
        """An anchor's mean BD-rate against the rate anchor on the primary metric (`mean_bd` form)."""
        suite = self.settings.get("suite", {})
        ref_name, metric = suite.get("rate_anchor", "x265"), (suite.get("bd_metrics") or ["psnr_yuv"])[0]
        per_clip: dict[str, dict] = {}
        for clip, curves in self.anchors.items():
            ref, mine = curves.get(ref_name), curves.get(anchor)
            if not ref or not mine:
                continue
            try:
                found = bd_between(Curve.of(p["measurement"] for p in ref), Curve.of(p["measurement"] for p in mine),
                                   [metric], suite.get("bd_method", "pchip"))
            except BDRateError as err:
                found = {metric: BDResult(None, None, 0.0, None, False, str(err), "pchip")}
            if metric in found:
                per_clip[clip] = {"anchor": {metric: found[metric]}}
        return mean_bd(per_clip).get("anchor", {}).get(metric)

    def complexity_view(self) -> JSON | None:
        """The rate-distortion-complexity picture (harness.complexity): the measured reference per
        clip, each anchor's and candidate's encode / decode ratio to x265 with its BD-rate against
        the rate anchor, and where each stands against the Pareto front (`front` per axis)."""
        from harness.complexity import AXES, anchor_ratios, candidate_complexity, front

        per_clip = {c: r for c, r in ((self.complexity or {}).get("per_clip") or {}).items() if "anchors" in r}
        if not per_clip:
            return None
        suite = self.settings.get("suite", {})
        rate_anchor, metric = suite.get("rate_anchor", "x265"), (suite.get("bd_metrics") or ["psnr_yuv"])[0]
        anchors = {}
        for name, ratios in anchor_ratios(per_clip).items():
            slot = self.anchor_bd(name) if name != rate_anchor else {"bd_rate": 0.0}
            anchors[name] = {**ratios, "bd_rate": (slot or {}).get("bd_rate")}
        candidates = {}
        for name, cand in self.candidates.items():
            found = candidate_complexity(cand.points, self.clips, per_clip) or {"encode_ratio": None, "decode_ratio": None}
            slot = cand.bd_overall.get(rate_anchor, {}).get(metric, {})
            candidates[name] = {**found, "bd_rate": slot.get("bd_rate")}
        every = {("anchor", n): e for n, e in anchors.items()} | {("candidate", n): e for n, e in candidates.items()}
        for axis in AXES:
            placed = front({key: (e["bd_rate"], e.get(f"{axis}_ratio")) for key, e in every.items()})
            for key, entry in every.items():
                entry.setdefault("front", {})[axis] = placed[key]
        reference = next(iter(per_clip.values())).get("reference", "x265")
        return {
            "reference": reference, "bd_anchor": rate_anchor, "metric": metric,
            "per_clip": dict((self.complexity or {}).get("per_clip") or {}),
            "anchors": anchors, "candidates": candidates,
        }

    def to_json(self) -> JSON:
        sha_of = {name: c.sha256 for name, c in self.candidates.items()}
        view = self.complexity_view()
        out = self._to_json(sha_of)
        if view is not None:
            for name, entry in view.pop("candidates").items():
                out["candidates"][name]["complexity"] = entry
            out["complexity"] = view
        elif self.complexity:
            out["complexity"] = dict(self.complexity)
        return out

    def _to_json(self, sha_of: Mapping[str, str | None]) -> JSON:
        return {
            "schema_version": self.schema_version,
            "created_utc": self.created_utc,
            "machine": self.machine,
            "versions": self.versions,
            "git": self.git,
            "settings": self.settings,
            "clips": dict(self.clips),
            "anchors": dict(self.anchors),
            "champion": self.champion,
            "champions": dict(self.champions),
            "candidates": {
                name: c.to_json(clip_sets=self.clip_sets, settings=self.settings, sha_of=sha_of, anchors=self.anchors)
                for name, c in self.candidates.items()
            },
            "tests": dict(self.tests),
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, doc: object, *, validate: bool = True) -> RunResults:
        """A report document (parsed JSON), checked against the schema first."""
        if validate:
            validate_report(doc)
        assert isinstance(doc, dict)
        return cls(
            schema_version=doc["schema_version"],
            created_utc=doc["created_utc"],
            machine=doc["machine"],
            versions=doc["versions"],
            git=doc["git"],
            settings=doc["settings"],
            clips=doc["clips"],
            anchors=doc["anchors"],
            champion=doc.get("champion"),
            champions=doc.get("champions") or {},
            complexity={"per_clip": (doc.get("complexity") or {}).get("per_clip") or {}} if doc.get("complexity") else None,
            candidates={name: CandidateResults.from_json(name, c) for name, c in doc["candidates"].items()},
            tests=doc["tests"],
        )


def load_report(path: str | os.PathLike[str]) -> RunResults:
    """The one way to read a report file: parsed, validated against the schema, typed."""
    return RunResults.from_json(read_report(path), validate=False)
