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


def test_database_section_defaults_values_and_run_settings_round_trip():
    from harness.evolve.config import DatabaseSettings, EvolveConfig
    from harness.evolve.database import BD_EDGES, COMPLEXITY_EDGES

    shipped = load_config(REPO / "fixtures" / "evolve.toml").database
    assert shipped == DatabaseSettings(islands=2, inspirations=2, seed=0)
    assert shipped.bd_edges == BD_EDGES and shipped.complexity_edges == COMPLEXITY_EDGES
    config = parse_config("[database]\nislands = 3\ninspirations = 0\nseed = 7\nbd_edges = [-5, 0, 10]\n")
    assert config.database == DatabaseSettings(islands=3, inspirations=0, seed=7, bd_edges=(-5.0, 0.0, 10.0))
    saved = config.to_json()
    assert saved["database"]["bd_edges"] == [-5.0, 0.0, 10.0]
    assert EvolveConfig.from_json(saved) == config
    del saved["database"]  # a run directory from before the database: the defaults
    assert EvolveConfig.from_json(saved).database == DatabaseSettings()
    assert config.with_overrides(database={"islands": 5}).database.islands == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[database]\nislands = 0\n", "database.islands = 0"),
        ("[database]\ninspirations = -1\n", "database.inspirations = -1"),
        ("[database]\nbd_edges = [0, 0, 5]\n", "database.bd_edges"),
        ("[database]\ncomplexity_edges = []\n", "database.complexity_edges"),
        ("[database]\nbd_edges = ['a']\n", "database.bd_edges must be a list of numbers"),
        ("[database]\nislands = 2.5\n", "database.islands = 2.5 has the wrong type"),
        ("[database]\nelites = 3\n", "unknown key.*database.elites"),
    ],
)
def test_database_section_rejects_bad_values(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text)
