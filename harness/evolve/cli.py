"""`python -m harness evolve`: run (or resume) the evolution loop from the command line.

    python -m harness evolve [--iterations N] [--clips SET] [--frames N] [--model ID] ...
    python -m harness evolve --run-dir evolve-runs/20261122-083008      # resume after a kill
    python -m harness evolve --run-dir DIR --show-prompt                  # the next prompt, no request
    python -m harness evolve --requests-in-flight 4 --evaluations-in-flight 2   # on an embedded local Ray
    python -m harness evolve --ray-address auto                           # on the Ray cluster of this node

A new run directory is made under evolve-runs/ unless --run-dir names one; a run directory that
exists is resumed with the settings it was started with (budgets and prompt sizes may be raised,
nothing else may change). ANTHROPIC_API_KEY is required (checked before anything is done) except
for --show-prompt. Exit status: 0 the run ended and a candidate was adopted in it, 1 it ended
without an adoption, 2 an error (one line on stderr), 130 interrupted (resume with --run-dir).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from harness import adoption
from harness.errors import HarnessError
from harness.evolve.client import require_api_key
from harness.evolve.config import default_config_path, load_config
from harness.evolve.log import RunDir
from harness.evolve.loop import Evolution, RunSettings
from harness.evolve.prompt import build_prompt
from harness.toolbox import TRACKS

__all__ = ["cli_evolve", "register", "resolve_settings"]

RUNS_DIR = Path("evolve-runs")

# Options that belong to the run (fixed once it started) and those a resume may change.
_FIXED = {
    "candidates_dir": ("paths", "candidates_dir"), "ledger": ("paths", "ledger"),
    "cache_dir": ("paths", "cache_dir"), "fixtures_dir": ("paths", "fixtures_dir"),
    "adoption_config": ("paths", "adoption_config"),
    "track": ("suite", "track"), "clips": ("suite", "clips"), "frames": ("suite", "frames"),
    "model": ("model", "name"), "max_tokens": ("model", "max_tokens"), "temperature": ("model", "temperature"),
}
_ADJUSTABLE = {
    "iterations": ("stop", "iterations"), "max_total_tokens": ("stop", "max_total_tokens"),
    "max_cost_usd": ("stop", "max_cost_usd"), "patience": ("stop", "patience"),
    "history": ("prompt", "history"), "prompt_chars": ("prompt", "char_budget"),
    "suite_timeout": ("suite", "timeout_s"),
    "requests_in_flight": ("scale", "requests_in_flight"),
    "evaluations_in_flight": ("scale", "evaluations_in_flight"),
    "ray_address": ("scale", "ray_address"),
    "cpus_per_evaluation": ("scale", "cpus_per_evaluation"),
    "cascade": ("cascade", "enabled"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evolve` subcommand to the harness CLI."""
    p = subparsers.add_parser(
        "evolve",
        help="let the Anthropic API write candidates from the champion and judge each with the suite",
        description="The evolution loop, in one track (--track; native by default): build a prompt from the "
        "contract, the track's toolbox, the ledger's champion of that track (code and "
        "scores) and the last attempts; ask the Messages API for a new module; write it to the candidates "
        "folder; judge it with the suite (pytest benchmarks/test_codecs.py, sandboxed); record the verdict in "
        "the ledger and RUN/attempts.jsonl; adopt it when it beats the champion. Stops on the iteration, token "
        "or cost budget, after --patience attempts without adoption, or on results identical to an earlier "
        "attempt's. Resumable: rerun with --run-dir RUN.",
    )
    p.add_argument("--run-dir", type=Path, default=None, help="the run's folder; an existing one is resumed "
                   "(default: a new evolve-runs/<UTC time>)")
    p.add_argument("--config", type=Path, default=None, help="settings (default: fixtures/evolve.toml)")
    g = p.add_argument_group("budgets (may be changed on resume)")
    g.add_argument("--iterations", type=int, default=None, help="attempts in this run")
    g.add_argument("--max-total-tokens", type=int, default=None, help="input + output tokens over the run")
    g.add_argument("--max-cost-usd", type=float, default=None, help="dollars over the run (0 = no limit)")
    g.add_argument("--patience", type=int, default=None, help="stop after N attempts in a row without adoption")
    g.add_argument("--history", type=int, default=None, help="attempts shown in the prompt")
    g.add_argument("--prompt-chars", type=int, default=None, help="the prompt's size budget in characters")
    g.add_argument("--suite-timeout", type=float, default=None, help="seconds one suite run may take")
    c = p.add_argument_group("concurrency and the cascade (may be changed on resume; fixtures/evolve.toml [scale], "
                             "[cascade])")
    c.add_argument("--requests-in-flight", type=int, default=None,
                   help="Messages API requests at once (threads); attempt numbers are given as requests start")
    c.add_argument("--evaluations-in-flight", type=int, default=None,
                   help="suite runs at once, each a Ray task (a thread with --no-ray)")
    c.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (\"auto\", HOST:6379); default: an embedded local Ray (ray.init() "
                   "here, no set-up). Its nodes need bubblewrap and the project installed at the same path")
    c.add_argument("--no-ray", action="store_true",
                   help="no Ray: evaluations run in threads of this process (ray_address \"none\")")
    c.add_argument("--cpus-per-evaluation", type=float, default=None, help="the Ray task's num_cpus")
    c.add_argument("--cascade", action=argparse.BooleanOptionalAction, default=None,
                   help="screen each candidate (cheap tests, one small clip, a few frames) before the full suite run "
                   "(default: on, [cascade] enabled)")
    f = p.add_argument_group("the run (fixed once started)")
    f.add_argument("--model", default=None, help="Messages API model id")
    f.add_argument("--max-tokens", type=int, default=None, help="max_tokens of a reply")
    f.add_argument("--temperature", type=float, default=None, help="sampling temperature (see fixtures/evolve.toml)")
    f.add_argument(
        "--track", choices=TRACKS, default=None,
        help="the track to evolve: native (the default, fixtures/evolve.toml: the codec is the candidate's own) "
        "or open (may wrap a library codec); its champion, its toolbox",
    )
    f.add_argument("--clips", default=None, help="the suite's --clips (set name, folder or manifest)")
    f.add_argument("--frames", type=int, default=None, help="the suite's --frames (0 = its default)")
    f.add_argument("--candidates-dir", type=Path, default=None, help="where candidates go (default: candidates)")
    f.add_argument("--ledger", type=Path, default=None, help="the adoption ledger (default: ledger.jsonl)")
    f.add_argument("--cache-dir", type=Path, default=None, help="the suite's anchor cache")
    f.add_argument("--fixtures-dir", type=Path, default=None, help="the suite's --fixtures-dir")
    f.add_argument("--adoption-config", type=Path, default=None, help="default: fixtures/adoption.toml")
    f.add_argument(
        "--waive-heldout", action="store_true",
        help="adopt without held-out clips (CODEC_HARNESS_HELDOUT unset); recorded in every ledger entry",
    )
    p.add_argument("--show-prompt", action="store_true",
                   help="print the prompt the next attempt would send and exit (no request, no API key needed)")
    p.set_defaults(func=cli_evolve)


