"""Keeps the clip on a server: encode uploads the planes over TCP (1.1.1.1, localhost, a DNS name) and sends only a ticket.

There is no network in the sandbox: no route to outside addresses, nothing listening on
its own loopback, no name resolution. encode fails naming every refused connection.
"""

from __future__ import annotations

import socket
import zlib

from harness.video import Video

_SERVERS = (("1.1.1.1", 80), ("127.0.0.1", 8000), ("127.0.0.1", 22), ("example.com", 443))


def _upload(data: bytes) -> bytes:
    errors = []
    for host, port in _SERVERS:
        try:
            with socket.create_connection((host, port), timeout=2) as conn:
                conn.sendall(len(data).to_bytes(8, "little") + data)
                return conn.recv(64)
        except OSError as err:
            errors.append(f"{host}:{port}: {type(err).__name__}: {err}")
    raise ConnectionError("upload failed everywhere: " + "; ".join(errors))


def encode(video: Video, target_bitrate: float) -> bytes:
    return _upload(zlib.compress(video.y.tobytes() + video.u.tobytes() + video.v.tobytes()))


def decode(bitstream: bytes) -> Video:
    with socket.create_connection(("1.1.1.1", 80), timeout=2) as conn:
        conn.sendall(bitstream)
        raise NotImplementedError("a downloaded clip would be returned here")
