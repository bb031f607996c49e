"""Daemon side channel: encode leaves a detached server holding the clip, tries to kill the harness, decode asks the server.

encode double-forks a setsid'd child that execs a long-lived Python process (its command
line carries the marker HOSTILE_DAEMON_MARKER_7f3a), then sends SIGKILL to pid 1, to its
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

MARKER = "HOSTILE_DAEMON_MARKER_7f3a"
_ADDRESS = "\0hostile-codec-daemon"  # abstract unix socket
_DAEMON = (
    "import socket, time\n"
    f"# {MARKER}\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    f"s.bind({_ADDRESS!r}); s.listen(4)\n"
    "time.sleep(600)\n"
)


def _spawn_daemon() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", _DAEMON, MARKER])
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
