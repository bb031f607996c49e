"""Recording decisions: `adopt` appends a report's verdict to the ledger; the ledger as a table; the CLI.

`adopt(report, name, ledger=, candidates_dir=, config=)` checks that the report is current (the
candidate's source hash on disk equals the report's) and appends an "adopted" entry, or a
"rejected" one when the candidate passed but did not beat the champion. `python -m harness adopt`
and `python -m harness ledger` are registered here.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.adoption.config import (
    DEFAULT_LEDGER,
    AdoptionConfig,
    AdoptionError,
    default_config_path,
    load_adoption_config,
)
from harness.adoption.rules import Verdict, best_candidate, champion_of, verdict
from harness.adoption.scores import as_dict, as_num, report_basis
from harness.candidate import CandidateSource, discover_candidates
from harness.ledger import LEGACY_TRACK, TRACKS, Decision, Ledger, LedgerEntry, Track, champions
from harness.results import load_report
from harness.schema import ReportError

__all__ = ["adopt", "ledger_entry", "ledger_table", "load_doc", "register"]


def load_doc(report_path: Path) -> tuple[dict, str]:
    """The report (read, validated and typed by harness.results.load_report) and its file's sha256."""
    try:
        data = report_path.read_bytes()
    except OSError as err:
        raise AdoptionError(f"cannot read the report {report_path}: {err}") from err
    try:
        results = load_report(report_path)
    except ReportError as err:
        raise AdoptionError(f"{report_path} is not a valid benchmark report: {err}") from err
    return results.to_json(), hashlib.sha256(data).hexdigest()


def check_profile(doc: Mapping, profile: str, report_path: Path) -> None:
    """Refuse a report not run on `profile` as it is (no --clips / --frames given over it): a verdict
    on 10 frames of three clips says little about a codec against HEVC."""
    settings = as_dict(doc.get("settings"))
    ran = settings.get("profile")
    over = settings.get("profile_overrides") or []
    if ran == profile and not over:
        return
    what = (
        f"the {ran} profile" + (f" with {' and '.join(map(str, over))} given over it" if over else "")
        if isinstance(ran, str) else "no profile (a report from before profiles: the quick run)"
    )
    raise AdoptionError(
        f"{report_path} was judged on {what}; adoption decisions use the {profile} profile: run "
        f"`pytest benchmarks/ --profile {profile}` and adopt from that report (or pass --any-profile)"
    )


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
    profile: str | None = None,
) -> LedgerEntry:
    """Record the decision about `name` from a report: an "adopted" entry, or a "rejected" one.

    Raises AdoptionError (nothing recorded) when the candidate is unknown, the report is stale
    (its source hash differs from the file in `candidates_dir`), it did not pass, the report
    cannot support a decision (no comparison with the ledger's champion), or the same source was
    already rejected against the same champion (unless `force_record_rejection`).
    """
    report_path = Path(report_path)
    doc, report_sha = load_doc(report_path)
    if profile is not None:
        check_profile(doc, profile, report_path)
    judged_sha, on_disk = _current_source(doc, name, report_path, candidates_dir)
    entries = ledger.entries()
    known = {e.candidate for e in entries} | set(on_disk)
    if parent is not None and parent not in known:
        raise AdoptionError(f"unknown parent {parent!r}: neither in the ledger nor in {candidates_dir}")
    v = verdict(doc, name, config=config, ledger=entries)
    if v.decision == "failed":
        raise AdoptionError(f"{name} did not pass the suite: {v.reason}")
    if not v.judged:
        raise AdoptionError(f"cannot decide about {name} from {report_path}: {v.reason}")
    champion = champion_of(entries, v.track)
    if not v.adoptable and not force_record_rejection:
        _refuse_repeated_rejection(entries, name, judged_sha, champion)
    entry = ledger_entry(
        name,
        judged_sha,
        decision="adopted" if v.adoptable else "rejected",
        reason=v.reason,
        parent=parent,
        champion=champion,
        verdict=v,
        report=_report_label(report_path, report_sha),
        report_sha256=report_sha,
        reasons=v.reasons,
        extra={
            "basis": report_basis(doc),
            "bootstrap": v.bootstrap,
            "report_created_utc": doc.get("created_utc"),
            "profile": as_dict(doc.get("settings")).get("profile"),
            "git": doc.get("git"),
            "config": config.to_json(),
        },
    )
    return ledger.append(entry)


