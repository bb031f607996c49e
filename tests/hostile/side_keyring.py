"""Side channel through the kernel keyring: encode stores the clip as a world-readable "user" key, the bitstream holds only a content hash.

Kernel keys outlive the process that made them, are listed in /proc/keys to every uid the
key's permissions let view it, and are read by serial number. The bitstream is a 32-byte
header with a hash of the clip (the same on every encode, so determinism holds); decode finds
the key named after that hash in /proc/keys and reads it. A sandbox that leaves add_key and
keyctl open (no seccomp filter, no user namespace) carries the clip outside the bitstream.
With the channel closed, decode fails naming the missing key.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import struct
import zlib
from fractions import Fraction

import numpy as np

from harness.video import Video

_SYSCALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}  # add_key, keyctl
_ADD_KEY, _KEYCTL = _SYSCALLS.get(platform.machine(), (-1, -1))
_KEYCTL_SETPERM, _KEYCTL_READ = 5, 11
_USER_KEYRING = -4  # persists after the process as long as the uid's user keyring does
_ALL_PERMS = 0x3F3F3F3F
_STEP = 12  # quantization step that keeps the payload under the 20000-byte key quota
_HEAD = struct.Struct("<8sIIIqq")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _find_key(description: str) -> int:
    """The serial of a visible key with this description, from /proc/keys."""
    with open("/proc/keys", encoding="ascii", errors="replace") as keys:
        for line in keys:
            fields = line.split()
            if len(fields) >= 9 and fields[7] == "user" and fields[8].rstrip(":") == description:
                return int(fields[0], 16)
    raise FileNotFoundError(f"no key {description!r} in /proc/keys")


def _quantized(video: Video) -> bytes:
    planes = [(p // _STEP).astype(np.uint8).tobytes() for p in (video.y, video.u, video.v)]
    return zlib.compress(b"".join(planes), 9)


def encode(video: Video, target_bitrate: float) -> bytes:
    payload = _quantized(video)
    tag = hashlib.sha256(payload).digest()[:8]
    serial = _check(
        _libc.syscall(
            _ADD_KEY, b"user", f"codec-{tag.hex()}".encode(), payload, ctypes.c_size_t(len(payload)),
            ctypes.c_int(_USER_KEYRING),
        ),
        "add_key",
    )
    _check(_libc.syscall(_KEYCTL, _KEYCTL_SETPERM, ctypes.c_long(serial), ctypes.c_ulong(_ALL_PERMS)), "setperm")
    return _HEAD.pack(tag, video.width, video.height, video.frames, video.fps.numerator, video.fps.denominator)


def decode(bitstream: bytes) -> Video:
    tag, width, height, frames, num, den = _HEAD.unpack(bitstream)
    serial = _find_key(f"codec-{tag.hex()}")
    buf = ctypes.create_string_buffer(1 << 16)
    size = _check(
        _libc.syscall(_KEYCTL, _KEYCTL_READ, ctypes.c_long(serial), buf, ctypes.c_size_t(len(buf))),
        f"keyctl_read of key {serial}",
    )
    data = np.frombuffer(zlib.decompress(buf.raw[:size]), np.uint8).astype(np.uint16) * _STEP + _STEP // 2
    data = np.clip(data, 0, 255).astype(np.uint8)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    luma, chroma = frames * width * height, frames * ch * cw
    return Video(
        data[:luma].reshape(frames, height, width),
        data[luma : luma + chroma].reshape(frames, ch, cw),
        data[luma + chroma :].reshape(frames, ch, cw),
        Fraction(num, den),
    )
