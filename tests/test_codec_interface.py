"""harness.codecs: anchors and candidates behind one interface, each call an Outcome."""

from __future__ import annotations

import dataclasses

import pytest

from harness.anchors import encode_anchor, load_anchor_specs
from harness.codecs import AnchorCodec
from harness.errors import HarnessError
from harness.sealed import SealedFile
from tests.conftest import synthetic


def test_an_anchor_codec_encodes_and_decodes_like_the_anchor_functions():
    spec = load_anchor_specs()["x265"]
    video = synthetic(64, 48, frames=3)
    codec = AnchorCodec("x265", spec)
    with SealedFile.of_bytes("unused", b"") as sealed:
        enc, bitstream = codec.encode(video, sealed, 0.0, spec.qps[0])
    assert enc.ok and enc.stage == "encode" and enc.kind == "ok" and enc.wall_s > 0 and enc.cpu_s >= 0
    assert bitstream == encode_anchor(video, spec, spec.qps[0])
    dec, decoded = codec.decode(bitstream, video)
    assert dec.ok and decoded.same_format(video)
    with pytest.raises(HarnessError, match="encodes at a QP"):
        codec.encode(video, sealed, 1e6, None)


def test_an_anchor_failure_is_an_outcome_not_a_crash():
    spec = load_anchor_specs()["x265"]
    video = synthetic(64, 48, frames=3)
    dec, decoded = AnchorCodec("x265", spec).decode(b"\x00\x00\x01garbage", video)
    assert not dec.ok and decoded is None and dec.kind == "exception" and dec.stage == "decode"
    assert dec.message.startswith("AnchorError: ")
    broken = dataclasses.replace(spec, encoder="libx265", qps=(51,))
    enc, _ = AnchorCodec("x265", broken).encode(video, None, 0.0, 99)  # QP out of x265's range
    assert not enc.ok and enc.kind == "exception", enc
