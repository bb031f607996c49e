"""The `evolve` subcommand (harness/evolve/cli.py): the API key, resuming a run with its settings."""

from __future__ import annotations

import argparse

import pytest

from harness.__main__ import main as harness_main
from harness.errors import HarnessError
from harness.evolve import cli as evolve_cli
from harness.evolve.client import ApiKeyMissing
from harness.evolve.loop import Evolution
from tests import evolve_helpers
from tests.evolve_helpers import (
    FakeAPI,
    canned,
    evolve,
    new_entries,
    settings_for,
)

pytestmark = pytest.mark.sandbox
project, world = evolve_helpers.project, evolve_helpers.world  # the fixtures


def test_missing_api_key(project, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    api = FakeAPI(canned("no_code_reply.md"))
    argv = ["evolve", "--run-dir", str(project["run"]), "--candidates-dir", str(project["cands"]),
            "--ledger", str(project["ledger"]), "--clips", str(project["clips"]), "--frames", "3"]
    parser = argparse.ArgumentParser()
    evolve_cli.register(parser.add_subparsers())
    with pytest.raises(ApiKeyMissing, match="ANTHROPIC_API_KEY is not set"):
        evolve_cli.cli_evolve(parser.parse_args(argv), http_client=api.client())
    assert harness_main(argv) == 2
    assert "ANTHROPIC_API_KEY is not set" in capsys.readouterr().err
    with pytest.raises(ApiKeyMissing):
        Evolution(settings_for(project), http_client=api.client())
    assert api.requests == [] and not project["run"].exists() and new_entries(project) == []


def test_resume_keeps_the_run_settings(project, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    api = FakeAPI(canned("no_code_reply.md"))
    evolve(project, api)
    parser = argparse.ArgumentParser()
    evolve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evolve", "--run-dir", str(project["run"]), "--clips", "default"])
    with pytest.raises(HarnessError, match="was started with --clips"):
        evolve_cli.resolve_settings(args)
    args = parser.parse_args(["evolve", "--run-dir", str(project["run"]), "--iterations", "7"])
    settings, resumed = evolve_cli.resolve_settings(args)
    assert resumed and settings.config.stop.iterations == 7 and settings.candidates_dir == project["cands"]