def ledger_entry(
    name: str,
    source_sha256: str,
    *,
    decision: Decision,
    reason: str,
    parent: str | None,
    champion: LedgerEntry | None,
    verdict: Verdict | None = None,
    report: str | None = None,
    report_sha256: str | None = None,
    reasons: Sequence[str] | None = None,
    identical_to: str | None = None,
    extra: Mapping[str, object] | None = None,
    track: Track = "native",
) -> LedgerEntry:
    """The one builder of a ledger entry (not yet appended: `Ledger.append` stamps seq and time).

    The entry's track is the verdict's (the track the report judged the candidate in), else `track`.
    Scores, fingerprint and the identical flag come from `verdict` (none: empty scores, no
    fingerprint); `identical_to` overrides the verdict's. `extra` holds "reasons" (`reasons`, else
    [`reason`]) and "champion" (the champion judged against: name and seq, or None), then the
    caller's `extra` keys (which win on a clash). Used by `adopt` and by the evolution loop
    (harness/evolve/judge.py), so every entry has the same shape.
    """
    return LedgerEntry(
        candidate=name,
        track=verdict.track if verdict is not None else track,
        source_sha256=source_sha256,
        decision=decision,
        reason=reason,
        parent=parent,
        report=report,
        report_sha256=report_sha256,
        scores=verdict.scores if verdict is not None else {},
        fingerprint=verdict.fingerprint if verdict is not None else None,
        identical_to=identical_to or (verdict.identical_to if verdict is not None else None),
        extra={
            "reasons": list(reasons) if reasons is not None else [reason],
            "champion": {"name": champion.candidate, "seq": champion.seq} if champion else None,
            **(extra or {}),
        },
    )


def _current_source(
    doc: dict, name: str, report_path: Path, candidates_dir: str | os.PathLike[str]
) -> tuple[str, dict[str, CandidateSource]]:
    """The source hash the report judged `name` with, checked against the file on disk (and the
    candidates on disk); AdoptionError when the candidate is unknown or the report is stale."""
    cands = as_dict(doc.get("candidates"))
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
    return judged_sha, on_disk


def _refuse_repeated_rejection(
    entries: Sequence[LedgerEntry], name: str, judged_sha: str, champion: LedgerEntry | None
) -> None:
    """AdoptionError when this source was already rejected against the same champion."""
    earlier = next(
        (
            e
            for e in reversed(entries)
            if e.decision == "rejected"
            and e.candidate == name
            and e.source_sha256 == judged_sha
            and as_dict(e.extra.get("champion")).get("seq") == (champion.seq if champion else None)
        ),
        None,
    )
    if earlier is not None:
        raise AdoptionError(
            f"{name} (source {judged_sha[:12]}) was already rejected against this champion (seq {earlier.seq}): "
            f"{earlier.reason}; use --force-record to record it again"
        )


def _fmt(value: object) -> str:
    v = as_num(value)
    return "n/a" if v is None else f"{v:+.1f} %"


