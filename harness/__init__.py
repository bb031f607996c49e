"""Evaluation harness for video codecs written by an LLM: sandboxed round trip, real bits, real metrics.

The public surface is listed once in `__all__`; heavier parts load on first use so that the
sandboxed worker, which imports this package, starts fast.
"""

from __future__ import annotations

import importlib

from harness.errors import CandidateError, ClipError, ConfigError, HarnessError, SandboxError, VideoFormatError
from harness.video import Video, read_video

__version__ = "0.1.0"

_LAZY = {
    "CandidateSource": "harness.candidate",
    "discover_candidates": "harness.candidate",
    "CONTRACT_TEXT": "harness.candidate",
    "Clip": "harness.clips",
    "resolve_clip_set": "harness.clips",
    "Judge": "harness.judge",
    "Limits": "harness.sandbox",
    "Sandbox": "harness.sandbox",
    "Runner": "harness.runner",
    "Outcome": "harness.runner",
    "measure": "harness.measure",
    "compute_metrics": "harness.metrics",
}

__all__ = [
    "__version__",
    "HarnessError",
    "CandidateError",
    "ClipError",
    "ConfigError",
    "SandboxError",
    "VideoFormatError",
    "Video",
    "read_video",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
