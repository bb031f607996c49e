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
from harness.config import load_suite_config
from harness.errors import HarnessError
from harness.judge import Judge
from harness.ledger import Ledger
from harness.runner import Runner
from harness.sandbox import Sandbox
from harness.suite import SuiteOptions

__all__ = ["add_verdicts", "build_judge", "champion", "clip_sets"]


HELDOUT_ENV = "CODEC_HARNESS_HELDOUT"


def heldout_set(given: str | None) -> str | None:
    """The held-out clip set: the one given (--heldout), else $CODEC_HARNESS_HELDOUT, else None."""
    return given or os.environ.get(HELDOUT_ENV) or None


def clip_sets(options: SuiteOptions, root: Path) -> tuple[str, list[Clip], dict[str, str]]:
    """(set name, clips, clip -> "public" / "heldout"): --clips, and --heldout renamed heldout-*.

    Without --heldout, $CODEC_HARNESS_HELDOUT names the held-out set: the maintainer configures it
    (e.g. a CI secret or variable pointing at a folder or a manifest of URL + sha256) and it is
    never in the repository; adoption refuses to decide without held-out clips."""
    config = options.fixtures_path(root) / "clipsets.toml"
    set_name, clips = resolve_clip_set(options.clips, config=config, root=root)
    sets = {c.name: "public" for c in clips}
    heldout = heldout_set(options.heldout)
    if heldout:
        held_name, held = resolve_clip_set(heldout, config=config, root=root)
        held = [dataclasses.replace(c, name=f"heldout-{c.name}") for c in held]
        sets.update({c.name: "heldout" for c in held})
        clips = clips + held
        set_name = f"{set_name} + held-out {held_name}"
    return set_name, clips, sets


def champion(
    ledger: Ledger, found: list[CandidateSource], candidates: list[CandidateSource]
) -> tuple[str | None, dict[str, object] | None]:
    """(the ledger's champion, added to `candidates` so every other one is compared with it; its run info)."""
    entry = ledger.champion()
    if entry is None:
        return None, None
    info: dict[str, object] = {"name": entry.candidate, "sha256": entry.source_sha256, "ledger_seq": entry.seq}
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
    set_name, clips, sets = clip_sets(options, root)
    found = discover_candidates(options.candidates_path(root))
    candidates = select_candidates(found, list(options.candidates or ()) or None)
    champ, run_info["champion"] = champion(Ledger(options.ledger_path(root)), found, candidates)
    anchors = load_anchor_specs(fixtures / "anchors.toml")
    missing = [a for a in suite.compare_anchors if a not in anchors]
    if missing:
        raise HarnessError(f"suite.toml names anchors {missing} that anchors.toml lacks: {sorted(anchors)}")
    sandbox = Sandbox(mode=options.sandbox, gpu=options.sandbox_gpu, hide=tuple(str(c.path) for c in clips))
    frames = options.frames if options.frames is not None else suite.default_frames  # 0 is an error, not the default
    if frames < 1:
        raise HarnessError(f"--frames must be at least 1, got {frames}")
    judge = Judge(
        runner=Runner(sandbox=sandbox, limits=suite.limits),
        config=suite,
        clips=clips,
        candidates=candidates,
        champion=champ,
        max_frames=frames,
        anchors={name: anchors[name] for name in suite.compare_anchors},
        cache=ResultCache(Path(options.cache_dir or default_cache_dir()), refresh=options.refresh_anchors),
    )
    judge.run_info = run_info
    judge.reuse_results = not options.rerun
    if run_id:
        judge.run_id = run_id
    judge.clip_sets = sets
    run_info["settings"] = {
        "clip_set": set_name,
        "frames": frames,
        "suite": suite.to_json(),
        "sandbox": sandbox.describe(),
        "candidates_dir": str(options.candidates_path(root)),
    }
    return judge, run_info


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
    champ = (doc.get("champion") or {}).get("name")
    for name, verdict in verdicts.items():
        if name == champ:
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
