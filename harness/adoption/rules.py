"""The adoption verdict, as separate rules composed by `verdict`.

- correctness: every test of the candidate passed and the run is complete (else "failed");
- identical results: bitstreams (or rounded scores on the same clips) equal to an earlier ledger
  entry's or another candidate's of the report flag the candidate (its reason leads every verdict);
- bootstrap: with no champion of its track yet, the passing candidate of that track with the best
  BD-rate against the rate anchor (x265) becomes the track's first champion;
- vs champion: the BD-rate against its track's champion beats the margin on the primary metric,
  with no clip and no secondary metric regressing beyond its bound.

Each candidate is judged in its own track (the report's `track`, "native" when a report predates
tracks): a native candidate against the native champion, an open one against the open champion.

`decide_all` judges every candidate of a report, `best_candidate` picks the adoptable one to adopt.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.adoption.config import AdoptionConfig, AdoptionError, Decision, metric_label
from harness.adoption.scores import (
    anchor_scores,
    as_dict,
    as_num,
    bd_vs_from_points,
    fingerprint,
    first_line,
    nodeid_short,
    overall_bd,
    report_basis,
)
from harness.bdrate import describe
from harness.gates import POINT_GATES
from harness.ledger import TRACKS, Ledger, LedgerEntry, Track, champion_of

__all__ = [
    "Verdict",
    "best_candidate",
    "bootstrap_rule",
    "candidate_track",
    "champion_of",
    "correctness_problem",
    "correctness_rule",
    "decide_all",
    "identical_results",
    "ledger_entries",
    "verdict",
    "vs_champion_rule",
]


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
    track: Track = "native"

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
            "track": self.track,
        }


def ledger_entries(ledger: Ledger | Sequence[LedgerEntry] | None) -> list[LedgerEntry]:
    if ledger is None:
        return []
    if isinstance(ledger, Ledger):
        return ledger.entries()
    return list(ledger)


def candidate_track(doc: Mapping, name: str) -> Track:
    """The track the report judged `name` in; "native" (the default track) when the report predates
    tracks. AdoptionError for a track this harness does not know."""
    track = as_dict(as_dict(doc.get("candidates")).get(name)).get("track", "native")
    if track not in TRACKS:
        raise AdoptionError(f"the report gives {name} the track {track!r}; tracks are {', '.join(TRACKS)}")
    return track


def correctness_problem(doc: Mapping, name: str, config: AdoptionConfig) -> str | None:
    """Why the candidate is not correct (the first failed gate and its message, or a gate the run did
    not judge), or None. Reads the gate results the suite recorded, never pytest test names."""
    cand = as_dict(as_dict(doc.get("candidates")).get(name))
    gates = {key: as_dict(g) for key, g in as_dict(cand.get("gates")).items()}
    if not gates:
        return f"no gate results for {name} in the report"
    failed = [g for g in gates.values() if g.get("passed") is not True]
    if failed:
        first = failed[0]
        where = " ".join(str(first[k]) for k in ("clip", "rung") if first.get(k))
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        why = first_line(first.get("message")) or "no reason recorded"
        return f"{first.get('gate')}{f' on {where}' if where else ''} failed: {why}{more}"
    missing = [key for key in expected_gate_keys(doc, config) if key not in gates]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        return f"incomplete run: no result for {name} of gate {shown}"
    bad_tests = [n for n, t in as_dict(cand.get("tests")).items() if as_dict(t).get("outcome") != "passed"]
    if bad_tests:
        test = as_dict(as_dict(cand.get("tests"))[bad_tests[0]])
        why = first_line(test.get("reason")) or "no reason recorded"
        return f"{nodeid_short(bad_tests[0])} {test.get('outcome') or 'did not pass'}: {why}"
    if not isinstance(cand.get("sha256"), str):
        return f"the report does not record {name}'s source hash (test_contract did not run)"
    return None


def expected_gate_keys(doc: Mapping, config: AdoptionConfig) -> list[str]:
    """Every gate key (harness.gates.Gate.key) a complete run records for a candidate: each
    required gate on every clip and, for the per-point gates, at every rate point of the run."""
    suite = as_dict(as_dict(doc.get("settings")).get("suite"))
    keys = []
    for gate in config.required_gates:
        if gate == "contract":
            keys.append(gate)
            continue
        for clip in as_dict(doc.get("clips")):
            if gate not in POINT_GATES:
                keys.append(f"{gate}/{clip}")
                continue
            if suite.get("rate_mode") == "ladder":
                rungs = len(suite.get("ladder_bpp") or [])
            else:
                rungs = len(as_dict(as_dict(doc.get("anchors")).get(clip)).get(suite.get("rate_anchor", "x265")) or [])
            keys += [f"{gate}/{clip}/r{r}" for r in range(rungs)]
    return keys


def _rounded(scores: Mapping, decimals: int) -> dict:
    return {
        anchor: {
            m: (round(v, decimals) if v is not None else None) for m, v in sorted(as_dict(metrics).items())
        }
        for anchor, metrics in sorted(as_dict(scores).items())
    }


def _has_value(scores: Mapping) -> bool:
    return any(v is not None for metrics in scores.values() for v in as_dict(metrics).values())


def identical_results(
    doc: Mapping,
    name: str,
    fp: str | None,
    scores: Mapping,
    entries: Sequence[LedgerEntry],
    champion: LedgerEntry | None,
    config: AdoptionConfig,
    established: Collection[str] = (),
) -> tuple[str | None, str | None]:
    """The identical-results rule: (identical_to, reason) against earlier ledger entries, then other
    candidates of the report; (None, None) when the results are the candidate's own."""
    cand = as_dict(as_dict(doc.get("candidates")).get(name))
    source = cand.get("sha256")
    basis = report_basis(doc)
    mine = _rounded(scores, config.identical_score_decimals)
    for entry in reversed(entries):
        if entry.candidate == name and entry.source_sha256 == source:
            continue  # the same source judged again: history, not a copy
        same_bits = fp is not None and entry.fingerprint == fp
        theirs = as_dict(entry.scores.get("vs_anchor"))
        same_scores = (
            not same_bits
            and _has_value(scores)
            and as_dict(entry.extra).get("basis") == basis
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

    for other in sorted(as_dict(doc.get("candidates")), key=rank):
        if other == name or fingerprint(doc, other) != fp:
            continue
        if rank(other) < rank(name):
            label = f"{other} (same report)"
            return label, f"identical results to {label}: the same bitstreams — is this the same codec?"
    return None, None


def _primary_anchor_slot(doc: Mapping, name: str, config: AdoptionConfig) -> dict:
    cand = as_dict(as_dict(doc.get("candidates")).get(name))
    return as_dict(as_dict(as_dict(cand.get("bd_overall")).get(config.bootstrap_anchor)).get(config.primary_metric))


def _bootstrap_rank(
    doc: Mapping, config: AdoptionConfig, entries: Sequence[LedgerEntry], established: Collection[str],
    track: Track,
) -> tuple[list[tuple[float, str]], dict[str, str]]:
    """Passing candidates of `track` with a comparable BD-rate vs the anchor, best first; and why
    others of the track are not."""
    ranked, excluded = [], {}
    label = f"{metric_label(config.primary_metric)} vs {config.bootstrap_anchor}"
    for name in as_dict(doc.get("candidates")):
        if candidate_track(doc, name) != track:
            continue
        problem = correctness_problem(doc, name, config)
        if problem:
            excluded[name] = problem
            continue
        cand = as_dict(as_dict(doc.get("candidates")).get(name))
        _, identical = identical_results(
            doc, name, fingerprint(doc, name), anchor_scores(cand), entries, None, config, established
        )
        if identical:
            excluded[name] = identical
            continue
        slot = _primary_anchor_slot(doc, name, config)
        value = as_num(slot.get("bd_rate"))
        if value is None:
            excluded[name] = f"no comparable BD-rate {label}"
        elif slot.get("excluded") and config.require_all_clips_comparable:
            clip, why = next(iter(as_dict(slot.get("excluded")).items()))
            excluded[name] = f"BD-rate {label} not comparable on {clip}: {first_line(why)}"
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
    cands = as_dict(doc.get("candidates"))
    champ = champion.candidate
    label = f"{champ} (seq {champion.seq})"
    champ_doc = as_dict(cands.get(champ))
    ran = champ_doc.get("sha256")
    if isinstance(ran, str) and ran != champion.source_sha256:
        return None, (
            f"the report ran a changed {champ} (source {ran[:12]}, adopted as "
            f"{champion.source_sha256[:12]}): re-run pytest benchmarks/ with the adopted version"
        )
    vs = as_dict(as_dict(cands.get(name)).get("bd_vs_champion"))
    if vs and vs.get("champion") == champ:
        sha = vs.get("champion_sha256") or ran
        if sha is None or sha == champion.source_sha256:
            if "overall" not in vs:
                vs = {**vs, "overall": overall_bd(as_dict(vs.get("per_clip")))}
            return vs, None
    if champ_doc:
        computed = bd_vs_from_points(doc, name, champ)
        if computed is not None:
            return computed, None
    return None, (
        f"the report has no comparison with the ledger's champion {label}: "
        "re-run pytest benchmarks/ with this ledger (it adds the champion to the run)"
    )


@dataclass(frozen=True)
class _Case:
    """What every rule reads: the report, the candidate and its track, the track's champion, the
    identical-results check."""

    doc: Mapping
    name: str
    track: Track
    config: AdoptionConfig
    entries: list[LedgerEntry]
    champion: LedgerEntry | None
    established: Collection[str]
    source: str | None
    scores: dict[str, object]  # shared with the verdict; the vs-champion rule fills in its part
    identical_to: str | None
    identical_reason: str | None
    fingerprint: str | None

    def identical(self) -> list[str]:
        """The identical-results reason as a list (empty when the results are the candidate's own)."""
        return [self.identical_reason] if self.identical_reason else []

    def decide(self, decision: Decision, reasons: list[str], **extra: bool) -> Verdict:
        return Verdict(
            candidate=self.name,
            decision=decision,
            adoptable=decision == "adopted",
            reasons=reasons,
            scores=self.scores,
            identical_to=self.identical_to,
            fingerprint=self.fingerprint,
            source_sha256=self.source,
            champion=self.champion.candidate if self.champion else None,
            track=self.track,
            **extra,
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

    The rules, in order: correctness (every gate passed, the run is complete), then with no
    champion yet the bootstrap rule (the best passing candidate against the anchor), else the
    vs-champion rule (margin, clips, secondary metrics), then the decode-complexity cap (when
    configured), then the held-out rule (no verdict stands
    without held-out clips, unless waived). The identical-results rule adds its reason to every verdict. `established`: candidates that stand when another candidate of the same
    report has identical bitstreams (the gate passes those a pull request did not change).
    """
    cands = as_dict(doc.get("candidates"))
    if name not in cands:
        raise AdoptionError(
            f"candidate {name!r} is not in the report; it has: {', '.join(sorted(cands)) or '(none)'}"
        )
    case = _case(doc, name, config, ledger_entries(ledger), established)
    failed = correctness_rule(case)
    if failed is not None:
        return failed
    decided = bootstrap_rule(case) if case.champion is None else vs_champion_rule(case)
    return heldout_rule(case, complexity_rule(case, decided))


def complexity_rule(case: _Case, decided: Verdict) -> Verdict:
    """With a cap on decode complexity (complexity.max_decode_ratio in adoption.toml), a candidate
    whose decode CPU per megapixel-frame exceeds the cap times x265's decoder's, or that has no
    such figure in the report, is not adopted."""
    cap = case.config.max_decode_ratio
    if cap is None or decided.decision != "adopted":
        return decided
    entry = as_dict(as_dict(as_dict(case.doc.get("candidates")).get(case.name)).get("complexity"))
    ratio = as_num(entry.get("decode_ratio"))
    if ratio is None:
        why = f"decode complexity is capped at {cap:g} x x265's decoder and the report has no figure for it"
    elif ratio > cap:
        why = f"decodes {ratio:.3g} x as much CPU per megapixel-frame as x265's decoder, over the cap of {cap:g} x"
    else:
        return decided
    return dataclasses.replace(
        decided, decision="rejected", adoptable=False,
        reasons=[why, f"otherwise: {decided.decision}: {decided.reason}", *decided.reasons[1:]],
    )


HELDOUT_MISSING = (
    "no held-out clips were judged: adoption needs them (point CODEC_HARNESS_HELDOUT at a folder or a "
    "manifest of clips kept outside the repository, or waive the check with --waive-heldout)"
)


def heldout_rule(case: _Case, decided: Verdict) -> Verdict:
    """Without held-out clips in the report, no verdict stands (a candidate may carry the public clips
    inside itself) unless the check was waived; with it waived, a result flagged too good to be
    true still cannot be adopted."""
    clips = as_dict(case.doc.get("clips"))
    if any(as_dict(info).get("set") == "heldout" for info in clips.values()):
        return decided
    flags = as_dict(as_dict(case.doc.get("candidates")).get(case.name)).get("flags") or []
    if case.config.require_heldout:
        why = HELDOUT_MISSING
    elif flags:
        why = f"{flags[0]}; the held-out check was waived"
    else:
        return decided
    return dataclasses.replace(
        decided, decision="rejected", adoptable=False, judged=False,
        reasons=[why, f"on the public clips alone: {decided.decision}: {decided.reason}", *decided.reasons[1:]],
    )


def _case(
    doc: Mapping, name: str, config: AdoptionConfig, entries: list[LedgerEntry], established: Collection[str]
) -> _Case:
    track = candidate_track(doc, name)
    champion = champion_of(entries, track)
    cand = as_dict(as_dict(doc.get("candidates"))[name])
    fp = fingerprint(doc, name)
    vs_anchor = anchor_scores(cand)
    scores: dict[str, object] = {
        "track": track,
        "primary_metric": config.primary_metric,
        "vs_anchor": vs_anchor,
        "champion": champion.candidate if champion else None,
        "vs_champion": {},
        "vs_champion_per_clip": {},
    }
    identical_to, identical_reason = identical_results(
        doc, name, fp, vs_anchor, entries, champion, config, established
    )
    return _Case(
        doc=doc,
        name=name,
        track=track,
        config=config,
        entries=entries,
        champion=champion,
        established=established,
        source=cand.get("sha256") if isinstance(cand.get("sha256"), str) else None,
        scores=scores,
        identical_to=identical_to,
        identical_reason=identical_reason,
        fingerprint=fp,
    )


def correctness_rule(case: _Case) -> Verdict | None:
    """"failed" when a test did not pass or the run is incomplete for the candidate; else None."""
    problem = correctness_problem(case.doc, case.name, case.config)
    if problem:
        return case.decide("failed", [problem, *case.identical()])
    return None


def bootstrap_rule(case: _Case) -> Verdict:
    """No champion of its track yet: the track's best passing candidate on BD-rate against the anchor
    becomes the track's first champion."""
    doc, name, config = case.doc, case.name, case.config
    ranked, excluded = _bootstrap_rank(doc, config, case.entries, case.established, case.track)
    anchor_label = f"{metric_label(config.primary_metric)} vs {config.bootstrap_anchor}"
    mine = as_num(_primary_anchor_slot(doc, name, config).get("bd_rate"))
    reasons = case.identical()
    if name in excluded and excluded[name] != case.identical_reason:
        reasons.append(excluded[name])
    elif ranked and ranked[0][1] != name:
        best_value, best = ranked[0]
        reasons.append(
            f"not the best reference candidate for the {case.track} track's first champion: {best} has "
            f"BD-rate {anchor_label} "
            f"{describe(best_value)}, {name} {describe(mine)}"
        )
    if reasons:
        return case.decide("rejected", reasons, bootstrap=True)
    plural = "s" if len(ranked) > 1 else ""
    first = (
        f"first {case.track} champion (no {case.track} champion in the ledger): the best of {len(ranked)} "
        f"passing {case.track} candidate{plural} on BD-rate {anchor_label}: {describe(mine)}"
    )
    return case.decide("adopted", [first], bootstrap=True)


def vs_champion_rule(case: _Case) -> Verdict:
    """Adopted when the candidate beats the champion by the margin with no clip or secondary metric
    regressing beyond its bound; rejected otherwise, or not judged without a comparison."""
    champion, name, config = case.champion, case.name, case.config
    assert champion is not None
    label = f"{champion.candidate} (seq {champion.seq})"
    if name == champion.candidate:
        if case.source == champion.source_sha256:
            reason = f"{name} is already the {case.track} champion ({label})"
        else:
            reason = (
                f"{name} changes the champion in place (adopted source {champion.source_sha256[:12]}, now "
                f"{(case.source or '?')[:12]}): add the change as a new candidate so it can be compared with the champion"
            )
        return case.decide("rejected", [reason, *case.identical()])
    vs, missing = _vs_champion(case.doc, name, champion)
    if vs is None:
        return case.decide("rejected", [missing, *case.identical()], judged=False)
    primary = config.primary_metric
    overall, per_clip = as_dict(vs.get("overall")), as_dict(vs.get("per_clip"))
    scores = case.scores
    scores["vs_champion"] = {m: as_num(as_dict(s).get("bd_rate")) for m, s in overall.items()}
    scores["vs_champion_per_clip"] = {
        clip: as_num(as_dict(as_dict(r).get(primary)).get("bd_rate")) for clip, r in per_clip.items()
    }
    scores["vs_champion_worst_clip"] = as_dict(overall.get(primary)).get("worst_clip")
    reasons = [
        *case.identical(),
        *_margin_reasons(case, overall),
        *_clip_reasons(case, per_clip),
        *_secondary_reasons(case, overall),
    ]
    if reasons:
        return case.decide("rejected", reasons)
    p_value = as_num(as_dict(overall.get(primary)).get("bd_rate"))
    worst = scores["vs_champion_worst_clip"]
    worst_text = ""
    worst_value = as_num(as_dict(as_dict(per_clip.get(worst)).get(primary)).get("bd_rate")) if worst else None
    if worst_value is not None:
        worst_text = f"; worst clip {worst}: {describe(worst_value)}"
    plabel = metric_label(primary)
    return case.decide(
        "adopted",
        [
            (
                f"beats {case.track} champion {champion.candidate} (seq {champion.seq}) on {plabel}: "
                f"{describe(p_value)} (margin {config.margin_percent:.1f} %){worst_text}"
            )
        ],
    )


def _margin_reasons(case: _Case, overall: Mapping) -> list[str]:
    """The primary metric's mean BD-rate against the champion must beat the margin."""
    config = case.config
    p_value = as_num(as_dict(overall.get(config.primary_metric)).get("bd_rate"))
    versus = (
        f"BD-rate vs {case.track} champion {case.champion.candidate} on {metric_label(config.primary_metric)}"
    )
    if p_value is None:
        return [f"{versus}: not comparable on any clip"]
    if p_value > -config.margin_percent:
        return [f"{versus}: {describe(p_value)}, needs at least {config.margin_percent:.1f} % fewer bits"]
    return []


def _clip_reasons(case: _Case, per_clip: Mapping) -> list[str]:
    """No clip may regress beyond its bound on the primary metric (or be left out, when required)."""
    config = case.config
    primary, plabel = config.primary_metric, metric_label(config.primary_metric)
    reasons = []
    for clip in list(as_dict(case.doc.get("clips"))) or list(per_clip):
        result = as_dict(as_dict(per_clip.get(clip)).get(primary))
        value = as_num(result.get("bd_rate"))
        if not result:
            reasons.append(f"no {plabel} comparison with the champion on {clip}")
        elif not result.get("comparable") or value is None:
            if config.require_all_clips_comparable:
                why = first_line(result.get("warning")) or "not comparable"
                reasons.append(f"{plabel} vs champion not comparable on {clip}: {why}")
        elif value > config.max_clip_regression_percent:
            reasons.append(
                f"regresses on {clip}: {describe(value)} than the champion on {plabel} "
                f"(limit +{config.max_clip_regression_percent:.1f} %)"
            )
    return reasons


def _secondary_reasons(case: _Case, overall: Mapping) -> list[str]:
    """Each secondary metric (the first available of its group) may not regress beyond its bound."""
    config = case.config
    reasons = []
    for metric in _secondary(config.secondary_metrics, overall):
        if isinstance(metric, tuple):
            if config.require_secondary:
                reasons.append(
                    f"no {' or '.join(metric_label(m) for m in metric)} comparison with the champion"
                )
            continue
        s_slot = as_dict(overall.get(metric))
        value = as_num(s_slot.get("bd_rate"))
        if value is None:
            reasons.append(f"{metric_label(metric)} vs champion not comparable on any clip")
            continue
        if s_slot.get("excluded") and config.require_all_clips_comparable:
            clip, why = next(iter(as_dict(s_slot.get("excluded")).items()))
            reasons.append(f"{metric_label(metric)} vs champion not comparable on {clip}: {first_line(why)}")
        if value > config.max_secondary_regression_percent:
            reasons.append(
                f"{metric_label(metric)} regresses: {describe(value)} than the champion "
                f"(limit +{config.max_secondary_regression_percent:.1f} %)"
            )
    return reasons


def decide_all(
    doc: Mapping,
    *,
    config: AdoptionConfig,
    ledger: Ledger | Sequence[LedgerEntry] | None,
    names: Iterable[str] | None = None,
    established: Collection[str] = (),
) -> dict[str, Verdict]:
    """A verdict for each candidate of the report (or each of `names`), in report order."""
    entries = ledger_entries(ledger)
    wanted = list(as_dict(doc.get("candidates"))) if names is None else list(names)
    return {
        name: verdict(doc, name, config=config, ledger=entries, established=established) for name in wanted
    }


def best_candidate(
    doc: Mapping, *, config: AdoptionConfig, ledger: Ledger | Sequence[LedgerEntry] | None,
    track: Track = "native",
) -> str:
    """The adoptable candidate of `track` in the report with the best primary BD-rate (vs its
    champion, or vs the anchor)."""
    if track not in TRACKS:
        raise AdoptionError(f"unknown track {track!r}; tracks are {', '.join(TRACKS)}")
    names = [n for n in as_dict(doc.get("candidates")) if candidate_track(doc, n) == track]
    verdicts = decide_all(doc, config=config, ledger=ledger, names=names)
    adoptable = [v for v in verdicts.values() if v.adoptable]
    if not adoptable:
        lines = "; ".join(f"{n}: {v.decision}: {v.reason}" for n, v in verdicts.items())
        raise AdoptionError(
            f"no {track} candidate in the report is adoptable ({lines or f'no {track} candidates'})"
        )

    def key(v: Verdict) -> tuple[float, str]:
        vs = as_dict(v.scores.get("vs_champion")).get(config.primary_metric)
        if vs is None:
            vs = as_dict(as_dict(v.scores.get("vs_anchor")).get(config.bootstrap_anchor)).get(
                config.primary_metric
            )
        return (vs if vs is not None else math.inf, v.candidate)

    return min(adoptable, key=key).candidate