def ledger_table(entries: Sequence[LedgerEntry], *, primary: str = "psnr_yuv", anchor: str = "x265") -> str:
    """The ledger as a plain-text table and one champion line per track."""
    head = (
        "seq",
        "time (UTC)",
        "track",
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
        vs_anchor = as_dict(as_dict(e.scores.get("vs_anchor")).get(anchor)).get(primary)
        vs_champ = as_dict(e.scores.get("vs_champion")).get(primary)
        reason = e.reason if len(e.reason) <= 90 else e.reason[:89] + "…"
        if e.identical_to:
            reason = f"[identical to {e.identical_to}] {reason}"
        rows.append(
            (
                str(e.seq),
                e.time_utc.replace("+00:00", "Z"),
                e.track + ("*" if e.schema == 1 else ""),
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
    if any(e.schema == 1 for e in entries):
        lines.append(f"* written before tracks (ledger schema 1): read as the {LEGACY_TRACK} track's")
    for track, champion in champions(entries).items():
        if champion is None:
            lines.append(
                f"{track} champion: none yet — seed it from a full run: pytest benchmarks/ --profile standard && "
                f"python -m harness adopt reports/latest.json --best --track {track}"
            )
        else:
            lines.append(
                f"{track} champion: {champion.candidate} (seq {champion.seq}, source "
                f"{champion.source_sha256[:12]}, adopted {champion.time_utc})"
            )
    return "\n".join(lines)


def _decision_profile() -> str:
    """fixtures/suite.toml [profiles] decisions (of the working directory, else beside this package)."""
    from harness.config import load_suite_config

    here = Path("fixtures") / "suite.toml"
    return load_suite_config(here if here.is_file() else Path(__file__).resolve().parents[2] / here).decision_profile


def _cli_adopt(args: argparse.Namespace) -> int:
    config = load_adoption_config(args.config or default_config_path())
    if args.waive_heldout:
        config = dataclasses.replace(config, require_heldout=False)  # recorded with the entry's config
        print("held-out check waived: the decision rests on the public clips alone", file=sys.stderr)
    ledger = Ledger(args.ledger)
    if bool(args.candidate) == bool(args.best):
        raise AdoptionError("name one CANDIDATE or pass --best (the best adoptable candidate of the report)")
    name = args.candidate
    if args.best:
        doc, _ = load_doc(Path(args.report))
        name = best_candidate(doc, config=config, ledger=ledger, track=args.track)
    entry = adopt(
        args.report,
        name,
        ledger=ledger,
        candidates_dir=args.candidates_dir,
        config=config,
        parent=args.parent,
        force_record_rejection=args.force_record,
        profile=None if args.any_profile else (args.profile or _decision_profile()),
    )
    print(
        f"{entry.decision}: {entry.candidate} (seq {entry.seq}, source {entry.source_sha256[:12]}, "
        f"{entry.track} track)"
    )
    for reason in as_dict(entry.extra).get("reasons") or [entry.reason]:
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
        description="Judge CANDIDATE of a benchmark report against its track's champion with the thresholds of "
        "fixtures/adoption.toml and append the decision to the ledger. Refuses (exit 2, nothing recorded) when the "
        "report is stale, the candidate is unknown or did not pass. Exit 0 adopted, 1 rejected (recorded).",
    )
    p.add_argument("report", help="a JSON report written by pytest benchmarks/ (e.g. reports/latest.json)")
    p.add_argument("candidate", nargs="?", help="the candidate's name")
    p.add_argument(
        "--best", action="store_true",
        help="the best adoptable candidate of the report in --track (seeds the track's champion)",
    )
    p.add_argument(
        "--track", choices=TRACKS, default="native",
        help="with --best: the track to choose from (default native); a named CANDIDATE is judged in the "
        "track the report gives it",
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
    p.add_argument(
        "--profile", default=None,
        help="the profile the report must have been run on (default: fixtures/suite.toml [profiles] decisions: standard)",
    )
    p.add_argument(
        "--any-profile", action="store_true",
        help="decide on a report of any profile (e.g. a quick run; its profile is recorded in the entry)",
    )
    p.add_argument(
        "--waive-heldout", action="store_true",
        help="decide without held-out clips in the report (recorded in the entry; a result flagged too good "
        "to be true is still refused)",
    )
    p.set_defaults(func=_cli_adopt)

    q = subparsers.add_parser(
        "ledger",
        help="print the adoption ledger and the current champion",
        description="Print every ledger entry as a table and each track's champion (its last adopted entry).",
    )
    q.add_argument("--ledger", default=str(DEFAULT_LEDGER), help="the ledger (default: ledger.jsonl)")
    q.add_argument("--config", default=None, help="adoption thresholds (for the metric shown)")
    q.add_argument("--json", action="store_true", help="print the entries as JSON Lines")
    q.set_defaults(func=_cli_ledger)
