"""Daemon side channel: encode leaves a detached server holding the clip, tries to kill the harness, decode asks the server.

encode double-forks a setsid'd child that serves on an abstract socket for ten minutes (a fork
of the worker: no program can be exec'd in the sandbox since the toolbox guard; its command line
names this file, /opt/codec-sandbox/candidate/kill_parent.py), then sends SIGKILL to pid 1, to its
parent and to the parent's process group. None of that may reach the host: the PID
namespace dies with the sandbox and takes the daemon along, so decode finds no server
(ConnectionRefusedError) and no stray process remains on the host.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from harness.video import Video

MARKER = "codec-sandbox/candidate/kill_parent.py"  # in the daemon's command line (the worker's, forked)
_ADDRESS = "\0hostile-codec-daemon"  # abstract unix socket


def _daemon() -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(_ADDRESS)
    s.listen(4)
    time.sleep(600)


def _spawn_daemon() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                _daemon()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def encode(video: Video, target_bitrate: float) -> bytes:
    _spawn_daemon()
    for _ in range(100):  # wait until the daemon listens, so that the kill attempts are real
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(_ADDRESS)
            print("daemon listening", file=sys.stderr)
            break
        except OSError:
            time.sleep(0.05)
    for what, action in (
        ("kill pid 1", lambda: os.kill(1, signal.SIGKILL)),
        ("kill parent", lambda: os.kill(os.getppid(), signal.SIGKILL)),
        ("killpg parent group", lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)),
    ):
        try:
            action()
            print(f"{what}: sent", file=sys.stderr)
        except OSError as err:
            print(f"{what}: {err}", file=sys.stderr)
    return b"ticket:" + str(video.frames).encode()


def decode(bitstream: bytes) -> Video:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(_ADDRESS)  # ConnectionRefusedError: the daemon died with the encode sandbox
        raise NotImplementedError("the clip would be fetched from the daemon here")
