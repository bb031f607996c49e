"""The CI gate for candidate pull requests, as one local command: `python -m harness gate --base main`.

1. Finds the candidates added or changed relative to `--base` (`git diff base...HEAD`, plus
   uncommitted and untracked files, under candidates/; a package counts by its folder; deleted
   candidates are listed, not judged).
2. Runs `python -m pytest benchmarks/test_codecs.py --profile standard --candidates <those>` in a subprocess
   (`harness.suite.run_suite`, in the repository): the same code path as `pytest benchmarks/`. The plugin adds
   each track's champion to the run; for a track with no champion yet that has a changed candidate,
   every candidate of that track runs, so that the first-champion rule (the track's best reference
   candidate) can be applied (a track the change does not touch does not run).
3. Judges each changed candidate with harness.adoption against the *base branch's* ledger and
   adoption thresholds (a pull request cannot lower its own bar), writes a short Markdown summary
   and exits 0 only when every changed candidate is adoptable (1 when one is not, 2 on a usage
   error; "no candidate changed" is 0).

The gate never writes the ledger: adoption after merge is `python -m harness adopt`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.adoption import (
    DEFAULT_CONFIG,
    DEFAULT_LEDGER,
    AdoptionConfig,
    Verdict,
    decide_all,
    load_adoption_config,
    metric_label,
    parse_adoption_config,
)
from harness.bdrate import describe
from harness.candidate import discover_candidates
from harness.errors import HarnessError
from harness.ledger import Ledger, LedgerEntry, Track, champions
from harness.markdown import md_code, md_escape
from harness.session import HELDOUT_ENV, heldout_set
from harness.suite import SuiteOptions, run_suite

__all__ = ["GateError", "GateResult", "changed_candidates", "decision_profile", "register", "render_summary", "run_gate"]

MARKER = "<!-- codec-harness candidate gate -->"
CANDIDATES = "candidates"
# Paths whose change alters how candidates are judged: a pull request touching them with a
# candidate needs a person's review (the gate still judges with the working tree's suite).
JUDGE_PATHS = ("harness/", "benchmarks/", "fixtures/", "conftest.py", "pyproject.toml", "ledger.jsonl")
ICONS = {"adopted": "✅", "rejected": "❌", "failed": "💥"}


class GateError(HarnessError):
    """The gate cannot run: not a git repository, unknown base, pytest did not produce a report."""


@dataclass
class GateResult:
    exit_code: int
    changed: list[str]
    removed: list[str] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    report: Path | None = None
    summary: str = ""
    champion: LedgerEntry | None = None  # the native track's
    champions: dict[Track, LedgerEntry | None] = field(default_factory=dict)
    pytest_status: int | None = None


# ----------------------------------------------------------------------------- git


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise GateError(f"cannot run git: {err}") from err
    if check and out.returncode != 0:
        raise GateError(f"git {' '.join(args)} failed: {out.stderr.decode(errors='replace').strip()}")
    return out


def _paths(out: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [p.decode("utf-8", errors="surrogateescape") for p in out.stdout.split(b"\0") if p]


def _candidate_name(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != CANDIDATES:
        return None
    name = parts[1]
    if name.startswith((".", "_")):
        return None
    if len(parts) == 2:
        return name[:-3] if name.endswith(".py") else None
    return None if "__pycache__" in parts else name


def _check_repo(repo: Path, base: str) -> None:
    if _git(repo, "rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        raise GateError(f"{repo} is not a git repository")
    if _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False).returncode != 0:
        raise GateError(
            f"unknown base {base!r}: no such branch or commit in {repo} (fetch it, e.g. git fetch origin)"
        )


def changed_paths(repo: Path, base: str) -> list[str]:
    """Paths changed on this branch since it left `base`, plus uncommitted and untracked ones."""
    found = _paths(_git(repo, "diff", "--name-only", "--no-renames", "-z", f"{base}...HEAD"))
    found += _paths(_git(repo, "diff", "--name-only", "--no-renames", "-z", "HEAD"))
    found += _paths(_git(repo, "ls-files", "--others", "--exclude-standard", "-z"))
    return sorted(set(found))


def changed_candidates(repo: str | os.PathLike[str], base: str) -> tuple[list[str], list[str]]:
    """(added or changed candidates that exist now, candidates that were removed), by name."""
    repo = Path(repo)
    _check_repo(repo, base)
    names = {n for p in changed_paths(repo, base) if (n := _candidate_name(p))}
    folder = repo / CANDIDATES
    present = {c.name for c in discover_candidates(folder)} if folder.is_dir() else set()
    return sorted(names & present), sorted(names - present)


def _judges(path: str) -> bool:
    """Whether a changed path can change how candidates are judged (see JUDGE_PATHS)."""
    if "__pycache__" in path.split("/") or path.endswith(".pyc"):
        return False
    return any(path.startswith(p) if p.endswith("/") else path == p for p in JUDGE_PATHS)


def _base_file(repo: Path, base: str, path: str) -> bytes | None:
    out = _git(repo, "show", f"{base}:{path}", check=False)
    return out.stdout if out.returncode == 0 else None


# ----------------------------------------------------------------------------- summary


def _md(text: object, limit: int = 220) -> str:
    """One line of untrusted text, safe in a Markdown table or paragraph (`md_escape`)."""
    return md_escape(text, limit)


def _name(text: str) -> str:
    """A candidate's (or a git revision's) name as a code span, safe in a table (`md_code`, never cut)."""
    return md_code(text, None)


def _bd(value: object) -> str:
    return describe(value if isinstance(value, (int, float)) else None)


def _secondary_cell(v: Verdict, config: AdoptionConfig) -> str:
    vs = v.scores.get("vs_champion") or {}
    parts = []
    for group in config.secondary_metrics:
        metric = next((m for m in group if m in vs), None)
        if metric is not None:
            parts.append(f"{metric_label(metric)} {_bd(vs[metric])}")
    return "; ".join(parts) or "–"


def render_summary(
    *,
    base: str,
    changed: Sequence[str],
    removed: Sequence[str],
    verdicts: Mapping[str, Verdict],
    config: AdoptionConfig,
    champion: LedgerEntry | None,
    report_label: str | None,
    doc: Mapping | None,
    notes: Sequence[str] = (),
    exit_code: int = 0,
    champions: Mapping[Track, LedgerEntry | None] | None = None,
) -> str:
    """The Markdown comment: a verdict line per changed candidate with BD-rate vs x265 and its track's
    champion. `champions` (track -> champion) defaults to `champion` as the native track's."""
    lines = [MARKER]
    if not changed:
        lines += [
            "## Candidate gate: no candidate changed",
            "",
            f"No candidate under `candidates/` was added or changed relative to {_name(base)}; nothing to judge.",
        ]
        if removed:
            lines.append(f"Removed (not judged): {', '.join(_name(n) for n in removed)}.")
        return "\n".join(lines) + "\n"
    ok = exit_code == 0
    lines.append(f"## Candidate gate: {'✅ adoptable' if ok else '❌ not adoptable'}")
    lines.append("")
    champ = _champions_text(champions if champions is not None else {"native": champion}, verdicts)
    lines.append(f"Changed vs {_name(base)}: {', '.join(_name(n) for n in changed)}; {champ}.")
    if removed:
        lines.append(f"Removed (not judged): {', '.join(_name(n) for n in removed)}.")
    lines += _verdict_table(changed, verdicts, config)
    lines += _verdict_reasons(changed, verdicts)
    for note in notes:
        lines += ["", f"> ⚠ {_md(note, 400)}"]
    lines.append("")
    lines += _summary_footer(changed, verdicts, config, report_label, doc)
    return "\n".join(lines) + "\n"


