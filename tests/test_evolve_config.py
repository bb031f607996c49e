"""The loop's settings (harness/evolve/config.py, fixtures/evolve.toml)."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.evolve.config import load_config, parse_config
from tests.evolve_helpers import REPO

pytestmark = pytest.mark.sandbox


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config("[model]\nnmae = 'x'\n")
    with pytest.raises(ConfigError, match="max_tokens"):
        parse_config("[model]\nmax_tokens = 0\n")
    with pytest.raises(ConfigError, match="needs input and output"):
        parse_config("[prices.m]\ninput = 1.0\n")
    assert load_config(REPO / "fixtures" / "evolve.toml").price() is not None
