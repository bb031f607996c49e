"""Keep library encoders from switching the harness to real-time scheduling.

SVT-AV1's `svt_av1_enc_init_handle` calls `pthread_setschedparam(SCHED_FIFO, 99)` on the thread
that opens the encoder (seen with strace -k: libSvtAv1Enc -> avcodec_open2 -> CodecContext.open).
Without privileges the call fails and nothing happens; run as root (CI, containers) it succeeds, and
the thread keeps SCHED_FIFO 99 for ever: every thread and process it starts afterwards inherits it
(the encoder's own threads, the sandboxed candidates, the suite runs of a test), their timings are
no longer those of an ordinary process, and two busy FIFO-99 processes on a 2-core machine starve
everything else, the timeouts that should stop them included (a CI run hung for 90 minutes so).

`normal_scheduling()` takes CAP_SYS_NICE out of the calling thread's effective capabilities while
the encoder opens (capabilities are per thread on Linux; the permitted set keeps it, so it comes
back afterwards), so the library's request fails as it does for an ordinary user. If the policy of
the thread or of threads started meanwhile changed anyway, it is set back.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["REALTIME_POLICIES", "normal_scheduling", "realtime_threads", "set_back"]

_CAP_SYS_NICE = 23
_CAPABILITY_VERSION_3 = 0x20080522
REALTIME_POLICIES = frozenset({getattr(os, "SCHED_FIFO", 1), getattr(os, "SCHED_RR", 2)})


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@functools.cache  # once per process, not per encoder opened
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc if hasattr(libc, "capget") and hasattr(libc, "capset") else None
    except OSError:
        return None


def _set_sys_nice(libc, on: bool) -> bool:
    """Raise or drop CAP_SYS_NICE in this thread's effective set; True when it was effective before."""
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        return False
    bit = 1 << _CAP_SYS_NICE
    was = bool(data[0].effective & bit)
    if on and data[0].permitted & bit:
        data[0].effective |= bit
    elif not on:
        data[0].effective &= ~bit
    if bool(data[0].effective & bit) != was:
        libc.capset(ctypes.byref(header), data)
    return was


def realtime_threads() -> dict[int, int]:
    """Threads of this process under a real-time policy: thread id -> policy."""
    found = {}
    for task in Path("/proc/self/task").glob("[0-9]*") if sys.platform.startswith("linux") else ():
        try:
            policy = os.sched_getscheduler(int(task.name))
        except OSError:
            continue  # the thread ended
        if policy in REALTIME_POLICIES:
            found[int(task.name)] = policy
    return found


def set_back(tids) -> None:
    """Put these threads (0: the calling one) back on SCHED_OTHER; lowering a policy needs no privilege."""
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread ended
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))


@contextlib.contextmanager
def normal_scheduling() -> Iterator[None]:
    """Run the block (an encoder opening) unable to switch this process to real-time scheduling."""
    libc = _libc()
    if libc is None:
        yield
        return
    before = realtime_threads()
    dropped = _set_sys_nice(libc, False)
    try:
        yield
    finally:
        if dropped:
            _set_sys_nice(libc, True)
        set_back(set(realtime_threads()) - set(before))
