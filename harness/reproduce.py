"""`python -m harness reproduce REPORT.json`: judge again what a report judged, and say whether it came out the same.

A claim is only as good as someone else's ability to re-obtain it. `reproduce` reads a report
(`harness.results.load_report`), checks that this checkout holds the same inputs, runs the suite
on them through `harness.suite.run_suite` (the one judge path: same candidates, clips, frames,
profile, sandbox, limits, with a fresh cache so that every candidate and anchor is encoded,
decoded and measured again), and compares every bitstream's sha256, every decoded clip's sha256,
every metric value, every test outcome and every BD-rate with the report's. Paths in the report
are never used: candidates are found by name in the candidates folder and must have the report's
source sha256; clips come from the named clip set, folder or manifest (the report's, or `--clips`)
and must have the report's decoded-content sha256.

It prints, in this order: every version that differs from the report's (PyAV, the encoders,
libvmaf, numpy, OpenCV, the harness and its metric versions...), what it re-runs, and one
verdict: "reproduced bit-exactly", or the differences (the first few, counted by kind) and their
likely cause. Timings are never compared (complexity ratios and CPU times vary from run to run).

Exit status (`EXIT_*`): 0 reproduced bit-exactly (versions may differ: they are listed);
1 the re-run differs from the report; 2 an error (an unreadable report, the suite wrote no report,
bad usage); 3 this checkout does not hold the report's inputs (a candidate's source, a clip's
content, the suite settings or the champion differ), so nothing was run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import HarnessError
from harness.results import RunResults, load_report

__all__ = [
    "EXIT_DIFFERENT",
    "EXIT_ERROR",
    "EXIT_INPUTS",
    "EXIT_REPRODUCED",
    "Difference",
    "InputsDiffer",
    "Reproduction",
    "compare_runs",
    "likely_cause",
    "plan_options",
    "register",
    "reproduce",
    "version_differences",
]

EXIT_REPRODUCED, EXIT_DIFFERENT, EXIT_ERROR, EXIT_INPUTS = 0, 1, 2, 3

DiffKind = Literal[
    "clip", "missing", "failure", "bitstream", "bytes", "decoded", "metric", "determinism", "outcome", "bd_rate",
]
SHOWN = 8  # differences printed in full; the rest are counted by kind


class InputsDiffer(HarnessError):
    """This checkout does not hold what the report judged (source, clip content, settings, champion)."""


@dataclass(frozen=True)
class Difference:
    """One value that came out differently: its kind, where (codec, clip, rate point), report vs here."""

    kind: DiffKind
    where: str
    report: str
    here: str

    def line(self) -> str:
        return f"{self.kind:<11} {self.where}: report {self.report}, here {self.here}"


# ----------------------------------------------------------------------------- versions


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, Mapping):
        for key, value in sorted(data.items()):
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, json.dumps(data) if not isinstance(data, str) else data


def version_differences(report: Mapping, here: Mapping) -> list[str]:
    """'name: report X, here Y' for every version (nested keys dotted) that differs or exists on one side only."""
    a, b = dict(_flatten(report)), dict(_flatten(here))
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: report {a.get(key, '(not recorded)')}, here {b.get(key, '(not recorded)')}")
    return out


# ----------------------------------------------------------------------------- comparing two runs


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _compare_measurement(where: str, a: Mapping | None, b: Mapping | None, out: list[Difference]) -> None:
    if a is None or b is None:
        if (a is None) != (b is None):
            out.append(Difference("failure", where, "measured" if a else "no measurement", "measured" if b else "no measurement"))
        return
    for key, kind in (("bitstream_sha256", "bitstream"), ("bytes", "bytes"), ("decoded_sha256", "decoded")):
        if a.get(key) != b.get(key):
            out.append(Difference(kind, where, _short(a.get(key)), _short(b.get(key))))
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    for metric in sorted(set(ma) | set(mb)):
        if ma.get(metric) != mb.get(metric):
            out.append(Difference("metric", f"{where} {metric}", _short(ma.get(metric)), _short(mb.get(metric))))


def _compare_anchors(report: RunResults, again: RunResults, out: list[Difference]) -> int:
    compared = 0
    for clip in sorted(report.anchors):
        for anchor in sorted(report.anchors[clip]):
            mine = {p["qp"]: p for p in (again.anchors.get(clip) or {}).get(anchor) or []}
            for point in report.anchors[clip][anchor]:
                where = f"anchor {anchor} {clip} QP {point['qp']}"
                other = mine.get(point["qp"])
                if other is None:
                    out.append(Difference("missing", where, "encoded", "not in the re-run"))
                    continue
                compared += 1
                _compare_measurement(where, point.get("measurement"), other.get("measurement"), out)
    return compared


def _compare_candidate(name: str, report: RunResults, again: RunResults, out: list[Difference]) -> int:
    mine, other = report.candidates[name], again.candidates.get(name)
    if other is None:
        out.append(Difference("missing", name, "judged", "not in the re-run"))
        return 0
    compared = 0
    for key in sorted(mine.points):
        where, a, b = f"{name} {key}", mine.points[key], other.points.get(key)
        if b is None:
            out.append(Difference("missing", where, "judged", "not in the re-run"))
            continue
        compared += 1
        if bool(a.get("failure")) != bool(b.get("failure")):
            out.append(Difference("failure", where, a.get("failure") or "ok", b.get("failure") or "ok"))
        sha_a = a.get("bitstream_sha256") or (a.get("measurement") or {}).get("bitstream_sha256")
        sha_b = b.get("bitstream_sha256") or (b.get("measurement") or {}).get("bitstream_sha256")
        if sha_a != sha_b and not (a.get("measurement") and b.get("measurement")):
            out.append(Difference("bitstream", where, _short(sha_a), _short(sha_b)))
        if a.get("measurement") and b.get("measurement"):
            _compare_measurement(where, a["measurement"], b["measurement"], out)
    for clip, det in sorted(mine.determinism.items()):
        again_det = other.determinism.get(clip) or {}
        if bool(det.get("failure")) != bool(again_det.get("failure")):
            out.append(Difference("determinism", f"{name} {clip}", det.get("failure") or "ok", again_det.get("failure") or "ok"))
    for anchor, metrics in sorted(mine.bd_overall.items()):
        for metric, slot in sorted(metrics.items()):
            theirs = (other.bd_overall.get(anchor) or {}).get(metric) or {}
            if slot.get("bd_rate") != theirs.get("bd_rate"):
                out.append(Difference(
                    "bd_rate", f"{name} vs {anchor} {metric}", _short(slot.get("bd_rate")), _short(theirs.get("bd_rate"))
                ))
    return compared


def compare_runs(report: RunResults, again: RunResults) -> tuple[list[Difference], dict[str, int]]:
    """Every difference between a report and its re-run, and how much was compared.

    Compared: each clip's content hash; each anchor point's and candidate rate point's bitstream
    sha256, bytes, decoded sha256 and every metric; whether each point and determinism check
    failed; each test's outcome; each candidate's overall BD-rates. Never times."""
    out: list[Difference] = []
    for clip, info in sorted(report.clips.items()):
        theirs = again.clips.get(clip)
        if theirs is None:
            out.append(Difference("missing", f"clip {clip}", "judged", "not in the re-run"))
        elif info.get("sha256") != theirs.get("sha256"):
            out.append(Difference("clip", f"clip {clip}", _short(info.get("sha256")), _short(theirs.get("sha256"))))
    counts = {"anchor points": _compare_anchors(report, again, out), "candidate points": 0}
    for name in sorted(report.candidates):
        counts["candidate points"] += _compare_candidate(name, report, again, out)
    for nodeid, test in sorted(report.tests.items()):
        theirs = again.tests.get(nodeid)
        if theirs is None:
            out.append(Difference("missing", nodeid, test["outcome"], "not run"))
        elif theirs["outcome"] != test["outcome"]:
            out.append(Difference("outcome", nodeid, test["outcome"], f"{theirs['outcome']} ({theirs.get('reason') or ''})"[:200]))
    counts["tests"] = len(report.tests)
    return out, counts


_ENCODER_KEYS = ("encoders.", "av", "ffmpeg_libraries.")
_METRIC_KEYS = ("vmaf", "metrics.", "opencv", "numpy", "ffmpeg_libraries.")
_CANDIDATE_KEYS = ("numpy", "opencv", "av", "ffmpeg_libraries.", "judging", "harness")


def _matching(versions: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [v.split(":", 1)[0] for v in versions if v.startswith(prefixes)]


def likely_cause(diffs: list[Difference], versions: list[str], report: RunResults, again: RunResults) -> str:
    """The most likely reason for `diffs`, from which kinds differ and which versions changed."""
    kinds = Counter(d.kind for d in diffs)
    anchor_bits = any(d.kind in ("bitstream", "bytes") and d.where.startswith("anchor ") for d in diffs)
    cand_bits = any(d.kind in ("bitstream", "bytes") and not d.where.startswith("anchor ") for d in diffs)
    machine = (report.machine.get("cpu"), again.machine.get("cpu"))
    other_cpu = f" (CPU: report {machine[0]}, here {machine[1]})" if machine[0] != machine[1] else ""
    if kinds.get("clip"):
        return "the clips' content differs: another clip set, file or frame count"
    if anchor_bits:
        changed = _matching(versions, _ENCODER_KEYS)
        return (f"anchor bitstreams differ: the encoder libraries differ ({', '.join(changed)})" if changed else
                f"anchor bitstreams differ with the same encoder versions: anchor settings (fixtures/anchors.toml) "
                f"or threading not pinned{other_cpu}")
    if cand_bits:
        changed = _matching(versions, _CANDIDATE_KEYS)
        return (f"candidate bitstreams differ: the libraries candidates use differ ({', '.join(changed)})" if changed else
                f"candidate bitstreams differ with the same versions: a candidate that is not deterministic across "
                f"runs or machines{other_cpu}")
    if kinds.get("decoded"):
        return f"the same bitstreams decode to other frames: a decoder that is not deterministic, or other libraries{other_cpu}"
    if kinds.get("metric") or kinds.get("bd_rate"):
        changed = _matching(versions, _METRIC_KEYS)
        return (f"the same decoded frames measure differently: metric versions differ ({', '.join(changed)})" if changed else
                f"the same decoded frames measure differently with the same metric versions: a metric that is not "
                f"deterministic on this machine{other_cpu}")
    if kinds.get("outcome") or kinds.get("failure") or kinds.get("determinism"):
        return ("tests passed in one run and failed in the other with the same numbers: time or memory limits on a "
                f"differently loaded machine, or a candidate that is not deterministic{other_cpu}")
    return "points or tests judged in one run only: another candidate or clip selection, or an interrupted run"


def complexity_lines(report: RunResults, again: RunResults) -> list[str]:
    """Each codec's encode / decode ratio to x265 in the report and in the re-run: shown, never compared
    (CPU time varies with the machine's load; the spread is what this shows)."""
    mine, theirs = report.complexity_view() or {}, again.complexity_view() or {}
    if not mine or not theirs:
        return []
    lines = ["complexity (CPU time per megapixel-frame / x265's; timing, not compared): report -> here"]
    for group in ("anchors", "candidates"):
        for name, entry in sorted((mine.get(group) or {}).items()):
            other = (theirs.get(group) or {}).get(name) or {}
            parts = []
            for axis in ("encode", "decode"):
                a, b = entry.get(f"{axis}_ratio"), other.get(f"{axis}_ratio")
                parts.append(f"{axis} {a:.3g} -> {b:.3g}" if a and b else f"{axis} n/a")
            lines.append(f"  {name}{' (anchor)' if group == 'anchors' else ''}: {', '.join(parts)}")
    return lines


@dataclass
class Reproduction:
    """The outcome of a reproduction: versions that differ, the differences, what was compared."""

    versions: list[str]
    differences: list[Difference]
    compared: dict[str, int]
    cause: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return EXIT_DIFFERENT if self.differences else EXIT_REPRODUCED

    def verdict_lines(self) -> list[str]:
        counted = ", ".join(f"{n} {k}" for k, n in self.compared.items())
        if not self.differences:
            return [f"compared: {counted}", "VERDICT: reproduced bit-exactly"]
        kinds = Counter(d.kind for d in self.differences)
        by_kind = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
        lines = [f"compared: {counted}", f"VERDICT: not reproduced: {len(self.differences)} differences ({by_kind})"]
        lines += ["  " + d.line() for d in self.differences[:SHOWN]]
        if len(self.differences) > SHOWN:
            lines.append(f"  ... and {len(self.differences) - SHOWN} more")
        lines.append(f"likely cause: {self.cause}")
        return lines


# ----------------------------------------------------------------------------- planning the re-run


def _recorded_options(report: RunResults) -> dict[str, Any]:
    settings = report.settings
    recorded = dict(settings.get("options") or {})
    recorded.setdefault("clips", settings.get("clip_set"))
    recorded.setdefault("frames", settings.get("frames"))
    if settings.get("profile") and not recorded.get("profile"):
        recorded["profile"] = settings["profile"]
    return recorded


def _check_candidates(report: RunResults, candidates_dir: Path) -> list[str]:
    from harness.candidate import discover_candidates

    found = {c.name: c for c in discover_candidates(candidates_dir)}
    problems = []
    for name, cand in sorted(report.candidates.items()):
        if name not in found:
            problems.append(f"candidate {name} is not in {candidates_dir} (give --candidates-dir)")
        elif cand.sha256 and found[name].sha256 != cand.sha256:
            problems.append(
                f"candidate {name}'s source differs: report {cand.sha256[:12]}, {found[name].path} {found[name].sha256[:12]}"
            )
    return problems


def _check_clips(report: RunResults, options, root: Path) -> list[str]:
    """Each judged clip of the report, found by name in the option's clip set with the same content hash."""
    from harness.clips import ClipStore
    from harness.session import clip_sets

    try:
        _, clips, _ = clip_sets(options, root)
    except HarnessError as err:
        return [f"the clip set {options.clips!r} cannot be resolved here: {err} (give --clips NAME|FOLDER|MANIFEST)"]
    store, hashes = ClipStore(), {}
    for clip in clips:
        try:
            hashes[clip.name] = store.get(clip, options.frames).video.sha256()
        except (HarnessError, OSError) as err:
            hashes[clip.name] = f"unusable: {err}"
    problems = []
    for name, info in sorted(report.clips.items()):
        if not info.get("sha256"):
            continue  # a clip the report could not decode either
        if name not in hashes:
            same = [n for n, h in hashes.items() if h == info["sha256"]]
            hint = f" (the same content is {same[0]} here)" if same else ""
            problems.append(f"clip {name} is not in the clip set {options.clips!r} here{hint}")
        elif hashes[name] != info["sha256"]:
            problems.append(
                f"clip {name}'s content differs at {options.frames} frames: report {info['sha256'][:12]}, "
                f"here {hashes[name][:12]}"
            )
    return problems


def _check_settings(report: RunResults, options, root: Path) -> list[str]:
    from harness.config import load_suite_config

    here = load_suite_config(options.fixtures_path(root) / "suite.toml").to_json()
    theirs = report.settings.get("suite") or {}
    return [
        f"suite setting {d} (fixtures/suite.toml; give --fixtures-dir with the report's)"
        for d in version_differences(theirs, here)
    ]


def _check_champions(report: RunResults, options, root: Path) -> list[str]:
    from harness.ledger import Ledger

    ledger = Ledger(options.ledger_path(root))
    recorded = dict(report.champions or {}) or {"native": report.champion}
    problems = []
    for track, info in sorted(recorded.items()):
        entry = ledger.champion(track) if track != "native" else ledger.champion()
        theirs = (info or {}).get("name"), (info or {}).get("sha256")
        mine = (entry.candidate, entry.source_sha256) if entry else (None, None)
        if theirs != mine:
            problems.append(
                f"the {track} champion differs: report {theirs[0] or 'none'}, ledger {ledger.path}: {mine[0] or 'none'} "
                "(give --ledger with the report's)"
            )
    return problems


def plan_options(report: RunResults, args: argparse.Namespace, root: Path, out_dir: Path):
    """The `SuiteOptions` that re-run `report` here; raises InputsDiffer naming every input that is not the same."""
    from harness.suite import SuiteOptions, locate_suite

    recorded = _recorded_options(report)
    known = {f.name for f in dataclasses.fields(SuiteOptions)}
    options = SuiteOptions(
        **{k: v for k, v in {
            "profile": recorded.get("profile"),
            "clips": args.clips or recorded.get("clips"),
            "heldout": args.heldout or recorded.get("heldout"),
            "frames": recorded.get("frames"),
            "candidates": tuple(sorted(report.candidates)),
            "candidates_dir": args.candidates_dir,
            "fixtures_dir": args.fixtures_dir,
            # Never taken from the report: a report cannot turn the sandbox off (--sandbox none only by hand).
            "sandbox": args.sandbox,
            "sandbox_gpu": bool(recorded.get("sandbox_gpu")),
            "report_dir": out_dir / "reports",
            "cache_dir": out_dir / "cache",  # fresh: every anchor and candidate encoded again
            "refresh_anchors": True,
            "rerun": True,
            "ledger": args.ledger,
        }.items() if k in known},
    ).for_project(root)
    if options.fixtures_dir is None:  # as the suite does: the fixtures of the checkout that holds benchmarks/
        options = dataclasses.replace(options, fixtures_dir=locate_suite(root).parent.parent / "fixtures")
    if "heldout" in report.clip_sets.values() and not options.heldout:
        raise InputsDiffer("the report judged held-out clips: give --heldout NAME|FOLDER|MANIFEST")
    problems = _check_candidates(report, options.candidates_path(root))
    problems += _check_settings(report, options, root)
    problems += _check_champions(report, options, root)
    problems += _check_clips(report, options, root)
    if problems:
        raise InputsDiffer("; ".join(problems))
    return options


# ----------------------------------------------------------------------------- the command


def reproduce(report_path: Path, args: argparse.Namespace, *, out=sys.stdout) -> int:
    """Re-run the report at `report_path` here; print versions, the plan and the verdict; the exit status."""
    from harness.report import versions
    from harness.suite import run_suite

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    report = load_report(report_path)
    root = Path(args.repo or Path.cwd()).resolve()
    say(f"reproduce: {report_path} (created {report.created_utc}, harness {report.versions.get('harness')}, "
        f"git {str(report.git.get('commit'))[:12]}{' dirty' if report.git.get('dirty') else ''}, "
        f"{report.machine.get('cpu')})")
    changed = version_differences(report.versions, versions())
    say("versions that differ from the report's:" if changed else "versions: all the same as the report's")
    for line in changed:
        say(f"  {line}")
    keep = args.output is not None
    out_dir = Path(args.output).resolve() if keep else Path(tempfile.mkdtemp(prefix="codec-harness-reproduce-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        try:
            options = plan_options(report, args, root, out_dir)
        except InputsDiffer as err:
            say(f"VERDICT: cannot reproduce here: {err}")
            return EXIT_INPUTS
        say(f"re-running {', '.join(options.candidates or ())} on {len(report.clips)} clips of {options.clips!r} at "
            f"{options.frames} frames (sources and clip contents match the report's), sandbox {options.sandbox}, "
            f"fresh cache; suite log: {out_dir / 'suite.log'}")
        run = run_suite(options, root=root, log=out_dir / "suite.log", timeout=args.timeout, pytest_args=["-q"])
        if run.results is None:
            raise HarnessError(f"the re-run gave no report: {run.problem}")
        differences, compared = compare_runs(report, run.results)
        result = Reproduction(changed, differences, compared)
        if differences:
            result.cause = likely_cause(differences, changed, report, run.results)
        for line in complexity_lines(report, run.results) + result.verdict_lines():
            say(line)
        if keep:
            say(f"the re-run's report: {run.report}")
        return result.exit_status
    finally:
        if not keep:
            shutil.rmtree(out_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    return reproduce(Path(args.report), args)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="judge again what a report judged and compare every bitstream and number",
        description="Re-run a report's candidates on its clips with its settings (sources and clip contents "
        "checked by sha256, a fresh cache) and compare every bitstream sha256 and metric value. Exit 0: "
        "reproduced bit-exactly; 1: differences (listed, with the likely cause); 2: an error; 3: this checkout "
        "does not hold the report's inputs (nothing run).",
    )
    parser.add_argument("report", help="the report JSON (e.g. reports/latest.json)")
    parser.add_argument("--repo", help="the project root to run in (default: the working directory)")
    parser.add_argument("--clips", help="where the report's clips are here: set name, folder or manifest "
                        "(default: the report's)")
    parser.add_argument("--heldout", help="where the report's held-out clips are here")
    parser.add_argument("--candidates-dir", type=Path, help="folder holding the report's candidates (default: candidates/)")
    parser.add_argument("--fixtures-dir", type=Path, help="fixtures with the report's suite settings (default: fixtures/)")
    parser.add_argument("--ledger", type=Path, help="ledger with the report's champion (default: ledger.jsonl)")
    parser.add_argument("--sandbox", choices=("bwrap", "none"), default="bwrap",
                        help="bwrap (default, whatever the report used) or none: no isolation, trusted code only")
    parser.add_argument("--output", help="keep the re-run's report, log and cache in this folder")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before the re-run is killed")
    parser.set_defaults(func=_run)
