"""Registers the codec harness plugin for `pytest benchmarks/` and `pytest tests/`."""

pytest_plugins = ["harness.plugin"]
