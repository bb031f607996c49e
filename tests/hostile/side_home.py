"""Side channel through persistent places: encode writes the clip to /var/tmp and to ~/.cache, decode reads it.

/var/tmp does not exist in the sandbox and the home directory is the private /tmp of one
call, so decode finds nothing: FileNotFoundError.
"""

from __future__ import annotations

import os
import pickle

from harness.video import Video

_NAMES = ("/var/tmp/codec_side.pkl", os.path.expanduser("~/.cache/codec_side.pkl"), "/root/codec_side.pkl")


def encode(video: Video, target_bitrate: float) -> bytes:
    errors = []
    for name in _NAMES:
        try:
            os.makedirs(os.path.dirname(name), exist_ok=True)
            with open(name, "wb") as out:
                pickle.dump((video.y, video.u, video.v, video.fps), out)
        except OSError as err:
            errors.append(f"{name}: {err}")
    if len(errors) == len(_NAMES):
        raise OSError("could not store the side file anywhere: " + "; ".join(errors))
    return b"HOME"


def decode(bitstream: bytes) -> Video:
    for name in _NAMES:
        if os.path.exists(name):
            with open(name, "rb") as src:
                return Video(*pickle.load(src))
    raise FileNotFoundError(f"no side file in any of {', '.join(_NAMES)}")
