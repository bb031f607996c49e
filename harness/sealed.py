"""Immutable in-memory files: what the harness hands a candidate and later reads itself.

A sealed memfd (`memfd_create` + `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`)
can be read, mapped read-only and passed to another process, but no process can change it:
not through its descriptor, not by reopening `/proc/self/fd/N` for writing (as the same uid,
which is the case when the harness runs unprivileged), not by `fchmod`, `ftruncate` or a
shared writable mapping. The kernel enforces the seals on the file itself, so they hold
whatever uid or namespace the reader runs in. Source clips and every input of a sandboxed
call travel this way.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from harness.errors import HarnessError

__all__ = ["SEALS", "SealedFile", "is_sealed"]

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class SealedFile:
    """A read-only, unchangeable file in memory; `open()` gives a fresh read-only handle."""

    def __init__(self, name: str, write: Callable[[int], object]) -> None:
        """A new memfd that `write(fd)` fills (at any offsets), then sealed."""
        self.fd = -1
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            write(fd)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.name = name
        self.size = os.fstat(fd).st_size

    @classmethod
    def of_bytes(cls, name: str, data: bytes | memoryview) -> SealedFile:
        def write(fd: int) -> None:
            with os.fdopen(os.dup(fd), "wb") as out:
                out.write(data)

        return cls(name, write)

    @classmethod
    def copy_of(cls, path: str | os.PathLike[str], name: str | None = None) -> SealedFile:
        """A sealed copy of a file (kernel-side copy, no user-space buffer)."""

        def write(fd: int) -> None:
            with open(path, "rb") as src:
                size = os.fstat(src.fileno()).st_size
                done = 0
                while done < size:
                    sent = os.sendfile(fd, src.fileno(), done, size - done)
                    if sent == 0:
                        raise HarnessError(f"{path} shrank while being copied ({done} of {size} bytes)")
                    done += sent

        return cls(name or Path(path).name, write)

    def open(self) -> BinaryIO:
        """A new read-only open file (its own offset), e.g. to hand to a sandboxed process."""
        return os.fdopen(os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC), "rb")

    def read_bytes(self) -> bytes:
        return os.pread(self.fd, self.size, 0)

    def close(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SealedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"SealedFile({self.name!r}, {self.size} bytes)"


def is_sealed(fd: int) -> bool:
    """Whether every seal that makes a file immutable is set on `fd`."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS
    except OSError:
        return False
