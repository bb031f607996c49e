"""The process that runs inside the sandbox: load one candidate, then check, encode or decode.

    python -m harness.worker {check|encode|decode} --candidate PATH --name NAME
        [--target-bps BPS] --in-fd N --out-fd N --status-fd N [--drop-uid UID] --processes N

The input (raw source video for encode, bitstream for decode) is read from --in-fd, the
result written to --out-fd, and a JSON status to --status-fd. Nothing here is trusted by
the parent: it re-validates every byte it reads back.

The status times the import apart from the call: `import_s` / `import_cpu_s` (wall / CPU of
loading the candidate), `call_s` / `call_cpu_s` (wall / CPU of the encode or decode call alone;
CPU is user + system of every thread and of reaped child processes), and the process's
`cpu_s` and `peak_rss_bytes` over its whole life.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

CONTRACT = {"encode": ("video", "target_bitrate"), "decode": ("bitstream",)}
_TRACE_LIMIT = 16_000


class ContractViolation(Exception):
    """The candidate does not satisfy the contract (kind 'contract' or 'bad_output')."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _drop_privileges(uid: int, processes: int) -> None:
    if uid and os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def load_candidate(path: Path, name: str) -> ModuleType:
    """Import a candidate file or package and check the contract's shape (not its behaviour)."""
    init = path / "__init__.py" if path.is_dir() else path
    try:
        source = init.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(init))
    except SyntaxError as err:
        raise ContractViolation("contract", f"syntax error in {init.name} line {err.lineno}: {err.msg}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ContractViolation("contract", f"cannot read {init.name}: {err}") from err
    doc = ast.get_docstring(tree)
    if not doc or not doc.strip().splitlines()[0].strip():
        raise ContractViolation(
            "contract", "the module has no docstring; its first line must say what the codec does"
        )
    kwargs = {"submodule_search_locations": [str(path)]} if path.is_dir() else {}
    spec = importlib.util.spec_from_file_location(f"candidate_{name}", init, **kwargs)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as err:  # noqa: BLE001 - any failure at import is the candidate's
        raise ContractViolation(
            "contract", f"import failed: {type(err).__name__}: {err}\n{_trace()}"
        ) from err
    for func, params in CONTRACT.items():
        obj = getattr(module, func, None)
        if obj is None:
            raise ContractViolation("contract", f"the module defines no `{func}` function")
        if not callable(obj):
            raise ContractViolation("contract", f"`{func}` is a {type(obj).__name__}, not a function")
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        try:
            sig.bind(*params)
        except TypeError as err:
            raise ContractViolation(
                "contract",
                f"`{func}{sig}` cannot be called as {func}({', '.join(params)}): {err}",
            ) from err
    return module


def _trace() -> str:
    text = traceback.format_exc()
    return text if len(text) <= _TRACE_LIMIT else "...\n" + text[-_TRACE_LIMIT:]


def _encode(module: ModuleType, args: argparse.Namespace) -> tuple[bytes, dict[str, float]]:
    from harness.video import Video

    with os.fdopen(args.in_fd, "rb", closefd=False) as src:
        video = Video.read_from(src, name="source")
    out, timing = _timed(module.encode, video, float(args.target_bps))
    if isinstance(out, (bytearray, memoryview)):
        out = bytes(out)
    if not isinstance(out, bytes):
        raise ContractViolation("bad_output", f"encode returned {type(out).__name__}, expected bytes")
    if len(out) > args.max_output:
        raise ContractViolation(
            "bad_output", f"encode returned {len(out)} bytes, over the output limit of {args.max_output}"
        )
    return out, timing


def _decode(module: ModuleType, args: argparse.Namespace) -> tuple[object, dict[str, float]]:
    from harness.errors import VideoFormatError
    from harness.video import Video

    with os.fdopen(args.in_fd, "rb", closefd=False) as src:
        bitstream = src.read()
    out, timing = _timed(module.decode, bitstream)
    if not isinstance(out, Video):
        raise ContractViolation(
            "bad_output", f"decode returned {type(out).__name__}, expected harness.video.Video"
        )
    try:
        shapes = [tuple(int(n) for n in getattr(out, p).shape) for p in ("y", "u", "v")]
        claimed = sum(int(_prod(s)) * getattr(out, p).dtype.itemsize for s, p in zip(shapes, "yuv"))
    except (AttributeError, TypeError, ValueError) as err:
        raise ContractViolation("bad_output", f"decode returned a malformed Video: {err}") from err
    if claimed > args.max_output:
        raise ContractViolation(
            "bad_output",
            f"decode returned planes of {shapes} ({claimed} bytes), over the output limit of {args.max_output}",
        )
    try:
        video = Video(out.y, out.u, out.v, out.fps)
    except VideoFormatError as err:
        raise ContractViolation("bad_output", f"decode returned an invalid Video: {err}") from err
    return video, timing


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, all its threads, and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(func, *args) -> tuple[object, dict[str, float]]:
    """func(*args) with the wall time (`call_s`) and CPU time (`call_cpu_s`) of that call alone."""
    cpu, start = _cpu_s(), time.perf_counter()
    out = func(*args)
    return out, {"call_s": time.perf_counter() - start, "call_cpu_s": _cpu_s() - cpu}


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.worker")
    parser.add_argument("mode", choices=("check", "encode", "decode"))
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--target-bps", type=float, default=0.0)
    parser.add_argument("--in-fd", type=int, default=-1)
    parser.add_argument("--out-fd", type=int, default=-1)
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--drop-uid", type=int, default=0)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--max-output", type=int, default=1 << 30)
    parser.add_argument("--track", default="native")
    args = parser.parse_args(argv)
    status_file = os.fdopen(args.status_fd, "w", closefd=True)
    _drop_privileges(args.drop_uid, args.processes)
    status: dict[str, object] = {"ok": False, "mode": args.mode}
    main_pid = os.getpid()
    guard = None
    try:
        # Before the candidate loads: its track's toolbox only, no executables, library codecs
        # recorded (and refused in the native track). See harness/toolbox.py.
        from harness.toolbox import install_guard

        guard = install_guard(args.track, candidate_module=f"candidate_{args.name}")
        # The import (and whatever the module does at import time) is timed apart from the call:
        # it has its own allowance, so a codec that imports torch is not charged for it per call.
        cpu, start = _cpu_s(), time.perf_counter()
        module = load_candidate(args.candidate, args.name)
        status.update(import_s=time.perf_counter() - start, import_cpu_s=_cpu_s() - cpu)
        if args.mode == "encode":
            payload, timing = _encode(module, args)
            status.update(timing)
            os.ftruncate(args.out_fd, 0)
            _write_all(args.out_fd, payload)
        elif args.mode == "decode":
            video, timing = _decode(module, args)
            status.update(timing)
            with os.fdopen(args.out_fd, "wb", closefd=False) as out:
                out.truncate(0)
                video.write_to(out)
        if guard is not None and guard.refused:
            # Refused even where the candidate caught the error: a native codec must be its own.
            from harness.toolbox import library_codec_message

            raise ContractViolation("contract", library_codec_message(", ".join(guard.refused)))
        status["ok"] = True
    except ContractViolation as err:
        status.update(kind=err.kind, message=str(err))
    except MemoryError:
        status.update(kind="memory", message=f"MemoryError in {args.mode}\n{_trace()}")
    except BlockingIOError as err:
        message = f"{type(err).__name__}: {err} (process/thread limit {args.processes})"
        status.update(kind="processes", message=message, traceback=_trace())
    except BaseException as err:  # noqa: BLE001 - whatever the candidate raised is its failure
        status.update(kind="exception", message=f"{type(err).__name__}: {err}", traceback=_trace())
    if os.getpid() != main_pid:
        os._exit(1)  # a process the candidate forked must not write the status
    if guard is not None:
        status["library_codecs"] = [*guard.used, *guard.refused]
        if guard.refused and status.get("kind") == "exception":
            from harness.toolbox import library_codec_message

            status.update(kind="contract", message=library_codec_message(", ".join(guard.refused)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The high-water mark of this process's own memory since exec (VmHWM), not ru_maxrss: that
    # one starts from the forking process's resident size (pytest's, in mode none), so a harness
    # holding 4 GiB would charge every candidate 4 GiB. Children forked by the candidate count.
    status["peak_rss_bytes"] = max(_vm_hwm_bytes(), children.ru_maxrss * 1024)
    status["cpu_s"] = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    json.dump(status, status_file)
    status_file.flush()
    # Skip interpreter teardown: a candidate's atexit hooks or threads must not change the verdict.
    os._exit(0)


def _vm_hwm_bytes() -> int:
    """Peak resident memory of this process since it exec'd (/proc/self/status VmHWM), in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main()
