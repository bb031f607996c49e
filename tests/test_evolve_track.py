"""Evolve runs in one track: native by default, `--track open` to choose; the track's champion,
its toolbox in the prompt, and a module that declares another track refused before it is judged.

No suite runs here: the refusal comes before the suite, the champion checks before any request.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.adoption import load_adoption_config
from harness.errors import ConfigError, HarnessError
from harness.evolve import cli as evolve_cli
from harness.evolve.attempt import AttemptJudge
from harness.evolve.client import Reply
from harness.evolve.config import load_config, parse_config
from harness.evolve.log import RunDir
from harness.evolve.loop import Evolution, RunSettings
from harness.evolve.prompt import ChampionView, PromptInputs, build_prompt
from harness.ledger import Ledger, LedgerEntry
from harness.toolbox import load_toolbox

REPO = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, track: str) -> RunSettings:
    config = load_config(REPO / "fixtures" / "evolve.toml").with_overrides(suite={"track": track})
    cands = tmp_path / "cands"
    cands.mkdir(exist_ok=True)
    return RunSettings(
        run_dir=tmp_path / "run", candidates_dir=cands, ledger=tmp_path / "ledger.jsonl",
        adoption_config=REPO / "fixtures" / "adoption.toml", config=config, waive_heldout=True,
    )


def _open_champion(path: Path) -> None:
    Ledger(path).append(
        LedgerEntry(candidate="wrap", track="open", source_sha256="a" * 64, decision="adopted", reason="seeded")
    )


def test_the_shipped_config_evolves_the_native_track_and_a_bad_track_is_refused():
    assert load_config(REPO / "fixtures" / "evolve.toml").suite.track == "native"
    text = (REPO / "fixtures" / "evolve.toml").read_text().replace('track = "native"', 'track = "closed"')
    with pytest.raises(ConfigError, match="suite.track = 'closed' must be one of native, open"):
        parse_config(text)


def test_track_option_is_fixed_once_the_run_started(tmp_path):
    parser = argparse.ArgumentParser()
    evolve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evolve", "--run-dir", str(tmp_path / "run"), "--track", "open"])
    settings, resumed = evolve_cli.resolve_settings(args)
    assert not resumed and settings.config.suite.track == "open"
    default, _ = evolve_cli.resolve_settings(parser.parse_args(["evolve", "--run-dir", str(tmp_path / "r2")]))
    assert default.config.suite.track == "native"
    RunDir(settings.run_dir).path.mkdir(parents=True)
    RunDir(settings.run_dir).save_settings(settings.to_json())
    again = parser.parse_args(["evolve", "--run-dir", str(tmp_path / "run"), "--track", "native"])
    with pytest.raises(HarnessError, match="was started with --track open"):
        evolve_cli.resolve_settings(again)


def test_a_native_run_needs_a_native_champion_not_the_open_one(tmp_path):
    settings = _settings(tmp_path, "native")
    _open_champion(settings.ledger)
    evo = Evolution(settings, api_key="sk-test-not-a-key")
    with pytest.raises(HarnessError, match=r"no native champion to build on; .*--best --track native"):
        evo._start()
    opened = Evolution(_settings(tmp_path, "open"), api_key="sk-test-not-a-key")
    assert opened._champion().candidate == "wrap"


def test_the_prompt_shows_the_tracks_toolbox_torch_included():
    view = ChampionView(name="c", source='"""C."""\n', source_sha256="0" * 64, ledger_seq=1,
                        overall_vs_anchor={}, clips=[], scores_from="none")
    box = load_toolbox()
    for track in ("native", "open"):
        prompt = build_prompt(PromptInputs(contract="CONTRACT", champion=view, attempts=[], track=track),
                              char_budget=120_000, failure_chars=2500)
        assert box.available_text(track) in prompt.user + prompt.system
    native = build_prompt(PromptInputs(contract="C", champion=view, attempts=[]), char_budget=120_000,
                          failure_chars=2500)
    if "torch" in box.installed("native"):
        assert "torch" in box.available_text("native")
    assert "no torch" not in native.user + native.system


@pytest.mark.parametrize(("run_track", "declaration", "hint"), [
    ("native", 'TRACK = "open"\n', "remove the TRACK declaration"),
    ("open", "", 'declare TRACK = "open"'),
])
def test_a_module_of_another_track_is_refused_before_the_suite(tmp_path, run_track, declaration, hint):
    settings = _settings(tmp_path, run_track)
    ledger = Ledger(settings.ledger)
    rundir = RunDir(settings.run_dir)
    rundir.path.mkdir(parents=True)
    config = dataclasses.replace(load_adoption_config(settings.adoption_config), require_heldout=False)
    said: list[str] = []
    judge = AttemptJudge(settings, rundir, ledger, config, said.append, lambda: datetime(2026, 12, 6, tzinfo=UTC))
    code = (
        '"""A codec that claims the other track."""\n\n' + declaration
        + "def encode(video, target_bitrate):\n    return b''\n\n\ndef decode(bitstream):\n    raise ValueError\n"
    )
    reply = Reply(text=f"Plan.\n\n```python\n{code}```\n", model="m", stop_reason="end_turn", usage={},
                  cost_usd=None, message_id=None, wall_s=0.0)
    adir = rundir.path / "attempt-001"
    adir.mkdir()
    request = {"parent": "p", "prompt_sha256": "0" * 64}
    record = judge.judge(1, adir, reply, request, [], {"attempt": 1})
    other = "open" if run_track == "native" else "native"
    assert record["verdict"] == "invalid" and record["stage"] == "check"
    assert record["reason"].startswith(f"the module declares the {other} track; this run evolves the {run_track} track")
    assert hint in record["reason"]
    (entry,) = ledger.entries()
    assert entry.decision == "rejected" and entry.track == run_track
    assert not any(settings.candidates_dir.iterdir())  # never installed, never judged
