"""Bitstream helpers: Annex B NAL units, SEI messages, the encoders' settings SEI, AV1 temporal units."""

from __future__ import annotations

import re

from harness.anchors.errors import AnchorError


def annexb_units(stream: bytes) -> list[tuple[int, int, int]]:
    """(segment start incl. start code, payload start, segment end) for each NAL unit."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", stream)]
    units = []
    for i, pos in enumerate(starts):
        seg = pos - 1 if pos > 0 and stream[pos - 1] == 0 else pos
        end = (
            len(stream)
            if i + 1 == len(starts)
            else (starts[i + 1] - (1 if stream[starts[i + 1] - 1] == 0 else 0))
        )
        units.append((seg, pos + 3, end))
    return units


def unescape_rbsp(payload: bytes) -> bytes:
    """The RBSP of a NAL unit payload: emulation prevention bytes (00 00 03) removed."""
    return re.sub(b"\x00\x00\x03", b"\x00\x00", payload)


def sei_messages(rbsp: bytes) -> list[tuple[int, bytes]] | None:
    """(payloadType, payload) of each SEI message, or None if the RBSP does not parse."""
    out, i = [], 0
    while i < len(rbsp) and rbsp[i:] != b"\x80":
        ptype = psize = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            ptype, i = ptype + 255, i + 1
        if i >= len(rbsp):
            return None
        ptype, i = ptype + rbsp[i], i + 1
        while i < len(rbsp) and rbsp[i] == 0xFF:
            psize, i = psize + 255, i + 1
        if i >= len(rbsp):
            return None
        psize, i = psize + rbsp[i], i + 1
        if i + psize > len(rbsp):
            return None
        out.append((ptype, rbsp[i : i + psize]))
        i += psize
    return out


# How each encoder's settings SEI (user data unregistered, payloadType 5) starts after its 16-byte UUID.
_INFO_PREFIX = {"libx265": b"x265 (build", "libx264": b"x264 - core"}


def strip_info_sei(stream: bytes, encoder: str) -> tuple[bytes, str | None]:
    """Remove the encoder's settings SEI NAL units; return the stream and the settings text."""
    hevc = encoder == "libx265"
    keep, text = [], None
    for seg, start, end in annexb_units(stream):
        header = stream[start] if start < end else 0
        is_sei = ((header >> 1) & 0x3F) == 39 if hevc else (header & 0x1F) == 6
        if is_sei:
            messages = sei_messages(unescape_rbsp(stream[start + (2 if hevc else 1) : end]))
            infos = [p[16:] for t, p in messages or () if t == 5 and p[16:].startswith(_INFO_PREFIX[encoder])]
            if infos:
                if len(infos) != len(messages):
                    raise AnchorError(
                        f"{encoder}: settings SEI shares its NAL unit with other SEI; cannot strip it"
                    )
                text = infos[0].split(b"\x00", 1)[0].decode("ascii", "replace")
                continue
        keep.append(stream[seg:end])
    return b"".join(keep), text


def av1_temporal_units(stream: bytes) -> list[bytes]:
    """Split a low-overhead AV1 OBU stream at its temporal delimiters."""
    units, pos, begin = [], 0, 0
    while pos < len(stream):
        header = stream[pos]
        obu_type, has_ext, has_size = (header >> 3) & 0xF, header & 4, header & 2
        if not has_size:
            raise AnchorError("AV1 stream has an OBU without obu_size; cannot split it into temporal units")
        i = pos + 1 + (1 if has_ext else 0)
        size = shift = 0
        while True:
            if i >= len(stream):
                raise AnchorError(f"AV1 stream is truncated at byte {pos}")
            byte, i = stream[i], i + 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if obu_type == 2 and pos > begin:  # OBU_TEMPORAL_DELIMITER starts a new unit
            units.append(stream[begin:pos])
            begin = pos
        pos = i + size
    if pos != len(stream):
        raise AnchorError(f"AV1 stream is truncated: last OBU runs to byte {pos} of {len(stream)}")
    if begin < len(stream):
        units.append(stream[begin:])
    return units