def _abs(path: Path | None) -> Path | None:
    return path.expanduser().resolve() if path is not None else None


def resolve_settings(args: argparse.Namespace, *, now: datetime | None = None) -> tuple[RunSettings, bool]:
    """(settings, resumed): a resumed run's stored settings with allowed changes, or a new run's."""
    run_dir = args.run_dir or RUNS_DIR / (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    run = RunDir(_abs(Path(run_dir)))
    if getattr(args, "no_ray", False):
        if getattr(args, "ray_address", None) not in (None, "none"):
            raise HarnessError("--no-ray and --ray-address contradict each other")
        args.ray_address = "none"
    adjust: dict[str, dict[str, object]] = {}
    for option, (section, key) in _ADJUSTABLE.items():
        value = getattr(args, option, None)
        if value is not None:
            adjust.setdefault(section, {})[key] = value
    if run.exists():
        data = run.load_settings()
        stored = RunSettings.from_json(run.path, data)
        for option, (section, key) in _FIXED.items():
            given = getattr(args, option, None)
            if given is None:
                continue
            if section == "paths":
                have, given = getattr(stored, key), _abs(Path(given))
            else:
                have = getattr(getattr(stored.config, section), key)
            if given != have:
                raise HarnessError(
                    f"run {run.path} was started with --{option.replace('_', '-')} {have}; "
                    "start a new run (another --run-dir) to change it"
                )
        if args.config is not None:
            raise HarnessError(f"run {run.path} keeps the settings it was started with; --config applies to new runs")
        if adjust:
            config = stored.config.with_overrides(**adjust)
            stored = RunSettings(**{**stored.__dict__, "config": config})
            run.save_settings({**data, "config": config.to_json()})
        return stored, True
    config = load_config(args.config or default_config_path())
    adjust.setdefault("model", {}).update(name=args.model, max_tokens=args.max_tokens, temperature=args.temperature)
    adjust.setdefault("suite", {}).update(track=getattr(args, "track", None), clips=args.clips, frames=args.frames)
    config = config.with_overrides(**adjust)
    settings = RunSettings(
        run_dir=run.path,
        candidates_dir=_abs(args.candidates_dir or Path("candidates")),
        ledger=_abs(args.ledger or adoption.DEFAULT_LEDGER),
        adoption_config=_abs(args.adoption_config or adoption.default_config_path()),
        config=config,
        cache_dir=_abs(args.cache_dir),
        fixtures_dir=_abs(args.fixtures_dir),
        waive_heldout=args.waive_heldout,
    )
    return settings, False


def cli_evolve(args: argparse.Namespace, *, http_client: object | None = None, out=None) -> int:
    key = None if args.show_prompt else require_api_key()  # before anything is read or written
    settings, _ = resolve_settings(args)
    evo = Evolution(settings, api_key=key or "", http_client=http_client, out=out)
    if args.show_prompt:
        records = evo.rundir.log.records()
        champion = evo._champion()
        prompt = build_prompt(
            evo.prompt_inputs(records, champion),
            char_budget=settings.config.prompt.char_budget,
            failure_chars=settings.config.prompt.failure_chars,
        )
        print(prompt.as_markdown(), file=out or sys.stdout)
        print(f"<!-- {prompt.chars} characters, sha256 {prompt.sha256} -->", file=out or sys.stdout)
        return 0
    try:
        result = evo.run()
    except KeyboardInterrupt:
        print(f"evolve: interrupted; resume with: python -m harness evolve --run-dir {settings.run_dir}",
              file=sys.stderr)
        raise
    except HarnessError as err:
        raise HarnessError(f"{err} (run {settings.run_dir}; resume with --run-dir)") from err
    return 0 if any(r.get("verdict") == "adopted" for r in result.records) else 1