def _champions_text(champions: Mapping[Track, LedgerEntry | None], verdicts: Mapping[str, Verdict]) -> str:
    """Each champion the changed candidates were judged against (every track's when none was judged)."""
    tracks = [t for t in champions if any(v.track == t for v in verdicts.values())] or list(champions)
    parts = []
    for track in tracks:
        c = champions.get(track)
        parts.append(
            f"{track} champion {_name(c.candidate)} (ledger seq {c.seq})" if c else
            f"no {track} champion yet: the best passing {track} candidate becomes the first (every {track} "
            "candidate ran)"
        )
    return "; ".join(parts)


def _verdict_table(changed: Sequence[str], verdicts: Mapping[str, Verdict], config: AdoptionConfig) -> list[str]:
    """The summary's table: one row per changed candidate (its lines, a blank line first)."""
    primary = config.primary_metric
    anchor = config.bootstrap_anchor
    lines = [
        "",
        (
            f"| Candidate | Track | Verdict | {metric_label(primary)} vs {anchor} | {metric_label(primary)} vs champion "
            "| Worst clip vs champion | Secondary vs champion |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for name in changed:
        v = verdicts[name]
        vs_anchor = ((v.scores.get("vs_anchor") or {}).get(anchor) or {}).get(primary)
        vs_champ = (v.scores.get("vs_champion") or {}).get(primary)
        worst = v.scores.get("vs_champion_worst_clip")
        worst_value = (v.scores.get("vs_champion_per_clip") or {}).get(worst) if worst else None
        worst_cell = f"{_md(worst, 60)}: {_bd(worst_value)}" if worst else "–"
        word = "adoptable" if v.adoptable else v.decision
        lines.append(
            f"| {_name(name)} | {v.track} | {ICONS.get(v.decision, '')} {word} | {_bd(vs_anchor)} | "
            f"{_bd(vs_champ) if v.scores.get('vs_champion') else '–'} | {worst_cell} | {_secondary_cell(v, config)} |"
        )
    return lines


def _verdict_reasons(changed: Sequence[str], verdicts: Mapping[str, Verdict]) -> list[str]:
    """The summary's list: each changed candidate's verdict and reason, up to four more reasons."""
    lines = [""]
    for name in changed:
        v = verdicts[name]
        lines.append(f"- **{_name(name)}** — {'adoptable' if v.adoptable else v.decision}: {_md(v.reason)}")
        for extra in v.reasons[1:5]:
            lines.append(f"  - {_md(extra)}")
        if len(v.reasons) > 5:
            lines.append(f"  - … and {len(v.reasons) - 5} more")
    return lines


def _summary_footer(
    changed: Sequence[str],
    verdicts: Mapping[str, Verdict],
    config: AdoptionConfig,
    report_label: str | None,
    doc: Mapping | None,
) -> list[str]:
    """The summary's last lines: the thresholds and clips, and how to adopt after merge."""
    primary = config.primary_metric
    settings = (doc or {}).get("settings") or {}
    clips = ", ".join(_md(c, 60) for c in ((doc or {}).get("clips") or {}))
    lines = []
    lines.append(
        f"Thresholds (fixtures/adoption.toml): {metric_label(primary)} BD-rate vs champion ≤ −{config.margin_percent:g} %, "
        f"no clip over +{config.max_clip_regression_percent:g} %, secondary over +{config.max_secondary_regression_percent:g} %. "
        f"Profile {_md(settings.get('profile', 'n/a'))}"
        f"{' (' + _md(', '.join(settings['profile_overrides'])) + ' given over it)' if settings.get('profile_overrides') else ''}; "
        f"clips: {clips or 'n/a'} ({_md(settings.get('frames'))} frames at most)."
    )
    adoptable = [n for n in changed if verdicts[n].adoptable]
    hint = (
        md_code(f"python -m harness adopt {report_label or 'REPORT.json'} {adoptable[0]}", None)
        if adoptable
        else "`python -m harness adopt REPORT.json CANDIDATE`"
    )
    lines.append(
        f"The gate does not write the ledger: after merge, adopt with {hint} "
        "(from a report of the merged tree; it refuses a stale report)."
    )
    return lines


# ----------------------------------------------------------------------------- running


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _render_html(report: Path, doc: Mapping) -> str | None:
    """Write the HTML page beside the report unless the suite already did; a note if it cannot."""
    target = report.with_suffix(".html")
    if target.exists():
        return None
    try:
        from harness.render import render_html

        target.write_text(render_html(doc), encoding="utf-8")
    except Exception as err:  # noqa: BLE001 - the page is a convenience; the verdict does not depend on it
        return f"HTML report not written: {type(err).__name__}: {err}"
    return None


def decision_profile(root: Path) -> str:
    """The profile verdicts are decided on: fixtures/suite.toml [profiles] decisions of the project at
    `root` (else of the harness's own checkout)."""
    from harness.config import load_suite_config

    own = Path(__file__).resolve().parents[1] / "fixtures" / "suite.toml"
    path = root / "fixtures" / "suite.toml"
    return load_suite_config(path if path.is_file() else own).decision_profile


def run_gate(
    repo: str | os.PathLike[str] = ".",
    *,
    base: str = "main",
    profile: str | None = None,
    clips: str | None = None,
    frames: int | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    summary_path: str | os.PathLike[str] | None = None,
    ledger_path: str | os.PathLike[str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    sandbox: str | None = None,
    heldout: str | None = None,
    waive_heldout: bool = False,
    pytest_args: Sequence[str] = (),
    python: str = sys.executable,
) -> GateResult:
    """Judge the changed candidates of `repo` against `base` (see the module docstring).

    Held-out clips (`heldout`, else $CODEC_HARNESS_HELDOUT: a folder or manifest outside the
    repository) are judged beside the public ones; without them no candidate is adoptable unless
    `waive_heldout` (said in the summary). `profile` (default: the suite's decisions profile,
    fixtures/suite.toml [profiles] decisions: standard) picks the clips and frames; `clips` and
    `frames` override it."""
    repo = Path(repo).resolve()
    profile = profile or decision_profile(repo)
    heldout = heldout_set(heldout)
    if frames is not None and frames < 1:
        raise GateError(f"--frames must be at least 1, got {frames}")
    changed, removed = changed_candidates(repo, base)
    notes: list[str] = []

    # The ledger and the thresholds come from the base branch unless given: a pull request
    # cannot seed a champion or lower the bar it is judged by.
    with tempfile.TemporaryDirectory(prefix="codec-gate-") as tmp:
        ledger_file = _gate_ledger(repo, base, ledger_path, Path(tmp), notes)
        config = _gate_config(repo, base, config_path, heldout=heldout, waive_heldout=waive_heldout, notes=notes)
        entries = Ledger(ledger_file).entries()
        champs = champions(entries)
        champion = champs["native"]
        _note_judge_changes(repo, base, changed, notes)
        notes += working_tree_notes(repo)

        result = GateResult(exit_code=0, changed=changed, removed=removed, champion=champion, champions=champs)
        if not changed:
            result.summary = render_summary(
                base=base, changed=[], removed=removed, verdicts={}, config=config, champion=champion,
                report_label=None, doc=None, champions=champs,
            )
            return _finish(result, summary_path)

        options = SuiteOptions(
            profile=profile,
            clips=clips,
            frames=frames,
            candidates=tuple(_suite_candidates(repo, changed, champs)),
            report_dir=_report_dir(repo, report_dir),
            ledger=ledger_file,
            cache_dir=cache_dir,
            sandbox=sandbox or "bwrap",
            heldout=heldout,
        )
        report, doc = _run_the_suite(options, repo, pytest_args, python, result)
        result.report = report
        result.verdicts = _gate_verdicts(doc, changed, config, entries)
        notes += _report_notes(report, doc)
        result.exit_code = 0 if all(v.adoptable for v in result.verdicts.values()) else 1
        result.summary = render_summary(
            base=base,
            changed=changed,
            removed=removed,
            verdicts=result.verdicts,
            config=config,
            champion=champion,
            champions=champs,
            report_label=_relative(report, repo),
            doc=doc,
            notes=notes,
            exit_code=result.exit_code,
        )
        return _finish(result, summary_path)


def _gate_ledger(
    repo: Path, base: str, ledger_path: str | os.PathLike[str] | None, tmp: Path, notes: list[str]
) -> Path:
    """The ledger to judge against: `ledger_path`, else the base branch's (copied into `tmp`)."""
    if ledger_path is not None:
        return Path(ledger_path)
    data = _base_file(repo, base, DEFAULT_LEDGER.as_posix()) or b""
    ledger_file = tmp / "ledger.jsonl"
    ledger_file.write_bytes(data)
    here = repo / DEFAULT_LEDGER
    if (here.read_bytes() if here.exists() else b"") != data:
        notes.append(f"this change edits {DEFAULT_LEDGER}; the gate judged against {base}'s ledger")
    return ledger_file


def _gate_config(
    repo: Path,
    base: str,
    config_path: str | os.PathLike[str] | None,
    *,
    heldout: str | None,
    waive_heldout: bool,
    notes: list[str],
) -> AdoptionConfig:
    """The adoption thresholds: `config_path`, else the base branch's (else the working tree's); held-out notes."""
    if config_path is not None:
        config = load_adoption_config(config_path)
    else:
        data = _base_file(repo, base, DEFAULT_CONFIG.as_posix())
        if data is not None:
            text = data.decode("utf-8", errors="replace")
            config = parse_adoption_config(text, f"{base}:{DEFAULT_CONFIG}")
        else:
            config = load_adoption_config(repo / DEFAULT_CONFIG)
    if waive_heldout:
        config = dataclasses.replace(config, require_heldout=False)
        notes.append("the held-out check was waived: the verdicts rest on the public clips alone")
    elif not heldout:
        notes.append(f"no held-out clips configured ({HELDOUT_ENV}): no candidate can be adopted")
    return config


def _note_judge_changes(repo: Path, base: str, changed: Sequence[str], notes: list[str]) -> None:
    """A note when the change also edits how candidates are judged (JUDGE_PATHS): a person reviews it."""
    judge_changes = [p for p in changed_paths(repo, base) if _judges(p)]
    if changed and judge_changes:
        notes.append(
            "this change also edits how candidates are judged ("
            + ", ".join(judge_changes[:8])
            + (", …" if len(judge_changes) > 8 else "")
            + "): a person must review it"
        )


def working_tree_notes(repo: Path) -> list[str]:
    """Notes on candidates judged from the working tree rather than from commits: untracked or
    uncommitted ones (judged here, but a pull request of the branch would not carry them as judged),
    and files git ignores inside a candidate package (the suite reads them, a clone would lack them)."""
    def under_candidates(*args: str) -> list[str]:
        return [p for p in _paths(_git(repo, *args)) if _candidate_name(p) and not p.endswith(".pyc")]

    notes = []
    untracked = under_candidates("ls-files", "--others", "--exclude-standard", "-z")
    uncommitted = under_candidates("diff", "--name-only", "--no-renames", "-z", "HEAD")
    ignored = [
        p for p in under_candidates("ls-files", "--others", "--ignored", "--exclude-standard", "-z")
        if "__pycache__" not in p.split("/")
    ]
    for paths, what in (
        (untracked, "untracked (not in any commit): judged from the working tree, but not part of the branch"),
        (uncommitted, "changed since the last commit: judged as they are now, not as committed"),
        (ignored, "ignored by git: read by the suite, absent from a clone of the branch"),
    ):
        if paths:
            listed = ", ".join(paths[:8]) + (", …" if len(paths) > 8 else "")
            notes.append(f"{listed} {'is' if len(paths) == 1 else 'are'} {what}")
    return notes


def _suite_candidates(
    repo: Path, changed: Sequence[str], champs: Mapping[Track, LedgerEntry | None]
) -> list[str]:
    """The candidates the suite runs: the changed ones; for each track that has a changed candidate
    but no champion, every candidate of that track (the plugin adds each track's champion). A track
    with no changed candidate adds nothing, champion or not."""
    run = list(changed)
    found = discover_candidates(repo / CANDIDATES)
    track_of = {c.name: getattr(c, "track", "native") for c in found}
    # First-champion rule: the track's best passing candidate of all, so all of the track run.
    championless = {track_of[n] for n in changed if n in track_of and champs.get(track_of[n]) is None}
    run += [c.name for c in found if c.name not in run and not c.problem and track_of[c.name] in championless]
    return run


def _report_dir(repo: Path, report_dir: str | os.PathLike[str] | None) -> Path:
    out_dir = Path(report_dir) if report_dir else repo / "reports"
    if not out_dir.is_absolute():
        out_dir = repo / out_dir
    return out_dir


def _run_the_suite(
    options: SuiteOptions, repo: Path, pytest_args: Sequence[str], python: str, result: GateResult
) -> tuple[Path, dict]:
    """The suite run (its exit status in `result`): its report and the document read from it, once."""
    suite = run_suite(options, root=repo, pytest_args=("-q", "-rfE", "--tb=short", *pytest_args), python=python)
    status = result.pytest_status = suite.returncode
    if status not in (0, 1) or suite.report is None:
        raise GateError(
            f"pytest benchmarks/ exited with status {status} and "
            + ("wrote no report" if suite.report is None else f"wrote {suite.report}")
            + " (see its output above)"
        )
    if suite.results is None:
        raise GateError(suite.problem or f"cannot read the report {suite.report}")
    return suite.report, suite.results.to_json()  # read once, by harness.results.load_report


def _gate_verdicts(
    doc: dict, changed: Sequence[str], config: AdoptionConfig, entries: Sequence[LedgerEntry]
) -> dict[str, Verdict]:
    """A verdict per changed candidate, in order; one the report does not judge has failed."""
    judged = [n for n in changed if n in (doc.get("candidates") or {})]
    unchanged = [n for n in (doc.get("candidates") or {}) if n not in changed]
    verdicts = decide_all(doc, config=config, ledger=entries, names=judged, established=unchanged)
    for name in changed:
        if name not in verdicts:
            verdicts[name] = Verdict(
                candidate=name,
                decision="failed",
                adoptable=False,
                scores={},
                reasons=[f"not judged: the report has no results for {name} (see the pytest output)"],
            )
    return {n: verdicts[n] for n in changed}


def _report_notes(report: Path, doc: Mapping) -> list[str]:
    """Notes from the run: the champion's warning, an HTML page that could not be written."""
    notes = []
    for champ_info in (doc.get("champions") or {"native": doc.get("champion")}).values():
        if isinstance(champ_info, dict) and champ_info.get("warning"):
            notes.append(str(champ_info["warning"]))
    for clip, why in ((doc.get("settings") or {}).get("dropped_clips") or {}).items():
        notes.append(f"clip {clip} was left out of judging, not blamed on any candidate: {why}")
    note = _render_html(report, doc)
    if note:
        notes.append(note)
    return notes


def _finish(result: GateResult, summary_path: str | os.PathLike[str] | None) -> GateResult:
    if summary_path:
        path = Path(summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(result.summary, encoding="utf-8")
    return result


# ----------------------------------------------------------------------------- command line


def _cli_gate(args: argparse.Namespace) -> int:
    extra = [a for a in args.pytest_args or [] if a != "--"]
    result = run_gate(
        args.repo,
        base=args.base,
        profile=args.profile,
        clips=args.clips,
        frames=args.frames,
        report_dir=args.report_dir,
        summary_path=args.summary,
        ledger_path=args.ledger,
        config_path=args.config,
        cache_dir=args.cache_dir,
        sandbox=args.sandbox,
        heldout=args.heldout,
        waive_heldout=args.waive_heldout,
        pytest_args=extra,
    )
    print(result.summary)
    if result.report:
        print(f"gate: report {result.report}", file=sys.stderr)
    return result.exit_code


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `gate` subcommand to the harness CLI."""
    p = subparsers.add_parser(
        "gate",
        help="the CI gate: judge the candidates changed relative to a base branch",
        description="Run the suite on the candidates added or changed relative to --base (plus the champion), "
        "judge them against the base branch's ledger and fixtures/adoption.toml, and write a Markdown summary. "
        "Exit 0 when every changed candidate is adoptable (or none changed), 1 when one is not, 2 on errors. "
        "Never writes the ledger. Arguments after -- go to pytest.",
    )
    p.add_argument("--base", default="main", help="the branch or commit to compare with (default: main)")
    p.add_argument("--repo", default=".", help="the repository (default: .)")
    p.add_argument(
        "--profile", default=None,
        help="the suite's profile (default: fixtures/suite.toml [profiles] decisions, i.e. standard: longer clips)",
    )
    p.add_argument(
        "--clips", default=None, help="clip set, folder or manifest over the profile's (default: the profile's)"
    )
    p.add_argument("--frames", type=int, default=None, help="frames per clip over the profile's (default: the profile's)")
    p.add_argument("--report-dir", default=None, help="where the JSON report goes (default: <repo>/reports)")
    p.add_argument("--summary", default=None, metavar="OUT.md", help="write the Markdown summary here too")
    p.add_argument(
        "--ledger", default=None, help="the ledger to judge against (default: the base branch's ledger.jsonl)"
    )
    p.add_argument(
        "--config",
        default=None,
        help="adoption thresholds (default: the base branch's fixtures/adoption.toml)",
    )
    p.add_argument("--cache-dir", default=None, help="anchor result cache (default: ~/.cache/codec-harness)")
    p.add_argument("--sandbox", choices=("bwrap", "none"), default=None, help="passed to the suite")
    p.add_argument(
        "--heldout", default=None,
        help=f"held-out clips (folder or manifest, never in the repository; default: ${HELDOUT_ENV})",
    )
    p.add_argument(
        "--waive-heldout", action="store_true",
        help="judge without held-out clips (said in the summary; a result too good to be true is still refused)",
    )
    p.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="extra pytest arguments, after --"
    )
    p.set_defaults(func=_cli_gate)
