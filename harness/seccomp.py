"""A small seccomp-BPF filter for the sandbox, built by hand (no libseccomp needed).

It denies, with EPERM, the system calls that open channels or powers a codec never needs:
the kernel keyrings (a side channel between encode and decode that survives the process:
keys belong to a uid, not to a namespace, when bwrap runs as root), ptrace and cross-process
memory access, perf events, eBPF, userfaultfd and io_uring. bwrap loads it with `--seccomp FD`.
"""

from __future__ import annotations

import platform
import struct

__all__ = ["deny_filter", "DENIED"]

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_ERRNO_EPERM = 0x00050000 | 1
_KILL = 0x80000000  # SECCOMP_RET_KILL_PROCESS

DENIED = (
    "add_key",
    "request_key",
    "keyctl",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)

# AUDIT_ARCH value and syscall numbers per architecture.
_ARCHES = {
    "x86_64": (
        0xC000003E,
        {
            "add_key": 248, "request_key": 249, "keyctl": 250, "ptrace": 101,
            "process_vm_readv": 310, "process_vm_writev": 311, "perf_event_open": 298,
            "bpf": 321, "userfaultfd": 323,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "add_key": 217, "request_key": 218, "keyctl": 219, "ptrace": 117,
            "process_vm_readv": 270, "process_vm_writev": 271, "perf_event_open": 241,
            "bpf": 280, "userfaultfd": 282,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        },
    ),
}
_X32_BIT = 0x40000000


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny_filter(machine: str | None = None) -> bytes | None:
    """The filter program for this machine's architecture, or None where it is not known."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    nrs = [numbers[name] for name in DENIED]
    prog = [
        _ins(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _ins(_JEQ_K, 1, 0, audit_arch),
        _ins(_RET_K, 0, 0, _KILL),  # another ABI (e.g. i386 on x86_64): refuse outright
        _ins(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    # x32 system calls (x86_64 numbers with bit 30 set) would bypass the list.
    deny_at = len(nrs) + 1  # jump over the list and the ALLOW return, to EPERM
    prog.append(_ins(_JGE_K, deny_at, 0, _X32_BIT))
    for i, nr in enumerate(nrs):
        prog.append(_ins(_JEQ_K, len(nrs) - i, 0, nr))
    prog.append(_ins(_RET_K, 0, 0, _ALLOW))
    prog.append(_ins(_RET_K, 0, 0, _ERRNO_EPERM))
    return b"".join(prog)
