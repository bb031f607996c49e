"""Building one run of the suite from its options: clips, candidates, champion, anchors, sandbox, Judge.

`build_judge` is what the plugin calls (once per process, lazily) and `add_verdicts` what it
runs on the finished report. Errors of the user's making raise `HarnessError`; the plugin turns
them into pytest usage errors.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from harness.anchors import load_anchor_specs
from harness.cache import ResultCache
from harness.candidate import CandidateSource, discover_candidates, select_candidates
from harness.clips import Clip, default_cache_dir, resolve_clip_set
from harness.complexity import load_complexity_config
from harness.config import Profile, SuiteConfig, load_suite_config
from harness.errors import HarnessError
from harness.judge import CALL_SEEDS, Judge
from harness.ledger import TRACKS, Ledger, Track
from harness.runner import Runner
from harness.sandbox import Sandbox
from harness.suite import SuiteOptions

__all__ = ["add_verdicts", "apply_profile", "build_judge", "champion", "check_clips", "clip_sets"]


HELDOUT_ENV = "CODEC_HARNESS_HELDOUT"


def heldout_set(given: str | None) -> str | None:
    """The held-out clip set: the one given (--heldout), else $CODEC_HARNESS_HELDOUT, else None."""
    return given or os.environ.get(HELDOUT_ENV) or None


def apply_profile(options: SuiteOptions, suite: SuiteConfig) -> tuple[SuiteOptions, Profile, list[str]]:
    """(options with the profile's clips and frames filled in where not given, the profile, the
    options given explicitly over it: "clips", "frames")."""
    profile = suite.profile(options.profile)
    overrides = [name for name in ("clips", "frames") if getattr(options, name) is not None]
    frames = options.frames if options.frames is not None else (profile.frames or suite.default_frames)
    return dataclasses.replace(options, clips=options.clips or profile.clips, frames=frames), profile, overrides


def clip_sets(
    options: SuiteOptions, root: Path, problems: dict[str, str] | None = None
) -> tuple[str, list[Clip], dict[str, str]]:
    """(set name, clips, clip -> "public" / "heldout"): --clips, and --heldout renamed heldout-*.

    Without --heldout, $CODEC_HARNESS_HELDOUT names the held-out set: the maintainer configures it
    (e.g. a CI secret or variable pointing at a folder or a manifest of URL + sha256) and it is
    never in the repository; adoption refuses to decide without held-out clips. With `problems`
    given, manifest entries that cannot be fetched are recorded there instead of failing the set."""
    config = options.fixtures_path(root) / "clipsets.toml"
    set_name, clips = resolve_clip_set(options.clips, config=config, root=root, problems=problems)
    sets = {c.name: "public" for c in clips}
    heldout = heldout_set(options.heldout)
    if heldout:
        held_problems: dict[str, str] = {}
        held_name, held = resolve_clip_set(heldout, config=config, root=root, problems=held_problems)
        if problems is not None:
            problems.update({f"heldout-{name}": why for name, why in held_problems.items()})
        held = [dataclasses.replace(c, name=f"heldout-{c.name}") for c in held]
        sets.update({c.name: "heldout" for c in held})
        clips = clips + held
        set_name = f"{set_name} + held-out {held_name}"
    return set_name, clips, sets


def champion(
    ledger: Ledger, found: list[CandidateSource], candidates: list[CandidateSource], track: Track = "native"
) -> tuple[str | None, dict[str, object] | None]:
    """(the ledger's champion of `track`, added to `candidates` so every candidate of the track is
    compared with it; its run info)."""
    entry = ledger.champion(track)
    if entry is None:
        return None, None
    info: dict[str, object] = {
        "name": entry.candidate, "sha256": entry.source_sha256, "ledger_seq": entry.seq, "track": track,
    }
    source = next((c for c in found if c.name == entry.candidate), None)
    if source is None:
        info["warning"] = f"the champion {entry.candidate} is not in the candidates folder; no comparison"
        return None, info
    if source.sha256 != entry.source_sha256:
        info["warning"] = (
            f"{entry.candidate}'s source changed since its adoption (ledger {entry.source_sha256[:12]}, "
            f"now {source.sha256[:12]}): compared with the current file"
        )
    if source not in candidates:
        candidates.append(source)
    return entry.candidate, info


def build_judge(options: SuiteOptions, root: Path, *, run_id: str | None = None) -> tuple[Judge, dict[str, object]]:
    """The run's Judge and its run info (settings, champion: what the report records once).

    `root` is pytest's rootdir (the defaults of the folders hang from it); `run_id` the id every
    xdist worker of one run shares."""
    root = Path(root)
    fixtures = options.fixtures_path(root)
    run_info: dict[str, object] = {}
    suite = load_suite_config(fixtures / "suite.toml")
    options, profile, overrides = apply_profile(options, suite)
    dropped: dict[str, str] = {}
    set_name, clips, sets = clip_sets(options, root, dropped)
    found = discover_candidates(options.candidates_path(root))
    candidates = select_candidates(found, list(options.candidates or ()) or None)
    ledger = Ledger(options.ledger_path(root))
    champs, run_info["champions"] = {}, {}
    for track in TRACKS:
        champs[track], run_info["champions"][track] = champion(ledger, found, candidates, track)
    run_info["champion"] = run_info["champions"]["native"]  # the headline track's, as before tracks
    anchors = load_anchor_specs(fixtures / "anchors.toml")
    missing = [a for a in suite.compare_anchors if a not in anchors]
    if missing:
        raise HarnessError(f"suite.toml names anchors {missing} that anchors.toml lacks: {sorted(anchors)}")
    sandbox = Sandbox(mode=options.sandbox, gpu=options.sandbox_gpu, hide=tuple(str(c.path) for c in clips))
    frames = options.frames if options.frames is not None else suite.default_frames  # 0 is an error, not the default
    if frames < 1:
        raise HarnessError(f"--frames must be at least 1, got {frames}")
    judge = Judge(
        runner=Runner(sandbox=sandbox, limits=suite.limits, budget=suite.call_budget()),
        config=suite,
        clips=clips,
        candidates=candidates,
        champions={track: name for track, name in champs.items() if name},
        max_frames=frames,
        anchors={name: anchors[name] for name in suite.compare_anchors},
        cache=ResultCache(Path(options.cache_dir or default_cache_dir()), refresh=options.refresh_anchors),
    )
    judge.run_info = run_info
    judge.reuse_results = not options.rerun
    if run_id:
        judge.run_id = run_id
    judge.clip_sets = sets
    judge.complexity_config = load_complexity_config(fixtures / "complexity.toml")
    judge.complexity_specs = {a: anchors[a] for a in judge.complexity_config.anchors if a in anchors}
    dropped.update(check_clips(judge))
    if not judge.clips:
        listed = "; ".join(f"{name}: {why}" for name, why in dropped.items())
        raise HarnessError(f"no usable clip in the clip set {set_name!r}: {listed}")
    run_info["settings"] = {
        "profile": profile.name,
        **({"profile_overrides": overrides} if overrides else {}),
        "clip_set": set_name,
        "frames": frames,
        "suite": suite.to_json(),
        "sandbox": sandbox.describe(),
        "candidates_dir": str(options.candidates_path(root)),
        # What `python -m harness reproduce` re-runs: the options as given, the calls' seeds.
        "options": options.to_json(),
        "seeds": CALL_SEEDS,
        "complexity": judge.complexity_config.to_json(),
    }
    if dropped:
        run_info["settings"]["dropped_clips"] = dropped
    return judge, run_info


def check_clips(judge: Judge) -> dict[str, str]:
    """Decode every clip of the run before judging (the decode the run needs anyway, kept in the
    Judge's clip store); drop the unusable ones from `judge` and return clip -> problem.

    A corrupt file or a 10-bit clip is the clip set's fault, not a candidate's: judged, it would
    fail every candidate (and a gate would reject every PR)."""
    problems: dict[str, str] = {}
    for name in list(judge.clips):
        try:
            judge.source(name)
        except (HarnessError, OSError) as err:  # ClipError names the file and what is wrong with it
            problems[name] = str(err)
    for name in problems:
        del judge.clips[name]
        judge.clip_sets.pop(name, None)
    return problems


def add_verdicts(doc: dict, options: SuiteOptions, root: Path) -> None:
    """Each candidate's adoption verdict (adopted / rejected / failed) against the ledger, into `doc`."""
    from harness.adoption import decide_all, load_adoption_config

    try:
        config = load_adoption_config(options.fixtures_path(root) / "adoption.toml")
        verdicts = decide_all(doc, config=config, ledger=Ledger(options.ledger_path(root)))
    except HarnessError as err:
        for cand in doc["candidates"].values():
            cand["verdict"] = {"decision": "unknown", "reason": f"no verdict: {err}"}
        return
    per_track = doc.get("champions") or {"native": doc.get("champion")}
    champs = {info.get("name") for info in per_track.values() if info}
    for name, verdict in verdicts.items():
        if name in champs:
            doc["candidates"][name]["verdict"] = {
                "decision": "champion", "adoptable": False, "reason": verdict.reason, "judged": True,
            }
            continue
        doc["candidates"][name]["verdict"] = {
            "decision": verdict.decision,
            "adoptable": verdict.adoptable,
            "reason": verdict.reason,
            "identical_to": verdict.identical_to,
            "judged": verdict.judged,
        }
