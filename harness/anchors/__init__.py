"""Anchor encoders (x265, x264, SVT-AV1) run through PyAV with every byte-changing setting pinned.

Anchors are trusted code and run in the calling process. Their settings are data: each anchor's
in fixtures/anchors.toml (`spec`), and what the harness knows about each encoder's option names
and settings report in fixtures/anchor_settings.toml (`settings`). The package checks the option
names against those lists, verifies that the encoder applied them (x265 and x264 report their
settings in an SEI message, which is parsed and compared, then stripped from the stream:
`bitstream`), and decodes with a real decoder (`codec`). `versions` gives the library versions
and the anchor id that keys the on-disk cache.

- `encode_anchor` returns the raw elementary stream (HEVC/H.264 Annex B, AV1 low-overhead OBUs).
  The encoder's ~0.6-2 KB settings SEI is removed: it is metadata a decoder ignores, it would
  inflate small anchors' bitrates, and x265 writes the machine's CPU flags into it.
- Odd or tiny frames are padded to even width and height (and the encoder's minimum size) by
  replicating the last row and column; `decode_anchor` crops back to the source size. The padded
  samples cost the anchor a few bits, as they would any real encoder.
- Raw streams carry no frame rate (PITFALLS 7): the decoder takes it from `like`.
- Range: `spec.for_source(info.color_range)` gives a full-range source's spec, which tells the
  encoder (AVCodecContext.color_range, the CLI's `-color_range pc`) so that the bitstream signals
  full range; other sources are encoded with no range given (limited), bytes and ids as before.
- An anchor's [env] (SVT_LOG=1) is written into os.environ before its encoder opens.
- Determinism: threads are pinned in anchors.toml. Measured on this machine: x265 and SVT-AV1
  bytes are identical for every SIMD level (x265 asm=none/sse2/avx2, SVT asm=c/sse4_1/avx2);
  x264 bytes differ between an SSE2-only CPU and SSSE3 or better (SSE4.2 through AVX-512 agree),
  so `anchor_versions` records the machine architecture too.
"""

from __future__ import annotations

from harness.anchors.codec import AnchorEncoding, decode_anchor, encode_anchor, encode_anchor_with_report
from harness.anchors.errors import AnchorError, UnknownAnchorError
from harness.anchors.settings import (
    DEFAULT_ANCHOR_SETTINGS,
    EncoderSettings,
    SettingsReport,
    encoder_settings,
    load_encoder_settings,
)
from harness.anchors.spec import DEFAULT_ANCHORS, AnchorSpec, load_anchor_specs
from harness.anchors.versions import ANCHOR_CODE_VERSION, anchor_id, anchor_versions

__all__ = [
    "ANCHOR_CODE_VERSION",
    "DEFAULT_ANCHORS",
    "DEFAULT_ANCHOR_SETTINGS",
    "AnchorEncoding",
    "AnchorError",
    "AnchorSpec",
    "EncoderSettings",
    "SettingsReport",
    "UnknownAnchorError",
    "anchor_id",
    "anchor_versions",
    "decode_anchor",
    "encode_anchor",
    "encode_anchor_with_report",
    "encoder_settings",
    "load_anchor_specs",
    "load_encoder_settings",
]
