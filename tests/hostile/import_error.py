"""Imports a package that is not available (a learned entropy model from `torchcodec_magic`).

The import fails inside the sandbox: contract failure naming ModuleNotFoundError.
"""

from __future__ import annotations

import torchcodec_magic  # not installed anywhere

from harness.video import Video


def encode(video: Video, target_bitrate: float) -> bytes:
    return torchcodec_magic.encode(video)


def decode(bitstream: bytes) -> Video:
    return torchcodec_magic.decode(bitstream)
