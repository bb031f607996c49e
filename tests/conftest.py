"""Shared helpers of the harness's own tests: where the development clips are, synthetic clips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.video import Video, chroma_shape

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The development clips (../shared/fixtures). Their absence is a failure, not a skip."""
    if not (SHARED_FIXTURES / "MANIFEST.md").exists():
        pytest.fail(f"development clips not found at {SHARED_FIXTURES}; clone the project beside ../shared")
    return SHARED_FIXTURES


def synthetic(width: int, height: int, frames: int, *, seed: int = 0, fps=Fraction(25)) -> Video:
    """Gradient plus noise plus a moving square: deterministic, any size."""
    rng = np.random.default_rng(seed)
    ch, cw = chroma_shape(height, width)
    yy, xx = np.mgrid[0:height, 0:width]
    ys, us, vs = [], [], []
    for f in range(frames):
        y = (xx * 3 + yy * 2 + f * 5) % 256 + rng.integers(-8, 9, size=(height, width))
        y[(yy // 8 + f) % 4 == 0] //= 2
        ys.append(np.clip(y, 0, 255).astype(np.uint8))
        us.append(np.clip(128 + (np.mgrid[0:ch, 0:cw][1] - cw // 2) + f, 0, 255).astype(np.uint8))
        vs.append(np.clip(128 - (np.mgrid[0:ch, 0:cw][0] - ch // 2), 0, 255).astype(np.uint8))
    return Video(np.stack(ys), np.stack(us), np.stack(vs), fps)
